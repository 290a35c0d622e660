"""Placement variables: ``x[v, d] = 1`` when layer ``v`` runs on device ``d``.

Inequalities (the generalised assignment structure of every DNN-partitioning MILP since
Neurosurgeon's and DADS's two-device cut, Kang et al., ASPLOS 2017; Hu et al., INFOCOM 2019)::

    x[v, d] in {0, 1}                 for every allowed pair (v, d)
    sum_d x[v, d] = 1                 for every layer v            (row block ``assign``)

Forbidden pairs (:mod:`formulation.milp.constraints.placement_rules`) have no column.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.constraints.placement_rules import placement_rules
from formulation.milp.context import MilpContext
from formulation.model import BoolArray


def add_placement(ctx: MilpContext, rules: tuple[BoolArray, list[str]] | None = None) -> None:
    """Add ``x`` and the assignment rows; record forbidden layers as infeasibility reasons.

    ``rules`` is ``(mask, reasons)`` as :func:`placement_rules` returns them (version-2 workloads
    give their own, :mod:`formulation.milp.workload`); default: :func:`placement_rules`.
    """
    inst, m = ctx.inst, ctx.model
    mask, reasons = placement_rules(inst) if rules is None else rules
    m.infeasible_reasons.extend(reasons)
    vs, ds = np.nonzero(mask)
    labels = [f"{ctx.layer_names[v]},{ctx.device_names[d]}" for v, d in zip(vs, ds, strict=True)]
    cols = m.add_vars("x", labels, 0.0, 1.0, integer=True)
    x = np.full(mask.shape, -1, dtype=np.int64)
    x[vs, ds] = cols
    ctx.x = x
    ctx.allowed = mask
    m.add_rows("assign", ctx.layer_names, vs, cols, np.ones(cols.size), 1.0, 1.0)
