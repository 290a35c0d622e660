"""The joint non-preemptive schedule of a version-2 workload as a disjunctive MILP (``schedule``, §9.5).

The tasks are those of the evaluator (:mod:`formulation.evaluator.jobshop`): every layer on its
device, and every hop ``h`` of every transfer ``i`` (:class:`formulation.milp.workload.Move`) on its
channel, present when the transfer's indicator ``y_i`` is 1. As in the version-1 parallel model
(:mod:`formulation.milp.schedule`, Manne's disjunctive formulation, Operations Research 8(2), 1960,
with processor assignment and communication delays as in Davidović et al., MISTA 2007), with
``T[v] = sum_d t(v, d) x[v, d]``, layer starts ``S[v]``, hop starts ``G[i, h]`` and ``rel_r`` the
release of the task's request::

    S[v] >= est[v] >= rel_r,  G[i, h] >= rel_r                                   (bounds)
    S[v] >= S[u] + T[u]                                   edge u -> v            (prec)
    G[i, 0] >= S[t] + T[t]                                transfer i of layer t  (hop0)
    G[i, h+1] >= G[i, h] + occ_h + dl_h                                          (hop)
    S[c] >= G[i, last] + occ + dl - M (2 - y_i - x[c, b])  consumer c of i's tensor, b = dst(i)  (arrive)
    L_r >= S[o] + T[o] - rel_r                            output o of r          (done)
    L_r >= G[i, last] + occ + dl - rel_r - M (1 - y_i)    i: an output of r to its sink        (done_sink)

plus, per device, the disjunctions of :func:`formulation.milp.schedule._add_disjunctions` between
layers not ordered by a path (any two layers of different requests), and per channel, for two hops
``p``, ``q`` of transfers that may both happen, ``o[p, q] in {0, 1}``::

    G[q] >= G[p] + occ_p - M1 (3 - o - y_p - y_q)                                 (hop_first)
    G[p] >= G[q] + occ_q - M2 (2 + o - y_p - y_q)                                 (hop_second)

The (hop0) and (hop) rows hold whether or not the transfer happens: an absent transfer's hops only
sit at the times they would have. Big-M values come from the horizon ``Hz = max_r rel_r + sum_v
max_d t(v, d) + sum_i dur_i`` (every transfer the model can make): in the semi-active schedule of
any placement and task order (each task at its earliest start after its resource's previous task),
following back the task that fixed each start visits distinct tasks from a release, so every start,
end and arrival, and every absent transfer's hops at their earliest times, lie within ``Hz``; an
optimal schedule is semi-active (every objective is non-decreasing in the completions, §9.5), so
``S, G <= Hz`` lose nothing, and ``M = Hz + (occ + dl) - (lower bound of the left side)``,
``M1 = Hz + occ_p - rel_q``, ``M2 = Hz + occ_q - rel_p`` relax their rows fully.

:func:`retime` turns the solver's values into the schedule the evaluator checks: the task order on
each device and channel the solver chose (its order variables, ties by its start times), each task
at its earliest start; no start is later than the solver's, so no completion grows.
"""

from __future__ import annotations

import numpy as np

from formulation.evaluator.jobshop import Tasks, hop_key
from formulation.evaluator.workload_eval import workload_metrics
from formulation.milp.decode import integer_point
from formulation.milp.schedule import _add_disjunctions
from formulation.milp.workload import Terms, WorkloadContext
from formulation.model import FloatArray, IntArray

Hop = tuple[int, int]
"""``(move index, hop index)``."""


