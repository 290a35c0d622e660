"""CP-SAT parameters every solve of a :mod:`formulation.cp` model uses.

OR-Tools 9.15 has two bugs in ``ActivityBoundHelper::RemoveEnforcementThatMakesConstraintTrivial``
(``ortools/sat/presolve_util.cc``), reached from the "linear + at most one" inclusion presolve:
Boolean coefficients are summed into 32-bit integers (google/or-tools issue #5293) and an early
``break`` leaves activity bounds incomplete (pull request #5294). Either can drop an enforcement
literal, turning a conditional row into an unconditional one, so that CP-SAT certifies a wrong
optimum. Our cross-check against ``brute`` hit it: an energy-budget row with Boolean coefficients
summing to ~1e14 made presolve discard the optimal placement. ``presolve_inclusion_work_limit = 0``
switches that presolve step off and avoids both; keep it until a release with the fix is pinned.
"""

from __future__ import annotations

from typing import Any

from ortools.sat.python import cp_model

#: Parameters applied to every solve (before user overrides).
SAFE_PARAMETERS: dict[str, Any] = {"presolve_inclusion_work_limit": 0}


def apply_safe_parameters(solver: cp_model.CpSolver) -> None:
    """Set :data:`SAFE_PARAMETERS` on ``solver``."""
    for key, value in SAFE_PARAMETERS.items():
        setattr(solver.parameters, key, value)
