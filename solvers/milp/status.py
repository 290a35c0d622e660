"""Literal maps from every native status code of each backend to :class:`solvers.result.Termination`.

Each map names every member of the backend's enumeration (a test walks them all, so a new code
in a future release fails loudly instead of being misread). Our models are bounded below (every
metric is non-negative), so "infeasible or unbounded" means infeasible.
"""

from __future__ import annotations

from solvers.result import Termination as T  # noqa: N817  (keeps the literal tables readable)

#: highspy ``HighsModelStatus`` member name -> Termination.
HIGHS_STATUS: dict[str, T] = {
    "kNotset": T.ERROR,
    "kLoadError": T.ERROR,
    "kModelError": T.ERROR,
    "kPresolveError": T.ERROR,
    "kSolveError": T.ERROR,
    "kPostsolveError": T.ERROR,
    "kModelEmpty": T.OPTIMAL,
    "kOptimal": T.OPTIMAL,
    "kInfeasible": T.INFEASIBLE,
    "kUnboundedOrInfeasible": T.INFEASIBLE,
    "kUnbounded": T.UNBOUNDED,
    "kObjectiveBound": T.INTERRUPTED,
    "kObjectiveTarget": T.INTERRUPTED,
    "kTimeLimit": T.TIME_LIMIT,
    "kIterationLimit": T.ITERATION_LIMIT,
    "kUnknown": T.INTERRUPTED,
    "kSolutionLimit": T.ITERATION_LIMIT,
    "kInterrupt": T.INTERRUPTED,
    "kMemoryLimit": T.INTERRUPTED,
    "kHighsInterrupt": T.INTERRUPTED,
}

#: ``pyomo.contrib.solver`` ``TerminationCondition`` member name -> Termination.
PYOMO_CONTRIB_STATUS: dict[str, T] = {
    "convergenceCriteriaSatisfied": T.OPTIMAL,
    "maxTimeLimit": T.TIME_LIMIT,
    "iterationLimit": T.ITERATION_LIMIT,
    "objectiveLimit": T.INTERRUPTED,
    "minStepLength": T.ERROR,
    "unbounded": T.UNBOUNDED,
    "provenInfeasible": T.INFEASIBLE,
    "locallyInfeasible": T.INFEASIBLE,
    "infeasibleOrUnbounded": T.INFEASIBLE,
    "error": T.ERROR,
    "interrupted": T.INTERRUPTED,
    "licensingProblems": T.ERROR,
    "emptyModel": T.OPTIMAL,
    "unknown": T.INTERRUPTED,
}

#: legacy ``pyomo.opt.TerminationCondition`` member name -> Termination.
PYOMO_LEGACY_STATUS: dict[str, T] = {
    "unknown": T.INTERRUPTED,
    "maxTimeLimit": T.TIME_LIMIT,
    "maxIterations": T.ITERATION_LIMIT,
    "minFunctionValue": T.INTERRUPTED,
    "minStepLength": T.ERROR,
    "globallyOptimal": T.OPTIMAL,
    "locallyOptimal": T.OPTIMAL,
    "feasible": T.INTERRUPTED,
    "optimal": T.OPTIMAL,
    "maxEvaluations": T.ITERATION_LIMIT,
    "other": T.INTERRUPTED,
    "unbounded": T.UNBOUNDED,
    "infeasible": T.INFEASIBLE,
    "infeasibleOrUnbounded": T.INFEASIBLE,
    "invalidProblem": T.ERROR,
    "intermediateNonInteger": T.INTERRUPTED,
    "noSolution": T.COMPLETED,  # searched, found none, proved nothing
    "solverFailure": T.ERROR,
    "internalSolverError": T.ERROR,
    "error": T.ERROR,
    "userInterrupt": T.INTERRUPTED,
    "resourceInterrupt": T.INTERRUPTED,
    "licensingProblems": T.ERROR,
}


#: pyscipopt ``Model.getStatus()`` string (the lower-cased members of ``PY_SCIP_STATUS``) -> Termination.
#: ``gaplimit`` is the relative gap asked for: :mod:`solvers.milp.scip_direct` reads it as optimal when
#: that gap is the default one (1e-7, as HiGHS reports ``kOptimal``) or the gap reached is at most 1e-6.
SCIP_STATUS: dict[str, T] = {
    "unknown": T.INTERRUPTED,
    "userinterrupt": T.INTERRUPTED,
    "nodelimit": T.ITERATION_LIMIT,
    "totalnodelimit": T.ITERATION_LIMIT,
    "stallnodelimit": T.ITERATION_LIMIT,
    "timelimit": T.TIME_LIMIT,
    "memlimit": T.INTERRUPTED,
    "gaplimit": T.GAP_LIMIT,
    "sollimit": T.ITERATION_LIMIT,
    "bestsollimit": T.ITERATION_LIMIT,
    "restartlimit": T.ITERATION_LIMIT,
    "primallimit": T.INTERRUPTED,
    "duallimit": T.INTERRUPTED,
    "optimal": T.OPTIMAL,
    "infeasible": T.INFEASIBLE,
    "unbounded": T.UNBOUNDED,
    "inforunbd": T.INFEASIBLE,
}


def termination(table: dict[str, T], native: str) -> T:
    """Look ``native`` up in ``table``; an unmapped code is an error (never a guess)."""
    return table.get(native, T.ERROR)
