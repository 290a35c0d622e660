"""The packing bound on the period (solvers/packing_bound.py): hand-computed values, validity against brute."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.archer_bounds import archer_bounds
from solvers.lp_bound import fractional_period_bound
from solvers.packing_bound import packing_bound, packing_bound_for
from solvers.registry import solve
from solvers.result import Status
from tests.feature_instances import feature_instance
from tests.test_pipeline_dp import msr_like


def independent(works: list[float], devices: int, *, cpu: float | None = None, max_devices: int | None = None,
                memory: float | None = None) -> Instance:
    """Layers reading only the input, ``works`` GFLOP each, on ``devices`` 1 GFLOP/s accelerators
    (and a CPU of ``cpu`` GFLOP/s); no tensor crosses a link, so the period is the largest compute
    time. Each layer holds 1 GB of weights; accelerators have ``memory`` bytes."""
    g = Graph("independent", [ModelInput("x", 0.0)],
              [Layer(f"l{i}", "fc", ("x",), w * 1e9, 0.0, param_bytes=1e9) for i, w in enumerate(works)])
    devs = [Device(f"a{j}", 1e9, memory_bytes=memory if memory is not None else float("inf"))
            for j in range(devices)]
    if cpu is not None:
        devs.append(Device("cpu", cpu * 1e9))
    ids = [d.id for d in devs]
    links = [Link(a, b, 1e9) for a in ids for b in ids if a != b]
    cons = Constraints(max_devices=max_devices, memory=memory is not None)
    return Instance("independent", g, System(devs, links, ids[0], None),
                    Problem(objective=Objective("throughput"), execution="parallel", constraints=cons))


def test_three_equal_layers_on_two_devices() -> None:
    """Three 1 s layers on two identical devices: the fractional bound is 1.5 s; whole, one device
    holds two of them, 2 s, brute's optimum. One or two whole layers give 1.5 s (two apart, 1 s
    each, and the third spread half and half); three give 2 s."""
    inst = independent([1.0, 1.0, 1.0], 2)
    assert fractional_period_bound(inst) == pytest.approx(1.5, rel=1e-9)
    assert packing_bound_for(inst, 1, 10.0)[0] == pytest.approx(1.5, rel=1e-5)
    assert packing_bound_for(inst, 2, 10.0)[0] == pytest.approx(1.5, rel=1e-5)
    value, finished = packing_bound_for(inst, 3, 10.0)
    assert finished and value == pytest.approx(2.0, rel=1e-5) and value <= 2.0
    res = packing_bound(inst, 10.0)
    assert res.value == pytest.approx(2.0, rel=1e-5) and res.heavy == 3
    assert solve(inst, "brute").objective == pytest.approx(2.0, rel=1e-12)
    archer = archer_bounds(inst, time_limit_s=10.0)
    assert archer is not None and archer.packing == pytest.approx(2.0, rel=1e-5) and archer.best <= 2.0


def test_eleven_jobs_on_five_machines() -> None:
    """The shape of GNMT's layer graph: eleven 10-14 s layers (six of 10 s, three of 12 s, two of
    14 s: 124 s) on five identical devices and a CPU ten times slower. Fractional: 124 / 5.1 =
    24.31 s. Whole, some device holds three layers (eleven on five; the CPU would take 100 s or
    more for any of them), at least 10 + 10 + 10 = 30 s. A placement meets it: {10, 10, 10},
    {14, 10}, {14, 10}, {12, 10}, {12, 12}, so 30 s is the optimum (too many placements for brute
    force: 6^11)."""
    from formulation.evaluator import evaluate

    works = [10.0] * 6 + [12.0, 12.0, 12.0, 14.0, 14.0]
    inst = independent(works, 5, cpu=0.1)
    assert fractional_period_bound(inst) == pytest.approx(sum(works) / 5.1, rel=1e-9)
    res = packing_bound(inst, 20.0)
    assert res.value == pytest.approx(30.0, rel=1e-5) and res.value <= 30.0
    best = [0, 0, 0, 1, 2, 3, 3, 4, 4, 1, 2]  # device index per layer, in the order of works
    assert evaluate(inst, best).objective == pytest.approx(30.0, rel=1e-12)
    archer = archer_bounds(inst, time_limit_s=20.0)
    assert archer is not None and archer.source == "packing" and archer.bottleneck < 29.0


def test_max_devices_and_memory() -> None:
    """Four 1 s layers on four devices but at most two used: 2 s (the fractional bound without the
    device limit: 1 s). With 1 GB per layer and 1.5 GB per device, no device holds two layers:
    every layer alone, 1 s, and with max_devices 2 nothing fits whole (the program is infeasible;
    no bound from it)."""
    inst = independent([1.0] * 4, 4, max_devices=2)
    assert packing_bound(inst, 10.0).value == pytest.approx(2.0, rel=1e-5)
    assert solve(inst, "brute").objective == pytest.approx(2.0, rel=1e-12)
    tight = independent([1.0, 1.0, 1.0], 3, memory=1.5e9)
    assert packing_bound(tight, 10.0).value == pytest.approx(1.0, rel=1e-5)
    two = independent([1.0, 2.0], 2, memory=1.5e9)
    assert packing_bound(two, 10.0).value == pytest.approx(2.0, rel=1e-5)


def _below_brute(inst: Instance) -> None:
    ref = solve(inst, "brute")
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    res = packing_bound(inst, 5.0)
    if ref.status == Status.OPTIMAL:
        assert ref.objective is not None
        assert res.value <= ref.objective * (1 + 1e-9) + 1e-12, (res, ref.objective)
        # whole heavy units only tighten the fractional program (where a placement exists, the
        # program has a solution; without one it may have none and give no bound)
        assert res.value >= fractional_period_bound(inst) * (1 - 1e-5) - 1e-12


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like(general=True))
def test_packing_below_brute_on_msr_like(inst: Instance) -> None:
    """Random DAGs with the device features, memory, colocation, allowed sets and max_devices."""
    _below_brute(inst)
    free = replace(inst.problem.constraints, pipeline=False)
    _below_brute(inst.with_problem(replace(inst.problem, constraints=free)))


@pytest.mark.parametrize("seed", range(40))
def test_packing_below_brute_on_feature_instances(seed: int) -> None:
    inst = feature_instance(seed)
    inst = inst.with_problem(
        Problem(objective=Objective("throughput"), execution=inst.problem.execution,
                energy_scope=inst.problem.energy_scope, constraints=inst.problem.constraints)
    )
    _below_brute(inst)
