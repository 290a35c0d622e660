"""``scip``: the MILP of :func:`formulation.milp.build_milp` solved by SCIP (pyscipopt).

The third exact engine next to ``highs`` and ``cpsat``: the same formulation, scaling, decoding,
warm start and evaluator check as ``highs`` (:class:`solvers.milp.solver.MilpSolver`), a different
branch-and-cut (:mod:`solvers.milp.scip_direct`). Its capabilities are the builder's, hence those of
``highs``: variants and exits (docs/instance-format.md §11.5) are the model of
:func:`formulation.choices_model.build_choice_model`, solved by SCIP (:mod:`solvers.choices_milp`).
Where the optimum lies far below the scales of the single-device placements, it is solved again at
the scales of the placement found, or refused, as every MILP engine (:mod:`solvers.milp.rescale`).
"""

from __future__ import annotations

from dataclasses import replace

from formulation.milp.context import MilpContext
from formulation.model import Instance
from solvers.base import RawSolution
from solvers.milp.backend import MilpBackend
from solvers.milp.solver import RAW_KEYS, MilpSolver
from solvers.options import SolverOptions


class ScipSolver(MilpSolver):
    """The MILP solved by SCIP through pyscipopt (library inside the wheel; no executable).

    Options: time limit, gap, seed (``randomization/randomseedshift``), threads (more than one runs
    SCIP's concurrent solver with ``parallel/maxnthreads``), warm start (a partial solution SCIP completes);
    raw ``pairs``, ``symmetry``, ``auto_warm_start`` as for ``highs``.
    """

    name = "scip"
    description = "exact MILP (every objective, constraint and latency mode) solved by SCIP"
    capabilities = replace(MilpSolver.capabilities, choices=True)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        from solvers.milp.scip_direct import scip_available

        return scip_available()

    @classmethod
    def version(cls) -> str:
        from solvers.milp.scip_direct import scip_version

        return scip_version()

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from solvers.choices_milp import solve_choices_milp

            return solve_choices_milp(inst, options, engine="scip")
        return super()._solve(inst, options)

    def raw_keys(self) -> frozenset[str]:
        return RAW_KEYS - {"interface"}

    def make_backend(self, ctx: MilpContext, options: SolverOptions) -> MilpBackend:
        from solvers.milp.scip_direct import ScipDirect

        return ScipDirect(ctx)
