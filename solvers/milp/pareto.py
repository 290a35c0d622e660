"""Pareto fronts of two metrics by the epsilon-constraint method on the MILP.

Method (Haimes, Lasdon and Wismer, "On a bicriterion formulation of the problems of integrated
system identification and system optimization", IEEE Trans. Systems, Man, and Cybernetics 1(3),
1971; lexicographic end points and grid as in Mavrotas, "Effective implementation of the
epsilon-constraint method in multi-objective mathematical programming problems", Applied
Mathematics and Computation 213(2), 2009):

1. the two end points: ``min f1`` then ``min f2`` subject to ``f1 <= f1*`` (lexicographic), and the
   same with the roles swapped; they give the range ``[f2_lo, f2_hi]`` of ``f2`` on the front;
2. ``points - 2`` values ``eps`` evenly spaced strictly inside that range: ``min f1`` subject to
   ``f2 <= eps``, then ``min f2`` subject to ``f1 <= f1(eps)`` so that every point returned is
   non-dominated (the second stage removes weakly dominated optima of the first);
3. every point is re-evaluated by the evaluator; duplicates and dominated points are removed.

The model is built once with both metric columns; each stage only changes the objective and one
column bound of the loaded model (``highspy`` changes costs and bounds in place). The problem's
constraints (memory, deadline, budgets, ...) hold at every point; its own objective is ignored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from formulation.evaluator import Evaluation, evaluate
from formulation.milp.build import build_milp
from formulation.milp.decode import placement_of, schedule_of
from formulation.model import OBJECTIVES, Instance
from solvers.milp.backend import MilpBackend, RunSettings
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: Relative slack of the lexicographic second stage (``f1 <= f1* (1 + LEX_RTOL)``): well above the
#: solver's tolerances, far below any difference worth a separate Pareto point.
LEX_RTOL = 1e-7


@dataclass
class ParetoPoint:
    """One non-dominated placement with its metrics (the evaluator's values)."""

    values: dict[str, float]
    """The two objectives' values, by metric name (``throughput`` is the period in seconds)."""
    placement: dict[str, str]
    schedule: dict[str, float]
    metrics: Evaluation
    optimal: bool
    """Both stages were solved to optimality (else the point may be dominated by an unseen one)."""
    epsilon: float | None
    """The bound on the second objective that produced the point (None for the end points)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "values": self.values,
            "placement": self.placement,
            "schedule": self.schedule,
            "optimal": self.optimal,
            "epsilon": self.epsilon,
            "metrics": self.metrics.to_dict(),
        }


@dataclass
class ParetoFront:
    """The non-dominated set, sorted by the first objective."""

    instance: str
    objectives: tuple[str, str]
    solver: str
    points: list[ParetoPoint] = field(default_factory=list)
    solves: int = 0
    wall_time_s: float = 0.0
    message: str = ""
    complete: bool = False
    """Every non-dominated point is in :attr:`points`, proven (:mod:`solvers.milp.pareto_complete`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "instance": self.instance,
            "objectives": list(self.objectives),
            "solver": self.solver,
            "solves": self.solves,
            "complete": self.complete,
            "wall_time_s": self.wall_time_s,
            "message": self.message,
            "points": [p.to_dict() for p in self.points],
        }


def check_objectives(objectives: Sequence[str]) -> tuple[str, str]:
    """Two distinct metric names, or :class:`UnsupportedProblem` saying what is expected."""
    objs = tuple(o.strip() for o in objectives)
    if len(objs) != 2 or objs[0] == objs[1] or any(o not in OBJECTIVES for o in objs):
        raise UnsupportedProblem(
            f"--objectives {','.join(objs)!r}: expected two different metrics among {', '.join(OBJECTIVES)}"
        )
    return objs[0], objs[1]


def _backend(solver: str, ctx: Any, options: SolverOptions) -> MilpBackend:
    from solvers.milp.solver import MilpSolver
    from solvers.registry import get_solver

    s = get_solver(solver)
    if not isinstance(s, MilpSolver):
        raise UnsupportedProblem(f"Pareto fronts need a MILP solver (highs or pyomo:NAME), not {solver!r}")
    ok, why = s.available()
    if not ok:
        raise UnsupportedProblem(f"solver {solver!r} is not available: {why}")
    return s.make_backend(ctx, options)


def pareto_front(
    inst: Instance,
    objectives: Sequence[str],
    points: int = 10,
    *,
    solver: str = "highs",
    options: SolverOptions | None = None,
) -> ParetoFront:
    """The Pareto front of two metrics (see the module docstring).

    Parameters
    ----------
    inst : Instance
    objectives : two metric names
        ``latency``, ``throughput`` (the period), ``energy`` or ``cost``.
    points : int
        Number of epsilon-constraint points including the two ends (at least 2); fewer are
        returned when several coincide.
    solver : str
        ``highs`` (default) or ``pyomo:NAME``.
    options : SolverOptions, optional
        ``time_limit_s`` and ``gap`` apply to each solve; ``threads`` and ``seed`` as usual.

    Raises
    ------
    UnsupportedProblem
        On bad objectives, ``points < 2`` or a solver that is not a MILP backend.
    """
    f1, f2 = check_objectives(objectives)
    if inst.workload is not None:
        raise UnsupportedProblem(f"instance {inst.name!r} is a version-2 workload: Pareto fronts use the MILP of "
                                 "version 1 (docs/instance-format.md §9)")
    if points < 2:
        raise UnsupportedProblem(f"--points {points}: expected at least 2 (the two end points)")
    options = options or SolverOptions()
    t0 = time.perf_counter()
    front = ParetoFront(inst.name, (f1, f2), solver)
    ctx = build_milp(inst, objective={f1: 1.0}, extra_metrics=(f2,))
    if ctx.model.infeasible_reasons:
        front.message = "infeasible: " + "; ".join(ctx.model.infeasible_reasons)
        return front
    backend = _backend(solver, ctx, options)
    settings = RunSettings(options.time_limit_s, options.gap, options.threads, options.seed, options.verbose)
    raw: list[tuple[Any, bool, float | None]] = []

    def lexi(first: str, second: str, eps: float | None) -> tuple[Any, bool] | None:
        return lexicographic(backend, settings, front, first, second, eps)

    end_a = lexi(f1, f2, None)
    end_b = lexi(f2, f1, None)
    if end_a is None or end_b is None:
        front.message = "no feasible placement" if end_a is None and end_b is None else "an end point failed"
        backend.set_metric_ub(f2, math.inf)
        front.wall_time_s = time.perf_counter() - t0
        return front
    raw.append((end_a[0], end_a[1], None))
    raw.append((end_b[0], end_b[1], None))
    hi = float(end_a[0][ctx.metric_cols[f2]])
    lo = float(end_b[0][ctx.metric_cols[f2]])
    if hi > lo * (1 + LEX_RTOL):
        for i in range(1, points - 1):
            eps = hi - i * (hi - lo) / (points - 1)
            got = lexi(f1, f2, eps)
            if got is not None:
                raw.append((got[0], got[1], eps))
    backend.set_metric_ub(f2, math.inf)
    front.points = _non_dominated([_point(ctx, v, opt, eps, (f1, f2)) for v, opt, eps in raw], (f1, f2))
    front.wall_time_s = time.perf_counter() - t0
    return front


def lexicographic(
    backend: MilpBackend,
    settings: RunSettings,
    front: ParetoFront,
    first: str,
    second: str,
    eps: float | None,
    terminations: list[Termination] | None = None,
) -> tuple[Any, bool] | None:
    """``min first`` subject to ``second <= eps``, then ``min second`` subject to
    ``first <= first* (1 + LEX_RTOL)`` (also under ``second <= eps``).

    Returns the column values of the second stage (of the first where the second found nothing)
    and whether both stages proved optimality; None when the first stage found no placement (why:
    the first stage's termination, appended to ``terminations``). Counts both solves in
    ``front.solves``; restores the bound on ``first`` (the one on ``second`` stays ``eps``).
    """
    backend.set_metric_ub(second, math.inf if eps is None else eps)
    backend.set_metric_ub(first, math.inf)
    backend.set_objective({first: 1.0})
    a = backend.run(settings)
    front.solves += 1
    if terminations is not None:
        terminations.append(a.termination)
    if a.values is None or a.objective is None:
        return None
    backend.set_objective({second: 1.0})
    backend.set_metric_ub(first, a.objective * (1 + LEX_RTOL) + 1e-300)
    b = backend.run(settings)
    front.solves += 1
    backend.set_metric_ub(first, math.inf)
    best = b if b.values is not None else a
    optimal = a.termination == Termination.OPTIMAL and b.termination == Termination.OPTIMAL
    return best.values, optimal


def _point(ctx: Any, values: Any, optimal: bool, eps: float | None, objs: tuple[str, str]) -> ParetoPoint:
    inst = ctx.inst
    P = placement_of(ctx, values)
    sched = schedule_of(ctx, P, values)
    ev = evaluate(inst, P, sched[0] if sched else None)
    return ParetoPoint(
        values={o: ev.metric(o) for o in objs},
        placement=ev.placement,
        schedule=ev.schedule if inst.problem.execution == "parallel" else {},
        metrics=ev,
        optimal=optimal,
        epsilon=eps,
    )


def _non_dominated(pts: list[ParetoPoint], objs: tuple[str, str]) -> list[ParetoPoint]:
    """Feasible points not dominated by another (ties within 1e-9 relative count as equal)."""

    def le(a: float, b: float) -> bool:
        return a <= b + 1e-9 * max(abs(a), abs(b))

    pts = sorted((p for p in pts if p.metrics.feasible), key=lambda p: (p.values[objs[0]], p.values[objs[1]]))
    out: list[ParetoPoint] = []
    for p in pts:
        dominated = any(
            le(q.values[objs[0]], p.values[objs[0]]) and le(q.values[objs[1]], p.values[objs[1]]) for q in out
        )
        if not dominated:
            out.append(p)
    return out
