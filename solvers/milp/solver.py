"""MILP solvers: ``highs`` (HiGHS via highspy, the default) and the ``pyomo:NAME`` family.

Both build the same formulation (:func:`formulation.milp.build_milp`) and share this flow:
build, scale, warm-start, run, decode the placement, rebuild an exactly feasible schedule in
parallel mode, and report the solver's objective and dual bound. The objective reported is the
formulation's own value of the placement found (integer columns fixed, LP re-solved, whatever the
termination), so slack the solver left in auxiliary columns never reads as a disagreement with the
evaluator; the result's objective is the evaluator's value, this one its cross-check.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import ClassVar

import numpy as np

from formulation.evaluator import batch_metrics, evaluate
from formulation.milp.build import build_milp
from formulation.milp.context import MilpContext
from formulation.milp.decode import integer_point, placement_of, schedule_of
from formulation.milp.objective import NegativeWeight, check_weights
from formulation.model import DEVICE_FEATURES, Instance, IntArray
from formulation.numerics import NO_FINITE_OPTION, prepare
from formulation.stage_order import stage_canonical_placement
from formulation.symmetry import canonical_placement
from solvers.archer_bounds import combine, engine_bound, pipeline_start
from solvers.base import RawSolution, Solver
from solvers.milp import rescale
from solvers.milp.backend import MilpBackend, RunSettings
from solvers.milp.bound_reduction import reduce_options
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Result, Termination

#: Raw options every MILP solver understands.
RAW_KEYS = frozenset(
    {
        "interface",
        "auto_warm_start",
        "pairs",
        "symmetry",
        "reduce",
        "archer",
        "archer_time_s",
        "pipeline_cuts",
        "rebalance",
        "rebalance_time_s",
    }
)

#: Default of the raw option ``pipeline_cuts`` (:mod:`formulation.milp.constraints.pipeline_cuts`).
PIPELINE_CUTS = True


def settings_of(options: SolverOptions) -> RunSettings:
    """The solver-independent run settings of ``options``."""
    return RunSettings(options.time_limit_s, options.gap, options.threads, options.seed, options.verbose)


def _value(inst: Instance, P: IntArray) -> float:
    """The evaluator's objective of ``P`` (``inf`` when infeasible)."""
    ev = evaluate(inst, P)
    return float(ev.objective) if ev.feasible else math.inf


def baseline_warm_start(inst: Instance) -> IntArray | None:
    """The best feasible placement among "everything on one device" (one per device).

    These are the local/offload baselines of Neurosurgeon (Kang et al., ASPLOS 2017), judged by
    the evaluator; ``None`` when none is feasible.
    """
    P = np.repeat(np.arange(inst.k, dtype=np.int64)[:, None], inst.n, axis=1)
    if inst.problem.scenarios is not None:  # judged over the network states
        from formulation.scenarios import robust_batch

        rb = robust_batch(inst, P)
        feas, value = rb.feasible, rb.objective
    else:
        bm = batch_metrics(inst, P, parallel=inst.problem.execution == "parallel")
        feas, value = bm.feasible(), bm.objective()
    if not feas.any():
        return None
    obj = np.where(feas, value, np.inf)
    return P[int(np.argmin(obj))]


