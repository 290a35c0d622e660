"""The alone bound and the warm start of ``cpsat-v2`` (solvers/workload_bounds.py, solvers/workload_hints.py).

* The alone bound never exceeds the brute-force optimum (it is a valid lower bound), on 40 seeded tiny
  instances per contention model (200 more with ``-m slow``) under ``none`` and ``schedule``, ``sum``
  and ``max``.
* ``cpsat-v2`` with the warm start (the default) returns brute force's optimum, and so does its
  short cut (the alone placements meet the alone bound: proven without the joint model).
* A hand-computed case: two requests on disjoint devices, each alone optimum known.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from solvers.options import OptionNotSupported, SolverOptions
from solvers.registry import get_solver, solve
from solvers.result import Status
from solvers.workload_bounds import alone_bound
from tests.random_v2 import random_v2

SEEDS = range(40)


def _latency_instance(seed: int, contention: str) -> dict[str, Any]:
    data = random_v2(seed, contention)
    data["problem"]["objective"] = "latency"
    for req in data["workload"]:
        req.pop("rate", None)
        req["weight"] = 1 if req["weight"] == 0.5 else req["weight"]  # cpsat-v2: integer weights
    return data


@pytest.mark.parametrize("contention", ["none", "schedule"])
@pytest.mark.parametrize("seed", SEEDS)
def test_alone_bound_is_valid_and_warm_start_equals_brute(contention: str, seed: int) -> None:
    inst = load_instance_data(_latency_instance(seed, contention))
    ref = solve(inst, "brute")
    ab = alone_bound(inst, 10.0)
    if ref.status == Status.OPTIMAL:
        assert ref.objective is not None and ab.bound <= ref.objective * (1 + 1e-9) + 1e-12
    res = solve(inst, "cpsat-v2", SolverOptions(time_limit_s=30))
    assert res.status == ref.status, res.message
    if ref.status != Status.OPTIMAL or ref.objective is None:
        return
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12
    ev = evaluate(inst, res.placement, res.schedule or None)
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("contention", ["none", "schedule"])
@pytest.mark.parametrize("seed", range(40, 240))
def test_alone_bound_is_valid_and_warm_start_equals_brute_many(contention: str, seed: int) -> None:
    test_alone_bound_is_valid_and_warm_start_equals_brute(contention, seed)


def _two_phones(contention: str, aggregate: str) -> dict[str, Any]:
    """Two phones p0, p1 (1 GFLOP/s), one server s (10 GFLOP/s) linked to both at 1 MB/s.

    Model: one layer of 1 GFLOP (input 1 MB, output 1 kB), source = sink = the phone.
    Alone: on the phone 1 s; on the server 1 MB / 1 MB/s + 0.1 s + 1 kB / 1 MB/s = 1.101 s; so
    each request alone stays home (1 s) and, the phones being distinct, nothing is shared:
    joint optimum 2 s (sum) or 1 s (max), equal to the alone bound.
    """
    return {
        "dnnpart": 2,
        "name": "two-phones",
        "models": {"m": {"inputs": [{"id": "x", "bytes": 1e6}],
                         "layers": [{"id": "l", "op": "conv", "inputs": ["x"], "flops": 1e9, "output_bytes": 1e3}]}},
        "system": {
            "devices": [{"id": "p0", "compute": 1e9}, {"id": "p1", "compute": 1e9}, {"id": "s", "compute": 1e10}],
            "links": [{"from": "p0", "to": "s", "bandwidth": 1e6}, {"from": "p1", "to": "s", "bandwidth": 1e6}],
            "routing": "direct",
        },
        "workload": [{"id": "a", "model": "m", "source": "p0", "sink": "p0"},
                     {"id": "b", "model": "m", "source": "p1", "sink": "p1"}],
        "problem": {"objective": "latency", "aggregate": aggregate, "contention": contention},
    }


@pytest.mark.parametrize("contention", ["none", "schedule"])
@pytest.mark.parametrize(("aggregate", "optimum"), [("sum", 2.0), ("max", 1.0)])
def test_alone_bound_proves_disjoint_requests(contention: str, aggregate: str, optimum: float) -> None:
    inst = load_instance_data(_two_phones(contention, aggregate))
    ab = alone_bound(inst, 10.0)
    assert ab.lower == pytest.approx((1.0, 1.0))
    assert ab.bound == pytest.approx(optimum)
    res = solve(inst, "cpsat-v2", SolverOptions(time_limit_s=10))
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(optimum)
    assert res.method == "cpsat-v2 (alone bound)"  # proven without the joint model
    assert res.bound == pytest.approx(optimum) and res.gap == 0.0
    assert res.objective == pytest.approx(solve(inst, "brute").objective)


def test_contended_server_uses_joint_model() -> None:
    """Input 1 kB, server 100 GFLOP/s: alone, each request takes 0.001 + 0.01 + 0.001 = 0.012 s on the
    server (1 s at home), so the alone bound is 0.024 s. Under ``schedule`` both share the server: the
    second waits for the first, 0.001 + 0.01 (wait) + 0.01 + 0.001 = 0.022 s, joint optimum 0.034 s;
    the joint CP-SAT model is run (the alone placements do not meet the bound)."""
    data = _two_phones("schedule", "sum")
    data["models"]["m"]["inputs"][0]["bytes"] = 1e3
    data["system"]["devices"][2]["compute"] = 1e11
    inst = load_instance_data(data)
    ab = alone_bound(inst, 10.0)
    assert ab.lower == pytest.approx((0.012, 0.012))
    assert ab.bound == pytest.approx(0.024)
    res = solve(inst, "cpsat-v2", SolverOptions(time_limit_s=10))
    ref = solve(inst, "brute")
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert res.objective == pytest.approx(0.034, rel=1e-6)
    assert res.method != "cpsat-v2 (alone bound)"
    assert res.extra["alone"]["bound"] == pytest.approx(0.024)
    assert math.isfinite(res.extra["alone"]["hint_objective"])


def test_unknown_raw_option_refused() -> None:
    inst = load_instance_data(_two_phones("none", "sum"))
    with pytest.raises(OptionNotSupported, match="alone_tim"):
        get_solver("cpsat-v2").check(inst, SolverOptions(raw={"alone_tim": 3}))


def test_four_dnns_blocks_proven_by_the_alone_bound() -> None:
    """The benchmark's 4-DNN 3-tier instance at block granularity (benchmarks/routed_schedule.py):
    the alone placements meet the alone bound, 118.576 + 263.799 + 68.710 + 226.433 = 677.518 ms."""
    from pathlib import Path

    from formulation.loader import load_instance

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "instances" / "four-dnns-3tier-blocks-schedule.yaml"
    res = solve(load_instance(path), "cpsat-v2", SolverOptions(time_limit_s=60))
    assert res.status == Status.OPTIMAL and res.method == "cpsat-v2 (alone bound)"
    assert res.objective == pytest.approx(0.6775179920896, rel=1e-9)
    assert res.extra["alone"]["lower"] == pytest.approx([0.118575997, 0.263798514, 0.068710044, 0.226433436], rel=1e-6)


def test_alone_solver_that_refuses_falls_back_and_bad_options_refused() -> None:
    """``tang`` refuses version-1 relaxations: the alone problems go to ``auto``, same optimum and bound."""
    data = _two_phones("schedule", "sum")
    data["models"]["m"]["inputs"][0]["bytes"] = 1e3
    data["system"]["devices"][2]["compute"] = 1e11
    inst = load_instance_data(data)
    res = solve(inst, "cpsat-v2", SolverOptions(time_limit_s=10, raw={"alone_solver": "tang"}))
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(0.034, rel=1e-6)
    assert res.extra["alone"]["bound"] == pytest.approx(0.024)
    cpsat = get_solver("cpsat-v2")
    with pytest.raises(OptionNotSupported, match="alone_solver"):
        cpsat.check(inst, SolverOptions(raw={"alone_solver": "no-such-engine"}))
    with pytest.raises(OptionNotSupported, match="alone_time_s='soon'"):
        cpsat.check(inst, SolverOptions(raw={"alone_time_s": "soon"}))
