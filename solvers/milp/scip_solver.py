"""``scip``: the MILP of :func:`formulation.milp.build_milp` solved by SCIP (pyscipopt).

The third exact engine next to ``highs`` and ``cpsat``: the same formulation, scaling, decoding,
warm start and evaluator check as ``highs`` (:class:`solvers.milp.solver.MilpSolver`), a different
branch-and-cut (:mod:`solvers.milp.scip_direct`). Its capabilities are the builder's, hence those of
``highs``: variants and exits (docs/instance-format.md §11.5) are the model of
:func:`formulation.choices_model.build_choice_model`, solved by SCIP (:mod:`solvers.choices_milp`).

Scale of the answer. The model is scaled by the metrics of the best single-device (or
fastest-device) placement (:func:`formulation.numerics.unit_scales`), so SCIP's absolute
tolerances (feasibility 1e-8 on the scaled rows, zero 1e-9) are relative to that placement. Where
the optimum lies many orders of magnitude below it (a layer allowed on one device only, whose other
placements cross a link of 1e-35 B/s), the optimum is below those tolerances: SCIP then reads its
bound as 0 (gap 1, reported ``feasible``) or the integer-fixed LP as 0 (an objective the evaluator
contradicts). A placement whose time, energy or cost is below :data:`RESCALE_BELOW` of the scale is
therefore solved again with the scales taken from that placement (an upper bound on the optimum, as
the single-device placements are), after the range check of
:func:`formulation.numerics.check_range` at those scales; where that check refuses (a coefficient
more than 1e6 times the new scale) and the first solve proved nothing, the instance is refused
with that check's message (the bad-input error, exit code 2) instead of an unproven answer.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from dataclasses import dataclass, field, replace

import numpy as np

from formulation import numerics
from formulation.evaluator import batch_metrics
from formulation.milp.context import MilpContext
from formulation.model import Instance, IntArray
from solvers.base import RawSolution
from solvers.milp.backend import MilpBackend
from solvers.milp.scaling import unit_scales
from solvers.milp.solver import RAW_KEYS, MilpSolver
from solvers.options import SolverOptions
from solvers.result import Result, Status, Termination

#: A placement whose time, energy or cost lies below this fraction of the unit scale the model was
#: scaled by is solved again at the scales of that placement (see the module docstring).
RESCALE_BELOW = 1e-3
#: At most this many such further solves (each moves the scales to the best placement found).
MAX_RESCALES = 3
#: Units whose scale a placement far below it leaves too coarse for SCIP's tolerances.
RESCALED_UNITS = ("time", "energy", "cost")


def _weighed(inst: Instance) -> list[str]:
    """The units of :data:`RESCALED_UNITS` the objective weighs (time always: every metric and
    deadline is built on the model's times)."""
    terms = {m for m, w in inst.problem.objective.terms().items() if w}
    return ["time"] + [u for u in ("energy", "cost") if u in terms]


@dataclass
class _Scales:
    """Per call: the scales to build the model with (None: the instance's own), those it was built
    with, and the range check's refusal of the scales of a placement found."""

    given: dict[str, float] | None = None
    used: dict[str, float] | None = None
    refusal: numerics.NumericallyUnsafe | None = None
    history: list[dict[str, float]] = field(default_factory=list)


_SCALES: ContextVar[_Scales | None] = ContextVar("scip_scales", default=None)


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

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """As :meth:`solvers.base.Solver.solve`; raises the range check's refusal of the scales of
        the placement found where the solve proved nothing (see the module docstring).

        Raises
        ------
        NumericallyUnsafe
            Where the optimum lies below SCIP's tolerances at the instance's scales and the model at
            the scales of the placement found is out of the safe range.
        """
        scales = _Scales()
        token = _SCALES.set(scales)
        try:
            res = super().solve(inst, options)
        finally:
            _SCALES.reset(token)
        if scales.refusal is not None and res.status not in (Status.OPTIMAL, Status.INFEASIBLE):
            raise scales.refusal
        return res

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from solvers.choices_milp import solve_choices_milp

            return solve_choices_milp(inst, options, engine="scip")
        scales = _SCALES.get()
        if scales is None or inst.workload is not None or inst.problem.scenarios is not None:
            # version 2 and network states: scaled by their own builders
            return super()._solve(inst, options)
        t0 = time.perf_counter()
        raw = super()._solve(inst, options)
        for _ in range(MAX_RESCALES):
            units = self._placement_scales(inst, raw, scales)
            if units is None:
                break
            left = None if options.time_limit_s is None else options.time_limit_s - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                break
            scales.given = units
            scales.history.append({u: units[u] for u in RESCALED_UNITS})
            again = super()._solve(inst, replace(options, time_limit_s=left))
            if again.placement is None:  # nothing found in the time left: the first answer stands
                break
            again.extra["rescaled"] = list(scales.history)
            again.build_time_s += raw.build_time_s
            again.solve_time_s += raw.solve_time_s
            raw = again
        return raw

    @staticmethod
    def _placement_scales(inst: Instance, raw: RawSolution, scales: _Scales) -> dict[str, float] | None:
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
        low = [u for u in _weighed(inst) if 0 < own[u] < RESCALE_BELOW * used[u]]
        if not low:
            return None
        units = {**used, **{u: own[u] for u in low}}
        # the reference whose scales (formulation.numerics.unit_scales) are ``units``
        at = numerics.Reference(
            ref.upper_bound, units["time"], units["time"], units["energy"], units["cost"], units["bytes"]
        )
        prepared, _empty = numerics.prepare(inst, "scip")
        try:
            numerics.check_range(prepared, "scip", at)
        except numerics.NumericallyUnsafe as exc:
            if raw.termination != Termination.OPTIMAL:
                return None  # stopped short (time limit): its honest status stands
            scales.refusal = numerics.NumericallyUnsafe(
                exc.file,
                exc.path,
                exc.value,
                f"{exc.expected} (at the scales of the best placement found, objective {ref.upper_bound:.6g}: "
                f"below {RESCALE_BELOW:g} of the scales of the single-device placements, where SCIP's "
                "tolerances cannot prove it)",
            )
            return None
        return units

    def raw_keys(self) -> frozenset[str]:
        return RAW_KEYS - {"interface"}

    def make_backend(self, ctx: MilpContext, options: SolverOptions) -> MilpBackend:
        from solvers.milp.scip_direct import ScipDirect

        scales = _SCALES.get()
        if scales is not None:
            if scales.given is not None and ctx.units is None:
                ctx.units = dict(scales.given)
            scales.used = unit_scales(ctx)
        return ScipDirect(ctx)