def add_joint_schedule(ctx: WorkloadContext) -> None:
    """Add the start times, order variables and rows of the module docstring; ``L_r`` must exist."""
    inst, m, wl = ctx.inst, ctx.model, ctx.wl
    g, x, allowed = inst.graph, ctx.x, ctx.allowed
    n = g.n
    rel = np.array([r.release_s for r in wl.requests])
    rel_v = rel[wl.request_of_layer]
    # a layer without any allowed device has made the model infeasible already: 0 keeps the rows finite
    tmax = np.where(allowed, inst.time, -np.inf).max(axis=1, initial=-np.inf)
    tmin = np.where(allowed, inst.time, np.inf).min(axis=1, initial=np.inf)
    tmax, tmin = np.where(np.isfinite(tmax), tmax, 0.0), np.where(np.isfinite(tmin), tmin, 0.0)
    Hz = float(rel.max(initial=0.0) + tmax.sum() + sum(mv.duration for mv in ctx.moves))
    Hz = max(Hz, 1e-12)
    ctx.horizon_s = Hz
    est = rel_v.astype(float).copy()
    for v in range(n):  # layers are in topological order
        for u in g.preds[v]:
            est[v] = max(est[v], est[u] + tmin[u])
    S = m.add_vars("S", ctx.layer_names, est, Hz, unit="time")
    ctx.start = S
    ctx.scheduled = True
    for c in ctx.latency_cols:
        m.tighten_ub(c, Hz)

    def dur(v: int, sign: float = -1.0) -> Terms:
        cols, vals = ctx.layer_time_terms(v)
        return [(int(cc), sign * float(w)) for cc, w in zip(cols, vals, strict=True)]

    prec = [(f"{ctx.layer_names[u]},{ctx.layer_names[v]}", [(int(S[v]), 1.0), (int(S[u]), -1.0), *dur(u)])
            for v in range(n) for u in g.preds[v]]
    m.add_term_rows("prec", prec, 0.0)
    labels, lbs, keys = [], [], []
    for i, mv in enumerate(ctx.moves):
        for h in range(len(mv.route)):
            labels.append(f"{i},{h}")
            lbs.append(float(rel[mv.request]))
            keys.append((i, h))
    G = m.add_vars("G", labels, lbs, Hz, unit="time")
    ctx.hop_start = {key: int(c) for key, c in zip(keys, G.tolist(), strict=True)}
    hs = ctx.hop_start
    chain, chain_rhs, arrive, arrive_rhs, done, done_rhs = [], [], [], [], [], []
    for i, mv in enumerate(ctx.moves):
        t, last = mv.tensor, len(mv.route) - 1
        if t < n:
            chain.append((f"{i},0", [(hs[(i, 0)], 1.0), (int(S[t]), -1.0), *dur(t)]))
            chain_rhs.append(0.0)
        for h in range(last):
            chain.append((f"{i},{h + 1}", [(hs[(i, h + 1)], 1.0), (hs[(i, h)], -1.0)]))
            chain_rhs.append(mv.occ[h] + mv.delay[h])
        tail = mv.occ[last] + mv.delay[last]
        for c in g.consumers[t]:
            if allowed[c, mv.dst]:
                M = Hz + tail - float(est[c])
                arrive.append((f"{i},{ctx.layer_names[c]}",
                               [(int(S[c]), 1.0), (hs[(i, last)], -1.0), (mv.col, -M), (int(x[c, mv.dst]), -M)]))
                arrive_rhs.append(tail - 2 * M)
        req = wl.requests[mv.request]
        if t < n and g.is_output[t] and req.sink == mv.dst:
            M = Hz + tail
            done.append((f"{i},sink", [(ctx.latency_cols[mv.request], 1.0), (hs[(i, last)], -1.0), (mv.col, -M)]))
            done_rhs.append(tail - req.release_s - M)
    for r, req in enumerate(wl.requests):
        for o in req.outputs:
            done.append((ctx.layer_names[o], [(ctx.latency_cols[r], 1.0), (int(S[o]), -1.0), *dur(o)]))
            done_rhs.append(-req.release_s)
    m.add_term_rows("hop", chain, chain_rhs)
    m.add_term_rows("arrive", arrive, arrive_rhs)
    m.add_term_rows("done", done, done_rhs)
    _add_disjunctions(ctx, Hz, est)
    _add_hop_disjunctions(ctx, Hz, rel)


def _add_hop_disjunctions(ctx: WorkloadContext, Hz: float, rel: FloatArray) -> None:
    """One transfer at a time per channel (module docstring, ``hop_first``/``hop_second``)."""
    m, moves = ctx.model, ctx.moves
    by_channel: dict[tuple[int, int], list[Hop]] = {}
    for i, mv in enumerate(moves):
        for h, ch in enumerate(mv.route):
            by_channel.setdefault(ch, []).append((i, h))
    pairs: list[tuple[Hop, Hop]] = []
    for hops in by_channel.values():
        for a, p in enumerate(hops):
            for q in hops[a + 1:]:
                mp, mq = moves[p[0]], moves[q[0]]
                if mp.tensor == mq.tensor and mp.src != mq.src:
                    continue  # one tensor has one producer device: never both
                pairs.append((p, q))
    o = m.add_vars("ho", [f"{p[0]},{p[1]},{q[0]},{q[1]}" for p, q in pairs], 0.0, 1.0, integer=True)
    first, second, r1, r2 = [], [], [], []
    hs = ctx.hop_start
    for oc, (p, q) in zip(o.tolist(), pairs, strict=True):
        ctx.hop_order[(p, q)] = int(oc)
        mp, mq = moves[p[0]], moves[q[0]]
        op, oq = mp.occ[p[1]], mq.occ[q[1]]
        M1 = Hz + op - float(rel[mq.request])
        M2 = Hz + oq - float(rel[mp.request])
        lab = f"{p[0]},{p[1]},{q[0]},{q[1]}"
        first.append((lab, [(hs[q], 1.0), (hs[p], -1.0), (int(oc), -M1), (mp.col, -M1), (mq.col, -M1)]))
        r1.append(op - 3 * M1)
        second.append((lab, [(hs[p], 1.0), (hs[q], -1.0), (int(oc), M2), (mp.col, -M2), (mq.col, -M2)]))
        r2.append(oq - 2 * M2)
    m.add_term_rows("hop_first", first, r1)
    m.add_term_rows("hop_second", second, r2)


