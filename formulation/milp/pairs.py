"""Edge-pair variables: ``y[u, v, a, b] = x[u, a] x[v, b]`` for every edge ``u -> v``, by marginals.

For every layer edge ``u -> v`` and devices ``a`` (allowed for ``u``) and ``b`` (allowed for ``v``)
with ``a = b`` or a link ``a -> b``::

    sum_b y[u, v, a, b] = x[u, a]        for every a      (pair_out)
    sum_a y[u, v, a, b] = x[v, b]        for every b      (pair_in)
    y[u, v, a, b] in [0, 1]

With binary ``x`` these force ``y`` to the product (each edge picks exactly one device pair), so
no big-M and no integrality is needed; a pair without a link has no variable, which forbids it.
This is the marginal (local-polytope) linearisation of pairwise assignment costs (Sherali and
Adams, SIAM J. Discrete Math. 3(3), 1990, level 1; for a chain it is the shortest-path LP of
Neurosurgeon-style partitioning and is integral). Its LP relaxation is much stronger than
``y >= x[u, a] + x[v, b] - 1`` (McCormick, Mathematical Programming 10, 1976), which lets a
fractional placement ship nothing. It costs ``|E| k^2`` columns; :func:`formulation.milp.build_milp`
uses it by default and can fall back to the smaller send-once-only model.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_pairs(ctx: MilpContext) -> None:
    """Add ``y`` and the marginal rows for every layer edge; fill ``ctx.pairs``."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    g, s = inst.graph, inst.system
    labels: list[str] = []
    keys: list[tuple[int, int, int, int]] = []
    for u, v in g.edges:
        for a in np.flatnonzero(allowed[u]).tolist():
            for b in np.flatnonzero(allowed[v]).tolist():
                if a == b or s.has_link[a, b]:
                    keys.append((u, v, a, b))
                    labels.append(
                        f"{ctx.layer_names[u]},{ctx.layer_names[v]},{ctx.device_names[a]},{ctx.device_names[b]}"
                    )
    y = m.add_vars("y", labels, 0.0, 1.0)
    out_rows: dict[tuple[int, int, int], list[int]] = {}
    in_rows: dict[tuple[int, int, int], list[int]] = {}
    for col, (u, v, a, b) in zip(y.tolist(), keys, strict=True):
        ctx.pairs.setdefault((u, v), {})[(a, b)] = col
        out_rows.setdefault((u, v, a), []).append(col)
        in_rows.setdefault((u, v, b), []).append(col)
    outs, ins = [], []
    for u, v in g.edges:
        names = f"{ctx.layer_names[u]},{ctx.layer_names[v]}"
        for a in np.flatnonzero(allowed[u]).tolist():
            cols = out_rows.get((u, v, a), [])
            outs.append((f"{names},{ctx.device_names[a]}", [*((c, 1.0) for c in cols), (int(x[u, a]), -1.0)]))
        for b in np.flatnonzero(allowed[v]).tolist():
            cols = in_rows.get((u, v, b), [])
            ins.append((f"{names},{ctx.device_names[b]}", [*((c, 1.0) for c in cols), (int(x[v, b]), -1.0)]))
    m.add_term_rows("pair_out", outs, 0.0, 0.0)
    m.add_term_rows("pair_in", ins, 0.0, 0.0)
