"""``local-search``: improve a placement by single-layer and segment moves under any objective.

Source: steepest-descent local search with random restarts (Aarts and Lenstra, eds., "Local
Search in Combinatorial Optimization", Wiley 1997, ch. 1). Segment moves (a block of consecutive
layers moved together) cross the plateaus of single moves: moving one layer out of a block adds
two transfers, moving the block adds none inside it.

Cost model: none of its own. Every candidate is judged by the vectorised evaluator
(:func:`formulation.evaluator.batch_metrics`), so every objective, latency mode (parallel latency
with the evaluator's list schedule) and constraint of the format is handled. Candidates compare by
(number of violated constraint kinds, objective), so a search may start infeasible.

Algorithm: start from ``warm_start`` if given, else from the best single-device placement. Each
step evaluates, in one batch, every single-layer move (a layer to another allowed device) and
``segment_samples`` random segment moves (layers ``i .. j-1`` of the topological order, up to
``max_segment`` long, to one device), and takes the best if it improves. At a local optimum the
search restarts from the best placement perturbed by a few random segment moves, ``restarts``
times. Each step costs ``O((n k + S) (n + e))``. Deterministic for a given ``seed`` (default 0).
A heuristic: status feasible, bound from :func:`solvers.bounds.cheap_lower_bound` (version 2:
:func:`solvers.heft_workload.workload_lower_bound`, valid for every contention model and aggregate).

Raw options: ``max_steps`` (default 200), ``restarts`` (default 3), ``segment_samples`` (default
``4 n``), ``max_segment`` (default ``n``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from formulation.evaluator import batch_metrics
from formulation.model import DEVICE_FEATURES, Instance, IntArray
from solvers.additive import static_infeasibility
from solvers.base import RawSolution, Solver
from solvers.bounds import cheap_lower_bound
from solvers.heft_workload import workload_lower_bound
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

RAW_KEYS = frozenset({"max_steps", "restarts", "segment_samples", "max_segment"})
#: Placements times layers evaluated per batch (bounds the evaluator's memory).
BATCH_CELLS = 1 << 21


def score(inst: Instance, P: IntArray) -> tuple[np.ndarray, np.ndarray]:
    """(violated constraint kinds, objective) of each placement row of ``P``."""
    if inst.workload is not None:  # version 2 (docs/instance-format.md §9): the evaluator's default schedule
        from formulation.evaluator.workload_eval import request_latencies, workload_metrics

        kinds, values = [], []
        for row in P:
            wm = workload_metrics(inst, row)
            L = request_latencies(wm).latency
            kinds.append(len(wm.violations(L)))
            values.append(wm.objective(L))
        return np.array(kinds, dtype=np.int64), np.array(values)
    parallel = inst.problem.execution == "parallel"
    viol, obj = [], []
    step = max(1, BATCH_CELLS // max(1, inst.n))
    for a in range(0, P.shape[0], step):
        bm = batch_metrics(inst, P[a : a + step], parallel=parallel)
        viol.append(sum(v.astype(np.int64) for v in bm.violations().values()))
        o = bm.objective()
        obj.append(np.where(np.isnan(o), math.inf, o))
    return np.concatenate(viol), np.concatenate(obj)


def _best(viol: np.ndarray, obj: np.ndarray) -> int:
    return int(np.lexsort((obj, viol))[0])


class LocalSearch(Solver):
    """Steepest-descent local search with single-layer and segment moves (any objective)."""

    name = "local-search"
    exact = False
    # Candidates are judged by the evaluator: every constraint and device feature is handled.
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES), workload=frozenset({"none", "schedule", "share", "routing", "generation"})
    )
    supported_options = frozenset({"time_limit_s", "seed", "warm_start", "raw"})
    description = "local search by single-layer and segment moves, any objective (heuristic)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        unknown = set(options.raw) - RAW_KEYS
        if unknown:
            raise UnsupportedProblem(
                f"solver 'local-search' has no raw option(s) {sorted(unknown)}; it takes {sorted(RAW_KEYS)}"
            )
        if options.warm_start is not None:
            try:
                inst.placement_indices(options.warm_start)
            except ValueError as exc:
                raise UnsupportedProblem(f"solver 'local-search': bad warm_start: {exc}") from exc

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        if static_infeasibility(inst):
            return RawSolution(Termination.COMPLETED, message=static_infeasibility(inst) or "")
        deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
        rng = np.random.default_rng(0 if options.seed is None else options.seed)
        raw: dict[str, Any] = dict(options.raw)
        n, k = inst.n, inst.k
        max_steps = int(raw.get("max_steps", 200))
        restarts = int(raw.get("restarts", 3))
        samples = int(raw.get("segment_samples", 4 * n))
        max_seg = max(1, int(raw.get("max_segment", n)))
        starts = [np.full(n, d, dtype=np.int64) for d in range(k)]
        if options.warm_start is not None:
            starts.append(inst.placement_indices(options.warm_start))
        S = np.array(starts)
        viol, obj = score(inst, S)
        b = _best(viol, obj)
        best_P, best_key = S[b].copy(), (int(viol[b]), float(obj[b]))
        cur_P, cur_key = best_P.copy(), best_key
        steps = 0
        timed_out = False
        for round_ in range(restarts + 1):
            while steps < max_steps:
                if time.perf_counter() > deadline:
                    timed_out = True
                    break
                steps += 1
                N = self._neighbours(inst, cur_P, rng, samples, max_seg)
                if not N.shape[0]:
                    break
                viol, obj = score(inst, N)
                b = _best(viol, obj)
                key = (int(viol[b]), float(obj[b]))
                if key >= cur_key:
                    break
                cur_P, cur_key = N[b].copy(), key
                if cur_key < best_key:
                    best_P, best_key = cur_P.copy(), cur_key
            if timed_out or steps >= max_steps or round_ == restarts:
                break
            cur_P = self._kick(inst, best_P, rng, max_seg)
            v_kick, o_kick = score(inst, cur_P[None])
            cur_key = (int(v_kick[0]), float(o_kick[0]))
        solve = time.perf_counter() - t0
        extra = {"steps": steps, "seed": 0 if options.seed is None else options.seed}
        if best_key[0] > 0:
            return RawSolution(
                Termination.TIME_LIMIT if timed_out else Termination.COMPLETED,
                solve_time_s=solve,
                extra=extra,
                message="no feasible placement found",
            )
        return RawSolution(
            Termination.TIME_LIMIT if timed_out else Termination.COMPLETED,
            placement=best_P,
            solver_objective=best_key[1],
            bound=cheap_lower_bound(inst) if inst.workload is None else workload_lower_bound(inst),
            solve_time_s=solve,
            extra=extra,
        )

    @staticmethod
    def _neighbours(inst: Instance, P: IntArray, rng: np.random.Generator, samples: int, max_seg: int) -> IntArray:
        """Every allowed single-layer move and ``samples`` random segment moves of ``P``."""
        n, k = inst.n, inst.k
        mask = inst.placement_mask
        v, d = np.nonzero(mask & (np.arange(k)[None, :] != P[:, None]))
        single = np.repeat(P[None, :], v.size, axis=0)
        single[np.arange(v.size), v] = d
        if n < 2 or k < 2 or samples <= 0 or max_seg < 2:
            return single
        i = rng.integers(0, n - 1, samples)
        length = rng.integers(2, min(max_seg, n) + 1, samples)
        j = np.minimum(i + length, n)
        dev = rng.integers(0, k, samples)
        cols = np.arange(n)[None, :]
        inside = (cols >= i[:, None]) & (cols < j[:, None])
        seg = np.where(inside, dev[:, None], P[None, :])
        allowed = mask[cols, seg].all(axis=1) & (seg != P[None, :]).any(axis=1)
        return np.unique(np.concatenate([single, seg[allowed]]), axis=0)

    @staticmethod
    def _kick(inst: Instance, P: IntArray, rng: np.random.Generator, max_seg: int) -> IntArray:
        """``P`` after three random allowed segment moves (the restart perturbation)."""
        Q = P.copy()
        n, k = inst.n, inst.k
        for _ in range(3):
            i = int(rng.integers(0, n))
            j = min(n, i + int(rng.integers(1, min(max_seg, n) + 1)))
            d = int(rng.integers(0, k))
            if inst.placement_mask[i:j, d].all():
                Q[i:j] = d
        return Q
