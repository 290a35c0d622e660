"""The MILP engines (``highs``, ``scip``, ``pyomo:NAME``) on version-2 workloads (docs/instance-format.md §9).

:class:`solvers.milp.solver.MilpSolver` hands a version-2 instance to :func:`check_workload` and
:func:`solve_workload`: the model of :func:`formulation.milp.workload.build_workload_milp` is loaded
in the solver's own backend (the same scaled matrix for all three), run, and decoded: the
placement from ``x``, under ``schedule`` the solver's task orders at their earliest starts
(:func:`formulation.milp.workload_schedule.retime`). The result's objective is the evaluator's;
``solver_objective`` is the formulation's own value of the placement (integer columns fixed, LP
re-solved), which the evaluator must match; the bound is the solver's dual bound, so a run stopped
by its time limit still reports a valid bound, and the gap comes from :func:`solvers.result.compute_gap`.

Unit scales (:mod:`solvers.milp.scaling`) come from the best of a few reference placements judged
by the version-2 evaluator: every single device, each request on its own source, each layer on its
fastest device. The best feasible one is also the warm start (SCIP and Pyomo take it natively; it
is kept whenever the solver stops without proving a better placement).

Generation requests (§9.10) are solved under ``none`` with their closed-form sums over the passes
(:func:`formulation.generation.phase_tables`, the same tables as the evaluator). Refused before
anything is built: ``share`` (a convex MINLP, declared in the capabilities), network states
(``schedule`` with generations is refused on load), negative objective weights (the maxima in the latency
aggregate, the utilisation and the idle energy are exact only where they are pushed down), and raw
options of the version-1 model.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from formulation.evaluator import Evaluation, evaluate
from formulation.generation import phase_tables
from formulation.milp.decode import integer_point, placement_of
from formulation.milp.workload import build_workload_milp
from formulation.model import Instance, IntArray
from formulation.numerics import Reference, unit_scales
from solvers.base import RawSolution
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Termination

if TYPE_CHECKING:
    from solvers.milp.solver import MilpSolver

#: Raw options the version-2 model takes (the others shape the version-1 model only).
WORKLOAD_RAW_KEYS = frozenset({"interface", "auto_warm_start"})


def check_workload(solver: MilpSolver, inst: Instance, options: SolverOptions) -> None:
    """Refuse what the version-2 MILP does not model exactly (module docstring).

    Raises
    ------
    UnsupportedProblem
    """
    wl = inst.workload
    assert wl is not None
    why = []
    if inst.problem.scenarios is not None:
        why.append("network states on a version-2 workload (no per-state copies in this model; brute solves them)")
    bad = sorted(set(options.raw) - WORKLOAD_RAW_KEYS)
    if bad:
        why.append(f"raw option(s) {bad} of the version-1 model (version 2 takes {sorted(WORKLOAD_RAW_KEYS)})")
    if why:
        raise UnsupportedProblem(f"solver {solver.name!r} cannot solve instance {inst.name!r}: " + "; ".join(why))


def reference_placements(inst: Instance) -> IntArray:
    """Every device alone, each request on its own source, each layer on its fastest allowed device."""
    wl = inst.workload
    assert wl is not None
    k, n = inst.k, inst.n
    rows = [np.full(n, d, dtype=np.int64) for d in range(k)]
    rows.append(np.array([wl.requests[int(r)].source for r in wl.request_of_layer], dtype=np.int64))
    with np.errstate(invalid="ignore"):
        tt = phase_tables(inst).time  # a generation's time over all its passes (§9.10)
        t = np.where(inst.placement_mask & np.isfinite(tt), tt, np.inf)
    rows.append(np.argmin(t, axis=1).astype(np.int64))
    return np.array(rows, dtype=np.int64).reshape(len(rows), n)


def reference(inst: Instance) -> tuple[Reference, IntArray | None]:
    """The best feasible reference placement's metrics (``inf`` where none is) and the placement."""
    inf = math.inf
    best: tuple[float, IntArray, Evaluation] | None = None
    for P in reference_placements(inst):
        ev = evaluate(inst, P)
        if ev.feasible and math.isfinite(ev.objective) and (best is None or ev.objective < best[0]):
            best = (float(ev.objective), P, ev)
    if best is None:
        return Reference(inf, inf, inf, inf, inf, inf), None
    value, P, ev = best
    assert inst.workload is not None
    # with rates the utilisation is a pure number: times keep the latency's scale
    period = ev.latency_s if inst.workload.rated else ev.period_s
    mem = max(ev.memory_bytes.values(), default=0.0)
    return Reference(value, ev.latency_s, period, ev.energy_total_j, ev.cost_usd, float(mem)), P


def solve_workload(solver: MilpSolver, inst: Instance, options: SolverOptions) -> RawSolution:
    """Build, run and decode the version-2 MILP (module docstring)."""
    from solvers.milp.solver import settings_of

    t0 = time.perf_counter()
    ref, start = reference(inst)
    ctx = build_workload_milp(inst, units=unit_scales(inst, ref))
    if ctx.model.infeasible_reasons:
        return RawSolution(
            Termination.INFEASIBLE,
            message="infeasible before solving: " + "; ".join(ctx.model.infeasible_reasons),
            build_time_s=time.perf_counter() - t0,
        )
    backend = solver.make_backend(ctx, options)
    build_time = time.perf_counter() - t0
    warm = None
    if options.warm_start is not None:
        warm = inst.placement_indices(options.warm_start)
    elif options.raw.get("auto_warm_start", True):
        warm = start
    native = backend.set_warm_start(warm) if warm is not None else False
    settings = settings_of(options)
    if settings.time_limit_s is not None:
        # the limit covers the whole solve, the reference placement and the build included
        settings = replace(settings, time_limit_s=max(0.1, settings.time_limit_s - (time.perf_counter() - t0)))
    run = backend.run(settings)
    extra: dict[str, object] = {
        "native_status": run.native_status,
        "solver_gap": run.gap,
        "warm_start": None if warm is None else ("native" if native else "incumbent"),
        **{f"model_{k}": v for k, v in ctx.model.stats().items()},
    }
    term, bound, message = run.termination, run.bound, ""
    P: IntArray | None = None
    sched: dict[str, float] | None = None
    objective = None
    if run.values is not None:
        P = placement_of(ctx, run.values)
        if ctx.scheduled:
            from formulation.milp.workload_schedule import retime, schedule_point

            sched, order, tasks = retime(ctx, P, run.values)
            point = schedule_point(ctx, P, order, tasks)
        else:
            point = integer_point(ctx, P, None)
        # the formulation's own value of the placement, free of slack the solver left in its columns
        objective = backend.fixed_objective(point)
    if warm is not None and term != Termination.OPTIMAL:
        ev_warm = evaluate(inst, warm)
        found = math.inf if P is None else evaluate(inst, P, sched).objective
        if ev_warm.feasible and ev_warm.objective < found:
            P, sched, objective = warm, None, None  # judged with the evaluator's default schedule
            extra["kept_warm_start"] = True
            if term == Termination.INFEASIBLE:  # the start is feasible: the claim was wrong
                term, bound = Termination.INTERRUPTED, -math.inf
                message = f"the solver reported infeasible ({run.native_status}) but the warm start is feasible"
    return RawSolution(
        term,
        placement=P,
        schedule=sched,
        solver_objective=objective,
        bound=bound if math.isfinite(bound) else -math.inf,
        build_time_s=build_time,
        solve_time_s=run.solve_time_s,
        log=run.log,
        message=message,
        extra=extra,
    )
