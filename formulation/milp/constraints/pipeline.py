"""Pipeline stages: the devices can be ordered so that every edge between two devices goes forward
(``constraints.pipeline``, :mod:`formulation.evaluator.pipeline`).

Source: the stages of Tarnawski et al., "Efficient Algorithms for Device Placement of DNN Graph
Operators", NeurIPS 2020, Section 4 (differences of a chain of down-sets, one per device; PipeDream,
SOSP 2019, for chains). With ``K`` the devices that may hold a layer, a stage index
``σ[d] in [0, K-1]`` per device and a copy ``p[v] in [0, K-1]`` per layer (continuous)::

    p[v] - σ[d] <= (K-1) (1 - x[v, d])   and   σ[d] - p[v] <= (K-1) (1 - x[v, d])      (pipe_link)
    p[v] >= p[u] + x[u, d] - x[v, d]                       every edge u -> v, device d    (pipe_edge)

*Pipeline => feasible*: number the used devices along the pipeline (``σ`` = position, at most
``K-1``), ``p[v] = σ[dev(v)]``; an edge inside a device has ``p[v] = p[u]``, one between two
devices rises by at least 1. *Feasible => pipeline*: ``pipe_link`` makes ``p`` equal on the layers
of one device, and ``pipe_edge`` with ``d = dev(u) != dev(v)`` gives ``σ[dev(v)] >= σ[dev(u)] + 1``,
so ``σ`` strictly increases along every arc of the quotient graph, which is therefore acyclic. For
``d != dev(u)`` the row reads ``p[v] >= p[u] - x[v, d]``, implied by the row of ``dev(u)``.
``O(e K)`` rows instead of the ``O(e K^2)`` of one big-M row per edge and pair of devices.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_pipeline(ctx: MilpContext, cuts: bool = False) -> None:
    """Add ``σ``, ``p`` and the two row families above (nothing when one device can hold layers);
    ``cuts``: also the stage-order rows of :mod:`formulation.milp.constraints.pipeline_cuts`."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    g = inst.graph
    devs = [d for d in range(inst.k) if allowed[:, d].any()]
    K = len(devs)
    if K < 2 or not g.edges:
        return
    big = float(K - 1)
    sigma = m.add_vars("pipe_stage", [ctx.device_names[d] for d in devs], 0.0, big)
    p = m.add_vars("pipe_pos", list(ctx.layer_names), 0.0, big)
    link_lo, link_hi = [], []
    for i, d in enumerate(devs):
        for v in np.flatnonzero(allowed[:, d]).tolist():
            lab = f"{ctx.layer_names[v]},{ctx.device_names[d]}"
            xv = int(x[v, d])
            link_lo.append((lab, [(int(p[v]), 1.0), (int(sigma[i]), -1.0), (xv, big)]))
            link_hi.append((lab, [(int(sigma[i]), 1.0), (int(p[v]), -1.0), (xv, big)]))
    m.add_term_rows("pipe_link_lo", link_lo, ub=big)
    m.add_term_rows("pipe_link_hi", link_hi, ub=big)
    rows = []
    for u, v in g.edges:
        for d in devs:
            if not allowed[u, d]:
                continue
            terms = [(int(p[v]), 1.0), (int(p[u]), -1.0), (int(x[u, d]), -1.0)]
            if allowed[v, d]:
                terms.append((int(x[v, d]), 1.0))
            rows.append((f"{ctx.layer_names[u]},{ctx.layer_names[v]},{ctx.device_names[d]}", terms))
    m.add_term_rows("pipe_edge", rows, 0.0)
    if cuts:
        from formulation.milp.constraints.pipeline_cuts import add_stage_order

        add_stage_order(ctx, dict(zip(devs, (int(c) for c in sigma), strict=True)))
