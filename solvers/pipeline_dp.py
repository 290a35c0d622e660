"""``pipeline-dp``: the least period over pipelines of a DAG, by a DP over down-sets.

Source: J. Tarnawski, A. Phanishayee, N. R. Devanur, D. Mahajan, F. Nina Paravecino, "Efficient
Algorithms for Device Placement of DNN Graph Operators", NeurIPS 2020, Section 4 (the dynamic
program over ideals of the DAG for max-load with contiguous stages); PipeDream (Narayanan et al.,
SOSP 2019) is the case of a chain, where the down-sets are the prefixes.

Problem (``constraints.pipeline: true``, :mod:`formulation.evaluator.pipeline`): place the layers
so that the devices' layer sets are the differences ``D_i \\ D_{i-1}`` of a chain of down-sets
``∅ ⊂ D_1 ⊂ ... ⊂ D_m = V``, one stage per device (``σ(dev(u)) < σ(dev(v))`` on every edge between
two devices), minimising the period (``throughput``), under memory (either model), ``allowed``,
``private``, ``colocate``, ``max_devices`` (number of stages) and ``contiguous`` (implied).

Stage value. For a stage ``S`` on a device ``d`` the DP uses

``value(S, d) = t(S, d) + [comm_overlap(d) false] (out_rate(d) sent(S) + in_rate(d) received(S))``

with ``sent(S)`` the bytes of the tensors produced in ``S`` and read outside it (each once),
``received(S)`` the bytes of the tensors produced outside ``S`` and read in it (each once), and the
rates ``1 / (largest bandwidth)`` out of and into ``d``. This is a lower bound of ``d``'s busy time
(a ``send_once`` device sends a tensor once at its longest per-destination time, otherwise once per
destination device; it receives each tensor once), so the DP's optimum is a lower bound of the
pipeline optimum; the period also counts link occupancy, which the DP leaves out, and model inputs
and sink outputs add nothing to the DP's value. Its placement is judged by the evaluator: when the
evaluated period equals the DP's value the answer is proven optimal. Otherwise (or when the
pipeline needs a missing link) CP-SAT, whose model holds the pipeline rows and the whole period,
finishes from the DP's pipeline within the time left, with the DP's value as a proven bound
(``raw={"finish": false}``: report the DP's answer as ``feasible`` instead). The value is exact,
and the DP alone proves every answer (:func:`exactness_problem`), when every device that does not
overlap communication has links of one bandwidth and is ``send_once``, and no link between two
devices that overlap can bind: the MSR model (docs/msr.md: accelerators plus CPUs without
communication), where the period is the max-load.

Method. Units (:mod:`solvers.pipeline_units`: colocation classes, their convex hulls, free layers)
and device classes (devices the stage value cannot tell apart) shrink the DP; then a search on a
threshold ``T`` (:func:`solvers.pipeline_search.search`: the DP with every stage ``<= T``) is run
for rising ``T`` from a lower bound (the larger of :func:`solvers.pipeline_search.dp_lower_bound` and
the fractional-placement LP, :func:`solvers.lp_bound.fractional_period_bound`): each failure
proves the optimum above ``T``, the first success is the optimum. An incumbent from the same DP
on one topological order (a chain, PipeDream's linearisation) caps ``T`` and answers if time runs
out; the last search runs just below it (relative 1e-9), and its failure proves the incumbent
optimal without enumerating the many stages that merely equal it.

Complexity. With ``D`` down-sets of the units, ``K_c`` devices in class ``c`` and ``P = prod_c
(K_c + 1)`` count vectors: ``O(P D)`` states and ``O(P D^2)`` stage enumerations in the worst case
(every pair ``I' ⊂ I``), each ``O(deg)``; identical devices (one class) give ``O(K D^2)``, fully
heterogeneous ones (``K`` classes of one device) ``O(2^K D^2)``. The threshold prunes all but the
stages of value ``<= T``, so in practice the cost is that of the pairs near the optimum.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from formulation.model import DEVICE_FEATURES, Instance
from solvers.additive import EXACT_OPTIONS, static_infeasibility
from solvers.base import RawSolution, Solver
from solvers.bounds import cheap_lower_bound
from solvers.lp_bound import MAX_COLUMNS, fractional_period_bound
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.pipeline_search import Plan, SearchTimeout, chain_order, dp_lower_bound, search
from solvers.pipeline_units import Units, build_units, device_classes
from solvers.result import Termination

#: Relative step of the threshold after a failed search (doubled after each failure).
STEP = 0.005
#: Relative margin of the last search below the incumbent (its failure proves the incumbent).
PROOF_RTOL = 1e-9
#: Most vectors of device counts per class (states per down-set) accepted: 2^17 for 17 distinct devices.
MAX_COUNT_VECTORS = 2e5
#: Raw options.
RAW_KEYS = frozenset({"heuristic", "contract", "bound", "finish"})


def count_vectors(inst: Instance) -> float:
    """``prod_c (K_c + 1)`` over the device classes (devices with equal columns and figures), an
    upper bound of the DP's count vectors (units may merge more classes)."""
    n = inst.n
    classes = device_classes(inst, np.arange(n, dtype=np.int64), n)
    return float(np.prod([len(c.devices) + 1.0 for c in classes]))


