"""The chain solvers on one generation request (docs/instance-format.md §9.10) through its one-pass
view (solvers/generation_view.py): the view's value and feasibility equal the instance's for every
placement and every objective (40 seeds; 200 with ``-m slow``); ``shortest-path`` (exact on chains)
against brute force on 200 seeded random tiny instances of tests/random_generation.py; the worked
examples; ``dp`` (exact where one device holds every layer, a heuristic otherwise; the period too);
and the refusals of what the view cannot express. ``-m slow``: 600 more seeds."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pytest

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from solvers.generation_view import generation_view
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from tests.random_generation import random_single_generation
from tests.test_generation import G1, g2


def _accepts(name: str, inst: Any, options: SolverOptions) -> bool:
    try:
        get_solver(name).check(inst, options)
    except UnsupportedProblem:
        return False
    return True


def _view_is_exact(seed: int) -> int:
    """Every placement of the seed's instance, under each objective: the view gives the evaluator's
    value and feasibility; returns the instances compared (0 when the view refuses the seed)."""
    base = random_single_generation(seed)
    done = 0
    for objective in ("latency", "energy", "cost", "throughput"):
        d = copy.deepcopy(base)
        d["problem"]["objective"] = objective
        inst = load_instance_data(d)
        try:
            view = generation_view(inst, "test")
        except UnsupportedProblem:
            continue
        assert view.workload is None and view.graph.layer_ids == inst.graph.layer_ids
        for P in itertools.product(range(inst.k), repeat=inst.n):
            a, b = evaluate(inst, np.array(P)), evaluate(view, np.array(P))
            assert a.feasible == b.feasible, (inst.name, objective, P)
            assert b.objective == pytest.approx(a.objective, rel=1e-9, abs=1e-12), (inst.name, objective, P)
        done += 1
    return done


@pytest.mark.parametrize("chunk", range(4))
def test_the_view_equals_the_instance_on_every_placement(chunk: int) -> None:
    assert sum(_view_is_exact(seed) for seed in range(chunk * 10, (chunk + 1) * 10)) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(16))
def test_the_view_equals_the_instance_on_every_placement_many(chunk: int) -> None:
    for seed in range(40 + chunk * 10, 40 + (chunk + 1) * 10):
        _view_is_exact(seed)


def _agree_seed(seed: int) -> bool:
    """``shortest-path`` equals brute force on the seed's instance; False when it refuses it."""
    inst = load_instance_data(random_single_generation(seed))
    if not _accepts("shortest-path", inst, SolverOptions()):
        return False
    ref, res = solve(inst, "brute"), solve(inst, "shortest-path")
    where = f"{inst.name} ({inst.problem.objective})"
    assert res.status != Status.ERROR, (where, res.message)
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, where
        return True
    assert ref.status == res.status == Status.OPTIMAL, (where, res.status, res.message)
    assert ref.objective is not None and res.objective is not None
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-12), where
    # the DP's own value of its placement is the evaluator's: the view is exact, not just a bound
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-9, abs=1e-12), where
    ev = evaluate(inst, res.placement)
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12)
    return True


@pytest.mark.parametrize("chunk", range(8))
def test_shortest_path_equals_brute_on_single_generations(chunk: int) -> None:
    solved = sum(_agree_seed(seed) for seed in range(chunk * 25, (chunk + 1) * 25))
    assert solved >= 10  # most seeds are chains the view expresses


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(24))
def test_shortest_path_equals_brute_on_single_generations_many(chunk: int) -> None:
    for seed in range(200 + chunk * 25, 200 + (chunk + 1) * 25):
        _agree_seed(seed)


