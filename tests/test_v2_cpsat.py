"""``cpsat-v2`` (solvers/cpsat_workload.py) against brute force on random tiny version-2 instances.

Per contention model it supports (``none``, ``schedule``): 50 instances in the default suite and
250 more with ``-m slow`` (300 each in all). Objective latency (the aggregate), no rates.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from tests.strategies_v2 import v2_data


def _agree(data: dict[str, Any]) -> None:
    data["problem"]["objective"] = "latency"
    inst = load_instance_data(data)
    ref = solve(inst, "brute")
    res = solve(inst, "cpsat-v2", SolverOptions(time_limit_s=60))
    assert res.status != Status.ERROR, res.message
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, res.message
        return
    assert ref.status == Status.OPTIMAL and res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12
    ev = evaluate(inst, res.placement, res.schedule or None)  # the evaluator is the judge
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12)


@pytest.mark.parametrize("contention", ["none", "schedule"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cpsat_v2_equals_brute(contention: str, data: st.DataObject) -> None:
    _agree(data.draw(v2_data(contention, rates=False)))


@pytest.mark.slow
@pytest.mark.parametrize("contention", ["none", "schedule"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cpsat_v2_equals_brute_many(contention: str, data: st.DataObject) -> None:
    _agree(data.draw(v2_data(contention, rates=False)))


def test_cpsat_v2_refuses_share_and_version_1() -> None:
    from tests.test_v2_examples import base

    with pytest.raises(UnsupportedProblem, match="contention 'share'"):
        get_solver("cpsat-v2").check(load_instance_data(base("share")), SolverOptions())
    from solvers.testing import case

    with pytest.raises(UnsupportedProblem, match="version-2 workloads only"):
        get_solver("cpsat-v2").check(case("chain-seq-latency").build(), SolverOptions())
