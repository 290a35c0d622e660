"""Brute force on version-2 workloads with network states (docs/instance-format.md §9, §10): the
reference of the robust engines on version 2.

Every placement allowed by ``allowed``/``private`` is judged in every state (an ordinary version-2
instance, :func:`formulation.scenarios.state_instances`) by the version-2 evaluator's functions. Per
state ``s`` two values of the placement matter:

* ``f_ok[s]``: the least objective in ``s`` with every request deadline and energy budget met;
* ``f_any[s]``: the least objective in ``s`` with the energy budgets met, deadlines ignored (only
  under ``deadline_probability``, where a state may miss its deadlines).

Under ``none`` and ``share`` the latencies are a function of the placement, so each is the
objective or infinity. Under ``schedule`` the schedule is chosen per state (the placement is shared,
each state's tasks are ordered for that state), and each value is the optimum of the exact task-order
search (:func:`formulation.evaluator.jobshop.optimal_schedule`). The robust value of the placement
is then ``min over sets M of states with sum_{s in M} p_s >= q`` of the measure of ``f_ok`` on ``M``
and ``f_any`` elsewhere (every measure is non-decreasing in every ``f_s``; without
``deadline_probability`` ``M`` is every state), by enumerating the states where meeting the
deadlines costs something. Placements are visited in increasing order of a lower bound (the measure
of each state's conflict-free completions), and the search stops when the bound cannot beat the
incumbent.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from formulation.evaluator.jobshop import asap_completions, completions, list_schedule, optimal_schedule
from formulation.evaluator.workload_eval import WorkloadMetrics, request_latencies, workload_metrics
from formulation.model import FloatArray, Instance, IntArray
from formulation.scenarios import PROBABILITY_TOL, ScenarioSet, robust_value, state_instances, state_key
from solvers.base import RawSolution
from solvers.enumeration import enumeration_result
from solvers.options import SolverOptions

#: A state's value and the schedule that gives it (``None`` outside ``schedule``).
Valued = tuple[float, FloatArray | None]


def _budget_value(wm: WorkloadMetrics, L: FloatArray) -> float:
    """The objective at ``L`` with the energy budgets met (deadlines ignored), else infinity."""
    return math.inf if "energy_budget" in wm.violations(L) else wm.objective(L)


def _state_values(wm: WorkloadMetrics, chance: bool) -> tuple[Valued, Valued]:
    """``(f_ok, f_any)`` of one placement in one state, each with its schedule (module docstring)."""
    if wm.wl.contention != "schedule":
        L = request_latencies(wm).latency
        any_v = _budget_value(wm, L)
        ok_v = math.inf if wm.violations(L) else any_v
        return (ok_v, None), (any_v, None)
    rel = np.array([r.release_s for r in wm.wl.requests])
    tasks = wm.tasks
    default = list_schedule(tasks)

    def best(value: Callable[[FloatArray], float]) -> Valued:
        upper = value(completions(tasks, default))
        found = optimal_schedule(tasks, value, upper=upper)
        return (upper, default) if found is None else found

    ok = best(lambda C: wm.value(C - rel))
    return ok, (best(lambda C: _budget_value(wm, C - rel)) if chance else ok)


def combine(f_ok: Sequence[float], f_any: Sequence[float], sc: ScenarioSet) -> tuple[float, tuple[bool, ...]]:
    """The robust value over the choice of the states that meet their deadlines, and that choice.

    States where meeting costs nothing (``f_ok == f_any``) meet; those that cannot (``f_ok``
    infinite) do not; every subset of the others is tried. Infinite when no choice is feasible.
    """
    S = len(f_ok)
    if sc.deadline_probability is None:
        return float(robust_value(np.array([f_ok]), sc)[0]), (True,) * S
    p = sc.probabilities
    free = [f_ok[s] == f_any[s] for s in range(S)]
    choice = [s for s in range(S) if not free[s] and math.isfinite(f_ok[s])]
    best_val, best_met = math.inf, (False,) * S
    for r in range(len(choice) + 1):
        for chosen in itertools.combinations(choice, r):
            met = tuple(free[s] or s in chosen for s in range(S))
            if math.fsum(p[s] for s in range(S) if met[s]) < sc.deadline_probability - PROBABILITY_TOL:
                continue
            f = np.array([[f_ok[s] if met[s] else f_any[s] for s in range(S)]])
            val = float(robust_value(f, sc)[0])
            if val < best_val:
                best_val, best_met = val, met
    return best_val, best_met


def solve_workload_states(
    inst: Instance, options: SolverOptions, total: int, enumerate_placements: Callable[[Instance, int, int], IntArray],
    chunk: int,
) -> RawSolution:
    """The placement of least robust objective over the states (with its per-state schedules)."""
    sc = inst.problem.scenarios
    assert sc is not None and inst.workload is not None
    t0 = time.perf_counter()
    deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
    states = state_instances(inst)
    chance = sc.deadline_probability is not None
    sched_mode = inst.workload.contention == "schedule"
    rel = np.array([r.release_s for r in inst.workload.requests])
    candidates: list[tuple[float, int, IntArray, list[WorkloadMetrics]]] = []
    best_val, best_P, best_sched = math.inf, None, None
    timed_out = False
    for start in range(0, total, chunk):
        if time.perf_counter() > deadline:
            timed_out = True
            break
        for P in enumerate_placements(inst, start, min(total, start + chunk)):
            wms = [workload_metrics(st, P) for st in states]
            if any(any(wm.static.values()) for wm in wms):
                continue
            if not sched_mode:  # latencies follow from the placement: judge it now
                vals = [_state_values(wm, chance) for wm in wms]
                val = combine([v[0][0] for v in vals], [v[1][0] for v in vals], sc)[0]
                if val < best_val:
                    best_val, best_P = val, P.copy()
                continue
            # conflict-free completions bound every state's objective from below, deadlines or not
            lbs = [wm.objective(asap_completions(wm.tasks) - rel) for wm in wms]
            candidates.append((float(robust_value(np.array([lbs]), sc)[0]), len(candidates), P.copy(), wms))
    candidates.sort(key=lambda c: (c[0], c[1]))
    for lb, _, P, wms in candidates:
        if timed_out or lb >= best_val * (1 - 1e-12) - 1e-15:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            break
        vals = [_state_values(wm, chance) for wm in wms]
        val, met = combine([v[0][0] for v in vals], [v[1][0] for v in vals], sc)
        if val < best_val:
            best_val, best_P, best_sched = val, P, _schedule(sc, wms, vals, met)
    return enumeration_result(
        best_P, best_val, total=total, timed_out=timed_out, solve_time_s=time.perf_counter() - t0,
        what=f"over {len(states)} states", schedule=best_sched, extra={"states": len(states)},
    )


def _schedule(
    sc: ScenarioSet, wms: list[WorkloadMetrics], vals: list[tuple[Valued, Valued]], met: tuple[bool, ...]
) -> dict[str, float]:
    """Every state's chosen schedule under its ``[STATE]`` keys."""
    out: dict[str, float] = {}
    for st, wm, (ok, anyv), m in zip(sc.states, wms, vals, met, strict=True):
        starts = (ok if m else anyv)[1]
        assert starts is not None
        out.update({state_key(st.name, key): float(starts[i]) for i, key in enumerate(wm.tasks.keys)})
    return out
