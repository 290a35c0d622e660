"""Interchangeable devices: classes of devices that every part of the cost model treats alike.

Two devices are interchangeable when swapping their names maps every placement to one with the
same value of every metric and the same feasibility: same time column ``t(., d)``, memory, powers,
price, trust, device features, the same ``allowed`` column, the same channels (presence and every
figure) to and from every other device and between each other, neither is the sink nor the source
of model inputs that some layer reads,
the same membership in the energy scope, and no per-device energy budget. Identical accelerators
(Tarnawski et al., NeurIPS 2020: ``k`` identical FPGAs; Archer et al., ICML 2024: ``k`` identical
pipeline stages) are the typical case.

Exact formulations use the classes to break symmetry (:func:`formulation.milp.constraints.symmetry`,
:func:`formulation.cp.constraints.add_symmetry_breaking`) with the *representative* rule: the
devices ``d_1, d_2, ...`` of a class are used in the order of the first layer (by index) they run,
unused devices last. Every placement has exactly one such representative among its relabellings
(:func:`canonical_placement`), so the rule removes only equivalent placements. Its linear form is
the vertex-ordering inequality of Méndez-Díaz and Zabala ("A branch-and-cut algorithm for graph
coloring", Discrete Applied Mathematics 154(5), 2006)::

    x[v, d_j] <= sum_{u < v} x[u, d_{j-1}]          for every layer v and j >= 2
"""

from __future__ import annotations

import numpy as np

from formulation.model import Instance, IntArray


def interchangeable_classes(inst: Instance) -> list[list[int]]:
    """Classes (two or more devices, in index order) of interchangeable devices (module docstring)."""
    s, p = inst.system, inst.problem
    g = inst.graph
    fixed = {s.device_index[d] for d in p.constraints.energy_budget_j}
    if any(g.consumers[t] for t in range(g.n, g.n + g.m)):
        fixed.add(s.source_index)
    if s.sink_index is not None:
        fixed.add(s.sink_index)
    allowed = inst.allowed_mask
    classes: list[list[int]] = []
    for d in range(s.k):
        if d in fixed:
            continue
        for cls in classes:
            if _same(inst, cls[0], d, allowed):
                cls.append(d)
                break
        else:
            classes.append([d])
    return [cls for cls in classes if len(cls) > 1]


def _same(inst: Instance, a: int, b: int, allowed: np.ndarray) -> bool:
    s = inst.system
    dev_a, dev_b = s.devices[a], s.devices[b]
    scalar = (
        "memory_bytes", "power_active_w", "power_idle_w", "price_usd_per_s", "trusted", "comm_overlap", "send_once"
    )
    if any(getattr(dev_a, f) != getattr(dev_b, f) for f in scalar):
        return False
    if not np.array_equal(inst.time[:, a], inst.time[:, b]) or not np.array_equal(allowed[:, a], allowed[:, b]):
        return False
    if inst.scope_mask[a] != inst.scope_mask[b]:
        return False
    others = [d for d in range(s.k) if d not in (a, b)]
    tables = (s.has_link, s.bandwidth, s.link_latency, s.tx_power, s.rx_power, s.link_price)
    for tab in tables:
        if not np.array_equal(tab[a, others], tab[b, others]) or not np.array_equal(tab[others, a], tab[others, b]):
            return False
        if tab[a, b] != tab[b, a]:
            return False
    return True


def canonical_placement(inst: Instance, P: IntArray, classes: list[list[int]] | None = None) -> IntArray:
    """The relabelling of ``P`` that meets the representative rule (same value, same feasibility).

    Within each class the devices are renamed so that the ones in use appear in class order by the
    first layer they run.
    """
    classes = interchangeable_classes(inst) if classes is None else classes
    src = np.asarray(P, dtype=np.int64)
    out = src.copy()
    for cls in classes:
        first = {d: np.flatnonzero(np.equal(src, d)) for d in cls}
        used = sorted((int(idx[0]), d) for d, idx in first.items() if idx.size)
        for j, (_, old) in enumerate(used):
            out[first[old]] = cls[j]
    return out
