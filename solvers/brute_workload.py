"""Brute force on version-2 workloads (docs/instance-format.md §9): every placement, and for the
``schedule`` contention model every joint schedule, of a tiny instance.

Each placement allowed by the requests' ``allowed``/``private`` is evaluated by the version-2
evaluator (:mod:`formulation.evaluator.workload_eval`). Under ``none`` and ``share`` a placement's
latencies are a function of the placement alone. Under ``schedule`` the objective of a placement
is that of its best joint schedule: each placement's default list schedule gives an upper bound and
the conflict-free completions a lower bound (every objective is non-decreasing in the completions),
so placements are visited in increasing order of the objective at that bound and scheduled exactly
(:func:`formulation.evaluator.jobshop.optimal_schedule`) until the bound cannot beat the incumbent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from formulation.evaluator.jobshop import asap_completions, optimal_schedule
from formulation.evaluator.workload_eval import WorkloadMetrics, request_latencies, workload_metrics
from formulation.model import FloatArray, Instance, IntArray
from solvers.base import RawSolution
from solvers.enumeration import enumeration_result
from solvers.options import SolverOptions

CHUNK = 1 << 12


def solve_workload(
    inst: Instance, options: SolverOptions, total: int, enumerate_placements: Callable[[Instance, int, int], IntArray]
) -> RawSolution:
    """Enumerate the ``total`` placements of a version-2 instance (``enumerate_placements(inst, a, b)``)."""
    assert inst.workload is not None
    t0 = time.perf_counter()
    deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
    sched_mode = inst.workload.contention == "schedule"
    rel = np.array([r.release_s for r in inst.workload.requests])
    best_val, best_P, best_sched = math.inf, None, None
    candidates: list[tuple[float, int, IntArray, WorkloadMetrics]] = []
    timed_out = False
    for start in range(0, total, CHUNK):
        if time.perf_counter() > deadline:
            timed_out = True
            break
        for P in enumerate_placements(inst, start, min(total, start + CHUNK)):
            wm = workload_metrics(inst, P)
            if any(wm.static.values()):
                continue
            lat = request_latencies(wm)
            val = wm.value(lat.latency)
            if val < best_val:
                best_val, best_P = val, P.copy()
                best_sched = _keys(wm, lat.starts) if sched_mode else None
            if sched_mode:
                lb = wm.value(asap_completions(wm.tasks) - rel)
                if lb < val * (1 - 1e-12):
                    candidates.append((lb, len(candidates), P.copy(), wm))
    if sched_mode and not timed_out:
        candidates.sort(key=lambda c: (c[0], c[1]))
        for lb, _, P, wm in candidates:
            if lb >= best_val * (1 - 1e-12) - 1e-15:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                break
            found = optimal_schedule(wm.tasks, _shifted(wm, rel), upper=best_val)
            if found is not None and found[0] < best_val:
                best_val, best_P, best_sched = found[0], P, _keys(wm, found[1])
    return enumeration_result(
        best_P, best_val, total=total, timed_out=timed_out, solve_time_s=time.perf_counter() - t0,
        schedule=best_sched,
    )


def _shifted(wm: WorkloadMetrics, rel: FloatArray) -> Callable[[FloatArray], float]:
    """The search's value of completions ``C``: the objective at latencies ``C - release``."""
    return lambda C: wm.value(C - rel)


def _keys(wm: WorkloadMetrics, starts: np.ndarray | None) -> dict[str, float] | None:
    if starts is None:
        return None
    return {key: float(starts[i]) for i, key in enumerate(wm.tasks.keys)}
