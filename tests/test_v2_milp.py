"""The MILP engines on version-2 workloads (solvers/milp/workload.py) against brute force.

Per contention model the MILP supports (``none``, ``schedule``), in the default suite:

* ``highs`` (the direct HiGHS path) on the 300 seeded instances of tests/random_v2.py (1-3
  requests, at most 4 layers in all, 2-3 devices, relayed routes, every objective, rates,
  memory, deadlines, ``allowed``, ``private``, releases, weights) and on 40 hypothesis instances of
  tests/strategies_v2.py;
* ``scip`` (pyscipopt) on 40 of the seeded instances and ``pyomo:highs`` (the same model through
  Pyomo) on 10;

with ``-m slow``, 300 more seeded instances per engine (``highs``, ``scip``) and contention model.
Then the worked examples of docs/instance-format.md §9.9, a tiny time limit, and the refusals.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Status
from tests.random_v2 import random_v2
from tests.strategies_v2 import v2_data
from tests.test_v2_examples import base, k2, routed

CONTENTIONS = ["none", "schedule"]
CHUNK = 25


def _agree(data: dict[str, Any], solver: str) -> None:
    inst = load_instance_data(data)
    ref = solve(inst, "brute")
    res = solve(inst, solver, SolverOptions(time_limit_s=60))
    where = f"{solver} on {data['name']} ({data['problem']})"
    assert res.status != Status.ERROR, (where, res.message)
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, (where, res.status, res.objective, res.message)
        return
    assert ref.status == Status.OPTIMAL and res.status == Status.OPTIMAL, (where, res.status, res.message)
    assert ref.objective is not None
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9), where
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12, where
    assert res.gap <= 1e-6, where
    ev = evaluate(inst, res.placement, res.schedule or None)  # the evaluator is the judge
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12), where


@pytest.mark.parametrize("chunk", range(300 // CHUNK))
@pytest.mark.parametrize("contention", CONTENTIONS)
def test_highs_equals_brute(contention: str, chunk: int) -> None:
    for seed in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        _agree(random_v2(seed, contention), "highs")


@pytest.mark.parametrize("contention", CONTENTIONS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_highs_equals_brute_hypothesis(contention: str, data: st.DataObject) -> None:
    _agree(data.draw(v2_data(contention)), "highs")


@pytest.mark.parametrize(("solver", "count"), [("scip", 40), ("pyomo:highs", 10)])
@pytest.mark.parametrize("contention", CONTENTIONS)
def test_scip_and_pyomo_equal_brute(contention: str, solver: str, count: int) -> None:
    for seed in range(1000, 1000 + count):
        _agree(random_v2(seed, contention), solver)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["highs", "scip"])
@pytest.mark.parametrize("contention", CONTENTIONS)
def test_milp_equals_brute_many(contention: str, solver: str) -> None:
    for seed in range(2000, 2300):
        _agree(random_v2(seed, contention), solver)


# -- docs/instance-format.md §9.9 -------------------------------------------------------------------


def _examples() -> dict[str, dict[str, Any]]:
    """N1, K1, K2, R1-R3 with the latency objective, as in the docs (the optimum, not the hand placement)."""
    return {
        "N1": base(),
        "K1": base("schedule"),
        "K2": k2(),
        "R1": routed(),
        "R2": routed(True),
        "R3": routed(True, {"routes": {"phone->cloud": ["phone", "edge", "cloud"]}}),
    }


@pytest.mark.parametrize("solver", ["highs", "scip"])
@pytest.mark.parametrize("name", ["N1", "K1", "K2", "R1", "R2", "R3"])
def test_worked_examples_reach_the_brute_optimum(name: str, solver: str) -> None:
    inst = load_instance_data(_examples()[name])
    ref = solve(inst, "brute")
    res = solve(inst, solver)
    assert ref.status == res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)


def _forced(d: dict[str, Any], place: dict[str, str]) -> dict[str, Any]:
    """``d`` with every layer allowed only on its device in ``place`` and no memory limit."""
    for req in d["workload"]:
        req["allowed"] = {lay: [place[f"{req['id']}/{lay}"]] for lay in ("a", "b")}
    d.setdefault("problem", {}).setdefault("constraints", {})["memory"] = False
    return d


HAND = [  # (example, placement, hand-computed latency of docs/instance-format.md §9.9)
    ("N1", {"u1/a": "p1", "u1/b": "edge", "u2/a": "p2", "u2/b": "edge"}, 1.282),
    ("K1", {"u1/a": "p1", "u1/b": "edge", "u2/a": "p2", "u2/b": "edge"}, 1.322),
    ("K2", {"u1/a": "p1", "u1/b": "edge", "u2/a": "p1", "u2/b": "edge"}, 1.782),
    ("R1", {"r/a": "phone", "r/b": "cloud"}, 0.7151),
    ("R2", {"r/a": "phone", "r/b": "cloud"}, 4.212),
    ("R3", {"r/a": "phone", "r/b": "cloud"}, 0.742),
]


@pytest.mark.parametrize("solver", ["highs", "scip"])
@pytest.mark.parametrize(("name", "place", "value"), HAND, ids=[h[0] for h in HAND])
def test_worked_examples_by_hand(name: str, place: dict[str, str], value: float, solver: str) -> None:
    """The hand placement forced through ``allowed``: the MILP's optimum is the hand value (under
    ``schedule`` the hand schedule is optimal for it: one uplink or one edge serves both in turn)."""
    inst = load_instance_data(_forced(_examples()[name], place))
    res = solve(inst, solver)
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(value, rel=1e-9)
    assert res.bound == pytest.approx(value, rel=1e-6)
