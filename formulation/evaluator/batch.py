"""The cost model of docs/instance-format.md §5, vectorised over many placements at once.

This module is the one implementation of the cost model: :func:`formulation.evaluator.evaluate`
(one placement, with readable reports) and the ``brute`` solver (hundreds of thousands of
placements) both call :func:`batch_metrics`.

Placements are integer arrays ``P`` of shape ``(N, n)``: ``P[r, v]`` is the device index of layer
``v`` in placement ``r``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from formulation.costs import working_set_bytes
from formulation.evaluator.pipeline import pipeline_sets
from formulation.evaluator.schedule import list_schedule_many
from formulation.model import BoolArray, FloatArray, Instance, IntArray

#: Relative tolerance used when checking deadline, budgets and memory (float noise only).
REL_TOL = 1e-9


@dataclass(frozen=True)
class TransferTables:
    """Which tensor is sent where, for N placements.

    Attributes
    ----------
    producer : (N, T) int
        Device holding each tensor when produced (layer device, or source for model inputs).
    needed : (N, T, k) bool
        Tensor t is sent to device b (b needs it and it was produced elsewhere).
    occupied : (N, T, k) float
        Occupied link time of each such transfer, ``bytes / bandwidth`` (0 where not needed).
    duration : (N, T, k) float
        Transfer time, ``latency + bytes / bandwidth``.
    missing_link : (N,) bool
        Some needed transfer has no link.
    """

    producer: IntArray
    needed: BoolArray
    occupied: FloatArray
    duration: FloatArray
    missing_link: BoolArray


def transfer_tables(inst: Instance, P: IntArray) -> TransferTables:
    """Tensor shipping (docs/instance-format.md §5.2): each tensor is sent once to each device that needs it.

    A tensor produced on ``a`` is needed on ``b != a`` if a layer on ``b`` consumes it, or it is a
    model output and ``b`` is the sink.
    """
    g, s = inst.graph, inst.system
    N, k = P.shape[0], s.k
    T = g.n + g.m
    producer = np.empty((N, T), dtype=np.int64)
    producer[:, : g.n] = P
    producer[:, g.n :] = s.source_index
    needed = np.zeros((N, T, k), dtype=bool)
    edge_t = np.array([t for v in range(g.n) for t in g.layer_inputs[v]], dtype=np.int64)
    edge_v = np.array([v for v in range(g.n) for _ in g.layer_inputs[v]], dtype=np.int64)
    rows = np.arange(N)[:, None]
    if edge_t.size:
        needed[rows, edge_t[None, :], P[:, edge_v]] = True
    if s.sink_index is not None and g.outputs:
        needed[:, list(g.outputs), s.sink_index] = True
    needed &= producer[:, :, None] != np.arange(k)[None, None, :]
    bw = s.bandwidth[producer]  # (N, T, k)
    has = s.has_link[producer]
    missing = np.asarray((needed & ~has).any(axis=(1, 2)))
    ok = needed & has
    nbytes = g.tensor_bytes[None, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        occupied = np.where(ok, nbytes / bw, 0.0)
    duration = np.where(ok, occupied + s.link_latency[producer], 0.0)
    occupied = np.where(needed & ~has, np.inf, occupied)
    duration = np.where(needed & ~has, np.inf, duration)
    return TransferTables(producer, needed, occupied, duration, missing)


@dataclass(frozen=True)
class BatchMetrics:
    """Every metric of docs/instance-format.md §5 for N placements (SI units).

    Attributes mirror :class:`formulation.evaluator.Evaluation`; arrays have a leading axis N.
    Metrics that depend on the latency ``L`` (energy, objective, deadline) are methods taking ``L``
    so that callers holding a better schedule (e.g. an optimal one) can substitute its makespan.
    """

    instance: Instance
    placements: IntArray
    compute_time: FloatArray
    """(N, k) busy compute seconds per device."""
    link_busy: FloatArray
    """(N, k, k) occupied seconds per link direction ``a -> b``."""
    link_bytes: FloatArray
    """(N, k, k) bytes per link direction."""
    send_time: FloatArray
    """(N, k) seconds each device spends sending (each tensor once on ``send_once`` devices)."""
    tx_energy: FloatArray
    """(N, k) radio energy spent sending, ``sum tx_power * occupied``."""
    rx_energy: FloatArray
    """(N, k) radio energy spent receiving."""
    latency_sequential: FloatArray
    latency_parallel: FloatArray
    """(N,) makespan of the deterministic list schedule (see :mod:`.schedule`)."""
    cost: FloatArray
    memory: FloatArray
    """(N, k) memory per device under the instance's memory model: params plus peak working set
    (``peak``, the default), or params only (``params``); 0 on idle devices."""
    static_violations: dict[str, BoolArray]
    """Violations that do not depend on the schedule, by constraint kind, each (N,) bool."""

    @property
    def n_placements(self) -> int:
        """N."""
        return int(self.placements.shape[0])

    @property
    def sending(self) -> FloatArray:
        """(N, k) seconds each device spends sending."""
        return self.send_time

    @cached_property
    def receiving(self) -> FloatArray:
        """(N, k) seconds each device spends receiving."""
        return self.link_busy.sum(axis=1)

    @cached_property
    def busy(self) -> FloatArray:
        """(N, k) busy time per inference: compute, plus sending and receiving where the device's
        communication does not overlap its compute (``comm_overlap: false``)."""
        serial = ~self.instance.system.comm_overlap
        if not serial.any():
            return self.compute_time
        return self.compute_time + np.where(serial[None, :], self.sending + self.receiving, 0.0)

    @cached_property
    def period(self) -> FloatArray:
        """(N,) period P: the largest busy time of any device or link direction."""
        dev = self.busy.max(axis=1)
        if self.link_busy.shape[1] == 0:
            return dev
        return np.maximum(dev, self.link_busy.max(axis=(1, 2)))

    def latency(self) -> FloatArray:
        """(N,) latency under the problem's execution mode (list schedule for parallel)."""
        if self.instance.problem.execution == "parallel":
            return self.latency_parallel
        return self.latency_sequential

    def energy(self, L: FloatArray | None = None) -> FloatArray:
        """(N, k) energy per device per inference, docs/instance-format.md §5.6.

        ``active * compute + tx + rx + idle * max(0, L - compute - sending - receiving)``.
        """
        s = self.instance.system
        L = self.latency() if L is None else L
        with np.errstate(invalid="ignore"):
            idle = np.maximum(0.0, L[:, None] - self.compute_time - self.sending - self.receiving)
        idle = np.where(np.isnan(idle), np.inf, idle)
        with np.errstate(invalid="ignore"):
            return (
                s.power_active[None, :] * self.compute_time
                + self.tx_energy
                + self.rx_energy
                + np.where(s.power_idle[None, :] > 0, s.power_idle[None, :] * idle, 0.0)
            )

    def energy_total(self, L: FloatArray | None = None) -> FloatArray:
        """(N,) energy summed over the devices of ``energy_scope``."""
        return self.energy(L)[:, self.instance.scope_mask].sum(axis=1)

    def metric(self, name: str, L: FloatArray | None = None) -> FloatArray:
        """(N,) one objective metric by name (``throughput`` stands for the period, in seconds)."""
        L = self.latency() if L is None else L
        if name == "latency":
            return L
        if name == "throughput":
            return self.period
        if name == "energy":
            return self.energy_total(L)
        if name == "cost":
            return self.cost
        raise ValueError(f"unknown metric {name!r}")

    def objective(self, L: FloatArray | None = None) -> FloatArray:
        """(N,) the problem's objective (weighted sum of metrics in base units)."""
        L = self.latency() if L is None else L
        out = np.zeros(self.n_placements)
        for name, w in self.instance.problem.objective.terms().items():
            if w:
                out = out + w * self.metric(name, L)
        # A placement whose latency is not finite never completes (a layer or transfer takes
        # forever, e.g. 1e9 FLOP at 1e-300 FLOP/s): its objective is inf whatever the metric, so
        # that an energy or cost objective blind to that time cannot call it a solution.
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(L), out, np.inf)

    def violations(self, L: FloatArray | None = None) -> dict[str, BoolArray]:
        """All violations by kind, each (N,) bool: static ones plus deadline and energy budget."""
        c, s = self.instance.problem.constraints, self.instance.system
        L = self.latency() if L is None else L
        out = dict(self.static_violations)
        # written as "not within" so that an undefined (NaN) latency or energy is a violation
        if c.deadline_s is not None:
            with np.errstate(invalid="ignore"):
                out["deadline"] = ~(c.deadline_s * (1 + REL_TOL) >= L)
        if c.energy_budget_j:
            e = self.energy(L)
            bad = np.zeros(self.n_placements, dtype=bool)
            for dev, budget in c.energy_budget_j.items():
                with np.errstate(invalid="ignore"):
                    bad |= ~(e[:, s.device_index[dev]] <= budget * (1 + REL_TOL) + 1e-15)
            out["energy_budget"] = bad
        return out

    def feasible(self, L: FloatArray | None = None) -> BoolArray:
        """(N,) no violation of any kind."""
        ok = np.ones(self.n_placements, dtype=bool)
        for bad in self.violations(L).values():
            ok &= ~bad
        return ok


