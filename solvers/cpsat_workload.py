"""``cpsat-v2``: version-2 workloads (docs/instance-format.md §9) as one CP-SAT model, ``none`` and
``schedule`` contention, objective latency (the aggregate of per-request latencies).

Variables and constraints (each with its source in the format):

* ``x[v, d]`` — layer ``v`` (a combined ``REQUEST/LAYER``) runs on device ``d``; ``sum_d x[v, d] = 1``,
  fixed to 0 where ``allowed``/``private`` forbid ``d`` (§9.2, §5.10);
* ``at[t, b]`` — tensor ``t`` is needed on ``b``: ``at >= x[c, b]`` for every consumer ``c`` and
  ``at <= sum_c x[c, b]`` (plus 1 when ``b`` is its request's sink and ``t`` an output) (§5.2);
* ``y[t, a, b]`` — ``t`` travels from its producer's device ``a`` to ``b != a`` over the route of
  §9.4: ``y = x[t, a] AND at[t, b]`` (``x[t, a]`` is the constant 1 or 0 for a model input);
* ``none``: ``L_r = sum_v t(v, d) x[v, d] + sum duration(t, a, b) y[t, a, b]`` over ``r``'s layers
  and tensors (§9.5, the sequential run alone);
* ``schedule``: an optional interval per (layer, device) with presence ``x`` and per hop of every
  possible transfer with presence ``y``; NoOverlap per device and per channel (one task at a time,
  §9.5); a hop starts after the producer ends (or the release, for inputs) and after the previous
  hop's end plus its delay; a consumer starts after the last hop's end plus its delay when both are
  present, and after its same-request predecessors end; every task of ``r`` starts at or after
  ``release_r``; ``C_r >=`` each output's end and its arrival at the sink; ``L_r = C_r - release_r``;
* memory (§9.6): ``z[key, d] >= x[v, d]`` for the layers sharing a weights key, and per request and
  device ``m[r, d] >= ws(v) x[v, d]``; ``sum z param + sum_r m <= memory(d)``; ``max_devices`` by
  used-device indicators; request deadlines ``L_r <= deadline_r``.

Times are integers in a unit ``u`` of 1e-9 of the horizon, durations rounded **down**: every
placement and schedule is then no longer in the model than in truth, so the model's proven bound,
times ``u``, is a valid lower bound of the true optimum. Under ``schedule`` a task of size 0 gets one
unit (CP-SAT would otherwise let it sit inside another task on its device or channel, which §9.5
forbids); the bound is lowered by one unit per such task and request weight to stay valid, and
deadlines are relaxed by as many units. The placement found is judged by the evaluator; under
``schedule`` the order CP-SAT chose is re-timed with the true durations (each task at its earliest
start after the previous one on its device or channel), which is what the evaluator checks. The
rounding shows only in the gap (at most ``tasks x u`` per request).
"""

from __future__ import annotations

import math
import time
from typing import Any, cast

import numpy as np

from formulation.evaluator.jobshop import build_tasks
from formulation.evaluator.workload_eval import workload_metrics
from formulation.generation import memory_terms, phase_tables
from formulation.model import Instance
from formulation.scenarios import state_instances
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: Integer time steps in the horizon (the rounding unit is the horizon divided by this). CP-SAT's
#: presolve returned a wrong optimum on a tiny instance at 1e11 steps (fine at 1e10): keep well below.
STEPS = 10**9


