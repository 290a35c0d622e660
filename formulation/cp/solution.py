"""Reading a CP-SAT solution back, and turning a placement into a full solution hint.

Reading back (:func:`read_solution`):

* the placement comes from ``x``;
* in parallel mode the solver's *device orders* are taken from the interval starts, and the
  earliest start of every layer under those orders is recomputed twice: in float seconds with the
  cost model's own transfer times (the schedule handed to the evaluator, which checks precedence
  to ~1e-9 and would reject tick-rounded starts), and in integer ticks (the *compacted* makespan);
* the model's objective is re-read with ``L``, ``P`` and the idle times set to the tight values of
  that solution (a solution found before the time limit may carry slack in them), so the value
  compared with the evaluator is the model's own value of the returned placement and schedule,
  within the worst-case scaling error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from ortools.sat.python import cp_model

from formulation.costs import earliest_start
from formulation.cp.build import CpBuild
from formulation.cp.params import apply_safe_parameters
from formulation.evaluator import list_schedule_many, transfer_tables
from formulation.model import Instance, IntArray

Value = Callable[[cp_model.LinearExpr], int]


def earliest_starts(
    inst: Instance,
    P: IntArray,
    order: Sequence[int],
    comp: Sequence[float],
    delay: Callable[[int, int], float],
) -> tuple[list[float], float]:
    """Semi-active schedule of fixed device orders: each layer at its earliest feasible start.

    Parameters
    ----------
    order : sequence of int
        All layers, in an order consistent with precedence and with each device's order.
    comp : sequence
        Duration of every layer on its device.
    delay : callable
        ``delay(t, b)``: time from tensor t's production until it is on device b (0 when produced
        on b).

    Returns
    -------
    starts, makespan
        Start of every layer and ``L`` (latest output finish, plus its transfer to the sink).
    """
    g, s = inst.graph, inst.system
    free: list[float] = [0] * s.k
    finish: list[float] = [0] * g.n
    starts: list[float] = [0] * g.n
    for v in order:
        d = int(P[v])
        st = earliest_start(free[d], g.layer_inputs[v], finish, g.n, partial(_swap, delay, d))
        starts[v] = st
        finish[v] = st + comp[v]
        free[d] = finish[v]
    sink = s.sink_index
    L: float = 0
    for o in g.outputs:
        L = max(L, finish[o] + (delay(o, sink) if sink is not None else 0))
    return starts, L


def float_delay(inst: Instance, P: IntArray) -> Callable[[int, int], float]:
    """Transfer times in seconds, computed exactly as the evaluator does."""
    g, s = inst.graph, inst.system

    def delay(t: int, b: int) -> float:
        a = int(P[t]) if t < g.n else s.source_index
        return s.transfer_time(a, b, float(g.tensor_bytes[t]))

    return delay


def tick_delay(build: CpBuild, P: IntArray) -> Callable[[int, int], int]:
    """Transfer times in ticks, as in the model."""
    g, s, dur = build.inst.graph, build.inst.system, build.tables.dur

    def delay(t: int, b: int) -> int:
        a = int(P[t]) if t < g.n else s.source_index
        return 0 if a == b else int(dur[t, a, b])

    return delay


def tick_schedule(build: CpBuild, P: IntArray, order: Sequence[int]) -> tuple[list[int], int]:
    """:func:`earliest_starts` in ticks (durations and delays of the model)."""
    comp = [int(build.tables.comp[v, P[v]]) for v in range(build.inst.n)]
    starts, L = earliest_starts(build.inst, P, order, comp, tick_delay(build, P))
    return [int(x) for x in starts], int(L)


@dataclass(frozen=True)
class CpSolution:
    """A solution read back from the model.

    Attributes
    ----------
    placement : (n,) int
    schedule : dict or None
        ``{layer: start seconds}`` (parallel mode with a schedule model), recomputed in float.
    objective : float
        The model's objective of this placement and schedule, in objective units (within the
        scaling error of the evaluator's value).
    objective_int : int
        The same in integer units.
    """

    placement: IntArray
    schedule: dict[str, float] | None
    objective: float
    objective_int: int


def read_placement(build: CpBuild, value: Value) -> IntArray:
    """Device index of every layer from the ``x`` literals."""
    P = np.full(build.inst.n, -1, dtype=np.int64)
    for (v, d), lit in build.placement.x.items():
        if value(lit):
            P[v] = d
    return P


def read_solution(build: CpBuild, value: Value) -> CpSolution:
    """Placement, float schedule and compacted model objective of a solution (see module doc)."""
    inst = build.inst
    P = read_placement(build, value)
    tight: dict[int, int] = {}
    schedule = None
    if build.schedule is not None:
        st = [int(value(S)) for S in build.schedule.starts]
        order = sorted(range(inst.n), key=lambda v: (st[v], st[v] + int(build.tables.comp[v, P[v]]), v))
        _, L_ticks = tick_schedule(build, P, order)
        comp = [float(inst.time[v, P[v]]) for v in range(inst.n)]
        starts_s, _ = earliest_starts(inst, P, order, comp, float_delay(inst, P))
        schedule = {lay: float(starts_s[v]) for v, lay in enumerate(inst.graph.layer_ids)}
        tight[build.schedule.latency.index] = L_ticks
    if build.period is not None:
        tight[build.period.var.index] = max(int(value(e)) for e in build.period.parts)
    if build.schedule is not None:
        L_val = tight[build.schedule.latency.index]
        for idle in build.idle:
            tight[idle.var.index] = max(0, L_val - int(value(idle.busy)))
    obj_int = build.objective.integer_value(lambda var: tight.get(var.index, int(value(var))))
    return CpSolution(P, schedule, build.objective.to_float(obj_int), obj_int)


def list_schedule_order(inst: Instance, P: IntArray) -> list[int]:
    """Layer order of the evaluator's default list schedule of placement P (by start, then index)."""
    Pm = P[None, :]
    comp = inst.time[np.arange(inst.n)[None, :], Pm]
    starts = list_schedule_many(inst, Pm, comp, transfer_tables(inst, Pm))[0][0]
    return sorted(range(inst.n), key=lambda v: (float(starts[v]), float(starts[v] + comp[0, v]), v))


