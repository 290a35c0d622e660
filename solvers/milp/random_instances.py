"""Random tiny instances that exercise every part of the cost model, for cross-checking exact solvers.

Each instance is small enough for ``brute`` (at most 7 layers, 3 devices) but draws every feature
the format has: several model inputs, explicit or default outputs, a sink or none, missing link
directions, asymmetric links, latency-table overrides, roofline devices, zero-FLOP layers, every
objective (weighted included, non-negative weights), both latency modes and every constraint kind
with values drawn near the achievable range so they bind.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from formulation.model import (
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)

METRICS = ("latency", "throughput", "energy", "cost")


def random_graph(rng: np.random.Generator, n: int, m: int) -> Graph:
    """A random DAG of ``n`` layers reading ``m`` model inputs (every layer reads something)."""
    inputs = [ModelInput(f"in{j}", float(rng.choice([0.0, rng.uniform(1e3, 1e6)], p=[0.1, 0.9]))) for j in range(m)]
    layers = []
    for i in range(n):
        pool = [f"in{j}" for j in range(m)] + [f"L{u}" for u in range(i)]
        k = int(rng.integers(1, min(3, len(pool)) + 1))
        # Prefer recent layers so that graphs are deep rather than star-shaped.
        w = np.array([0.5] * m + [1.0 + u for u in range(i)])
        ins = tuple(rng.choice(pool, size=k, replace=False, p=w / w.sum()).tolist())
        flops = 0.0 if rng.random() < 0.1 else float(rng.uniform(1e7, 3e9))
        layers.append(
            Layer(
                f"L{i}",
                "op",
                ins,
                flops,
                output_bytes=float(rng.uniform(1e3, 2e6)),
                param_bytes=float(rng.choice([0.0, rng.uniform(1e4, 5e6)])),
                workspace_bytes=float(rng.choice([0.0, rng.uniform(1e3, 1e6)], p=[0.7, 0.3])),
            )
        )
    outputs = None
    if rng.random() < 0.3 and n > 1:
        outputs = sorted({f"L{n - 1}", f"L{int(rng.integers(0, n - 1))}"})
    return Graph("rand", inputs, layers, outputs)


def random_system(rng: np.random.Generator, k: int) -> System:
    """``k`` devices, random links (some directions missing), source device 0, sink 0 or none."""
    devs = []
    for d in range(k):
        devs.append(
            Device(
                f"D{d}",
                float(rng.uniform(5e9, 5e11)),
                memory_bandwidth_bytes_per_s=float(rng.uniform(1e9, 1e11)) if rng.random() < 0.3 else None,
                memory_bytes=float(rng.uniform(4e6, 3e7)) if rng.random() < 0.4 else float("inf"),
                power_active_w=float(rng.uniform(0, 50)),
                power_idle_w=float(rng.uniform(0, 5)) if rng.random() < 0.8 else 0.0,
                price_usd_per_s=float(rng.uniform(0, 1e-3)) if rng.random() < 0.5 else 0.0,
                trusted=bool(d == 0 or rng.random() < 0.4),
            )
        )
    links = []
    for a in range(k):
        for b in range(k):
            if a != b and rng.random() < 0.85:
                links.append(
                    Link(
                        f"D{a}",
                        f"D{b}",
                        float(rng.uniform(1e6, 1e8)),
                        float(rng.uniform(0, 0.02)),
                        tx_power_w=float(rng.uniform(0, 3)),
                        rx_power_w=float(rng.uniform(0, 2)),
                        price_usd_per_byte=float(rng.uniform(0, 1e-9)) if rng.random() < 0.5 else 0.0,
                    )
                )
    sink = "D0" if rng.random() < 0.7 else (None if rng.random() < 0.5 else f"D{k - 1}")
    return System(devs, links, "D0", sink)


def random_instance(seed: int, *, max_layers: int = 6, max_devices: int = 3, execution: str | None = None) -> Instance:
    """A random tiny instance (see the module docstring), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, max_layers + 1))
    k = int(rng.integers(2, max_devices + 1))
    g = random_graph(rng, n, int(rng.integers(1, 3)))
    s = random_system(rng, k)
    table = {}
    if rng.random() < 0.3:
        d = s.device_ids[int(rng.integers(0, k))]
        table = {d: {g.layer_ids[int(rng.integers(0, n))]: float(rng.uniform(0, 0.05))}}
    kind = rng.choice(["latency", "throughput", "energy", "cost", "weighted"])
    if kind == "weighted":
        names = rng.choice(METRICS, size=int(rng.integers(2, 4)), replace=False)
        obj = Objective("weighted", MappingProxyType({str(x): float(rng.uniform(0.1, 10)) for x in names}))
    else:
        obj = Objective(str(kind))  # type: ignore[arg-type]
    ex = execution or str(rng.choice(["sequential", "parallel"]))
    scope = None
    if rng.random() < 0.3:
        scope = tuple(s.device_ids[: int(rng.integers(1, k + 1))])
    base = Instance("rand", g, s, Problem(obj, ex, scope), latency_table=MappingProxyType(table))  # type: ignore[arg-type]
    return base.with_problem(Problem(obj, ex, scope, _random_constraints(rng, base)))  # type: ignore[arg-type]


def _random_constraints(rng: np.random.Generator, inst: Instance) -> Constraints:
    """Constraints whose values are drawn from the range of the all-on-one-device placements."""
    from formulation.evaluator import batch_metrics

    g, s = inst.graph, inst.system
    P = np.repeat(np.arange(s.k)[:, None], g.n, axis=1)
    bm = batch_metrics(inst, P)
    L = bm.latency()
    E = bm.energy()
    kw: dict[str, object] = {"memory": bool(rng.random() < 0.8)}
    if rng.random() < 0.3:
        finite = L[np.isfinite(L)]
        kw["deadline_s"] = float(rng.uniform(0.5, 1.2) * (finite.min() if finite.size else 1.0))
    if rng.random() < 0.25:
        d = int(rng.integers(0, s.k))
        kw["energy_budget_j"] = MappingProxyType({s.device_ids[d]: float(rng.uniform(0.3, 1.5) * E[:, d].max())})
    if rng.random() < 0.25:
        v = g.layer_ids[int(rng.integers(0, g.n))]
        kw["allowed"] = MappingProxyType(
            {v: tuple(rng.choice(s.device_ids, size=int(rng.integers(1, s.k + 1)), replace=False).tolist())}
        )
    if rng.random() < 0.2:
        kw["private"] = (g.tensor_ids[int(rng.integers(0, g.n + g.m))],)
    kw["contiguous"] = bool(rng.random() < 0.25)
    if rng.random() < 0.25:
        kw["max_devices"] = int(rng.integers(1, s.k))
    return Constraints(**kw)  # type: ignore[arg-type]
