"""The one ``Result`` record every backend returns, and the one gap function."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from formulation.evaluator import Evaluation


class Status(str, Enum):
    """Solution status (docs/instance-format.md §6.2): what we hold, independent of why the solver stopped."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    TIME_LIMIT_NO_SOLUTION = "time_limit_no_solution"
    ERROR = "error"


class Termination(str, Enum):
    """Why the solver stopped, kept apart from :class:`Status`."""

    OPTIMAL = "optimal"
    """Search finished with a proof of optimality."""
    INFEASIBLE = "infeasible"
    """Search finished with a proof that no feasible placement exists."""
    COMPLETED = "completed"
    """A heuristic or baseline ran to its end (no optimality claim)."""
    TIME_LIMIT = "time_limit"
    GAP_LIMIT = "gap_limit"
    """Stopped because the requested relative gap was reached."""
    ITERATION_LIMIT = "iteration_limit"
    INTERRUPTED = "interrupted"
    UNBOUNDED = "unbounded"
    ERROR = "error"


def compute_gap(objective: float | None, bound: float | None) -> float:
    """Relative optimality gap of a minimisation, the only gap formula in dnnpart.

    ``gap = (objective - bound) / max(|objective|, 1e-12)``, clipped below at 0; ``0`` when the two
    differ by no more than floating-point noise (``1e-12 * max(1, |objective|)``, so that an optimum
    of exactly 0 with a bound of -1e-17 is proven), ``inf`` when either is missing or infinite.

    Parameters
    ----------
    objective : float or None
        Value of the best placement found (the evaluator's value).
    bound : float or None
        Proven lower bound on the optimum.
    """
    if objective is None or bound is None or math.isnan(objective) or math.isnan(bound):
        return math.inf
    if math.isinf(objective) or math.isinf(bound):
        return math.inf
    if objective - bound <= 1e-12 * max(1.0, abs(objective)):
        return 0.0
    return max(0.0, (objective - bound) / max(abs(objective), 1e-12))


@dataclass
class Result:
    """The outcome of one solve, whatever the backend.

    Attributes
    ----------
    instance, solver : str
        Instance name and the solver's registry name (``auto`` records the chosen ``method``).
    status : Status
        What we hold (optimal, feasible, infeasible, time_limit_no_solution, error).
    termination : Termination
        Why the solver stopped.
    objective : float or None
        The evaluator's objective value of ``placement``.
    solver_objective : float or None
        The value the backend itself reported (kept to show agreement with the evaluator).
    bound, gap : float
        Best proven lower bound and :func:`compute_gap` of objective and bound.
    placement, schedule : dict
        ``{layer: device}`` and, in parallel mode, ``{layer: start seconds}``.
    metrics : Evaluation or None
        Every metric from the evaluator.
    wall_time_s, build_time_s, solve_time_s : float
        Total, model-building and solving seconds.
    options : dict
        Options used (after defaults).
    log : str
        Captured solver output.
    message : str
        Human explanation (error text, or why ``auto`` chose ``method``).
    extra : dict
        Backend-specific facts (e.g. CP-SAT scaling error, node counts).
    """

    instance: str
    solver: str
    status: Status
    termination: Termination
    solver_version: str = ""
    method: str = ""
    objective: float | None = None
    solver_objective: float | None = None
    bound: float = -math.inf
    gap: float = math.inf
    placement: dict[str, str] = field(default_factory=dict)
    schedule: dict[str, float] = field(default_factory=dict)
    metrics: Evaluation | None = None
    wall_time_s: float = 0.0
    build_time_s: float = 0.0
    solve_time_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_solution(self) -> bool:
        """A placement is held (status optimal or feasible)."""
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def to_dict(self, *, with_log: bool = False) -> dict[str, Any]:
        """JSON-ready dict with the keys of docs/instance-format.md §6.1 (and more)."""

        def num(x: float | None) -> float | str | None:
            if x is None:
                return None
            if math.isinf(x):
                return "inf" if x > 0 else "-inf"
            if math.isnan(x):
                return None
            return x

        out: dict[str, Any] = {
            "instance": self.instance,
            "solver": self.solver,
            "solver_version": self.solver_version,
            "method": self.method or self.solver,
            "status": self.status.value,
            "termination": self.termination.value,
            "objective": num(self.objective),
            "solver_objective": num(self.solver_objective),
            "bound": num(self.bound),
            "gap": num(self.gap),
            "placement": self.placement,
            "schedule": self.schedule,
            "metrics": self.metrics.to_dict() if self.metrics is not None else None,
            "wall_time_s": self.wall_time_s,
            "build_time_s": self.build_time_s,
            "solve_time_s": self.solve_time_s,
            "options": self.options,
            "message": self.message,
            "extra": self.extra,
        }
        if with_log:
            out["log"] = self.log
        return out
