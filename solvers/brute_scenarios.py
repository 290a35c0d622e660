"""Exhaustive enumeration over network states (docs/instance-format.md §10): the reference of the
robust engines.

Every placement allowed by ``allowed``/``private`` is judged in every state by the vectorised cost
model and aggregated by :func:`formulation.scenarios.robust_batch` (the functions the evaluator
uses), in chunks; the best feasible robust objective wins.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from formulation.model import Instance, IntArray
from formulation.scenarios import robust_batch, state_instances
from solvers.base import RawSolution
from solvers.enumeration import enumeration_result
from solvers.options import SolverOptions


def solve_states(
    inst: Instance, options: SolverOptions, total: int, enumerate_placements: Callable[[Instance, int, int], IntArray],
    chunk: int,
) -> RawSolution:
    """The placement of least robust objective among the feasible ones (or infeasible)."""
    t0 = time.perf_counter()
    deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
    states = state_instances(inst)
    best_val, best_P = math.inf, None
    timed_out = False
    for start in range(0, total, chunk):
        if time.perf_counter() > deadline:
            timed_out = True
            break
        P = enumerate_placements(inst, start, min(total, start + chunk))
        rb = robust_batch(inst, P, states)
        key = np.where(rb.feasible, rb.objective, np.inf)
        i = int(np.argmin(key))
        if key[i] < best_val:
            best_val, best_P = float(key[i]), P[i].copy()
    return enumeration_result(
        best_P, best_val, total=total, timed_out=timed_out, solve_time_s=time.perf_counter() - t0,
        what=f"over {len(states)} states", extra={"states": len(states)},
    )
