"""The CoEdge proportional row split as a registered solver (``proportional``).

Source: Zeng, Chen, Zhou, Yang and Zhang, "CoEdge: Cooperative DNN Inference With Adaptive
Workload Partitioning Over Heterogeneous Edge Devices", IEEE/ACM ToN 29(2), 2021.

Input: an instance whose layer stack is marked ``attrs: {split: proportional}``
(:func:`formulation.granularity.proportional.marked_stack`); every other instance is refused before
anything is built, and every other solver refuses marked instances (``Capabilities.splits``). The
row shares come from :func:`proportional_split` (the row model of
:mod:`formulation.granularity.proportional`, solved by the HiGHS engine of the ``highs`` solver);
the split instance it builds is judged by the evaluator through :func:`solvers.base.finalize`, like any
backend's answer.

The answer is a new, split instance; the :class:`Result` reports it on the file's own layer ids
(as ``solve --split`` does):

* ``objective`` and ``metrics``: the evaluator's verdict on the split instance with its node
  placement and insertion schedule (parallel latency);
* ``placement``: every layer of the file on one device; a split layer on the device holding the
  largest share of its rows (the first band's device on a tie). ``schedule`` is empty: node start
  times do not apply to whole layers;
* ``extra["granularity"]``: ``stack`` (first, last), ``rows`` per device, ``row_bounds``,
  ``placement`` (a split layer's part devices as a list), ``node_placement`` and ``node_schedule``
  on the split instance (what :func:`split_evaluation` re-evaluates);
* ``bound`` is ``-inf`` and ``gap`` infinite (:func:`solvers.result.compute_gap`): the model's
  makespan over-estimates the exact one of its split, so neither it nor HiGHS's bound on it bounds
  the split's optimum from below. They are kept as ``extra["model_makespan_s"]`` and
  ``extra["model_bound_s"]``. The method is a heuristic (``exact = False``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from formulation.evaluator import Evaluation, evaluate
from formulation.granularity.provenance import GranularityError
from formulation.model import Instance
from solvers.base import RawSolution, Solver, finalize

if TYPE_CHECKING:
    from formulation.granularity.proportional import ProportionalPlan
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Result, Status, Termination

#: HiGHS time limit when the options set none (the model has 2 columns per device).
DEFAULT_TIME_LIMIT_S = 30.0


class Proportional(Solver):
    """CoEdge proportional row split of a marked conv stack (Zeng et al., IEEE/ACM ToN 2021)."""

    name = "proportional"
    exact = False
    capabilities: ClassVar[Capabilities] = Capabilities(
        objectives=frozenset({"latency"}),
        executions=frozenset({"parallel"}),
        constraints=frozenset({"memory"}),
        splits=True,
        note="needs a layer stack marked 'split: proportional'",
    )
    supported_options: ClassVar[frozenset[str]] = frozenset({"time_limit_s"})
    description = "CoEdge proportional row split of a stack marked 'split: proportional' (Zeng et al. 2021)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """The declared capabilities, then a marked stack that is a chain of windowed layers.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
        """
        from formulation.granularity.proportional import marked_stack
        from formulation.granularity.spatial import layer_chain, stack_windows

        super().check(inst, options)
        stack = marked_stack(inst)
        where = f"solver {self.name!r} cannot solve instance {inst.name!r}"
        if stack is None:
            raise UnsupportedProblem(
                f"{where}: it needs a layer stack marked 'split: proportional' in the layers' attrs "
                "(docs/granularity.md)"
            )
        try:
            stack_windows(inst, layer_chain(inst, *stack))
        except (GranularityError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise UnsupportedProblem(f"{where}: the marked stack {stack[0]}..{stack[1]}: {exc}") from None

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:  # pragma: no cover - see solve
        raise NotImplementedError("the proportional split is judged on its split instance; see solve()")

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """Check, choose the row shares, judge the split instance, report on the file's layer ids.

        Raises
        ------
        UnsupportedProblem, OptionNotSupported
            Before anything is built.
        """
        from formulation.granularity.proportional import marked_stack

        options = options or SolverOptions()
        self.check(inst, options)
        stack = marked_stack(inst)
        assert stack is not None  # check() refused unmarked instances
        t0 = time.perf_counter()
        try:
            plan = proportional_split(inst, *stack, time_limit_s=options.time_limit_s or DEFAULT_TIME_LIMIT_S)
        except Exception as exc:  # a failure becomes a result row, never a crash
            found_none = isinstance(exc, GranularityError)
            return Result(
                instance=inst.name,
                solver=self.name,
                status=Status.NO_SOLUTION_FOUND if found_none else Status.ERROR,
                termination=Termination.COMPLETED if found_none else Termination.ERROR,
                solver_version=self.version(),
                wall_time_s=time.perf_counter() - t0,
                options=options.to_dict(),
                log="" if found_none else traceback.format_exc(),
                message=f"{type(exc).__name__}: {exc}",
            )
        split = plan.transformed
        raw = RawSolution(
            Termination.COMPLETED,
            placement=plan.placement,
            schedule=plan.schedule,
            extra={
                "model_makespan_s": plan.model_makespan_s,
                "model_bound_s": plan.bound_s,
                "model_termination": plan.termination,
            },
        )
        res = finalize(self, split.instance, raw, options)  # the evaluator judges the split instance
        res.instance = inst.name
        res.wall_time_s = time.perf_counter() - t0
        if not res.placement:
            return res
        largest = max(plan.rows, key=lambda d: plan.rows[d])  # first band's device on a tie
        view = split.original_placement(res.placement)
        res.extra["granularity"] = {
            "steps": list(split.steps),
            "stack": list(stack),
            "rows": dict(plan.rows),
            "row_bounds": list(plan.row_bounds),
            "placement": view,
            "node_placement": dict(res.placement),
            "node_schedule": dict(res.schedule),
        }
        res.placement = {v: d if isinstance(d, str) else largest for v, d in view.items()}
        res.schedule = {}
        return res


def split_evaluation(inst: Instance, res: Result) -> Evaluation | None:
    """Rebuild the split a result describes from ``inst`` and evaluate its node placement.

    None when ``res`` carries no row split (``extra["granularity"]`` with ``stack`` and
    ``row_bounds``). The split is built again by :func:`formulation.granularity.split_spatial`, so the
    verdict depends on the instance and the reported rows only.
    """
    from formulation.granularity.spatial import split_spatial

    view: Any = res.extra.get("granularity")
    if not isinstance(view, dict) or "row_bounds" not in view or "stack" not in view:
        return None
    first, last = view["stack"]
    split = split_spatial(inst, first, last, row_bounds=list(view["row_bounds"]), col_bounds=None, name=None)
    sched = view.get("node_schedule") or None
    return evaluate(split.instance, view["node_placement"], sched)


__all__ = ["DEFAULT_TIME_LIMIT_S", "Proportional", "split_evaluation"]


def proportional_split(
    x: Any,
    first: str,
    last: str | None = None,
    *,
    devices: Sequence[str] | None = None,
    origin: str | None = None,
    gather: str | None = None,
    base: Mapping[str, str] | None = None,
    integer_rows: bool = True,
    time_limit_s: float = 30.0,
) -> ProportionalPlan:
    """Choose each device's rows of the stack ``first..last`` and build the split.

    The row model is :func:`formulation.granularity.proportional.row_model`; it is solved here by the
    HiGHS engine of the ``highs`` solver (scaled, one sparse matrix, the same tolerances as every
    other MILP of dnnpart), and :func:`formulation.granularity.proportional.plan_from_shares` turns
    the shares into the split instance the evaluator judges.

    Parameters
    ----------
    x : Instance or Transformed
    first, last : str
        The stack (see :func:`formulation.granularity.spatial.split_spatial`).
    devices : sequence of str, optional
        Candidate devices (default all that can receive from ``origin`` and send to ``gather``).
    origin, gather : str, optional
        Device holding the stack's input and device collecting its output (default: the system's
        source for both).
    base : mapping, optional
        ``{original layer: device}`` for the layers outside the stack (default: all on ``origin``).
    integer_rows : bool
        Integer rows in the model (else continuous, rounded afterwards).
    time_limit_s : float
        HiGHS time limit.

    Raises
    ------
    GranularityError
        If no candidate device exists or HiGHS returns no solution.
    """
    from formulation.granularity.proportional import plan_from_shares, row_model
    from formulation.granularity.provenance import as_transformed
    from formulation.milp.context import MilpContext
    from solvers.milp.backend import RunSettings
    from solvers.milp.highs_direct import HighsDirect

    t = as_transformed(x)
    model = row_model(t.instance, first, last, devices=devices, origin=origin, gather=gather,
                      integer_rows=integer_rows)
    ctx = MilpContext.new(t.instance)
    ctx.model = model.lp
    run = HighsDirect(ctx).run(RunSettings(time_limit_s=time_limit_s))
    if run.values is None or run.objective is None:
        raise GranularityError(f"the proportional split model has no solution ({run.native_status})")
    share = {d: float(run.values[model.h[i]]) for i, d in enumerate(model.devices)}
    return plan_from_shares(t, first, last, model, share, float(run.objective), float(run.bound),
                            run.termination.value, base=base)
