"""Units and device classes of the pipeline DP (:mod:`solvers.pipeline_dp`).

A *unit* is a set of layers that lies in one stage of every pipeline the DP needs to consider:

* a ``colocate`` class (its layers share a device, hence a stage);
* the strongly connected components after contracting the classes: a stage is convex
  (:mod:`formulation.evaluator.pipeline`), so every layer on a path between two layers of a class
  is in the class's stage;
* *free* layers (no time on any device, allowed on every device, nothing counted against memory,
  every pair of devices linked) merged into a neighbour when that can only lower every load:
  a free layer with one predecessor unit and an output of 0 bytes joins its predecessor's unit (its
  stage then neither receives the predecessor's tensor nor makes it leave), and a free layer without
  predecessors and with one successor unit joins that unit (its output no longer travels). Moving
  such a layer into its neighbour's stage keeps the pipeline order (edges stay forward), adds no
  transfer and removes at most some, so an optimal pipeline of the contracted graph is optimal for
  the original one.

A *device class* groups devices that the DP's stage value cannot tell apart (same time column,
``allowed``/``private`` column, memory, ``comm_overlap``, and the same least per-byte send and
receive rates), so the DP counts how many devices of each class are in use instead of naming them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from formulation.costs import working_set_bytes
from formulation.model import BoolArray, FloatArray, Instance, IntArray


@dataclass
class DeviceClass:
    """Devices with the same stage values, and those values per unit."""

    devices: list[int]
    time: list[float]
    """Compute time of each unit on one device of the class."""
    allowed: list[bool]
    memory: float
    overlap: bool
    """``comm_overlap``: busy time is compute only."""
    out_rate: float
    """Seconds per byte sent, a lower bound: ``1 / (largest bandwidth out of the device)``."""
    in_rate: float
    """Seconds per byte received, a lower bound: ``1 / (largest bandwidth into the device)``."""


@dataclass
class Units:
    """The contracted graph: units in a topological order, their tensors and the device classes."""

    members: list[list[int]]
    unit_of: IntArray
    preds: list[int]
    """Bitmask of the predecessor units of each unit."""
    succs: list[list[int]]
    params: list[float]
    peak: list[float]
    """Largest working set of a unit's layers (0 under ``memory: params`` or without memory)."""
    classes: list[DeviceClass]
    t_prod: list[int] = field(default_factory=list)
    """Producer unit of each inter-unit tensor."""
    t_cons: list[list[int]] = field(default_factory=list)
    """Consumer units of each inter-unit tensor."""
    t_bytes: list[float] = field(default_factory=list)
    out_t: list[list[int]] = field(default_factory=list)
    """Tensors each unit produces (that leave it)."""
    in_t: list[list[int]] = field(default_factory=list)
    """Tensors each unit consumes from other units."""
    cache: dict[object, Any] = field(default_factory=dict, repr=False, compare=False)
    """Tables the search derives from the units once per solve (:mod:`solvers.pipeline_search`)."""

    @property
    def count(self) -> int:
        """Number of units."""
        return len(self.members)


def _layer_peak(inst: Instance) -> FloatArray:
    g, c = inst.graph, inst.problem.constraints
    if not c.memory or c.memory_model == "params":
        return np.zeros(g.n)
    return working_set_bytes(g)


def memory_binds(inst: Instance) -> bool:
    """Some device could exceed its memory (else memory is ignored: every layer set fits)."""
    c, s, g = inst.problem.constraints, inst.system, inst.graph
    if not c.memory or not np.isfinite(s.memory).any():
        return False
    need = float(g.param_bytes.sum()) + float(_layer_peak(inst).max(initial=0.0))
    return bool((need > s.memory * (1 + 1e-9)).any())


def _free_layers(inst: Instance) -> BoolArray:
    """Layers that cost nothing anywhere (see the module docstring)."""
    g, s = inst.graph, inst.system
    full_links = bool((s.has_link | np.eye(s.k, dtype=bool)).all())
    if not full_links:
        return np.zeros(g.n, dtype=bool)
    free = (inst.time == 0).all(axis=1) & inst.placement_mask.all(axis=1)
    if memory_binds(inst):
        free &= (g.param_bytes == 0) & (_layer_peak(inst) == 0)
    in_class = np.zeros(g.n, dtype=bool)
    for cls in inst.colocate_classes:
        in_class[cls] = True
    # A layer reading a model input is left alone: where it runs decides who receives that input.
    reads_input = np.zeros(g.n, dtype=bool)
    for t in range(g.n, g.n + g.m):
        reads_input[list(g.consumers[t])] = True
    out = free & ~in_class & ~reads_input
    if s.sink_index is not None:
        out[list(g.outputs)] = False
    return np.asarray(out)


