"""Deadline and energy budgets (docs/instance-format.md §4.4): bounds on metric columns.

::

    latency <= deadline                        (bound on the column ``latency``)
    E[d]    <= energy_budget(d)                for every device with a budget

Both are simple upper bounds on columns built by :mod:`formulation.milp.latency_seq` /
:mod:`formulation.milp.schedule` and :mod:`formulation.milp.energy`; in parallel mode the latency
column is the makespan, pushed down by the bound itself, so the bound is exact for feasibility.
The energy-budget row is exact although ``E[d]`` contains the idle max (see
:mod:`formulation.milp.energy`). The right-hand sides are the instance's values (no margin): the
solver's feasibility tolerance is kept well below the evaluator's relative tolerance.
"""

from __future__ import annotations

from formulation.milp.context import MilpContext


def add_deadline(ctx: MilpContext) -> None:
    """``latency <= deadline``."""
    d = ctx.inst.problem.constraints.deadline_s
    if d is not None:
        ctx.model.tighten_ub(ctx.metric_cols["latency"], float(d))


def add_energy_budgets(ctx: MilpContext) -> None:
    """``E[d] <= budget(d)`` for every budgeted device."""
    inst = ctx.inst
    for dev, budget in inst.problem.constraints.energy_budget_j.items():
        ctx.model.tighten_ub(ctx.energy_cols[inst.system.device_index[dev]], float(budget))
