"""One check shared by the property tests: an exact solver against brute force on one instance."""

from __future__ import annotations

import pytest

from formulation.evaluator import evaluate
from formulation.model import Instance
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Result, Status


def agrees_with_brute(inst: Instance, solver: str, options: SolverOptions) -> Result | None:
    """``solver`` finds brute force's verdict on ``inst``: infeasible alike, or optimal with the same
    objective (1e-6 relative), a bound not above it, and a placement the evaluator judges feasible at
    the reported value. Returns the solver's result (None when both find it infeasible)."""
    ref = solve(inst, "brute")
    res = solve(inst, solver, options)
    assert res.status != Status.ERROR, res.message
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, res.message
        return None
    assert ref.status == Status.OPTIMAL and res.status == Status.OPTIMAL, res.message
    assert ref.objective is not None
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12
    ev = evaluate(inst, res.placement)  # the evaluator is the judge of the decoded placement
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12)
    return res
