"""Solvers of tensor + pipeline parallelism as a decision (docs/instance-format.md §2.6, §5.14).

Each layer chooses an *option* (:mod:`formulation.sharding`): one device, or a group of devices
when it declares ``shardable``. Three exact solvers, all judged by
:func:`formulation.evaluator.sharded.evaluate_sharded`:

* ``shard-brute`` — every combination of options (any DAG; tiny instances);
* ``shard-milp`` — a MILP over options on chains, solved by HiGHS
  (:mod:`formulation.sharding_milp`): sequential latency or the period, memory and ``allowed``;
* ``shard-dp`` — Alpa's inter-operator level as a DP over pipeline stages of a chain, each stage on
  one option, with the inner group choice exact (:mod:`solvers.sharding_dp`; ``pipeline: true``).

A result reports every layer on its option's first device in ``placement`` and the full choice in
``extra["sharding"]``: ``placement`` (``{layer: device or [devices]}``), ``groups`` (the sharded
layers only) and ``degrees``. Every other solver refuses instances with ``shardable`` layers
(``Capabilities.sharding``).
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from formulation.evaluator import Evaluation
from formulation.evaluator.sharded import SHARDED_CONSTRAINTS, evaluate_sharded, unsupported
from formulation.model import Instance
from formulation.sharding import Option, option_label, to_placement
from formulation.sharding import options as layer_options
from solvers.base import OBJECTIVE_ATOL, OBJECTIVE_RTOL, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Result, Status, Termination, compute_gap

#: Largest number of option combinations ``shard-brute`` enumerates.
MAX_COMBINATIONS = 200_000


@dataclass
class ShardedRaw:
    """What a sharding backend hands back: options by layer index, its value and its bound."""

    termination: Termination
    options: list[Option] | None = None
    solver_objective: float | None = None
    bound: float = -math.inf
    extra: dict[str, Any] = field(default_factory=dict)
    agreement_atol: float = 0.0
    """Absolute slack of the objective's agreement with the evaluator (a MILP's tolerances at its
    scale, :meth:`solvers.milp.backend.MilpBackend.agreement_atol`); 0 for exact enumerations."""


def sharded_result(solver: Solver, inst: Instance, raw: ShardedRaw, options_: SolverOptions, t0: float) -> Result:
    """Judge ``raw`` with the sharded evaluator and report it (the rules of :func:`solvers.base.finalize`)."""
    res = Result(instance=inst.name, solver=solver.name, status=Status.ERROR, termination=raw.termination,
                 solver_version=solver.version(), method=solver.name, solver_objective=raw.solver_objective,
                 bound=raw.bound, options=options_.to_dict(), extra=dict(raw.extra))
    res.wall_time_s = time.perf_counter() - t0
    if raw.options is None:
        exact_none = raw.termination == Termination.INFEASIBLE and solver.exact
        res.status = Status.INFEASIBLE if exact_none else Status.NO_SOLUTION_FOUND
        res.gap = math.inf
        return res
    ev = evaluate_sharded(inst, raw.options)
    res.metrics, res.placement, res.schedule, res.objective = ev, dict(ev.placement), {}, ev.objective
    groups = {inst.graph.layer_ids[v]: [inst.system.device_ids[d] for d in o]
              for v, o in enumerate(raw.options) if len(o) > 1}
    res.extra["sharding"] = {"placement": to_placement(inst, raw.options), "groups": groups,
                             "degrees": {v: len(ds) for v, ds in groups.items()}}
    problems = []
    if not math.isfinite(ev.objective):
        problems.append(f"the placement's objective is {ev.objective!r} (not finite)")
    if not ev.feasible:
        problems.append("the placement violates constraints: " + "; ".join(v.message for v in ev.violations))
    slack = OBJECTIVE_ATOL + raw.agreement_atol
    tol = OBJECTIVE_RTOL * abs(ev.objective) + slack if math.isfinite(ev.objective) else 0.0
    if raw.solver_objective is not None and not abs(raw.solver_objective - ev.objective) <= tol:
        problems.append(f"the solver reported objective {raw.solver_objective!r} but the evaluator gives "
                        f"{ev.objective!r}")
    bound = ev.objective if raw.termination == Termination.OPTIMAL and not math.isfinite(raw.bound) else raw.bound
    if math.isfinite(bound) and bound > ev.objective + tol:
        problems.append(f"the reported bound {bound!r} exceeds the evaluated objective {ev.objective!r}")
    if problems:
        res.message, res.gap = "; ".join(problems), math.inf
        return res
    res.bound = min(bound, ev.objective) if math.isfinite(bound) else bound
    res.gap = compute_gap(ev.objective, res.bound)
    res.status = Status.OPTIMAL if raw.termination == Termination.OPTIMAL and res.gap <= 1e-6 else Status.FEASIBLE
    return res


def _single_device_bound(inst: Instance) -> float:
    """The best objective of running every layer whole on one device (an upper bound on the optimum;
    inf when none is feasible), judged by the sharded evaluator."""
    best = math.inf
    for d in range(inst.k):
        try:
            ev = evaluate_sharded(inst, [(d,)] * inst.n)
        except ValueError:  # not an admissible option of some layer
            continue
        if ev.feasible and math.isfinite(ev.objective):
            best = min(best, ev.objective)
    return best


def sharded_evaluation(inst: Instance, res: Result) -> Evaluation | None:
    """The sharded evaluator's verdict on a result that carries ``extra["sharding"]`` (else None)."""
    view: Any = res.extra.get("sharding")
    if not isinstance(view, dict) or "placement" not in view:
        return None
    return evaluate_sharded(inst, view["placement"])


