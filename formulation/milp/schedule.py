"""Parallel latency as a disjunctive scheduling model (docs/instance-format.md §5.4).

The model is the classic disjunctive formulation of Manne ("On the job-shop scheduling problem",
Operations Research 8(2), 1960) with start-time variables and big-M order variables, extended with
processor assignment and communication delays as in the multiprocessor scheduling with
communication delays (MSPCD) MILPs of Davidović, Liberti, Maculan and Mladenović ("Towards the
optimal solution of the multiprocessor scheduling problem with communication delays", MISTA 2007).
Transfers run concurrently with compute and with each other, so a tensor only delays its readers.

Variables: start ``S[v] >= 0`` (seconds), makespan ``latency``, and for every pair of layers
``u < v`` (topological index) that are not ordered by a path and may share a device, the order
``o[u, v] in {0, 1}`` (1: u before v) and the same-device indicator ``q[u, v] in [0, 1]``. With
``T[u] = sum_d t(u, d) x[u, d]`` and ``Delta[t, b] = sum_a dur(a, b) z[t, a, b]`` the time tensor
``t`` spends reaching ``b`` (0 when produced there)::

    S[v] >= S[u] + T[u]                                            edge u -> v           (prec)
    S[v] >= S[u] + T[u] + Delta[u, b] - M[u, b] (1 - x[v, b])      edge u -> v, device b (ship)
    S[v] >= sum_{b != source} dur(source, b) x[v, b]               model input -> v      (input)
    latency >= S[o] + T[o] + sum_{a != sink} dur(a, sink) x[o, a]  model output o        (makespan)
    q[u, v] >= x[u, d] + x[v, d] - 1                               shared device d       (same)
    S[v] >= S[u] + T[u] - M1[u, v] (2 - o[u, v] - q[u, v])                                (first)
    S[u] >= S[v] + T[v] - M2[u, v] (1 + o[u, v] - q[u, v])                                (second)

Big-M values come from the instance, never constants. ``M[u, b] = max_a dur(a, b)`` for ``u``'s
output is the largest delay the (ship) row can add, so the row is implied by (prec) when ``v`` is
not on ``b``. For the disjunctions, every semi-active schedule (each layer starts as soon as its
device and inputs allow) finishes every layer by the horizon::

    H = sum_v (max_d t(v, d) + largest transfer into v) + largest transfer of an output to the sink

(follow the chain of layers that fixed each start back to time 0: it visits each layer at most
once). Since every objective is non-decreasing in the makespan, some optimal solution is
semi-active, so ``S[v] <= H - min_d t(v, d)`` and ``latency <= H`` are valid, and with the
earliest start ``est[v]`` (longest path of minimum times) ``M1[u, v] = H - est[v]`` and
``M2[u, v] = H - est[u]`` bound ``F[u] - S[v]`` and ``F[v] - S[u]``.

:func:`semi_active_starts` turns the solver's start times into an exactly feasible schedule: it
keeps the device orders the solver chose and recomputes earliest starts with the evaluator's own
arithmetic, so float tolerances of the solver never show up as schedule violations; its makespan is
never larger than the solver's.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

from formulation.costs import earliest_start
from formulation.milp.context import MilpContext
from formulation.model import FloatArray, Instance, IntArray


def _tensor_arrivals(ctx: MilpContext) -> dict[tuple[int, int], list[int]]:
    """``(tensor, receiving device) -> transfer indices``."""
    into: dict[tuple[int, int], list[int]] = defaultdict(list)
    tr = ctx.transfers
    for i in range(len(tr)):
        into[(int(tr.tensor[i]), int(tr.dst[i]))].append(i)
    return into


def horizon(ctx: MilpContext) -> tuple[float, FloatArray]:
    """The horizon ``H`` and each layer's earliest start ``est`` (see the module docstring)."""
    inst, allowed = ctx.inst, ctx.allowed
    g, s = inst.graph, inst.system
    t = np.where(allowed, inst.time, np.nan)
    tmax = np.nan_to_num(np.nanmax(t, axis=1, initial=0.0) if g.n else np.zeros(0))
    tmin = np.nan_to_num(np.nanmin(np.where(allowed, inst.time, np.inf), axis=1, initial=np.inf), posinf=0.0)
    into = _tensor_arrivals(ctx)
    dur = ctx.transfers.duration_s
    H = 0.0
    for v in range(g.n):
        worst = 0.0
        for tt in g.layer_inputs[v]:
            for b in np.flatnonzero(allowed[v]):
                for i in into.get((tt, int(b)), []):
                    worst = max(worst, float(dur[i]))
        H += float(tmax[v]) + worst
    if s.sink_index is not None:
        H += max((float(dur[i]) for o in g.outputs for i in into.get((o, s.sink_index), [])), default=0.0)
    est = np.zeros(g.n)
    for v in range(g.n):
        for u in g.preds[v]:
            est[v] = max(est[v], est[u] + tmin[u])
    return H, est