@pytest.mark.parametrize(("data", "best"), [(G1, 1.59555), (g2(), 1.4315012)], ids=["G1", "G2"])
def test_worked_examples_by_the_chain_dp(data: dict[str, Any], best: float) -> None:
    inst = load_instance_data(data)
    res = solve(inst, "shortest-path")
    assert res.status == Status.OPTIMAL and res.placement == {"u/block": "edge", "u/head": "edge"}
    assert res.objective == pytest.approx(best, rel=1e-12) and res.solver_objective == pytest.approx(best, rel=1e-12)
    view = generation_view(inst, "shortest-path")
    # G1 by hand: block on the edge 1.1 s prefill + sum_j (0.01 + 1e-5 (100 + j)) = 0.10055; the link's
    # 10 ms paid 11 times; the prefill's 100 kB and ten 1 kB steps of input
    if data is G1:
        assert view.time[0, 1] == pytest.approx(1.1 + 0.1 + 1e-5 * 1055, rel=1e-12)
        assert view.system.link_latency[0, 1] == pytest.approx(0.11)
        assert view.graph.inputs[0].bytes == pytest.approx(110_000)
        assert view.graph.param_bytes[0] == pytest.approx(2e6 + 1e4 * 110)  # weights + cache at P + G


def test_dp_on_a_generation() -> None:
    d = copy.deepcopy(G1)
    d["problem"]["constraints"] = {"max_devices": 1}  # one device holds every layer: dp is exact
    inst = load_instance_data(d)
    res, ref = solve(inst, "dp"), solve(inst, "brute")
    assert res.status == ref.status == Status.OPTIMAL
    # all on the edge 1.59555 s (all on the phone: prefill 11 + 0.1 s ... far slower)
    assert res.objective == pytest.approx(ref.objective, rel=1e-12) == pytest.approx(1.59555, rel=1e-12)
    # without max_devices the stages need not be contiguous: a heuristic on request only
    plain = load_instance_data(G1)
    with pytest.raises(UnsupportedProblem, match="exactly"):
        get_solver("dp").check(plain, SolverOptions())
    heur = solve(plain, "dp", SolverOptions(raw={"heuristic": True}))
    assert heur.objective == pytest.approx(1.59555, rel=1e-12)


def test_dp_period_of_a_generation_stream() -> None:
    """The period (no rate): the block on the edge and the head on the phone, busy 1.21055 s on the
    edge per generation (the prefill's 1.1 s and ten steps of 0.01 + 1e-5 (100 + j) s); with
    ``max_devices: 1`` dp is exact and everything goes to the edge (1.21055 + 11 x 0.001 s)."""
    d = copy.deepcopy(G1)
    d["problem"] = {"objective": "throughput", "constraints": {"max_devices": 1}}
    inst = load_instance_data(d)
    res = solve(inst, "dp")
    assert res.status == Status.OPTIMAL and set(res.placement.values()) == {"edge"}
    assert res.objective == pytest.approx(1.21055 + 0.011, rel=1e-12) == pytest.approx(solve(inst, "brute").objective)
    d["problem"] = {"objective": "throughput"}
    inst = load_instance_data(d)
    heur = solve(inst, "dp", SolverOptions(raw={"heuristic": True}))
    assert heur.placement == {"u/block": "edge", "u/head": "phone"}
    assert heur.objective == pytest.approx(1.21055, rel=1e-12) == pytest.approx(solve(inst, "brute").objective)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["workload"].append({**d["workload"][0], "id": "v"}), "2 requests"),
        (lambda d: d["workload"][0].update(rate=1.0), "a rate"),
        (lambda d: d["system"].update(routing="shortest"), "routing 'shortest'"),
        (lambda d: d["system"]["devices"][1].update(memory="3 MB"), "memory under the peak model"),
    ],
)
def test_what_the_view_cannot_express_is_refused(change: Any, reason: str) -> None:
    d = copy.deepcopy(G1)
    change(d)
    inst = load_instance_data(d)
    for name in ("shortest-path", "dp"):
        with pytest.raises(UnsupportedProblem, match=reason):
            get_solver(name).check(inst, SolverOptions())


def test_memory_params_is_exact_through_the_view() -> None:
    d = copy.deepcopy(G1)
    d["system"]["devices"][1]["memory"] = "3 MB"  # 2 MB weights + the 1.1 MB cache do not fit
    d["problem"]["constraints"] = {"memory": "params", "max_devices": 1}
    inst = load_instance_data(d)
    res = solve(inst, "dp")
    assert res.status == Status.OPTIMAL and set(res.placement.values()) == {"phone"}
    assert res.objective == pytest.approx(solve(inst, "brute").objective, rel=1e-12)
