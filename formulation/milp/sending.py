"""Per-device communication terms: receiving, sending and radio energy, with ``send_once`` exact.

Every device's sending time, receiving time and radio energy are linear in the transfer indicators
of :mod:`formulation.milp.shipping` (column ``col[i]`` of transfer ``i = (t, a, b)``, exactly 0/1
whenever the placement is integral)::

    recv[d] = sum_{i: b_i = d} occ_i col_i            rx[d] = sum_{i: b_i = d} rx(a_i, d) occ_i col_i
    send[d] = sum_{i: a_i = d} occ_i col_i            tx[d] = sum_{i: a_i = d} tx(d, b_i) occ_i col_i

On a ``send_once`` device (one transmission reaches every device that needs a tensor: a shared
medium, or staging in host memory as in Tarnawski et al., NeurIPS 2020) a tensor ``t`` produced on
``d`` counts once, at its largest per-destination value ``max_b w(t, d, b) col(t, d, b)`` (``w`` =
occupied time for ``send``, ``tx * occ`` for ``tx``). With the distinct positive values of ``w``
over ``t``'s transfers sorted ``v_1 > v_2 > ... > v_r`` (``v_{r+1} = 0``) the maximum is the
telescoping sum of OR indicators ``o_j = OR {col_i : w_i >= v_j}``::

    max_i w_i col_i = sum_j (v_j - v_{j+1}) o_j
    o_j >= col_i            for every i with w_i >= v_j        (``once_ge``)
    o_j <= sum_i col_i      over the same i                    (``once_le``)
    0 <= o_j <= 1

Both directions make ``o_j`` exactly the OR at every integral point (no big-M, and exact whatever
the sign of the term's weight, which matters for the idle-energy term that rewards sending). With
equal bandwidths to every destination, as on the accelerators of Tarnawski et al., ``r = 1``: one
indicator "t leaves d" per tensor, whose rows are those of their ``CommOut`` variables. For a layer
tensor ``t`` the valid inequality ``o_r >= x[t, d] - x[c, d]`` for every consumer ``c`` (if ``t``
runs on ``d`` and ``c`` does not, ``t`` leaves ``d``; sending time only, whose values are
positive towards every destination or none) is added as well: it is the cut of their IP
(``CommOut[u, m] >= x[u, m] - x[v, m]``) and lifts the LP bound when the ORs are spread over
several destinations.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.model import INF

Terms = list[tuple[int, float]]


def recv_terms(ctx: MilpContext, d: int) -> Terms:
    """``(column, seconds)`` terms of device ``d``'s receiving time."""
    tr = ctx.transfers
    sel = np.flatnonzero(tr.dst == d)
    return list(zip(tr.col[sel].tolist(), tr.occupied_s[sel].tolist(), strict=True))


def rx_terms(ctx: MilpContext, d: int) -> Terms:
    """``(column, joules)`` terms of device ``d``'s receiving radio energy."""
    tr, s = ctx.transfers, ctx.inst.system
    sel = np.flatnonzero(tr.dst == d)
    w = s.rx_power[tr.src[sel], d] * tr.occupied_s[sel]
    return [(c, v) for c, v in zip(tr.col[sel].tolist(), w.tolist(), strict=True) if v]


def send_terms(ctx: MilpContext, d: int) -> Terms:
    """``(column, seconds)`` terms of device ``d``'s sending time (each tensor once if ``send_once``)."""
    tr = ctx.transfers
    return _outgoing(ctx, d, "send", tr.occupied_s)


def tx_terms(ctx: MilpContext, d: int) -> Terms:
    """``(column, joules)`` terms of device ``d``'s sending radio energy (each tensor once if ``send_once``)."""
    tr, s = ctx.transfers, ctx.inst.system
    return [(c, v) for c, v in _outgoing(ctx, d, "tx", s.tx_power[d, tr.dst] * tr.occupied_s) if v]


def _outgoing(ctx: MilpContext, d: int, kind: str, weight: np.ndarray) -> Terms:
    tr = ctx.transfers
    sel = np.flatnonzero(tr.src == d)
    if not ctx.inst.system.send_once[d]:
        return list(zip(tr.col[sel].tolist(), weight[sel].tolist(), strict=True))
    key = (kind, d)
    if key not in ctx.send_once_terms:
        ctx.send_once_terms[key] = _once(ctx, d, kind, sel, weight)
    return ctx.send_once_terms[key]


def _once(ctx: MilpContext, d: int, kind: str, sel: np.ndarray, weight: np.ndarray) -> Terms:
    """The telescoping OR construction of the module docstring for every tensor leaving ``d``."""
    tr, m, g = ctx.transfers, ctx.model, ctx.inst.graph
    by_tensor: dict[int, list[int]] = defaultdict(list)
    for i in sel.tolist():
        if weight[i] > 0:
            by_tensor[int(tr.tensor[i])].append(i)
    terms: Terms = []
    labels: list[str] = []
    members: list[list[int]] = []
    coefs: list[float] = []
    tensors: list[int] = []
    for t, idx in sorted(by_tensor.items()):
        if len(idx) == 1:
            terms.append((int(tr.col[idx[0]]), float(weight[idx[0]])))
            continue
        levels = sorted({float(weight[i]) for i in idx}, reverse=True)
        for j, v in enumerate(levels):
            nxt = levels[j + 1] if j + 1 < len(levels) else 0.0
            labels.append(f"{ctx.tensor_names[t]},{j}")
            members.append([int(tr.col[i]) for i in idx if weight[i] >= v])
            coefs.append(v - nxt)
            tensors.append(t if j == len(levels) - 1 else -1)
    if not labels:
        return terms
    block = f"once_{kind}_{ctx.device_names[d]}"
    o = m.add_vars(block, labels, 0.0, 1.0)
    rows = list(zip(labels, o.tolist(), members, strict=True))
    ge = [(f"{lab},{i}", [(oc, 1.0), (c, -1.0)]) for lab, oc, cols in rows for i, c in enumerate(cols)]
    le = [(lab, [(oc, 1.0), *((c, -1.0) for c in cols)]) for lab, oc, cols in rows]
    cut = []
    for (lab, oc, _), t in zip(rows, tensors, strict=True):
        # Valid for occupied times only: they are positive towards every destination or none
        # (same bytes), whereas a radio may draw no power towards some destinations.
        if kind == "send" and 0 <= t < g.n and ctx.allowed[t, d]:
            for c in g.consumers[t]:
                xc = [(int(ctx.x[c, d]), 1.0)] if ctx.allowed[c, d] else []
                cut.append((f"{lab},{ctx.layer_names[c]}", [(oc, 1.0), (int(ctx.x[t, d]), -1.0), *xc]))
    m.add_term_rows(f"{block}_ge", ge, 0.0, INF)
    m.add_term_rows(f"{block}_le", le, -INF, 0.0)
    m.add_term_rows(f"{block}_cut", cut, 0.0, INF)
    terms += list(zip(o.tolist(), coefs, strict=True))
    return terms
