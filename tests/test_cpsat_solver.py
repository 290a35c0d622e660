"""The ``cpsat`` backend: status map, options, hints, log, bound and recorded facts."""

from __future__ import annotations

import pytest
from ortools.sat.python import cp_model

from formulation import generators as gen
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.cpsat import STATUS_NAMES, CpSatSolver, default_workers, map_status
from solvers.options import OptionNotSupported, SolverOptions, UnsupportedProblem
from solvers.registry import get_solver
from solvers.result import Status, Termination


def _instance(n: int = 12, k: int = 3, objective: str = "latency", execution: str = "parallel") -> Instance:
    return gen.instance(
        gen.layered_dag(n, width=3, seed=7),
        gen.system(k, seed=7),
        Problem(Objective(objective), execution),  # type: ignore[arg-type]
    )


def test_status_map_covers_every_cp_sat_status() -> None:
    names = {n for n in dir(cp_model.CpSolverStatus) if n.isupper()}
    assert set(STATUS_NAMES) == names
    assert map_status("OPTIMAL", True, 10.0, 10.0, gap_set=False) == Termination.OPTIMAL
    # CP-SAT reports OPTIMAL when it stops on relative_gap_limit: that is a gap limit.
    assert map_status("OPTIMAL", True, 10.0, 9.0, gap_set=True) == Termination.GAP_LIMIT
    assert map_status("OPTIMAL", True, 10.0, 10.0, gap_set=True) == Termination.OPTIMAL
    assert map_status("FEASIBLE", True, 10.0, 5.0, gap_set=False) == Termination.TIME_LIMIT
    assert map_status("INFEASIBLE", False, 0.0, 0.0, gap_set=False) == Termination.INFEASIBLE
    assert map_status("UNKNOWN", False, 0.0, 0.0, gap_set=False) == Termination.TIME_LIMIT
    assert map_status("MODEL_INVALID", False, 0.0, 0.0, gap_set=False) == Termination.ERROR


def test_result_records_scaling_seed_workers_hint_and_log() -> None:
    res = get_solver("cpsat").solve(_instance(), SolverOptions(time_limit_s=30))
    assert res.status == Status.OPTIMAL
    assert res.extra["workers"] == default_workers() >= 2
    assert res.extra["seed"] == 0 and res.extra["deterministic"] is False
    assert res.extra["scaling_error"] >= 0
    assert abs(res.solver_objective - res.objective) <= res.extra["scaling_error"] + 1e-9 * res.objective
    assert res.bound <= res.objective and res.gap <= 1e-6
    assert res.extra["hint"].split(" (")[0] in ("heft", "local-search", "simple placement")
    assert "CP-SAT" in res.log and "hint:" in res.log
    assert res.solver_version.startswith("OR-Tools 9.")


def test_one_worker_is_deterministic() -> None:
    inst = _instance()
    a = get_solver("cpsat").solve(inst, SolverOptions(threads=1, seed=3, time_limit_s=30))
    b = get_solver("cpsat").solve(inst, SolverOptions(threads=1, seed=3, time_limit_s=30))
    assert a.extra["workers"] == 1 and a.extra["deterministic"] is True and a.extra["seed"] == 3
    assert a.placement == b.placement and a.schedule == b.schedule


def test_warm_start_is_the_hint() -> None:
    inst = _instance()
    start = {v: "d0" for v in inst.graph.layer_ids}
    res = get_solver("cpsat").solve(inst, SolverOptions(warm_start=start, time_limit_s=30))
    assert res.extra["hint"] == "warm_start (full)"
    assert res.status == Status.OPTIMAL


def test_a_limit_with_a_solution_is_feasible_with_a_gap() -> None:
    """Stopping at the first solution (the full hint) gives status feasible, bound <= objective."""
    inst = _instance(n=30, k=4)
    res = get_solver("cpsat").solve(inst, SolverOptions(raw={"params": {"stop_after_first_solution": True}}))
    assert res.status == Status.FEASIBLE and res.termination == Termination.TIME_LIMIT
    assert res.bound <= res.objective and res.gap > 0


