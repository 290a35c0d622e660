"""Version-2 cost model, part 3: per-request latency, aggregate, energy, utilisation and violations.

docs/instance-format.md §9.5–§9.7. :class:`WorkloadMetrics` holds what does not depend on the
requests' latencies (loads, memory, static violations) and turns a vector of per-request latencies
into the objective and the remaining violations; :func:`request_latencies` gives those latencies
under the instance's contention model. Brute force and :func:`formulation.evaluator.evaluate` both
use these two, so every metric is written once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formulation.evaluator.batch import REL_TOL, convex_sets
from formulation.evaluator.contention import Loads, Shares, request_loads, share_latencies
from formulation.evaluator.generation_eval import generation_entries
from formulation.evaluator.jobshop import Tasks, build_tasks, check_schedule, completions, list_schedule
from formulation.model import FloatArray, Instance, IntArray
from formulation.workload import Workload


@dataclass
class WorkloadMetrics:
    """The latency-independent part of one placement's metrics."""

    inst: Instance
    loads: Loads
    static: dict[str, list[str]]
    utilisation: FloatArray
    """(k + k*k,) ``sum_r rho_r * busy_r(x)`` per device and channel (``rho_r`` = rate, or 1 without rates)."""
    _tasks: Tasks | None = field(default=None, repr=False)

    @property
    def wl(self) -> Workload:
        """The instance's workload."""
        assert self.inst.workload is not None
        return self.inst.workload

    @property
    def tasks(self) -> Tasks:
        """The joint-schedule task graph (built on first use)."""
        if self._tasks is None:
            self._tasks = build_tasks(self.inst, self.loads)
        return self._tasks

    @property
    def period(self) -> float:
        """The throughput metric: the largest utilisation of any device or channel (§9.3)."""
        return float(self.utilisation.max()) if self.utilisation.size else 0.0

    def aggregate(self, L: FloatArray) -> float:
        """``sum_r w_r L_r`` or ``max_r w_r L_r``."""
        wL = np.array([r.weight for r in self.wl.requests]) * L
        return float(wL.sum() if self.wl.aggregate == "sum" else wL.max())

    def energy(self, L: FloatArray) -> FloatArray:
        """(k,) energy per device for one inference of every request (§9.7).

        ``active * compute + tx + rx + idle * max(0, H - compute - sending - receiving)`` with the
        horizon ``H = max_r (release_r + L_r)``; sending and receiving count every hop.
        """
        s, ld = self.inst.system, self.loads
        H = float(max(r.release_s + L[i] for i, r in enumerate(self.wl.requests)))
        busy = ld.link_busy
        comp = ld.compute_time
        with np.errstate(invalid="ignore"):
            idle = np.maximum(0.0, H - comp - busy.sum(axis=1) - busy.sum(axis=0))
            idle = np.where(np.isnan(idle), np.inf, idle)
            idle_e = np.where(s.power_idle > 0, s.power_idle * idle, 0.0)
            return np.asarray(s.power_active * comp + ld.tx_energy + ld.rx_energy + idle_e)

    def metric(self, name: str, L: FloatArray) -> float:
        """One objective metric (``throughput`` is the largest utilisation)."""
        if name == "latency":
            return self.aggregate(L)
        if name == "throughput":
            return self.period
        if name == "energy":
            return float(self.energy(L)[self.inst.scope_mask].sum())
        return self.loads.cost

    def objective(self, L: FloatArray) -> float:
        """The problem's objective; infinite when some request never completes."""
        if not np.isfinite(L).all():
            return math.inf
        return math.fsum(w * self.metric(m, L) for m, w in self.inst.problem.objective.terms().items() if w)

    def violations(self, L: FloatArray) -> dict[str, list[str]]:
        """Static violations plus deadlines and energy budgets at latencies ``L``."""
        out = {k: list(v) for k, v in self.static.items() if v}
        late = [
            f"request {r.id!r} takes {L[i]:.6g} s; its deadline is {r.deadline_s:.6g} s"
            for i, r in enumerate(self.wl.requests)
            if r.deadline_s is not None and L[i] > r.deadline_s * (1 + REL_TOL)
        ]
        if late:
            out["deadline"] = late
        c, s = self.inst.problem.constraints, self.inst.system
        if c.energy_budget_j:
            e = self.energy(L)
            over = [
                f"device {d!r} uses {e[s.device_index[d]]:.6g} J; budget {b:.6g} J"
                for d, b in c.energy_budget_j.items()
                if e[s.device_index[d]] > b * (1 + REL_TOL) + 1e-15
            ]
            if over:
                out["energy_budget"] = over
        return out

    def value(self, L: FloatArray) -> float:
        """The objective at ``L``, or infinity when ``L`` breaks a constraint (for searches)."""
        return math.inf if self.violations(L) else self.objective(L)


