"""MILP backends: status maps, availability of pyomo:NAME, options, warm start, bounds, interfaces."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType

import pytest

from formulation import generators as gen
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.milp.random_instances import random_instance
from solvers.milp.solver import HighsSolver
from solvers.milp.status import HIGHS_STATUS, PYOMO_CONTRIB_STATUS, PYOMO_LEGACY_STATUS, termination
from solvers.options import OptionNotSupported, SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solver_info
from solvers.result import Status, Termination, compute_gap
from solvers.testing import CASES, applies

T = Termination


def test_highs_status_map_walks_every_native_code() -> None:
    import highspy

    native = set(highspy.HighsModelStatus.__members__)
    assert native == set(HIGHS_STATUS), "a HiGHS status code is unmapped or stale"
    expected = {
        "kOptimal": T.OPTIMAL,
        "kModelEmpty": T.OPTIMAL,
        "kInfeasible": T.INFEASIBLE,
        "kUnboundedOrInfeasible": T.INFEASIBLE,
        "kUnbounded": T.UNBOUNDED,
        "kTimeLimit": T.TIME_LIMIT,
        "kIterationLimit": T.ITERATION_LIMIT,
        "kSolutionLimit": T.ITERATION_LIMIT,
        "kInterrupt": T.INTERRUPTED,
        "kHighsInterrupt": T.INTERRUPTED,
        "kObjectiveBound": T.INTERRUPTED,
        "kObjectiveTarget": T.INTERRUPTED,
        "kMemoryLimit": T.INTERRUPTED,
        "kUnknown": T.INTERRUPTED,
        "kNotset": T.ERROR,
        "kLoadError": T.ERROR,
        "kModelError": T.ERROR,
        "kPresolveError": T.ERROR,
        "kSolveError": T.ERROR,
        "kPostsolveError": T.ERROR,
    }
    for name in native:
        assert termination(HIGHS_STATUS, name) == expected[name], name


def test_pyomo_status_maps_walk_every_native_code() -> None:
    from pyomo.contrib.solver.common.results import TerminationCondition as Contrib
    from pyomo.opt import TerminationCondition as Legacy

    assert set(Contrib.__members__) == set(PYOMO_CONTRIB_STATUS)
    assert set(Legacy.__members__) == set(PYOMO_LEGACY_STATUS)
    contrib = {
        "convergenceCriteriaSatisfied": T.OPTIMAL,
        "maxTimeLimit": T.TIME_LIMIT,
        "iterationLimit": T.ITERATION_LIMIT,
        "provenInfeasible": T.INFEASIBLE,
        "infeasibleOrUnbounded": T.INFEASIBLE,
        "unbounded": T.UNBOUNDED,
        "error": T.ERROR,
        "licensingProblems": T.ERROR,
        "interrupted": T.INTERRUPTED,
    }
    legacy = {
        "optimal": T.OPTIMAL,
        "globallyOptimal": T.OPTIMAL,
        "maxTimeLimit": T.TIME_LIMIT,
        "maxIterations": T.ITERATION_LIMIT,
        "infeasible": T.INFEASIBLE,
        "infeasibleOrUnbounded": T.INFEASIBLE,
        "noSolution": T.COMPLETED,
        "feasible": T.INTERRUPTED,
        "solverFailure": T.ERROR,
        "licensingProblems": T.ERROR,
        "userInterrupt": T.INTERRUPTED,
    }
    for name in Contrib.__members__:
        got = termination(PYOMO_CONTRIB_STATUS, name)
        assert isinstance(got, Termination)
        assert got == contrib.get(name, got), name
    for name in Legacy.__members__:
        got = termination(PYOMO_LEGACY_STATUS, name)
        assert got == legacy.get(name, got), name
    assert termination(HIGHS_STATUS, "kSomethingNew") == T.ERROR


def test_highs_is_registered_with_full_capabilities() -> None:
    info = solver_info("highs")
    assert info.available and info.exact
    caps = info.capabilities
    assert caps.objectives >= {"latency", "throughput", "energy", "cost", "weighted"}
    assert caps.executions == {"sequential", "parallel"}
    kinds = {"memory", "deadline", "energy_budget", "allowed", "private", "contiguous", "max_devices"}
    assert caps.constraints >= kinds
    assert not caps.chain_only and caps.max_devices is None and caps.max_layers is None
    assert get_solver("highs").version().startswith("HiGHS 1.")


@pytest.mark.parametrize("name", ["gurobi", "cplex", "xpress", "gurobi_direct"])
def test_pyomo_solver_not_installed_says_so(name: str) -> None:
    s = get_solver(f"pyomo:{name}")
    ok, why = s.available()
    if ok:  # pragma: no cover - a licensed commercial solver on the test machine
        pytest.skip(f"{name} is installed here")
    assert name in why
    inst = CASES[0].build()
    with pytest.raises(UnsupportedProblem, match="not available"):
        s.solve(inst)


def test_pyomo_unknown_solver_name() -> None:
    ok, why = get_solver("pyomo:no_such_solver_xyz").available()
    assert not ok
    assert "knows no solver named 'no_such_solver_xyz'" in why


@pytest.mark.parametrize("name", ["pyomo:highs", "pyomo:cbc", "pyomo:glpk"])
def test_pyomo_solvers_equal_highs(name: str) -> None:
    s = get_solver(name)
    ok, why = s.available()
    if not ok:
        pytest.skip(why)
    checked = 0
    for seed in range(40):
        inst = random_instance(seed)
        ref = HighsSolver().solve(inst)
        res = s.solve(inst)
        assert res.status == ref.status, f"seed {seed}: {res.message}"
        if name == "pyomo:cbc" and res.has_solution:  # CBC takes the default start natively
            assert res.extra["warm_start"] in ("native", None)
        if ref.objective is not None:
            assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-12), f"seed {seed}"
            checked += 1
    assert checked >= 20


def test_pyomo_option_mapping() -> None:
    inst = CASES[0].build()
    glpk = get_solver("pyomo:glpk")
    if not glpk.available()[0]:
        pytest.skip("glpk is not installed")
    with pytest.raises(OptionNotSupported, match=r"\['threads'\]"):
        glpk.solve(inst, SolverOptions(threads=2))
    res = glpk.solve(inst, SolverOptions(time_limit_s=30, gap=1e-6))
    assert res.status == Status.OPTIMAL
    assert res.options == {"time_limit_s": 30, "gap": 1e-6}


def test_highs_via_pyomo_interface_equals_direct() -> None:
    for case in CASES:
        inst = case.build()
        if not applies(HighsSolver(), inst):  # e.g. version-2 workloads, a marked row split
            continue
        a = HighsSolver().solve(inst)
        b = HighsSolver().solve(inst, SolverOptions(raw={"interface": "pyomo"}))
        assert a.status == b.status, case.name
        if a.objective is not None:
            assert b.objective == pytest.approx(a.objective, rel=1e-9), case.name


def hard_instance(n: int) -> Instance:
    """Transformer-like DAG, 4 devices, finite memories: seconds to prove optimal."""
    g = gen.transformer_like(n, seed=1)
    return gen.instance(g, gen.system(4, seed=1, memory=True), Problem(constraints=Constraints(memory=True)))


def test_time_limit_reports_bound_and_gap() -> None:
    inst = hard_instance(200)
    res = HighsSolver().solve(inst, SolverOptions(time_limit_s=0.2))
    assert res.termination == Termination.TIME_LIMIT
    assert res.status in (Status.FEASIBLE, Status.TIME_LIMIT_NO_SOLUTION), res.message
    if res.status == Status.FEASIBLE:
        assert res.objective is not None
        # the objective is the formulation's value of the placement (LP over the fixed integers)
        assert res.solver_objective == pytest.approx(res.objective, rel=1e-6)
        assert res.bound <= res.objective
        assert res.gap == compute_gap(res.objective, res.bound)


def test_gap_option_stops_early() -> None:
    inst = hard_instance(100)
    res = HighsSolver().solve(inst, SolverOptions(gap=0.5, time_limit_s=60))
    assert res.termination in (Termination.GAP_LIMIT, Termination.OPTIMAL)
    assert res.has_solution
    assert res.gap <= 0.5 + 1e-9


def test_threads_and_seed_do_not_change_the_optimum() -> None:
    inst = random_instance(3)
    a = HighsSolver().solve(inst)
    b = HighsSolver().solve(inst, SolverOptions(threads=1, seed=3))
    assert a.status == b.status == Status.OPTIMAL
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    assert b.options == {"threads": 1, "seed": 3}
    # HiGHS's process-wide thread pool is rebuilt around a run with its own thread count.
    c = HighsSolver().solve(inst, SolverOptions(threads=2))
    assert c.status == Status.OPTIMAL


def test_warm_start_from_a_given_placement() -> None:
    case = next(c for c in CASES if c.name == "chain-seq-latency")
    inst = case.build()
    start = {v: "m" for v in inst.graph.layer_ids}
    res = HighsSolver().solve(inst, SolverOptions(warm_start=start))
    assert res.status == Status.OPTIMAL
    assert res.extra["warm_start"] == "incumbent"  # HiGHS gets no MIP start (see below)
    assert res.objective == pytest.approx(case.optimum, rel=1e-9)
    with pytest.raises(ValueError, match="unknown device"):
        HighsSolver().solve(inst, SolverOptions(warm_start={v: "nowhere" for v in inst.graph.layer_ids}))


@pytest.mark.parametrize(
    ("inst", "device", "optimum"),
    [
        (lambda: random_instance(510), "D0", 0.046840463288547476),
        (
            lambda: gen.instance(
                gen.chain(30, seed=1),
                gen.system(3, seed=1),
                Problem(Objective("throughput"), constraints=Constraints(contiguous=True)),
            ),
            "d1",
            0.039651698718466605,
        ),
    ],
    ids=["reported-objective-of-another-point", "start-returned-as-optimal"],
)
def test_warm_starts_that_mislead_highs_give_the_optimum(
    inst: Callable[[], Instance], device: str, optimum: float
) -> None:
    """HiGHS 1.16 given these starts (all on one device) returns a wrong optimum (the models and
    starts are in tests/golden/highs_mipstart_*); the solver must still report the optimum."""
    i = inst()
    start = {v: device for v in i.graph.layer_ids}
    res = HighsSolver().solve(i, SolverOptions(warm_start=start))
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(optimum, rel=1e-9)
    assert HighsSolver().solve(i).objective == pytest.approx(optimum, rel=1e-9)


def test_warm_start_is_kept_when_the_time_limit_finds_nothing_better() -> None:
    from formulation.evaluator import batch_metrics
    from solvers.milp.solver import baseline_warm_start

    # No memory limits, so every single-device placement is feasible and the best is the start.
    inst = gen.instance(gen.transformer_like(300, seed=1), gen.system(4, seed=1))
    P = baseline_warm_start(inst)
    assert P is not None
    start_value = float(batch_metrics(inst, P[None, :], parallel=False).objective()[0])
    res = HighsSolver().solve(inst, SolverOptions(time_limit_s=0.01))
    assert res.has_solution, res.message
    assert res.objective is not None and res.objective <= start_value * (1 + 1e-9)


def test_bad_requests_raise_before_building() -> None:
    inst = CASES[0].build()
    with pytest.raises(UnsupportedProblem, match="raw option"):
        HighsSolver().solve(inst, SolverOptions(raw={"no_such_key": 1}))
    with pytest.raises(UnsupportedProblem, match="interface"):
        HighsSolver().solve(inst, SolverOptions(raw={"interface": "gams"}))
    neg = inst.with_problem(Problem(Objective("weighted", MappingProxyType({"latency": 1.0, "cost": -1.0}))))
    with pytest.raises(UnsupportedProblem, match="negative objective weights"):
        HighsSolver().solve(neg)


def test_infeasible_instance_has_no_bound() -> None:
    case = next(c for c in CASES if c.optimum is None)
    res = HighsSolver().solve(case.build())
    assert res.status == Status.INFEASIBLE
    assert math.isinf(res.gap)
