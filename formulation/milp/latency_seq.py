"""Sequential latency (docs/instance-format.md §5.3): every layer and transfer runs one after another.

As in Neurosurgeon (Kang et al., ASPLOS 2017) and DADS (Hu et al., INFOCOM 2019), the latency is
the sum of the layers' compute times and of the transfers' times; with transfers counted once per
receiving device (:mod:`formulation.milp.shipping`)::

    latency = sum_{v, d} t(v, d) x[v, d] + sum_{(t, a, b)} (lat(a, b) + bytes(t) / bw(a, b)) z[t, a, b]

(row ``latency_def``, an equality defining the column ``latency`` in seconds).
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_latency_sequential(ctx: MilpContext) -> int:
    """Add the column ``latency`` and its defining row; return the column."""
    m, inst = ctx.model, ctx.inst
    L = m.add_var("latency", 0.0, unit="time")
    vs, ds = np.nonzero(ctx.allowed)
    tr = ctx.transfers
    cols = np.concatenate([[L], ctx.x[vs, ds], tr.col])
    vals = np.concatenate([[1.0], -inst.time[vs, ds], -tr.duration_s])
    m.add_rows("latency_def", [""], np.zeros(cols.size, dtype=np.int64), cols, vals, 0.0, 0.0)
    ctx.metric_cols["latency"] = L
    return L
