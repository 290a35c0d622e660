"""Stage order of interchangeable devices in the MILP's pipeline (``constraints.pipeline``).

For each class ``d_1, ..., d_m`` of :func:`formulation.stage_order.stage_classes` (the
interchangeable devices that may hold a layer), with the stage columns ``σ`` of
:mod:`formulation.milp.constraints.pipeline`, the valid inequalities of
:mod:`formulation.stage_order` (sources and validity there)::

    σ[d_{i+1}] - σ[d_i] >= 1                                                     (pipe_order)
    x[v, d_{i+1}] <= used[d_i]   every layer v;   used[d_i] <= sum_v x[v, d_i]   (pipe_used, pipe_used_def)
    sum_{i <= j} x[v, d_i] + sum_{i > j} x[u, d_i] <= 1    every edge u -> v, 1 <= j < m   (pipe_downset)

``used[d_i]`` is a continuous column in ``[0, 1]`` (it needs no integrality: the rows only ask that
a device of the class runs nothing unless the one before it runs something). The first family is
Kaibel and Pfetsch's ordering of identical machines (Mathematical Programming 114(1), 2008), the
second Méndez-Díaz and Zabala's (Discrete Applied Mathematics 154(5), 2006) colours-in-order
rule, the third the disaggregated precedence rows of Christofides, Alvarez-Valdés and Tamarit
(European Journal of Operational Research 29(3), 1987). Solutions and warm starts are renamed
by :func:`formulation.stage_order.stage_canonical_placement` (same value).
"""

from __future__ import annotations

import itertools

import numpy as np

from formulation.milp.context import MilpContext
from formulation.stage_order import downset_rows, stage_classes


def add_stage_order(ctx: MilpContext, sigma: dict[int, int]) -> list[list[int]]:
    """Add the three row families above for every class; return the classes. ``sigma``: device
    -> its stage column."""
    classes = [[d for d in cls if d in sigma] for cls in stage_classes(ctx.inst)]
    classes = [cls for cls in classes if len(cls) > 1]
    m, x, names = ctx.model, ctx.x, ctx.device_names
    order, used, used_def, downset = [], [], [], []
    for cls in classes:
        for a, b in itertools.pairwise(cls):
            order.append((f"{names[a]},{names[b]}", [(sigma[b], 1.0), (sigma[a], -1.0)]))
        firsts = cls[:-1]
        cols = m.add_vars("pipe_used", [names[d] for d in firsts], 0.0, 1.0)
        for col, (a, b) in zip(cols.tolist(), itertools.pairwise(cls), strict=True):
            ran = np.flatnonzero(x[:, a] >= 0).tolist()
            used_def.append((names[a], [(col, 1.0), *((int(x[v, a]), -1.0) for v in ran)]))
            for v in np.flatnonzero(x[:, b] >= 0).tolist():
                used.append((f"{ctx.layer_names[v]},{names[b]}", [(int(x[v, b]), 1.0), (col, -1.0)]))
        for u, v, j, pairs in downset_rows(ctx.inst, cls, ctx.allowed):
            label = f"{ctx.layer_names[u]},{ctx.layer_names[v]},{names[cls[j - 1]]}"
            downset.append((label, [(int(x[w, d]), 1.0) for w, d in pairs]))
    m.add_term_rows("pipe_order", order, 1.0)
    m.add_term_rows("pipe_used", used, ub=0.0)
    m.add_term_rows("pipe_used_def", used_def, ub=0.0)
    m.add_term_rows("pipe_downset", downset, ub=1.0)
    return classes
