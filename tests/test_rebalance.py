"""Re-placing a few devices at a time (solvers/rebalance.py): hand-computed moves, never worse than its start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from formulation.evaluator import evaluate
from formulation.model import Objective, Problem
from solvers.rebalance import applies, rebalance, sub_solve
from solvers.registry import solve
from solvers.result import Status
from tests.feature_instances import feature_instance
from tests.test_packing_bound import independent
from tests.test_unit_load import chain


def test_balances_independent_layers() -> None:
    """Layers of 3, 3, 2, 2, 2 s on two identical devices, all on the first (12 s): the pair
    program splits them 3 + 3 against 2 + 2 + 2, 6 s, the optimum (12 / 2)."""
    inst = independent([3.0, 3.0, 2.0, 2.0, 2.0], 2)
    start = np.zeros(5, dtype=np.int64)
    assert evaluate(inst, start).objective == pytest.approx(12.0, rel=1e-12)
    P, kept = rebalance(inst, start, 10.0)
    assert kept >= 1
    assert evaluate(inst, P).objective == pytest.approx(6.0, rel=1e-12)
    assert sorted(inst.time[np.flatnonzero(P == 0), 0].tolist()) in ([2.0, 2.0, 2.0], [3.0, 3.0])


def test_keeps_a_placement_no_move_improves() -> None:
    """chain4 (tests/test_unit_load.py): 4 s on one device; any split sends a 10 s tensor, so no
    group helps and the start comes back unchanged."""
    inst = chain()
    start = np.zeros(4, dtype=np.int64)
    P, kept = rebalance(inst, start, 10.0)
    assert kept == 0 and np.array_equal(P, start)
    assert evaluate(inst, P).objective == pytest.approx(4.0, rel=1e-12)


def test_two_pair_moves_on_three_devices() -> None:
    """Six 1 s layers on three devices placed 4 / 1 / 1 (4 s): the busiest with the first least
    busy holds five layers, split 3 / 2 (3 s); then the busiest with the other, four layers, 2 / 2:
    2 / 2 / 2, 2 s, the optimum."""
    inst = independent([1.0] * 6, 3)
    start = np.array([0, 0, 0, 0, 1, 2], dtype=np.int64)
    P, kept = rebalance(inst, start, 10.0)
    assert evaluate(inst, P).objective == pytest.approx(2.0, rel=1e-12)
    assert np.bincount(P, minlength=3).tolist() == [2, 2, 2]
    assert kept >= 2


def test_sub_program_respects_allowed_devices_and_memory() -> None:
    """Two layers of 1 GB on devices of 1.5 GB: the program never puts both on one device; a layer
    allowed on one device only stays there."""
    inst = independent([1.0, 1.0, 1.0], 3, memory=1.5e9)
    start = np.array([0, 1, 2], dtype=np.int64)
    Q = sub_solve(inst, start, [0, 1], 5.0)
    assert Q is not None and sorted(Q[:2].tolist()) == [0, 1]


def test_applies_only_to_the_period_without_convex_stages() -> None:
    inst = chain()
    assert applies(inst) is None
    conv = inst.with_problem(replace(inst.problem, constraints=replace(inst.problem.constraints, contiguous=True)))
    assert applies(conv) is not None
    lat = inst.with_problem(replace(inst.problem, objective=Objective("latency")))
    assert applies(lat) is not None
    start = np.zeros(4, dtype=np.int64)
    P, kept = rebalance(conv, start, 5.0)
    assert kept == 0 and np.array_equal(P, start)


@pytest.mark.parametrize("seed", range(30))
def test_never_worse_than_its_start_and_feasible(seed: int) -> None:
    """Random tiny instances with the model features, period objective: from a random allowed
    placement (the simple placement where that is infeasible) the result is feasible for the
    evaluator, no worse than the start and no better than brute."""
    from solvers.cpsat import simple_placement

    inst = feature_instance(seed)
    inst = inst.with_problem(
        Problem(objective=Objective("throughput"), execution=inst.problem.execution,
                energy_scope=inst.problem.energy_scope,
                constraints=replace(inst.problem.constraints, contiguous=False, pipeline=False))
    )
    rng = np.random.default_rng(seed)
    start = np.array([rng.choice(np.flatnonzero(row)) for row in inst.placement_mask], dtype=np.int64)
    if not evaluate(inst, start).feasible:
        start = simple_placement(inst)
    ev0 = evaluate(inst, start)
    P, _ = rebalance(inst, start, 5.0)
    ev = evaluate(inst, P)
    ref = solve(inst, "brute")
    if not ev0.feasible:
        assert np.array_equal(P, start)
        return
    assert ev.feasible
    assert ev.objective <= ev0.objective * (1 + 1e-12)
    assert ref.status == Status.OPTIMAL and ref.objective is not None
    assert ev.objective >= ref.objective * (1 - 1e-9)
