"""Solving again at the scales of the placement found, shared by every MILP engine.

The model is scaled by the metrics of the best single-device (or fastest-device) placement
(:func:`formulation.numerics.unit_scales`), so the engines' absolute tolerances (feasibility 1e-8
on the scaled rows, :data:`solvers.milp.backend.FEAS_TOL`; SCIP's zero 1e-9) are relative to that
placement. Where the optimum lies many orders of magnitude below it (a layer
allowed on one device only, whose other placements cross a link of 1e-35 B/s), the optimum is below
those tolerances: the engine reads its bound as 0 (gap 1, reported ``feasible``) or the
integer-fixed LP as 0 (an objective the evaluator contradicts). A placement whose time, energy or
cost is below :data:`RESCALE_BELOW` of the scale is therefore solved again with the scales taken
from that placement (an upper bound on the optimum, as the single-device placements are), after the
range check of :func:`formulation.numerics.check_range` at those scales; where that check refuses (a
coefficient more than 1e6 times the new scale) and the first solve proved nothing, the instance is
refused with that check's message (the bad-input error, exit code 2) instead of an unproven answer.

:class:`solvers.milp.solver.MilpSolver` uses it for ``highs``, ``scip`` and ``pyomo:*``:
:func:`session` around the whole solve, :func:`run` around the build-and-solve step, :func:`apply`
where the built model is handed to the engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import numpy as np

from formulation import numerics
from formulation.evaluator import batch_metrics
from formulation.milp.context import MilpContext
from formulation.model import Instance, IntArray
from solvers.base import RawSolution
from solvers.milp.scaling import unit_scales
from solvers.options import SolverOptions
from solvers.result import Result, Status, Termination

#: A placement whose time, energy or cost lies below this fraction of the unit scale the model was
#: scaled by is solved again at the scales of that placement (see the module docstring).
RESCALE_BELOW = 1e-3
#: At most this many such further solves (each moves the scales to the best placement found).
MAX_RESCALES = 3
#: Units whose scale a placement far below it leaves too coarse for the engines' tolerances.
RESCALED_UNITS = ("time", "energy", "cost")


def weighed(inst: Instance) -> list[str]:
    """The units of :data:`RESCALED_UNITS` the objective weighs (time always: every metric and
    deadline is built on the model's times)."""
    terms = {m for m, w in inst.problem.objective.terms().items() if w}
    return ["time"] + [u for u in ("energy", "cost") if u in terms]


@dataclass
class Scales:
    """Per solve: the scales to build the model with (None: the instance's own), those it was built
    with, and the range check's refusal of the scales of a placement found."""

    given: dict[str, float] | None = None
    used: dict[str, float] | None = None
    refusal: numerics.NumericallyUnsafe | None = None
    history: list[dict[str, float]] = field(default_factory=list)


_SCALES: ContextVar[Scales | None] = ContextVar("milp_scales", default=None)


@contextmanager
def session() -> Iterator[Scales]:
    """The scales of one solve, seen by :func:`run` and :func:`apply` within it."""
    scales = Scales()
    token = _SCALES.set(scales)
    try:
        yield scales
    finally:
        _SCALES.reset(token)


def check_result(scales: Scales, res: Result) -> Result:
    """``res``, unless the scales of the placement found were refused and nothing was proven.

    Raises
    ------
    NumericallyUnsafe
        Where the optimum lies below the engine's tolerances at the instance's scales and the model
        at the scales of the placement found is out of the safe range.
    """
    if scales.refusal is not None and res.status not in (Status.OPTIMAL, Status.INFEASIBLE):
        raise scales.refusal
    return res


def apply(ctx: MilpContext) -> None:
    """Build ``ctx``'s scaling at the scales of the current solve (where one is given), and record
    the scales the model is built with."""
    scales = _SCALES.get()
    if scales is None:
        return
    if scales.given is not None and ctx.units is None:
        ctx.units = dict(scales.given)
    scales.used = unit_scales(ctx)


def placement_reference(inst: Instance, P: IntArray) -> numerics.Reference | None:
    """Placement ``P``'s objective, latency, period, energy, cost and peak memory, as the reference
    of :func:`formulation.numerics.unit_scales` (None where ``P`` is infeasible or not finite)."""
    parallel = inst.problem.execution == "parallel"
    with np.errstate(all="ignore"):
        bm = batch_metrics(inst, np.asarray(P, dtype=np.int64)[None, :], parallel=parallel)
        obj = float(bm.objective()[0])
        if not (bool(bm.feasible()[0]) and math.isfinite(obj)):
            return None
        return numerics.Reference(
            obj,
            float(bm.latency()[0]),
            float(bm.period[0]),
            float(bm.energy_total()[0]),
            float(bm.cost[0]),
            float(bm.memory[0].max(initial=0.0)),
        )


def run(
    inst: Instance, options: SolverOptions, engine: str, solve_once: Callable[[Instance, SolverOptions], RawSolution]
) -> RawSolution:
    """``solve_once``, then again at the scales of the placement found while they are far below
    those the model was built with (at most :data:`MAX_RESCALES` times, within the time limit)."""
    scales = _SCALES.get()
    if scales is None or inst.workload is not None or inst.problem.scenarios is not None:
        # outside a session, version 2 and network states (scaled by their own builders)
        return solve_once(inst, options)
    t0 = time.perf_counter()
    raw = solve_once(inst, options)
    for _ in range(MAX_RESCALES):
        units = _placement_scales(inst, raw, scales, engine)
        if units is None:
            break
        left = None if options.time_limit_s is None else options.time_limit_s - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            break
        scales.given = units
        scales.history.append({u: units[u] for u in RESCALED_UNITS})
        again = solve_once(inst, replace(options, time_limit_s=left))
        if again.placement is None:  # nothing found in the time left: the first answer stands
            break
        again.extra["rescaled"] = list(scales.history)
        again.build_time_s += raw.build_time_s
        again.solve_time_s += raw.solve_time_s
        raw = again
    return raw


def _placement_scales(inst: Instance, raw: RawSolution, scales: Scales, engine: str) -> dict[str, float] | None:
    """The model's scales with each time, energy or cost scale more than ``1 / RESCALE_BELOW``
    times that of the placement in ``raw`` replaced by the placement's, where there is such a
    scale and the range check admits them (a refusal is kept in ``scales``); else None."""
    if raw.placement is None or scales.used is None:
        return None
    ref = placement_reference(inst, np.asarray(raw.placement, dtype=np.int64))
    if ref is None:
        return None
    own = numerics.unit_scales(inst, ref)
    used = scales.used
    low = [u for u in weighed(inst) if 0 < own[u] < RESCALE_BELOW * used[u]]
    if not low:
        return None
    units = {**used, **{u: own[u] for u in low}}
    # the reference whose scales (formulation.numerics.unit_scales) are ``units``
    at = numerics.Reference(
        ref.upper_bound, units["time"], units["time"], units["energy"], units["cost"], units["bytes"]
    )
    prepared, _empty = numerics.prepare(inst, engine)
    try:
        numerics.check_range(prepared, engine, at)
    except numerics.NumericallyUnsafe as exc:
        if raw.termination != Termination.OPTIMAL:
            return None  # stopped short (time limit): its honest status stands
        scales.refusal = numerics.NumericallyUnsafe(
            exc.file,
            exc.path,
            exc.value,
            f"{exc.expected} (at the scales of the best placement found, objective {ref.upper_bound:.6g}: "
            f"below {RESCALE_BELOW:g} of the scales of the single-device placements, where {engine}'s "
            "tolerances cannot prove it)",
        )
        return None
    return units
