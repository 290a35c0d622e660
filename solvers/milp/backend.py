"""The interface every MILP backend implements, and what one run returns.

A backend receives a built :class:`formulation.milp.context.MilpContext`, scales it
(:mod:`solvers.milp.scaling`), hands it to a solver, and speaks SI units on the way out. It stays
loaded between runs so the objective and metric bounds can change without a rebuild (the
epsilon-constraint sweeps of :mod:`solvers.milp.pareto`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.objective import check_weights
from formulation.model import FloatArray, IntArray
from solvers.milp.scaling import Scaling, scale_model
from solvers.result import Termination

#: Relative gap HiGHS and the Pyomo solvers are asked to close when the user sets none; far below
#: the evaluator comparison tolerance (1e-6), so "optimal" means equal to brute force.
DEFAULT_GAP = 1e-7
#: Feasibility tolerance on the scaled model (rows of order one). 1e-9 made HiGHS 1.16's presolve
#: prove wrong optima on pipelined-throughput models (tests/test_milp_special.py,
#: ``test_highs_tolerance_regression``); 1e-7 lets objectives drift past the evaluator's 1e-6 check.
FEAS_TOL = 1e-8
#: Tolerance of the second attempt when the first one ends "infeasible" (HiGHS's usual order).
RETRY_FEAS_TOL = 1e-7
#: Agreement of the engine's objective with the evaluator's, relative to the model's scale (see
#: :meth:`MilpBackend.agreement_atol`): the evaluator comparison's relative tolerance (1e-6), taken at
#: the scale instead of at the objective, a hundred times :data:`FEAS_TOL`.
AGREEMENT_AT_SCALE = 1e-6


@dataclass
class RunSettings:
    """Solver-independent settings of one run."""

    time_limit_s: float | None = None
    gap: float | None = None
    threads: int | None = None
    seed: int | None = None
    verbose: bool = False


@dataclass
class BackendRun:
    """Outcome of one run, in SI units.

    Attributes
    ----------
    native_status : str
        The solver's own status code (a key of a map in :mod:`solvers.milp.status`).
    termination : Termination
    values : array or None
        Column values of the best solution found.
    objective : float or None
        Its objective value.
    bound : float
        Best proven lower bound (``-inf`` when none).
    gap : float
        The solver's relative gap at the end (``inf`` when unknown).
    """

    native_status: str
    termination: Termination
    values: FloatArray | None
    objective: float | None
    bound: float
    gap: float
    solve_time_s: float
    log: str = ""


class MilpBackend(ABC):
    """A loaded model in one solver (see the module docstring)."""

    def __init__(self, ctx: MilpContext) -> None:
        self.ctx = ctx
        self.scaling: Scaling = scale_model(ctx)
        self.cost_si = ctx.model.cost()
        self.ub_si = ctx.model.col_ub()

    # -- model changes ------------------------------------------------------------------------
    def set_objective(self, weights: Mapping[str, float]) -> None:
        """Minimise ``sum w * metric`` (metric columns must exist in the model)."""
        check_weights(weights)
        c = self.cost_si * 0.0
        for name, w in weights.items():
            if w:
                c[self.ctx.metric_cols[name]] += float(w)
        self.cost_si = c
        self._load_objective()

    def set_metric_ub(self, metric: str, ub_si: float) -> None:
        """Bound a metric column from above (``math.inf`` restores the built bound)."""
        col = self.ctx.metric_cols[metric]
        built = float(self.ctx.model.col_ub()[col])
        self._load_col_ub(col, min(built, ub_si))

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _load_objective(self) -> None:
        """Push ``self.cost_si`` to the solver (scaled)."""

    @abstractmethod
    def _load_col_ub(self, col: int, ub_si: float) -> None:
        """Push one column upper bound (SI) to the solver."""

    @abstractmethod
    def set_warm_start(self, placement: IntArray) -> bool:
        """Offer a placement as a starting solution; False when the backend cannot use it."""

    @abstractmethod
    def run(self, settings: RunSettings) -> BackendRun:
        """Solve with the current objective and bounds."""

    @abstractmethod
    def fixed_objective(self, fixed: Mapping[int, float]) -> float | None:
        """The objective after fixing the integer columns in ``fixed`` and solving the LP left."""

    # -- shared helpers ---------------------------------------------------------------------
    def agreement_atol(self) -> float:
        """Absolute tolerance of the objective's agreement with the evaluator's: :data:`AGREEMENT_AT_SCALE`
        times the objective at the unit scales, ``sum_j |c_j| s_j`` over the columns with a unit.

        The scaled model holds each quantity (latency, an energy, a cost) to :data:`FEAS_TOL` of its
        unit scale per row, whatever the optimum: an energy optimum of exactly 0 on a model of
        energy scale 0.1 J reads 5e-11 J (the idle energy ``p_idle (L - busy)`` of a latency
        defined within that tolerance), which no relative tolerance of 0 admits.
        """
        unit = np.array([u != "1" for u in self.ctx.model.units()], dtype=bool)
        at_scale = np.abs(self.cost_si[unit]) * self.scaling.col_scale[unit]
        return AGREEMENT_AT_SCALE * float(at_scale.sum()) if at_scale.size else 0.0

    def objective_scale(self) -> tuple[FloatArray, float]:
        """Scaled objective vector and its scale ``w`` (see :meth:`Scaling.cost`)."""
        return self.scaling.cost(self.cost_si)

    @staticmethod
    def finite(x: float | None) -> float:
        """``x`` if finite, else ``-inf`` (for bounds)."""
        return float(x) if x is not None and math.isfinite(x) else -math.inf