def add_schedule(ctx: MilpContext) -> int:
    """Add start times, order variables and the rows of the module docstring; return ``latency``."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    g, s = inst.graph, inst.system
    n = g.n
    H, est = horizon(ctx)
    ctx.horizon_s = H
    tmin = np.nan_to_num(np.nanmin(np.where(allowed, inst.time, np.inf), axis=1, initial=np.inf), posinf=0.0)
    S = m.add_vars("S", ctx.layer_names, est, np.maximum(est, H - tmin), unit="time")
    ctx.start = S
    L = m.add_var("latency", 0.0, H, unit="time")
    ctx.metric_cols["latency"] = L
    tr, into = ctx.transfers, _tensor_arrivals(ctx)

    def dur_terms(u: int, sign: float) -> list[tuple[int, float]]:
        cols, vals = ctx.layer_time_terms(u)
        return [(int(c), sign * float(w)) for c, w in zip(cols, vals, strict=True)]

    prec, ship, ship_rhs, inp = [], [], [], []
    for v in range(n):
        for t in g.layer_inputs[v]:
            tn, vn = ctx.tensor_names[t], ctx.layer_names[v]
            if t >= n:
                terms = [
                    (int(x[v, b]), -s.transfer_time(s.source_index, int(b), float(g.tensor_bytes[t])))
                    for b in np.flatnonzero(allowed[v])
                    if b != s.source_index
                ]
                if terms:
                    inp.append((f"{tn},{vn}", [(int(S[v]), 1.0), *terms]))
                continue
            base = [(int(S[v]), 1.0), (int(S[t]), -1.0), *dur_terms(t, -1.0)]
            if ctx.pair_mode:
                # y picks the device pair of the edge: its delay is exact, no big-M needed.
                delay = [
                    (col, -s.transfer_time(a, b, float(g.tensor_bytes[t])))
                    for (a, b), col in ctx.pairs.get((t, v), {}).items()
                    if a != b
                ]
                prec.append((f"{tn},{vn}", base + delay))
                continue
            prec.append((f"{tn},{vn}", base))
            for b in np.flatnonzero(allowed[v]):
                ids = into.get((t, int(b)), [])
                if not ids:
                    continue
                M = float(max(tr.duration_s[i] for i in ids))
                terms = base + [(int(tr.col[i]), -float(tr.duration_s[i])) for i in ids] + [(int(x[v, b]), -M)]
                ship.append((f"{tn},{vn},{ctx.device_names[b]}", terms))
                ship_rhs.append(-M)
    m.add_term_rows("prec", prec, 0.0)
    m.add_term_rows("ship", ship, ship_rhs)
    m.add_term_rows("input", inp, 0.0)
    span = []
    for o in g.outputs:
        terms = [(L, 1.0), (int(S[o]), -1.0), *dur_terms(o, -1.0)]
        if s.sink_index is not None:
            terms += [(int(tr.col[i]), -float(tr.duration_s[i])) for i in into.get((o, s.sink_index), [])]
        span.append((ctx.layer_names[o], terms))
    m.add_term_rows("makespan", span, 0.0)
    _add_disjunctions(ctx, H, est)
    return L


def disjunctive_pairs(inst: Instance, allowed: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``u < v`` not ordered by a path that share an allowed device."""
    anc = inst.graph.ancestors
    n = inst.n
    share = (allowed.astype(np.int64) @ allowed.T.astype(np.int64)) > 0
    return [(u, v) for u in range(n) for v in range(u + 1, n) if share[u, v] and not anc[u, v]]


