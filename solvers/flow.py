"""Minimum s-t cuts on integer capacities, with three interchangeable max-flow backends.

``ortools`` (default)
    OR-Tools ``SimpleMaxFlow`` (push-relabel, Goldberg and Tarjan, JACM 1988), int64 capacities.
``scipy``
    ``scipy.sparse.csgraph.maximum_flow(method="dinic")`` (Dinitz 1970), **int32** capacities:
    it silently returns a zero flow once a capacity reaches 2**31, so :func:`min_cut` refuses
    capacities above :data:`LIMITS` instead.
``networkx``
    ``networkx.minimum_cut`` (preflow-push), Python integers; hundreds of times slower, a reference.

Measured in ``benchmarks/exact.py``: OR-Tools is as fast as SciPy or up to ten times faster from
1,000 to 100,000 layers, networkx hundreds of times slower; OR-Tools is the default because its
int64 capacities (up to ``2**52`` per arc in :mod:`solvers.mincut`) give the cut about fifteen
significant digits where int32 gives about nine.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from formulation.model import BoolArray, IntArray

Backend = Literal["ortools", "scipy", "networkx"]
BACKENDS: tuple[Backend, ...] = ("ortools", "scipy", "networkx")

#: Largest arc capacity of each backend. The caller keeps the flow value (and, for push-relabel,
#: the capacity out of the source) within the same integers; :mod:`solvers.mincut` does.
LIMITS: dict[str, int] = {"ortools": 2**62, "scipy": 2**31 - 1, "networkx": 2**62}


def reachable(num_nodes: int, tails: IntArray, heads: IntArray, start: int) -> BoolArray:
    """Nodes reachable from ``start`` along the given arcs (breadth-first, vectorised)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    adj = csr_matrix((np.ones(tails.size, dtype=np.int8), (tails, heads)), shape=(num_nodes, num_nodes))
    order = breadth_first_order(adj, start, directed=True, return_predecessors=False)
    out = np.zeros(num_nodes, dtype=bool)
    out[order] = True
    return out


def min_cut(
    num_nodes: int,
    tails: IntArray,
    heads: IntArray,
    caps: IntArray,
    source: int,
    sink: int,
    backend: Backend = "ortools",
) -> tuple[int, BoolArray]:
    """A minimum ``source``-``sink`` cut.

    Parameters
    ----------
    num_nodes : int
        Nodes are ``0 .. num_nodes-1``.
    tails, heads, caps : int arrays
        Arcs ``tails[i] -> heads[i]`` of capacity ``caps[i] >= 0``; parallel arcs are allowed.
    source, sink : int
        Terminals.
    backend : {"ortools", "scipy", "networkx"}
        Max-flow implementation.

    Returns
    -------
    value : int
        Capacity of the cut.
    source_side : (num_nodes,) bool
        The source side of a minimum cut (nodes reachable from ``source`` in the residual graph).

    Raises
    ------
    OverflowError
        When a capacity does not fit the backend's integers (see :data:`LIMITS`).
    """
    tails = np.asarray(tails, dtype=np.int64)
    heads = np.asarray(heads, dtype=np.int64)
    caps = np.asarray(caps, dtype=np.int64)
    if caps.size and (int(caps.min()) < 0 or int(caps.max()) > LIMITS[backend]):
        raise OverflowError(f"capacities do not fit the {backend} max-flow backend (limit {LIMITS[backend]})")
    if backend == "ortools":
        return _ortools(num_nodes, tails, heads, caps, source, sink)
    if backend == "scipy":
        return _scipy(num_nodes, tails, heads, caps, source, sink)
    if backend == "networkx":
        return _networkx(num_nodes, tails, heads, caps, source, sink)
    raise ValueError(f"unknown max-flow backend {backend!r} (choose from {', '.join(BACKENDS)})")


def _ortools(n: int, tails: IntArray, heads: IntArray, caps: IntArray, s: int, t: int) -> tuple[int, BoolArray]:
    from ortools.graph.python import max_flow

    mf = max_flow.SimpleMaxFlow()
    # OR-Tools sizes its graph from the largest node id seen; pin both terminals with empty arcs.
    mf.add_arcs_with_capacity(
        np.concatenate([tails, [s, t]]), np.concatenate([heads, [t, s]]), np.concatenate([caps, [0, 0]])
    )
    status = mf.solve(s, t)
    if status != mf.OPTIMAL:
        raise RuntimeError(f"OR-Tools max flow ended with status {status}")
    side = np.zeros(n, dtype=bool)
    side[np.asarray(mf.get_source_side_min_cut(), dtype=np.int64)] = True
    return int(mf.optimal_flow()), side


def _scipy(n: int, tails: IntArray, heads: IntArray, caps: IntArray, s: int, t: int) -> tuple[int, BoolArray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = csr_matrix((caps.astype(np.int32), (tails, heads)), shape=(n, n))  # duplicates are summed
    res = maximum_flow(a, s, t, method="dinic")
    residual = (a - res.flow).tocoo()
    pos = residual.data > 0
    side = reachable(n, residual.row[pos].astype(np.int64), residual.col[pos].astype(np.int64), s)
    return int(res.flow_value), side


def _networkx(n: int, tails: IntArray, heads: IntArray, caps: IntArray, s: int, t: int) -> tuple[int, BoolArray]:
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    for a, b, c in zip(tails.tolist(), heads.tolist(), caps.tolist(), strict=True):
        if g.has_edge(a, b):
            g[a][b]["capacity"] += c
        else:
            g.add_edge(a, b, capacity=c)
    value, (src_side, _) = nx.minimum_cut(g, s, t)
    side = np.zeros(n, dtype=bool)
    side[list(src_side)] = True
    return int(value), side
