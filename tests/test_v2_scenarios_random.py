"""Network states in version-2 files (docs/instance-format.md §10) on random tiny instances.

* Every registered exact solver whose capabilities take an instance (today ``cpsat-v2``) equals
  brute force, for ``expected``, ``worst`` and ``cvar`` under ``none`` and ``schedule`` and with
  ``deadline_probability``: 216 instances of 2-4 states in the default suite (3 measures x 2
  contention models x 32, and 2 x 12 with the chance constraint), 650 more with ``-m slow``.
* Brute force equals the least robust objective the evaluator gives over every placement (``none``
  and ``share``, every objective), and under ``schedule`` its per-state schedules, re-evaluated,
  give its objective, never above the default schedules of any placement.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.model import Instance
from solvers.brute import count_placements, enumerate_placements
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, names, solve
from solvers.result import Status
from tests.strategies_v2_states import v2_states_data

SETTINGS: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _exact_others(inst: Instance) -> list[str]:
    """Registered exact solvers other than brute (and auto, which dispatches) that take ``inst``."""
    out = []
    for name in names():
        if name in ("brute", "auto"):
            continue
        solver = get_solver(name)
        if not solver.exact or not solver.available()[0]:
            continue
        try:
            solver.check(inst, SolverOptions(time_limit_s=60))
        except UnsupportedProblem:
            continue
        out.append(name)
    return out


def _agree(data: dict[str, Any]) -> None:
    inst = load_instance_data(data)
    others = _exact_others(inst)
    assert "cpsat-v2" in others  # latency, integer weights, no rates: cpsat-v2 takes every such instance
    ref = solve(inst, "brute")
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    for name in others:
        res = solve(inst, name, SolverOptions(time_limit_s=60))
        assert res.status != Status.ERROR, f"{name}: {res.message}"
        if ref.status == Status.INFEASIBLE:
            assert res.status == Status.INFEASIBLE, f"{name}: {res.status} {res.message}"
            continue
        assert res.status == Status.OPTIMAL and ref.objective is not None, f"{name}: {res.status} {res.message}"
        assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9), name
        assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12, name
        ev = evaluate(inst, res.placement, res.schedule or None)  # the evaluator is the judge
        assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12), name


@pytest.mark.parametrize("contention", ["none", "schedule"])
@pytest.mark.parametrize("measure", ["expected", "worst", "cvar"])
@settings(max_examples=32, **SETTINGS)
@given(data=st.data())
def test_exact_solvers_equal_brute_over_states(measure: str, contention: str, data: st.DataObject) -> None:
    _agree(data.draw(v2_states_data(contention, measure, latency_only=True)))


@pytest.mark.parametrize("contention", ["none", "schedule"])
@settings(max_examples=12, **SETTINGS)
@given(data=st.data(), measure=st.sampled_from(["expected", "worst", "cvar"]))
def test_exact_solvers_equal_brute_with_deadline_probability(
    contention: str, data: st.DataObject, measure: str
) -> None:
    _agree(data.draw(v2_states_data(contention, measure, chance=True, latency_only=True)))


@pytest.mark.slow
@pytest.mark.parametrize("contention", ["none", "schedule"])
@pytest.mark.parametrize("measure", ["expected", "worst", "cvar"])
@settings(max_examples=100, **SETTINGS)
@given(data=st.data(), chance=st.booleans())
def test_exact_solvers_equal_brute_over_states_many(
    measure: str, contention: str, data: st.DataObject, chance: bool
) -> None:
    _agree(data.draw(v2_states_data(contention, measure, chance=chance, latency_only=True)))


def _check_brute(data: dict[str, Any]) -> None:
    inst = load_instance_data(data)
    res = solve(inst, "brute")
    assert res.status in (Status.OPTIMAL, Status.INFEASIBLE), res.message
    best = math.inf
    for P in enumerate_placements(inst, 0, count_placements(inst)):
        ev = evaluate(inst, P)  # the default schedule of each state under `schedule`
        if ev.feasible:
            best = min(best, ev.objective)
    if res.status == Status.INFEASIBLE:
        assert math.isinf(best)
        return
    assert res.objective is not None
    if inst.workload is not None and inst.workload.contention == "schedule":
        ev = evaluate(inst, res.placement, res.schedule)  # its own schedule per state
        assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-9, abs=1e-12)
        assert res.objective <= best * (1 + 1e-9) + 1e-12
    else:
        assert res.objective == pytest.approx(best, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("contention", ["none", "share", "schedule"])
@settings(max_examples=12, **SETTINGS)
@given(data=st.data(), measure=st.sampled_from(["expected", "worst", "cvar"]), chance=st.booleans())
def test_brute_over_states_against_the_evaluator(
    contention: str, data: st.DataObject, measure: str, chance: bool
) -> None:
    _check_brute(data.draw(v2_states_data(contention, measure, chance=chance)))
