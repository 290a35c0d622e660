"""The fractional-placement LP bound on the period (:mod:`solvers.lp_bound`): hand-computed values,
never above brute's optimum on random tiny instances, part of the cheap bound."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.bounds import cheap_lower_bound
from solvers.lp_bound import fractional_period_bound
from solvers.registry import solve
from solvers.result import Status
from tests.strategies import instances


def three_layers(memory: bool) -> Instance:
    """Three layers of 1 GFLOP and 1 MB of weights, outputs empty; device ``a`` 2 GFLOP/s with
    1.5 MB, ``b`` 1 GFLOP/s.

    Without memory the LP puts 2 layers on ``a`` (load 2 x 0.5 s = 1 s) and 1 on ``b`` (1 s): 1 s,
    and the placement a, a, b has period 1 s: the bound is tight. With memory ``a`` holds at most
    1.5 layers' weights: ``T >= max(0.5 x, 3 - x)`` with ``x <= 1.5`` gives 1.5 s, while the best
    placement (one layer on ``a``, two on ``b``) has period 2 s."""
    layers = [Layer("l0", "op", ("x",), flops=1e9, output_bytes=0.0, param_bytes=1e6),
              Layer("l1", "op", ("l0",), flops=1e9, output_bytes=0.0, param_bytes=1e6),
              Layer("l2", "op", ("l1",), flops=1e9, output_bytes=0.0, param_bytes=1e6)]
    g = Graph("three", [ModelInput("x", 0.0)], layers)
    devs = [Device("a", 2e9, memory_bytes=1.5e6), Device("b", 1e9)]
    s = System(devs, [Link("a", "b", 1e9), Link("b", "a", 1e9)], "a", None)
    c = Constraints(memory=memory, memory_model="params")
    return Instance("three", g, s, Problem(Objective("throughput"), constraints=c))


def test_tight_without_memory() -> None:
    inst = three_layers(memory=False)
    assert fractional_period_bound(inst) == pytest.approx(1.0, rel=1e-9)
    assert fractional_period_bound(inst) <= 1.0 * (1 + 1e-12)
    assert solve(inst, "brute").objective == pytest.approx(1.0, rel=1e-12)
    # The cheap bound had 3 x 0.5 s / 2 devices = 0.75 s; the LP lifts it to the optimum.
    assert cheap_lower_bound(inst) == pytest.approx(1.0, rel=1e-9)


def test_memory_rows() -> None:
    inst = three_layers(memory=True)
    assert fractional_period_bound(inst) == pytest.approx(1.5, rel=1e-9)
    assert solve(inst, "brute").objective == pytest.approx(2.0, rel=1e-12)


def test_no_allowed_device_and_column_limit() -> None:
    inst = three_layers(memory=False)
    assert fractional_period_bound(inst, max_columns=1) == -math.inf  # 1 class x 2 devices: 2 columns
    assert fractional_period_bound(inst, max_columns=2) == pytest.approx(1.0, rel=1e-9)
    # Each layer alone on the slow device (``allowed``): every placement puts all three on ``b``.
    only_b = inst.with_problem(replace(inst.problem, constraints=Constraints(
        memory=False, allowed={f"l{i}": ("b",) for i in range(3)})))
    assert fractional_period_bound(only_b) == pytest.approx(3.0, rel=1e-9)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_layers=5))
def test_never_above_brute(inst: Instance) -> None:
    """Random tiny instances (any constraints, devices, links) with the period as objective."""
    inst = inst.with_problem(replace(inst.problem, objective=Objective("throughput")))
    ref = solve(inst, "brute")
    assume(ref.status == Status.OPTIMAL)
    assert ref.objective is not None
    lb = fractional_period_bound(inst)
    assert math.isfinite(lb)
    assert lb <= ref.objective * (1 + 1e-9) + 1e-12
    assert cheap_lower_bound(inst) <= ref.objective * (1 + 1e-9) + 1e-12
