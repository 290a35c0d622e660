"""``heft``: Heterogeneous Earliest Finish Time list scheduling for parallel latency.

Source: Topcuoglu, Hariri and Wu, "Performance-Effective and Low-Complexity Task Scheduling for
Heterogeneous Computing", IEEE Transactions on Parallel and Distributed Systems 13(3), 2002.

Cost model assumed: docs/instance-format.md §5.4, parallel latency. Each device runs one layer at a time;
transfers run concurrently with everything (no link contention), a tensor arriving at
``finish + latency + bytes / bandwidth`` on a device that needs it, once per device; model inputs
are on the source at time 0; the latency ends when every model output has reached the sink.

Algorithm, as in the paper with the format's constraints added:

1. upward rank ``rank(v) = w(v) + max(max_s c(v, s) + rank(s), c_sink(v))`` with ``w`` the mean
   time of ``v`` over its allowed devices and ``c`` the mean transfer time over the system's link
   directions (the paper's average startup plus data over average bandwidth);
2. layers in decreasing rank (ties by topological index, which keeps the order topological);
3. each layer on the allowed device (``allowed``/``private``) with room for it (memory: its
   parameters plus its working set added to the device's) that minimises its earliest finish
   time, with the insertion policy (a layer may fill an idle gap between two scheduled layers);
   for a model output the transfer to the sink is added. Ties go to the lowest device index.

The result carries HEFT's schedule, which the evaluator checks. ``O(n^2 k)`` time with insertion
(``O(e k + n k log n)`` on these graphs in practice). A heuristic: status feasible, bound from
:func:`solvers.bounds.parallel_latency_lower_bound`; a deadline is judged by the evaluator (a
late schedule is reported infeasible, which is no proof).
"""

from __future__ import annotations

import bisect
import math
import time

import numpy as np

from formulation.costs import working_set_bytes
from formulation.model import Instance
from solvers.additive import static_infeasibility
from solvers.base import RawSolution, Solver
from solvers.bounds import parallel_latency_lower_bound
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination


def upward_ranks(inst: Instance) -> np.ndarray:
    """HEFT's upward rank of every layer with mean computation and communication costs."""
    g, s = inst.graph, inst.system
    mask = inst.placement_mask
    w = np.where(mask, inst.time, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
    links = s.has_link
    mean_lat = float(s.link_latency[links].mean()) if links.any() else 0.0
    mean_inv_bw = float((1.0 / s.bandwidth[links]).mean()) if links.any() else 0.0
    comm = mean_lat + g.output_bytes * mean_inv_bw
    rank = np.zeros(g.n)
    for v in range(g.n - 1, -1, -1):
        tail = comm[v] if (g.is_output[v] and s.sink_index is not None) else 0.0
        for x in g.succs[v]:
            tail = max(tail, comm[v] + rank[x])
        rank[v] = w[v] + tail
    return rank


class _Device:
    """Busy intervals of one device, sorted, for the insertion policy."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def earliest(self, ready: float, dur: float) -> float:
        """Earliest start ``>= ready`` of an idle gap of length ``dur``."""
        t = ready
        i = bisect.bisect_right(self.ends, ready)
        while i < len(self.starts):
            if t + dur <= self.starts[i]:
                return t
            t = max(t, self.ends[i])
            i += 1
        return t

    def insert(self, start: float, end: float) -> None:
        # Order by (start, end) so that a zero-length interval sharing its start with a longer one
        # comes first and ``ends`` stays sorted, which ``earliest`` relies on.
        i = bisect.bisect_left(list(zip(self.starts, self.ends, strict=True)), (start, end))
        self.starts.insert(i, start)
        self.ends.insert(i, end)


class Heft(Solver):
    """HEFT list scheduling (Topcuoglu et al., IEEE TPDS 2002) for parallel latency."""

    name = "heft"
    exact = False
    capabilities = Capabilities(
        objectives=frozenset({"latency"}),
        executions=frozenset({"parallel", "sequential"}),
        constraints=frozenset({"memory", "memory_params", "allowed", "private", "deadline"}),
        workload=frozenset({"none", "schedule", "share", "routing"}),
        note="heuristic; version 1: parallel latency only; version 2: every contention model "
        "(solvers/heft_workload.py); deadlines and utilisation at the requests' rates are only checked afterwards",
    )
    supported_options = frozenset({"time_limit_s"})
    description = "HEFT list scheduling for parallel latency (Topcuoglu et al., TPDS 2002); heuristic"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        # version 1: parallel latency only (a version-2 workload's execution follows its contention model)
        if inst.workload is None and inst.problem.execution != "parallel":
            reasons = [
                f"execution {inst.problem.execution!r} (supported: ['parallel'] in version 1)",
                *self.capabilities.reasons(inst),
            ]
            raise UnsupportedProblem(
                f"solver {self.name!r} cannot solve instance {inst.name!r}: it does not support " + "; ".join(reasons)
            )
        super().check(inst, options)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.workload is not None:
            from solvers.heft_workload import solve_workload

            return solve_workload(inst)
        t0 = time.perf_counter()
        why = static_infeasibility(inst)
        if why:
            return RawSolution(Termination.COMPLETED, message=why)
        g, s = inst.graph, inst.system
        rank = upward_ranks(inst)
        order = sorted(range(g.n), key=lambda v: (-rank[v], v))
        mask = inst.placement_mask
        use_mem = inst.problem.constraints.memory
        params = np.zeros(s.k)
        peak = np.zeros(s.k)
        # the ``params`` memory model counts weights only (§5.9): no working set
        work = working_set_bytes(g) if inst.problem.constraints.memory_model != "params" else np.zeros(g.n)
        devs = [_Device() for _ in range(s.k)]
        P = np.full(g.n, -1, dtype=np.int64)
        finish = np.zeros(g.n)
        start = np.zeros(g.n)
        for v in order:
            best = (math.inf, math.inf, -1, 0.0)
            for d in np.flatnonzero(mask[v]).tolist():
                if use_mem and params[d] + g.param_bytes[v] + max(peak[d], work[v]) > s.memory[d] * (1 + 1e-9):
                    continue
                ready = 0.0
                for t in g.layer_inputs[v]:
                    a = int(P[t]) if t < g.n else s.source_index
                    t_ready = float(finish[t]) if t < g.n else 0.0
                    ready = max(ready, t_ready + s.transfer_time(a, d, float(g.tensor_bytes[t])))
                if not math.isfinite(ready):
                    continue
                st = devs[d].earliest(ready, float(inst.time[v, d]))
                eft = st + float(inst.time[v, d])
                key = eft
                if g.is_output[v] and s.sink_index is not None:
                    key = eft + s.transfer_time(d, s.sink_index, float(g.output_bytes[v]))
                if (key, eft) < best[:2]:
                    best = (key, eft, d, st)
            key, eft, d, st = best
            if d < 0 or not math.isfinite(key):
                return RawSolution(
                    Termination.COMPLETED,
                    solve_time_s=time.perf_counter() - t0,
                    message=f"no device can take layer {g.layer_ids[v]!r} (allowed, memory or links)",
                )
            P[v], start[v], finish[v] = d, st, eft
            devs[d].insert(st, eft)
            params[d] += g.param_bytes[v]
            peak[d] = max(peak[d], work[v])
        makespan = 0.0
        for o in g.outputs:
            tail = 0.0 if s.sink_index is None else s.transfer_time(int(P[o]), s.sink_index, float(g.output_bytes[o]))
            makespan = max(makespan, float(finish[o]) + tail)
        return RawSolution(
            Termination.COMPLETED,
            placement=P,
            schedule={v: float(start[i]) for i, v in enumerate(g.layer_ids)},
            solver_objective=makespan,
            bound=parallel_latency_lower_bound(inst),
            solve_time_s=time.perf_counter() - t0,
        )