class ShardingSolver(Solver):
    """Common checks and reporting of the sharding solvers (subclasses implement :meth:`search`)."""

    exact = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        objectives=frozenset({"latency", "throughput"}),
        metrics=frozenset({"latency", "throughput"}),
        executions=frozenset({"sequential"}),
        constraints=SHARDED_CONSTRAINTS,
        sharding=True,
        note="layers may declare shardable (tensor parallelism)",
    )
    supported_options: ClassVar[frozenset[str]] = frozenset({"time_limit_s"})

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """The declared capabilities, then what the sharded cost model defines.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
        """
        super().check(inst, options)
        why = unsupported(inst)
        if why:
            raise UnsupportedProblem(f"solver {self.name!r} cannot solve instance {inst.name!r}: " + "; ".join(why))

    def _solve(self, inst: Instance, options: SolverOptions) -> Any:  # pragma: no cover - see solve
        raise NotImplementedError("sharded placements are judged by the sharded evaluator; see solve()")

    def search(self, inst: Instance, options: SolverOptions) -> ShardedRaw:
        """Backend-specific search."""
        raise NotImplementedError

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """Check, search, judge with the sharded evaluator, report.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
            Before anything is built.
        """
        options = options or SolverOptions()
        self.check(inst, options)
        t0 = time.perf_counter()
        try:
            raw = self.search(inst, options)
        except Exception as exc:  # a backend failure becomes an error row, never a crash
            return Result(instance=inst.name, solver=self.name, status=Status.ERROR, termination=Termination.ERROR,
                          solver_version=self.version(), wall_time_s=time.perf_counter() - t0,
                          options=options.to_dict(), log=traceback.format_exc(),
                          message=f"{type(exc).__name__}: {exc}")
        return sharded_result(self, inst, raw, options, t0)


def combination_count(inst: Instance) -> int:
    """Number of option combinations ``shard-brute`` would enumerate."""
    return math.prod(len(layer_options(inst, v)) for v in range(inst.n))