def exactness_problem(inst: Instance) -> str | None:
    """Why the DP's stage values might fall below the period on ``inst`` (``None``: they cannot, so
    every answer is proven; the module docstring's conditions). ``auto`` uses the DP only then."""
    g, s = inst.graph, inst.system
    if not inst.problem.constraints.pipeline:
        return "no constraints.pipeline"
    if not (s.has_link | np.eye(s.k, dtype=bool)).all():
        return "a missing link (the DP's stages may exchange tensors with any later stage)"
    if s.sink_index is not None:
        return "a sink (the DP does not count sending the outputs)"
    if any(g.consumers[t] and g.tensor_bytes[t] > 0 for t in range(g.n, g.n + g.m)):
        return "model inputs read by layers (the DP does not count shipping them)"
    links = s.has_link & ~np.eye(s.k, dtype=bool)
    if not links.any():
        return None
    uniform = np.zeros(s.k, dtype=bool)
    for d in np.flatnonzero(~s.comm_overlap):
        bw = np.concatenate([s.bandwidth[d, links[d]], s.bandwidth[links[:, d], d]])
        uniform[d] = bool(s.send_once[d]) and bw.size > 0 and bool((bw == bw[0]).all())
        if not uniform[d]:
            return f"device {s.device_ids[d]!r} sends per destination or has channels of different bandwidths"
    total = float(g.output_bytes.sum())
    floor = None
    for a, b in zip(*np.nonzero(links), strict=True):
        if uniform[a] or uniform[b]:
            continue  # the channel is never busier than its non-overlapping end
        if floor is None:
            from solvers.pipeline_search import dp_lower_bound

            floor = dp_lower_bound(build_units(inst))
        if total / float(s.bandwidth[a, b]) > floor:
            return f"the channel {s.device_ids[a]} -> {s.device_ids[b]} between two overlapping devices may bind"
    return None


def plan_placement(U: Units, plan: Plan, n: int) -> np.ndarray:
    """Device index per layer: the stages in order, each on the next free device of its class."""
    P = np.empty(n, dtype=np.int64)
    nxt = [0] * len(U.classes)
    for mask, c in plan.stages:
        d = U.classes[c].devices[nxt[c]]
        nxt[c] += 1
        x = 0
        while mask:
            if mask & 1:
                P[U.members[x]] = d
            mask >>= 1
            x += 1
    return P


