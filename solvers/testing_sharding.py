"""Conformance cases with tensor-parallel layers (docs/instance-format.md §2.6, §5.14), hand-derived.

The instance is ``instances/examples/sharding-attention-4gpu.yaml`` (docs/sharding.md, "Worked
example"): ``embed`` (1 GFLOP), ``attn`` (200 GFLOP, shardable, 1 GB all-reduce) and ``mlp``
(20 GFLOP, shardable, 2 GB all-reduce) on four GPUs of 1 TFLOP/s in two fast pairs (100 GB/s;
1 GB/s between the pairs), every tensor 1 MB, source and sink ``d0``. ``attn`` on a fast pair
spans 0.1 + 2 × 0.005 = 0.11 s; every group with a slow ring channel spans more than 1 s.
Only the solvers with ``Capabilities.sharding`` take these cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from formulation.model import Instance, Objective

EXAMPLE = Path(__file__).resolve().parents[1] / "instances" / "examples" / "sharding-attention-4gpu.yaml"


def _case(objective: str, pipeline: bool) -> Callable[[], Instance]:
    def build() -> Instance:
        from formulation.loader import load_instance

        inst = load_instance(EXAMPLE)
        p = inst.problem
        cons = dataclasses.replace(p.constraints, pipeline=pipeline)
        return inst.with_problem(dataclasses.replace(p, objective=Objective(objective), constraints=cons))  # type: ignore[arg-type]

    return build


#: ``(name, build, optimum, why)`` rows of :class:`solvers.testing.Case`.
SHARDING_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    ("shard-attention-latency", _case("latency", False), 0.13101,
     "embed on d0 0.001, its output to d1 1e-5, attn on {d0, d1} 0.11, mlp on d0 0.02 (sharded: 0.03); "
     "attn whole 0.2, on {d2, d3} two slow crossings more"),
    ("shard-attention-period", _case("throughput", False), 0.11,
     "attn on a fast pair keeps both members busy 0.1 + 0.01 s; embed and mlp on the other pair's devices or d0"),
    ("shard-attention-pipeline-latency", _case("latency", True), 0.13401,
     "one stage per device: embed d0 0.001, to d2 and d3 0.002, attn on {d2, d3} 0.11, to d1 0.001, "
     "mlp d1 0.02, to d0 1e-5"),
    ("shard-attention-pipeline-period", _case("throughput", True), 0.11,
     "as without pipeline: attn's pair busy 0.11 s, embed and mlp on other devices"),
]
