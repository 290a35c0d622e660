"""Placement booleans and tensor shipping for CP-SAT (docs/instance-format.md §5.2, "sent once per device").

Variables (``T = n + m`` tensors, ``k`` devices):

* ``x[v, d]`` -- layer v runs on device d (only where :attr:`Masks.place` allows it);
* ``need[t, b]`` -- tensor t is needed on device b: a consumer of t runs on b, or t is a model
  output and b is the sink;
* ``send[t, a, b]`` -- t is produced on a and sent to b != a: ``x[t, a] AND need[t, b]``.

Shipping is modelled per (tensor, receiving device), never per edge, so a tensor read by several
layers on one device is paid once; this is the "transmit once" aggregation of DADS (Hu et al.,
IEEE INFOCOM 2019) and the spec. ``need`` and ``send`` are defined *exactly* (both implications),
not only bounded below: the idle term of the energy model decreases when a device sends more, so a
one-sided definition would let the solver invent transfers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from formulation.cp.tables import Masks
from formulation.model import Instance

Lit = cp_model.IntVar | bool
"""A CP-SAT boolean variable or a Python constant."""
AnyLit = cp_model.LiteralT
"""A literal as CP-SAT takes it (including negations)."""


def negate(lit: Lit) -> AnyLit:
    """The negation of a literal or of a constant."""
    if isinstance(lit, bool):
        return not lit
    return lit.Not()


@dataclass(frozen=True)
class PlacementVars:
    """The placement and shipping literals of one model.

    Attributes
    ----------
    x : dict
        ``(v, d) -> BoolVar`` for every placeable pair.
    need : dict
        ``(t, b) -> literal``; absent pairs are never needed (or never shipped to).
    send : dict
        ``(t, a, b) -> literal`` for every possible transfer (absent: impossible).
    """

    x: dict[tuple[int, int], cp_model.IntVar]
    need: dict[tuple[int, int], Lit]
    send: dict[tuple[int, int, int], Lit]
    n: int
    source: int
    ors: dict[tuple[int, ...], Lit] = field(default_factory=dict)
    """OR literals over sets of shipping literals (``send_once`` sending, :mod:`formulation.cp.sending`)."""

    def producer(self, t: int, a: int) -> Lit:
        """Literal "tensor t is produced on a" (model inputs live on the source)."""
        if t >= self.n:
            return a == self.source
        return self.x.get((t, a), False)


def _and(model: cp_model.CpModel, a: Lit, b: Lit, name: str) -> Lit:
    """A literal equal to ``a AND b``: ``z <= a``, ``z <= b``, ``z >= a + b - 1``."""
    if isinstance(a, bool):
        return b if a else False
    if isinstance(b, bool):
        return a if b else False
    z = model.new_bool_var(name)
    model.add_implication(z, a)
    model.add_implication(z, b)
    model.add_bool_or([a.Not(), b.Not(), z])
    return z


def add_placement(model: cp_model.CpModel, inst: Instance, masks: Masks) -> PlacementVars:
    """Placement, shipping and link constraints.

    Constraints (DADS, Hu et al., IEEE INFOCOM 2019, for placement and shipping; docs/instance-format.md §5.2):

    * ``sum_d x[v, d] = 1`` for every layer (``x[v, d]`` exists only where ``allowed``/``private``
      permit d, so both constraints of the format hold by construction);
    * ``need[t, b] = OR_{c consumes t} x[c, b]`` (``= 1`` for model outputs on the sink);
    * ``send[t, a, b] = x[t, a] AND need[t, b]`` for ``a != b`` with a channel ``a -> b``;
    * ``x[t, a] + need[t, b] <= 1`` when there is no channel ``a -> b`` (missing links forbid
      placements; there is no routing in v1);
    * ``x[v, d] = x[c, d]`` for the members ``v`` of each colocation class and its first layer ``c``.
    """
    g, s = inst.graph, inst.system
    n, k = g.n, s.k
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    for v in range(n):
        row = []
        for d in range(k):
            if masks.place[v, d]:
                x[v, d] = model.new_bool_var(f"x[{g.layer_ids[v]},{s.device_ids[d]}]")
                row.append(x[v, d])
        model.add_exactly_one(row)
    for cls in inst.colocate_classes:
        # Colour-class equalities of the placement IP of Tarnawski et al. (NeurIPS 2020); the
        # members' rows of ``masks.place`` are equal (see build_masks), so both literals exist.
        first = int(cls[0])
        for v in cls[1:].tolist():
            for d in range(k):
                if masks.place[first, d]:
                    model.add(x[v, d] == x[first, d])
    pv = PlacementVars(x, {}, {}, n, s.source_index)
    sink = s.sink_index
    for t in range(n + g.m):
        for b in range(k):
            crossing = masks.ship[t, :, b] | masks.blocked[t, :, b]
            if not crossing.any():
                continue
            need = _need(model, inst, pv, t, b, sink)
            pv.need[t, b] = need
            for a in range(k):
                if masks.ship[t, a, b]:
                    lit = _and(model, pv.producer(t, a), need, f"send[{g.tensor_ids[t]},{a},{b}]")
                    if lit is not False:
                        pv.send[t, a, b] = lit
                elif masks.blocked[t, a, b]:
                    model.add_bool_or([negate(pv.producer(t, a)), negate(need)])
    return pv


def _need(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, t: int, b: int, sink: int | None) -> Lit:
    g = inst.graph
    if t < g.n and sink == b and g.is_output[t]:
        return True
    users = [pv.x[c, b] for c in g.consumers[t] if (c, b) in pv.x]
    if not users:
        return False
    if len(users) == 1:
        return users[0]
    need = model.new_bool_var(f"need[{g.tensor_ids[t]},{b}]")
    for u in users:
        model.add_implication(u, need)
    model.add_bool_or([*users, need.Not()])
    return need
