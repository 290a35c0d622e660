"""``scan``: every single-cut placement of a chain on two devices, judged by the evaluator.

Source: Neurosurgeon (Kang, Hauswald, Gao, Rovinski, Mudge, Mars and Tang, "Neurosurgeon:
Collaborative Intelligence Between the Cloud and Mobile Edge", ASPLOS 2017), which predicts the
cost of each of the ``n + 1`` partition points of a chain and keeps the best.

Candidates: with devices ``a`` and ``b``, the placements "layers ``0 .. i-1`` on ``a``, layers
``i .. n-1`` on ``b``" for every ``i`` and both orientations (Neurosurgeon keeps the prefix on the
mobile device; the reverse orientation matters when the input is cheaper to ship than to process
locally): ``2n`` distinct placements. Each is evaluated by :func:`formulation.evaluator.batch_metrics`,
so every objective (latency in both modes, throughput, energy, cost, weighted) and every constraint
is exact; on a chain no two layers can overlap in time, so the list schedule of parallel mode is the
ASAP schedule, which is optimal.

Exactness: the result is optimal exactly when every feasible placement has at most one device
switch along the chain: one device, at most two layers, ``contiguous: true`` (on a chain a convex
layer set is an interval, so two complementary ones are a prefix and a suffix) or
``max_devices: 1``. That is the "single cut" problem of Neurosurgeon, and the only one ``scan``
accepts by default; otherwise placements with several switches may be better (use
``shortest-path``, or the MILP), and ``scan`` refuses unless asked with ``raw={"single_cut": true}``
to return the best single-cut placement as a heuristic (status feasible, never optimal).

Complexity: ``2n`` candidates, each evaluated in ``O(n + e)``: ``O(n^2)`` vectorised work.
"""

from __future__ import annotations

import math
import time

import numpy as np

from formulation.evaluator import batch_metrics
from formulation.model import DEVICE_FEATURES, Instance, IntArray
from solvers.additive import EXACT_OPTIONS
from solvers.base import RawSolution, Solver
from solvers.bounds import cheap_lower_bound
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: Placements times layers evaluated per batch (bounds the evaluator's memory).
BATCH_CELLS = 1 << 21


def single_cut_guaranteed(inst: Instance) -> bool:
    """Every feasible placement of this chain has at most one device switch."""
    c = inst.problem.constraints
    return inst.k <= 1 or inst.n <= 2 or c.contiguous or (c.max_devices is not None and c.max_devices <= 1)


def single_cut_placements(n: int, k: int) -> IntArray:
    """The ``2n`` distinct placements with at most one switch (one for ``k == 1``), shape ``(N, n)``."""
    if k == 1 or n == 0:
        return np.zeros((1, n), dtype=np.int64)
    i = np.arange(n + 1)[:, None]
    prefix = (np.arange(n)[None, :] >= i).astype(np.int64)  # 0 .. i-1 on device 0, the rest on 1
    both = np.concatenate([prefix, 1 - prefix[1:-1]])  # the reverse orientation minus duplicates
    return both


class Scan(Solver):
    """Neurosurgeon's partition-point scan: exact for the single-cut problem on two devices."""

    name = "scan"
    exact = True
    capabilities = Capabilities(
        chain_only=True,
        max_devices=2,
        # Every candidate is judged by the evaluator, so every constraint and device feature is exact.
        features=frozenset(DEVICE_FEATURES),
        note="exact when every feasible placement has one switch at most (contiguous, or max_devices 1)",
    )
    supported_options = EXACT_OPTIONS | {"raw"}
    description = "every cut point of a chain on two devices (Neurosurgeon, ASPLOS 2017); single-cut problem"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Capabilities, and the single-cut condition unless ``raw={"single_cut": True}``."""
        super().check(inst, options)
        unknown = set(options.raw) - {"single_cut"}
        if unknown:
            raise UnsupportedProblem(f"solver 'scan' has no raw option(s) {sorted(unknown)}; it takes 'single_cut'")
        if not single_cut_guaranteed(inst) and not options.raw.get("single_cut"):
            raise UnsupportedProblem(
                f"solver 'scan' cannot solve instance {inst.name!r} exactly: it searches single-cut placements, "
                "and this problem allows several device switches (set constraints.contiguous: true for the "
                "single-cut problem, use 'shortest-path' for an exact answer, or pass raw={'single_cut': true} "
                "for the best single-cut placement as a heuristic)"
            )

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        cands = single_cut_placements(inst.n, inst.k)
        parallel = inst.problem.execution == "parallel"
        best_val, best_P = math.inf, None
        step = max(1, BATCH_CELLS // max(1, inst.n))
        for start in range(0, cands.shape[0], step):
            P = cands[start : start + step]
            bm = batch_metrics(inst, P, parallel=parallel)
            obj = np.where(bm.feasible(), bm.objective(), math.inf)
            i = int(np.argmin(obj))
            if obj[i] < best_val:
                best_val, best_P = float(obj[i]), P[i].copy()
        exact = single_cut_guaranteed(inst)
        extra = {"candidates": int(cands.shape[0])}
        solve = time.perf_counter() - t0
        if best_P is None:
            if exact:
                return RawSolution(Termination.INFEASIBLE, solve_time_s=solve, extra=extra)
            return RawSolution(
                Termination.COMPLETED, solve_time_s=solve, extra=extra, message="no single-cut placement is feasible"
            )
        if exact:
            return RawSolution(
                Termination.OPTIMAL, placement=best_P, solver_objective=best_val, solve_time_s=solve, extra=extra
            )
        return RawSolution(
            Termination.COMPLETED,
            placement=best_P,
            solver_objective=best_val,
            bound=cheap_lower_bound(inst),
            solve_time_s=solve,
            extra=extra,
            message="best single-cut placement (placements with several switches were not searched)",
        )
