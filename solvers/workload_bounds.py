"""A lower bound on a version-2 latency aggregate from each request solved alone (docs/instance-format.md §9).

Under ``none`` and ``schedule`` contention (§9.5) a request ``r`` shares nothing with the others
but devices, channels and memory, and sharing only delays it or forbids placements. Its latency in
any joint solution is therefore at least ``A_r``, the least latency it could have **alone** on the
same system with memory, ``max_devices`` and its deadline dropped:

    L_r(joint) >= A_r  for every r,  so  sum_r w_r L_r >= sum_r w_r A_r  and  max_r w_r L_r >= max_r w_r A_r

(the aggregates of §9.3 are non-decreasing in every ``L_r``, weights >= 0). ``A_r`` is found as a
version-1 problem (§5): the request's own layers and inputs, its source and sink, each routed pair
``a -> b`` of §9.4 given as one direct channel of fixed delay ``sum_h latency(h)`` and bandwidth
``1 / sum_h (1 / bandwidth(h))`` (so a transfer takes exactly ``sum_h (latency(h) + n / bandwidth(h))``,
the routed duration), and the layer times of the version-2 instance itself. Under ``none`` it is the
sequential latency of §5.3, exactly the request's latency alone; under ``schedule`` the parallel
latency of §5.4, whose channels carry several transfers at once, a relaxation of the one-at-a-time
channels of §9.5 (a joint schedule restricted to ``r`` is a version-1 parallel schedule of the same
completion). Any proven lower bound of ``A_r`` (an engine stopped at its time limit) keeps the
inequality valid, and the alone placements give a joint placement to start a search from.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from formulation.model import (
    Constraints,
    Graph,
    Instance,
    IntArray,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)
from formulation.workload import Request


@dataclass(frozen=True)
class AloneBound:
    """Per-request results of the alone relaxation.

    Attributes
    ----------
    bound : float
        ``sum_r w_r A_r`` or ``max_r w_r A_r`` with each ``A_r`` replaced by its proven lower bound
        (``-inf`` when some request has none).
    lower, upper : tuple of float
        Per request: the proven lower bound of ``A_r`` and the latency alone of the placement found.
    placement : (n,) int array or None
        The combined placement made of every request's alone placement (``None`` if one is missing).
    proven : bool
        Every ``A_r`` was solved to optimality.
    coarse : (n,) int array or None
        The combined placement of every request's alone placement at block granularity (its
        placement above where coarsening merges nothing or finds nothing).
    seconds : float
        Wall time spent.
    """

    bound: float
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    placement: IntArray | None
    proven: bool
    seconds: float
    coarse: IntArray | None = None


def request_alone(inst: Instance, r: int) -> Instance:
    """The version-1 relaxation of request ``r`` of a version-2 instance (see the module docstring).

    Layer and tensor ids stay the combined ``REQUEST/ID`` ones; every finite layer time is given as
    a measured time (so the relaxation uses exactly the version-2 layer times); a device where the
    layer cannot run (``allowed``, ``private`` or an infinite time) is left out of its ``allowed``.
    """
    wl = inst.workload
    assert wl is not None
    req: Request = wl.requests[r]
    g, s = inst.graph, inst.system
    inputs = [ModelInput(g.tensor_ids[t], float(g.tensor_bytes[t])) for t in req.inputs]
    layers = [g.layers[v] for v in req.layers]
    sub = Graph(f"{inst.name}:{req.id}", inputs, layers, [g.layer_ids[o] for o in req.outputs])
    links = []
    for (a, b), route in wl.routes.items():
        if not route:
            continue
        delay = sum(float(s.link_latency[i, j]) for i, j in route)
        per_byte = sum(1.0 / float(s.bandwidth[i, j]) for i, j in route)
        bw = math.inf if per_byte == 0 else 1.0 / per_byte
        links.append(Link(s.device_ids[a], s.device_ids[b], bw, delay))
    system = System(
        s.devices, links, s.device_ids[req.source], None if req.sink is None else s.device_ids[req.sink]
    )
    mask, t = inst.placement_mask, inst.time
    table: dict[str, dict[str, float]] = {}
    allowed: dict[str, tuple[str, ...]] = {}
    for v in req.layers:
        ok = [d for d in range(inst.k) if mask[v, d] and math.isfinite(t[v, d])]
        if len(ok) < inst.k:
            allowed[g.layer_ids[v]] = tuple(s.device_ids[d] for d in ok)
        for d in ok:
            table.setdefault(s.device_ids[d], {})[g.layer_ids[v]] = float(t[v, d])
    execution: Literal["sequential", "parallel"] = "parallel" if wl.contention == "schedule" else "sequential"
    problem = Problem(
        Objective("latency"),
        execution,
        None,
        Constraints(memory=False, allowed=MappingProxyType(allowed)),
    )
    frozen = MappingProxyType({d: MappingProxyType(tab) for d, tab in table.items()})
    return Instance(sub.name, sub, system, problem, latency_table=frozen)


def _coarse_alone(sub: Instance, solver: str, seconds: float) -> dict[str, str] | None:
    """A placement of ``sub`` found at block granularity (every segment between cut points on one
    device), in ``sub``'s layer ids; ``None`` when coarsening merges nothing or nothing is found.
    Only a start: the bound comes from ``sub`` itself."""
    from formulation.granularity.provenance import GranularityError
    from formulation.granularity.transform import apply_granularity
    from solvers.options import SolverError, SolverOptions
    from solvers.registry import solve

    try:
        tr = apply_granularity(sub, "block")
    except GranularityError:
        return None
    if tr.instance.n >= sub.n:
        return None
    try:
        res = solve(tr.instance, solver, SolverOptions(time_limit_s=seconds))
    except SolverError:
        return None
    if res.objective is None or not res.placement:
        return None
    got = tr.original_placement(res.placement)
    if not all(isinstance(d, str) for d in got.values()):
        return None  # a split layer (block granularity splits none)
    return {v: str(d) for v, d in got.items()}


def alone_bound(inst: Instance, time_limit_s: float = 10.0, solver: str = "auto") -> AloneBound:
    """Solve every request alone (:func:`request_alone`) and combine the bounds by the aggregate.

    Requests with the same model, source, sink and layer restrictions have the same relaxation and
    are solved once. ``time_limit_s`` is shared among the distinct relaxations. Each relaxation is
    also solved at block granularity (a tenth of its share), whose placements make a second joint
    start, ``coarse`` (a coarse placement may suit the joint schedule better than the fine one).
    """
    from solvers.options import SolverError, SolverOptions
    from solvers.registry import solve

    wl = inst.workload
    assert wl is not None
    t0 = time.perf_counter()
    mask = inst.placement_mask
    groups: dict[tuple[object, ...], list[int]] = {}
    for r, req in enumerate(wl.requests):
        key = (req.model, req.source, req.sink, mask[list(req.layers)].tobytes())
        groups.setdefault(key, []).append(r)
    R = len(wl.requests)
    lower = [-math.inf] * R
    upper = [math.inf] * R
    starts: list[IntArray | None] = [np.zeros(inst.n, dtype=np.int64), np.zeros(inst.n, dtype=np.int64)]
    idx = inst.system.device_index
    proven = True
    for gi, members in enumerate(groups.values()):
        left = time_limit_s - (time.perf_counter() - t0)
        share = max(left / (len(groups) - gi), 0.5)
        sub = request_alone(inst, members[0])
        t1 = time.perf_counter()
        coarse = _coarse_alone(sub, solver, max(0.1 * share, 0.2))
        seconds = max(share - (time.perf_counter() - t1), 0.5)
        try:
            res = solve(sub, solver, SolverOptions(time_limit_s=seconds))
        except SolverError:  # the chosen engine refuses this relaxation: the default chooser
            res = solve(sub, "auto", SolverOptions(time_limit_s=seconds))
        lo = res.bound if res.bound is not None and math.isfinite(res.bound) else -math.inf
        proven = proven and res.gap == 0.0
        found = dict(res.placement) if res.objective is not None and res.placement else None
        for r in members:
            lower[r] = lo
            if found is not None:
                upper[r] = float(res.objective)  # type: ignore[arg-type]
            for j, pl in enumerate((found, found if coarse is None else coarse)):  # coarse where it exists
                target = starts[j]
                if pl is None or target is None:
                    starts[j] = None
                    continue
                for i, v in enumerate(wl.requests[r].layers):  # same model: the same layer order in every member
                    target[v] = idx[pl[sub.graph.layer_ids[i]]]
    w = [float(req.weight) for req in wl.requests]
    terms = [wr * lo if wr > 0 else 0.0 for wr, lo in zip(w, lower, strict=True)]
    bound = float(sum(terms)) if wl.aggregate == "sum" else float(max(terms))
    if any(math.isinf(x) for x in terms):
        bound = -math.inf if wl.aggregate == "sum" or all(math.isinf(x) for x in terms) else bound
    return AloneBound(bound, tuple(lower), tuple(upper), starts[0], proven, time.perf_counter() - t0, starts[1])
