"""HEFT on version-2 workloads (docs/instance-format.md §9): list scheduling over the combined DAG.

Topcuoglu, Hariri and Wu's algorithm (IEEE TPDS 13(3), 2002; :mod:`solvers.heft`) on the combined
graph of every request, with the format's version-2 rules:

1. upward rank as in version 1, the mean communication cost being the mean over the routes of
   ``sum over hops (latency + bytes / bandwidth)`` (§9.4), and an output's tail the mean transfer
   to its request's sink;
2. layers in decreasing rank (ties by combined topological index);
3. each layer on the allowed device with room for it (memory of §9.6: weights once per (model,
   layer, device), under ``peak`` plus the request's largest working set there) that minimises its
   earliest finish time — for a model output, its arrival at its request's sink — with the
   insertion policy on devices. A tensor travels its route store-and-forward once per destination
   device: each hop starts after the previous hop has ended plus its delay. Under ``schedule`` each
   channel is a resource too (one hop at a time, insertion policy), and no task of a request starts
   before its release; ties go to the lowest device index.

Under ``schedule`` the result carries this joint schedule (layer ids and hop keys ``T>D#h``), which
the evaluator checks and uses. Under ``none`` and ``share`` the placement is what counts: the
evaluator computes its latencies under the contention model (requests alone, or processor sharing).
A heuristic: the bound is :func:`workload_latency_lower_bound`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulation.costs import working_set_bytes
from formulation.evaluator.jobshop import hop_key
from formulation.model import FloatArray, Instance
from solvers.base import RawSolution
from solvers.heft import _Device
from solvers.result import Termination


def workload_latency_lower_bound(inst: Instance) -> float:
    """A lower bound on the latency aggregate of every placement (and schedule) of a workload.

    Each layer at its fastest allowed time, transfers free: under ``schedule`` a request's latency is
    at least its critical path; under ``none`` and ``share`` at least the sum of its layers' times
    (the run is sequential, and a share ``s <= 1`` only slows it). Aggregated by ``sum``/``max``.
    """
    wl = inst.workload
    assert wl is not None
    from formulation.generation import phase_tables

    g = inst.graph
    fast = np.where(inst.placement_mask, phase_tables(inst).time, math.inf).min(axis=1)
    lb = np.zeros(len(wl.requests))
    if wl.contention == "schedule":
        path = np.zeros(g.n)
        for v in range(g.n):  # combined layers are numbered topologically
            path[v] = fast[v] + max((path[u] for u in g.preds[v]), default=0.0)
        for r, req in enumerate(wl.requests):
            lb[r] = max((path[o] for o in req.outputs), default=0.0)
    else:
        np.add.at(lb, wl.request_of_layer, fast)
    w = np.array([r.weight for r in wl.requests]) * lb
    return float(w.sum() if wl.aggregate == "sum" else w.max())


def workload_lower_bound(inst: Instance) -> float:
    """A lower bound on the objective of every placement of a workload (``-inf`` when none is cheap).

    Per metric of the objective (weights ``>= 0``): latency by :func:`workload_latency_lower_bound`;
    cost ``sum_v min_d t(v, d) price(d)`` and energy ``sum_v min_d t(v, d) power_active(d)`` (``d`` in
    the energy scope, else 0) — transfers, idle power and the other devices only add (§9.7); the
    throughput metric, the largest utilisation, is at least the mean over the ``k`` devices of
    ``sum_v rho_r min_d t(v, d)`` (§9.3). A generation request counts its layers over all passes.
    """
    from formulation.generation import phase_tables

    wl = inst.workload
    assert wl is not None
    s = inst.system
    T = np.where(inst.placement_mask, phase_tables(inst).time, math.inf)
    if not np.isfinite(T.min(axis=1)).all():
        return -math.inf  # a layer without a device: nothing is feasible
    rho = np.array([r.rate if r.rate is not None else 1.0 for r in wl.requests])[wl.request_of_layer]
    scoped = np.where(inst.scope_mask, s.power_active, 0.0)
    fin = np.isfinite(T)  # an infinite layer time never completes: such a device is no option

    def least(per_second: FloatArray) -> float:
        with np.errstate(invalid="ignore"):  # inf * 0 where fin is False: discarded by the where
            return float(np.where(fin, T * per_second[None, :], math.inf).min(axis=1).sum())

    per = {
        "cost": least(s.price),
        "energy": least(scoped),
        "throughput": float((rho * T.min(axis=1)).sum() / s.k),
    }
    total = 0.0
    for metric, w in inst.problem.objective.terms().items():
        if w < 0:
            return -math.inf
        if w:
            total += w * (workload_latency_lower_bound(inst) if metric == "latency" else per[metric])
    return total


def workload_ranks(inst: Instance) -> FloatArray:
    """HEFT's upward rank of every combined layer, with routed mean communication costs."""
    wl = inst.workload
    assert wl is not None
    g, s = inst.graph, inst.system
    mask = inst.placement_mask
    w = np.where(mask, inst.time, 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
    routes = [r for r in wl.routes.values() if r]
    mean_delay = float(np.mean([sum(float(s.link_latency[i, j]) for i, j in r) for r in routes])) if routes else 0.0
    mean_inv = float(np.mean([sum(1.0 / float(s.bandwidth[i, j]) for i, j in r) for r in routes])) if routes else 0.0
    comm = mean_delay + g.output_bytes * mean_inv
    rank = np.zeros(g.n)
    for v in range(g.n - 1, -1, -1):
        req = wl.requests[int(wl.request_of_layer[v])]
        tail = comm[v] if (g.is_output[v] and req.sink is not None) else 0.0
        for x in g.succs[v]:
            tail = max(tail, comm[v] + rank[x])
        rank[v] = w[v] + tail
    return rank


_Hop = tuple[int, int, float, float]
"""A hop booked tentatively: channel ``(i, j)``, start and end."""


@dataclass
class _State:
    """Placement, times and resource timelines built so far."""

    P: np.ndarray
    finish: FloatArray
    start: FloatArray
    devices: list[_Device]
    channels: dict[tuple[int, int], _Device] = field(default_factory=dict)
    arrival: dict[tuple[int, int], float] = field(default_factory=dict)
    """``(tensor, device)`` -> when the tensor is there (after its committed transfer)."""
    hops: dict[str, float] = field(default_factory=dict)
    params: dict[int, set[tuple[str, str]]] = field(default_factory=dict)
    """Weights keys resident per device (§9.6), and their bytes."""
    param_bytes: dict[int, float] = field(default_factory=dict)
    peak: dict[tuple[int, int], float] = field(default_factory=dict)


class _Heft:
    def __init__(self, inst: Instance) -> None:
        wl = inst.workload
        assert wl is not None
        self.inst, self.wl = inst, wl
        g, k = inst.graph, inst.k
        self.contend_links = wl.contention == "schedule"
        self.work = working_set_bytes(g)
        self.st = _State(np.full(g.n, -1, dtype=np.int64), np.zeros(g.n), np.zeros(g.n), [_Device() for _ in range(k)])

    def _send(self, t: int, a: int, b: int, ready: float, commit: bool, plan: list[_Hop]) -> float:
        """Arrival on ``b`` of tensor ``t`` leaving ``a`` at ``ready`` (store-and-forward over the route);
        ``plan`` holds the hops tentatively booked by this candidate, on top of the committed ones."""
        s, g = self.inst.system, self.inst.graph
        route = self.wl.route(a, b)
        if route is None:
            return math.inf
        tcur = ready
        for h, (i, j) in enumerate(route):
            occ = float(g.tensor_bytes[t]) / float(s.bandwidth[i, j])
            st = tcur
            if self.contend_links:
                st = self._earliest_on_channel((i, j), tcur, occ, plan)
                if commit:
                    self.st.channels.setdefault((i, j), _Device()).insert(st, st + occ)
                else:
                    plan.append((i, j, st, st + occ))
            if commit:
                self.st.hops[hop_key(g.tensor_ids[t], s.device_ids[b], h)] = st
            tcur = st + occ + float(s.link_latency[i, j])
        if commit:
            self.st.arrival[(t, b)] = tcur
        return tcur

    def _earliest_on_channel(self, ch: tuple[int, int], ready: float, occ: float, plan: list[_Hop]) -> float:
        tentative = [(a, b) for i, j, a, b in plan if (i, j) == ch]
        base = self.st.channels.get(ch)
        if not tentative:
            return base.earliest(ready, occ) if base else ready
        tmp = _Device()
        if base:
            tmp.starts, tmp.ends = list(base.starts), list(base.ends)
        for a, b in tentative:
            tmp.insert(a, b)
        return tmp.earliest(ready, occ)

    def _fits(self, v: int, d: int) -> bool:
        inst = self.inst
        c = inst.problem.constraints
        cap = float(inst.system.memory[d])
        if not c.memory or not math.isfinite(cap):
            return True
        g, wl = inst.graph, self.wl
        total = self.st.param_bytes.get(d, 0.0)
        if wl.weight_key[v] not in self.st.params.get(d, set()):
            total += float(g.param_bytes[v])
        r = int(wl.request_of_layer[v])
        peaks = {rr: p for (rr, dd), p in self.st.peak.items() if dd == d}
        peaks[r] = max(peaks.get(r, 0.0), float(self.work[v]))
        if c.memory_model != "params":
            total += sum(peaks.values())
        return total <= cap * (1 + 1e-9)

    def _try(self, v: int, d: int, commit: bool) -> tuple[float, float, float]:
        """``(key, eft, start)`` of layer ``v`` on device ``d`` (infinite when it cannot go there)."""
        inst, g, wl, st = self.inst, self.inst.graph, self.wl, self.st
        req = wl.requests[int(wl.request_of_layer[v])]
        plan: list[_Hop] = []
        ready = req.release_s
        for t in g.layer_inputs[v]:
            a = int(st.P[t]) if t < g.n else req.source
            avail = float(st.finish[t]) if t < g.n else req.release_s
            if a == d:
                ready = max(ready, avail)
            elif (t, d) in st.arrival:
                ready = max(ready, st.arrival[(t, d)])
            else:
                ready = max(ready, self._send(t, a, d, avail, commit, plan))
        if not math.isfinite(ready):
            return math.inf, math.inf, math.inf
        dur = float(inst.time[v, d])
        begin = st.devices[d].earliest(ready, dur)
        eft = begin + dur
        key = eft
        if commit:
            st.P[v], st.start[v], st.finish[v] = d, begin, eft
            st.devices[d].insert(begin, eft)
            if wl.weight_key[v] not in st.params.setdefault(d, set()):
                st.params[d].add(wl.weight_key[v])
                st.param_bytes[d] = st.param_bytes.get(d, 0.0) + float(g.param_bytes[v])
            r = int(wl.request_of_layer[v])
            st.peak[(r, d)] = max(st.peak.get((r, d), 0.0), float(self.work[v]))
        if g.is_output[v] and req.sink is not None and req.sink != d:
            key = self._send(v, d, req.sink, eft, commit, plan)
        return key, eft, begin

    def run(self) -> str:
        """Place every layer; an empty string, or why a layer found no device."""
        inst, g = self.inst, self.inst.graph
        rank = workload_ranks(inst)
        mask = inst.placement_mask & np.isfinite(inst.time)
        for v in sorted(range(g.n), key=lambda u: (-rank[u], u)):
            best = (math.inf, math.inf, -1)
            for d in np.flatnonzero(mask[v]).tolist():
                if not self._fits(v, d):
                    continue
                key, eft, _ = self._try(v, d, commit=False)
                if (key, eft) < best[:2]:
                    best = (key, eft, d)
            if best[2] < 0 or not math.isfinite(best[0]):
                return f"no device can take layer {g.layer_ids[v]!r} (allowed, memory or routes)"
            self._try(v, best[2], commit=True)
        return ""

    def completions(self) -> FloatArray:
        """Each request's completion under the schedule built (outputs finished and at the sink)."""
        st = self.st
        out = np.zeros(len(self.wl.requests))
        for r, req in enumerate(self.wl.requests):
            for o in req.outputs:
                at = st.finish[o]
                if req.sink is not None and req.sink != int(st.P[o]):
                    at = st.arrival[(o, req.sink)]
                out[r] = max(out[r], at)
        return out


def solve_workload(inst: Instance) -> RawSolution:
    """HEFT's placement (and, under ``schedule``, its joint schedule) of a version-2 instance."""
    t0 = time.perf_counter()
    wl = inst.workload
    assert wl is not None
    h = _Heft(inst)
    why = h.run()
    if why:
        return RawSolution(Termination.COMPLETED, solve_time_s=time.perf_counter() - t0, message=why)
    g = inst.graph
    bound = workload_latency_lower_bound(inst)
    if wl.contention != "schedule":  # the evaluator computes the latencies of the placement
        return RawSolution(Termination.COMPLETED, placement=h.st.P, bound=bound, solve_time_s=time.perf_counter() - t0)
    L = h.completions() - np.array([r.release_s for r in wl.requests])
    wL = np.array([r.weight for r in wl.requests]) * L
    sched = {g.layer_ids[v]: float(h.st.start[v]) for v in range(g.n)} | h.st.hops
    return RawSolution(
        Termination.COMPLETED,
        placement=h.st.P,
        schedule=sched,
        solver_objective=float(wL.sum() if wl.aggregate == "sum" else wL.max()),
        bound=bound,
        solve_time_s=time.perf_counter() - t0,
    )