class ShardBrute(ShardingSolver):
    """Every combination of options (devices and groups), judged by the sharded evaluator (tiny instances)."""

    name = "shard-brute"
    description = "exhaustive search over devices and tensor-parallel groups per layer (tiny instances)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Also refuse more than :data:`MAX_COMBINATIONS` combinations.

        Raises
        ------
        UnsupportedProblem
        """
        super().check(inst, options)
        count = combination_count(inst)
        if count > MAX_COMBINATIONS:
            raise UnsupportedProblem(f"solver {self.name!r}: {count:,} option combinations (at most "
                                     f"{MAX_COMBINATIONS:,})")

    def search(self, inst: Instance, options: SolverOptions) -> ShardedRaw:
        """Enumerate; the least objective among feasible combinations (first found on ties)."""
        import itertools

        best: Sequence[Option] | None = None
        value = math.inf
        count = 0
        for combo in itertools.product(*(layer_options(inst, v) for v in range(inst.n))):
            count += 1
            ev = evaluate_sharded(inst, list(combo))
            if ev.feasible and ev.objective < value:
                best, value = combo, ev.objective
        if best is None:
            return ShardedRaw(Termination.INFEASIBLE, extra={"combinations": count})
        return ShardedRaw(Termination.OPTIMAL, list(best), value, value,
                          extra={"combinations": count, "labels": [option_label(inst, o) for o in best]})


class ShardMilpSolver(ShardingSolver):
    """The options MILP of a chain (:mod:`formulation.sharding_milp`), solved by HiGHS."""

    name = "shard-milp"
    description = "MILP over devices and tensor-parallel groups per layer of a chain (HiGHS)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        objectives=frozenset({"latency", "throughput"}),
        metrics=frozenset({"latency", "throughput"}),
        executions=frozenset({"sequential"}),
        constraints=SHARDED_CONSTRAINTS - {"pipeline"},
        chain_only=True,
        sharding=True,
        note="chains; layers may declare shardable (tensor parallelism)",
    )

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """HiGHS must be importable."""
        from solvers.milp.highs_direct import highs_available

        return highs_available()

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Also a chain whose model inputs have one reader each.

        Raises
        ------
        UnsupportedProblem
        """
        from formulation.sharding import chain_problem

        super().check(inst, options)
        why = chain_problem(inst)
        if why:
            raise UnsupportedProblem(f"solver {self.name!r} cannot solve instance {inst.name!r}: {why}")

    def search(self, inst: Instance, options: SolverOptions) -> ShardedRaw:
        """Build, solve with HiGHS, read the options back."""
        from formulation.milp.context import MilpContext
        from formulation.sharding_milp import build, decode
        from solvers.milp.backend import RunSettings
        from solvers.milp.highs_direct import HighsDirect

        model = build(inst, _single_device_bound(inst))
        ctx = MilpContext.new(inst)
        ctx.model = model.lp
        backend = HighsDirect(ctx)
        run = backend.run(RunSettings(time_limit_s=options.time_limit_s))
        extra = {"columns": model.lp.n_cols, "rows": model.lp.n_rows, "native_status": run.native_status}
        if run.values is None or run.objective is None:
            return ShardedRaw(run.termination, extra=extra)
        chosen = decode(model, run.values)
        # The model's own value of the decoded options (binaries fixed, the LP left solved), free
        # of the slack the solver's tolerances leave in the flow columns: on extreme magnitudes
        # HiGHS's objective read 2.0000001 where the options' value is 2.00001.
        fixed = {c: float(o == pick) for row, pick in zip(model.x, chosen, strict=True) for o, c in row}
        value = backend.fixed_objective(fixed)
        objective = float(run.objective) if value is None else value
        judged = evaluate_sharded(inst, chosen).objective
        slack = OBJECTIVE_RTOL * abs(judged) + OBJECTIVE_ATOL + backend.agreement_atol()
        if math.isfinite(judged) and abs(objective - judged) > slack and combination_count(inst) <= MAX_COMBINATIONS:
            # The model's value of its own options is not the evaluator's (seen once, on an
            # extreme-magnitude instance: 2.0 against 2.00001 s; cause not found): rather than an
            # error, enumerate as shard-brute does, and say so.
            out = ShardBrute().search(inst, options)
            out.extra["fallback"] = (f"the MILP's value {objective!r} of its options differs from the evaluator's "
                                     f"{judged!r}; the options were enumerated instead")
            return out
        return ShardedRaw(run.termination, chosen, objective, float(run.bound), extra=extra,
                          agreement_atol=backend.agreement_atol())