def device_classes(inst: Instance, unit_of: IntArray, N: int) -> list[DeviceClass]:
    """Devices grouped by their stage values, with each class's figures per unit (``unit_of``: the
    unit of each layer, ``N`` units)."""
    s = inst.system
    c = inst.problem.constraints
    mask = inst.placement_mask
    groups: dict[bytes, DeviceClass] = {}
    for d in range(s.k):
        out = s.has_link[d].copy()
        out[d] = False
        into = s.has_link[:, d].copy()
        into[d] = False
        # Without a channel (one device) no tensor can leave or arrive: the rate never multiplies bytes.
        out_rate = 1.0 / float(s.bandwidth[d, out].max()) if out.any() else 0.0
        in_rate = 1.0 / float(s.bandwidth[into, d].max()) if into.any() else 0.0
        time = np.zeros(N)
        np.add.at(time, unit_of, inst.time[:, d])
        allowed = np.ones(N, dtype=bool)
        np.logical_and.at(allowed, unit_of, mask[:, d])
        memory = float(s.memory[d]) if c.memory else math.inf
        overlap = bool(s.comm_overlap[d])
        key = b"".join(
            np.asarray(a).tobytes() for a in (time, allowed, [memory, out_rate, in_rate, float(overlap)])
        )
        if key in groups:
            groups[key].devices.append(d)
        else:
            groups[key] = DeviceClass([d], time.tolist(), allowed.tolist(), memory, overlap, out_rate, in_rate)
    return list(groups.values())


def build_units(inst: Instance, contract_free: bool = True) -> Units:
    """Contract classes, their convex hulls and free layers into units (module docstring)."""
    g = inst.graph
    G = nx.DiGraph()
    G.add_nodes_from(range(g.n))
    G.add_edges_from(g.edges)
    for cls in inst.colocate_classes:
        ring = [int(v) for v in cls]
        G.add_edges_from(zip(ring, ring[1:] + ring[:1], strict=True))
    cond = nx.condensation(G)
    comp = cond.graph["mapping"]
    parent = {u: u for u in cond.nodes}

    def find(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    if contract_free:
        free = _free_layers(inst)
        for v in np.flatnonzero(free).tolist():
            cu = comp[v]
            if len(cond.nodes[cu]["members"]) != 1:
                continue
            pu = {find(comp[p]) for p in g.preds[v]}
            su = {find(comp[w]) for w in g.succs[v]}
            if len(pu) == 1 and float(g.output_bytes[v]) == 0.0:
                parent[find(cu)] = pu.pop()
            elif not pu and len(su) == 1:
                parent[find(cu)] = su.pop()
    merged = nx.DiGraph()
    merged.add_nodes_from({find(u) for u in cond.nodes})
    merged.add_edges_from((find(a), find(b)) for a, b in cond.edges if find(a) != find(b))
    # Contracting a free layer into a neighbour keeps the graph acyclic (it had one neighbour on that side).
    first: dict[int, int] = {}
    for w in cond.nodes:
        r = find(w)
        first[r] = min(first.get(r, g.n), *cond.nodes[w]["members"])
    order = list(nx.lexicographical_topological_sort(merged, key=lambda u: first[u]))
    index = {u: i for i, u in enumerate(order)}
    N = len(order)
    unit_of = np.array([index[find(comp[v])] for v in range(g.n)], dtype=np.int64)
    members: list[list[int]] = [[] for _ in range(N)]
    for v in range(g.n):
        members[int(unit_of[v])].append(v)
    preds = [0] * N
    succs: list[list[int]] = [[] for _ in range(N)]
    for a, b in merged.edges:
        ia, ib = index[a], index[b]
        preds[ib] |= 1 << ia
        succs[ia].append(ib)
    peak_l = _layer_peak(inst)
    # Per-unit sums and maxima by one pass over the layers (not one array slice per unit).
    peak_per_unit = np.zeros(N)
    np.maximum.at(peak_per_unit, unit_of, peak_l)
    units = Units(
        members=members,
        unit_of=unit_of,
        preds=preds,
        succs=[sorted(x) for x in succs],
        params=np.bincount(unit_of, weights=g.param_bytes, minlength=N).tolist(),
        peak=peak_per_unit.tolist(),
        classes=device_classes(inst, unit_of, N),
    )
    units.out_t = [[] for _ in range(N)]
    units.in_t = [[] for _ in range(N)]
    for u in range(g.n):
        cons = sorted({int(unit_of[w]) for w in g.succs[u]} - {int(unit_of[u])})
        if not cons:
            continue
        t = len(units.t_prod)
        units.t_prod.append(int(unit_of[u]))
        units.t_cons.append(cons)
        units.t_bytes.append(float(g.output_bytes[u]))
        units.out_t[int(unit_of[u])].append(t)
        for x in cons:
            units.in_t[x].append(t)
    return units