class CpSatWorkload(Solver):
    """Exact CP-SAT model of version-2 workloads under ``none`` and ``schedule`` contention."""

    name = "cpsat-v2"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency"}),
        constraints=frozenset({"memory", "memory_params", "allowed", "private", "max_devices"}),
        workload=frozenset({"none", "schedule", "routing", "generation"}),
        scenarios=True,
        note="version 2 only: latency aggregate under none or schedule; network states",
    )
    supported_options = frozenset({"time_limit_s", "threads", "seed", "raw"})
    description = "CP-SAT on version-2 workloads (none, schedule): latency aggregate, exact"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError as exc:  # pragma: no cover - ortools is a dependency
            return False, f"OR-Tools is not installed ({exc})"
        return True, ""

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        from solvers.workload_hints import check_raw

        check_raw(options)  # alone, alone_time_s, alone_solver (solvers/workload_hints.py)
        wl = inst.workload
        if wl is None:
            raise UnsupportedProblem(f"solver 'cpsat-v2' solves version-2 workloads only; {inst.name!r} is version 1")
        why = []
        if wl.rated:
            why.append("rates (utilisation constraints)")
        if any(r.weight != int(r.weight) for r in wl.requests):
            why.append("non-integer request weights")
        if inst.problem.scenarios is not None:  # network states (§10)
            from solvers.cpsat_workload_robust import refusals

            why += refusals(inst)
        if why:
            raise UnsupportedProblem(f"solver 'cpsat-v2' cannot solve instance {inst.name!r}: " + "; ".join(why))

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        from solvers.workload_hints import solve_with_warm_start

        # each request alone first: a bound, a hint, maybe the proof (solvers/workload_hints.py)
        return solve_with_warm_start(self._solve_model, inst, options)

    def _solve_model(self, inst: Instance, options: SolverOptions, prepare: Any = None, spent_s: float = 0.0
                     ) -> RawSolution:
        from ortools.sat.python import cp_model

        t0 = time.perf_counter()
        b = _Builder(inst)
        if prepare is not None:
            prepare(b)
        m = b.model
        solver = cp_model.CpSolver()
        if options.time_limit_s:
            solver.parameters.max_time_in_seconds = max(float(options.time_limit_s) - spent_s, 1.0)
        solver.parameters.num_workers = options.threads or 2
        if options.seed is not None:
            solver.parameters.random_seed = options.seed
        build = time.perf_counter() - t0
        status = solver.solve(m)
        solve_t = time.perf_counter() - t0 - build
        if status == cp_model.INFEASIBLE:
            return RawSolution(Termination.INFEASIBLE, build_time_s=build, solve_time_s=solve_t)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            term = Termination.TIME_LIMIT if status == cp_model.UNKNOWN else Termination.ERROR
            return RawSolution(term, build_time_s=build, solve_time_s=solve_t, message=solver.status_name(status))
        P = np.array([[solver.value(b.x[v][d]) for d in range(inst.k)] for v in range(inst.n)]).argmax(axis=1)
        if b.robust is not None:  # network states: a schedule per state, the robust objective's scale
            return cast(RawSolution, b.robust.solution(solver, status == cp_model.OPTIMAL, P, build, solve_t))
        schedule = b.retime(P, solver) if b.scheduled else None
        # a task of size 0 was given one unit: each lengthens a request's completion by one unit at most
        weights0 = float(sum(r.weight for r in inst.workload.requests)) if inst.workload else 1.0
        bound = (solver.best_objective_bound - b.zero_sized * weights0) * b.unit
        tasks = inst.n + len(b.y) * inst.k
        assert inst.workload is not None
        weights = float(sum(r.weight for r in inst.workload.requests))
        return RawSolution(
            Termination.OPTIMAL if status == cp_model.OPTIMAL else Termination.TIME_LIMIT,
            placement=P,
            schedule=schedule,
            bound=bound,
            # re-timing with the true durations moves each completion by at most every task's rounding
            objective_atol=tasks * b.unit * weights,
            build_time_s=build,
            solve_time_s=solve_t,
            extra={"unit_s": b.unit, "branches": solver.num_branches},
        )


def _horizon(inst: Instance, scheduled: bool) -> float:
    """An upper bound on every time the model holds: under ``schedule`` the latest release and then
    everything in series (a semi-active schedule); under ``none`` the longest request alone."""
    wl = inst.workload
    assert wl is not None
    g, s, k = inst.graph, inst.system, inst.k
    tab = phase_tables(inst)  # a generation (§9.10): its passes' sums of times, bytes and delays
    slowest = np.where(np.isfinite(tab.time), tab.time, 0.0).max(axis=1)
    serial = np.zeros(len(wl.requests))
    for v in range(g.n):
        serial[int(wl.request_of_layer[v])] += slowest[v]
    for t in range(g.n + g.m):
        npass = float(tab.passes[int(wl.request_of_tensor[t])])
        longest = max(
            (sum(float(tab.tensor_bytes[t]) / float(s.bandwidth[i, j]) + npass * float(s.link_latency[i, j])
                 for i, j in r)
             for r in wl.routes.values()),
            default=0.0,
        )
        serial[int(wl.request_of_tensor[t])] += (k - 1) * longest
    if scheduled:
        return float(serial.sum()) + max((r.release_s for r in wl.requests), default=0.0)
    return float(serial.max())