def test_a_limit_without_a_solution() -> None:
    inst = _instance(n=30, k=4)
    opts = SolverOptions(raw={"hint": "none", "params": {"max_deterministic_time": 0.0}})
    res = get_solver("cpsat").solve(inst, opts)
    assert res.status == Status.TIME_LIMIT_NO_SOLUTION and res.extra["cp_status"] == "UNKNOWN"


def test_infeasible_instance() -> None:
    """A deadline below the sum of the smallest computation times cannot be met (each layer alone
    fits it, so CP-SAT, not the pruning of formulation.numerics, proves it)."""
    inst = _instance(n=5, k=2, execution="sequential")
    t_min = float(inst.time.min(axis=1).sum())
    assert float(inst.time.min(axis=1).max()) < 0.99 * t_min
    inst = inst.with_problem(Problem(Objective("latency"), "sequential", None, Constraints(deadline_s=0.99 * t_min)))
    res = get_solver("cpsat").solve(inst, SolverOptions(time_limit_s=30))
    assert res.status == Status.INFEASIBLE and res.extra["cp_status"] == "INFEASIBLE"


def test_options_are_checked_before_building() -> None:
    inst = _instance()
    solver = CpSatSolver()
    with pytest.raises(OptionNotSupported, match="raw option"):
        solver.check(inst, SolverOptions(raw={"bogus": 1}))
    with pytest.raises(OptionNotSupported, match="unknown CP-SAT parameter"):
        solver.check(inst, SolverOptions(raw={"params": {"no_such_parameter": 1}}))
    with pytest.raises(OptionNotSupported, match="warm_start"):
        solver.check(inst, SolverOptions(warm_start={"nope": "d0"}))
    weighted = inst.with_problem(Problem(Objective("weighted", {"latency": 1.0, "energy": -0.1}), "parallel"))
    with pytest.raises(UnsupportedProblem, match="negative objective weights"):
        solver.check(weighted, SolverOptions())


def test_gap_option_stops_early_as_gap_limit() -> None:
    """With a 50% gap CP-SAT stops as soon as its bound is within half of the incumbent; it says
    OPTIMAL, which the backend reports as a gap limit (status feasible)."""
    res = get_solver("cpsat").solve(_instance(n=30, k=4), SolverOptions(gap=0.5, time_limit_s=30))
    assert res.extra["cp_status"] == "OPTIMAL"
    assert res.termination == Termination.GAP_LIMIT and res.status == Status.FEASIBLE
    assert 0 < res.gap <= 0.5 + 1e-9


def test_invalid_parameters_are_an_error_row() -> None:
    """CP-SAT's MODEL_INVALID (here: two conflicting worker parameters) becomes status error with
    CP-SAT's reason, never a crash."""
    opts = SolverOptions(raw={"params": {"num_search_workers": 2}, "hint": "none"})
    res = get_solver("cpsat").solve(_instance(n=5, k=2), opts)
    assert res.status == Status.ERROR and res.termination == Termination.ERROR
    assert res.extra["cp_status"] == "MODEL_INVALID"
    assert "num_search_workers" in res.message


def test_auto_prefers_cpsat_for_parallel_latency_and_throughput() -> None:
    """benchmarks/README.md, section "cpsat": CP-SAT before the MILP for parallel latency and
    throughput; the MILP stays first elsewhere (sequential latency, energy, cost)."""
    from solvers.auto import candidates, prefers_cpsat

    def order(inst: Instance) -> list[str]:
        return [n for n, _ in candidates(inst) if n in ("cpsat", "highs")]

    par = _instance(objective="latency", execution="parallel")
    thr = _instance(objective="throughput", execution="sequential")
    seq = _instance(objective="latency", execution="sequential")
    energy = _instance(objective="energy", execution="parallel")
    assert prefers_cpsat(par) and prefers_cpsat(thr)
    assert not prefers_cpsat(seq) and not prefers_cpsat(energy)
    assert order(par) == order(thr) == ["cpsat", "highs"]
    assert order(seq) == order(energy) == ["highs", "cpsat"]
    solver, why = get_solver("auto").choose(par, SolverOptions())  # type: ignore[attr-defined]
    assert solver.name == "cpsat" and "benchmarks/cpsat.py" in why