def _add_disjunctions(ctx: MilpContext, H: float, est: FloatArray) -> None:
    m, x, allowed = ctx.model, ctx.x, ctx.allowed
    assert ctx.start is not None
    S = ctx.start
    pairs = disjunctive_pairs(ctx.inst, allowed)
    labels = [f"{ctx.layer_names[u]},{ctx.layer_names[v]}" for u, v in pairs]
    o = m.add_vars("o", labels, 0.0, 1.0, integer=True)
    q = m.add_vars("q", labels, 0.0, 1.0)
    same, first, second, r1, r2 = [], [], [], [], []
    for i, (u, v) in enumerate(pairs):
        ctx.order[(u, v)] = int(o[i])
        for d in np.flatnonzero(allowed[u] & allowed[v]):
            same.append(
                (f"{labels[i]},{ctx.device_names[d]}", [(int(q[i]), 1.0), (int(x[u, d]), -1.0), (int(x[v, d]), -1.0)])
            )
        M1, M2 = H - float(est[v]), H - float(est[u])
        cu, wu = ctx.layer_time_terms(u)
        cv, wv = ctx.layer_time_terms(v)
        first.append(
            (
                labels[i],
                [
                    (int(S[v]), 1.0),
                    (int(S[u]), -1.0),
                    *zip(cu.tolist(), (-wu).tolist(), strict=True),
                    (int(o[i]), -M1),
                    (int(q[i]), -M1),
                ],
            )
        )
        r1.append(-2.0 * M1)
        second.append(
            (
                labels[i],
                [
                    (int(S[u]), 1.0),
                    (int(S[v]), -1.0),
                    *zip(cv.tolist(), (-wv).tolist(), strict=True),
                    (int(o[i]), M2),
                    (int(q[i]), -M2),
                ],
            )
        )
        r2.append(-M2)
    m.add_term_rows("same", same, -1.0)
    m.add_term_rows("first", first, r1)
    m.add_term_rows("second", second, r2)


def semi_active_starts(
    inst: Instance, P: IntArray, hint: FloatArray, before: Iterable[tuple[int, int]] = ()
) -> tuple[FloatArray, IntArray]:
    """Earliest start times keeping the solver's order on every device.

    Layers are taken in a topological order of the DAG plus the ``before`` pairs (``(u, v)``: u
    runs before v, from the solver's order variables), ties broken by ``(hint[v], v)`` with
    ``hint`` the solver's start times; each starts when its device is free and its inputs have
    arrived, with the evaluator's own arithmetic. When ``hint`` is a feasible schedule of ``P``
    that respects ``before``, every start is no later than in ``hint`` (induction over that
    order), so the makespan does not grow. A cycle through ``before`` (possible only among
    zero-length layers tied within the solver's tolerance) is broken by ``hint``.

    Returns
    -------
    starts : (n,) float
    order : (n,) int
        The processing order.
    """
    g, s = inst.graph, inst.system
    n = g.n
    extra: list[list[int]] = [[] for _ in range(n)]
    indeg = [len(g.preds[v]) for v in range(n)]
    soft = [0] * n
    for u, v in before:
        extra[u].append(v)
        soft[v] += 1
    pending = set(range(n))
    heap = [(float(hint[v]), v) for v in range(n) if indeg[v] == 0 and soft[v] == 0]
    heapq.heapify(heap)
    free = np.zeros(s.k)
    finish = np.zeros(n)
    starts = np.zeros(n)
    order: list[int] = []
    while pending:
        if not heap:  # a cycle through `before`: release the DAG-ready layer the hint puts first
            ready = [v for v in pending if indeg[v] == 0]
            v0 = min(ready, key=lambda v: (float(hint[v]), v))
            soft[v0] = 0
            heap.append((float(hint[v0]), v0))
        _, v = heapq.heappop(heap)
        if v not in pending:
            continue
        pending.discard(v)
        order.append(v)
        d = int(P[v])
        st = float(earliest_start(float(free[d]), g.layer_inputs[v], finish, n, _delay_to(inst, P, d)))
        starts[v] = st
        finish[v] = st + float(inst.time[v, d])
        free[d] = finish[v]
        for w in (*g.succs[v], *extra[v]):
            if w in g.succs[v]:
                indeg[w] -= 1
            else:
                soft[w] -= 1
            if indeg[w] == 0 and soft[w] <= 0 and w in pending:
                heapq.heappush(heap, (float(hint[w]), w))
    return starts, np.array(order, dtype=np.int64)


def _delay_to(inst: Instance, P: IntArray, d: int) -> Callable[[int], float]:
    """``delay(t)``: transfer time of tensor ``t`` from its producer's device (the source for a model
    input) to device ``d`` (0 on ``d`` itself)."""
    g, s = inst.graph, inst.system
    return lambda t: s.transfer_time(int(P[t]) if t < g.n else s.source_index, d, float(g.tensor_bytes[t]))
