"""Evaluate one placement: every metric of docs/instance-format.md §5 and every violation, in words."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from formulation.evaluator.batch import batch_metrics, transfer_tables
from formulation.evaluator.schedule import check_schedule, list_schedule_many
from formulation.model import Instance


@dataclass(frozen=True)
class Transfer:
    """One tensor sent once from ``src`` to ``dst``.

    ``start_s``/``end_s`` are the times in the parallel schedule (start = producer's finish, or 0
    for model inputs; end = arrival = start + latency + bytes / bandwidth).
    """

    tensor: str
    src: str
    dst: str
    bytes: float
    occupied_s: float
    duration_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Violation:
    """A violated constraint: ``kind`` is a constraint name (or ``link``/``schedule``)."""

    kind: str
    message: str


@dataclass(frozen=True)
class Evaluation:
    """All metrics of one placement (SI units) and its violations.

    Attributes
    ----------
    latency_s : float
        Latency under the problem's execution mode.
    latency_sequential_s, latency_parallel_s : float
        Both latency modes; the parallel one uses the given schedule, else the list schedule.
    period_s, throughput_per_s : float
        Pipelined period and its inverse.
    busy_s : dict
        Busy time per device per inference (compute, plus communication where it does not overlap).
    energy_j : dict
        Energy per device per inference (every device, whatever the scope).
    energy_total_j : float
        Sum over ``energy_scope``.
    objective : float
        The problem's objective value.
    """

    placement: dict[str, str]
    schedule: dict[str, float]
    latency_s: float
    latency_sequential_s: float
    latency_parallel_s: float
    period_s: float
    throughput_per_s: float
    compute_time_s: dict[str, float]
    busy_s: dict[str, float]
    energy_j: dict[str, float]
    energy_total_j: float
    cost_usd: float
    memory_bytes: dict[str, float]
    link_bytes: dict[str, float]
    link_busy_s: dict[str, float]
    transfers: tuple[Transfer, ...]
    objective: float
    violations: tuple[Violation, ...] = field(default=())
    workload: dict[str, Any] = field(default_factory=dict)
    """Version 2 only (docs/instance-format.md §9.8): requests, utilisation, routes; empty for version 1."""
    scenarios: dict[str, Any] = field(default_factory=dict)
    """Instances with network states only (docs/instance-format.md §10): the robust measure and every
    state's metrics; the other fields then describe the nominal system and ``objective`` is robust."""
    choices: dict[str, Any] = field(default_factory=dict)
    """Instances with variants or exits only (docs/instance-format.md §11.4): the configuration, its
    accuracy and every path; the metrics are then expectations over the paths."""

    @property
    def feasible(self) -> bool:
        """No violation."""
        return not self.violations

    def metric(self, name: str) -> float:
        """An objective metric by name (``throughput`` is the period in seconds)."""
        return {
            "latency": self.latency_s,
            "throughput": self.period_s,
            "energy": self.energy_total_j,
            "cost": self.cost_usd,
        }[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metrics (base units, docs/instance-format.md §6.3)."""
        return {
            "latency_s": self.latency_s,
            "latency_sequential_s": self.latency_sequential_s,
            "latency_parallel_s": self.latency_parallel_s,
            "period_s": self.period_s,
            "throughput_per_s": self.throughput_per_s,
            "compute_time_s": self.compute_time_s,
            "busy_s": self.busy_s,
            "energy_j": self.energy_j,
            "energy_total_j": self.energy_total_j,
            "cost_usd": self.cost_usd,
            "memory_bytes": self.memory_bytes,
            "link_bytes": self.link_bytes,
            "link_busy_s": self.link_busy_s,
            "transfers": [t.__dict__ for t in self.transfers],
            "feasible": self.feasible,
            "violations": [{"kind": v.kind, "message": v.message} for v in self.violations],
            **({"workload": self.workload} if self.workload else {}),
            **({"scenarios": self.scenarios} if self.scenarios else {}),
            **({"choices": self.choices} if self.choices else {}),
        }


def evaluate(
    inst: Instance,
    placement: Mapping[str, str] | Sequence[int] | npt.NDArray[Any],
    schedule: Mapping[str, float] | None = None,
    choices: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate a placement (and optionally a parallel schedule) under the instance's cost model.

    Parameters
    ----------
    inst : Instance
    placement : mapping or sequence
        ``{layer id: device id}`` or device indices by layer index.
    schedule : mapping, optional
        ``{layer id: start seconds}``. When given, it is checked (precedence with transfer
        delays, one layer at a time per device) and its makespan is the parallel latency; problems
        are reported as ``schedule`` violations. When absent, the default list schedule of
        :mod:`formulation.evaluator.schedule` is used.
    choices : mapping, optional
        The configuration of an instance with variants or exits, ``{variants: {layer: name}, exit:
        name}`` (docs/instance-format.md §11.4); ignored by other instances.

    Returns
    -------
    Evaluation
    """
    P = inst.placement_indices(placement)
    if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11
        from formulation.evaluator.choices_eval import evaluate_choices

        return evaluate_choices(inst, P, choices)
    if inst.problem.scenarios is not None:  # network states: docs/instance-format.md §10
        from formulation.evaluator.scenario_eval import evaluate_states

        return evaluate_states(inst, P, schedule)
    if inst.workload is not None:
        return _evaluate_workload(inst, P, schedule)
    g, s = inst.graph, inst.system
    # The list schedule is computed once here (it gives both the starts and L); every use of L
    # below passes it explicitly, so batch_metrics need not schedule again.
    bm = batch_metrics(inst, P[None, :], parallel=False)
    violations: list[Violation] = []
    if schedule is None:
        tt = transfer_tables(inst, P[None, :])
        comp = inst.time[np.arange(g.n)[None, :], P[None, :]]
        starts_all, makespans = list_schedule_many(inst, P[None, :], comp, tt)
        starts_arr = starts_all[0]
        lat_par = float(makespans[0])
    else:
        chk = check_schedule(inst, P, schedule)
        starts_arr = np.array([float(schedule.get(v, math.nan)) for v in g.layer_ids])
        lat_par = chk.makespan
        violations += [Violation("schedule", p) for p in chk.problems]
    lat_seq = float(bm.latency_sequential[0])
    L = np.array([lat_par if inst.problem.execution == "parallel" else lat_seq])
    energy = bm.energy(L)[0]
    objective = float(bm.objective(L)[0])
    for kind, bad in bm.violations(L).items():
        if bad[0]:
            violations += [Violation(kind, msg) for msg in _explain(inst, P, kind, bm, L)]
    dev = s.device_ids
    transfers = _transfers(inst, P, starts_arr)
    period = float(bm.period[0])
    return Evaluation(
        placement=inst.placement_dict(P),
        schedule={v: float(starts_arr[i]) for i, v in enumerate(g.layer_ids)},
        latency_s=float(L[0]),
        latency_sequential_s=lat_seq,
        latency_parallel_s=lat_par,
        period_s=period,
        throughput_per_s=(1.0 / period) if period > 0 else math.inf,
        compute_time_s={d: float(bm.compute_time[0, j]) for j, d in enumerate(dev)},
        busy_s={d: float(bm.busy[0, j]) for j, d in enumerate(dev)},
        energy_j={d: float(energy[j]) for j, d in enumerate(dev)},
        energy_total_j=float(energy[inst.scope_mask].sum()),
        cost_usd=float(bm.cost[0]),
        memory_bytes={d: float(bm.memory[0, j]) for j, d in enumerate(dev)},
        link_bytes={f"{dev[a]}->{dev[b]}": float(bm.link_bytes[0, a, b]) for (a, b) in _channels(inst)},
        link_busy_s={f"{dev[a]}->{dev[b]}": float(bm.link_busy[0, a, b]) for (a, b) in _channels(inst)},
        transfers=transfers,
        objective=objective,
        violations=tuple(violations),
    )


def _evaluate_workload(
    inst: Instance, P: npt.NDArray[np.int64], schedule: Mapping[str, float] | None
) -> Evaluation:
    """A version-2 placement (docs/instance-format.md §9): the metrics of the workload as a whole."""
    from formulation.evaluator.workload_eval import request_latencies, workload_metrics, workload_report

    s = inst.system
    wm = workload_metrics(inst, P)
    lat = request_latencies(wm, schedule if inst.problem.execution == "parallel" else None)
    L = lat.latency
    viol = [Violation(kind, msg) for kind, msgs in wm.violations(L).items() for msg in msgs]
    viol += [Violation("schedule", p) for p in lat.problems]
    energy = wm.energy(L)
    dev = s.device_ids
    sched: dict[str, float] = {}
    if lat.starts is not None:
        tasks = wm.tasks
        sched = {key: float(lat.starts[i]) for i, key in enumerate(tasks.keys)}
    transfers = []
    for tr in wm.loads.transfers:
        req = inst.workload.requests[tr.request] if inst.workload else None
        t0 = req.release_s if req else 0.0
        if lat.starts is not None:
            key = f"{inst.graph.tensor_ids[tr.tensor]}>{dev[tr.dst]}#0"
            t0 = sched.get(key, t0)
        transfers.append(
            Transfer(
                tensor=inst.graph.tensor_ids[tr.tensor],
                src=dev[tr.src],
                dst=dev[tr.dst],
                bytes=tr.bytes,
                occupied_s=float(sum(tr.occupied)),
                duration_s=tr.duration,
                start_s=t0,
                end_s=t0 + tr.duration,
            )
        )
    busy = wm.loads.link_busy
    channels = [(a, b) for a in range(s.k) for b in range(s.k) if s.has_link[a, b]]
    agg = wm.aggregate(L)
    period = wm.period
    return Evaluation(
        placement=inst.placement_dict(P),
        schedule=sched,
        latency_s=agg,
        latency_sequential_s=wm.aggregate(wm.loads.alone),
        latency_parallel_s=agg,
        period_s=period,
        throughput_per_s=(1.0 / period) if period > 0 else math.inf,
        compute_time_s={d: float(wm.loads.compute_time[j]) for j, d in enumerate(dev)},
        busy_s={d: float(wm.loads.compute_time[j]) for j, d in enumerate(dev)},
        energy_j={d: float(energy[j]) for j, d in enumerate(dev)},
        energy_total_j=float(energy[inst.scope_mask].sum()),
        cost_usd=wm.loads.cost,
        memory_bytes={d: float(wm.loads.memory[j]) for j, d in enumerate(dev)},
        link_bytes={f"{dev[a]}->{dev[b]}": float(wm.loads.link_bytes[a, b]) for a, b in channels},
        link_busy_s={f"{dev[a]}->{dev[b]}": float(busy[a, b]) for a, b in channels},
        transfers=tuple(transfers),
        objective=wm.objective(L),
        violations=tuple(viol),
        workload=workload_report(wm, lat),
    )


def _channels(inst: Instance) -> list[tuple[int, int]]:
    s = inst.system
    return [(s.device_index[a], s.device_index[b]) for (a, b) in s.links]


def _transfers(
    inst: Instance, P: npt.NDArray[np.int64], starts: npt.NDArray[np.float64]
) -> tuple[Transfer, ...]:
    g, s = inst.graph, inst.system
    tt = transfer_tables(inst, P[None, :])
    finish = starts + inst.time[np.arange(g.n), P]
    out = []
    for t, b in zip(*np.nonzero(tt.needed[0]), strict=True):
        a = int(tt.producer[0, t])
        t0 = float(finish[t]) if t < g.n else 0.0
        dur = float(tt.duration[0, t, b])
        out.append(
            Transfer(
                tensor=g.tensor_ids[t],
                src=s.device_ids[a],
                dst=s.device_ids[int(b)],
                bytes=float(g.tensor_bytes[t]),
                occupied_s=float(tt.occupied[0, t, b]),
                duration_s=dur,
                start_s=t0,
                end_s=t0 + dur,
            )
        )
    return tuple(out)


def _explain(inst: Instance, P: npt.NDArray[np.int64], kind: str, bm: Any, L: Any) -> list[str]:
    """Readable reasons for one violated constraint kind."""
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    dev, lay = s.device_ids, g.layer_ids
    if kind == "link":
        tt = transfer_tables(inst, P[None, :])
        return [
            f"tensor {g.tensor_ids[t]!r} must go from {dev[int(tt.producer[0, t])]!r} to {dev[int(b)]!r} "
            "but there is no link in that direction"
            for t, b in zip(*np.nonzero(tt.needed[0]), strict=True)
            if not s.has_link[int(tt.producer[0, t]), int(b)]
        ]
    if kind == "memory":
        return [
            f"device {d!r} needs {bm.memory[0, j]:.6g} bytes but has {s.memory[j]:.6g}"
            for j, d in enumerate(dev)
            if bm.memory[0, j] > s.memory[j] * (1 + 1e-9)
        ]
    if kind == "allowed":
        return [
            f"layer {v!r} runs on {dev[int(P[g.layer_index[v]])]!r}; allowed only on {list(ds)}"
            for v, ds in c.allowed.items()
            if dev[int(P[g.layer_index[v]])] not in ds
        ]
    if kind == "private":
        msgs = [
            f"layer {lay[v]!r} on untrusted device {dev[int(P[v])]!r} produces or reads a private tensor"
            for v in range(g.n)
            if not inst.private_mask[v, int(P[v])]
        ]
        if inst.private_tensors[g.n :].any() and not s.trusted[s.source_index]:
            msgs.append(f"a private model input exists on the untrusted source {s.source!r}")
        if s.sink_index is not None and not s.trusted[s.sink_index]:
            msgs += [
                f"private output {lay[o]!r} must reach the untrusted sink {s.sink!r}"
                for o in g.outputs
                if inst.private_tensors[o]
            ]
        return msgs
    if kind == "contiguous":
        return [
            "the layers of some device do not form a convex set of the DAG (a path leaves and re-enters it)"
        ]
    if kind == "pipeline":
        return [
            "the devices cannot be ordered so that every edge between two devices goes forward "
            "(the quotient graph of the placement has a cycle)"
        ]
    if kind == "colocate":
        return [
            f"layers {[lay[v] for v in cls]} must run on one device; they run on "
            f"{sorted({dev[int(P[v])] for v in cls})}"
            for cls in inst.colocate_classes
            if len({int(P[v]) for v in cls}) > 1
        ]
    if kind == "max_devices":
        used = sorted({dev[int(d)] for d in P})
        return [f"{len(used)} devices execute layers ({used}); at most {c.max_devices} allowed"]
    if kind == "deadline":
        return [f"latency {float(L[0]):.6g} s exceeds the deadline {c.deadline_s:.6g} s"]
    if kind == "energy_budget":
        e = bm.energy(L)[0]
        return [
            f"device {d!r} uses {e[s.device_index[d]]:.6g} J; budget {b:.6g} J"
            for d, b in c.energy_budget_j.items()
            if e[s.device_index[d]] > b * (1 + 1e-9) + 1e-15
        ]
    return [kind]
