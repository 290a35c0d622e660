"""A lower bound on the period from the least loaded device set around each layer, by minimum cuts.

Every layer (every ``colocate`` class) lies on some device ``d``, and that device's busy time is at
least the load of the *set* ``S`` of layers it holds. On a device whose communication does not
overlap its compute (``comm_overlap: false``, the MSR accelerators of Tarnawski et al., NeurIPS
2020) the load of ``S`` is

``t(S, d) + sum_{u in S, some reader of u outside S} send(u) + sum_{u outside S, some reader in S} recv(u)``

with ``send(u)``, ``recv(u)`` the least occupancy (``bytes / bandwidth``) of ``u``'s tensor on a
channel out of, into ``d`` (a lower bound of what the evaluator charges: once per tensor on
``send_once`` devices, once per receiving device). Hence the period is at least, for every unit
``C``, ``min_d min_{S ⊇ C, S allowed on d} load(S)``, over sets ``S`` that hold each ``colocate``
class whole or not at all. Memory and the other devices are relaxed away, so the value is valid
for every feasible placement.

The inner minimum is a minimum s-t cut (a selection problem as in Picard, "Maximal closure of a
graph and applications to combinatorial problems", Management Science 1976, with the directed
hyperedges of Lawler, "Cutsets and partitions of hypergraphs", Networks 1973): the source side
is ``S``; layer ``v -> sink`` with capacity ``t(v, d)`` (infinite when ``v`` may not run on ``d``);
``source -> c`` infinite for ``c`` in ``C``; per tensor ``u`` an auxiliary node ``a_u`` with ``u ->
a_u`` of capacity ``send(u)`` and ``a_u -> r`` infinite for each reader ``r`` (cut exactly when ``u
in S`` and a reader is not), and ``b_u`` with ``r -> b_u`` infinite and ``b_u -> u`` of capacity
``recv(u)`` (cut exactly when a reader is in ``S`` and ``u`` is not); infinite edges around each
colocation class keep it on one side.

Units are taken in decreasing order of ``load(C)`` (an upper bound on their value), and the scan
stops once that falls to the best value found: the bound is exact for the relaxation, and on most
graphs only a few cuts are computed.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from networkx.algorithms.flow import boykov_kolmogorov

from formulation.model import FloatArray, Instance

#: Relative margin taken off the cut value, so that floating-point error in the flow never lifts
#: the bound above an optimum.
SAFETY = 1e-12
#: Largest number of layers for which the cuts are computed (above, the bound is skipped: 0).
MAX_LAYERS = 20_000


def _fastest(nbytes: FloatArray, bw: FloatArray, links: np.ndarray) -> FloatArray:
    """Per tensor, the least occupancy ``bytes / bw`` over the allowed ``links`` (``inf`` if none);
    link latency is not occupancy (docs/cost-model.md), so it is no part of a device's busy time."""
    if not links.any():
        return np.full(nbytes.shape, math.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        dur = nbytes[:, None] / bw[links][None, :]
    return np.asarray(dur.min(axis=1))


def _device_terms(inst: Instance, d: int) -> tuple[FloatArray, FloatArray]:
    """``(send, recv)`` seconds per layer tensor for device ``d`` (zeros when it overlaps)."""
    g, s = inst.graph, inst.system
    n = g.n
    if s.comm_overlap[d]:
        return np.zeros(n), np.zeros(n)
    nbytes = np.asarray(g.tensor_bytes[:n], dtype=float)
    out = s.has_link[d].copy()
    out[d] = False
    into = s.has_link[:, d].copy()
    into[d] = False
    return _fastest(nbytes, s.bandwidth[d], out), _fastest(nbytes, s.bandwidth[:, d], into)


def _add(net: nx.DiGraph, a: object, b: object, capacity: float = math.inf) -> None:
    """An edge; without a ``capacity`` attribute (infinite for networkx) when it is not finite."""
    if math.isfinite(capacity):
        net.add_edge(a, b, capacity=capacity)
    else:
        net.add_edge(a, b)


def _cut_graph(inst: Instance, d: int, send: FloatArray, recv: FloatArray) -> nx.DiGraph:
    """The cut network of device ``d`` without the source edges (see the module docstring)."""
    g = inst.graph
    net = nx.DiGraph()
    net.add_node("s")
    for v in range(g.n):
        _add(net, v, "t", float(inst.time[v, d]) if inst.placement_mask[v, d] else math.inf)
    for u in range(g.n):
        readers = g.succs[u]
        if not readers:
            continue
        if send[u] > 0:
            _add(net, u, ("a", u), float(send[u]))
            for r in readers:
                _add(net, ("a", u), r)
        if recv[u] > 0:
            for r in readers:
                _add(net, r, ("b", u))
            _add(net, ("b", u), u, float(recv[u]))
    for cls in inst.colocate_classes:
        # A colocation class joins S whole: infinite edges both ways around the class.
        ring = [int(v) for v in cls]
        for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
            _add(net, a, b)
    return net


def _set_load(inst: Instance, members: set[int], d: int, send: FloatArray, recv: FloatArray) -> float:
    """``load(S)`` of the module docstring for ``S = members`` on ``d``."""
    g = inst.graph
    total = float(inst.time[sorted(members), d].sum())
    for u in range(g.n):
        readers = g.succs[u]
        if not readers:
            continue
        inside = [r in members for r in readers]
        if u in members and not all(inside):
            total += float(send[u])
        elif u not in members and any(inside):
            total += float(recv[u])
    return total


def unit_load_bound(inst: Instance, floor: float = 0.0) -> float:
    """The period bound of the module docstring, or ``floor`` (a bound already known) when that is
    larger: units that cannot exceed it are skipped. Returns ``floor`` when no device has
    ``comm_overlap: false`` (the bound adds nothing to the compute bounds there) or above
    :data:`MAX_LAYERS` layers."""
    g, s = inst.graph, inst.system
    if s.comm_overlap.all() or g.n > MAX_LAYERS:
        return floor
    mask = inst.placement_mask
    in_class = {int(v) for c in inst.colocate_classes for v in c}
    units = [set(map(int, c)) for c in inst.colocate_classes] + [{v} for v in range(g.n) if v not in in_class]
    # Devices with the same figures give the same cuts: one representative each.
    seen: set[bytes] = set()
    terms: dict[int, tuple[FloatArray, FloatArray]] = {}
    for d in range(s.k):
        send, recv = _device_terms(inst, d)
        key = b"".join(a.tobytes() for a in (inst.time[:, d], mask[:, d], send, recv)) + bytes([int(s.comm_overlap[d])])
        if key not in seen:
            seen.add(key)
            terms[d] = (send, recv)
    devices = list(terms)
    candidates = []
    for unit in units:
        allowed = [d for d in devices if mask[sorted(unit), d].all()]
        if allowed:
            upper = min(_set_load(inst, unit, d, *terms[d]) for d in allowed)
            candidates.append((upper, unit, allowed))
    candidates.sort(key=lambda c: -c[0])
    nets: dict[int, nx.DiGraph] = {}
    best = floor
    for upper, unit, allowed in candidates:
        if upper <= best:
            break
        value = upper
        for d in allowed:
            if s.comm_overlap[d]:
                value = min(value, float(inst.time[sorted(unit), d].sum()))
                continue
            if d not in nets:
                nets[d] = _cut_graph(inst, d, *terms[d])
            net = nets[d]
            for c in unit:
                net.add_edge("s", c)
            try:
                value = min(value, float(nx.minimum_cut_value(net, "s", "t", flow_func=boykov_kolmogorov)))
            except nx.NetworkXUnbounded:
                pass  # no finite cut: the unit cannot run on d (its tensors cannot reach it)
            finally:
                net.remove_edges_from([("s", c) for c in unit])
            if value <= best:
                break
        best = max(best, value)
    if best <= floor or not math.isfinite(best):
        return floor
    return best * (1 - SAFETY)
