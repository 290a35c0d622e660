"""Seeded random tiny version-2 instances (docs/instance-format.md §9) as file data.

Unlike the hypothesis strategies of tests/strategies_v2.py, which shrink towards one request of one
layer, every seed here draws from the whole range at once: 1-3 requests of 1-2 models (chains of
1-3 layers or a diamond), at most ``max_layers`` layers in all, 2-3 devices with a line of links
(``d0 - d1 - d2``, so ``shortest`` routing relays through ``d1``) and sometimes more links,
every objective, ``sum``/``max``, rates on a third of the instances, releases, weights, deadlines,
``allowed``, ``private``, sinks and the memory models.
"""

from __future__ import annotations

import random
from typing import Any


def _model(rng: random.Random, name: str, size: int) -> dict[str, Any]:
    layers: list[dict[str, Any]] = []
    diamond = size == 3 and rng.random() < 0.4
    for v in range(size):
        joined = [f"{name}0", f"{name}1"] if diamond else [f"{name}{v - 1}"]
        inputs = ["x"] if v == 0 or (diamond and v == 1) else joined
        layers.append({
            "id": f"{name}{v}", "op": "op", "inputs": inputs,
            "flops": rng.choice([0.0, 1e8, 5e8, 2e9, 4e9]),
            "output_bytes": rng.choice([1e3, 1e5, 4e5]),
            "param_bytes": rng.choice([0.0, 1e5, 1e6]),
        })
    return {"inputs": [{"id": "x", "bytes": rng.choice([0.0, 1e4, 2e5, 1e6])}], "layers": layers}


def random_v2(seed: int, contention: str, max_layers: int = 4) -> dict[str, Any]:
    """The instance of ``seed`` under ``contention`` (module docstring)."""
    rng = random.Random(seed)
    k = rng.choice([2, 3, 3])
    devices = []
    for j in range(k):
        dev: dict[str, Any] = {
            "id": f"d{j}",
            "compute": rng.choice([1e9, 1e10, 5e10]),
            "power_active": rng.choice([0.0, 1.0, 3.0]),
            "power_idle": rng.choice([0.0, 0.2]),
            "price": rng.choice([0.0, 1e-3]),
            "trusted": j == 0 or rng.random() < 0.3,
        }
        if rng.random() < 0.25:
            dev["memory"] = rng.choice([1.2e6, 2.5e6])
        devices.append(dev)
    pairs = [(a, a + 1) for a in range(k - 1)] + ([(0, 2)] if k == 3 and rng.random() < 0.4 else [])
    links = [
        {
            "from": f"d{a}", "to": f"d{b}",
            "bandwidth": rng.choice([1e5, 1e6, 1e7]),
            "latency": rng.choice([0.0, 0.01]),
            "tx_power": rng.choice([0.0, 1.0]),
            "rx_power": rng.choice([0.0, 0.5]),
            "price": rng.choice([0.0, 1e-9]),
            "bidirectional": rng.random() < 0.85,
        }
        for a, b in pairs
    ]
    mods = {f"m{i}": _model(rng, f"m{i}_", rng.choice([1, 2, 2, 3])) for i in range(rng.choice([1, 2]))}
    rated = rng.random() < 0.33
    requests: list[dict[str, Any]] = []
    total = 0
    for r in range(rng.choice([1, 2, 2, 3, 3])):
        m = rng.choice(sorted(mods))
        size = len(mods[m]["layers"])
        if total + size > max_layers:
            continue
        total += size
        req: dict[str, Any] = {"id": f"r{r}", "model": m, "source": f"d{rng.randrange(k)}"}
        if rng.random() < 0.6:
            req["sink"] = f"d{rng.randrange(k)}"
        req["weight"] = rng.choice([1, 1, 2, 0.5])
        req["release"] = rng.choice([0.0, 0.0, 0.05])
        if rng.random() < 0.15:
            req["deadline"] = rng.choice([0.3, 1.0, 3.0])
        if rated:
            req["rate"] = rng.choice([0.5, 2.0])
        if rng.random() < 0.15:
            req["allowed"] = {mods[m]["layers"][0]["id"]: [f"d{rng.randrange(k)}"]}
        if rng.random() < 0.1:
            req["private"] = ["x"]
        requests.append(req)
    if not requests:
        m = sorted(mods)[0]
        mods[m]["layers"] = mods[m]["layers"][:1]
        requests = [{"id": "r0", "model": m, "source": "d0"}]
    objective: Any = rng.choice(["latency", "latency", "latency", "energy", "cost", "throughput", "weighted"])
    if objective == "weighted":
        objective = {"weighted": {"latency": 1.0, "energy": 0.1, "cost": rng.choice([0.0, 10.0])}}
    return {
        "dnnpart": 2,
        "name": f"random-v2-{seed}",
        "models": mods,
        "system": {"devices": devices, "links": links, "routing": rng.choice(["direct", "shortest", "shortest"])},
        "workload": requests,
        "problem": {
            "objective": objective,
            "aggregate": rng.choice(["sum", "max"]),
            "contention": contention,
            "constraints": {"memory": rng.choice([True, False, "params"])},
        },
    }
