"""Static tables of the CP-SAT model: which placements and transfers can occur, and their ticks.

Everything here is numpy over the instance; no CP-SAT variable is created. The tables follow the
cost model of docs/instance-format.md §5 (``formulation/evaluator/batch.py`` is the reference):

* tensor ``t`` (layer output ``t < n`` or model input ``n + j``) is *produced* on the device of its
  layer, or on the source for model inputs;
* it can be *received* on ``b`` when a consumer of ``t`` may run on ``b``, or ``t`` is a model
  output and ``b`` is the sink;
* sending ``t`` over ``a -> b`` occupies the channel for ``bytes / bandwidth`` and takes
  ``latency + bytes / bandwidth``.

Rounding errors of ticks (:func:`formulation.cp.scaling.round_to_ticks`) are aggregated into
worst-case error bounds of each time quantity of the model (see the attributes of
:class:`TimeTables`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from formulation.costs import transfer_seconds
from formulation.cp.scaling import DOMAIN_LIMIT, power_of_ten_scale, round_to_ticks, ticks_at_least
from formulation.model import BoolArray, FloatArray, Instance, IntArray


@dataclass(frozen=True)
class Masks:
    """Which placements and transfers the model must consider.

    Attributes
    ----------
    place : (n, k) bool
        Layer v may run on d: ``allowed`` and ``private`` (``inst.placement_mask``) and a finite
        ``t(v, d)``, for every member of v's colocation class.
    produce : (T, k) bool
        Tensor t may be produced on a (the layer's ``place`` row; the source for model inputs).
    receive : (T, k) bool
        Tensor t may be needed on b (a consumer may run on b, or t is an output and b the sink).
    ship : (T, k, k) bool
        Tensor t may be sent a -> b: produced on a, needed on b != a, and the channel exists.
    blocked : (T, k, k) bool
        Produced on a and needed on b != a but there is no channel a -> b (forbidden pairs).
    """

    place: BoolArray
    produce: BoolArray
    receive: BoolArray
    ship: BoolArray
    blocked: BoolArray


def build_masks(inst: Instance, latency_cap_s: float | None = None) -> Masks:
    """The masks of :class:`Masks` for an instance.

    ``latency_cap_s``: a bound imposed on the parallel makespan (``L <= cap``, a deadline or the
    solution hint's objective, :func:`formulation.cp.build.time_caps`); options beyond it
    (:func:`beyond_latency_cap`) are left out, so that their durations neither lengthen the
    horizon nor coarsen the tick.
    """
    g, s = inst.graph, inst.system
    n, k, T = g.n, s.k, g.n + g.m
    place = inst.placement_mask & np.isfinite(inst.time)
    if latency_cap_s is not None and np.isfinite(latency_cap_s):
        place &= ~beyond_latency_cap(inst, latency_cap_s)
    for cls in inst.colocate_classes:
        # A colocation class runs on one device: only on devices every member may use.
        place[cls] &= place[cls].all(axis=0)
    produce = np.zeros((T, k), dtype=bool)
    produce[:n] = place
    produce[n:, s.source_index] = True
    receive = np.zeros((T, k), dtype=bool)
    for t in range(T):
        for c in g.consumers[t]:
            receive[t] |= place[c]
    if s.sink_index is not None:
        for o in g.outputs:
            receive[o, s.sink_index] = True
    pair = produce[:, :, None] & receive[:, None, :] & ~np.eye(k, dtype=bool)[None, :, :]
    ship = pair & s.has_link[None, :, :]
    blocked = pair & ~s.has_link[None, :, :]
    return Masks(place, produce, receive, ship, blocked)


def beyond_latency_cap(inst: Instance, cap_s: float) -> BoolArray:
    """``out[v, d]``: layer v on d makes the parallel makespan exceed ``cap_s`` seconds.

    For a layer that precedes a model output (its end lies within ``[0, L]``) on device d,
    ``L >= t(v, d) + max_t (latency + bytes_t / bandwidth)`` over the model inputs t it reads
    from the source ``src != d`` (a transfer starts at 0 at the earliest). Pairs without a channel
    are left to the ``blocked`` rule.
    """
    g, s = inst.graph, inst.system
    src = s.source_index
    outputs = list(g.outputs)
    on_path = g.is_output | g.ancestors[:, outputs].any(axis=1) if outputs else g.is_output
    lower = np.where(np.isfinite(inst.time), inst.time, np.inf).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for v in np.flatnonzero(on_path):
            for t in g.layer_inputs[v]:
                if t < g.n:
                    continue
                sec = transfer_seconds(s.link_latency[src, :], g.tensor_bytes[t], s.bandwidth[src, :])
                sec = np.where(s.has_link[src, :] & (np.arange(s.k) != src), sec, 0.0)
                # an undefined time (0 B over 0 B/s) excludes nothing: leaving an option in is safe
                lower[v] = np.maximum(lower[v], inst.time[v] + np.nan_to_num(sec, nan=0.0, posinf=np.inf))
    return np.asarray(on_path[:, None] & (lower > cap_s))


@dataclass(frozen=True)
class TimeTables:
    """Durations in ticks and the worst-case rounding error of every time quantity.

    Attributes
    ----------
    ticks_per_s : float
        Ticks per second (a power of ten).
    comp, comp_err : (n, k)
        ``t(v, d)`` in ticks and its rounding error in seconds (0 where not placeable).
    dur, dur_err : (T, k, k)
        Transfer time ``latency + bytes / bandwidth`` in ticks and its error (0 where not shipped).
    occ, occ_err : (T, k, k)
        Occupied channel time ``bytes / bandwidth`` in ticks and its error.
    occ_s, dur_s : (T, k, k)
        Occupied channel time and transfer time in seconds (floats, for linear forms).
    comp_lo, occ_lo : (n, k) and (T, k, k)
        ``t(v, d)`` and occupied times rounded *down* (busy times of the parallel idle term).
    horizon : int
        Upper bound in ticks on every time quantity of the model: the sequential latency of the
        slowest placement, ``sum_v max_d comp + sum_(t,b) max_a dur``. It also bounds every finish
        time of every semi-active parallel schedule (a longest path visits each layer once and each
        shipped tensor's transfer at most once).
    err_latency_seq, err_latency_par : float
        Worst-case ``|latency - ticks / ticks_per_s|`` in seconds for the sequential latency (a sum
        of every computation and transfer) and for the parallel makespan of fixed device orders (a
        longest path: one computation per layer, at most one transfer per tensor).
    err_compute : (k,)
        Error of a device's compute time.
    err_link : (k, k)
        Error of a channel's occupied time.
    err_busy_lo : (k,)
        Error of a device's ``compute + sending + receiving`` from the rounded-down tables.
    """

    ticks_per_s: float
    comp: IntArray
    comp_err: FloatArray
    dur: IntArray
    dur_err: FloatArray
    occ: IntArray
    occ_err: FloatArray
    occ_s: FloatArray
    dur_s: FloatArray
    comp_lo: IntArray
    occ_lo: IntArray
    horizon: int
    err_latency_seq: float
    err_latency_par: float
    err_compute: FloatArray
    err_link: FloatArray
    err_busy_lo: FloatArray
    err_comm: FloatArray
    """(k,) error of ``sending + receiving`` of a device from the rounded-up tables."""
    serial: BoolArray
    """(k,) devices whose communication does not overlap compute (``comm_overlap: false``)."""

    def cap(self, seconds: float | None) -> int:
        """An upper bound in ticks on a quantity whose true value is at most ``seconds``.

        ``ceil(seconds * ticks_per_s)`` plus one tick per layer and tensor (rounding up may
        lengthen a longest path by a tick per item), at most :attr:`horizon`.
        """
        if seconds is None or not np.isfinite(seconds):
            return self.horizon
        slack = self.comp.shape[0] + self.dur.shape[0] + 1
        return min(self.horizon, ticks_at_least(seconds, self.ticks_per_s) + slack)

    @property
    def err_period(self) -> float:
        """Error of the period ``max(busy, channel busy)``: the largest single error (a device's busy
        time is its compute, plus its sending and receiving where they do not overlap it)."""
        busy = self.err_compute + np.where(self.serial, self.err_comm, 0.0)
        return float(max(busy.max(initial=0.0), self.err_link.max(initial=0.0)))

    def err_busy(self, d: int) -> float:
        """Error of ``compute + sending + receiving`` of device ``d`` (rounded-down tables)."""
        return float(self.err_busy_lo[d])


def build_time_tables(inst: Instance, masks: Masks, ticks_max: float, span_s: float | None = None) -> TimeTables:
    """Tick tables for an instance.

    Parameters
    ----------
    ticks_max : float
        ``span`` in ticks stays below this (``ticks_per_s`` is a power of ten).
    span_s : float, optional
        The time span that must be resolved (an upper bound on the makespan and period of the
        solutions of interest); default and upper limit: the worst-case horizon. The horizon in
        ticks is further kept below :data:`formulation.cp.scaling.DOMAIN_LIMIT`.
    """
    g, s = inst.graph, inst.system
    comp_s = np.where(masks.place, inst.time, 0.0)
    nbytes = g.tensor_bytes[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        occ_s = np.where(masks.ship, nbytes / s.bandwidth[None, :, :], 0.0)
    dur_s = np.where(masks.ship, occ_s + s.link_latency[None, :, :], 0.0)
    upper_s = comp_s.max(axis=1, initial=0.0).sum() + dur_s.max(axis=1, initial=0.0).sum()
    # A zero span (e.g. a zero deadline) says nothing about the resolution the other items need.
    span = float(upper_s) if span_s is None or span_s <= 0 else min(float(upper_s), span_s)
    tps = min(power_of_ten_scale(span, ticks_max), power_of_ten_scale(float(upper_s), DOMAIN_LIMIT))
    comp, comp_err = round_to_ticks(comp_s, tps)
    dur, dur_err = round_to_ticks(dur_s, tps)
    occ, occ_err = round_to_ticks(occ_s, tps)
    comp_lo, comp_lo_err = round_to_ticks(comp_s, tps, up=False)
    occ_lo, occ_lo_err = round_to_ticks(occ_s, tps, up=False)
    link_lo = occ_lo_err.sum(axis=0)
    horizon = int(comp.max(axis=1, initial=0).sum() + dur.max(axis=1, initial=0).sum())
    # Rounding errors are 0 outside the masks (those entries are exact zeros).
    err_link = occ_err.sum(axis=0)
    return TimeTables(
        ticks_per_s=tps,
        comp=comp,
        comp_err=comp_err,
        dur=dur,
        dur_err=dur_err,
        occ=occ,
        occ_err=occ_err,
        occ_s=occ_s,
        dur_s=dur_s,
        comp_lo=comp_lo,
        occ_lo=occ_lo,
        horizon=horizon,
        err_latency_seq=float(comp_err.max(axis=1, initial=0.0).sum() + dur_err.max(axis=1, initial=0.0).sum()),
        err_latency_par=float(comp_err.max(axis=1, initial=0.0).sum() + dur_err.max(axis=(1, 2), initial=0.0).sum()),
        err_compute=comp_err.sum(axis=0),
        err_link=err_link,
        # Sending: a tensor may go to every other device; receiving: it comes from one producer.
        err_busy_lo=comp_lo_err.sum(axis=0) + link_lo.sum(axis=1) + occ_lo_err.max(axis=1, initial=0.0).sum(axis=0),
        # Sending once (send_once) takes a max of rounded values: its error is at most the sum's.
        err_comm=err_link.sum(axis=1) + occ_err.max(axis=1, initial=0.0).sum(axis=0),
        serial=~s.comm_overlap,
    )
