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
    """Proven: no feasible placement exists (only exact methods say so)."""
    NO_SOLUTION_FOUND = "no_solution_found"
    """A heuristic or baseline ended without a feasible placement; nothing is proven."""
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


def json_number(x: float | None) -> float | None:
    """A float as a JSON number: finite values unchanged, NaN and infinities ``None`` (JSON ``null``).

    The convention of every JSON dnnpart writes: ``null`` stands for a quantity that is missing,
    undefined or infinite. In a result, ``bound: null`` means no finite lower bound was proven (-inf),
    ``gap: null`` an infinite gap (no solution or no bound), ``objective: null`` no solution.
    :func:`number_from_json` reads such values back (and the strings ``"inf"``/``"-inf"`` that
    results written before this convention hold).
    """
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def json_safe(obj: Any) -> Any:
    """``obj`` with every float passed through :func:`json_number` (dicts, lists and tuples walked)."""
    if isinstance(obj, float):
        return json_number(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def number_from_json(value: Any, missing: float = math.nan) -> float:
    """A number read from result JSON: ``null`` is ``missing``; legacy strings ``"inf"``, ``"-inf"`` parse.

    Raises
    ------
    ValueError
        When ``value`` is neither a number, ``null`` nor a numeric string.
    """
    if value is None:
        return missing
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


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
    conflict : dict or None
        For a proven infeasible instance, the conflicting constraints and the relaxations that
        restore feasibility (:mod:`solvers.conflict`); ``None`` otherwise.
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
    conflict: dict[str, Any] | None = None

    @property
    def has_solution(self) -> bool:
        """A placement is held (status optimal or feasible)."""
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def to_dict(self, *, with_log: bool = False) -> dict[str, Any]:
        """JSON-ready dict with the keys of docs/instance-format.md §6.1 (and more)."""

        out: dict[str, Any] = {
            "instance": self.instance,
            "solver": self.solver,
            "solver_version": self.solver_version,
            "method": self.method or self.solver,
            "status": self.status.value,
            "termination": self.termination.value,
            "objective": json_number(self.objective),
            "solver_objective": json_number(self.solver_objective),
            "bound": json_number(self.bound),
            "gap": json_number(self.gap),
            "placement": self.placement,
            "schedule": self.schedule,
            "metrics": json_safe(self.metrics.to_dict()) if self.metrics is not None else None,
            "wall_time_s": self.wall_time_s,
            "build_time_s": self.build_time_s,
            "solve_time_s": self.solve_time_s,
            "options": self.options,
            "message": self.message,
            "extra": json_safe(self.extra),
            "conflict": json_safe(self.conflict),
        }
        if with_log:
            out["log"] = self.log
        return out
