"""The solver interface: one template method turns every backend's raw answer into a checked Result.

A backend implements :meth:`Solver._solve` and returns a :class:`RawSolution`. :meth:`Solver.solve`
checks capabilities and options *before* calling it, then re-evaluates the placement with the
evaluator (the judge), compares the backend's own objective with the evaluator's, and fills status,
bound and gap in one place.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from formulation.evaluator import evaluate
from formulation.model import Instance
from solvers.options import Capabilities, OptionNotSupported, SolverOptions, UnsupportedProblem
from solvers.result import Result, Status, Termination, compute_gap

#: Relative agreement required between a backend's objective and the evaluator's.
OBJECTIVE_RTOL = 1e-6
#: Absolute floor of that agreement, for objectives near 0 (float noise only).
OBJECTIVE_ATOL = 1e-12
#: Largest gap at which an "optimal" termination is reported as a proven optimum.
OPTIMAL_GAP = 1e-6


def _tolerance(value: float, extra_atol: float) -> float:
    """Allowed difference between a backend's objective and the evaluator's value ``value``."""
    return OBJECTIVE_RTOL * abs(value) + OBJECTIVE_ATOL + extra_atol


@dataclass
class RawSolution:
    """What a backend hands back to :meth:`Solver.solve`.

    Attributes
    ----------
    termination : Termination
        Why the backend stopped.
    placement : mapping or array, optional
        Best placement found (``{layer: device}`` or device indices by layer index).
    schedule : mapping, optional
        ``{layer: start}`` for parallel latency when the backend computed a schedule.
    solver_objective : float, optional
        The backend's own value of its placement (checked against the evaluator).
    bound : float
        Proven lower bound (``-inf`` when none); exact backends that prove optimality may leave it
        unset and the objective is used.
    objective_atol : float
        Extra absolute tolerance for the objective check (e.g. CP-SAT's integer scaling error).
    agreement_atol : float
        Extra absolute tolerance of the two agreement checks only (the backend's objective and bound
        against the evaluator's value), proving nothing: a MILP engine's tolerance on its scaled
        model, absolute in the model's units, where an optimum of 0 reads 5e-11.
    """

    termination: Termination
    placement: Mapping[str, str] | npt.NDArray[np.int64] | None = None
    schedule: Mapping[str, float] | None = None
    solver_objective: float | None = None
    bound: float = -math.inf
    objective_atol: float = 0.0
    agreement_atol: float = 0.0
    build_time_s: float = 0.0
    solve_time_s: float = 0.0
    log: str = ""
    message: str = ""
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    choices: Mapping[str, Any] | None = None
    """The configuration chosen with the placement, ``{variants: {layer: name}, exit: name}``, for an
    instance with variants or exits (docs/instance-format.md §11.4); None otherwise."""


class Solver(ABC):
    """Base class of every backend.

    Subclasses set the class attributes and implement :meth:`_solve`.

    Attributes
    ----------
    name : str
        Registry name.
    exact : bool
        True when the method proves optimality (it must then agree with ``brute``).
    capabilities : Capabilities
        What the method solves; checked before anything is built.
    supported_options : frozenset
        Names of :class:`SolverOptions` fields the method honours; any other option that is set
        raises :class:`OptionNotSupported`.
    """

    name: ClassVar[str] = ""
    exact: ClassVar[bool] = False
    capabilities: ClassVar[Capabilities] = Capabilities()
    supported_options: ClassVar[frozenset[str]] = frozenset({"time_limit_s"})
    description: ClassVar[str] = ""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether the backend can run here, and why not."""
        return True, ""

    @classmethod
    def version(cls) -> str:
        """Version string of the backend (library version for external solvers)."""
        from importlib.metadata import version

        try:
            return f"dnnpart {version('dnnpart')}"
        except Exception:
            return "dnnpart"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Raise before any model is built if the instance or an option is out of scope.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
        """
        ok, why = self.available()
        if not ok:
            raise UnsupportedProblem(f"solver {self.name!r} is not available: {why}")
        reasons = self.capabilities.reasons(inst)
        if reasons:
            raise UnsupportedProblem(
                f"solver {self.name!r} cannot solve instance {inst.name!r}: it does not support "
                + "; ".join(reasons)
            )
        extra = options.requested() - self.supported_options
        if extra:
            raise OptionNotSupported(
                f"solver {self.name!r} cannot honour option(s) {sorted(extra)} "
                f"(it supports {sorted(self.supported_options) or 'none'})"
            )

    @abstractmethod
    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        """Backend-specific solve; see :class:`RawSolution`."""

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """Check, solve, re-evaluate and report.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
            Before anything is built.
        """
        options = options or SolverOptions()
        self.check(inst, options)
        t0 = time.perf_counter()
        log = io.StringIO()
        try:
            if options.verbose:
                raw = self._solve(inst, options)
            else:
                with contextlib.redirect_stdout(log):
                    raw = self._solve(inst, options)
        except Exception as exc:  # a backend failure becomes an error row, never a crash
            return Result(
                instance=inst.name,
                solver=self.name,
                status=Status.ERROR,
                termination=Termination.ERROR,
                solver_version=self.version(),
                wall_time_s=time.perf_counter() - t0,
                options=options.to_dict(),
                log=log.getvalue() + traceback.format_exc(),
                message=f"{type(exc).__name__}: {exc}",
            )
        res = finalize(self, inst, raw, options)
        res.wall_time_s = time.perf_counter() - t0
        if log.getvalue():
            res.log = log.getvalue() + res.log
        return res


def finalize(solver: Solver, inst: Instance, raw: RawSolution, options: SolverOptions) -> Result:
    """Turn a :class:`RawSolution` into a :class:`Result` judged by the evaluator."""
    res = Result(
        instance=inst.name,
        solver=solver.name,
        status=Status.ERROR,
        termination=raw.termination,
        solver_version=solver.version(),
        method=raw.method or solver.name,
        solver_objective=raw.solver_objective,
        bound=raw.bound,
        build_time_s=raw.build_time_s,
        solve_time_s=raw.solve_time_s,
        options=options.to_dict(),
        log=raw.log,
        message=raw.message,
        extra=dict(raw.extra),
    )
    if raw.placement is None:
        if raw.termination == Termination.INFEASIBLE and solver.exact:
            res.status = Status.INFEASIBLE
        elif raw.termination == Termination.TIME_LIMIT:
            res.status = Status.TIME_LIMIT_NO_SOLUTION
        elif raw.termination in (Termination.COMPLETED, Termination.INFEASIBLE):
            # only an exact method proves infeasibility; a heuristic merely found nothing
            res.status = Status.NO_SOLUTION_FOUND
            res.message = res.message or "no feasible placement found (not a proof of infeasibility)"
        else:
            res.status = Status.ERROR
        res.gap = math.inf
        return res
    sched = raw.schedule if inst.problem.execution == "parallel" else None
    ev = evaluate(inst, raw.placement, sched, choices=raw.choices)
    res.metrics = ev
    res.placement = ev.placement
    res.schedule = ev.schedule if inst.problem.execution == "parallel" else {}
    res.objective = ev.objective
    if not math.isfinite(ev.objective):
        # A placement of infinite (or undefined) objective is no solution: brute skips such
        # placements, so an exact engine that returns one has either failed or met an instance with
        # no finite placement, which it must prove as infeasibility instead.
        res.gap = math.inf
        if solver.exact or raw.termination == Termination.OPTIMAL:
            res.status = Status.ERROR
            res.message = (
                f"the solver returned a placement whose objective is {ev.objective!r} (not finite); "
                "it is not reported as a solution"
            )
        else:
            res.status = Status.INFEASIBLE
            res.message = res.message or f"the placement found has objective {ev.objective!r} (not finite)"
        return res
    if raw.solver_objective is not None and not math.isfinite(raw.solver_objective):
        res.status = Status.ERROR
        res.gap = math.inf
        res.message = f"the solver reported the non-finite objective {raw.solver_objective!r}"
        return res
    problems = []
    if raw.solver_objective is not None and math.isfinite(ev.objective):
        tol = _tolerance(ev.objective, raw.objective_atol + raw.agreement_atol)
        if abs(raw.solver_objective - ev.objective) > tol:
            problems.append(
                f"the solver reported objective {raw.solver_objective!r} but the evaluator gives "
                f"{ev.objective!r} for its placement"
            )
    if not ev.feasible:
        reasons = "; ".join(v.message for v in ev.violations)
        if solver.exact or raw.termination == Termination.OPTIMAL:
            problems.append(f"the placement violates constraints: {reasons}")
        else:
            res.status = Status.NO_SOLUTION_FOUND
            res.message = res.message or f"the placement found violates constraints: {reasons}"
            res.gap = math.inf
            return res
    if raw.termination == Termination.OPTIMAL and not math.isfinite(raw.bound):
        res.bound = ev.objective
    if (
        math.isfinite(res.bound)
        and res.bound > ev.objective + _tolerance(ev.objective, raw.objective_atol + raw.agreement_atol)
    ):
        problems.append(f"the reported bound {res.bound!r} exceeds the evaluated objective {ev.objective!r}")
    if problems:
        res.status = Status.ERROR
        res.message = "; ".join(problems)
        res.gap = math.inf
        return res
    res.bound = min(res.bound, ev.objective) if math.isfinite(res.bound) else res.bound
    res.gap = compute_gap(ev.objective, res.bound)
    res.status = Status.OPTIMAL if raw.termination == Termination.OPTIMAL else Status.FEASIBLE
    allowed_gap = max(options.gap or 0.0, OPTIMAL_GAP)
    # a backend that works on rounded data (CP-SAT's integer scaling) proves optimality up to its
    # declared worst-case rounding error, which it states in objective_atol; not where that error
    # covers the whole objective (bound at or below 0 under a positive objective: gap 1 or more,
    # nothing proven about the objective's magnitude)
    nothing_proven = res.bound <= 0 < ev.objective
    rounding = 2 * raw.objective_atol + _tolerance(ev.objective, 0.0)
    within_rounding = not nothing_proven and (ev.objective - res.bound) <= rounding
    if res.status == Status.OPTIMAL and res.gap > allowed_gap and not within_rounding:
        # a backend's "optimal" within its own tolerances is not a proof at ours
        res.status = Status.FEASIBLE
        res.message = (res.message + " " if res.message else "") + (
            f"the solver reported optimality but the gap to its bound is {res.gap:.3g}"
        )
    return res
