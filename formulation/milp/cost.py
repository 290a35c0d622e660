"""Monetary cost per inference (docs/instance-format.md §5.7)::

    cost = sum_{v, d} price(d) t(v, d) x[v, d] + sum_{(t, a, b)} price(a, b) bytes(t) z[t, a, b]

(row ``cost_def``, an equality defining the column ``cost`` in USD): devices are paid per busy
second and links per byte, exactly the definition of docs/instance-format.md §5.7; no further modelling choice is made.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_cost(ctx: MilpContext) -> int:
    """Add the column ``cost`` and its defining row; return the column."""
    m, inst = ctx.model, ctx.inst
    s = inst.system
    C = m.add_var("cost", 0.0, unit="cost")
    vs, ds = np.nonzero(ctx.allowed)
    tr = ctx.transfers
    cols = np.concatenate([[C], ctx.x[vs, ds], tr.col])
    vals = np.concatenate([[1.0], -s.price[ds] * inst.time[vs, ds], -s.link_price[tr.src, tr.dst] * tr.bytes])
    m.add_rows("cost_def", [""], np.zeros(cols.size, dtype=np.int64), cols, vals, 0.0, 0.0)
    ctx.metric_cols["cost"] = C
    return C
