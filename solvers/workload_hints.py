"""A start for ``cpsat-v2``: the alone bound and the alone placements (docs/instance-format.md §9).

Before the joint CP-SAT model is solved, every request is solved alone
(:func:`solvers.workload_bounds.alone_bound`): the aggregate of the alone optima is a proven lower
bound of the joint optimum, and the alone placements put together are a joint placement; so are
those found with each request's model at block granularity. Both are judged by the evaluator with
its default schedule (§9.5) and the better one is kept. Then

* when that placement is feasible and its objective meets the bound (gap <= ``OPTIMAL_GAP``), it is
  a proven optimum and CP-SAT is not run (contention costs that placement nothing);
* otherwise the placement, its transfers and its schedule (timed in the model's integer units) are
  CP-SAT's hint, the placement is kept as an incumbent should CP-SAT return nothing better, and the
  reported bound is the larger of CP-SAT's and the alone bound (both valid lower bounds).

Options (``--option KEY=VALUE``): ``alone`` (default true; false: the CP-SAT model alone, as
before), ``alone_time_s`` (seconds for the alone problems; default 40 % of the time limit, 20 s
without one), ``alone_solver`` (the version-1 solver of the alone problems; default ``highs``
under ``schedule``, whose parallel-latency bounds closed faster than CP-SAT's on the 4-DNN
benchmark of benchmarks/routed_schedule.py, and ``auto`` under ``none``).
Not used for network states (§10) or generation requests (§9.10), whose times differ from the
layer-time table the alone problems use.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from formulation.evaluator import evaluate
from formulation.evaluator.jobshop import build_tasks
from formulation.evaluator.workload_eval import workload_metrics
from formulation.model import Instance, IntArray
from solvers.base import OPTIMAL_GAP, RawSolution
from solvers.options import OptionNotSupported, SolverOptions
from solvers.result import Termination, compute_gap
from solvers.workload_bounds import AloneBound, alone_bound

RAW_KEYS = frozenset({"alone", "alone_time_s", "alone_solver"})


def check_raw(options: SolverOptions) -> None:
    """Refuse backend options ``cpsat-v2`` does not know."""
    unknown = set(options.raw) - RAW_KEYS
    if unknown:
        raise OptionNotSupported(f"solver 'cpsat-v2' has no option(s) {sorted(unknown)} (it knows {sorted(RAW_KEYS)})")
    if "alone_solver" in options.raw:
        from solvers.registry import UnknownSolver, get_solver

        try:
            get_solver(str(options.raw["alone_solver"]))
        except UnknownSolver as exc:
            raise OptionNotSupported(f"solver 'cpsat-v2': option alone_solver: {exc}") from None
    if "alone_time_s" in options.raw:
        try:
            ok = float(options.raw["alone_time_s"]) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise OptionNotSupported(
                f"solver 'cpsat-v2': option alone_time_s={options.raw['alone_time_s']!r}: expected seconds >= 0")


def _flag(value: Any) -> bool:
    return str(value).strip().lower() not in ("false", "0", "no", "off")


def applies(inst: Instance) -> bool:
    """The alone problems use the layer-time table: not for network states or generation requests."""
    wl = inst.workload
    return (
        wl is not None
        and inst.problem.scenarios is None
        and all(getattr(r, "generate", None) is None for r in wl.requests)
    )


@dataclass
class Warm:
    """The alone bound, the joint placement made of the alone placements and its evaluation."""

    alone: AloneBound
    placement: IntArray | None
    objective: float
    schedule: dict[str, float] | None
    feasible: bool

    @property
    def proven(self) -> bool:
        """The placement meets the bound: a proven optimum."""
        return self.feasible and compute_gap(self.objective, self.alone.bound) <= OPTIMAL_GAP

    def extra(self) -> dict[str, Any]:
        """What the result reports under ``extra["alone"]``."""
        return {
            "bound": self.alone.bound,
            "lower": list(self.alone.lower),
            "hint_objective": self.objective if self.feasible else math.inf,
            "proven": self.alone.proven,
            "seconds": self.alone.seconds,
        }

    def solution(self, build_s: float) -> RawSolution:
        """The placement itself as the answer (proven, or CP-SAT found nothing better)."""
        return RawSolution(
            Termination.OPTIMAL if self.proven else Termination.TIME_LIMIT,
            placement=self.placement,
            schedule=self.schedule,
            bound=self.alone.bound,
            build_time_s=build_s,
            method="cpsat-v2 (alone bound)" if self.proven else "",
            extra={"alone": self.extra()},
        )

    def hint(self, builder: Any) -> None:
        """The placement, its transfers and its schedule as CP-SAT's hint (replacing the model's own)."""
        if self.placement is None:
            return
        m = builder.model
        inst = builder.inst
        g, k, P = inst.graph, inst.k, self.placement
        m.clear_hints()
        for v in range(g.n):
            for d in range(k):
                m.add_hint(builder.x[v][d], int(P[v]) == d)
        wm = workload_metrics(inst, P)
        sent = {(tr.tensor, tr.dst) for tr in wm.loads.transfers}
        for (t, a, b), y in builder.y.items():
            producer = int(P[t]) if t < g.n else a
            m.add_hint(y, a == producer and (t, b) in sent)
        if builder.scheduled and self.schedule is not None:
            for var, value in _integer_starts(builder, P, self.schedule).items():
                m.add_hint(var, value)

    def merge(self, inst: Instance, raw: RawSolution) -> RawSolution:
        """CP-SAT's answer with the alone bound and, when CP-SAT found nothing better, the placement."""
        raw.extra["alone"] = self.extra()
        if math.isfinite(self.alone.bound):
            raw.bound = max(raw.bound, self.alone.bound)
        if not self.feasible or raw.termination in (Termination.OPTIMAL, Termination.INFEASIBLE, Termination.ERROR):
            return raw
        if raw.placement is None:
            keep = self.solution(raw.build_time_s)
            return replace(keep, solve_time_s=raw.solve_time_s, bound=raw.bound, extra=raw.extra)
        found = evaluate(inst, raw.placement, raw.schedule)
        if not (found.feasible and found.objective <= self.objective):
            return replace(raw, placement=self.placement, schedule=self.schedule, solver_objective=None)
        return raw


