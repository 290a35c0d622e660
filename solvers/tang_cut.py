"""Per-request oracles of ``tang`` (solvers/tang.py): least ``W(p) + s c(p)`` over the placements of
one request on its own device and the server, and the lower envelope of these lines in ``s``.

``W(p)`` is the request's compute time on the server, ``c(p)`` everything else: its compute on its own
device and the durations of its transfers (each tensor sent once to the other device when some
consumer, or the sink, is there; docs/instance-format.md §9.4). Both are additive, so for a fixed
``s`` the minimiser is a shortest path on a chain (exact, O(n)) and, on a DAG, a minimum s-t cut of
Stone's two-processor network with DADS's gadget for tensors read on several devices (Hu et al.,
INFOCOM 2019); the cut runs on networkx's preflow-push with float capacities.

As ``s`` grows the minimisers trade server work for own time; the lower envelope
``min_p W(p) + s c(p)`` over ``s`` in ``(0, 1]`` is found by Eisner–Severance's breakpoint search (two
cuts per linear piece). A request's least server share for a latency budget ``B``,
``min_p W(p) / (B - c(p))``, is attained by a placement of that envelope (Dinkelbach's optimality
condition: the minimiser at the optimal ratio ``s*`` minimises ``W + s* c``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from formulation.model import Instance

Line = tuple[float, float, tuple[int, ...]]
"""``(W, c, placement)``: placement as 0 (own device) / 1 (server) per layer of the request."""


@dataclass(frozen=True)
class RequestCosts:
    """One request's additive costs on (own device, server)."""

    layers: tuple[int, ...]
    devs: tuple[int, int]
    t: np.ndarray
    """(n, 2) layer times on own device and server."""
    ok: np.ndarray
    """(n, 2) allowed by ``allowed``/``private``."""
    up: np.ndarray
    """(T,) transfer time own -> server of every tensor of the request (inputs last)."""
    down: np.ndarray
    """(T,) transfer time server -> own."""
    consumers: tuple[tuple[int, ...], ...]
    """Per tensor, the local indices of the layers reading it."""
    producer: tuple[int, ...]
    """Per tensor, its local producer layer, or -1 for a model input (on the own device)."""
    to_sink: tuple[bool, ...]
    """Per tensor, it is an output that must reach the own device (the sink)."""


def request_costs(inst: Instance, r: int, srv: int) -> RequestCosts:
    """The additive costs of request ``r`` with ``srv`` as the server."""
    wl = inst.workload
    assert wl is not None
    req, g, s = wl.requests[r], inst.graph, inst.system
    local = {v: i for i, v in enumerate(req.layers)}
    tensors = [*req.layers, *req.inputs]
    devs = (req.source, srv)
    t = np.array([[inst.time[v, d] for d in devs] for v in req.layers])
    ok = np.array([[inst.placement_mask[v, d] for d in devs] for v in req.layers])
    up = np.array([s.transfer_time(devs[0], devs[1], float(g.tensor_bytes[x])) for x in tensors])
    down = np.array([s.transfer_time(devs[1], devs[0], float(g.tensor_bytes[x])) for x in tensors])
    consumers = tuple(tuple(local[v] for v in g.consumers[x]) for x in tensors)
    producer = tuple(local.get(x, -1) for x in tensors)
    sink = req.sink is not None
    to_sink = tuple(sink and x < g.n and bool(g.is_output[x]) for x in tensors)
    return RequestCosts(req.layers, devs, t, ok, up, down, consumers, producer, to_sink)


def value(rc: RequestCosts, p: tuple[int, ...]) -> tuple[float, float]:
    """``(W(p), c(p))`` of a placement (0 own device, 1 server per local layer)."""
    W = float(sum(rc.t[i, 1] for i, d in enumerate(p) if d == 1))
    c = float(sum(rc.t[i, 0] for i, d in enumerate(p) if d == 0))
    for x, users in enumerate(rc.consumers):
        at = p[rc.producer[x]] if rc.producer[x] >= 0 else 0
        ends = {p[i] for i in users} | ({0} if rc.to_sink[x] else set())
        if (1 - at) in ends:
            c += float(rc.up[x] if at == 0 else rc.down[x])
    return W, c