def batch_metrics(inst: Instance, P: IntArray, *, parallel: bool | None = None) -> BatchMetrics:
    """Evaluate N placements at once.

    Parameters
    ----------
    inst : Instance
    P : (N, n) int array
        Device index of every layer in every placement.
    parallel : bool, optional
        Compute the list-scheduled parallel latency (default: always; pass False to skip it when
        only sequential metrics are needed, it is then NaN).
    """
    g, s = inst.graph, inst.system
    P = np.atleast_2d(np.asarray(P, dtype=np.int64))
    N, k = P.shape[0], s.k
    onehot = P[:, :, None] == np.arange(k)[None, None, :]  # (N, n, k)
    comp = inst.time[np.arange(g.n)[None, :], P]  # (N, n)
    compute_time = np.einsum("nv,nvk->nk", comp, onehot)
    tt = transfer_tables(inst, P)
    link_busy = np.zeros((N, k, k))
    link_bytes = np.zeros((N, k, k))
    nb = np.where(tt.needed, g.tensor_bytes[None, :, None], 0.0)
    for a in range(k):
        from_a = (tt.producer == a)[:, :, None]
        link_busy[:, a, :] = np.where(from_a, tt.occupied, 0.0).sum(axis=1)
        link_bytes[:, a, :] = np.where(from_a, nb, 0.0).sum(axis=1)
    # A missing link makes occupied times infinite; 0 W * inf must stay 0, not NaN.
    with np.errstate(invalid="ignore"):
        tx_energy = np.where(s.tx_power[None] > 0, link_busy * s.tx_power[None], 0.0).sum(axis=2)
        rx_energy = np.where(s.rx_power[None] > 0, link_busy * s.rx_power[None], 0.0).sum(axis=1)
    send_time = link_busy.sum(axis=2)
    if s.send_once.any():
        # one transmission per tensor: the longest per-destination time (and its radio energy)
        occ_max = tt.occupied.max(axis=2)
        with np.errstate(invalid="ignore"):
            tx_max = np.where(s.tx_power[tt.producer] > 0, tt.occupied * s.tx_power[tt.producer], 0.0).max(axis=2)
        for src in np.flatnonzero(s.send_once):
            mine = tt.producer == src
            send_time[:, src] = np.where(mine, occ_max, 0.0).sum(axis=1)
            tx_energy[:, src] = np.where(mine, tx_max, 0.0).sum(axis=1)
    latency_seq = comp.sum(axis=1) + tt.duration.sum(axis=(1, 2))
    cost = (compute_time * s.price[None, :]).sum(axis=1) + (link_bytes * s.link_price[None, :, :]).sum(
        axis=(1, 2)
    )
    params = np.einsum("v,nvk->nk", g.param_bytes, onehot)
    if inst.problem.constraints.memory_model == "params":
        memory = params
    else:
        peak_v = working_set_bytes(g)
        peak = np.where(onehot, peak_v[None, :, None], 0.0).max(axis=1) if g.n else np.zeros((N, k))
        memory = params + peak
    do_par = True if parallel is None else parallel
    lat_par = list_schedule_many(inst, P, comp, tt)[1] if do_par else np.full(N, np.nan)
    static = _static_violations(inst, P, onehot, memory, tt)
    return BatchMetrics(
        instance=inst,
        placements=P,
        compute_time=compute_time,
        link_busy=link_busy,
        link_bytes=link_bytes,
        send_time=send_time,
        tx_energy=tx_energy,
        rx_energy=rx_energy,
        latency_sequential=latency_seq,
        latency_parallel=lat_par,
        cost=cost,
        memory=memory,
        static_violations=static,
    )


