"""Routes of version-2 systems (docs/instance-format.md §9.4): which channels a transfer travels.

* ``direct``: the channel ``a -> b`` itself (version 1); no channel, no route.
* ``shortest``: the fewest hops; among those, the least total fixed delay (link latency plus
  overhead); among those, the smallest sequence of device indices (file order), so the choice is
  deterministic. Computed once, when the instance is loaded, and shown by ``dnnpart validate``.
* ``explicit``: ``routes: {"a->b": [a, x, b], ...}`` for the listed pairs; every other pair travels
  its direct channel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import networkx as nx

from formulation.model import System
from formulation.workload import Route


def channel_graph(system: System) -> nx.DiGraph:
    """Devices as nodes (indices), channels as arcs."""
    g = nx.DiGraph()
    g.add_nodes_from(range(system.k))
    g.add_edges_from((system.device_index[a], system.device_index[b]) for (a, b) in system.links)
    return g


def path_route(path: list[int] | tuple[int, ...]) -> Route:
    """``[a, x, b]`` -> ``((a, x), (x, b))``."""
    return tuple((int(path[i]), int(path[i + 1])) for i in range(len(path) - 1))


def direct_routes(system: System) -> dict[tuple[int, int], Route]:
    """Every channel is the route between its ends."""
    out: dict[tuple[int, int], Route] = {}
    for a, b in system.links:
        i, j = system.device_index[a], system.device_index[b]
        out[(i, j)] = ((i, j),)
    return out


def shortest_routes(system: System) -> dict[tuple[int, int], Route]:
    """Fewest hops, then least total fixed delay, then the smallest device-index sequence."""
    g = channel_graph(system)
    out: dict[tuple[int, int], Route] = {}
    for a in range(system.k):
        for b in range(system.k):
            if a == b or not nx.has_path(g, a, b):
                continue
            best: tuple[float, list[int]] | None = None
            for p in nx.all_shortest_paths(g, a, b):
                delay = math.fsum(float(system.link_latency[p[i], p[i + 1]]) for i in range(len(p) - 1))
                if best is None or (delay, p) < best:
                    best = (delay, list(p))
            assert best is not None
            out[(a, b)] = path_route(best[1])
    return out


def explicit_routes(system: System, given: Mapping[tuple[int, int], list[int]]) -> dict[tuple[int, int], Route]:
    """The listed routes (device-index paths, checked by the loader), direct channels elsewhere."""
    out = direct_routes(system)
    for pair, path in given.items():
        out[pair] = path_route(path)
    return out


def describe_routes(system: System, routes: Mapping[tuple[int, int], Route], every: bool = False) -> list[str]:
    """One line per multi-hop route (``every``: per route), ``a -> x -> b``, for ``dnnpart validate``."""
    ids = system.device_ids
    lines = []
    for (a, b), r in sorted(routes.items()):
        if len(r) > 1 or every:
            lines.append(f"{ids[a]} -> {ids[b]}: " + " -> ".join([ids[r[0][0]], *(ids[h[1]] for h in r)]))
    return lines