def workload_metrics(inst: Instance, P: IntArray) -> WorkloadMetrics:
    """Loads, utilisation and the violations that do not depend on latency (§9.7)."""
    wl = inst.workload
    assert wl is not None
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    ld = request_loads(inst, P)
    dev, lay = s.device_ids, g.layer_ids
    static: dict[str, list[str]] = {
        "link": [
            f"tensor {g.tensor_ids[t]!r} must go from {dev[a]!r} to {dev[b]!r} but there is no route"
            for t, a, b in ld.missing
        ]
    }
    if c.memory:
        static["memory"] = [
            f"device {d!r} needs {ld.memory[j]:.6g} bytes but has {s.memory[j]:.6g}"
            for j, d in enumerate(dev)
            if ld.memory[j] > s.memory[j] * (1 + REL_TOL)
        ]
    static["allowed"] = [
        f"layer {lay[v]!r} runs on {dev[int(P[v])]!r}; allowed only on {list(c.allowed[lay[v]])}"
        for v in range(g.n)
        if not inst.allowed_mask[v, int(P[v])]
    ]
    priv = [f"layer {lay[v]!r} on untrusted device {dev[int(P[v])]!r} produces or reads a private tensor"
            for v in range(g.n) if not inst.private_mask[v, int(P[v])]]
    for r in wl.requests:
        if any(inst.private_tensors[t] for t in r.inputs) and not s.trusted[r.source]:
            priv.append(f"request {r.id!r} has a private model input on the untrusted source {dev[r.source]!r}")
        if r.sink is not None and not s.trusted[r.sink] and any(inst.private_tensors[o] for o in r.outputs):
            priv.append(f"request {r.id!r} sends a private output to the untrusted sink {dev[r.sink]!r}")
    static["private"] = priv
    if c.max_devices is not None and len(set(P.tolist())) > c.max_devices:
        used = sorted({dev[int(d)] for d in P})
        static["max_devices"] = [f"{len(used)} devices execute layers ({used}); at most {c.max_devices} allowed"]
    if c.contiguous:
        onehot = (P[:, None] == np.arange(s.k)[None, :])[None]
        if not convex_sets(inst, onehot).all():
            static["contiguous"] = ["the layers of some device do not form a convex set of the DAG"]
    rho = np.array([r.rate if r.rate is not None else 1.0 for r in wl.requests])
    _R, k = ld.comp.shape
    util = np.concatenate([(rho[:, None] * ld.comp).sum(axis=0), (rho[:, None, None] * ld.chan).sum(axis=0).ravel()])
    if wl.rated and (util > 1 + REL_TOL).any():
        names = [*dev, *(f"{dev[a]}->{dev[b]}" for a in range(k) for b in range(k))]
        static["utilisation"] = [
            f"{names[x]} is busy {util[x]:.6g} s per second at the requests' rates (more than 1)"
            for x in np.flatnonzero(util > 1 + REL_TOL)
        ]
    return WorkloadMetrics(inst, ld, static, util)


@dataclass(frozen=True)
class Latencies:
    """Per-request latencies of one placement under the contention model, and how they arose."""

    latency: FloatArray
    completion: FloatArray
    shares: Shares | None = None
    starts: FloatArray | None = None
    problems: tuple[str, ...] = ()


def request_latencies(wm: WorkloadMetrics, schedule: Mapping[str, float] | None = None) -> Latencies:
    """Each request's latency (completion minus release) under the contention model (§9.5).

    ``none``: its sequential latency alone. ``share``: its latency under the optimal fractions.
    ``schedule``: from the given joint schedule (checked), else from the default list schedule.
    """
    wl = wm.wl
    rel = np.array([r.release_s for r in wl.requests])
    if wl.contention == "none":
        L = wm.loads.alone
        return Latencies(L, rel + L)
    if wl.contention == "share":
        sh = share_latencies(wm.loads, wl)
        return Latencies(sh.latency, rel + sh.latency, shares=sh)
    tasks = wm.tasks
    problems: list[str] = []
    if schedule is None:
        starts = list_schedule(tasks)
    else:
        starts, problems = check_schedule(tasks, schedule)
    C = completions(tasks, starts)
    # a request with a transfer that has no route never completes (its fixed delays are infinite)
    C = np.where(np.isfinite(wm.loads.fixed), C, math.inf)
    return Latencies(C - rel, C, starts=starts, problems=tuple(problems))


def workload_report(wm: WorkloadMetrics, lat: Latencies) -> dict[str, Any]:
    """The ``workload`` section of the metrics (docs/instance-format.md §9.8)."""
    wl, s = wm.wl, wm.inst.system
    dev = s.device_ids
    k = s.k
    names = [*dev, *(f"{dev[a]}->{dev[b]}" for a in range(k) for b in range(k))]
    requests: dict[str, Any] = {}
    gen = generation_entries(wm, lat)  # generation requests: TTFT, TPOT, total (§9.10)
    for i, r in enumerate(wl.requests):
        entry: dict[str, Any] = {
            "model": r.model,
            "source": dev[r.source],
            "sink": None if r.sink is None else dev[r.sink],
            "weight": r.weight,
            "rate": r.rate,
            "release_s": r.release_s,
            "deadline_s": r.deadline_s,
            "latency_s": float(lat.latency[i]),
            "latency_alone_s": float(wm.loads.alone[i]),
            "completion_s": float(lat.completion[i]),
        }
        if lat.shares is not None:
            fr = np.concatenate([lat.shares.device[i], lat.shares.channel[i].ravel()])
            entry["shares"] = {names[x]: float(fr[x]) for x in np.flatnonzero(fr > 0)}
        if i in gen:
            entry["generation"] = gen[i]
        requests[r.id] = entry
    used = np.flatnonzero(wm.utilisation > 0)
    routes = [
        {
            "request": wl.requests[tr.request].id,
            "tensor": wm.inst.graph.tensor_ids[tr.tensor],
            "src": dev[tr.src],
            "dst": dev[tr.dst],
            "route": [dev[tr.route[0][0]], *(dev[b] for _, b in tr.route)],
        }
        for tr in wm.loads.transfers
    ]
    out: dict[str, Any] = {
        "aggregate": wl.aggregate,
        "contention": wl.contention,
        "routing": wl.routing,
        "requests": requests,
        "utilisation": {names[x]: float(wm.utilisation[x]) for x in used},
        "routes": routes,
    }
    if lat.shares is not None:
        out["share_method"] = lat.shares.method
    return out