class MilpSolver(Solver):
    """Shared flow of the MILP backends; subclasses choose the backend."""

    exact = True
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES),
        scenarios=True,
        workload=frozenset({"none", "schedule", "routing", "generation"}),
        note="every objective, both latency modes, every constraint and device feature; version 2 under "
        "none and schedule, generation requests under none (solvers/milp/workload.py)",
    )
    supported_options: ClassVar[frozenset[str]] = frozenset(
        {"time_limit_s", "gap", "threads", "seed", "warm_start", "raw"}
    )

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from formulation.choices_model import unsupported

            if unsupported(inst):
                why = "; ".join(unsupported(inst))
                raise UnsupportedProblem(f"solver {self.name!r} cannot solve {inst.name!r}: {why}")
        unknown = set(options.raw) - self.raw_keys()
        if unknown:
            raise UnsupportedProblem(
                f"solver {self.name!r} has no raw option(s) {sorted(unknown)}; it takes {sorted(self.raw_keys())}"
            )
        try:
            check_weights(inst.problem.objective.terms())
        except NegativeWeight as exc:
            raise UnsupportedProblem(f"solver {self.name!r}: {exc}") from exc
        if options.warm_start is not None:
            inst.placement_indices(options.warm_start)
        if inst.workload is not None:  # version 2: its own model (solvers/milp/workload.py)
            from solvers.milp.workload import check_workload

            check_workload(self, inst, options)
            return
        prepare(inst, self.name)

    def raw_keys(self) -> frozenset[str]:
        """Keys accepted in ``options.raw``."""
        return RAW_KEYS

    def make_backend(self, ctx: MilpContext, options: SolverOptions) -> MilpBackend:
        """Load the built model into the backend."""
        raise NotImplementedError

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """As :meth:`solvers.base.Solver.solve`; solved again at the scales of the placement found
        where the optimum lies far below the instance's (:mod:`solvers.milp.rescale`).

        Raises
        ------
        NumericallyUnsafe
            Where the model at the scales of the placement found is out of the safe range and the
            solve proved nothing.
        """
        with rescale.session() as scales:
            res = super().solve(inst, options)
        return rescale.check_result(scales, res)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        if inst.problem.choices is not None:  # variants and exits: docs/instance-format.md §11.5
            from solvers.choices_milp import solve_choices_milp

            return solve_choices_milp(inst, options)
        if inst.workload is not None:
            from solvers.milp.workload import solve_workload

            return solve_workload(self, inst, options)
        return rescale.run(inst, options, self.name, self._solve_at_scale)

    def _solve_at_scale(self, inst: Instance, options: SolverOptions) -> RawSolution:
        """Build, scale (at the scales :func:`solvers.milp.rescale.apply` gives), warm-start, run
        and decode."""
        t0 = time.perf_counter()
        # dominated options removed (same optimum), numbers checked by check()
        inst, empty = prepare(inst, self.name)
        if empty:
            return RawSolution(Termination.INFEASIBLE, message=NO_FINITE_OPTION)
        # Off by default: HiGHS detects the symmetry of interchangeable devices itself (orbitopes),
        # and on the MSR workloads it proved optima faster without the explicit rows.
        symmetry = bool(options.raw.get("symmetry", False))
        # Options a forest relaxation and an incumbent prove useless are removed (same optimum;
        # solvers/milp/bound_reduction.py). Off with symmetry rows, which need the devices' options intact.
        reduction = None
        if options.raw.get("reduce", True) and not symmetry:
            keep = None if options.warm_start is None else inst.placement_indices(options.warm_start)
            reduction = reduce_options(inst, keep)
            inst = reduction.instance
        # Stage order of interchangeable devices under ``pipeline`` (formulation/stage_order.py).
        stage = bool(options.raw.get("pipeline_cuts", PIPELINE_CUTS)) and inst.problem.constraints.pipeline
        ctx = build_milp(inst, pairs=bool(options.raw.get("pairs", True)), symmetry=symmetry, pipeline_cuts=stage)
        if ctx.model.infeasible_reasons:
            return RawSolution(
                Termination.INFEASIBLE,
                message="infeasible before solving: " + "; ".join(ctx.model.infeasible_reasons),
                build_time_s=time.perf_counter() - t0,
            )
        rescale.apply(ctx)
        backend = self.make_backend(ctx, options)
        build_time = time.perf_counter() - t0
        warm = self._warm_start(inst, options)
        auto_start = options.warm_start is None and options.raw.get("auto_warm_start", True)
        if reduction is not None and reduction.start is not None and auto_start:
            # At least as good as the single-device placements it is chosen among; also a start
            # where the reduction left no single-device placement feasible.
            warm = reduction.start
        # The period objective: pipeline-dp's pipeline replaces the start where it is better (it
        # then uses no option the reduction removed, whose placements are worse than its start),
        # and Archer et al.'s bounds join the solver's (solvers/archer_bounds.py); their time is
        # taken from the limit.
        archer = engine_bound(inst, options.time_limit_s, dict(options.raw))
        if archer is not None and options.warm_start is None and options.raw.get("auto_warm_start", True):
            dp = pipeline_start(inst, min(10.0, 0.1 * (options.time_limit_s or 20.0)))
            if dp is not None and (warm is None or dp[1] < _value(inst, warm)):
                warm = dp[0]
            if warm is not None:
                # the period without convex stages: a few devices at a time re-placed exactly
                # (solvers/rebalance.py), from the best start so far
                from solvers.rebalance import improve_start, start_budget

                warm, _ = improve_start(inst, warm, start_budget(options.time_limit_s, dict(options.raw)))
        if warm is not None and stage:
            # The stage-order rows admit the renaming by stage order (same value).
            warm = stage_canonical_placement(inst, warm)
        elif warm is not None and symmetry:
            # The symmetry-breaking rows admit one relabelling of each placement (same value).
            warm = canonical_placement(inst, warm)
        native = backend.set_warm_start(warm) if warm is not None else False
        settings = settings_of(options)
        if settings.time_limit_s is not None:
            # the limit covers the whole solve: reduction, building, bounds and starts included
            # (a 400k-row model with the pipeline rows took 45 s to build beyond a 30 s limit)
            elapsed = time.perf_counter() - t0
            settings = replace(settings, time_limit_s=max(0.1, settings.time_limit_s - elapsed))
        run = backend.run(settings)
        extra: dict[str, object] = {
            "native_status": run.native_status,
            "solver_gap": run.gap,
            "warm_start": None if warm is None else ("native" if native else "incumbent"),
            "reduced_options": 0 if reduction is None else reduction.removed,
            **{f"model_{k}": v for k, v in ctx.model.stats().items()},
        }
        term, bound, message = run.termination, run.bound, ""
        bound, extra["bound_source"] = combine(bound, archer, self.name)
        if archer is not None:
            extra["archer"] = archer.summary()
        P = sched = objective = None
        if run.values is not None:
            P = placement_of(ctx, run.values)
            sched = schedule_of(ctx, P, run.values)
            # The formulation's own value of the rounded placement (integers fixed, LP re-solved):
            # free of the integrality slack HiGHS may leave in its reported objective.
            objective = backend.fixed_objective(integer_point(ctx, P, sched[1] if sched else None))
            if objective is None:
                objective = run.objective
        if warm is not None and term != Termination.OPTIMAL:
            kept = self._keep_start(ctx, backend, warm, objective)
            if kept is not None:
                P, sched, objective = warm, kept[0], kept[1]
                extra["kept_warm_start"] = True
                if term == Termination.INFEASIBLE:  # the start is feasible: the claim was wrong
                    term, bound = Termination.INTERRUPTED, -math.inf
                    message = f"the solver reported infeasible ({run.native_status}) but the warm start is feasible"
        return RawSolution(
            term,
            placement=P,
            schedule=sched[0] if sched else None,
            solver_objective=objective,
            bound=bound,
            agreement_atol=backend.agreement_atol(),
            build_time_s=build_time,
            solve_time_s=run.solve_time_s,
            log=run.log,
            message=message,
            extra=extra,
        )

    @staticmethod
    def _keep_start(
        ctx: MilpContext, backend: MilpBackend, start: IntArray, found: float | None
    ) -> tuple[tuple[dict[str, float], IntArray] | None, float] | None:
        """The start's schedule and value when it beats what the solver found (else None).

        The value is the formulation's own (integer columns fixed, LP solved); in parallel mode the
        start is ordered by the evaluator's list schedule.
        """
        hint = None
        if ctx.parallel():
            ev = evaluate(ctx.inst, start)
            hint = np.array([ev.schedule[v] for v in ctx.inst.graph.layer_ids])
        sched = schedule_of(ctx, start, None, hint=hint)
        value = backend.fixed_objective(integer_point(ctx, start, sched[1] if sched else None))
        if value is None or (found is not None and value >= found * (1 - 1e-12)):
            return None
        return sched, value

    def _warm_start(self, inst: Instance, options: SolverOptions) -> IntArray | None:
        if options.warm_start is not None:
            return inst.placement_indices(options.warm_start)
        if options.raw.get("auto_warm_start", True):
            return baseline_warm_start(inst)
        return None