def _static_violations(
    inst: Instance, P: IntArray, onehot: BoolArray, memory: FloatArray, tt: TransferTables
) -> dict[str, BoolArray]:
    """Violations independent of the schedule (each (N,) bool)."""
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    out: dict[str, BoolArray] = {"link": tt.missing_link}
    if c.memory:
        out["memory"] = np.asarray((memory > s.memory[None, :] * (1 + REL_TOL)).any(axis=1))
    rows_v = np.arange(g.n)[None, :]
    if c.allowed:
        out["allowed"] = np.asarray(~inst.allowed_mask[rows_v, P].all(axis=1))
    if c.private:
        out["private"] = np.asarray(
            ~inst.private_mask[rows_v, P].all(axis=1) | _private_static_violation(inst)
        )
    if c.contiguous:
        out["contiguous"] = np.asarray(~convex_sets(inst, onehot).all(axis=1))
    if c.pipeline:
        out["pipeline"] = np.asarray(~pipeline_sets(inst, P))
    if c.max_devices is not None:
        out["max_devices"] = np.asarray(onehot.any(axis=1).sum(axis=1) > c.max_devices)
    if inst.colocate_classes:
        split = np.zeros(P.shape[0], dtype=bool)
        for cls in inst.colocate_classes:
            split |= (P[:, cls] != P[:, cls[:1]]).any(axis=1)
        out["colocate"] = split
    return out


