"""Parallel-latency schedules: the default list schedule, schedule checking, and the optimal schedule.

Semantics (docs/instance-format.md §5.4): each device runs one layer at a time without
preemption; transfers run concurrently with compute and with each other; a layer starts when every
input tensor is on its device; a tensor produced on ``a`` arrives on ``b != a`` at
``finish + latency(a, b) + bytes / bandwidth(a, b)`` (model inputs are produced on the source at
time 0); ``L`` is the time at which every model output has finished and reached the sink.

**Default list-scheduling rule** (used when a placement comes without a schedule). Layers are
ordered by decreasing *upward rank* under the given placement (Topcuoglu et al., HEFT, IEEE TPDS
2002)::

    rank(v) = t(v, d(v)) + max( max_{s in succ(v)} c(v, s) + rank(s),  c_sink(v) )

with ``c(v, s)`` the transfer time of v's output from d(v) to d(s) (0 on the same device) and
``c_sink(v)`` its transfer time to the sink if v is a model output. Ties are broken by the
topological index, which makes the order a topological order. Each layer in turn starts at the
earliest time its device is free (after the previous layer placed on it; no insertion into idle
gaps) and all its inputs have arrived.

For a fixed placement every objective of the format is non-decreasing in ``L``, so the best schedule
of a placement is one of minimum makespan; :func:`optimal_makespan` finds it exactly by
enumerating per-device orders.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from formulation.model import BoolArray, FloatArray, Instance, IntArray

if TYPE_CHECKING:
    from formulation.evaluator.batch import TransferTables


class ScheduleSearchLimit(RuntimeError):
    """The exhaustive schedule search hit its node limit."""


#: Absolute slack (seconds) allowed when checking a given schedule, for float noise.
SCHEDULE_TOL = 1e-9


def _padded(lists: tuple[tuple[int, ...], ...]) -> IntArray:
    width = max((len(x) for x in lists), default=0)
    out = np.full((len(lists), max(width, 1)), -1, dtype=np.int64)
    for i, x in enumerate(lists):
        out[i, : len(x)] = x
    return out


def list_schedule_many(
    inst: Instance, P: IntArray, comp: FloatArray, tt: TransferTables
) -> tuple[FloatArray, FloatArray]:
    """The default list schedule for N placements at once.

    Returns
    -------
    starts : (N, n) float
        Start time of every layer.
    makespan : (N,) float
        Parallel latency ``L``.
    """
    g, s = inst.graph, inst.system
    N, n, k = P.shape[0], g.n, s.k
    rows = np.arange(N)
    sink = s.sink_index
    # Per-tensor delay to each device: duration is 0 where the tensor is not sent (same device).
    delay = tt.duration  # (N, T, k)
    out_delay = np.zeros((N, n))
    if sink is not None:
        for o in g.outputs:
            out_delay[:, o] = delay[:, o, sink]
    rank = np.zeros((N, n))
    for v in range(n - 1, -1, -1):
        best = out_delay[:, v] if g.is_output[v] else np.zeros(N)
        for w in g.succs[v]:
            best = np.maximum(best, delay[rows, v, P[:, w]] + rank[:, w])
        rank[:, v] = comp[:, v] + best
    order = np.lexsort((np.broadcast_to(np.arange(n), (N, n)), -rank), axis=1)
    ins = _padded(g.layer_inputs)  # (n, width) tensor indices, -1 padded
    finish = np.zeros((N, n + g.m))  # model inputs finish at 0
    starts = np.zeros((N, n))
    free = np.zeros((N, k))
    for step in range(n):
        vs = order[:, step]
        d = P[rows, vs]
        start = free[rows, d]
        tin = ins[vs]  # (N, width)
        valid = tin >= 0
        tcl = np.where(valid, tin, 0)
        arr = finish[rows[:, None], tcl] + delay[rows[:, None], tcl, d[:, None]]
        arr = np.where(valid, arr, 0.0)
        start = np.maximum(start, arr.max(axis=1))
        fin = start + comp[rows, vs]
        starts[rows, vs] = start
        finish[rows, vs] = fin
        free[rows, d] = fin
    if g.outputs:
        outs = list(g.outputs)
        makespan = (finish[:, outs] + out_delay[:, outs]).max(axis=1)
    else:
        makespan = np.zeros(N)
    return starts, makespan


@dataclass(frozen=True)
class ScheduleCheck:
    """Outcome of checking a given schedule against a placement."""

    finish: FloatArray
    makespan: float
    problems: tuple[str, ...]


def _arrival(inst: Instance, P: IntArray, finish: FloatArray, t: int, d: int) -> float:
    """Time tensor ``t`` is available on device ``d`` given producer finish times."""
    g, s = inst.graph, inst.system
    a = int(P[t]) if t < g.n else s.source_index
    ready = float(finish[t]) if t < g.n else 0.0
    return ready + s.transfer_time(a, d, float(g.tensor_bytes[t]))


def makespan_of(inst: Instance, P: IntArray, finish: FloatArray) -> float:
    """``L``: latest finish of a model output plus its transfer to the sink (if elsewhere)."""
    g, s = inst.graph, inst.system
    sink = s.sink_index
    L = 0.0
    for o in g.outputs:
        L = max(L, float(finish[o]) if sink is None else _arrival(inst, P, finish, o, sink))
    return L


def check_schedule(inst: Instance, P: IntArray, starts: Mapping[str, float]) -> ScheduleCheck:
    """Check a schedule (``{layer: start seconds}``) for precedence and device non-overlap.

    Each problem is described in words: a layer starting before an input arrived, two layers
    overlapping on a device, a missing or negative start time.
    """
    g = inst.graph
    problems: list[str] = []
    start = np.zeros(g.n)
    for v, lay in enumerate(g.layer_ids):
        if lay not in starts:
            problems.append(f"the schedule has no start time for layer {lay!r}")
            continue
        start[v] = float(starts[lay])
        if not math.isfinite(start[v]) or start[v] < -SCHEDULE_TOL:
            problems.append(f"layer {lay!r} has start time {start[v]!r}; expected a finite time >= 0")
    dur = inst.time[np.arange(g.n), P]
    finish = start + dur
    for v in range(g.n):
        d = int(P[v])
        for t in g.layer_inputs[v]:
            arr = _arrival(inst, P, finish, t, d)
            if start[v] < arr - SCHEDULE_TOL * max(1.0, arr):
                problems.append(
                    f"layer {g.layer_ids[v]!r} starts at {start[v]:.9g} s on "
                    f"{inst.system.device_ids[d]!r} but its input {g.tensor_ids[t]!r} arrives at {arr:.9g} s"
                )
    for d in range(inst.k):
        on = sorted((start[v], finish[v], v) for v in np.flatnonzero(d == P))
        for (s0, f0, v0), (s1, _f1, v1) in itertools.pairwise(on):
            if s1 < f0 - SCHEDULE_TOL * max(1.0, f0):
                problems.append(
                    f"layers {g.layer_ids[v0]!r} [{s0:.9g}, {f0:.9g}) s and {g.layer_ids[v1]!r} "
                    f"(starting {s1:.9g} s) overlap on {inst.system.device_ids[d]!r}"
                )
    return ScheduleCheck(finish, makespan_of(inst, P, finish), tuple(problems))


def optimal_makespan(
    inst: Instance, P: IntArray, upper: float = math.inf, node_limit: int = 2_000_000
) -> tuple[float, FloatArray] | None:
    """Minimum parallel latency of a placement, by exhaustive search over per-device orders.

    Every semi-active schedule is produced by scheduling layers one at a time, in some topological
    order, each at its earliest feasible start after the previous layer on its device. The search
    enumerates such orders depth first with two reductions that keep it exact:

    * partial-order reduction: a layer ``v`` is not taken right after ``u`` when ``v < u`` and the
      two are independent (different devices, no edge ``u -> v``); swapping them yields the same
      schedule, and the lexicographically smallest generating order never contains such a pair;
    * bounding: a branch is cut when ``max(start(v) + rank(v))`` over ready layers, or a device's
      free time plus its remaining work, reaches the best makespan found (``rank`` as in the list
      schedule is a lower bound on the time from a layer's start to the end).

    Parameters
    ----------
    upper : float
        Only schedules strictly shorter than this are of interest.
    node_limit : int
        Search nodes before giving up (``None`` is then returned, never a wrong answer).

    Returns
    -------
    (makespan, starts) or None
        ``None`` when no schedule is strictly shorter than ``upper``.

    Raises
    ------
    ScheduleSearchLimit
        When ``node_limit`` search nodes did not suffice (never a wrong answer).
    """
    g, s = inst.graph, inst.system
    n = g.n
    dur = [float(x) for x in inst.time[np.arange(n), P]]
    dev = [int(x) for x in P]
    sink = s.sink_index
    # delay[v][t_idx] for each input tensor of v; tail[v] = transfer to sink if output.
    in_src: list[list[tuple[int, float]]] = []
    for v in range(n):
        row = []
        for t in g.layer_inputs[v]:
            a = dev[t] if t < n else s.source_index
            row.append((t, s.transfer_time(a, dev[v], float(g.tensor_bytes[t]))))
        in_src.append(row)
    tail = [0.0] * n
    for o in g.outputs:
        tail[o] = 0.0 if sink is None else s.transfer_time(dev[o], sink, float(g.output_bytes[o]))
    # Only outputs and their ancestors delay L; a layer that reaches no output may finish after L,
    # so it takes no part in the bounds (rank -inf, no share of a device's remaining work).
    needed = _reaches_output(inst)
    rank = [-math.inf] * n
    for v in range(n - 1, -1, -1):
        if not needed[v]:
            continue
        best = tail[v] if g.is_output[v] else -math.inf
        for w in g.succs[v]:
            if needed[w]:
                best = max(best, s.transfer_time(dev[v], dev[w], float(g.output_bytes[v])) + rank[w])
        rank[v] = dur[v] + best
    succ_set = [set(x) for x in g.succs]
    npred = [len(g.preds[v]) for v in range(n)]
    remaining = [0.0] * s.k
    left = [0] * s.k  # needed layers not yet scheduled: a float test on `remaining` sees rounding residue
    for v in range(n):
        if needed[v]:
            remaining[dev[v]] += dur[v]
            left[dev[v]] += 1
    finish = [0.0] * n
    free = [0.0] * s.k
    best_val = upper
    best_starts: list[float] | None = None
    starts = [0.0] * n
    nodes = 0
    limit_hit = False

    def est(v: int) -> float:
        t0 = free[dev[v]]
        for t, dl in in_src[v]:
            arr = (finish[t] if t < n else 0.0) + dl
            if arr > t0:
                t0 = arr
        return t0

    def dfs(ready: list[int], last: int, done: int, cur: float) -> None:
        nonlocal best_val, best_starts, nodes, limit_hit
        if limit_hit:
            return
        nodes += 1
        if nodes > node_limit:
            limit_hit = True
            return
        if done == n:
            if cur < best_val:
                best_val = cur
                best_starts = list(starts)
            return
        lb = cur
        for d in range(s.k):
            if left[d]:
                lb = max(lb, free[d] + remaining[d])
        for v in ready:
            lb = max(lb, est(v) + rank[v])
        if lb >= best_val * (1 - 1e-12):
            return
        for v in sorted(ready, key=lambda x: (est(x) + rank[x], x)):
            if last >= 0 and v < last and dev[v] != dev[last] and v not in succ_set[last]:
                continue
            st = est(v)
            d = dev[v]
            old_free = free[d]
            starts[v] = st
            finish[v] = st + dur[v]
            free[d] = finish[v]
            remaining[d] -= dur[v] if needed[v] else 0.0
            left[d] -= 1 if needed[v] else 0
            new_ready = [x for x in ready if x != v]
            for w in g.succs[v]:
                npred[w] -= 1
                if npred[w] == 0:
                    new_ready.append(w)
            new_cur = max(cur, finish[v] + tail[v]) if g.is_output[v] else cur
            dfs(new_ready, v, done + 1, new_cur)
            for w in g.succs[v]:
                npred[w] += 1
            remaining[d] += dur[v] if needed[v] else 0.0
            left[d] += 1 if needed[v] else 0
            free[d] = old_free

    dfs([v for v in range(n) if npred[v] == 0], -1, 0, 0.0)
    if limit_hit:
        raise ScheduleSearchLimit(f"the optimal-schedule search exceeded {node_limit} nodes")
    if best_starts is None:
        return None
    return best_val, np.array(best_starts)


def makespan_lower_bound_many(
    inst: Instance, P: IntArray, comp: FloatArray, tt: TransferTables
) -> FloatArray:
    """(N,) a lower bound on the parallel latency of each placement, valid for every schedule.

    The larger of (a) the ASAP makespan that ignores device conflicts (each layer starts when its
    inputs arrive; transfer delays included) and (b) the busiest device's total compute over the
    layers that must finish before L (outputs and their ancestors).
    """
    g, s = inst.graph, inst.system
    N, n = P.shape[0], g.n
    rows = np.arange(N)
    finish = np.zeros((N, n + g.m))
    for v in range(n):
        start = np.zeros(N)
        for t in g.layer_inputs[v]:
            start = np.maximum(start, finish[:, t] + tt.duration[rows, t, P[:, v]])
        finish[:, v] = start + comp[:, v]
    sink = s.sink_index
    cp = np.zeros(N)
    for o in g.outputs:
        cp = np.maximum(cp, finish[:, o] + (tt.duration[:, o, sink] if sink is not None else 0.0))
    load = np.zeros((N, s.k))
    needed = _reaches_output(inst)[None, :]
    for d in range(s.k):
        load[:, d] = np.where((d == P) & needed, comp, 0.0).sum(axis=1)
    return np.maximum(cp, load.max(axis=1))


def _reaches_output(inst: Instance) -> BoolArray:
    """(n,) bool: the layer is a model output or an ancestor of one (it must finish before L)."""
    g = inst.graph
    out = g.is_output.copy()
    if g.outputs:
        out |= g.ancestors[:, list(g.outputs)].any(axis=1)
    return out
