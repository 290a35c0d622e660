"""The ``pipeline`` constraint: the devices' layer sets are the stages of a pipeline.

Definition (Tarnawski, Phanishayee, Devanur, Mahajan and Nina Paravecino, "Efficient Algorithms
for Device Placement of DNN Graph Operators", NeurIPS 2020, Section 4; PipeDream, Narayanan et al.,
SOSP 2019, is the case of a chain): a placement is a pipeline when its used devices can be
numbered ``d_1, ..., d_m`` so that with ``D_i = S(d_1) ∪ ... ∪ S(d_i)`` (``S(d)`` the layers on
``d``) every ``D_i`` is a *down-set* (an ideal: it holds every predecessor of each of its layers),
i.e. ``∅ ⊂ D_1 ⊂ ... ⊂ D_m = V`` is a chain of down-sets and ``S(d_i) = D_i \\ D_{i-1}``, one
stage per device. Equivalently, the *quotient graph* (one node per used device, an arc
``dev(u) -> dev(v)`` for every edge ``u -> v`` between two devices) is acyclic; a topological
order of it is such a numbering. In inequality form: there are stage indices ``σ(d)`` with

    σ(dev(u)) + 1 <= σ(dev(v))        for every edge u -> v with dev(u) != dev(v).

Every stage is convex (``u, w in D_i \\ D_{i-1}`` and a path ``u -> ... -> w``: the path lies in
``D_i`` since ``D_i`` is a down-set, and outside ``D_{i-1}`` since ``u`` is), so a pipeline is a
``contiguous`` placement; the converse fails on a DAG (two chains ``a1 -> a2``, ``b1 -> b2`` split
as ``{a1, b2}``, ``{b1, a2}``: both sets convex, the quotient a 2-cycle).
"""

from __future__ import annotations

import numpy as np

from formulation.model import BoolArray, Instance, IntArray


def pipeline_sets(inst: Instance, P: IntArray) -> BoolArray:
    """(N,) bool: placement ``P[i]`` (device index per layer) is a pipeline.

    The quotient graph's reachability is closed by repeated boolean squaring (``ceil(log2 k)``
    products of ``k x k`` matrices per placement); a pipeline has no device that reaches itself.
    """
    P = np.atleast_2d(np.asarray(P, dtype=np.int64))
    N, k = P.shape[0], inst.k
    reach = np.zeros((N, k, k), dtype=bool)
    edges = np.asarray(inst.graph.edges, dtype=np.int64).reshape(-1, 2)
    if edges.size == 0 or k < 2:
        return np.ones(N, dtype=bool)
    a, b = P[:, edges[:, 0]], P[:, edges[:, 1]]
    rows = np.broadcast_to(np.arange(N)[:, None], a.shape)
    cross = a != b
    reach[rows[cross], a[cross], b[cross]] = True
    # Products count paths of two steps, at most k: uint8 cannot wrap below 256 devices.
    dtype = np.uint8 if k < 256 else np.int64
    span = 1
    while span < k:
        m = reach.astype(dtype)
        reach |= np.matmul(m, m) > 0
        span *= 2
    return np.asarray(~np.diagonal(reach, axis1=1, axis2=2).any(axis=1))


def pipeline_order(inst: Instance, placement: IntArray) -> list[int] | None:
    """The used devices of one placement in a pipeline order (a topological order of the quotient
    graph, ties by device index), or ``None`` when the placement is not a pipeline."""
    P = np.asarray(placement, dtype=np.int64)
    used = sorted({int(d) for d in P})
    succ: dict[int, set[int]] = {d: set() for d in used}
    indeg = dict.fromkeys(used, 0)
    for u, v in inst.graph.edges:
        a, b = int(P[u]), int(P[v])
        if a != b and b not in succ[a]:
            succ[a].add(b)
            indeg[b] += 1
    ready = [d for d in used if indeg[d] == 0]
    order: list[int] = []
    while ready:
        d = min(ready)
        ready.remove(d)
        order.append(d)
        for e in sorted(succ[d]):
            indeg[e] -= 1
            if indeg[e] == 0:
                ready.append(e)
    return order if len(order) == len(used) else None
