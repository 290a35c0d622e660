"""The general MILP at scale: options proven useless by the forest relaxation and an incumbent are
removed before building (solvers/milp/bound_reduction.py), with the same optimum."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings

from formulation import generators as gen
from formulation.evaluator import batch_metrics
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.brute import BruteForce
from solvers.milp.bound_reduction import forest_bound, reduce_options
from solvers.milp.random_instances import random_instance
from solvers.milp.solver import HighsSolver
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Status
from tests.test_milp_brute import SEEDS


def all_placements(inst: Instance) -> np.ndarray:
    return np.array(list(itertools.product(range(inst.k), repeat=inst.n)), dtype=np.int64)


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_forest_min_marginals_are_lower_bounds(seed: int) -> None:
    """LB(v, d) <= the objective of every placement with v on d (constraints ignored), by enumeration."""
    inst = random_instance(seed, execution="sequential")
    fb = forest_bound(inst)
    if fb is None:
        return
    P = all_placements(inst)
    obj = batch_metrics(inst, P, parallel=False).objective()
    ok = np.isfinite(obj) & inst.placement_mask[np.arange(inst.n)[None, :], P].all(axis=1)
    for v in range(inst.n):
        for d in range(inst.k):
            sel = ok & (P[:, v] == d)
            if sel.any():
                assert fb.lb[v, d] <= obj[sel].min() * (1 + 1e-9) + 1e-15, (seed, v, d)
    assert fb.value <= obj[ok].min() * (1 + 1e-9) + 1e-15 if ok.any() else True


def test_forest_bound_is_exact_on_a_chain() -> None:
    """On a chain every tensor has one consumer: the relaxation is the problem (shortest path)."""
    inst = gen.instance(gen.chain(6, seed=3), gen.system(3, seed=3))
    fb = forest_bound(inst)
    assert fb is not None
    best = BruteForce().solve(inst)
    assert fb.value == pytest.approx(best.objective, rel=1e-12)
    assert float(batch_metrics(inst, fb.placement[None, :], parallel=False).objective()[0]) == pytest.approx(
        fb.value, rel=1e-12
    )
    P = all_placements(inst)
    obj = batch_metrics(inst, P, parallel=False).objective()
    for v in range(inst.n):
        for d in range(inst.k):
            assert fb.lb[v, d] == pytest.approx(obj[P[:, v] == d].min(), rel=1e-12)


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_reduction_keeps_the_optimum(seed: int) -> None:
    inst = random_instance(seed, execution="sequential")
    try:
        ref = BruteForce().solve(inst)
    except UnsupportedProblem:
        return
    red = reduce_options(inst)
    if red.removed == 0:
        return
    assert red.start is not None
    assert ref.status == Status.OPTIMAL and ref.objective is not None
    assert red.upper_bound >= ref.objective * (1 - 1e-12)
    again = BruteForce().solve(red.instance)
    assert again.status == Status.OPTIMAL
    assert again.objective == pytest.approx(ref.objective, rel=1e-12)


def test_reduction_removes_options_on_random_instances() -> None:
    """The property tests above are not vacuous: many random instances lose options."""
    removed = [reduce_options(random_instance(s, execution="sequential")).removed for s in range(60)]
    assert sum(r > 0 for r in removed) >= 10, removed


def test_not_applied_outside_additive_sequential_objectives() -> None:
    g, s = gen.layered_dag(12, seed=1), gen.system(3, seed=1)
    for p in (Problem(execution="parallel"), Problem(Objective("throughput"))):
        inst = gen.instance(g, s, p)
        assert forest_bound(inst) is None
        red = reduce_options(inst)
        assert red.instance is inst and red.removed == 0


def test_user_warm_start_options_are_kept() -> None:
    inst = gen.instance(gen.resnet_like(40, seed=1), gen.system(4, seed=1))
    worst = np.full(inst.n, inst.k - 1, dtype=np.int64)
    worst[::2] = 1
    red = reduce_options(inst, keep=worst)
    assert red.removed > 0
    assert red.instance.placement_mask[np.arange(inst.n), worst].all()
    res = HighsSolver().solve(inst, SolverOptions(warm_start=inst.placement_indices(worst)))
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(HighsSolver().solve(inst, SolverOptions(raw={"reduce": False})).objective)


@pytest.mark.parametrize(
    ("family", "n", "k", "problem", "memory", "reduced"),
    [
        ("resnet", 300, 8, Problem(), False, True),
        ("transformer", 200, 4, Problem(Objective("energy")), False, True),
        ("dag", 60, 4, Problem(), False, True),
        # finite memories make the relaxation's placement infeasible: the incumbent is too far to prune
        ("dag", 60, 4, Problem(constraints=Constraints(memory=True)), True, False),
    ],
)
def test_reduced_milp_equals_the_full_one(
    family: str, n: int, k: int, problem: Problem, memory: bool, reduced: bool
) -> None:
    make = {"resnet": gen.resnet_like, "transformer": gen.transformer_like, "dag": gen.layered_dag}[family]
    inst = gen.instance(make(n, seed=2), gen.system(k, seed=2, memory=memory), problem)
    full = HighsSolver().solve(inst, SolverOptions(time_limit_s=120, raw={"reduce": False}))
    small = HighsSolver().solve(inst, SolverOptions(time_limit_s=120))
    assert full.status == small.status == Status.OPTIMAL, (full.message, small.message)
    assert small.objective == pytest.approx(full.objective, rel=1e-6)
    assert (small.extra["reduced_options"] > 0) == reduced
    if reduced:
        assert small.extra["model_columns"] < full.extra["model_columns"]
    assert full.extra["reduced_options"] == 0
    assert math.isfinite(small.bound) and small.bound <= small.objective * (1 + 1e-9)


@pytest.mark.slow
def test_resnet_2000_by_8_is_proved_optimal() -> None:
    """The benchmark model of benchmarks/milp.py (timings there, not here)."""
    inst = gen.instance(gen.resnet_like(2000, seed=1), gen.system(8, seed=1))
    res = HighsSolver().solve(inst, SolverOptions(time_limit_s=60))
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(0.11304441741124133, rel=1e-9)


def test_not_applied_with_device_features() -> None:
    """``send_once`` counts a tensor once for several destinations: the per-transfer terms of the
    relaxation would overstate such placements, so no bound is derived."""
    from tests.feature_instances import feature_instance

    seen = 0
    for seed in range(40):
        inst = feature_instance(seed, execution="sequential")
        if inst.system.features and inst.problem.objective.kind == "latency":
            seen += 1
            assert forest_bound(inst) is None
            assert reduce_options(inst).removed == 0
    assert seen > 0