def _task_columns(ctx: WorkloadContext, P: IntArray, tasks: Tasks) -> tuple[dict[int, int], dict[int, Hop]]:
    """Task index -> layer, and task index -> ``(move, hop)``, for the tasks of placement ``P``."""
    g, s = ctx.inst.graph, ctx.inst.system
    index = {key: i for i, key in enumerate(tasks.keys)}
    layers = {index[g.layer_ids[v]]: v for v in range(g.n)}
    hops: dict[int, Hop] = {}
    for i, mv in enumerate(ctx.moves):
        producer = int(P[mv.tensor]) if mv.tensor < g.n else mv.src
        if producer != mv.src:
            continue
        for h in range(len(mv.route)):
            key = hop_key(g.tensor_ids[mv.tensor], s.device_ids[mv.dst], h)
            if key in index:
                hops[index[key]] = (i, h)
    return layers, hops


def retime(ctx: WorkloadContext, P: IntArray, values: FloatArray) -> tuple[dict[str, float], list[int], Tasks]:
    """The solver's task orders at earliest starts: ``({task key: start}, processing order, tasks)``."""
    tasks = workload_metrics(ctx.inst, P).tasks
    layers, hops = _task_columns(ctx, P, tasks)
    assert ctx.start is not None
    hint = np.zeros(tasks.size)
    for ti, v in layers.items():
        hint[ti] = values[int(ctx.start[v])]
    for ti, hop in hops.items():
        hint[ti] = values[ctx.hop_start[hop]]

    def order_col(a: int, b: int) -> tuple[int | None, bool]:
        """The order column of tasks ``a`` and ``b`` and whether it reads ``b`` before ``a``."""
        if a in layers and b in layers:
            u, v = layers[a], layers[b]
            return (ctx.order.get((u, v)), False) if u < v else (ctx.order.get((v, u)), True)
        if a in hops and b in hops:
            col = ctx.hop_order.get((hops[a], hops[b]))
            return (col, False) if col is not None else (ctx.hop_order.get((hops[b], hops[a])), True)
        return None, False

    def before(a: int, b: int) -> bool:
        """Task ``a`` precedes ``b`` on their resource in the solver's solution."""
        col, flip = order_col(a, b)
        if col is not None:
            return bool(values[col] >= 0.5) != flip
        return (hint[a], a) < (hint[b], b)

    by_res: dict[int, list[int]] = {}
    for i in range(tasks.size):
        by_res.setdefault(tasks.resource[i], []).append(i)
    seq: dict[int, list[int]] = {}
    for res, items in by_res.items():
        rank = {a: sum(before(b, a) for b in items if b != a) for a in items}
        seq[res] = sorted(items, key=lambda a: (rank[a], hint[a], a))
    start = np.zeros(tasks.size)
    end = np.zeros(tasks.size)
    free: dict[int, float] = {}
    done = np.zeros(tasks.size, dtype=bool)
    order: list[int] = []

    def ready(i: int) -> bool:
        return all(done[p] for p, _ in tasks.preds[i])

    while len(order) < tasks.size:
        heads = [q[0] for q in seq.values() if q and ready(q[0])]
        if heads:
            i = min(heads, key=lambda a: (hint[a], a))
        else:  # the solver's orders contradict precedence (ties within tolerance): its start times decide
            i = min((a for q in seq.values() for a in q if ready(a)), key=lambda a: (hint[a], a))
        seq[tasks.resource[i]].remove(i)
        st = max([tasks.release[i], free.get(tasks.resource[i], 0.0), *(end[p] + dl for p, dl in tasks.preds[i])])
        start[i], end[i] = st, st + tasks.dur[i]
        free[tasks.resource[i]] = end[i]
        done[i] = True
        order.append(i)
    return {key: float(start[i]) for i, key in enumerate(tasks.keys)}, order, tasks


def schedule_point(ctx: WorkloadContext, P: IntArray, order: list[int], tasks: Tasks) -> dict[int, float]:
    """Values of every integer column for placement ``P`` with tasks processed in ``order``."""
    layers, hops = _task_columns(ctx, P, tasks)
    out = integer_point(ctx, P, np.array([layers[i] for i in order if i in layers], dtype=np.int64))
    rank = {hops[i]: p for p, i in enumerate(order) if i in hops}
    for (p, q), col in ctx.hop_order.items():
        out[col] = 1.0 if p in rank and q in rank and rank[p] < rank[q] else 0.0
    return out