def chain_best(rc: RequestCosts, s: float) -> tuple[int, ...] | None:
    """Least ``W + s c`` on a chain whose inputs feed its first layer only (shortest path, O(n))."""
    n = len(rc.layers)
    coef = np.array([s, 1.0])  # own time weighs s, server time 1
    ins = [x for x in range(len(rc.producer)) if rc.producer[x] < 0]
    first = np.array([0.0, s * float(sum(rc.up[x] for x in ins))])
    cost = np.where(rc.ok[0], first + rc.t[0] * coef, np.inf)
    back = []
    for i in range(1, n):
        move = np.array([[0.0, s * rc.up[i - 1]], [s * rc.down[i - 1], 0.0]])
        tot = cost[:, None] + move + (rc.t[i] * coef)[None, :]
        arg = np.argmin(tot, axis=0)
        back.append(arg)
        cost = np.where(rc.ok[i], tot[arg, [0, 1]], np.inf)
    last = n - 1
    cost = cost + np.array([0.0, s * rc.down[last] if rc.to_sink[last] else 0.0])
    j = int(np.argmin(cost))
    if not math.isfinite(cost[j]):
        return None
    path = [j]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    return tuple(reversed(path))


def cut_best(rc: RequestCosts, s: float) -> tuple[int, ...] | None:
    """Least ``W + s c`` on a DAG by a minimum cut (own device = source side, server = sink side).

    Arcs without a capacity are infinite (networkx's convention): forbidden devices, the gadget's
    fan-out arcs, and transfers over a missing channel.
    """
    S, T = "own", "srv"
    caps: dict[tuple[object, object], float] = {}

    def arc(a: object, b: object, cap: float) -> None:
        if cap > 0:
            caps[(a, b)] = caps.get((a, b), 0.0) + cap

    for i in range(len(rc.layers)):
        on_srv = rc.t[i, 1] if rc.ok[i, 1] else math.inf
        on_own = s * rc.t[i, 0] if rc.ok[i, 0] else math.inf
        arc(S, i, on_srv)  # cut when i is on the server side
        arc(i, T, on_own)
    for x, users in enumerate(rc.consumers):
        u: object = rc.producer[x] if rc.producer[x] >= 0 else S
        ends: list[object] = list(users) + ([S] if rc.to_sink[x] else [])
        w_up, w_down = s * rc.up[x], s * rc.down[x]
        if not ends:
            continue
        y, z = ("y", x), ("z", x)
        arc(u, y, w_up)  # u on the own side, some end on the server side: pay the upload once
        arc(z, u, w_down)  # u on the server side, some end on the own side: pay the download once
        for e in ends:
            arc(y, e, math.inf)
            arc(e, z, math.inf)
    g: nx.DiGraph = nx.DiGraph()
    g.add_nodes_from([S, T, *range(len(rc.layers))])
    for (a, b), cap in caps.items():
        if math.isfinite(cap):
            g.add_edge(a, b, capacity=cap)
        else:
            g.add_edge(a, b)  # no capacity: infinite
    try:
        cut, (own_side, _) = nx.minimum_cut(g, S, T)
    except nx.NetworkXUnbounded:
        return None
    if not math.isfinite(cut):
        return None
    return tuple(0 if i in own_side else 1 for i in range(len(rc.layers)))


def envelope(rc: RequestCosts, best: Callable[[RequestCosts, float], tuple[int, ...] | None]) -> list[Line]:
    """The placements of the lower envelope of ``W + s c`` over ``s`` in ``(0, 1]``."""
    found: dict[tuple[int, ...], Line] = {}

    def at(s: float) -> Line | None:
        p = best(rc, s)
        if p is None:
            return None
        W, c = value(rc, p)
        line = (W, c, p)
        found.setdefault(p, line)
        return line

    lo, hi = at(1e-9), at(1.0)
    if lo is None or hi is None:
        return []

    def search(a: Line, b: Line, depth: int) -> None:
        if depth > 60 or a[1] <= b[1] or a[2] == b[2]:
            return
        s = (b[0] - a[0]) / (a[1] - b[1])
        if not 0 < s < 1:
            return
        m = at(s)
        if m is None:
            return
        if m[0] + s * m[1] < (a[0] + s * a[1]) * (1 - 1e-12):
            search(a, m, depth + 1)
            search(m, b, depth + 1)

    search(lo, hi, 0)
    if rc.ok[:, 0].all():  # everything on the own device needs no server share at all
        own = tuple(0 for _ in rc.layers)
        found.setdefault(own, (*value(rc, own), own))
    return list(found.values())
