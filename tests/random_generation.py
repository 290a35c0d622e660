"""Seeded random tiny generation instances (docs/instance-format.md §9.10) as file data.

Each seed takes the instance of :func:`tests.random_v2.random_v2` (1-3 requests of 1-2 models, at
most ``max_layers`` layers in all, 2-3 devices with relayed routes, every objective, rates on a third
of the instances, releases, weights, deadlines, ``allowed``, ``private``, sinks, memory models) and
adds per-token costs: ``tokens`` on most layers and some model inputs, a memory bandwidth on some
devices (the roofline, whose closed form is the larger of two series), and ``tokens: {prompt,
generate}`` on most requests (at least one), with prompts of 1-32 tokens and 1-24 decode steps. The
cache (``kv_bytes_per_position``) is sized so that the devices' memory binds on some seeds.
Deadlines are scaled by ``G + 1`` (a generation makes that many passes) so that they bind sometimes
rather than always.
"""

from __future__ import annotations

import random
from typing import Any

from tests.random_v2 import random_v2


def _layer_tokens(rng: random.Random) -> dict[str, float]:
    return {
        "flops": rng.choice([0.0, 0.0, 1e7]),
        "flops_per_token": rng.choice([0.0, 1e7, 1e8, 5e8]),
        "flops_per_position": rng.choice([0.0, 0.0, 1e6]),
        "flops_per_token_position": rng.choice([0.0, 1e5, 1e6, 1e7]),
        "output_bytes": rng.choice([0.0, 1e3]),
        "output_bytes_per_token": rng.choice([0.0, 1e3, 1e4]),
        "output_bytes_per_position": rng.choice([0.0, 0.0, 1e3]),
        "output_bytes_per_token_position": rng.choice([0.0, 0.0, 1e2]),
        "kv_bytes_per_position": rng.choice([0.0, 1e3, 1e4, 2e4]),
    }


def random_generation(seed: int, contention: str = "none", max_layers: int = 4) -> dict[str, Any]:
    """The generation instance of ``seed`` under ``contention`` (module docstring)."""
    d = random_v2(seed, contention, max_layers)
    rng = random.Random(10_000 + seed)
    d["name"] = f"random-generation-{seed}"
    for dev in d["system"]["devices"]:
        if rng.random() < 0.4:
            dev["memory_bandwidth"] = rng.choice([1e8, 1e9, 1e10])
    for model in d["models"].values():
        for mi in model["inputs"]:
            if rng.random() < 0.5:
                mi["tokens"] = {"bytes": rng.choice([0.0, 1e3]), "bytes_per_token": rng.choice([8.0, 1e4])}
        for lay in model["layers"]:
            if rng.random() < 0.8:
                lay["tokens"] = _layer_tokens(rng)
    reqs = d["workload"]
    for i, r in enumerate(reqs):
        if rng.random() < 0.75 or (i == len(reqs) - 1 and not any("tokens" in q for q in reqs)):
            r["tokens"] = {"prompt": rng.randint(1, 32), "generate": rng.randint(1, 24)}
            if "deadline" in r:
                r["deadline"] *= r["tokens"]["generate"] + 1
    return d


def random_single_generation(seed: int) -> dict[str, Any]:
    """One generation request of :func:`random_generation` alone, on direct channels, without a rate:
    the instances of the chain solvers' one-pass view (:mod:`solvers.generation_view`); ``none`` or
    ``share`` (one request holds every resource whole), memory under either model."""
    d = random_generation(seed, "none")
    rng = random.Random(20_000 + seed)
    req = next(r for r in d["workload"] if "tokens" in r)
    req.pop("rate", None)
    req["id"] = "r0"
    d["workload"] = [req]
    d["models"] = {req["model"]: d["models"][req["model"]]}
    d["system"]["routing"] = "direct"
    d["problem"]["contention"] = rng.choice(["none", "share"])
    d["problem"]["aggregate"] = "sum"
    if d["problem"]["objective"] == "throughput":
        d["problem"]["objective"] = "latency"
    d["name"] = f"random-single-generation-{seed}"
    return d
