"""Symmetry breaking between interchangeable devices (the representative rule).

For each class ``d_1, ..., d_m`` of interchangeable devices (:mod:`formulation.symmetry`), the
devices are used in the order of the first layer they run, unused ones last. With prefix counts
``c[v, d] = sum_{u <= v} x[u, d]`` (continuous columns, one equality row each)::

    c[v, d] = c[v-1, d] + x[v, d]                   (``sym_count``; c[-1, d] = 0)
    x[v, d_j] <= c[v-1, d_{j-1}]                    for every layer v and j >= 2   (``sym_order``)

the vertex-ordering inequalities ``x[v, d_j] <= sum_{u < v} x[u, d_{j-1}]`` of Méndez-Díaz and
Zabala (Discrete Applied Mathematics 154(5), 2006), written with the prefix counts so that the
rows have three nonzeros instead of ``v``. Every placement has a relabelling that satisfies them
(:func:`formulation.symmetry.canonical_placement`), so no value is lost; warm starts are
canonicalised before they are used. Layers are in the graph's topological index order.
"""

from __future__ import annotations

import itertools

import numpy as np

from formulation.milp.context import MilpContext
from formulation.symmetry import interchangeable_classes


def add_symmetry_breaking(ctx: MilpContext) -> list[list[int]]:
    """Add the rows above for every class of interchangeable devices; return the classes."""
    classes = interchangeable_classes(ctx.inst)
    m, x, n = ctx.model, ctx.x, ctx.inst.n
    counted = sorted({d for cls in classes for d in cls[:-1]})
    if not counted or n < 2:
        return classes
    labels = [f"{ctx.layer_names[v]},{ctx.device_names[d]}" for d in counted for v in range(n - 1)]
    cols = m.add_vars("sym_c", labels, 0.0, float(n), unit="1").reshape(len(counted), n - 1)
    count_rows, order_rows = [], []
    for i, d in enumerate(counted):
        for v in range(n - 1):
            terms = [(int(cols[i, v]), 1.0)]
            if v:
                terms.append((int(cols[i, v - 1]), -1.0))
            if x[v, d] >= 0:
                terms.append((int(x[v, d]), -1.0))
            count_rows.append((labels[i * (n - 1) + v], terms))
    where = {d: i for i, d in enumerate(counted)}
    for cls in classes:
        for prev, d in itertools.pairwise(cls):
            for v in np.flatnonzero(x[:, d] >= 0).tolist():
                label = f"{ctx.layer_names[v]},{ctx.device_names[d]}"
                if v == 0:
                    order_rows.append((label, [(int(x[v, d]), 1.0)]))
                else:
                    order_rows.append((label, [(int(x[v, d]), 1.0), (int(cols[where[prev], v - 1]), -1.0)]))
    m.add_term_rows("sym_count", count_rows, 0.0, 0.0)
    m.add_term_rows("sym_order", order_rows, -np.inf, 0.0)
    return classes