def complete_hint(
    build: CpBuild, P: IntArray, order: Sequence[int] | None = None, time_limit_s: float = 5.0
) -> dict[int, int] | None:
    """A full assignment of the model extending placement P, or None when P is infeasible there.

    A copy of the model is solved with ``x`` (and, in parallel mode, every start, from the device
    orders of ``order`` -- default: the evaluator's list schedule -- recomputed in ticks) fixed;
    only the auxiliary variables remain, so
    this is propagation plus a trivial search. A full hint matters for large scheduling models,
    whose presolve otherwise eats the time budget (at about 1,000 layers, all of it).
    """
    clone = build.model.clone()
    for (v, d), lit in build.placement.x.items():
        clone.add(clone.get_bool_var_from_proto_index(lit.index) == int(P[v] == d))
    if build.schedule is not None:
        starts, _ = tick_schedule(build, P, order if order is not None else list_schedule_order(build.inst, P))
        for S, st in zip(build.schedule.starts, starts, strict=True):
            clone.add(clone.get_int_var_from_proto_index(S.index) == st)
    solver = cp_model.CpSolver()
    apply_safe_parameters(solver)
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = time_limit_s
    status = solver.solve(clone)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    n_vars = len(clone.proto.variables)
    return {i: int(solver.value(clone.get_int_var_from_proto_index(i))) for i in range(n_vars)}


def apply_hint(build: CpBuild, values: dict[int, int]) -> None:
    """Replace the model's hint by ``values`` (variable index -> value)."""
    model = build.model
    model.clear_hints()
    for i, val in values.items():
        model.add_hint(model.get_int_var_from_proto_index(i), val)


def _swap(delay: Callable[[int, int], float], d: int, t: int) -> float:
    """``delay(t, d)`` with ``d`` bound first (for :func:`functools.partial`)."""
    return delay(t, d)