def _private_static_violation(inst: Instance) -> bool:
    """A private model input on an untrusted source, or a private output sent to an untrusted sink."""
    g, s = inst.graph, inst.system
    priv = inst.private_tensors
    if priv[g.n :].any() and not s.trusted[s.source_index]:
        return True
    sink = s.sink_index
    return bool(sink is not None and not s.trusted[sink] and any(priv[o] for o in g.outputs))


def convex_sets(inst: Instance, onehot: BoolArray) -> BoolArray:
    """(N, k) bool: each device's layer set is convex in the DAG.

    A set S is convex when no layer outside S lies on a path between two layers of S, i.e. no
    layer outside S has both an ancestor and a descendant in S. Computed by one forward and one
    backward pass in topological order, vectorised over placements and devices.
    """
    g = inst.graph
    N, n, k = onehot.shape
    below = np.zeros((n, N, k), dtype=bool)  # some ancestor of v is in S
    for v in range(n):
        for u in g.preds[v]:
            below[v] |= onehot[:, u, :] | below[u]
    above = np.zeros((n, N, k), dtype=bool)  # some descendant of v is in S
    for v in range(n - 1, -1, -1):
        for w in g.succs[v]:
            above[v] |= onehot[:, w, :] | above[w]
    inside = np.transpose(onehot, (1, 0, 2))
    return np.asarray(~(below & above & ~inside).any(axis=0))
