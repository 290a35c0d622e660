"""The ``share`` contention model (docs/instance-format.md §9.5) as a mixed-integer nonlinear program.

Variables and constraints, each with its source in the format:

* ``x[v, d]`` binary — combined layer ``v`` runs on device ``d``; ``sum_d x[v, d] = 1``; 0 where
  ``allowed``/``private`` forbid ``d``, the layer time is infinite (§9.2, §5.10) or no chain of
  routes leads there from the request's source or from there to its sink (:func:`reachable_mask`);
* ``y[t, a, b]`` in [0, 1] — tensor ``t`` is sent from its producer's device ``a`` to ``b != a``
  (unicast, §5.2): ``y >= on(t, a) + x[c, b] - 1`` for every consumer ``c`` of ``t`` and ``y >=
  on(t, a)`` when ``b`` is its request's sink and ``t`` an output (``on`` is ``x`` for a layer and
  the constant 1 on the request's source for a model input). Every quantity below is non-decreasing
  in ``y``, so a minimiser may keep ``y`` at these lower bounds, which are 0 or 1 for binary ``x``;
  a pair without a route (§9.4) has no ``y``: its lower bound must be 0;
* work of request ``r`` on resource ``x`` (§9.4): on device ``d``, ``W_rd = sum_v t(v, d) x[v, d]``
  over ``r``'s layers; on channel ``i -> j``, ``W_rij = sum bytes(t) / bandwidth(i, j) y[t, a, b]`` over
  ``r``'s transfers whose route has the hop ``i -> j``; ``fixed_r = sum delay(route(a, b)) y[t, a, b]``;
* processor sharing (§9.5): on a resource that two or more requests may use, a share ``s_rx`` in
  [0, 1] with ``sum_r s_rx <= 1``, and ``r``'s time there ``sum_terms c q`` where each term ``c z`` of
  ``W_rx`` (``z`` an ``x`` or a ``y``) has ``q s_rx >= z^2`` — a rotated second-order cone, the
  perspective of ``z / s`` (``z = z^2`` for binary ``z``), so the continuous relaxation is convex and
  the time is exactly ``W_rx / s_rx`` at integer points. A resource only one request can use is
  its own: time ``W_rx`` (share 1);
* ``L_r = fixed_r + sum_x time_rx``; ``sum``: ``sum_r w_r L_r`` (for a placement, the minimum over
  the shares is the square-root rule the evaluator uses); ``max``: ``T >= w_r L_r`` and the request
  deadlines ``L_r <= deadline_r`` (the evaluator's min-max fractions meet every deadline that some
  fractions can meet, §9.5);
* ``sum`` with deadlines: the evaluator checks deadlines at the square-root-rule fractions, so the
  deadline of ``r`` bounds ``fixed_r + sum_x sqrt(W_rx / w_r) sum_j sqrt(w_j W_jx)`` (non-convex;
  SCIP branches spatially on it);
* memory (§9.6): ``z[key, d] >= x[v, d]`` per weights key, ``m[r, d] >= ws(v) x[v, d]`` under the
  ``peak`` model, ``sum param z + sum_r m <= memory(d)``; ``max_devices`` by used-device indicators;
  with rates, ``sum_r rate_r W_rx <= 1`` on every resource (§9.3);
* metrics (§9.3, §9.7): cost ``sum t(v, d) price(d) x + sum bytes price(hop) y``; throughput ``U >=
  sum_r rho_r W_rx``; energy ``power_active compute + tx + rx`` per device (only without idle power in
  scope: the idle term depends on the horizon, which under ``max`` depends on the evaluator's
  particular fractions).

Times are divided by ``unit`` (the longest request alone, over 100) so that SCIP's absolute
tolerances stay far below the values that matter; the objective is divided by ``obj_scale``.
:meth:`ShareModel.add_start` turns a placement and the evaluator's fractions into a full solution
(every auxiliary variable follows from them: ``self.defs``), SCIP's first incumbent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formulation.costs import working_set_bytes
from formulation.evaluator import REL_TOL
from formulation.model import Instance

Term = tuple[Any, float]
"""A variable (an ``x`` or a ``y``) and its coefficient."""
Value = Callable[[Any], float]
"""The value of a variable in a solution being built."""


@dataclass
class Loads:
    """Linear pieces of the model, per request: work per resource, fixed delays, cost, energy."""

    work: dict[tuple[int, int], list[Term]] = field(default_factory=dict)
    """``(request, resource)`` -> terms in seconds; resources ``0..k-1`` devices, ``k + i k + j`` channels."""
    fixed: dict[int, list[Term]] = field(default_factory=dict)
    cost: list[Term] = field(default_factory=list)
    energy: dict[int, list[Term]] = field(default_factory=dict)
    """device -> terms in joules (active compute, transmit and receive power)."""


def share_problems(inst: Instance) -> list[str]:
    """Why the model cannot express ``inst`` exactly (empty when it can)."""
    wl = inst.workload
    if wl is None:
        return ["it is a version-1 instance (the model is for version-2 workloads)"]
    out = []
    bad = [r.id for r in wl.requests if not r.weight > 0]
    if bad:
        out.append(f"requests {bad} of weight 0 (the square-root rule gives them no share; weights > 0 needed)")
    terms = inst.problem.objective.terms()
    s = inst.system
    if terms.get("energy") and (s.power_idle[inst.scope_mask] > 0).any():
        out.append("energy with idle power (the idle time depends on the evaluator's particular fractions)")
    budgets = inst.problem.constraints.energy_budget_j
    if budgets and any(s.power_idle[s.device_index[d]] > 0 for d in budgets):
        out.append("an energy budget on a device with idle power")
    return out


def reachable_mask(inst: Instance) -> np.ndarray:
    """``(n, k)``: device ``d`` can hold layer ``v`` in some placement without a missing route (§9.4).

    A layer reading a model input runs where its source's tensor can go (``d`` the source or a route
    from it); one reading a layer runs where that layer's device can send. By induction over the DAG,
    a layer with inputs runs on a device its request's source reaches in the closure of the route
    graph; likewise a layer with a path to an output sent to a sink runs on a device that reaches the
    sink. Other placements have a transfer without a route (violation ``link``), so fixing their
    variables at 0 removes no feasible placement; it keeps every device a request cannot use from
    counting as shared with it, which would add cones for nothing."""
    wl = inst.workload
    assert wl is not None
    g, k = inst.graph, inst.k
    hop = np.eye(k, dtype=bool)
    for a in range(k):
        for b in range(k):
            hop[a, b] |= wl.route(a, b) is not None
    reach = hop.copy()
    for _ in range(k):  # transitive closure (k is small)
        reach = reach | ((reach.astype(np.int64) @ hop.astype(np.int64)) > 0)
    ok = np.ones((g.n, k), dtype=bool)
    to_sink = np.zeros(g.n, dtype=bool)
    for v in range(g.n - 1, -1, -1):  # combined layers are numbered topologically
        req = wl.requests[int(wl.request_of_layer[v])]
        to_sink[v] = req.sink is not None and (bool(g.is_output[v]) or any(to_sink[c] for c in g.succs[v]))
        if to_sink[v]:
            ok[v] &= reach[:, req.sink]
        if g.layer_inputs[v]:
            ok[v] &= reach[req.source]
    return ok


def _ratio(work: float, share: float) -> float:
    """``work / share`` (0 without work; infinite when work gets no share)."""
    if work <= 0:
        return 0.0
    return work / share if share > 0 else math.inf


def add(m: Any, cons: Any) -> None:
    """Add a constraint; one that Python already decided (no variable left) is checked here."""
    if isinstance(cons, bool | np.bool_):
        if not cons:  # e.g. a deadline shorter than the fixed part: nothing is feasible
            m.addCons(m.addVar("never", lb=1.0, ub=1.0) <= 0)
        return
    m.addCons(cons)


class ShareModel:
    """The MINLP of one instance in pyscipopt (see the module docstring)."""

    def __init__(self, inst: Instance, forbidden: list[np.ndarray] | None = None) -> None:
        from pyscipopt import Model

        wl = inst.workload
        assert wl is not None
        self.inst = inst
        g, s, k = inst.graph, inst.system, inst.k
        m = Model()
        self.m = m
        # how each auxiliary variable follows from the placement and the shares (:meth:`add_start`),
        # in creation order, so that every variable is computed after those it depends on
        self.defs: list[tuple[Any, Callable[..., float]]] = []  # each called with a Value
        self.start_shares = np.zeros(0)
        finite = np.isfinite(inst.time)
        self.unit = self._unit(inst)
        mask = inst.placement_mask & finite & reachable_mask(inst)
        self.x = [
            [m.addVar(f"x{v}_{d}", vtype="B", ub=1.0 if mask[v, d] else 0.0) for d in range(k)] for v in range(g.n)
        ]
        for v in range(g.n):
            add(m, sum(self.x[v]) == 1)
        for P in forbidden or []:  # placements the evaluator refused (tolerance artefacts): no-good cuts
            add(m, sum(self.x[v][int(P[v])] for v in range(g.n)) <= g.n - 1)
        ld = Loads()
        for v in range(g.n):
            r = int(wl.request_of_layer[v])
            for d in range(k):
                if mask[v, d]:
                    sec = float(inst.time[v, d])
                    ld.work.setdefault((r, d), []).append((self.x[v][d], sec))
                    ld.cost.append((self.x[v][d], sec * float(s.price[d])))
                    ld.energy.setdefault(d, []).append((self.x[v][d], sec * float(s.power_active[d])))
        self._transfers(ld, mask)
        self.loads = ld
        self.L = self._latencies(ld)
        self._memory(mask)
        obj = self._objective(ld)
        m.setObjective(obj, "minimize")

    def add_start(self, P: np.ndarray, shares: np.ndarray) -> bool:
        """Give SCIP the solution of placement ``P`` with the evaluator's fractions ``shares`` (``(R,
        k + k k)``, devices then channels) as its first incumbent; whether SCIP accepted it."""
        vals: dict[str, float] = {}

        def val(var: Any) -> float:
            return 1.0 if var is None else vals[var.name]

        for v, row in enumerate(self.x):
            for d, var in enumerate(row):
                vals[var.name] = 1.0 if int(P[v]) == d else 0.0
        self.start_shares = shares
        for var, fn in self.defs:
            vals[var.name] = fn(val)
            if not math.isfinite(vals[var.name]):
                return False
        m = self.m
        sol = m.createSol()
        for var in m.getVars():
            m.setSolVal(sol, var, float(vals.get(var.name, var.getLbOriginal()) or 0.0))
        return bool(m.addSol(sol))

    @staticmethod
    def _unit(inst: Instance) -> float:
        """Seconds per model time unit: the slowest conceivable request alone, over 100."""
        wl = inst.workload
        assert wl is not None
        g, s = inst.graph, inst.system
        slowest = np.where(np.isfinite(inst.time), inst.time, 0.0).max(axis=1)
        per = np.zeros(len(wl.requests))
        np.add.at(per, wl.request_of_layer, slowest)
        for t in range(g.n + g.m):
            longest = max(
                (sum(float(g.tensor_bytes[t]) / float(s.bandwidth[i, j]) + float(s.link_latency[i, j]) for i, j in rt)
                 for rt in wl.routes.values()),
                default=0.0,
            )
            per[int(wl.request_of_tensor[t])] += (s.k - 1) * longest
        top = float(per.max()) if per.size else 0.0
        return top / 100.0 if top > 0 else 1.0

    def _transfers(self, ld: Loads, mask: np.ndarray) -> None:
        inst, m = self.inst, self.m
        wl = inst.workload
        assert wl is not None
        g, s, k = inst.graph, inst.system, inst.k
        for t in range(g.n + g.m):
            r = int(wl.request_of_tensor[t])
            req = wl.requests[r]
            srcs = [d for d in range(k) if mask[t, d]] if t < g.n else [req.source]
            to_sink = t < g.n and bool(g.is_output[t]) and req.sink is not None
            nbytes = float(g.tensor_bytes[t])
            for b in range(k):
                users = [self.x[c][b] for c in g.consumers[t] if mask[c, b]]
                sink_here = to_sink and b == req.sink
                if not users and not sink_here:
                    continue
                for a in srcs:
                    if a == b:
                        continue
                    on = self.x[t][a] if t < g.n else None  # None: the constant 1 (the request's source)
                    route = wl.route(a, b)
                    if route is None:  # no route: the pair may not occur (violation `link`, §9.4)
                        for u in users:
                            add(m, u + (on if on is not None else 1) <= 1)
                        if sink_here:
                            add(m, (on if on is not None else 1) <= 0)
                        continue
                    y = m.addVar(f"y{t}_{a}_{b}", lb=0.0, ub=1.0)
                    self.defs.append((y, lambda val, us=tuple(users), on=on, sk=sink_here: max(
                        [0.0, *(val(u) + val(on) - 1 for u in us), *([val(on)] if sk else [])])))
                    for u in users:
                        add(m, y >= u + (on if on is not None else 1) - 1)
                    if sink_here:
                        add(m, y >= (on if on is not None else 1))
                    delay = math.fsum(float(s.link_latency[i, j]) for i, j in route)
                    if delay > 0:
                        ld.fixed.setdefault(r, []).append((y, delay))
                    for i, j in route:
                        occ = nbytes / float(s.bandwidth[i, j])
                        if occ > 0:
                            ld.work.setdefault((r, k + i * k + j), []).append((y, occ))
                            ld.energy.setdefault(i, []).append((y, occ * float(s.tx_power[i, j])))
                            ld.energy.setdefault(j, []).append((y, occ * float(s.rx_power[i, j])))
                        ld.cost.append((y, nbytes * float(s.link_price[i, j])))

    def _latencies(self, ld: Loads) -> list[Any]:
        """``L_r`` in time units, with the shares of every resource two requests may use."""
        inst, m, u = self.inst, self.m, self.unit
        wl = inst.workload
        assert wl is not None
        R = len(wl.requests)
        users: dict[int, list[int]] = {}
        for (r, x), terms in ld.work.items():
            if any(c > 0 for _, c in terms):
                users.setdefault(x, []).append(r)
        self.share: dict[tuple[int, int], Any] = {}
        L = []
        for r in range(R):
            lin = [(c / u, z) for z, c in ld.fixed.get(r, [])]
            for (rr, x), terms in ld.work.items():
                if rr != r:
                    continue
                terms = [(z, c) for z, c in terms if c > 0]
                if len(users.get(x, [])) < 2:
                    lin += [(c / u, z) for z, c in terms]
                    continue
                sh = m.addVar(f"s{r}_{x}", lb=0.0, ub=1.0)
                self.share[(r, x)] = sh
                self.defs.append((sh, lambda val, r=r, x=x: float(self.start_shares[r, x])))
                for n, (z, c) in enumerate(terms):
                    # q >= c z^2 / s in time units, a rotated second-order cone; q enters L with
                    # coefficient 1, so SCIP's tolerance on q is a tolerance on time, not a multiple
                    q = m.addVar(f"q{r}_{x}_{n}", lb=0.0)
                    m.addCons(c / u * (z * z) <= q * sh)
                    self.defs.append((q, lambda val, z=z, sh=sh, cu=c / u: _ratio(cu * val(z), val(sh))))
                    lin.append((1.0, q))
            Lr = m.addVar(f"L{r}", lb=0.0)
            add(m, Lr == sum(c * z for c, z in lin))
            self.defs.append((Lr, lambda val, lin=lin: math.fsum(c * val(z) for c, z in lin)))
            L.append(Lr)
        for x, rs in users.items():
            if len(rs) >= 2:
                add(m, sum(self.share[(r, x)] for r in rs) <= 1)
        w = [r.weight for r in wl.requests]
        caps = [math.inf if r.deadline_s is None else r.deadline_s * (1 + REL_TOL / 2) / u for r in wl.requests]
        if wl.aggregate == "max":
            self.T = m.addVar("T", lb=0.0)
            self.defs.append((self.T, lambda val: max(w[r] * val(L[r]) for r in range(R))))
            for r in range(R):
                add(m, w[r] * L[r] <= self.T)
                if math.isfinite(caps[r]):
                    add(m, L[r] <= caps[r])
            self.agg: Any = self.T
        else:
            self.agg = sum(w[r] * L[r] for r in range(R))
            self._sqrt_rule_deadlines(ld, users, caps)
        return L

    def _sqrt_rule_deadlines(self, ld: Loads, users: dict[int, list[int]], caps: list[float]) -> None:
        """``sum``: each deadline at the square-root-rule fractions (§9.5), ``W_rx / s_rx`` with
        ``s_rx = sqrt(w_r W_rx) / sum_j sqrt(w_j W_jx)``, i.e. ``sqrt(W_rx / w_r) sum_j sqrt(w_j W_jx)``."""
        from pyscipopt import sqrt

        inst, m, u = self.inst, self.m, self.unit
        wl = inst.workload
        assert wl is not None
        w = [r.weight for r in wl.requests]
        for r in range(len(wl.requests)):
            if not math.isfinite(caps[r]):
                continue
            expr: Any = sum(c / u * z for z, c in ld.fixed.get(r, []))
            for (rr, x), terms in ld.work.items():
                if rr != r:
                    continue
                W = sum(c / u * z for z, c in terms if c > 0)
                if len(users.get(x, [])) < 2:
                    expr += W
                    continue
                rest = sum(
                    math.sqrt(w[j]) * sqrt(sum(c / u * z for z, c in ld.work[(j, x)] if c > 0))
                    for j in users[x]
                    if j != r
                )
                # W_r / s_r = W_r + sqrt(W_r / w_r) * sum_{j != r} sqrt(w_j W_j)
                expr += W + (1.0 / math.sqrt(w[r])) * sqrt(W) * rest
            add(m, expr <= caps[r])

    def _memory(self, mask: np.ndarray) -> None:
        inst, m = self.inst, self.m
        wl = inst.workload
        assert wl is not None
        g, s, c = inst.graph, inst.system, inst.problem.constraints
        k = inst.k
        if c.max_devices is not None and c.max_devices < k:
            used = [m.addVar(f"used{d}", vtype="B") for d in range(k)]
            for v in range(g.n):
                for d in range(k):
                    if mask[v, d]:
                        add(m, used[d] >= self.x[v][d])
            for d in range(k):
                on_d = [self.x[v][d] for v in range(g.n) if mask[v, d]]
                self.defs.append((used[d], lambda val, on_d=on_d: max((val(z) for z in on_d), default=0.0)))
            add(m, sum(used) <= c.max_devices)
        if wl.rated:
            # the evaluator's check allows 1 + REL_TOL; half of it leaves room for float noise
            for rs in self._per_resource().values():
                busy = sum(float(wl.requests[r].rate or 0.0) * c_ * z for r, terms in rs for z, c_ in terms)
                add(m, busy <= 1.0 + REL_TOL / 2)
        if not c.memory:
            return
        ws = working_set_bytes(g)
        for d in range(k):
            cap = float(s.memory[d])
            if not math.isfinite(cap):
                continue
            terms: Any = 0
            keys: dict[tuple[str, str], Any] = {}
            holders: dict[tuple[str, str], list[Any]] = {}
            for v in range(g.n):
                if not mask[v, d] or g.param_bytes[v] <= 0:
                    continue
                key = wl.weight_key[v]
                if key not in keys:
                    keys[key] = m.addVar(f"z{d}_{len(keys)}", lb=0.0, ub=1.0)
                    terms += float(g.param_bytes[v]) / max(cap, 1.0) * keys[key]
                    holders[key] = []
                    self.defs.append((keys[key], lambda val, h=holders[key]: max(val(z) for z in h)))
                holders[key].append(self.x[v][d])
                add(m, keys[key] >= self.x[v][d])
            if c.memory_model != "params":
                for r, req in enumerate(wl.requests):
                    top = max((float(ws[v]) for v in req.layers if mask[v, d]), default=0.0)
                    if top <= 0:
                        continue
                    peak = m.addVar(f"peak{r}_{d}", lb=0.0, ub=top / max(cap, 1.0))
                    parts = [(float(ws[v]) / max(cap, 1.0), self.x[v][d]) for v in req.layers if mask[v, d]]
                    for c_, z in parts:
                        add(m, peak >= c_ * z)
                    self.defs.append((peak, lambda val, parts=parts: max(c_ * val(z) for c_, z in parts)))
                    terms += peak
            add(m, terms <= cap / max(cap, 1.0) * (1 + REL_TOL / 2))  # rows in units of the capacity

    def _per_resource(self) -> dict[int, list[tuple[int, list[Term]]]]:
        out: dict[int, list[tuple[int, list[Term]]]] = {}
        for (r, x), terms in self.loads.work.items():
            out.setdefault(x, []).append((r, terms))
        return out

    def _objective(self, ld: Loads) -> Any:
        """The objective, divided by ``obj_scale``; ``metric_scale[name]`` converts each metric to SI."""
        inst, m = self.inst, self.m
        wl = inst.workload
        assert wl is not None
        terms = {name: w for name, w in inst.problem.objective.terms().items() if w}
        budgets = inst.problem.constraints.energy_budget_j
        s = inst.system
        energy = {d: sum(c * z for z, c in ld.energy.get(d, []) if c > 0) for d in range(inst.k)}
        for dev, b in budgets.items():
            d = s.device_index[dev]
            scale = max(b, 1e-12)
            add(m, (1.0 / scale) * energy[d] <= b * (1 + REL_TOL / 2) / scale)
        pieces: list[tuple[float, Any, float]] = []  # (weight, expression, SI per expression unit)
        if "latency" in terms:
            pieces.append((terms["latency"], self.agg, self.unit))
        if "cost" in terms:
            top = max((abs(c) for _, c in ld.cost), default=0.0) or 1.0
            pieces.append((terms["cost"], sum(c / top * z for z, c in ld.cost), top))
        if "energy" in terms:
            scoped = [d for d in range(inst.k) if inst.scope_mask[d]]
            top = max((abs(c) for d in scoped for _, c in ld.energy.get(d, [])), default=0.0) or 1.0
            pieces.append((terms["energy"], sum(c / top * z for d in scoped for z, c in ld.energy.get(d, [])), top))
        if "throughput" in terms:
            rho = [r.rate if r.rate is not None else 1.0 for r in wl.requests]
            U = m.addVar("U", lb=0.0)
            per = self._per_resource().values()
            rows = [[(rho[r] * c / self.unit, z) for r, tl in rs for z, c in tl] for rs in per]
            for row in rows:
                add(m, sum(c * z for c, z in row) <= U)
            self.defs.append((U, lambda val: max((math.fsum(c * val(z) for c, z in row) for row in rows), default=0.0)))
            pieces.append((terms["throughput"], U, self.unit))
        self.obj_scale = max((w * sc for w, _, sc in pieces), default=1.0) or 1.0
        return sum((w * sc / self.obj_scale) * e for w, e, sc in pieces)

    def placement(self, sol: Any) -> np.ndarray:
        """Device index per combined layer in a SCIP solution."""
        inst = self.inst
        vals = np.array([[sol[self.x[v][d]] for d in range(inst.k)] for v in range(inst.n)])
        return np.asarray(vals.argmax(axis=1), dtype=np.int64)
