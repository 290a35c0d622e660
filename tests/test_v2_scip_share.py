"""``scip-share`` (solvers/scip_share.py, the ``share`` MINLP) against brute force on random tiny instances.

Seeded instances of tests/random_v2.py under ``share`` (1-3 requests, up to 4 layers, 2-3 devices,
direct or relayed routes, every objective, ``sum``/``max``, rates, deadlines, memory, ``allowed``,
``private``): 60 in the default suite and 300 more with ``-m slow``. Energy with idle power is out
of the model's scope (the idle time depends on the evaluator's fractions, §9.5); such draws keep
their devices but with idle power 0, so that every seed is compared. With ``-m slow`` also 200
draws of the hypothesis strategy of tests/strategies_v2.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.loader import load_instance_data
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status, compute_gap
from tests.agree import agrees_with_brute
from tests.random_v2 import random_v2
from tests.strategies_v2 import v2_data
from tests.test_v2_examples import base


def _in_scope(data: dict[str, Any]) -> dict[str, Any]:
    obj = data["problem"]["objective"]
    if obj == "energy" or (isinstance(obj, dict) and obj["weighted"].get("energy")):
        for dev in data["system"]["devices"]:
            dev["power_idle"] = 0.0
    return data


def _agree(seed: int) -> None:
    _agree_on(random_v2(seed, "share"))


def _agree_on(data: dict[str, Any]) -> None:
    res = agrees_with_brute(load_instance_data(_in_scope(data)), "scip-share", SolverOptions(time_limit_s=120))
    if res is not None:
        assert res.gap == compute_gap(res.objective, res.bound) <= 1e-6


@pytest.mark.parametrize("seed", range(60))
def test_scip_share_equals_brute(seed: int) -> None:
    _agree(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1300))
def test_scip_share_equals_brute_many(seed: int) -> None:
    _agree(seed)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_scip_share_equals_brute_hypothesis(data: st.DataObject) -> None:
    """The hypothesis strategy of tests/strategies_v2.py as well: DAG branches, one-way links."""
    _agree_on(data.draw(v2_data("share")))


def test_two_shared_resources_under_max() -> None:
    """Both requests on the edge share the edge and (from one phone) the uplink: the min-max fractions
    of two shared resources at once (the evaluator's convex solve), equal to brute force."""
    data = base("share")
    data["problem"]["aggregate"] = "max"
    data["workload"][1]["source"] = data["workload"][1]["sink"] = data["workload"][0]["source"]
    inst = load_instance_data(data)
    ref, res = solve(inst, "brute"), solve(inst, "scip-share")
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(ref.objective, rel=1e-7)


def test_scip_share_refuses_what_it_cannot_model() -> None:
    solver = get_solver("scip-share")
    data = _in_scope(random_v2(10, "share"))  # energy objective
    data["system"]["devices"][0]["power_idle"] = 0.5
    with pytest.raises(UnsupportedProblem, match="energy with idle power"):
        solver.check(load_instance_data(data), SolverOptions())
    data = base("share")
    data["workload"][0]["weight"] = 0
    with pytest.raises(UnsupportedProblem, match="weight 0"):
        solver.check(load_instance_data(data), SolverOptions())
    with pytest.raises(UnsupportedProblem, match="contention 'none'"):
        solver.check(load_instance_data(base("none")), SolverOptions())
    from solvers.testing import case

    with pytest.raises(UnsupportedProblem):
        solver.check(case("chain-seq-latency").build(), SolverOptions())
    res = solve(load_instance_data(base("share")), "scip-share")
    assert res.objective is not None and math.isfinite(res.objective)


def test_auto_takes_scip_share_where_tang_refuses() -> None:
    """§9.9's base under ``share``: the edge's 3 MB memory is outside tang's setting, so auto solves it
    with scip-share; the optimum equals brute force's (0.5 s for ``max``: the phones run alone)."""
    inst = load_instance_data(base("share", "max"))
    res = solve(inst, "auto")
    assert res.method == "scip-share" and res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(solve(inst, "brute").objective, rel=1e-9)
    assert res.objective == pytest.approx(0.5, rel=1e-9)
