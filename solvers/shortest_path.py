"""``shortest-path``: exact partitioning of a chain with any number of device switches.

Source: JointDNN (Eshratifar, Abrishami and Pedram, "JointDNN: An Efficient Training and
Inference Engine for Intelligent Mobile Cloud Computing Services", IEEE Transactions on Mobile
Computing 20(2), 2021; arXiv:1801.08618), which casts mobile/cloud partitioning of a chain as a
shortest path in a graph with one node per (layer, device).

Cost model assumed: an objective that is a sum of layer and transfer terms (:mod:`solvers.additive`:
sequential latency, energy in sequential mode, cost, and their weighted sums with weights >= 0);
on a chain the transfers of a layer's output depend only on the devices of that layer and the next
(and the sink, for a model output): :func:`solvers.additive.chain_costs`. ``allowed``/``private``
forbid nodes; a missing link direction forbids an arc. JointDNN has two devices; the same graph
with ``k`` nodes per layer solves any number of devices, so ``k`` is not limited here.

Not covered (refused before anything is built): model inputs read by several layers (the cost of
sending such an input once per device is not a function of consecutive pairs; use ``mincut`` on
two devices), memory, deadline and energy budgets (not sums), ``contiguous`` and ``max_devices``.
Parallel latency is accepted where it equals the sequential one
(:func:`solvers.additive.sequential_equivalent`). A version-2 instance of one generation request
(docs/instance-format.md §9.10) is solved on its one-pass view (:mod:`solvers.generation_view`):
the ``G`` decode steps are summed in closed form, never unrolled.

Algorithm: dynamic programming over the layered DAG (Bellman's recursion, in topological order),
``f(v+1, b) = min_a f(v, a) + edge[v, a, b] + node[v+1, b]``: ``O(n k^2)`` time, ``O(n k)``
memory for the predecessor table. Ties go to the lowest device index.
"""

from __future__ import annotations

import math
import time

import numpy as np

from formulation.model import Instance
from formulation.numerics import check_float_range
from solvers.additive import (
    ADDITIVE_METRICS,
    EXACT_OPTIONS,
    additive_costs,
    chain_costs,
    check_overflow,
    equivalent_view,
    not_additive_reason,
    static_infeasibility,
)
from solvers.base import RawSolution, Solver
from solvers.generation_view import generation_view
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination


class ShortestPath(Solver):
    """Exact chain partitioning over any number of devices, additive objective (JointDNN)."""

    name = "shortest-path"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency", "energy", "cost", "weighted"}),
        metrics=ADDITIVE_METRICS,
        executions=frozenset({"sequential"}),
        constraints=frozenset({"allowed", "private"}),
        chain_only=True,
        note="additive objective; every model input read by at most one layer",
    )
    supported_options = EXACT_OPTIONS
    description = "exact shortest path over (layer, device) for chains, additive objectives (JointDNN)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Capabilities on the sequential view of ``inst``; additive objective; single-reader inputs."""
        inst = generation_view(inst, self.name)  # one generation request: its one-pass view (§9.10)
        seq = equivalent_view(inst)
        super().check(seq, options)
        why = not_additive_reason(seq)
        g = inst.graph
        multi = [g.tensor_ids[t] for t in range(g.n, g.n + g.m) if len(g.consumers[t]) > 1]
        if multi and not why:
            why = f"model inputs read by several layers ({multi[:3]}); use 'mincut' on two devices"
        if why:
            raise UnsupportedProblem(
                f"solver 'shortest-path' cannot solve instance {inst.name!r}: it does not support {why}"
            )
        check_float_range(seq, self.name)
        check_overflow(seq, self.name)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        seq = equivalent_view(generation_view(inst, self.name))
        why = static_infeasibility(seq)
        if why:
            return RawSolution(Termination.INFEASIBLE, message=why)
        cc = chain_costs(additive_costs(seq))
        build = time.perf_counter() - t0
        n, k = cc.node.shape
        f = cc.node[0].copy()
        back = np.zeros((n, k), dtype=np.int64)
        for v in range(n - 1):
            total = f[:, None] + cc.edge[v]  # (from a, to b)
            back[v + 1] = np.argmin(total, axis=0)
            f = total[back[v + 1], np.arange(k)] + cc.node[v + 1]
        best = int(np.argmin(f))
        value = float(f[best])
        if not math.isfinite(value):
            return RawSolution(
                Termination.INFEASIBLE,
                message="every path needs a forbidden device or a missing link direction",
                build_time_s=build,
            )
        P = np.empty(n, dtype=np.int64)
        P[-1] = best
        for v in range(n - 1, 0, -1):
            P[v - 1] = back[v, P[v]]
        return RawSolution(
            Termination.OPTIMAL,
            placement=P,
            solver_objective=value,
            build_time_s=build,
            solve_time_s=time.perf_counter() - t0 - build,
        )
