"""benchmarks/llm_scale.py's fractional period bound and operator mapping (timings are in the benchmark)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from formulation.loader import load_instance, load_instance_data
from solvers.registry import solve
from solvers.result import Status

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_scale", ROOT / "benchmarks" / "llm_scale.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _instance(memory2: str | None) -> Any:
    dev2: dict[str, Any] = {"id": "fast", "compute": "2 GFLOP/s"}
    if memory2:
        dev2["memory"] = memory2
    return load_instance_data({
        "dnnpart": 1, "name": "frac",
        "model": {"inputs": [{"id": "x", "bytes": "1 kB"}], "outputs": ["c"], "layers": [
            {"id": v, "op": "linear", "inputs": [u], "flops": "1 GFLOP", "param_bytes": "1 GB", "output_bytes": "1 kB"}
            for u, v in (("x", "a"), ("a", "b"), ("b", "c"))
        ]},
        "system": {"devices": [{"id": "slow", "compute": "1 GFLOP/s", "memory": "10 GB"}, dev2],
                   "links": [{"from": "slow", "to": "fast", "bandwidth": "1 GB/s"}], "source": "slow"},
        "problem": {"objective": "throughput"},
    })


def test_fractional_bound_by_hand_and_against_brute_force() -> None:
    bound = _bench().fractional_period_bound
    # No memory limit on 'fast': 3 GFLOP over 1 + 2 GFLOP/s, T = 1 s; the optimum puts a on 'slow'
    # and b, c on 'fast' (1 s each) and adds a 1 us transfer.
    free = _instance(None)
    assert bound(free) == pytest.approx(1.0, rel=1e-5)
    assert bound(free) <= solve(free, "brute").objective
    # 'fast' holds 1.5 GB: the relaxation puts 1.5 layers there, T >= 3 - 1.5 and T >= 1.5 / 2, so
    # T = 1.5 s; a placement holds one whole layer there, and the optimum is 2 s (plus 1 us).
    tight = _instance("1.5 GB")
    assert bound(tight) == pytest.approx(1.5, rel=1e-5)
    best = solve(tight, "brute")
    assert best.status == Status.OPTIMAL and best.objective == pytest.approx(2.0, rel=1e-5)


def test_bound_is_below_the_proven_block_optimum_and_operators_map_to_blocks() -> None:
    b = _bench()
    inst = load_instance(b.BLOCK_FILE)
    res = solve(inst, "pipeline-dp")
    assert res.status == Status.OPTIMAL
    lp = b.fractional_period_bound(inst)
    assert res.objective is not None and 0.9 * res.objective < lp <= res.objective
    assert [b.block_of(x) for x in ("embed", "blocks.17.attn.scores.3", "blocks.79.mlp.add", "final_norm", "head")] \
        == ["embed", "blocks.17", "blocks.79", "head", "head"]


def test_interval_refinement_by_hand() -> None:
    b = _bench()
    inst = _instance(None)
    assert list(b.cut_positions(inst)) == [1, 2, 3]  # every cut carries one 1 kB tensor
    # Stages in the order slow, fast: the least threshold is 1 s ({a} on slow; {b, c} at 0.5 s each on fast).
    assert list(b.interval_refinement(inst, [0, 1], 0.0, 10.0)) == [0, 1, 1]
    assert b.interval_refinement(inst, [0, 1], 0.0, 0.9) is None  # no pipeline within 0.9 s
    # Memory: 'fast' holding one layer forces {a, b} on slow (2 s).
    assert list(b.interval_refinement(_instance("1.5 GB"), [0, 1], 0.0, 10.0)) == [0, 0, 1]
