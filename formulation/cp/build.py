"""Assemble the CP-SAT model of an instance: every objective and constraint kind of the spec.

:func:`build_cp_model` returns a :class:`CpBuild`: the ``CpModel`` and the handles needed to read
a solution back (:mod:`formulation.cp.solution`). Which parts are built depends on the problem:

* sequential latency (and with it the sequential idle term of energy) is a linear form of the
  placement and shipping literals;
* in parallel mode the interval schedule and its makespan ``L`` exist when the objective weighs
  latency, when there is a deadline, or when an idle term is needed (energy with non-zero idle
  power of a device in the objective's scope or under a budget);
* the period ``P`` exists when the objective weighs throughput;
* memory, contiguity, max_devices and the static part of ``private`` only when active.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from formulation.cp.constraints import (
    add_contiguity,
    add_max_devices,
    add_memory,
    add_private_static,
    add_symmetry_breaking,
)
from formulation.cp.objective import (
    add_deadline,
    add_energy_budgets,
    add_objective,
    cost_form,
    energy_form,
    objective_form,
    sequential_latency_form,
    ticks_form,
)
from formulation.cp.pipeline import add_pipeline
from formulation.cp.placement import PlacementVars, add_placement
from formulation.cp.scaling import ByteUnit, FloatForm, IntegerForm, ticks_max_for
from formulation.cp.tables import Masks, TimeTables, build_masks, build_time_tables
from formulation.cp.timing import Idle, Period, Schedule, add_idle, add_parallel_schedule, add_period
from formulation.model import Instance


class NegativeWeight(ValueError):
    """A weighted objective with a negative weight (the envelopes of L, P and idle need >= 0)."""


@dataclass
class CpBuild:
    """A built CP-SAT model and its handles.

    Attributes
    ----------
    model : CpModel
    inst : Instance
    masks, tables : Masks, TimeTables
        Static tables (placeable pairs, transfers, ticks and their errors).
    placement : PlacementVars
        ``x``, ``need`` and ``send`` literals.
    schedule : Schedule or None
        Interval schedule and makespan ``L`` in ticks (parallel mode, when ``L`` matters).
    period : Period or None
    idle : list of Idle
    objective : IntegerForm
        The minimised integer objective; ``objective.error`` is the worst-case scaling error.
    bytes_unit : ByteUnit or None
        Memory unit (None when no memory constraint binds).
    """

    model: cp_model.CpModel
    inst: Instance
    masks: Masks
    tables: TimeTables
    placement: PlacementVars
    objective: IntegerForm
    schedule: Schedule | None = None
    period: Period | None = None
    idle: list[Idle] = field(default_factory=list)
    bytes_unit: ByteUnit | None = None

    @property
    def scaling_error(self) -> float:
        """Worst-case ``|evaluator objective - model objective|`` over all solutions (objective units)."""
        return self.objective.error


def check_weights(inst: Instance) -> None:
    """Raise :class:`NegativeWeight` if a weighted objective has a negative weight."""
    bad = inst.problem.objective.negative_weights()
    if bad:
        raise NegativeWeight(
            f"negative objective weights {bad}: the CP-SAT model bounds latency, period and idle time "
            "from below, which is exact only for non-negative weights"
        )


def _energy_devices(inst: Instance) -> list[int]:
    """Devices whose energy is modelled: the scope when energy is weighed, and budgeted devices."""
    s, p = inst.system, inst.problem
    devices: set[int] = set()
    if p.objective.terms().get("energy"):
        devices |= {d for d in range(s.k) if inst.scope_mask[d]}
    devices |= {s.device_index[d] for d in p.constraints.energy_budget_j}
    return sorted(devices)


def _idle_devices(inst: Instance) -> list[int]:
    return [d for d in _energy_devices(inst) if inst.system.power_idle[d] > 0]


def tick_coefficients(inst: Instance) -> list[float]:
    """Per-second coefficients that multiply tick variables in the objective and constraints.

    Parallel latency (its weight, and 1 for a deadline), the period (its weight), and parallel idle
    times (idle power, times the energy weight in the objective). They decide the tick resolution
    (:func:`formulation.cp.scaling.ticks_max_for`).
    """
    p, s = inst.problem, inst.system
    terms = {m: w for m, w in p.objective.terms().items() if w}
    coefs = [terms.get("throughput", 1.0)]
    if p.execution == "parallel":
        coefs += [terms.get("latency", 1.0)]
        for d in _idle_devices(inst):
            coefs.append(float(s.power_idle[d]))
            coefs.append(float(s.power_idle[d]) * terms.get("energy", 1.0))
    return coefs


#: Relative slack on the caps derived from an incumbent (far above any scaling error).
CAP_SLACK = 1e-3


def time_caps(inst: Instance, incumbent: float | None) -> tuple[float | None, float | None]:
    """Upper bounds in seconds on the parallel makespan and on the period of any solution worth
    finding (None: no bound known).

    Every metric is non-negative, so a solution with objective at most ``incumbent`` has
    ``weight[m] * m <= incumbent`` for each metric m; a deadline bounds the makespan, and so does
    a bound on energy when power figures are positive (:func:`min_power`): a device's energy
    budget, or the incumbent's energy over the scope. The caps
    shrink the tick (finer time resolution) and the domains; the slack :data:`CAP_SLACK` keeps the
    optimum inside despite rounding.
    """
    p = inst.problem
    terms = {m: w for m, w in p.objective.terms().items() if w}
    lat: float | None = None
    per: float | None = None
    if p.constraints.deadline_s is not None and np.isfinite(p.constraints.deadline_s):
        lat = p.constraints.deadline_s * (1 + CAP_SLACK)
    bounds: list[float] = []
    s = inst.system
    for dev, budget in p.constraints.energy_budget_j.items():
        rate = min_power(inst, s.device_index[dev])
        if rate > 0 and np.isfinite(budget):
            bounds.append(budget / rate)
    if incumbent is not None and np.isfinite(incumbent):
        if terms.get("latency"):
            bounds.append(incumbent / terms["latency"])
        if terms.get("throughput"):
            per = incumbent / terms["throughput"] * (1 + CAP_SLACK)
        rate = sum(min_power(inst, d) for d in range(inst.k) if inst.scope_mask[d])
        if terms.get("energy") and rate > 0:
            bounds.append(incumbent / terms["energy"] / rate)
    if bounds:
        cap = min(bounds) * (1 + CAP_SLACK)
        lat = cap if lat is None else min(lat, cap)
    return lat, per


def min_power(inst: Instance, d: int) -> float:
    """``r`` with ``E[d] >= r * L`` for every solution in parallel mode (0 when none is known).

    ``L <= busy[d] + idle[d]`` with ``busy[d] = compute + sending + receiving``, and each part
    draws at least the smallest of the device's power figures (active, the smallest tx and rx
    power of its channels, idle), so ``E[d] >= r * L`` with ``r`` that smallest figure.
    """
    s = inst.system
    rates = [float(s.power_idle[d])]
    if (inst.placement_mask[:, d] & (inst.time[:, d] > 0)).any():
        rates.append(float(s.power_active[d]))
    if s.has_link[d, :].any():
        rates.append(float(s.tx_power[d, s.has_link[d, :]].min()))
    if s.has_link[:, d].any():
        rates.append(float(s.rx_power[s.has_link[:, d], d].min()))
    return max(0.0, min(rates))


def build_cp_model(
    inst: Instance,
    ticks_max: float | None = None,
    incumbent: float | None = None,
    symmetry: bool = False,
    pipeline_cuts: bool = False,
) -> CpBuild:
    """Build the CP-SAT model of ``inst``.

    Parameters
    ----------
    inst : Instance
    ticks_max : float, optional
        Bound on the resolved time span in ticks (default :func:`formulation.cp.scaling.ticks_max_for`
        of :func:`tick_coefficients`).
    incumbent : float, optional
        The objective of a known feasible solution (e.g. the solution hint), in objective units.
        Solutions worse than it are cut off (:func:`time_caps`), which sharpens the time scale.
    symmetry : bool
        Break the symmetry between interchangeable devices (:func:`add_symmetry_breaking`); hints
        must then be canonical (:func:`formulation.symmetry.canonical_placement`).
    pipeline_cuts : bool
        Under ``constraints.pipeline``, the stage order of interchangeable devices
        (:func:`formulation.cp.pipeline.add_stage_order`), in place of ``symmetry``'s rule; hints
        must then be renamed by :func:`formulation.stage_order.stage_canonical_placement`.

    Raises
    ------
    NegativeWeight
        For a weighted objective with a negative weight.
    """
    if inst.workload is not None:  # never a silently different problem: docs/instance-format.md §9
        raise ValueError(f"instance {inst.name!r} is a version-2 workload; this CP-SAT model is of version 1 only")
    check_weights(inst)
    model = cp_model.CpModel()
    terms = {m: w for m, w in inst.problem.objective.terms().items() if w}
    parallel = inst.problem.execution == "parallel"
    idle_devs = _idle_devices(inst)
    needs_schedule = parallel and (
        "latency" in terms or inst.problem.constraints.deadline_s is not None or bool(idle_devs)
    )
    lat_cap_s, per_cap_s = time_caps(inst, incumbent)
    # the makespan cap holds where the schedule is built (L <= cap): options beyond it are left out
    capped = needs_schedule and inst.problem.scenarios is None
    masks = build_masks(inst, lat_cap_s if capped else None)
    spans = ([lat_cap_s] if needs_schedule else []) + ([per_cap_s] if "throughput" in terms else [])
    span_s = None if not spans or any(x is None for x in spans) else max(x for x in spans if x is not None)
    tables = build_time_tables(inst, masks, ticks_max or ticks_max_for(tick_coefficients(inst)), span_s)
    pv = add_placement(model, inst, masks)
    add_private_static(model, inst)
    add_max_devices(model, inst, pv)
    add_contiguity(model, inst, pv, masks)
    stage = pipeline_cuts and inst.problem.constraints.pipeline
    add_pipeline(model, inst, pv, cuts=stage)
    bytes_unit = add_memory(model, inst, pv)
    if symmetry and not stage:
        add_symmetry_breaking(model, inst, pv)
    if inst.problem.scenarios is not None:  # network states (docs/instance-format.md §10): a copy per state
        from formulation.cp.robust import build_states

        robust, state_tables = build_states(model, inst, masks, pv, ticks_max)
        return CpBuild(model, inst, masks, state_tables, pv, robust, bytes_unit=bytes_unit)

    schedule = period = None
    idle: list[Idle] = []
    seq_latency: FloatForm | None = None
    metrics: dict[str, FloatForm] = {}
    if not parallel:
        seq_latency = sequential_latency_form(inst, pv, tables)
        metrics["latency"] = seq_latency
    elif needs_schedule:
        lat_cap = tables.cap(lat_cap_s)
        schedule = add_parallel_schedule(model, inst, pv, masks, tables, lat_cap)
        metrics["latency"] = ticks_form(schedule.latency, tables, tables.err_latency_par, lat_cap)
        idle = [add_idle(model, inst, pv, tables, d, schedule.latency, lat_cap) for d in idle_devs]
    if "throughput" in terms:
        per_cap = tables.cap(per_cap_s)
        period = add_period(model, inst, pv, tables, per_cap)
        metrics["throughput"] = ticks_form(period.var, tables, tables.err_period, per_cap)
    idle_of = {i.device: i for i in idle}
    energy = {d: energy_form(model, inst, pv, tables, d, idle_of.get(d), seq_latency) for d in _energy_devices(inst)}
    if "energy" in terms:
        total = FloatForm()
        for d in range(inst.k):
            if inst.scope_mask[d]:
                total = total.plus(energy[d])
        metrics["energy"] = total
    if "cost" in terms:
        metrics["cost"] = cost_form(inst, pv)
    objective = add_objective(model, objective_form(inst, metrics))
    if inst.problem.constraints.deadline_s is not None:
        add_deadline(model, inst, metrics["latency"])
    add_energy_budgets(model, inst, energy)
    return CpBuild(model, inst, masks, tables, pv, objective, schedule, period, idle, bytes_unit)
