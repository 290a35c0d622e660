"""Shipping variables: each tensor is sent once to each device that needs it (docs/instance-format.md §5.2).

A tensor ``t`` produced on device ``a`` (layer ``t``'s device, or the source for a model input) is
needed on ``b != a`` when some consumer of ``t`` runs on ``b``, or ``t`` is a model output and ``b``
is the sink; it is then sent once over ``a -> b`` whatever the number of consumers on ``b``.
Counting transfers per receiving device rather than per edge is what makes the cost of a tensor
read by several layers on one device right; the "send once" variables are also much stronger than
per-edge-per-pair products (Tarnawski et al., NeurIPS 2020, model communication per tensor and
destination in the same way).

Variables, for each tensor ``t``, receiving device ``b`` and candidate producer device ``a != b``
with a link ``a -> b``: ``z[t, a, b] in [0, 1]`` (continuous; integral whenever ``x`` is), 1 when
``t`` is sent over ``a -> b``. With ``p`` the producer of ``t`` and ``C(t)`` its consumers::

    sum_a z[t, a, b] >= x[c, b] - x[p, b]       for every c in C(t)      (``need``: sent if used)
    z[t, a, b]       <= x[p, a]                 for every a              (``src``: from where it is)
    sum_a z[t, a, b] <= sum_{c in C(t)} x[c, b]                          (``only``: never sent idly)

For a model input, ``p`` is the source: ``x[p, b] = 0`` for ``b != source`` and the ``src`` rows
vanish. When no candidate ``a`` has a link to ``b``, the sum is empty and ``need`` reads
``x[c, b] <= x[p, b]`` (no implicit routing, docs/instance-format.md §3.2).

The three families make ``z`` exact in both directions (``z = x[p, a] * OR_c x[c, b]``): the
``only`` rows matter because in parallel mode the idle-energy term rewards send time, so a
one-sided linearisation would let the solver invent transfers.

A model output ``o`` must reach the sink ``s``: it is sent over ``a -> s`` exactly when
``x[o, a] = 1`` for ``a != s``, so that transfer's indicator is the placement column itself and no
variable is added (outputs on devices without a link to the sink are forbidden beforehand).
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext, Transfers
from formulation.milp.model import INF


def add_shipping(ctx: MilpContext) -> None:
    """Add ``z`` and the ``need``/``src``/``only`` rows; fill ``ctx.transfers``."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    g, s = inst.graph, inst.system
    k, n = s.k, g.n
    sink = s.sink_index
    is_output = np.zeros(n + g.m, dtype=bool)
    is_output[list(g.outputs)] = True
    tr_t: list[int] = []
    tr_a: list[int] = []
    tr_b: list[int] = []
    tr_col: list[int] = []
    z_labels: list[str] = []
    z_key: list[tuple[int, int, int]] = []
    # z columns do not exist yet while rows are collected: a negative reference -1-i means z number i.
    need: list[tuple[str, list[tuple[int, float]], float]] = []
    src_rows: list[tuple[str, int, int]] = []  # (label, z index, x column)
    only: list[tuple[str, list[int], list[int]]] = []  # (label, z indices, consumer x columns)
    zpair: list[tuple[str, list[tuple[int, float]]]] = []  # z >= y[t, c, a, b] (pair mode)
    zonly: list[tuple[str, list[tuple[int, float]]]] = []  # z <= sum_c y[t, c, a, b] (pair mode)
    for t in range(n + g.m):
        consumers = g.consumers[t]
        cand = np.flatnonzero(allowed[t]) if t < n else np.array([s.source_index])
        recv = np.zeros(k, dtype=bool)
        for c in consumers:
            recv |= allowed[c]
        if is_output[t] and sink is not None:
            for a in cand:
                if a != sink:
                    tr_t.append(t)
                    tr_a.append(int(a))
                    tr_b.append(sink)
                    tr_col.append(int(x[t, a]))
            recv[sink] = False
        tn = ctx.tensor_names[t]
        if t < n and ctx.pair_mode:
            for b in np.flatnonzero(recv).tolist():
                for a in cand.tolist():
                    if a == b:
                        continue
                    ys = [(c, col) for c in consumers if (col := ctx.pairs.get((t, c), {}).get((a, b))) is not None]
                    if len(ys) == 1:
                        tr_t.append(t)
                        tr_a.append(a)
                        tr_b.append(b)
                        tr_col.append(ys[0][1])
                    elif ys:
                        zk = len(z_key)
                        z_key.append((t, a, b))
                        z_labels.append(f"{tn},{ctx.device_names[a]},{ctx.device_names[b]}")
                        for c, yc in ys:
                            zpair.append((f"{z_labels[-1]},{ctx.layer_names[c]}", [(-1 - zk, 1.0), (yc, -1.0)]))
                        zonly.append((z_labels[-1], [(-1 - zk, 1.0), *((yc, -1.0) for _, yc in ys)]))
            continue
        for b in np.flatnonzero(recv).tolist():
            others = [int(a) for a in cand if a != b]
            if not others:
                continue
            xp_b = int(x[t, b]) if t < n and allowed[t, b] else -1
            linked = [a for a in others if s.has_link[a, b]]
            zi = []
            for a in linked:
                zi.append(len(z_key))
                z_key.append((t, a, b))
                z_labels.append(f"{tn},{ctx.device_names[a]},{ctx.device_names[b]}")
                if t < n:
                    src_rows.append((z_labels[-1], zi[-1], int(x[t, a])))
            users = [c for c in consumers if allowed[c, b]]
            for c in users:
                terms: list[tuple[int, float]] = [(-1 - i, 1.0) for i in zi]
                terms.append((int(x[c, b]), -1.0))
                if xp_b >= 0:
                    terms.append((xp_b, 1.0))
                need.append((f"{tn},{ctx.device_names[b]},{ctx.layer_names[c]}", terms, 0.0))
            if zi:
                only.append((f"{tn},{ctx.device_names[b]}", zi, [int(x[c, b]) for c in users]))
    zcols = m.add_vars("z", z_labels, 0.0, 1.0, unit="1")

    def col_of(ref: int) -> int:
        return int(zcols[-1 - ref]) if ref < 0 else ref

    m.add_term_rows(
        "need", [(lab, [(col_of(c), v) for c, v in terms]) for lab, terms, _ in need], [r for *_, r in need], INF
    )
    m.add_term_rows("src", [(lab, [(int(zcols[i]), 1.0), (xc, -1.0)]) for lab, i, xc in src_rows], -INF, 0.0)
    m.add_term_rows(
        "only", [(lab, [(int(zcols[i]), 1.0) for i in zi] + [(c, -1.0) for c in cs]) for lab, zi, cs in only], -INF, 0.0
    )
    m.add_term_rows("zpair", [(lab, [(col_of(c), v) for c, v in terms]) for lab, terms in zpair], 0.0, INF)
    m.add_term_rows("zonly", [(lab, [(col_of(c), v) for c, v in terms]) for lab, terms in zonly], -INF, 0.0)
    for i, (t, a, bb) in enumerate(z_key):
        tr_t.append(t)
        tr_a.append(a)
        tr_b.append(bb)
        tr_col.append(int(zcols[i]))
    ctx.transfers = _transfer_table(ctx, tr_t, tr_a, tr_b, tr_col)


def _transfer_table(
    ctx: MilpContext, tr_t: list[int], tr_a: list[int], tr_b: list[int], tr_col: list[int]
) -> Transfers:
    g, s = ctx.inst.graph, ctx.inst.system
    t = np.array(tr_t, dtype=np.int64)
    a = np.array(tr_a, dtype=np.int64)
    b = np.array(tr_b, dtype=np.int64)
    nbytes = g.tensor_bytes[t].astype(float) if t.size else np.zeros(0)
    occ = nbytes / s.bandwidth[a, b] if t.size else np.zeros(0)
    dur = s.link_latency[a, b] + occ if t.size else np.zeros(0)
    return Transfers(t, a, b, np.array(tr_col, dtype=np.int64), occ, dur, nbytes)