class HighsSolver(MilpSolver):
    """The MILP solved by HiGHS (highspy, embedded; no external binary).

    ``raw={"interface": "direct" | "pyomo"}`` chooses the model hand-over: ``direct`` (default)
    passes the matrix to ``highspy``; ``pyomo`` builds the Pyomo model and uses Pyomo's HiGHS
    interface (same formulation, for comparison). ``raw={"auto_warm_start": False}`` disables the
    default warm start from the best single-device placement.
    """

    name = "highs"
    description = "exact MILP (every objective, constraint and latency mode) solved by HiGHS"
    capabilities = replace(MilpSolver.capabilities, choices=True)

    @classmethod
    def available(cls) -> tuple[bool, str]:
        from solvers.milp.highs_direct import highs_available

        return highs_available()

    @classmethod
    def version(cls) -> str:
        from solvers.milp.highs_direct import highs_version

        return highs_version()

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        iface = options.raw.get("interface", "direct")
        if iface not in ("direct", "pyomo"):
            raise UnsupportedProblem(f"solver 'highs': raw option interface={iface!r}; expected 'direct' or 'pyomo'")

    def make_backend(self, ctx: MilpContext, options: SolverOptions) -> MilpBackend:
        if options.raw.get("interface", "direct") == "pyomo":
            from solvers.milp.pyomo_backend import PyomoBackend

            return PyomoBackend(ctx, "highs")
        from solvers.milp.highs_direct import HighsDirect

        return HighsDirect(ctx)
