"""Contiguity: each device's layer set is convex in the DAG (docs/instance-format.md §4.4, ``contiguous``).

A set ``S`` of layers is convex when no path leaves ``S`` and re-enters it. Following the
contiguity constraints of Tarnawski, Phanishayee, Devanur, Mahajan and Nina Paravecino ("Efficient
algorithms for device placement of DNN graph operators", NeurIPS 2020), each device ``d`` gets a
continuous ``w[v, d] in [0, 1]`` that must be 1 on ``S`` and on everything reachable from ``S``
("S has started before or at v"), and an edge may not enter ``S`` from a node that is already past
``S``::

    w[v, d] >= x[v, d]                                       every layer v      (cont_in)
    w[v, d] >= w[u, d]                                       every edge u -> v  (cont_prop)
    x[v, d] <= x[u, d] + 1 - w[u, d]                         every edge u -> v  (cont_enter)

*Convex => feasible*: take ``w[v, d] = 1`` iff some ancestor-or-self of ``v`` is in ``S``. An edge
``u -> v`` with ``w[u] = 1``, ``u`` not in ``S`` and ``v`` in ``S`` would put ``u`` on a path between two
members of ``S``. *Feasible => convex*: on a path ``s ... r q`` from ``s in S`` that leaves ``S`` and
first re-enters at ``q``, ``w`` is 1 all along (cont_in, cont_prop), and the edge ``r -> q`` with
``r`` not in ``S`` gives ``x[q] <= 0``. ``w`` need not be integer since ``x`` is.
Devices with at most one allowed layer are convex automatically and get no rows.
"""

from __future__ import annotations

from formulation.milp.context import MilpContext


def add_contiguity(ctx: MilpContext) -> None:
    """Add ``w`` and the three row families above for every device with two or more allowed layers."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    g = inst.graph
    devs = [d for d in range(inst.k) if allowed[:, d].sum() >= 2]
    if not devs or not g.edges:
        return
    labels = [f"{ctx.layer_names[v]},{ctx.device_names[d]}" for d in devs for v in range(g.n)]
    w = m.add_vars("w", labels, 0.0, 1.0).reshape(len(devs), g.n)
    cin, prop, enter = [], [], []
    for i, d in enumerate(devs):
        dn = ctx.device_names[d]
        for v in range(g.n):
            if allowed[v, d]:
                cin.append((f"{ctx.layer_names[v]},{dn}", [(int(w[i, v]), 1.0), (int(x[v, d]), -1.0)]))
        for u, v in g.edges:
            lab = f"{ctx.layer_names[u]},{ctx.layer_names[v]},{dn}"
            prop.append((lab, [(int(w[i, v]), 1.0), (int(w[i, u]), -1.0)]))
            terms = [(int(w[i, u]), 1.0)]
            if allowed[v, d]:
                terms.append((int(x[v, d]), 1.0))
            if allowed[u, d]:
                terms.append((int(x[u, d]), -1.0))
            enter.append((lab, terms))
    m.add_term_rows("cont_in", cin, 0.0)
    m.add_term_rows("cont_prop", prop, 0.0)
    m.add_term_rows("cont_enter", enter, ub=1.0)
