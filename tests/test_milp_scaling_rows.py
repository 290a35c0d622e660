"""Row scaling of the MILP (solvers/milp/scaling.py): rows that define a quantity (latency, period,
energy, cost, start times) are divided by that quantity's coefficient, so the solver's absolute
feasibility tolerance stays the tolerance of the quantity in its own scaled unit.

Before, every row was divided by its largest coefficient. In the sequential latency row a transfer
over a slow link costs up to ~140 times the single-device latency, so the latency coefficient was
1/140 and HiGHS's 1e-8 tolerance let the latency sit ~1e-6 (relative) below the value of its
placement: ``resnet_like(500, seed=4)`` on ``system(8, seed=4)`` without option removal ended as
``error`` (formulation 4.9e-6 below the evaluator), as did the 2,000 x 8 models of the slow tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from formulation import generators as gen
from formulation.milp.build import build_milp
from formulation.model import Instance
from solvers.milp.scaling import MAX_ROW_RANGE, row_scales, scale_model
from solvers.milp.scip_solver import ScipSolver
from solvers.milp.solver import HighsSolver
from solvers.options import SolverOptions
from solvers.result import Status


def resnet(n: int, k: int, seed: int) -> Instance:
    return gen.instance(gen.resnet_like(n, seed=seed), gen.system(k, seed=seed))


def test_row_scales_by_hand() -> None:
    # columns: 0 a quantity (latency), 1 and 2 dimensionless (placement, transfer)
    A = sp.csr_matrix(
        np.array(
            [
                [1.0, -0.5, -120.0],  # latency row: divided by the latency coefficient, not by 120
                [0.0, 3.0, 5.0],  # no quantity: divided by its largest coefficient
                [0.0, 0.0, 0.0],  # empty: left as is
                [1e-9, 1.0, 0.0],  # quantity coefficient past the range: divided by 1 / MAX_ROW_RANGE
                [2.0, 1.0, 0.0],  # quantity coefficient already the largest
            ]
        )
    )
    quantity = np.array([True, False, False])
    assert row_scales(A, quantity).tolist() == [1.0, 5.0, 1.0, 1.0 / MAX_ROW_RANGE, 2.0]


def test_latency_row_keeps_the_latency_coefficient_one() -> None:
    """The model where the old scaling divided the latency row by ~115 times the latency's coefficient."""
    ctx = build_milp(resnet(200, 8, 1))
    sc = scale_model(ctx)
    row = ctx.model.row_blocks["latency_def"].start
    coefs = sc.A.getrow(row).toarray().ravel()
    L = ctx.metric_cols["latency"]
    assert coefs[L] == pytest.approx(1.0, rel=1e-15)
    # the transfers of this instance do dominate the row (what made the old scaling lose precision)
    assert np.abs(coefs).max() == pytest.approx(115.2, rel=1e-3)


@pytest.mark.parametrize(("n", "seed"), [(200, 1), (500, 4)])
def test_unreduced_resnet_agrees_with_the_evaluator(n: int, seed: int) -> None:
    """500 x 8, seed 4: ``error`` before (4.9e-6 below the evaluator); 200 x 8, seed 1: 2.1e-7 below."""
    res = HighsSolver().solve(resnet(n, 8, seed), SolverOptions(time_limit_s=120, raw={"reduce": False}))
    assert res.status == Status.OPTIMAL, res.message
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-9)
    assert res.objective is not None and res.bound <= res.objective


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["highs", "scip"])
def test_resnet_2000_by_8_seed_4(engine: str) -> None:
    """Proved optimal in seconds after option removal; ``error`` before (2.4e-6 below the evaluator)."""
    solver = HighsSolver() if engine == "highs" else ScipSolver()
    res = solver.solve(resnet(2000, 8, 4), SolverOptions(time_limit_s=120))
    assert res.status == Status.OPTIMAL, res.message
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-9)


@pytest.mark.slow
def test_unreduced_resnet_2000_by_8_seed_1() -> None:
    """At its time limit: a feasible placement whose formulation value is the evaluator's (``error`` before)."""
    res = HighsSolver().solve(resnet(2000, 8, 1), SolverOptions(time_limit_s=60, raw={"reduce": False}))
    assert res.status in (Status.OPTIMAL, Status.FEASIBLE), res.message
    assert res.solver_objective == pytest.approx(res.objective, rel=1e-9)