def solve_with_warm_start(run: Any, inst: Instance, options: SolverOptions) -> RawSolution:
    """``run(inst, options, prepare, spent_s)`` (the CP-SAT model; ``prepare(builder)`` adds the hint,
    ``spent_s`` is taken from its time limit) after the alone problems, merged as described above."""
    t0 = time.perf_counter()
    warm = warm_start(inst, options)
    if warm is None:
        return run(inst, options, None, 0.0)
    spent = time.perf_counter() - t0
    if warm.proven:
        return warm.solution(spent)
    return warm.merge(inst, run(inst, options, warm.hint, spent))


def warm_start(inst: Instance, options: SolverOptions) -> Warm | None:
    """Solve every request alone and judge the joint placement (``None`` when switched off)."""
    if not _flag(options.raw.get("alone", True)) or not applies(inst):
        return None
    limit = options.time_limit_s
    budget = float(options.raw.get("alone_time_s", 0.4 * limit if limit else 20.0))
    default = "highs" if inst.workload is not None and inst.workload.contention == "schedule" else "auto"
    solver = str(options.raw.get("alone_solver", default))
    ab = alone_bound(inst, budget, solver)
    best = Warm(ab, None, math.inf, None, False)
    for P in (ab.placement, ab.coarse):  # the better of the fine and the block-granularity starts
        if P is None:
            continue
        ev = evaluate(inst, P)
        ok = bool(ev.feasible) and math.isfinite(ev.objective)
        if best.placement is None or (ok and (not best.feasible or ev.objective < best.objective)):
            best = Warm(ab, P, float(ev.objective), dict(ev.schedule) if ev.schedule else None, ok)
    return best


def _integer_starts(builder: Any, P: IntArray, schedule: dict[str, float]) -> dict[Any, int]:
    """The schedule's task order timed in the model's integer units (each task at its earliest start
    after its predecessors and the previous task on its resource), so that the hint satisfies the
    model's rounded durations and delays; maps each start variable to its value."""
    inst = builder.inst
    g, s = inst.graph, inst.system
    unit = builder.unit

    def q(sec: float) -> int:
        return math.floor(sec / unit)

    tasks = build_tasks(inst, workload_metrics(inst, P).loads)
    order = sorted(range(tasks.size), key=lambda i: (schedule.get(tasks.keys[i], 0.0), i))
    var_of: dict[str, Any] = {g.layer_ids[v]: builder.start[v] for v in range(g.n)}
    for (t, a, b, h), st in builder.hop_start.items():
        producer = int(P[t]) if t < g.n else a
        if producer == a:
            var_of[f"{g.tensor_ids[t]}>{s.device_ids[b]}#{h}"] = st
    layer_task = {key: i for i, key in enumerate(tasks.keys)}
    start = np.zeros(tasks.size, dtype=np.int64)
    end = np.zeros(tasks.size, dtype=np.int64)
    free: dict[int, int] = {}
    done: set[int] = set()
    pending = list(order)
    while pending:
        idx = next(n for n, i in enumerate(pending) if all(p in done for p, _ in tasks.preds[i]))
        i = pending.pop(idx)
        st0 = max([q(tasks.release[i]), free.get(tasks.resource[i], 0),
                   *(int(end[p]) + q(dl) for p, dl in tasks.preds[i])])
        key = tasks.keys[i]
        if key in g.layer_index:  # the model also orders a layer after every same-request predecessor
            v = g.layer_index[key]
            st0 = max([st0, *(int(end[layer_task[g.layer_ids[u]]]) for u in g.preds[v]
                              if g.layer_ids[u] in layer_task and layer_task[g.layer_ids[u]] in done)])
        start[i] = st0
        end[i] = st0 + max(q(tasks.dur[i]), 1)
        free[tasks.resource[i]] = int(end[i])
        done.add(i)
    return {var_of[key]: int(start[i]) for i, key in enumerate(tasks.keys) if key in var_of}
