"""``cpsat``: the CP-SAT backend (Google OR-Tools; Perron and Didier, "CP-SAT", 2024).

An exact engine independent of the MILP: placement booleans, "send once" shipping literals, and for
parallel latency optional interval variables with one ``NoOverlap`` per device (see
:mod:`formulation.cp`). Times and objective coefficients are scaled to integers by
:mod:`formulation.cp.scaling`; the worst-case scaling error is in ``Result.extra["scaling_error"]``
and is the tolerance of the objective check (``RawSolution.objective_atol``), and the reported
bound is CP-SAT's best bound minus that error, so it is a proven bound on the true objective.
Where the gap that error leaves exceeds :data:`ROUNDING_GAP` (an optimum far below the horizon's
time scale), the instance is solved again with the placement found as warm start (at most
:data:`MAX_RESOLVES` times, while it beats the hint), and otherwise reported ``feasible``, not
``optimal`` (docs/cpsat.md, "Optima far below the horizon").

Options: ``time_limit_s``, ``gap`` (CP-SAT ``relative_gap_limit``), ``threads`` (workers; default
``max(2, min(8, cpu count))``: CP-SAT with one worker is much slower; a 200 x 4 model took over
20 s to reach a 1% gap with one worker, 0.3 s with two), ``seed``
(default 0; with more than one worker CP-SAT is not deterministic even with a fixed seed),
``warm_start`` (a placement used as the solution hint). ``raw`` keys:

* ``hint``: ``"auto"`` (default: the best of ``pipeline-dp``, ``heft``, ``local-search`` (when
  registered and applicable; local search only where pipeline-dp found nothing) and the simple
  placements of :func:`simple_placement`), ``"none"``, or a solver name;
* ``hint_time_s``: time for each hint heuristic (default: 10% of the limit, at most 10 s; 2 s
  without a limit);
* ``ticks_max``: time horizon in ticks (default: :func:`formulation.cp.scaling.ticks_max_for`);
* ``params``: CP-SAT parameters by name (``SatParameters``), applied last;
* ``symmetry``: break the symmetry between interchangeable devices (default false, see
  :func:`formulation.cp.constraints.add_symmetry_breaking`);
* ``pipeline_cuts``: under ``constraints.pipeline``, the stage order of interchangeable devices
  and the down-set rows (:func:`formulation.cp.pipeline.add_stage_order`, default true; they
  replace ``symmetry``'s rule there);
* ``archer``, ``archer_time_s``: the period bounds of :mod:`solvers.archer_bounds` (default on
  for the period objective; their time is taken from the limit): the objective is constrained
  from below by them (CP-SAT stops once its hint reaches them) and the reported bound is the
  larger of theirs and CP-SAT's, its origin in ``extra["bound_source"]``;
* ``rebalance``, ``rebalance_time_s``: on the period objective without ``contiguous`` or
  ``pipeline``, the automatic hint is improved by :mod:`solvers.rebalance` (default on, half of
  the limit, 5 s without one; it stops earlier once no group of devices helps).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from formulation.model import DEVICE_FEATURES, Instance, IntArray
from formulation.numerics import NO_FINITE_OPTION, prepare
from solvers import progress
from solvers.archer_bounds import combine, engine_bound
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, OptionNotSupported, SolverOptions, UnsupportedProblem
from solvers.result import Termination, compute_gap

RAW_KEYS = frozenset(
    {
        "hint",
        "hint_time_s",
        "ticks_max",
        "params",
        "symmetry",
        "archer",
        "archer_time_s",
        "pipeline_cuts",
        "rebalance",
        "rebalance_time_s",
    }
)
#: Default of the raw option ``pipeline_cuts`` (:func:`formulation.cp.pipeline.add_stage_order`).
PIPELINE_CUTS = True
#: At most this many further solves with the placement found as warm start, where the scaling error
#: leaves an "optimal" unproven at the allowed gap and that placement caps the time span tighter.
MAX_RESOLVES = 2
#: Largest relative gap that the scaling error may leave under an "optimal". A per-tick coefficient
#: of a weighted or idle-energy objective is resolved only to about 1e-6 of the horizon's value
#: (the 64-bit budget of formulation/cp/scaling.py), so proofs on ordinary random instances leave
#: gaps up to a few 1e-4 (2.3e-4 on a small energy optimum of tests/test_cpsat_brute.py); a gap
#: above this is reported as ``feasible`` with the proven bound.
ROUNDING_GAP = 1e-3
#: Status names of ``cp_model.CpSolverStatus`` and the termination each maps to (see map_status).
STATUS_NAMES = ("OPTIMAL", "FEASIBLE", "INFEASIBLE", "MODEL_INVALID", "UNKNOWN")


def default_workers() -> int:
    """``max(2, min(8, cpu count))``."""
    return max(2, min(8, os.cpu_count() or 2))


def map_status(status_name: str, has_solution: bool, objective: float, bound: float, gap_set: bool) -> Termination:
    """Map a CP-SAT status to a :class:`Termination`.

    ``OPTIMAL`` means "gap limit reached" when a gap was requested and the bound is below the
    objective (CP-SAT reports OPTIMAL when it stops on ``relative_gap_limit``); ``FEASIBLE`` and
    ``UNKNOWN`` mean a limit stopped the search (with and without a solution); ``MODEL_INVALID``
    is an error of the formulation.
    """
    if status_name == "OPTIMAL":
        if gap_set and bound < objective:
            return Termination.GAP_LIMIT
        return Termination.OPTIMAL
    if status_name == "FEASIBLE":
        return Termination.TIME_LIMIT
    if status_name == "INFEASIBLE":
        return Termination.INFEASIBLE
    if status_name == "UNKNOWN":
        return Termination.TIME_LIMIT
    return Termination.ERROR


class CpSatSolver(Solver):
    """Exact CP-SAT model of every objective, latency mode and constraint (interval scheduling)."""

    name = "cpsat"
    exact = True
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES),
        scenarios=True,
        choices=True,
        note="weighted objectives need non-negative weights",
    )
    supported_options = frozenset({"time_limit_s", "gap", "threads", "seed", "warm_start", "raw"})
    description = "exact CP-SAT model (OR-Tools); interval scheduling for parallel latency"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            return False, f"OR-Tools is not installed ({exc})"
        return True, ""

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        return f"OR-Tools {version('ortools')}"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from formulation.choices_model import unsupported

            if unsupported(inst):
                raise UnsupportedProblem(f"solver 'cpsat' cannot solve {inst.name!r}: " + "; ".join(unsupported(inst)))
        bad = {m: w for m, w in inst.problem.objective.terms().items() if w < 0}
        if bad:
            raise UnsupportedProblem(
                f"solver 'cpsat' cannot solve {inst.name!r}: negative objective weights {bad} "
                "(latency, period and idle time are modelled as lower envelopes)"
            )
        unknown = set(options.raw) - RAW_KEYS
        if unknown:
            raise OptionNotSupported(
                f"solver 'cpsat' has no raw option(s) {sorted(unknown)}; it takes {sorted(RAW_KEYS)}"
            )
        params = options.raw.get("params", {})
        if not isinstance(params, Mapping):
            raise OptionNotSupported(f"solver 'cpsat': raw 'params' must be a mapping, got {params!r}")
        from ortools.sat import sat_parameters_pb2

        fields = sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name
        wrong = sorted(set(params) - set(fields))
        if wrong:
            raise OptionNotSupported(f"solver 'cpsat': unknown CP-SAT parameter(s) {wrong}")
        if options.warm_start is not None:
            try:
                inst.placement_indices(options.warm_start)
            except ValueError as exc:
                raise OptionNotSupported(
                    f"solver 'cpsat': warm_start is not a placement of {inst.name!r}: {exc}"
                ) from exc
        prepare(inst, self.name)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from solvers.choices_cpsat import solve_choices_cpsat

            return solve_choices_cpsat(inst, options)
        t0 = time.perf_counter()
        raw = self._solve_once(inst, options)
        if inst.problem.scenarios is not None:
            # network states are scaled per state (formulation/cp/robust.py), with no makespan cap
            # taken from the hint; their "optimal" stays up to twice the scaling error
            return raw
        for _ in range(MAX_RESOLVES):
            if not (_rounding_exceeds(raw, options) and _tighter_hint(raw)):
                break
            left = None if options.time_limit_s is None else options.time_limit_s - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                break
            # the placement found as warm start: its objective caps the time span (build.time_caps)
            assert raw.placement is not None
            start = inst.placement_dict(inst.placement_indices(raw.placement))
            again = self._solve_once(inst, replace(options, warm_start=start, time_limit_s=left))
            if again.placement is None or again.objective_atol >= raw.objective_atol:
                break
            again.build_time_s += raw.build_time_s
            again.solve_time_s += raw.solve_time_s
            again.extra["resolved"] = [*raw.extra.get("resolved", []), raw.objective_atol]
            raw = again
        if _rounding_exceeds(raw, options):
            # CP-SAT's own OPTIMAL finished its search; else the incumbent met the bound only
            # within the rounding, before the time limit
            finished = raw.extra.get("cp_status") == "OPTIMAL"
            raw.termination = Termination.COMPLETED if finished else Termination.TIME_LIMIT
            raw.message = (raw.message + " " if raw.message else "") + (
                f"CP-SAT's optimum is proven only up to the model's integer rounding (worst-case error "
                f"{raw.objective_atol:.3g}; proven bound {raw.bound:.6g}): not optimal at the allowed gap"
            )
        return raw

    def _solve_once(self, inst: Instance, options: SolverOptions) -> RawSolution:
        from ortools.sat.python import cp_model

        from formulation.cp import apply_hint, build_cp_model, complete_hint, read_solution
        from formulation.cp.params import apply_safe_parameters

        t0 = time.perf_counter()
        # dominated options removed (same optimum), numbers checked by check()
        inst, empty = prepare(inst, self.name)
        if empty:
            return RawSolution(Termination.INFEASIBLE, message=NO_FINITE_OPTION)
        limit = options.time_limit_s
        log: list[str] = []
        hint = _hint(inst, options)
        hint_P, order, incumbent, hint_src = hint.placement, hint.order, hint.incumbent, hint.source
        # Off by default: CP-SAT detects the symmetry of interchangeable devices itself, and the
        # explicit rule slowed its proofs on the MSR workloads (docs/msr.md).
        symmetry = bool(options.raw.get("symmetry", False))
        # Stage order of interchangeable devices under ``pipeline`` (formulation/stage_order.py).
        stage = bool(options.raw.get("pipeline_cuts", PIPELINE_CUTS)) and inst.problem.constraints.pipeline
        if hint_P is not None and stage:
            # The stage-order constraints admit the renaming by stage order (same value).
            from formulation.stage_order import stage_canonical_placement

            hint_P = stage_canonical_placement(inst, hint_P)
        elif hint_P is not None and symmetry:
            # The symmetry-breaking constraints admit one relabelling of each placement (same value).
            from formulation.symmetry import canonical_placement

            hint_P = canonical_placement(inst, hint_P)
        ticks_max = options.raw.get("ticks_max")
        build = build_cp_model(
            inst, float(ticks_max) if ticks_max is not None else None, incumbent, symmetry, pipeline_cuts=stage
        )
        archer = engine_bound(inst, limit, dict(options.raw))
        if archer is not None and archer.best > 0:
            _floor_objective(build.model, build.objective, archer.best, build.scaling_error)
        hint_kind = "none"
        if hint_P is not None:
            full = complete_hint(build, hint_P, order, time_limit_s=_hint_time(options))
            if full is not None:
                apply_hint(build, full)
                hint_kind = "full"
            else:
                for (v, d), lit in build.placement.x.items():
                    build.model.add_hint(lit, int(hint_P[v] == d))
                hint_kind = "placement only (the hint violates the model)"
        log.append(f"hint: {hint_src} ({hint_kind}); incumbent objective {incumbent}")
        build_time = time.perf_counter() - t0

        solver = cp_model.CpSolver()
        apply_safe_parameters(solver)
        prm = solver.parameters
        workers = options.threads or default_workers()
        seed = options.seed if options.seed is not None else 0
        prm.num_workers = workers
        prm.random_seed = seed
        if limit is not None:
            prm.max_time_in_seconds = max(0.05, limit - build_time)
        if options.gap is not None:
            prm.relative_gap_limit = options.gap
        prm.log_search_progress = True
        prm.log_to_stdout = bool(options.verbose)
        for key, val in options.raw.get("params", {}).items():
            setattr(prm, key, val)
        solver.log_callback = log.append
        t1 = time.perf_counter()
        status = solver.solve(build.model, progress.cpsat_callback(build.objective.to_float))
        solve_time = time.perf_counter() - t1
        name = solver.status_name(status)
        has = name in ("OPTIMAL", "FEASIBLE")
        err = build.scaling_error
        obj_int = solver.objective_value if has else math.nan
        bound_int = solver.best_objective_bound if has else -math.inf
        term = map_status(name, has, obj_int, bound_int, options.gap is not None)
        extra: dict[str, Any] = {
            "scaling_error": err,
            "ticks_per_s": build.tables.ticks_per_s,
            "objective_scale": build.objective.scale,
            "bytes_unit": build.bytes_unit.unit if build.bytes_unit else None,
            "workers": workers,
            "seed": seed,
            "deterministic": workers == 1,
            "hint": f"{hint_src} ({hint_kind})",
            "cp_status": name,
            "variables": len(build.model.proto.variables),
            "constraints": len(build.model.proto.constraints),
            "conflicts": solver.num_conflicts,
            "branches": solver.num_branches,
        }
        raw = RawSolution(
            term,
            build_time_s=build_time,
            solve_time_s=solve_time,
            log="\n".join(log),
            objective_atol=err,
            extra=extra,
        )
        if name == "MODEL_INVALID":
            why = build.model.validate() or solver.solution_info()
            raw.message = f"CP-SAT rejected the model or its parameters: {why}"
            return raw
        if name == "INFEASIBLE" and incumbent is not None:
            # The hint is feasible for the evaluator: a proof of infeasibility would be a model bug.
            raw.termination = Termination.ERROR
            raw.message = f"CP-SAT proved the model infeasible although the hint ({hint_src}) is feasible"
            return raw
        if not has:
            if hint_P is not None and incumbent is not None:
                # CP-SAT found nothing in its time, but the hint is feasible (the evaluator's
                # judgement): it is the answer, with the proven bounds held so far.
                raw.placement = hint_P
                raw.bound, extra["bound_source"] = combine(0.0, archer, "cpsat")
                extra["kept_hint"] = True
                if archer is not None:
                    extra["archer"] = archer.summary()
                if incumbent - raw.bound <= 1e-12 * max(1.0, incumbent):
                    raw.termination = Termination.OPTIMAL
            return raw
        sol = read_solution(build, solver.value)
        raw.placement = sol.placement
        raw.schedule = sol.schedule
        # Over network states the epigraph and excess variables may keep slack until optimality is
        # proven: only a proven optimum's model value is compared with the evaluator's.
        if inst.problem.scenarios is None or term == Termination.OPTIMAL:
            raw.solver_objective = sol.objective
        # Every metric and weight is non-negative, so 0 is a bound too (it keeps an optimum of 0
        # at gap 0 despite the scaling error).
        raw.bound = max(0.0, build.objective.to_float(bound_int) - err)
        raw.bound, extra["bound_source"] = combine(raw.bound, archer, "cpsat")
        if archer is not None:
            extra["archer"] = archer.summary()
        if term != Termination.OPTIMAL and sol.objective - raw.bound <= 2 * err + 1e-12 * max(1.0, sol.objective):
            term = raw.termination = Termination.OPTIMAL  # the incumbent meets a proven bound
        extra["model_objective_int"] = sol.objective_int
        extra["model_objective"] = sol.objective
        extra["hint_objective"] = incumbent
        return raw


def _rounded_gap(raw: RawSolution) -> float:
    """The gap of the model's objective to the proven bound (CP-SAT's bound less the scaling error;
    an objective of 0 keeps gap 0)."""
    return compute_gap(float(raw.extra["model_objective"]), raw.bound)


def _rounding_exceeds(raw: RawSolution, options: SolverOptions) -> bool:
    """An ``OPTIMAL`` of the integer model whose gap to the proven bound (CP-SAT's bound less the
    scaling error) exceeds the allowed gap (``gap``, at least :data:`ROUNDING_GAP`): its proof
    holds only up to the rounding (a bound of 0: nothing proven)."""
    if raw.termination != Termination.OPTIMAL or "model_objective" not in raw.extra:
        return False
    return _rounded_gap(raw) > max(options.gap or 0.0, ROUNDING_GAP)


def _tighter_hint(raw: RawSolution) -> bool:
    """The placement found is better than the hint by more than the caps' slack, so that as a
    warm start it caps the time span tighter (:func:`formulation.cp.build.time_caps`)."""
    from formulation.cp.build import CAP_SLACK

    hint = raw.extra.get("hint_objective")
    found = float(raw.extra["model_objective"])
    return hint is None or found < hint * (1 - 10 * CAP_SLACK)


def _floor_objective(model: Any, objective: Any, lower: float, error: float) -> None:
    """``objective >= lower`` in the model's integers, rounded down past the scaling error so that
    no placement whose true value is ``>= lower`` is cut off (``value ~= expr / scale + constant``
    within ``error``, :class:`formulation.cp.scaling.IntegerForm`)."""
    floor = math.floor((lower - max(error, objective.error) - objective.constant) * objective.scale)
    if floor > 0:
        model.add(objective.expr >= floor)


def _hint_time(options: SolverOptions) -> float:
    if "hint_time_s" in options.raw:
        return float(options.raw["hint_time_s"])
    if options.time_limit_s is None:
        return 2.0
    return min(10.0, 0.1 * options.time_limit_s)


@dataclass(frozen=True)
class Hint:
    """A solution hint: placement, layer order of its schedule, evaluator objective, origin."""

    placement: IntArray | None
    order: list[int] | None
    incumbent: float | None
    source: str


def _hint(inst: Instance, options: SolverOptions) -> Hint:
    """The best hint among ``warm_start``, the registered heuristics and the simple placements.

    ``raw.hint = "auto"`` runs ``heft`` and ``local-search`` (when registered; each within
    :func:`_hint_time`) and :func:`simple_placement`, and keeps the best feasible one by the
    evaluator's objective (HEFT's greedy choices can be far worse than one device when transfers
    are slow, local search usually better): a better hint both starts CP-SAT higher and caps the
    time span tighter.
    """
    if options.warm_start is not None:
        return _judged(inst, inst.placement_indices(options.warm_start), None, "warm_start")
    mode = str(options.raw.get("hint", "auto"))
    if mode == "none":
        return Hint(None, None, None, "none")
    from solvers.registry import get_solver, names
    from solvers.result import Status

    # pipeline-dp first: where it finds a feasible pipeline (the period, the peers' optimum on the
    # MSR workloads) local search is skipped; on 783-operator graphs it overran its time share by
    # minutes and ended far above the pipeline (BERT L-12, 16 devices: 643 ms against 80 ms).
    heuristics = ["pipeline-dp", "heft", "local-search"] if mode == "auto" else [mode]
    found: list[Hint] = []
    for name in (h for h in heuristics if h in set(names())):
        if name == "local-search" and any(h.source == "pipeline-dp" and h.incumbent is not None for h in found):
            continue
        # pipeline-dp (throughput only): its best pipeline, also where the instance does not ask
        # for one (a pipeline is contiguous), without the bound and the CP-SAT finish a hint does not need.
        raw = {"heuristic": True, "bound": False, "finish": False} if name == "pipeline-dp" else {}
        try:
            res = get_solver(name).solve(
                inst, SolverOptions(time_limit_s=_hint_time(options), seed=options.seed, raw=raw)
            )
        except Exception:  # a heuristic that cannot take the instance just gives no hint
            continue
        if res.status in (Status.OPTIMAL, Status.FEASIBLE) and res.placement:
            found.append(_judged(inst, inst.placement_indices(res.placement), dict(res.schedule) or None, name))
    if mode == "auto" or not found:
        found.append(_judged(inst, simple_placement(inst), None, "simple placement"))
    best = min(found, key=lambda h: math.inf if h.incumbent is None else h.incumbent)
    if best.placement is not None and best.incumbent is not None:
        # the period without convex stages: the layers of a few devices at a time re-placed
        # exactly (solvers/rebalance.py); CP-SAT's own search rarely improves a balanced start
        from solvers.rebalance import improve_start, start_budget

        P, kept = improve_start(inst, best.placement, start_budget(options.time_limit_s, dict(options.raw)))
        if kept:
            return _judged(inst, P, None, f"{best.source} + rebalance ({kept} moves)")
    return best


def _judged(inst: Instance, P: IntArray, schedule: dict[str, float] | None, source: str) -> Hint:
    """A hint with the evaluator's objective (None when infeasible) and its layer order by start."""
    from formulation.evaluator import evaluate

    parallel = inst.problem.execution == "parallel"
    ev = evaluate(inst, P, schedule if parallel else None)
    if any(v.kind == "schedule" for v in ev.violations):
        ev = evaluate(inst, P)
    dur = inst.time[np.arange(inst.n), P]
    order = sorted(range(inst.n), key=lambda v: (ev.schedule[inst.graph.layer_ids[v]], float(dur[v]), v))
    return Hint(P, order if parallel else None, ev.objective if ev.feasible else None, source)


def simple_placement(inst: Instance) -> IntArray:
    """The best of a few obvious placements under the evaluator's objective (feasible ones first).

    Candidates: everything on one device (each device in turn) and every layer on its fastest
    device; layers are moved to their fastest allowed device where a candidate breaks ``allowed``
    or ``private``.
    """
    from formulation.evaluator import batch_metrics

    mask = inst.placement_mask
    fastest = np.where(mask, inst.time, np.inf).argmin(axis=1)
    cands = [np.full(inst.n, d, dtype=np.int64) for d in range(inst.k)] + [fastest.astype(np.int64)]
    rows = np.arange(inst.n)
    P = np.stack([np.where(mask[rows, c], c, fastest) for c in cands])
    bm = batch_metrics(inst, P)
    key = np.where(bm.feasible(), bm.objective(), np.inf)
    if not np.isfinite(key).any():
        key = np.nan_to_num(bm.objective(), nan=np.inf)
    return P[int(np.argmin(key))].copy()
