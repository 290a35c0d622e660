"""Complete Pareto fronts of two metrics: every non-dominated point, each proven, on the MILP.

Method: the epsilon-constraint method with strict improvement (Haimes, Lasdon and Wismer 1971;
for the lexicographic stages and the stepping rule, Mavrotas, "Effective implementation of the
epsilon-constraint method in multi-objective mathematical programming problems", Applied
Mathematics and Computation 213(2), 2009, and Bérubé, Gendreau and Potvin, "An exact
epsilon-constraint method for bi-objective combinatorial optimization problems", EJOR 194(1),
2009):

1. the end ``z_end``: ``min f2``, then ``min f1`` subject to ``f2 <= f2*``
   (:func:`solvers.milp.pareto.lexicographic`): no point has a smaller ``f2``;
2. ``z_1``: ``min f1``, then ``min f2`` subject to ``f1 <= f1*``;
3. ``z_{i+1}``: ``min f1`` subject to ``f2 <= f2(z_i) - delta``, then ``min f2`` subject to
   ``f1 <= f1*`` (and the same bound on ``f2``), until ``f2(z_i)`` is within ``delta`` of
   ``f2(z_end)``.

Each point is proven non-dominated by its two stages: the first shows that no placement with
``f2 <= f2(z_i) - delta`` has a smaller ``f1``, the second that none with that ``f1`` has a
smaller ``f2``. No point is skipped when ``delta`` is smaller than the gap between consecutive
values of ``f2`` on the front: ``delta = DELTA_RTOL * max|f2|`` over the front (``f2(z_1)``), a
hundred times the MILP's feasibility tolerance on its scaled rows and ten times its default gap, so
the front is complete at a resolution of :data:`DELTA_RTOL` of the largest ``f2``, and values of
``f1`` closer than :data:`solvers.milp.pareto.LEX_RTOL` count as equal. ``f2(z_i)`` is the
evaluator's value of the placement found, so the step never depends on solver round-off, and
stepping ends at ``z_end``'s level without an infeasible solve (a metric of 0 needs no tolerance
below it). The number of solves is ``2 * (points + 1)``: ``z_end`` is found twice, once as the end
and once by stepping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from formulation.milp.build import build_milp
from formulation.model import Instance
from solvers.milp.backend import RunSettings
from solvers.milp.pareto import (
    ParetoFront,
    ParetoPoint,
    _backend,
    _non_dominated,
    _point,
    check_objectives,
    lexicographic,
)
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: Relative step below the previous point's second objective (the front's resolution).
DELTA_RTOL = 1e-6
#: Absolute floor of the step, in the metric's SI unit (a cost of 0 USD still steps).
DELTA_ATOL = 1e-12
#: Most points one complete front may hold before it stops (and says so).
MAX_POINTS = 10_000


def complete_front(
    inst: Instance,
    objectives: Sequence[str],
    *,
    solver: str = "highs",
    options: SolverOptions | None = None,
    max_points: int = MAX_POINTS,
) -> ParetoFront:
    """Every non-dominated point of two metrics (module docstring), sorted by the first.

    Parameters
    ----------
    inst : Instance
    objectives : two metric names
        ``latency``, ``throughput`` (the period), ``energy`` or ``cost``.
    solver : str
        ``highs`` (default) or ``pyomo:NAME``.
    options : SolverOptions, optional
        ``time_limit_s`` applies to each solve; ``gap`` defaults to 0 (each stage is proven).
    max_points : int
        Stop after this many points (the message then says the front may be incomplete).

    Raises
    ------
    UnsupportedProblem
        On bad objectives or a solver that is not a MILP backend.
    """
    f1, f2 = check_objectives(objectives)
    if inst.workload is not None:
        raise UnsupportedProblem(f"instance {inst.name!r} is a version-2 workload: Pareto fronts use the MILP of "
                                 "version 1 (docs/instance-format.md §9)")
    if max_points < 1:
        raise UnsupportedProblem(f"max_points {max_points}: expected at least 1")
    options = options or SolverOptions()
    gap = 0.0 if options.gap is None else options.gap
    t0 = time.perf_counter()
    front = ParetoFront(inst.name, (f1, f2), solver)
    ctx = build_milp(inst, objective={f1: 1.0}, extra_metrics=(f2,))
    if ctx.model.infeasible_reasons:
        front.message = "infeasible: " + "; ".join(ctx.model.infeasible_reasons)
        return front
    backend = _backend(solver, ctx, options)
    settings = RunSettings(options.time_limit_s, gap, options.threads, options.seed, options.verbose)
    ends: list[Termination] = []
    last = lexicographic(backend, settings, front, f2, f1, None, ends)
    if last is None:
        front.message = (
            "no feasible placement" if ends[-1] == Termination.INFEASIBLE else f"the end point ended {ends[-1].value}"
        )
        front.wall_time_s = time.perf_counter() - t0
        return front
    z_end = _point(ctx, last[0], last[1], None, (f1, f2))
    found: list[ParetoPoint] = [z_end]
    f2_lo = z_end.values[f2]
    eps: float | None = None
    step = 0.0
    complete = True
    while True:
        got = lexicographic(backend, settings, front, f1, f2, eps, ends)
        if got is None:  # only tolerance can hide z_end here; proven empty when infeasible
            complete = ends[-1] == Termination.INFEASIBLE
            break
        pt = _point(ctx, got[0], got[1], eps, (f1, f2))
        prev = pt.values[f2]
        if not pt.optimal and ends[-1] == Termination.OPTIMAL and prev <= f2_lo + 1e-9 * abs(f2_lo) + DELTA_ATOL:
            # the second stage failed numerically, but nothing has a smaller f2 than z_end's
            pt.optimal = True
        found.append(pt)
        if step == 0.0:  # the first point has the largest f2 on the front: it fixes the resolution
            step = DELTA_RTOL * max(abs(prev), abs(f2_lo)) + DELTA_ATOL
        if not math.isfinite(prev) or prev <= f2_lo + step:
            break
        if len(found) > max_points:
            complete = False
            front.message = f"stopped after {max_points} points: the front may hold more"
            break
        eps = prev - step if eps is None else min(prev, eps) - step
    backend.set_metric_ub(f2, math.inf)
    front.points = _non_dominated(found, (f1, f2))
    front.complete = complete and all(p.optimal for p in found)
    if not front.complete and not front.message:
        front.message = "a stage was not proven optimal: the front may miss points"
    front.wall_time_s = time.perf_counter() - t0
    return front


__all__ = ["DELTA_RTOL", "complete_front"]
