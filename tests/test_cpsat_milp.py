"""CP-SAT and the MILP (HiGHS) agree on instances beyond brute force's reach.

Two independent exact engines: on every instance both prove optimal, their optima are equal
(within CP-SAT's worst-case scaling error plus HiGHS's relative gap of 1e-7), and each one's
proven bound is at most the other's optimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation import generators as gen
from formulation.evaluator import batch_metrics
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.options import SolverOptions
from solvers.registry import get_solver, names
from solvers.result import Status

pytestmark = pytest.mark.skipif("highs" not in names(), reason="the MILP solver 'highs' is not registered")


def medium_instance(seed: int, execution: str, objective: str, constrained: bool) -> Instance:
    """A seeded layered DAG of 6-14 layers on 2-4 devices (formulation.generators).

    ``constrained`` adds memory limits, a deadline between two placements' latencies and
    ``max_devices``; weighted objectives mix cost with latency (the source device is free, so cost
    alone is often trivially 0).
    """
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(6, 15)), int(rng.integers(2, 5))
    graph = gen.layered_dag(n, width=3, seed=seed)
    system = gen.system(k, seed=seed, link_prob=0.7, memory=constrained, sink=bool(rng.random() < 0.7))
    if objective == "weighted":
        obj = Objective("weighted", {"cost": 1.0, "latency": float(rng.uniform(0.01, 1)), "energy": 0.01})
    else:
        obj = Objective(objective)  # type: ignore[arg-type]
    inst = gen.instance(graph, system, Problem(obj, execution))  # type: ignore[arg-type]
    if not constrained:
        return inst
    P = rng.integers(0, k, size=(2, n))
    L = batch_metrics(inst, P).latency()
    deadline = float(np.nanmean(np.where(np.isfinite(L), L, np.nan))) if np.isfinite(L).any() else None
    cons = Constraints(memory=True, deadline_s=deadline, max_devices=int(rng.integers(1, k + 1)))
    return inst.with_problem(Problem(obj, execution, None, cons))  # type: ignore[arg-type]


@settings(max_examples=30, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 2**31 - 1),
    execution=st.sampled_from(["sequential", "parallel"]),
    objective=st.sampled_from(["latency", "throughput", "energy", "weighted"]),
    constrained=st.booleans(),
)
def test_equals_milp_when_both_prove_optimal(seed: int, execution: str, objective: str, constrained: bool) -> None:
    inst = medium_instance(seed, execution, objective, constrained)
    opts = SolverOptions(time_limit_s=20, seed=0)
    cp = get_solver("cpsat").solve(inst, opts)
    milp = get_solver("highs").solve(inst, opts)
    assert cp.status != Status.ERROR, cp.message
    # An error of the MILP is a bug of the MILP (reported, not masked): the cross-check needs both.
    assert milp.status != Status.ERROR, f"highs failed on {inst.name} (seed {seed}): {milp.message}"
    if Status.INFEASIBLE in (cp.status, milp.status):
        # One proof of infeasibility: the other engine must not hold a (feasible) placement.
        assert cp.status == milp.status == Status.INFEASIBLE, (cp.status, milp.status)
        return
    if cp.status != Status.OPTIMAL or milp.status != Status.OPTIMAL:
        return  # a time limit on this shared machine proves nothing either way
    assert cp.objective is not None and milp.objective is not None
    tol = 2 * cp.extra["scaling_error"] + 1e-6 * max(1e-12, abs(milp.objective))
    assert abs(cp.objective - milp.objective) <= tol, (cp.objective, milp.objective)
    assert cp.bound <= milp.objective + tol
    assert milp.bound <= cp.objective + tol