class _Builder:
    """The CP-SAT model of one instance (see the module docstring)."""

    def __init__(self, inst: Instance) -> None:
        from ortools.sat.python import cp_model

        wl = inst.workload
        assert wl is not None
        self.inst = inst
        g, s, k = inst.graph, inst.system, inst.k
        self.scheduled = wl.contention == "schedule"
        m = cp_model.CpModel()
        self.model = m
        self.robust: Any = None  # network states (docs/instance-format.md §10): solvers/cpsat_workload_robust.py
        # one unit for every state (each state is an instance of its own, with its own times)
        horizon_s = max(_horizon(st, self.scheduled) for st in state_instances(inst))
        self.unit = max(horizon_s, 1e-12) / STEPS
        self.zero_sized = 0
        self.H = int(STEPS * 4)

        def q(sec: float) -> int:
            return math.floor(sec / self.unit)

        mask = inst.placement_mask
        self.x = [[m.new_bool_var(f"x{v}_{d}") for d in range(k)] for v in range(g.n)]
        for v in range(g.n):
            # a hint: each request on its own source where allowed (no transfer but its outputs to the sink)
            src = wl.requests[int(wl.request_of_layer[v])].source
            hint = src if mask[v, src] else int(np.argmax(mask[v]))
            for d in range(k):
                m.add_hint(self.x[v][d], d == hint)
            m.add_exactly_one(self.x[v])
            for d in range(k):
                if not mask[v, d] or not math.isfinite(phase_tables(inst).time[v, d]):
                    m.add(self.x[v][d] == 0)
        one = m.new_constant(1)
        zero = m.new_constant(0)
        trusted = s.trusted
        for req in wl.requests:  # a private tensor bound for an untrusted device (§9.7): no placement is feasible
            priv = inst.private_tensors
            if (any(priv[t] for t in req.inputs) and not trusted[req.source]) or (
                req.sink is not None and not trusted[req.sink] and any(priv[o] for o in req.outputs)
            ):
                m.add_bool_or([zero])

        def on(t: int, d: int) -> Any:
            if t < g.n:
                return self.x[t][d]
            return one if wl.requests[int(wl.request_of_tensor[t])].source == d else zero

        # transfers: y[t][(a, b)]
        self.y: dict[tuple[int, int, int], Any] = {}
        for t in range(g.n + g.m):
            req = wl.requests[int(wl.request_of_tensor[t])]
            cons = g.consumers[t]
            to_sink = t < g.n and bool(g.is_output[t]) and req.sink is not None
            for bdev in range(k):
                if not cons and not (to_sink and bdev == req.sink):
                    continue
                at = m.new_bool_var(f"at{t}_{bdev}")
                users = [self.x[c][bdev] for c in cons]
                if to_sink and bdev == req.sink:
                    m.add(at == 1)
                else:
                    for u in users:
                        m.add_implication(u, at)
                    m.add_bool_or([*users, at.Not()])
                for a in range(k):
                    if a == bdev:
                        continue
                    src = on(t, a)
                    if src is zero:
                        continue
                    y = m.new_bool_var(f"y{t}_{a}_{bdev}")
                    m.add_implication(y, at)
                    if src is not one:
                        m.add_implication(y, src)
                        m.add_bool_or([src.Not(), at.Not(), y])
                    else:
                        m.add_bool_or([at.Not(), y])
                    if wl.route(a, bdev) is None:
                        m.add(y == 0)  # no route: such a placement is infeasible (violation link)
                    self.y[(t, a, bdev)] = y
        self._memory(m, q)
        if inst.problem.scenarios is not None:  # a copy of the times per state, the robust objective
            from solvers.cpsat_workload_robust import StateModel

            self.robust = StateModel(self, q, one)
            return
        L = self._latencies(m, q, one)
        w = [int(r.weight) for r in wl.requests]
        for r, req in enumerate(wl.requests):
            if req.deadline_s is not None:
                # each zero-length task was given one unit: allow for them (§9.5 counts them as 0)
                m.add(L[r] <= math.ceil(req.deadline_s * (1 + 1e-9) / self.unit) + self.zero_sized)
        if wl.aggregate == "sum":
            m.minimize(sum(wi * Li for wi, Li in zip(w, L, strict=True)))
        else:
            top = m.new_int_var(0, max(w) * self.H, "top")
            for wi, Li in zip(w, L, strict=True):
                m.add(top >= wi * Li)
            m.minimize(top)

    def _memory(self, m: Any, q: Any) -> None:
        inst = self.inst
        wl = inst.workload
        assert wl is not None
        g, s, c = inst.graph, inst.system, inst.problem.constraints
        if c.max_devices is not None and c.max_devices < inst.k:
            used = [m.new_bool_var(f"used{d}") for d in range(inst.k)]
            for v in range(g.n):
                for d in range(inst.k):
                    m.add_implication(self.x[v][d], used[d])
            m.add(sum(used) <= c.max_devices)
        if not c.memory:
            return
        for d in range(inst.k):
            if not math.isfinite(s.memory[d]):
                continue
            terms = []
            keys: dict[tuple[str, str], Any] = {}
            for v in range(g.n):
                if g.param_bytes[v] <= 0:
                    continue
                key = wl.weight_key[v]
                if key not in keys:
                    keys[key] = m.new_bool_var(f"z{d}_{len(keys)}")
                    terms.append(math.ceil(g.param_bytes[v]) * keys[key])
                m.add_implication(self.x[v][d], keys[key])
            ws, kv = memory_terms(inst)  # kv: a generation's key/value cache at its last step (§9.10)
            terms += [math.ceil(kv[v]) * self.x[v][d] for v in range(g.n) if kv[v] > 0]
            if c.memory_model != "params":
                for r, req in enumerate(wl.requests):
                    top = math.ceil(max((ws[v] for v in req.layers), default=0.0))
                    peak = m.new_int_var(0, top, f"peak{r}_{d}")
                    for v in req.layers:
                        m.add(peak >= math.ceil(ws[v])).only_enforce_if(self.x[v][d])
                    terms.append(peak)
            # bytes are ceiled: a placement within memory by less than a byte may be refused (never a wrong accept)
            m.add(sum(terms) <= math.floor(s.memory[d] * (1 + 1e-9)))

    def _latencies(self, m: Any, q: Any, one: Any, state: Instance | None = None) -> list[Any]:
        """Per-request latency variables, with the figures and routes of ``state`` (default: the instance)."""
        from ortools.sat.python import cp_model

        inst = self.inst if state is None else state
        wl = inst.workload
        assert wl is not None
        g, s, k = inst.graph, inst.system, inst.k
        if not self.scheduled:
            L = []
            tab = phase_tables(inst)  # a generation (§9.10): one request whose figures are its passes' sums
            for r, req in enumerate(wl.requests):
                expr = [
                    q(tab.time[v, d]) * self.x[v][d]
                    for v in req.layers
                    for d in range(k)
                    if math.isfinite(tab.time[v, d])
                ]
                npass = float(tab.passes[r])  # each hop's fixed delay is paid once per pass
                for (t, a, b), y in self.y.items():
                    if int(wl.request_of_tensor[t]) == r:
                        hops = wl.route(a, b) or ()
                        nb = float(tab.tensor_bytes[t])
                        dur = sum(nb / float(s.bandwidth[i, j]) + npass * float(s.link_latency[i, j]) for i, j in hops)
                        expr.append(q(dur) * y)
                Lr = m.new_int_var(0, self.H, f"L{r}")
                m.add(Lr == sum(expr))
                L.append(Lr)
            return L
        H = self.H

        def qs(sec: float) -> int:
            """A task's size: at least one unit, since CP-SAT lets a zero-size interval sit inside another
            while a device or channel runs one task at a time (§9.5); counted in ``zero_sized``."""
            size = q(sec)
            if size == 0:
                self.zero_sized += 1
            return max(size, 1)

        self.start = [m.new_int_var(0, H, f"s{v}") for v in range(g.n)]
        self.end = [m.new_int_var(0, H, f"e{v}") for v in range(g.n)]
        per_res: dict[int, list[Any]] = {}
        for v in range(g.n):
            req = wl.requests[int(wl.request_of_layer[v])]
            m.add(self.start[v] >= q(req.release_s))
            on = [d for d in range(k) if math.isfinite(inst.time[v, d])]
            length = cp_model.LinearExpr.weighted_sum([self.x[v][d] for d in on], [qs(inst.time[v, d]) for d in on])
            m.add(self.end[v] == self.start[v] + length)
            for d in range(k):
                if math.isfinite(inst.time[v, d]):
                    size = qs(inst.time[v, d])
                    iv = m.new_optional_fixed_size_interval_var(self.start[v], size, self.x[v][d], f"i{v}_{d}")
                    per_res.setdefault(d, []).append(iv)
            for u in g.preds[v]:
                m.add(self.start[v] >= self.end[u])
        self.hop_start: dict[tuple[int, int, int, int], Any] = {}
        arrive: dict[tuple[int, int, int], tuple[Any, int]] = {}
        for (t, a, b), y in self.y.items():
            req = wl.requests[int(wl.request_of_tensor[t])]
            path = wl.route(a, b)
            if path is None:
                continue
            prev = None
            for h, (i, j) in enumerate(path):
                occ = qs(float(g.tensor_bytes[t]) / float(s.bandwidth[i, j]))
                st = m.new_int_var(0, H, f"h{t}_{a}_{b}_{h}")
                m.add(st >= q(req.release_s))
                if prev is None:
                    if t < g.n:
                        m.add(st >= self.end[t]).only_enforce_if(y)
                else:
                    m.add(st >= prev[0] + prev[1]).only_enforce_if(y)
                iv = m.new_optional_fixed_size_interval_var(st, occ, y, f"hi{t}_{a}_{b}_{h}")
                per_res.setdefault(k + i * k + j, []).append(iv)
                self.hop_start[(t, a, b, h)] = st
                prev = (st, occ + q(float(s.link_latency[i, j])))
            assert prev is not None
            arrive[(t, a, b)] = prev
            for c in g.consumers[t]:
                m.add(self.start[c] >= prev[0] + prev[1]).only_enforce_if([y, self.x[c][b]])
        for ivs in per_res.values():
            m.add_no_overlap(ivs)
        L = []
        for r, req in enumerate(wl.requests):
            C = m.new_int_var(0, H, f"C{r}")
            for o in req.outputs:
                m.add(self.end[o] <= C)
                if req.sink is not None:
                    for a in range(k):
                        if (o, a, req.sink) in arrive:
                            st, tail = arrive[(o, a, req.sink)]
                            m.add(st + tail <= C).only_enforce_if(self.y[(o, a, req.sink)])
            Lr = m.new_int_var(-H, H, f"L{r}")
            m.add(Lr == C - q(req.release_s))
            L.append(Lr)
        return L

    def retime(self, P: Any, solver: Any, state: Instance | None = None) -> dict[str, float]:
        """The order CP-SAT chose, timed with the true durations (the schedule the evaluator checks)."""
        inst = self.inst if state is None else state
        g, s = inst.graph, inst.system
        wm = workload_metrics(inst, P)
        tasks = build_tasks(inst, wm.loads)
        key_start: dict[str, int] = {g.layer_ids[v]: solver.value(self.start[v]) for v in range(g.n)}
        for (t, a, b, h), st in self.hop_start.items():
            producer = int(P[t]) if t < g.n else a  # a model input has a single possible source
            if producer == a:
                key_start.setdefault(f"{g.tensor_ids[t]}>{s.device_ids[b]}#{h}", solver.value(st))
        order = sorted(range(tasks.size), key=lambda i: (key_start.get(tasks.keys[i], 0), i))
        pos = {i: p for p, i in enumerate(order)}
        # a task never precedes its predecessors in the re-timed order (ties in rounded time)
        order = sorted(order, key=lambda i: (pos[i], 0))
        end = [0.0] * tasks.size
        start = [0.0] * tasks.size
        free: dict[int, float] = {}
        done: set[int] = set()
        pending = list(order)
        while pending:
            idx = next(n for n, i in enumerate(pending) if all(p in done for p, _ in tasks.preds[i]))
            i = pending.pop(idx)
            st0 = max([tasks.release[i], free.get(tasks.resource[i], 0.0), *(end[p] + dl for p, dl in tasks.preds[i])])
            start[i], end[i] = st0, st0 + tasks.dur[i]
            free[tasks.resource[i]] = end[i]
            done.add(i)
        return {key: start[i] for i, key in enumerate(tasks.keys)}
