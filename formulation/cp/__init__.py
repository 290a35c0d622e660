"""CP-SAT formulations of every objective and constraint of the spec.

* :mod:`.scaling` -- the one place where floats become integers, with worst-case error bounds;
* :mod:`.tables` -- placeable pairs, possible transfers, durations in ticks;
* :mod:`.placement` -- placement booleans and "sent once per device" shipping literals;
* :mod:`.constraints` -- memory, contiguity, max_devices, private;
* :mod:`.timing` -- sequential latency, the interval schedule of parallel latency, period, idle;
* :mod:`.objective` -- metrics, objective, deadline, energy budgets;
* :mod:`.build` -- :func:`build_cp_model`;
* :mod:`.solution` -- reading solutions back and completing solution hints;
* :mod:`.params` -- CP-SAT parameters every solve uses (a workaround for an OR-Tools 9.15 bug).

OR-Tools is imported by these modules; import this package lazily (the registry does).
"""

from formulation.cp.build import CpBuild, NegativeWeight, build_cp_model
from formulation.cp.solution import CpSolution, apply_hint, complete_hint, read_solution

__all__ = ["CpBuild", "CpSolution", "NegativeWeight", "apply_hint", "build_cp_model", "complete_hint", "read_solution"]
