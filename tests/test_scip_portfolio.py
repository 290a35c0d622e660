"""``auto`` with SCIP: its place in the order, the fallback to it, and the parallel portfolio."""

from __future__ import annotations

import math

import pytest

from formulation import generators as gen
from formulation.model import Constraints, Instance, Problem
from solvers.auto import AutoSolver, candidates, portfolio_mode
from solvers.base import RawSolution
from solvers.milp.solver import HighsSolver
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.portfolio import _combine
from solvers.registry import _SOLVERS, register, solve
from solvers.result import Result, Status, Termination
from solvers.testing import CASES


def case(name: str) -> Instance:
    return next(c for c in CASES if c.name == name).build()


def test_scip_comes_after_highs_and_cpsat_in_every_order() -> None:
    for inst in (case("diamond-sequential-latency"), case("diamond-parallel-latency")):
        order = [n for n, _ in candidates(inst)]
        assert order.index("scip") > max(order.index("highs"), order.index("cpsat"))
        assert order.index("scip") < order.index("brute")


class FailingHighs(HighsSolver):
    """A MILP engine whose backend always fails (stands in for highs and cpsat)."""

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        return RawSolution(Termination.ERROR, message="backend failed on purpose")


class FailingCpsat(FailingHighs):
    name = "cpsat"


def test_auto_falls_back_to_scip(monkeypatch: pytest.MonkeyPatch) -> None:
    inst = case("diamond-parallel-energy")  # no special-case method applies
    for name, cls in (("highs", FailingHighs), ("cpsat", FailingCpsat)):
        monkeypatch.setitem(_SOLVERS, name, "")
        register(name, cls)
    res = solve(inst, "auto")
    assert res.method == "scip"
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(2.55, rel=1e-9)
    assert [t["solver"] for t in res.extra["tried"]] == ["highs", "cpsat"]


def test_portfolio_option_values() -> None:
    assert portfolio_mode(SolverOptions()) == (False, SolverOptions())
    on, rest = portfolio_mode(SolverOptions(raw={"portfolio": True, "pairs": False}))
    assert on and dict(rest.raw) == {"pairs": False}
    assert not portfolio_mode(SolverOptions(raw={"portfolio": False}))[0]
    with pytest.raises(UnsupportedProblem, match="portfolio='yes'"):
        AutoSolver().solve(case("diamond-parallel-latency"), SolverOptions(raw={"portfolio": "yes"}))


def test_portfolio_returns_the_first_proof_and_lists_every_engine() -> None:
    inst = case("diamond-parallel-latency")
    res = AutoSolver().solve(inst, SolverOptions(time_limit_s=60, raw={"portfolio": True}))
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(3.201, rel=1e-9)
    rows = {r["solver"]: r for r in res.extra["portfolio"]}
    assert set(rows) == {"highs", "cpsat", "scip"}
    assert res.method in rows and rows[res.method]["status"] == "optimal"
    for r in rows.values():
        assert r["status"] in ("optimal", "stopped"), r
        if r["status"] == "optimal":
            assert r["objective"] == pytest.approx(3.201, rel=1e-6)
            assert r["bound"] <= r["objective"] * (1 + 1e-9)


def test_portfolio_is_not_used_where_a_special_method_applies() -> None:
    inst = case("chain-seq-latency")
    res = AutoSolver().solve(inst, SolverOptions(raw={"portfolio": True}))
    assert res.method == "shortest-path"
    assert "portfolio" not in res.extra
    assert res.objective == pytest.approx(0.521, rel=1e-9)


def test_portfolio_at_the_time_limit_reports_every_bound() -> None:
    inst = gen.instance(
        gen.layered_dag(150, seed=1), gen.system(4, seed=1, memory=True), Problem(constraints=Constraints(memory=True))
    )
    res = AutoSolver().solve(inst, SolverOptions(time_limit_s=1.0, raw={"portfolio": True}))
    rows = res.extra["portfolio"]
    assert {r["solver"] for r in rows} == {"highs", "cpsat", "scip"}
    assert res.has_solution
    finished = [r for r in rows if r["status"] in ("optimal", "feasible")]
    assert finished
    if res.status == Status.FEASIBLE:  # no engine proved: the bound is the best of all engines'
        best_bound = max(r["bound"] for r in rows if r.get("bound") is not None)
        assert res.bound == (min(best_bound, res.objective) if math.isfinite(best_bound) else -math.inf)
        assert res.objective == pytest.approx(min(r["objective"] for r in finished), rel=1e-12)


def _result(solver: str, objective: float, bound: float, gap: float) -> Result:
    return Result("i", solver, Status.FEASIBLE, Termination.TIME_LIMIT, objective=objective, bound=bound, gap=gap)


def test_combine_takes_the_best_placement_and_the_best_bound() -> None:
    a = _result("highs", 10.0, 5.0, 0.5)
    b = _result("cpsat", 12.0, 9.0, 0.25)
    best = _combine({"highs": a, "cpsat": b})
    assert best is a
    assert best.bound == 9.0 and best.gap == pytest.approx(0.1)
    assert best.status == Status.FEASIBLE
    c = _result("scip", 11.0, 10.0, 1 / 11)
    proof = _combine({"highs": _result("highs", 10.0, 5.0, 0.5), "scip": c})
    assert proof is not None and proof.solver == "highs"
    assert proof.bound == 10.0 and proof.gap == 0.0 and proof.status == Status.OPTIMAL
