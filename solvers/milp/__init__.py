"""MILP backends: HiGHS direct (``highs``), any Pyomo solver (``pyomo:NAME``), Pareto fronts, export.

Heavy imports (highspy, Pyomo) happen inside the backends, so importing this package is cheap.
"""
