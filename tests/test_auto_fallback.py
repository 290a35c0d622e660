"""``auto`` falls back to the next applicable exact engine and records why it left each one."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers import auto
from solvers.base import RawSolution, Solver
from solvers.options import SolverOptions
from solvers.registry import get_solver, register, unregister
from solvers.result import Status, Termination


def chain_instance() -> Instance:
    """Two layers on a phone and a cloud: a on m (1 s), b on c (0.002 s) plus 0.011 s up and back.

    All on m: 1 + 2 = 3 s; all on c: x up 0.011 + 0.001 + 0.002 + 0.011 back = 0.025 s (optimum).
    """
    g = Graph(
        "g",
        [ModelInput("x", 1e3)],
        [Layer("a", "op", ("x",), 1e9, output_bytes=1e3), Layer("b", "op", ("a",), 2e9, output_bytes=1e3)],
    )
    s = System([Device("m", 1e9), Device("c", 1e12)], [Link("m", "c", 1e6, 0.01), Link("c", "m", 1e6, 0.01)], "m", "m")
    return Instance("chain", g, s, Problem(Objective("latency"), constraints=Constraints(memory=False)))


OPTIMUM = 0.025


class Broken(Solver):
    """Raises inside the backend (becomes status error)."""

    name = "t-broken"
    exact = True

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        raise RuntimeError("boom")


class Liar(Solver):
    """Returns the all-local placement with a made-up objective (the evaluator disagrees)."""

    name = "t-liar"
    exact = True

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        return RawSolution(Termination.OPTIMAL, placement=np.zeros(inst.n, dtype=np.int64), solver_objective=0.001)


class Stopped(Solver):
    """Stops at an iteration limit with the all-local placement."""

    name = "t-stopped"
    exact = True

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        return RawSolution(Termination.ITERATION_LIMIT, placement=np.zeros(inst.n, dtype=np.int64))


class Unproven(Solver):
    """Ends without a proof (like min-cut whose integer scaling left a gap)."""

    name = "t-unproven"
    exact = True

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        return RawSolution(Termination.COMPLETED, placement=np.zeros(inst.n, dtype=np.int64), bound=0.0)


FAKES: list[type[Solver]] = [Broken, Liar, Stopped, Unproven]


@pytest.fixture
def fakes_first(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in FAKES:
        register(cls.name, cls)
    monkeypatch.setattr(auto, "CANDIDATES", [(c.name, f"fake {c.name}") for c in FAKES] + auto.CANDIDATES)
    try:
        yield
    finally:
        for cls in FAKES:
            unregister(cls.name)


@pytest.mark.usefixtures("fakes_first")
def test_falls_back_past_every_failure_and_records_why() -> None:
    res = get_solver("auto").solve(chain_instance())
    assert res.status == Status.OPTIMAL and res.method == "shortest-path"
    assert res.objective == pytest.approx(OPTIMUM, rel=1e-12)
    tried = res.extra["tried"]
    assert [t["solver"] for t in tried] == ["t-broken", "t-liar", "t-stopped", "t-unproven"]
    assert tried[0]["reason"] == "error: RuntimeError: boom"
    assert tried[1]["reason"].startswith("error: the solver reported objective 0.001 but the evaluator gives 3.0")
    assert tried[2]["reason"] == "stopped at an internal limit (iteration_limit)"
    assert tried[3]["reason"].startswith("ended without a proof of optimality")
    assert "after leaving 't-broken': error: RuntimeError: boom" in res.message
    assert json.loads(json.dumps(res.to_dict()))["extra"]["tried"] == tried


def test_no_fallback_needed_records_nothing() -> None:
    res = get_solver("auto").solve(chain_instance())
    assert res.method == "shortest-path" and res.extra["tried"] == []
    assert "after leaving" not in res.message


def test_when_every_engine_fails_the_best_result_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in FAKES:
        register(cls.name, cls)
    monkeypatch.setattr(auto, "CANDIDATES", [(c.name, f"fake {c.name}") for c in FAKES])
    try:
        res = get_solver("auto").solve(chain_instance())
    finally:
        for cls in FAKES:
            unregister(cls.name)
    # the unproven all-local placement (3 s) is the only solution held: feasible, not optimal
    assert res.status == Status.FEASIBLE and res.method == "t-unproven"
    assert res.objective == pytest.approx(3.0)
    assert len(res.extra["tried"]) == 4


def test_a_numeric_refusal_is_listed_among_the_engines_tried() -> None:
    # m idles at 0.5 W while c computes a in 1e9 s: HiGHS and CP-SAT refuse, brute solves.
    g = Graph("g", [ModelInput("x", 1e3)], [Layer("a", "op", ("x",), 1e9, output_bytes=1e3)])
    s = System(
        [Device("m", 1e9, power_active_w=2.0, power_idle_w=0.5), Device("c", 1.0), Device("e", 2.0)],
        [Link("m", "c", 1e6), Link("c", "m", 1e6), Link("m", "e", 1e6), Link("e", "m", 1e6)],
        "m",
        "m",
    )
    g2 = Graph("g", g.inputs, [*g.layers, Layer("b", "op", ("x",), 1e9, output_bytes=1e3)])
    inst = Instance("t", g2, s, Problem(Objective("energy"), "parallel", ("m",), Constraints(memory=False)))
    res = get_solver("auto").solve(inst)
    best = get_solver("brute").solve(inst)
    assert res.status == Status.OPTIMAL and res.method == "brute"
    assert res.objective == pytest.approx(best.objective, rel=1e-9)
    reasons = {t["solver"]: t["reason"] for t in res.extra["tried"]}
    assert {"highs", "cpsat"} <= set(reasons) <= {"highs", "cpsat", "scip"}
    assert "system.devices[1].compute: got 1.0" in reasons["highs"]