class PipelineDP(Solver):
    """Least period over pipelines of a DAG (down-set DP, Tarnawski et al. 2020)."""

    name = "pipeline-dp"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"throughput"}),
        constraints=frozenset(
            {"memory", "memory_params", "allowed", "private", "colocate", "max_devices", "contiguous", "pipeline"}
        ),
        features=frozenset(DEVICE_FEATURES),
        note="needs constraints.pipeline (raw heuristic: a pipeline for contiguous instances); proven by the DP "
        "when the evaluator agrees with its stage values (always on the MSR model), else finished by CP-SAT",
    )
    supported_options = EXACT_OPTIONS | {"raw"}
    description = "pipelines of a DAG by a DP over down-sets (Tarnawski et al., NeurIPS 2020); period"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Capabilities, the raw keys, and ``pipeline`` (or ``raw heuristic`` with ``contiguous``)."""
        super().check(inst, options)
        unknown = set(options.raw) - RAW_KEYS
        if unknown:
            raise UnsupportedProblem(
                f"solver 'pipeline-dp' has no raw option(s) {sorted(unknown)}; it takes {sorted(RAW_KEYS)}"
            )
        vectors = count_vectors(inst)
        if vectors > MAX_COUNT_VECTORS:
            raise UnsupportedProblem(
                f"solver 'pipeline-dp' refuses {inst.name!r}: its devices form classes with {vectors:.3g} vectors of "
                f"device counts (at most {MAX_COUNT_VECTORS:.0g}; fully different devices give 2^k)"
            )
        c = inst.problem.constraints
        if not c.pipeline and not options.raw.get("heuristic"):
            raise UnsupportedProblem(
                f"solver 'pipeline-dp' cannot solve instance {inst.name!r} exactly: it needs constraints.pipeline "
                "(pass raw={'heuristic': true} for the best pipeline as a heuristic answer)"
            )

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
        c = inst.problem.constraints
        exact = c.pipeline
        why = static_infeasibility(inst)
        if why:
            return RawSolution(Termination.INFEASIBLE if exact else Termination.COMPLETED, message=why)
        U = build_units(inst, contract_free=bool(options.raw.get("contract", True)))
        max_stages = c.max_devices if c.max_devices is not None else inst.k
        # The fractional-placement LP bounds every stage value too (a stage's value is at least its
        # compute time, its memory at least its weights): a higher start saves failing thresholds.
        lb = max(dp_lower_bound(U), fractional_period_bound(inst, max_columns=MAX_COLUMNS))
        build = time.perf_counter() - t0
        extra: dict[str, object] = {"units": U.count, "device_classes": len(U.classes), "thresholds": []}
        if time.perf_counter() > deadline:
            # Building the units is linear in the graph but not interruptible: stop right after it.
            return RawSolution(Termination.TIME_LIMIT, build_time_s=build, extra=extra,
                               bound=_limit_bound(inst, options, lb, exact),
                               message="time limit while building the units")
        incumbent: Plan | None = None
        with contextlib.suppress(SearchTimeout):
            incumbent = _rising(U, lb, math.inf, max_stages, deadline, chain_order(U), extra, step=0.05)
        plan: Plan | None = None
        proven_lb = lb
        timed_out = incumbent_proven = False
        if incumbent is not None:
            try:
                plan = _rising(U, lb, incumbent.value, max_stages, deadline, None, extra, step=STEP)
                if plan is None:
                    plan, incumbent_proven = incumbent, True
            except SearchTimeout:
                timed_out = True
            thresholds = extra["thresholds"]
            assert isinstance(thresholds, list)
            fails = [T for T, found, chain, _ in thresholds if not found and not chain]
            proven_lb = max([lb, *fails])
        solve = time.perf_counter() - t0 - build
        if plan is None and incumbent is None and not timed_out:
            # No pipeline along the chain order within max_devices stages: one search without a
            # threshold decides (its answer, if any, is the optimum).
            try:
                plan = _rising(U, math.inf, math.inf, max_stages, deadline, None, extra, step=STEP)
            except SearchTimeout:
                timed_out = True
            if plan is None and not timed_out:
                return RawSolution(
                    Termination.INFEASIBLE if exact else Termination.COMPLETED,
                    build_time_s=build,
                    solve_time_s=time.perf_counter() - t0 - build,
                    extra=extra,
                    message="no pipeline satisfies the constraints",
                )
        best = plan or incumbent
        if best is None:
            return RawSolution(Termination.TIME_LIMIT, build_time_s=build, solve_time_s=solve, extra=extra,
                               bound=_limit_bound(inst, options, proven_lb, exact), message="the DP did not finish")
        P = plan_placement(U, best, inst.n)
        extra["dp_value"] = best.value
        extra["stages"] = len(best.stages)
        from formulation.evaluator import evaluate

        ev = evaluate(inst, P)
        if plan is None:
            bound = _limit_bound(inst, options, proven_lb, exact)
            return RawSolution(Termination.TIME_LIMIT, placement=P if ev.feasible else None, bound=bound,
                               build_time_s=build, solve_time_s=solve, extra=extra,
                               message="time limit: the chain-order incumbent")
        value = ev.objective if ev.feasible else math.inf
        agrees = value <= best.value * (1 + 1e-9) + 1e-15
        if not ev.feasible and not exact:
            # A missing link (the stage values assume every channel): no answer from the heuristic.
            return RawSolution(Termination.COMPLETED, build_time_s=build, solve_time_s=solve, extra=extra,
                               message="the best pipeline by stage values needs a missing link")
        if exact and agrees:
            return RawSolution(Termination.OPTIMAL, placement=P, bound=proven_lb if incumbent_proven else -math.inf,
                               build_time_s=build, solve_time_s=solve, extra=extra)
        bound = best.value * (1 - 1e-12) if exact else _heuristic_bound(inst, options)
        if exact and not agrees and options.raw.get("finish", True):
            return _finish(inst, options, P, value, bound, deadline, build, extra)
        msg = "" if agrees else "the period exceeds the DP's stage values (link occupancy): the DP's value is the bound"
        return RawSolution(Termination.COMPLETED, placement=P, bound=bound, build_time_s=build, solve_time_s=solve,
                           extra=extra, message=msg)


def _finish(
    inst: Instance,
    options: SolverOptions,
    P: np.ndarray,
    value: float,
    dp_bound: float,
    deadline: float,
    build: float,
    extra: dict[str, object],
) -> RawSolution:
    """CP-SAT (whose model has the pipeline rows and the whole period) from the DP's pipeline, where
    the DP's stage values miss part of the period (link occupancy between overlapping devices,
    model inputs, the sink): the DP's value stays a proven bound and its pipeline the incumbent."""
    from solvers.registry import get_solver
    from solvers.result import Status

    t0 = time.perf_counter()
    left = deadline - t0
    ids, devs = inst.graph.layer_ids, inst.system.device_ids
    if left <= 0:
        return RawSolution(Termination.TIME_LIMIT, placement=P if math.isfinite(value) else None, bound=dp_bound,
                           build_time_s=build, extra=extra, message="time limit before CP-SAT could finish")
    opts = SolverOptions(
        time_limit_s=left if math.isfinite(left) else None,
        seed=options.seed,
        threads=options.threads,
        warm_start={ids[v]: devs[int(P[v])] for v in range(inst.n)},
    )
    res = get_solver("cpsat").solve(inst, opts)
    extra["finished_by"] = {"solver": "cpsat", "status": res.status.value, "wall_s": res.wall_time_s}
    bound = max(dp_bound, res.bound) if res.bound is not None and math.isfinite(res.bound) else dp_bound
    better = bool(res.placement) and res.objective is not None and res.objective < value
    if not better and not math.isfinite(value):
        # The DP's pipeline needs a missing link and CP-SAT found nothing: no placement to report.
        term = Termination.INFEASIBLE if res.status == Status.INFEASIBLE else Termination.TIME_LIMIT
        return RawSolution(term, bound=dp_bound, build_time_s=build, solve_time_s=time.perf_counter() - t0,
                           extra=extra, message=f"CP-SAT from the DP's answer: {res.status.value}")
    placement = inst.placement_indices(res.placement) if better else P
    atol = float(res.extra.get("scaling_error", 0.0) or 0.0)
    if res.status == Status.OPTIMAL:
        term = Termination.OPTIMAL
    elif res.termination == Termination.TIME_LIMIT:
        term = Termination.TIME_LIMIT
    else:
        term = Termination.COMPLETED
    return RawSolution(term, placement=placement, bound=bound, objective_atol=atol, build_time_s=build,
                       solve_time_s=time.perf_counter() - t0, extra=extra,
                       message="the period exceeds the DP's stage values (link occupancy, inputs or outputs): "
                       f"CP-SAT finished from the DP's pipeline ({res.status.value})")


