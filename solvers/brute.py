"""Exact enumeration of placements (and, for parallel latency, of schedules): the reference solver.

Every placement allowed by ``allowed``/``private`` is evaluated by the vectorised evaluator
(:func:`formulation.evaluator.batch_metrics`) in chunks. For parallel latency, each placement's
list schedule gives an upper bound and :func:`formulation.evaluator.makespan_lower_bound_many` a
lower bound on its best makespan; since every objective is non-decreasing in the makespan, the
placements are then visited in increasing order of the objective at that lower bound and the exact
minimum makespan of each (:func:`formulation.evaluator.optimal_makespan`) is computed until the
lower bound of the next one cannot beat the incumbent.
"""

from __future__ import annotations

import math
import time

import numpy as np

from formulation.evaluator import (
    batch_metrics,
    list_schedule_many,
    makespan_lower_bound_many,
    optimal_makespan,
    transfer_tables,
)
from formulation.model import DEVICE_FEATURES, Instance, IntArray
from solvers.base import RawSolution, Solver
from solvers.enumeration import enumeration_result
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem

#: Largest number of placements enumerated (sequential latency and every other objective).
MAX_PLACEMENTS = 5_000_000
#: Largest number of placements in parallel mode (each may need a schedule search).
MAX_PLACEMENTS_PARALLEL = 200_000
#: Largest number of layers in parallel mode (the schedule search is exponential in it).
MAX_LAYERS_PARALLEL = 14
CHUNK = 1 << 14


def count_placements(inst: Instance) -> int:
    """Number of placements allowed by ``allowed`` and ``private``."""
    return math.prod(int(x) for x in inst.placement_mask.sum(axis=1))


def enumerate_placements(inst: Instance, start: int, stop: int) -> IntArray:
    """Placements ``start .. stop-1`` in mixed-radix order over each layer's allowed devices."""
    choices = [np.flatnonzero(row) for row in inst.placement_mask]
    idx = np.arange(start, stop, dtype=np.int64)
    P = np.empty((idx.size, inst.n), dtype=np.int64)
    for v in range(inst.n - 1, -1, -1):
        r = len(choices[v])
        P[:, v] = choices[v][idx % r]
        idx //= r
    return P


class BruteForce(Solver):
    """Exhaustive enumeration; exact for every objective, constraint and latency mode (tiny cases)."""

    name = "brute"
    exact = True
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES),
        workload=frozenset({"none", "schedule", "share", "routing", "generation"}),
        scenarios=True,
        choices=True,
    )
    supported_options = frozenset({"time_limit_s", "seed"})
    description = "exact enumeration of placements (and schedules in parallel mode); tiny instances"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        count = count_placements(inst)
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11
            from formulation.choices import count_configurations

            count *= count_configurations(inst)
        if inst.problem.execution == "parallel":
            if count > MAX_PLACEMENTS_PARALLEL or inst.n > MAX_LAYERS_PARALLEL:
                raise UnsupportedProblem(
                    f"solver 'brute' refuses {inst.name!r}: {count} placements of {inst.n} layers in parallel "
                    f"mode exceed its limits ({MAX_PLACEMENTS_PARALLEL} placements, {MAX_LAYERS_PARALLEL} "
                    "layers); use an exact solver such as the MILP or CP-SAT"
                )
        elif count > MAX_PLACEMENTS:
            raise UnsupportedProblem(
                f"solver 'brute' refuses {inst.name!r}: {count} placements exceed its limit of "
                f"{MAX_PLACEMENTS}; use an exact solver such as the MILP"
            )

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.workload is not None and inst.problem.scenarios is not None:  # version 2 with states (§10)
            from solvers.brute_workload_states import solve_workload_states

            return solve_workload_states(inst, options, count_placements(inst), enumerate_placements, CHUNK)
        if inst.workload is not None:  # version 2: docs/instance-format.md §9
            from solvers.brute_workload import solve_workload

            return solve_workload(inst, options, count_placements(inst), enumerate_placements)
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11
            from solvers.brute_choices import solve_choices

            return solve_choices(inst, options)
        if inst.problem.scenarios is not None:  # network states: docs/instance-format.md §10
            from solvers.brute_scenarios import solve_states

            return solve_states(inst, options, count_placements(inst), enumerate_placements, CHUNK)
        t0 = time.perf_counter()
        deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
        total = count_placements(inst)
        parallel = inst.problem.execution == "parallel"
        best_val, best_P = math.inf, None
        candidates: list[tuple[float, float, IntArray]] = []  # (objective at LB, LB, placement)
        timed_out = False
        for start in range(0, total, CHUNK):
            if time.perf_counter() > deadline:
                timed_out = True
                break
            P = enumerate_placements(inst, start, min(total, start + CHUNK))
            bm = batch_metrics(inst, P, parallel=parallel)
            obj = bm.objective()
            feas = bm.feasible()
            if feas.any():
                # compare the masked values: when every feasible placement's objective is inf, the
                # argmin is an arbitrary (possibly infeasible) row whose own objective may be finite
                masked = np.where(feas, obj, np.inf)
                i = int(np.argmin(masked))
                if masked[i] < best_val:
                    best_val, best_P = float(masked[i]), P[i].copy()
            if parallel:
                comp = inst.time[np.arange(inst.n)[None, :], P]
                lb = makespan_lower_bound_many(inst, P, comp, transfer_tables(inst, P))
                obj_lb, feas_lb = bm.objective(lb), bm.feasible(lb)
                keep = np.flatnonzero(feas_lb & (bm.latency_parallel > lb * (1 + 1e-12)))
                candidates += [(float(obj_lb[r]), float(lb[r]), P[r].copy()) for r in keep]
        schedule = None
        if parallel and not timed_out:
            best_val, best_P, schedule, timed_out = self._improve_schedules(
                inst, candidates, best_val, best_P, deadline
            )
        elif parallel and best_P is not None:
            schedule = _list_schedule(inst, best_P)
        return enumeration_result(
            best_P, best_val, total=total, timed_out=timed_out, solve_time_s=time.perf_counter() - t0,
            schedule=schedule,
        )

    def _improve_schedules(
        self,
        inst: Instance,
        candidates: list[tuple[float, float, IntArray]],
        best_val: float,
        best_P: IntArray | None,
        deadline: float,
    ) -> tuple[float, IntArray | None, dict[str, float] | None, bool]:
        """Visit placements whose lower-bound objective beats the incumbent; schedule each optimally."""
        best_sched = _list_schedule(inst, best_P) if best_P is not None else None
        candidates.sort(key=lambda c: c[0])
        for obj_lb, _lb, P in candidates:
            if obj_lb >= best_val * (1 - 1e-12) - 1e-15:
                break
            if time.perf_counter() > deadline:
                return best_val, best_P, best_sched, True
            found = optimal_makespan(inst, P)
            if found is None:
                continue
            L, starts = found
            bm = batch_metrics(inst, P[None, :], parallel=False)
            Lv = np.array([L])
            if not bm.feasible(Lv)[0]:
                continue
            val = float(bm.objective(Lv)[0])
            if val < best_val:
                best_val, best_P = val, P
                best_sched = {v: float(starts[i]) for i, v in enumerate(inst.graph.layer_ids)}
        return best_val, best_P, best_sched, False


def _list_schedule(inst: Instance, P: IntArray) -> dict[str, float]:
    Pm = P[None, :]
    comp = inst.time[np.arange(inst.n)[None, :], Pm]
    starts = list_schedule_many(inst, Pm, comp, transfer_tables(inst, Pm))[0][0]
    return {v: float(starts[i]) for i, v in enumerate(inst.graph.layer_ids)}
