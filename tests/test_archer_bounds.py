"""Archer et al.'s period bounds (solvers/archer_bounds.py): hand-computed values, validity against brute."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from formulation.model import Constraints, Instance, Objective, Problem
from solvers.archer_bounds import archer_bounds, combinatorial_bound
from solvers.registry import solve
from solvers.result import Status
from tests.feature_instances import feature_instance
from tests.test_pipeline_dp import msr_like
from tests.test_unit_load import chain


def test_bounds_by_hand() -> None:
    """chain4 (tests/test_unit_load.py): 4 s of work on 2 devices, every tensor 10 s. Combinatorial:
    max(4 / 2, 1) = 2 s. Bottleneck block around any layer: the stage {a, b, c, d} loads 4 s with
    nothing left; a stage with a cut pays at least 1 + 10 s. So 4 s, brute's optimum."""
    inst = chain()
    assert combinatorial_bound(inst) == pytest.approx(2.0, rel=1e-12)
    res = archer_bounds(inst, time_limit_s=10.0)
    assert res is not None
    assert res.combinatorial == pytest.approx(2.0, rel=1e-12)
    assert res.bottleneck == pytest.approx(4.0, rel=1e-5)
    assert res.bottleneck <= 4.0
    assert res.source == "archer-bottleneck"
    assert solve(inst, "brute").objective == pytest.approx(4.0, rel=1e-12)


def test_colocation_class_bound_by_hand() -> None:
    """chain4 with a and d colocated: a stage holding both, convex or not, holds b and c too or pays
    at least two 10 s transfers: 4 s, brute's optimum, with or without contiguity."""
    free = chain(colocate=(("a", "d"),))
    conv = free.with_problem(replace(free.problem, constraints=replace(free.problem.constraints, contiguous=True)))
    for inst in (free, conv):
        res = archer_bounds(inst)
        assert res is not None
        assert res.bottleneck == pytest.approx(4.0, rel=1e-5)
        assert solve(inst, "brute").objective == pytest.approx(4.0, rel=1e-12)


def test_other_objectives_are_not_bounded() -> None:
    inst = chain()
    lat = inst.with_problem(replace(inst.problem, objective=Objective("latency")))
    assert archer_bounds(lat) is None


def _below_brute(inst: Instance) -> None:
    ref = solve(inst, "brute")
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    res = archer_bounds(inst, time_limit_s=5.0, max_units=20)
    assert res is not None
    if ref.status == Status.OPTIMAL:
        assert ref.objective is not None
        assert res.best <= ref.objective * (1 + 1e-9) + 1e-12, (res, ref.objective)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like(general=True))
def test_bounds_below_brute_under_pipeline(inst: Instance) -> None:
    """Random DAGs with the device features, memory, colocation, allowed sets, max_devices and a sink."""
    _below_brute(inst)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like(general=True))
def test_bounds_below_brute_contiguous_or_free(inst: Instance) -> None:
    """The same instances with ``contiguous`` only, and with no contiguity at all."""
    c = inst.problem.constraints
    for cons in (replace(c, pipeline=False, contiguous=True), replace(c, pipeline=False, contiguous=False)):
        _below_brute(inst.with_problem(replace(inst.problem, constraints=cons)))


@pytest.mark.parametrize("seed", range(40))
def test_bounds_below_brute_on_feature_instances(seed: int) -> None:
    """The shared random instances with the model features, period objective."""
    inst = feature_instance(seed)
    inst = inst.with_problem(
        Problem(
            objective=Objective("throughput"),
            execution=inst.problem.execution,
            energy_scope=inst.problem.energy_scope,
            constraints=inst.problem.constraints,
        )
    )
    _below_brute(inst)
    _below_brute(inst.with_problem(replace(inst.problem, constraints=Constraints(contiguous=True))))


def test_bounds_after_another_highs_run_in_the_process() -> None:
    """A HiGHS run with another thread count earlier in the process (an engine's solve) must not
    make the relaxations fail: the bound stays 4 s on chain4."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 2)
    h.addVar(0.0, 1.0)
    h.run()
    res = archer_bounds(chain(), time_limit_s=10.0)
    assert res is not None
    assert res.bottleneck == pytest.approx(4.0, rel=1e-5)