def _heuristic_bound(inst: Instance, options: SolverOptions) -> float:
    """The cheap lower bound of the general problem, unless ``raw={"bound": false}`` (a hint)."""
    return cheap_lower_bound(inst) if options.raw.get("bound", True) else -math.inf


def _limit_bound(inst: Instance, options: SolverOptions, proven: float, exact: bool) -> float:
    """The bound at a time limit: the DP's proven bound (exact mode) or none, and the cheap bound of
    the general problem (:func:`solvers.bounds.cheap_lower_bound`, with the fractional-placement
    LP), which is below every pipeline's period too; the larger of the two."""
    return max(proven if exact else -math.inf, _heuristic_bound(inst, options))


def _rising(
    U: Units,
    lb: float,
    ub: float,
    max_stages: int,
    deadline: float,
    order: tuple[list[int], list[list[int]]] | None,
    extra: dict[str, object],
    step: float,
) -> Plan | None:
    """Searches at rising thresholds from ``lb`` (times ``1 + step``, the step doubling after each
    failure) until one succeeds or the threshold reaches ``ub``, the incumbent's value: then one last
    search just below it (``None``: the incumbent is optimal)."""
    thresholds = extra["thresholds"]
    assert isinstance(thresholds, list)
    T = lb * (1 + step) if lb > 0 else (ub if math.isfinite(ub) else math.inf)
    while True:
        last = ub <= T
        if last:
            # Strictly below the incumbent: nothing found proves it optimal (to PROOF_RTOL), and
            # the search no longer enumerates the many stages that merely equal it.
            T = ub * (1 - PROOF_RTOL)
        t0 = time.perf_counter()
        plan = search(U, T, max_stages, deadline, order)
        thresholds.append((T, plan is not None, order is not None, time.perf_counter() - t0))
        if plan is not None or last:
            return plan
        step = min(2 * step, 1e6)
        T = T * (1 + step) if 0 < T < 1e300 else math.inf
