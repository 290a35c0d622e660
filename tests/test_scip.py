"""``scip``: the shared MILP solved by SCIP equals ``brute`` on random tiny instances and ``highs`` on
medium ones; its status map, options, warm start and bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings

from formulation import generators as gen
from formulation.model import Constraints, Objective, Problem
from solvers.brute import BruteForce
from solvers.milp.random_instances import random_instance
from solvers.milp.scip_solver import ScipSolver
from solvers.milp.solver import HighsSolver
from solvers.milp.status import SCIP_STATUS, termination
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solver_info
from solvers.result import Status, Termination, compute_gap
from solvers.testing import CASES
from tests.test_milp_brute import SEEDS

T = Termination


def test_status_map_walks_every_native_code() -> None:
    from pyscipopt.scip import PY_SCIP_STATUS

    native = {n.lower() for n in vars(PY_SCIP_STATUS) if n.isupper()}
    assert native == set(SCIP_STATUS), "a SCIP status code is unmapped or stale"
    expected = {
        "optimal": T.OPTIMAL,
        "infeasible": T.INFEASIBLE,
        "inforunbd": T.INFEASIBLE,
        "unbounded": T.UNBOUNDED,
        "timelimit": T.TIME_LIMIT,
        "gaplimit": T.GAP_LIMIT,
        "nodelimit": T.ITERATION_LIMIT,
        "totalnodelimit": T.ITERATION_LIMIT,
        "stallnodelimit": T.ITERATION_LIMIT,
        "sollimit": T.ITERATION_LIMIT,
        "bestsollimit": T.ITERATION_LIMIT,
        "restartlimit": T.ITERATION_LIMIT,
        "userinterrupt": T.INTERRUPTED,
        "memlimit": T.INTERRUPTED,
        "primallimit": T.INTERRUPTED,
        "duallimit": T.INTERRUPTED,
        "unknown": T.INTERRUPTED,
    }
    for name in native:
        assert termination(SCIP_STATUS, name) == expected[name], name
    assert termination(SCIP_STATUS, "no-such-code") == T.ERROR


def test_registered_with_the_capabilities_of_highs() -> None:
    info = solver_info("scip")
    assert info.available, info.reason
    assert info.exact
    assert info.capabilities == solver_info("highs").capabilities
    assert ScipSolver.supported_options == HighsSolver.supported_options
    assert ScipSolver.version().startswith("SCIP ")


def agree(seed: int, execution: str | None) -> None:
    inst = random_instance(seed, execution=execution)
    try:
        ref = BruteForce().solve(inst)
    except UnsupportedProblem:
        return
    res = ScipSolver().solve(inst)
    assert res.status != Status.ERROR, f"seed {seed}: {res.message}"
    assert res.status == ref.status, f"seed {seed}: brute {ref.status}, scip {res.status} {res.message}"
    if ref.status == Status.OPTIMAL:
        assert ref.objective is not None and res.objective is not None
        assert math.isclose(res.objective, ref.objective, rel_tol=1e-6, abs_tol=1e-12), f"seed {seed}"
        assert res.bound <= res.objective * (1 + 1e-9) + 1e-15
        assert res.gap <= 1e-6


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_equals_brute_sequential(seed: int) -> None:
    agree(seed, "sequential")


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_equals_brute_parallel(seed: int) -> None:
    agree(seed, "parallel")


MEDIUM = {
    "resnet-60x4-latency": lambda: gen.instance(gen.resnet_like(60, seed=2), gen.system(4, seed=2)),
    "transformer-50x3-energy": lambda: gen.instance(
        gen.transformer_like(50, seed=3), gen.system(3, seed=3), Problem(Objective("energy"))
    ),
    "dag-40x4-memory": lambda: gen.instance(
        gen.layered_dag(40, seed=4), gen.system(4, seed=4, memory=True), Problem(constraints=Constraints(memory=True))
    ),
    "chain-40x3-throughput-contiguous": lambda: gen.instance(
        gen.chain(40, seed=5),
        gen.system(3, seed=5),
        Problem(Objective("throughput"), constraints=Constraints(contiguous=True)),
    ),
}


@pytest.mark.parametrize("name", list(MEDIUM))
def test_equals_highs_on_medium_instances(name: str) -> None:
    inst = MEDIUM[name]()
    a = HighsSolver().solve(inst, SolverOptions(time_limit_s=120))
    b = ScipSolver().solve(inst, SolverOptions(time_limit_s=120))
    assert a.status == b.status == Status.OPTIMAL, (a.message, b.message)
    assert b.objective == pytest.approx(a.objective, rel=1e-6)
    assert b.bound <= b.objective * (1 + 1e-9)


def test_warm_start_is_passed_natively() -> None:
    case = next(c for c in CASES if c.name == "chain-seq-latency")
    inst = case.build()
    res = ScipSolver().solve(inst, SolverOptions(warm_start={v: "m" for v in inst.graph.layer_ids}))
    assert res.status == Status.OPTIMAL
    assert res.extra["warm_start"] == "native"
    assert res.objective == pytest.approx(case.optimum, rel=1e-9)
    off = ScipSolver().solve(inst, SolverOptions(raw={"auto_warm_start": False}))
    assert off.extra["warm_start"] is None
    assert off.objective == pytest.approx(case.optimum, rel=1e-9)


def test_options_seed_threads_gap_and_time_limit() -> None:
    inst = random_instance(3)
    a = ScipSolver().solve(inst)
    b = ScipSolver().solve(inst, SolverOptions(threads=2, seed=7))
    assert a.status == b.status == Status.OPTIMAL
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    assert b.options == {"threads": 2, "seed": 7}
    hard = gen.instance(
        gen.layered_dag(150, seed=1), gen.system(4, seed=1, memory=True), Problem(constraints=Constraints(memory=True))
    )
    res = ScipSolver().solve(hard, SolverOptions(time_limit_s=0.5))
    assert res.termination == Termination.TIME_LIMIT
    assert res.extra["native_status"] == "timelimit"
    assert res.has_solution  # at least the single-device start
    assert res.bound <= res.objective
    assert res.gap == compute_gap(res.objective, res.bound)
    medium = gen.instance(
        gen.layered_dag(60, seed=1), gen.system(4, seed=1, memory=True), Problem(constraints=Constraints(memory=True))
    )
    loose = ScipSolver().solve(medium, SolverOptions(gap=0.5, time_limit_s=60))
    assert loose.termination in (Termination.GAP_LIMIT, Termination.OPTIMAL)
    assert loose.gap <= 0.5 + 1e-9


def test_bad_requests_and_infeasible_instances() -> None:
    inst = CASES[0].build()
    with pytest.raises(UnsupportedProblem, match="raw option"):
        ScipSolver().solve(inst, SolverOptions(raw={"interface": "direct"}))
    case = next(c for c in CASES if c.optimum is None)
    res = get_solver("scip").solve(case.build())
    assert res.status == Status.INFEASIBLE
    assert math.isinf(res.gap)


def test_pyomo_scip_direct_equals_scip() -> None:
    """The Pyomo route to the same SCIP library (pyomo:scip_direct, also through pyscipopt)."""
    pyomo_scip = get_solver("pyomo:scip_direct")
    ok, why = pyomo_scip.available()
    assert ok, why  # pyscipopt is a dependency, so Pyomo's interface finds it
    for seed in range(12):
        inst = random_instance(seed)
        a = ScipSolver().solve(inst)
        b = pyomo_scip.solve(inst, SolverOptions(time_limit_s=60))
        assert a.status == b.status, (seed, a.message, b.message)
        if a.objective is not None:
            assert b.objective == pytest.approx(a.objective, rel=1e-6), seed
