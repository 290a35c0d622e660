"""Per-device communication terms for CP-SAT: sending and receiving, with ``send_once`` exact.

A device's receiving time (or energy) is ``sum_{t, a} w(t, a, d) send[t, a, d]`` and its sending
time ``sum_{t, b} w(t, d, b) send[t, d, b]`` over the shipping literals of
:mod:`formulation.cp.placement` (``w`` = occupied ticks rounded up or down, occupied seconds, or
``tx * occ`` joules). On a ``send_once`` device (one transmission reaches every device that needs
a tensor: a shared medium, or staging in host memory as in Tarnawski et al., NeurIPS 2020) tensor
``t`` counts once, at ``max_b w(t, d, b) send[t, d, b]``. With the distinct positive values of ``w``
sorted ``v_1 > ... > v_r`` (``v_{r+1} = 0``) that maximum is the telescoping sum
``sum_j (v_j - v_{j+1}) o_j`` of OR literals ``o_j = OR {send[t, d, b] : w(t, d, b) >= v_j}``,
each defined in both directions (``send => o_j`` and ``o_j => OR sends``), so it is exact whatever
the sign of the term's weight (the idle-energy term rewards sending). Integer ``w`` give integer
differences, so tick forms stay integral. OR literals over the same sends are shared.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ortools.sat.python import cp_model

from formulation.cp.placement import Lit, PlacementVars
from formulation.model import Instance

Weight = Callable[[int, int, int], float]
"""``w(t, a, b)``: the value of sending tensor t over a -> b."""


def recv_items(pv: PlacementVars, d: int, w: Weight) -> list[tuple[Lit, float]]:
    """``(literal, value)`` terms of device ``d``'s receiving."""
    return [(lit, w(t, a, b)) for (t, a, b), lit in pv.send.items() if b == d]


def send_items(
    model: cp_model.CpModel, inst: Instance, pv: PlacementVars, d: int, w: Weight
) -> list[tuple[Lit, float]]:
    """``(literal, value)`` terms of device ``d``'s sending (each tensor once on ``send_once`` devices)."""
    out = [(t, b, lit) for (t, a, b), lit in pv.send.items() if a == d]
    if not inst.system.send_once[d]:
        return [(lit, w(t, d, b)) for t, b, lit in out]
    by_tensor: dict[int, list[tuple[Lit, float]]] = defaultdict(list)
    for t, b, lit in out:
        value = w(t, d, b)
        if value > 0:
            by_tensor[t].append((lit, value))
    items: list[tuple[Lit, float]] = []
    for t, sends in sorted(by_tensor.items()):
        levels = sorted({v for _, v in sends}, reverse=True)
        for j, v in enumerate(levels):
            nxt = levels[j + 1] if j + 1 < len(levels) else 0.0
            lits = [lit for lit, val in sends if val >= v]
            items.append((_or(model, pv, lits, f"sent_once[{inst.graph.tensor_ids[t]},{d},{j}]"), v - nxt))
    return items


def _or(model: cp_model.CpModel, pv: PlacementVars, lits: list[Lit], name: str) -> Lit:
    """A literal equal to ``OR lits`` (constants folded; shared among equal sets of literals)."""
    if any(lit is True for lit in lits):
        return True
    variables = [lit for lit in lits if not isinstance(lit, bool)]
    if not variables:
        return False
    if len(variables) == 1:
        return variables[0]
    key = tuple(sorted(v.index for v in variables))
    if key not in pv.ors:
        o = model.new_bool_var(name)
        for v in variables:
            model.add_implication(v, o)
        model.add_bool_or([*variables, o.Not()])
        pv.ors[key] = o
    return pv.ors[key]
