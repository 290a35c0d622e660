"""Throughput: the pipelining period as a min-max (bottleneck) objective (docs/instance-format.md §5.5).

For a stream of inferences the period is the largest busy time per inference of any device or any
link direction (the bottleneck formulation of pipeline-parallel placement, e.g. PipeDream,
Narayanan et al., SOSP 2019, and Tarnawski et al., NeurIPS 2020)::

    period >= sum_v t(v, d) x[v, d] (+ send[d] + recv[d])          for every device d     (period_dev)
    period >= sum_{(t, a, b) on a -> b} bytes(t) / bw(a, b) z[t, a, b]   for every link a -> b  (period_link)

Link occupancy counts each tensor once per receiving device (:mod:`formulation.milp.shipping`).
The bracketed terms are added for a device whose communication does not overlap its compute
(``comm_overlap: false``): its busy time is compute plus sending plus receiving, the load of an
accelerator in the computational model of Tarnawski et al. (NeurIPS 2020, "communication not
overlapped with compute"), with sending counted once per tensor on ``send_once`` devices
(:mod:`formulation.milp.sending`).
The column ``period`` (seconds) is exact at the optimum of any objective with a positive period
weight; a zero-weight use (e.g. a Pareto sweep on another metric) only reads it as a bound.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.sending import recv_terms, send_terms


def add_period(ctx: MilpContext) -> int:
    """Add the column ``period`` and its rows; return the column."""
    m = ctx.model
    P = m.add_var("period", 0.0, unit="time")
    rows = []
    s = ctx.inst.system
    for d in range(ctx.inst.k):
        cols, vals = ctx.compute_terms(d)
        busy = list(zip(cols.tolist(), vals.tolist(), strict=True))
        if not s.comm_overlap[d]:
            busy += send_terms(ctx, d) + recv_terms(ctx, d)
        if busy:
            rows.append((ctx.device_names[d], [(P, 1.0), *((c, -v) for c, v in busy)]))
    m.add_term_rows("period_dev", rows, 0.0)
    tr = ctx.transfers
    links = []
    for a, b in sorted({(int(a), int(b)) for a, b in zip(tr.src, tr.dst, strict=True)}):
        sel = np.flatnonzero((tr.src == a) & (tr.dst == b))
        terms = [(P, 1.0), *zip(tr.col[sel].tolist(), (-tr.occupied_s[sel]).tolist(), strict=True)]
        links.append((f"{ctx.device_names[a]},{ctx.device_names[b]}", terms))
    m.add_term_rows("period_link", links, 0.0)
    ctx.metric_cols["throughput"] = P
    return P
