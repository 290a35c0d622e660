"""Random tiny instances with the optional model features: communication not overlapped with compute,
send-once devices, colocation classes and the weights-only memory model.

Built on :func:`solvers.milp.random_instances.random_instance` (every objective, both latency modes,
every constraint kind), then each device draws ``comm_overlap`` / ``send_once``, and the problem draws
colocation groups and ``memory_model``, so that exact solvers can be compared with ``brute`` on them.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import numpy as np

from formulation.model import Instance, Link, Problem, System
from solvers.milp.random_instances import random_instance


def with_features(inst: Instance, seed: int, *, chain_safe: bool = False) -> Instance:
    """``inst`` with random device features, colocation groups and memory model (deterministic in ``seed``).

    ``chain_safe`` draws colocation groups of consecutive layers only (as a chain DP can honour them).
    """
    rng = np.random.default_rng(seed + 7919)
    s = inst.system
    devices = [
        replace(d, comm_overlap=bool(rng.random() < 0.4), send_once=bool(rng.random() < 0.5)) for d in s.devices
    ]
    if all(d.comm_overlap for d in devices):
        i = int(rng.integers(len(devices)))
        devices[i] = replace(devices[i], comm_overlap=False)
    system = System(devices, list(s.links.values()), s.source, s.sink)
    g = inst.graph
    groups: list[tuple[str, ...]] = []
    if g.n >= 2 and rng.random() < 0.5:
        if chain_safe:
            i = int(rng.integers(0, g.n - 1))
            groups.append((g.layer_ids[i], g.layer_ids[i + 1]))
        else:
            size = int(rng.integers(2, min(3, g.n) + 1))
            groups.append(tuple(rng.choice(g.layer_ids, size=size, replace=False).tolist()))
    p = inst.problem
    c = replace(p.constraints, colocate=tuple(groups), memory_model="params" if rng.random() < 0.5 else "peak")
    problem = Problem(p.objective, p.execution, p.energy_scope, c)
    return Instance(inst.name, g, system, problem, latency_table=inst.latency_table)


def feature_instance(seed: int, **kw: object) -> Instance:
    """A random tiny instance of :func:`random_instance` with :func:`with_features` applied."""
    return with_features(random_instance(seed, **kw), seed)  # type: ignore[arg-type]


def with_identical_devices(inst: Instance, seed: int) -> Instance:
    """``inst`` with every device but the first replaced by copies of the second (same figures, same
    channels to the first and between each other), so that they are interchangeable, unless the
    problem names one of them (allowed lists, budgets) or the latency table does."""
    rng = np.random.default_rng(seed + 104729)
    s = inst.system
    if s.k < 2:
        return inst
    template = s.devices[1]
    copies = [replace(template, id=s.device_ids[j]) for j in range(1, s.k)]
    first = s.device_ids[0]
    bw = float(rng.choice([1e6, 1e7, 1e8]))
    links = []
    for c in copies:
        links += [Link(first, c.id, bw, 0.001), Link(c.id, first, bw, 0.001)]
    between = float(rng.choice([1e6, 1e7]))
    for i, a in enumerate(copies):
        for b in copies[i + 1 :]:
            links += [Link(a.id, b.id, between), Link(b.id, a.id, between)]
    sink = s.sink if s.sink in (None, first) else None
    system = System([s.devices[0], *copies], links, first, sink)
    return Instance(inst.name, inst.graph, system, inst.problem, latency_table=MappingProxyType({}))
