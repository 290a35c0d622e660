"""Assemble the MILP of an instance from the builders, in dependency order.

Only what the problem needs is built: the latency model (sequential sum, or the parallel
scheduling model) exists only when latency, a deadline or an idle-energy term needs it, the
period only for throughput, and so on. ``extra_metrics`` adds metric columns that are not in the
objective (used by :mod:`solvers.milp.pareto`, which moves the objective between them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from formulation.milp.constraints.budgets import add_deadline, add_energy_budgets
from formulation.milp.constraints.colocate import add_colocation
from formulation.milp.constraints.contiguous import add_contiguity
from formulation.milp.constraints.max_devices import add_max_devices
from formulation.milp.constraints.memory import add_memory
from formulation.milp.constraints.pipeline import add_pipeline
from formulation.milp.constraints.symmetry import add_symmetry_breaking
from formulation.milp.context import MilpContext
from formulation.milp.cost import add_cost
from formulation.milp.energy import add_device_energy, add_energy_total
from formulation.milp.latency_seq import add_latency_sequential
from formulation.milp.objective import check_weights, set_objective
from formulation.milp.pairs import add_pairs
from formulation.milp.placement import add_placement
from formulation.milp.schedule import add_schedule
from formulation.milp.shipping import add_shipping
from formulation.milp.throughput import add_period
from formulation.model import OBJECTIVES, Instance


def objective_weights(inst: Instance) -> dict[str, float]:
    """The problem's objective as ``{metric: weight}`` with zero weights dropped."""
    return {k: float(w) for k, w in inst.problem.objective.terms().items() if w}


def build_milp(
    inst: Instance,
    *,
    objective: Mapping[str, float] | None = None,
    extra_metrics: Iterable[str] = (),
    pairs: bool = True,
    symmetry: bool = False,
    pipeline_cuts: bool = False,
) -> MilpContext:
    """Build the MILP of ``inst``.

    Parameters
    ----------
    inst : Instance
    objective : mapping, optional
        ``{metric: weight}``; default: the problem's objective.
    extra_metrics : iterable of str
        Metric columns to build even if they are not in the objective.
    pairs : bool
        Model layer-to-layer transfers with the edge-pair variables of :mod:`formulation.milp.pairs`
        (stronger LP relaxation, ``|E| k^2`` columns); False keeps only the send-once rows of
        :mod:`formulation.milp.shipping`.
    symmetry : bool
        Break the symmetry between interchangeable devices
        (:mod:`formulation.milp.constraints.symmetry`); solutions and warm starts must then be in
        canonical form (:func:`formulation.symmetry.canonical_placement`).
    pipeline_cuts : bool
        Under ``constraints.pipeline``, the stage-order rows of interchangeable devices
        (:mod:`formulation.milp.constraints.pipeline_cuts`), in place of ``symmetry``'s rule (the two
        rules name different representatives); solutions and warm starts must then be renamed by
        :func:`formulation.stage_order.stage_canonical_placement`.

    Returns
    -------
    MilpContext
        The model and the index tables needed to decode a solution.

    Raises
    ------
    formulation.milp.objective.NegativeWeight
        On a negative objective weight.
    ValueError
        On an unknown metric name, or a version-2 instance (this model is of version 1).
    """
    if inst.workload is not None:  # never a silently different problem: docs/instance-format.md §9
        raise ValueError(f"instance {inst.name!r} is a version-2 workload; the MILP models version 1 only")
    weights = objective_weights(inst) if objective is None else {k: float(w) for k, w in objective.items() if w}
    check_weights(weights)
    metrics = set(weights) | set(extra_metrics)
    unknown = metrics - set(OBJECTIVES)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; expected some of {OBJECTIVES}")
    c = inst.problem.constraints
    ctx = MilpContext.new(inst)
    ctx.pair_mode = pairs
    add_placement(ctx)
    if pairs:
        add_pairs(ctx)
    add_shipping(ctx)
    robust = inst.problem.scenarios is not None
    if robust:  # network states (docs/instance-format.md §10): one copy of the metrics per state
        from formulation.milp.robust import add_states

        add_states(ctx, weights, metrics, add_metrics)
    else:
        add_metrics(ctx, metrics)
    if c.memory:
        add_memory(ctx)
    if not robust:
        add_deadline(ctx)
        add_energy_budgets(ctx)
    if c.contiguous:
        add_contiguity(ctx)
    if c.pipeline:
        add_pipeline(ctx, cuts=pipeline_cuts)
    add_max_devices(ctx)
    add_colocation(ctx)
    if symmetry and not (pipeline_cuts and c.pipeline):
        add_symmetry_breaking(ctx)
    if not robust:
        set_objective(ctx, weights)
    return ctx


def add_metrics(ctx: MilpContext, metrics: Iterable[str]) -> None:
    """The metric columns of ``metrics`` and what the constraints need: the latency model (when
    latency, a deadline or an idle-energy term needs it), the period, per-device energy (objective
    scope and budgeted devices), total energy and cost."""
    inst, metrics = ctx.inst, set(metrics)
    c, s = inst.problem.constraints, inst.system
    energy_devs = set(np.flatnonzero(inst.scope_mask).tolist()) if "energy" in metrics else set()
    energy_devs |= {s.device_index[d] for d in c.energy_budget_j}
    idle_matters = any(s.power_idle[d] > 0 for d in energy_devs)
    if "latency" in metrics or c.deadline_s is not None or idle_matters:
        if ctx.parallel():
            add_schedule(ctx)
        else:
            add_latency_sequential(ctx)
    if "throughput" in metrics:
        add_period(ctx)
    if energy_devs:
        add_device_energy(ctx, sorted(energy_devs))
    if "energy" in metrics:
        add_energy_total(ctx)
    if "cost" in metrics:
        add_cost(ctx)
