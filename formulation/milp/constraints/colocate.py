"""Colocation: the layers of each ``colocate`` class run on one device.

For a class ``C = {c_0, c_1, ...}`` (overlapping groups merged, see
:attr:`formulation.model.Instance.colocate_classes`) and every device ``d`` its members may use::

    x[c_i, d] = x[c_0, d]            for i >= 1                          (row block ``colocate``)

These are the colour-class equalities of the placement IP of Tarnawski et al., "Efficient
Algorithms for Device Placement of DNN Graph Operators", NeurIPS 2020. The members' columns exist
for the same devices (:mod:`formulation.milp.constraints.placement_rules` intersects their masks),
so each equality pairs two existing columns.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_colocation(ctx: MilpContext) -> None:
    """Add the equalities above for every colocation class."""
    rows = []
    for cls in ctx.inst.colocate_classes:
        first = int(cls[0])
        for v in cls[1:].tolist():
            for d in np.flatnonzero(ctx.allowed[first]).tolist():
                label = f"{ctx.layer_names[v]},{ctx.layer_names[first]},{ctx.device_names[d]}"
                rows.append((label, [(int(ctx.x[v, d]), 1.0), (int(ctx.x[first, d]), -1.0)]))
    ctx.model.add_term_rows("colocate", rows, 0.0, 0.0)
