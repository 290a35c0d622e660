"""Every registered solver runs every conformance case its capabilities allow (solvers/testing.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvers.base import RawSolution, Solver
from solvers.options import UnsupportedProblem
from solvers.registry import get_solver, names, register, solver_info, unregister
from solvers.result import Status, Termination
from solvers.testing import CASES, Case, applies, judge, run_conformance

AVAILABLE = [n for n in names() if solver_info(n).available]


def _applies(solver: Solver, inst) -> bool:  # type: ignore[no-untyped-def]
    return applies(solver, inst)


# Only the pairs a solver's declared capabilities allow are generated (no skipped tests).
PAIRS = [(s, c) for s in AVAILABLE for c in CASES if _applies(get_solver(s), c.build())]


@pytest.mark.parametrize(("solver_name", "case"), PAIRS, ids=[f"{s}-{c.name}" for s, c in PAIRS])
def test_conformance(solver_name: str, case: Case) -> None:
    """The judge shipped in solvers/testing.py: optimum, proof, and the evaluator's verdict."""
    assert judge(get_solver(solver_name), case) == []


def test_a_third_party_solver_is_judged_by_the_shipped_suite() -> None:
    """What an outside author runs on their own solver: every applicable case, each problem named."""
    from solvers.brute import BruteForce

    class Mine(BruteForce):
        name = "mine"

    report = run_conformance(Mine())
    assert report and all(problems == [] for problems in report.values())
    assert "chain-seq-latency" in report

    class Overclaims(Solver):
        """A heuristic that keeps everything on the mobile (4.0 s) and claims a bound of 3 s."""

        name = "overclaims"
        exact = False

        def _solve(self, inst, options):  # type: ignore[no-untyped-def]
            return RawSolution(Termination.COMPLETED, placement=np.zeros(inst.n, dtype=np.int64), bound=3.0)

    bad = run_conformance(Overclaims(), [c for c in CASES if c.name == "chain-seq-latency"])
    assert bad == {"chain-seq-latency": ["overclaims on chain-seq-latency: bound 3.0 above the optimum 0.521"]}


def test_every_registered_solver_is_exercised() -> None:
    """Guard: every registered, available solver is parametrized and applies to some case."""
    covered = {s for s, _ in PAIRS}
    assert covered == set(AVAILABLE)
    for name in AVAILABLE:
        solver = get_solver(name)
        applicable = [c.name for c in CASES if _applies(solver, c.build())]
        assert applicable, f"solver {name!r} applies to no conformance case"
    for name in names():
        info = solver_info(name)
        assert info.available or info.reason, f"unavailable solver {name!r} must say why"


def test_cases_cover_every_objective_mode_and_constraint() -> None:
    insts = [c.build() for c in CASES]
    assert {i.problem.objective.kind for i in insts} >= {
        "latency",
        "throughput",
        "energy",
        "cost",
        "weighted",
    }
    assert {i.problem.execution for i in insts} == {"sequential", "parallel"}
    active = set().union(*(i.active_constraints for i in insts))
    assert active >= {
        "memory",
        "deadline",
        "energy_budget",
        "allowed",
        "private",
        "contiguous",
        "max_devices",
        "colocate",
        "memory_params",
        "pipeline",
    }
    assert any(c.optimum is None for c in CASES)


class _LyingSolver(Solver):
    """Reports an objective that differs from the evaluator's value of its placement."""

    name = "fake-liar"
    exact = True

    def _solve(self, inst, options):  # type: ignore[no-untyped-def]
        return RawSolution(Termination.OPTIMAL, placement=np.zeros(inst.n, dtype=np.int64), solver_objective=0.001)


class _InfeasibleSolver(Solver):
    """Claims optimality for a placement that violates a constraint."""

    name = "fake-infeasible"
    exact = True

    def _solve(self, inst, options):  # type: ignore[no-untyped-def]
        return RawSolution(Termination.OPTIMAL, placement=np.ones(inst.n, dtype=np.int64))


def test_fake_solvers_are_caught_by_the_judge() -> None:
    register("fake-liar", _LyingSolver)
    register("fake-infeasible", _InfeasibleSolver)
    try:
        inst = next(c for c in CASES if c.name == "chain-seq-latency").build()
        res = get_solver("fake-liar").solve(inst)
        assert res.status == Status.ERROR
        assert "evaluator gives 4.0" in res.message
        inst2 = next(c for c in CASES if c.name == "chain-allowed").build()
        res2 = get_solver("fake-infeasible").solve(inst2)
        assert res2.status == Status.ERROR
        assert "allowed only on ['m']" in res2.message
        assert math.isinf(res2.gap)
    finally:
        unregister("fake-liar")
        unregister("fake-infeasible")
    assert "fake-liar" not in names()


def test_unsupported_problem_raises_before_building() -> None:
    class Narrow(Solver):
        name = "narrow"
        from solvers.options import Capabilities

        capabilities = Capabilities(
            objectives=frozenset({"latency"}),
            executions=frozenset({"sequential"}),
            constraints=frozenset(),
            chain_only=True,
            max_devices=2,
        )
        built = False

        def _solve(self, inst, options):  # type: ignore[no-untyped-def]
            Narrow.built = True
            raise AssertionError("must not be reached")

    inst = next(c for c in CASES if c.name == "diamond-parallel-throughput").build()
    with pytest.raises(UnsupportedProblem, match=r"objective 'throughput'.*only chains"):
        Narrow().solve(inst)
    assert not Narrow.built


def test_compute_gap() -> None:
    from solvers.result import compute_gap

    assert compute_gap(2.0, 1.5) == 0.25  # (2 - 1.5) / 2
    assert compute_gap(-2.0, -3.0) == 0.5  # (-2 + 3) / 2
    assert compute_gap(1.0, 1.0) == 0.0
    assert compute_gap(0.0, -1e-17) == 0.0  # float noise around an optimum of 0
    assert compute_gap(0.0, -1e-3) == pytest.approx(1e9)  # a real gap at 0 is huge, not hidden
    assert math.isinf(compute_gap(1.0, -math.inf)) and math.isinf(compute_gap(None, 0.0))
    assert compute_gap(1.0, 1.2) == 0.0  # a bound above the objective is clipped


def test_tiny_objectives_are_judged_relatively() -> None:
    """A backend that reports cost 0 for a placement costing 1e-7 USD is caught, not rounded away."""
    from formulation.model import Device, Graph, Instance, Layer, ModelInput, Objective, Problem, System

    g = Graph("one", [ModelInput("x", 1.0)], [Layer("a", "conv", ("x",), 1e3, 1.0)])
    inst = Instance(
        "one", g, System([Device("c", 1e10, price_usd_per_s=1e-3)], [], "c", None), Problem(Objective("cost"))
    )

    class Rounder(Solver):
        name = "rounder"
        exact = True

        def _solve(self, inst, options):  # type: ignore[no-untyped-def]
            return RawSolution(
                Termination.OPTIMAL, placement=np.zeros(1, dtype=np.int64), solver_objective=0.0, bound=0.0
            )

    res = Rounder().solve(inst)
    assert res.status == Status.ERROR and "evaluator gives 1e-10" in res.message  # 1e3 / 1e10 s * 1e-3 USD/s

    class Loose(Solver):
        name = "loose"
        exact = True

        def _solve(self, inst, options):  # type: ignore[no-untyped-def]
            return RawSolution(Termination.OPTIMAL, placement=np.zeros(1, dtype=np.int64), bound=0.5e-10)

    res = Loose().solve(inst)
    assert res.status == Status.FEASIBLE and res.gap == pytest.approx(0.5)
