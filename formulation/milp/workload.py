"""The MILP of a version-2 workload (docs/instance-format.md §9) under ``none`` and ``schedule``.

It mirrors the CP-SAT model of ``cpsat-v2`` (:mod:`solvers.cpsat_workload`) as a linear program over
the combined graph of all requests, and goes further: every objective (the latency aggregate, energy
with the idle term, cost, the largest utilisation, weighted sums) and rates. It writes into the same
:class:`formulation.milp.model.LinearModel` as the version-1 MILP, so one model is solved by HiGHS,
SCIP and every Pyomo solver (:mod:`solvers.milp.workload`). Variables and inequalities, each with its
source in the format:

* ``x[v, d] in {0, 1}``, ``sum_d x[v, d] = 1`` (:mod:`formulation.milp.placement`); no column where
  ``allowed``/``private`` forbid ``d`` (§9.2), where ``t(v, d)`` is not finite, where the layer's own
  parameters and working set exceed ``memory(d)`` (§9.6), for a reader of a model input on a device
  without a route from the request's source, and for an output on a device without a route to the
  request's sink (§9.4: a needed transfer without a route is infeasible);
* transfers (§9.4, unicast per destination): for tensor ``t`` of request ``r`` produced on ``a``
  (its layer's device, or ``r``'s source for a model input) and a device ``b != a`` with a route
  ``a -> b``, ``z[t, a, b] in [0, 1]`` (continuous, integral whenever ``x`` is)::

      sum_a z[t, a, b] >= x[c, b] - x[t, b]     every consumer c of t       (need)
      z[t, a, b]       <= x[t, a]                                           (src)
      sum_a z[t, a, b] <= sum_c x[c, b]                                     (only)

  (``x[t, b] = 0`` and no ``src`` row for a model input); an output sent to the sink ``s`` from
  ``a != s`` is sent exactly when ``x[o, a] = 1``, so that column is the transfer's indicator. These
  are the send-once rows of :mod:`formulation.milp.shipping` with "a link ``a -> b``" read as "a
  route ``a -> b``"; a pair without a route has no ``z``, so ``need`` forbids it;
* each transfer ``(t, a, b)`` travels ``route(a, b)``, hop ``h`` occupying channel ``(i, j)`` for
  ``occ_h = bytes(t) / bw(i, j)`` followed by the fixed delay ``dl_h = latency(i, j)``; its duration
  is ``dur = sum_h (occ_h + dl_h)`` (store-and-forward);
* ``none`` (§9.5): ``L_r = sum_{v in r, d} t(v, d) x[v, d] + sum_{transfers of r} dur z`` (row
  ``lat_def``); ``schedule``: the disjunctive model of :mod:`formulation.milp.workload_schedule`;
  ``L_r <= deadline_r`` (a column bound, §9.2);
* aggregate (§9.3): ``latency = sum_r w_r L_r`` (``sum``) or ``latency >= w_r L_r`` for every ``r``
  (``max``, exact where the latency is pushed down, i.e. whenever its weight is positive);
* utilisation (§9.3): ``busy(x) = sum_r rho_r busy_r(x)`` per device (compute) and per channel (its
  hops' occupancy), ``rho_r`` the rate or 1; ``throughput >= busy(x)`` (min–max, as
  :mod:`formulation.milp.throughput`) and, with rates, ``busy(x) <= 1`` (row ``utilisation``);
* energy (§9.7): ``E[d] = active(d) comp(d) + tx(d) + rx(d) + idle(d) I[d]`` with
  ``I[d] >= H - comp(d) - send(d) - recv(d)``, ``I[d] >= 0`` and ``H >= release_r + L_r`` for every
  ``r``; sending and receiving count every hop at both its ends (relays pay). The max in ``I`` and in
  ``H`` is exact wherever ``E[d]`` is pushed down (a positive energy weight, or a budget ``E[d] <=
  budget(d)``, :mod:`formulation.milp.constraints.budgets`), as in :mod:`formulation.milp.energy`;
  total over ``energy_scope`` by :func:`formulation.milp.energy.add_energy_total`;
* cost (§5.7, §9.4): ``sum_{v,d} price(d) t(v, d) x + sum_{transfers} sum_h price(hop) bytes z``;
* memory (§9.6): one ``k[key, d] >= x[v, d]`` per weights key ``(model, layer)`` and device, and per
  request ``m[r, d] >= ws(v) x[v, d]`` for its layers (``peak`` model):
  ``sum_key param(key) k[key, d] + sum_r m[r, d] <= memory(d)``;
* ``max_devices`` by :mod:`formulation.milp.constraints.max_devices`; a private model input on an
  untrusted source or a private output to an untrusted sink makes the model infeasible (§9.7);
* generation requests (§9.10, under ``none``): one request whose figures are its passes' sums in
  closed form (:func:`formulation.generation.phase_tables`): ``t(v, d)`` is the prefill's time
  plus the ``G`` decode steps', ``bytes(t)`` likewise, and every hop's fixed delay is paid ``G + 1``
  times (``dl_h = (G + 1) latency(i, j)``), so every row above keeps its form with these
  coefficients; memory adds the key/value cache at the last step, ``sum_v kv(v) x[v, d]`` (resident
  with the layer, once per request), and the working set counted is the largest of any pass.

Objective: ``sum_m w_m metric_m`` (:mod:`formulation.milp.objective`). Negative weights are refused
by the solver. ``share`` (a convex MINLP) and network states are not modelled; the solver refuses
them before building (:func:`solvers.milp.workload.check_workload`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from formulation.evaluator.batch import REL_TOL
from formulation.generation import PhaseTable, memory_terms, phase_tables
from formulation.milp.build import objective_weights
from formulation.milp.constraints.budgets import add_energy_budgets
from formulation.milp.constraints.max_devices import add_max_devices
from formulation.milp.context import MilpContext
from formulation.milp.energy import add_energy_total
from formulation.milp.model import INF
from formulation.milp.objective import check_weights, set_objective
from formulation.milp.placement import add_placement
from formulation.model import BoolArray, FloatArray, Instance, IntArray
from formulation.workload import Route, Workload

Terms = list[tuple[int, float]]


@dataclass(frozen=True)
class Move:
    """Transfer ``i`` of the model: tensor ``tensor`` of request ``request`` sent from ``src`` to
    ``dst`` over ``route`` exactly when column ``col`` is 1 (a ``z`` column or an ``x`` column)."""

    tensor: int
    request: int
    src: int
    dst: int
    col: int
    route: Route
    occ: tuple[float, ...]
    delay: tuple[float, ...]
    bytes: float

    @property
    def duration(self) -> float:
        """Store-and-forward time: ``sum_h (occ_h + dl_h)``."""
        return float(sum(self.occ) + sum(self.delay))


@dataclass
class WorkloadContext(MilpContext):
    """A :class:`MilpContext` with the version-2 tables (see the module docstring)."""

    moves: list[Move] = field(default_factory=list)
    latency_cols: list[int] = field(default_factory=list)
    """``L_r`` per request (empty when no latency is modelled)."""
    hop_start: dict[tuple[int, int], int] = field(default_factory=dict)
    """``(move, hop) -> column`` of the hop start times under ``schedule``."""
    hop_order: dict[tuple[tuple[int, int], tuple[int, int]], int] = field(default_factory=dict)
    """``(hop p, hop q) -> column`` of ``o`` (1: p before q on their channel) under ``schedule``."""
    scheduled: bool = False

    @property
    def wl(self) -> Workload:
        """The instance's workload."""
        assert self.inst.workload is not None
        return self.inst.workload

    @property
    def tab(self) -> PhaseTable:
        """Layer times, tensor bytes and passes per request (a generation's sums over its passes, §9.10;
        otherwise ``inst.time``, the tensors' bytes and one pass)."""
        return phase_tables(self.inst)

    @property
    def time(self) -> FloatArray:
        """``t(v, d)``: :attr:`tab`'s times."""
        return self.tab.time

    def compute_terms(self, d: int) -> tuple[IntArray, FloatArray]:
        """Columns and coefficients of device ``d``'s compute time ``sum_v t(v, d) x[v, d]``."""
        vs = np.flatnonzero(self.allowed[:, d])
        return self.x[vs, d], self.time[vs, d].astype(float)

    def layer_time_terms(self, v: int) -> tuple[IntArray, FloatArray]:
        """Columns and coefficients of layer ``v``'s duration ``sum_d t(v, d) x[v, d]``."""
        ds = np.flatnonzero(self.allowed[v])
        return self.x[v, ds], self.time[v, ds].astype(float)

    def parallel(self) -> bool:
        """A joint schedule is modelled (``schedule`` with the latency needed)."""
        return self.scheduled


def workload_rules(inst: Instance) -> tuple[BoolArray, list[str]]:
    """Pairs ``(v, d)`` that may hold ``x[v, d] = 1`` and reasons no placement is feasible (module
    docstring, first item)."""
    wl = inst.workload
    assert wl is not None
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    mask = np.array(inst.placement_mask, dtype=bool) & np.isfinite(phase_tables(inst).time)
    reasons: list[str] = []
    priv = inst.private_tensors
    dev = s.device_ids
    for r in wl.requests:
        if any(priv[t] for t in r.inputs) and not s.trusted[r.source]:
            reasons.append(f"request {r.id!r} has a private model input on the untrusted source {dev[r.source]!r}")
        if r.sink is not None and not s.trusted[r.sink] and any(priv[o] for o in r.outputs):
            reasons.append(f"request {r.id!r} sends a private output to the untrusted sink {dev[r.sink]!r}")
        reach_from = np.array([wl.route(r.source, d) is not None for d in range(s.k)])
        for t in r.inputs:
            for v in g.consumers[t]:
                mask[v] &= reach_from
        if r.sink is not None:
            reach_to = np.array([wl.route(d, r.sink) is not None for d in range(s.k)])
            for o in r.outputs:
                mask[o] &= reach_to
    if c.memory:
        ws, kv = memory_terms(inst)  # a generation: its largest working set and its cache (§9.10)
        own = g.param_bytes + kv + (ws if c.memory_model == "peak" else 0.0)
        mask &= own[:, None] <= s.memory[None, :] * (1 + REL_TOL)
    for v in np.flatnonzero(~mask.any(axis=1)).tolist():
        reasons.append(f"layer {g.layer_ids[v]!r} has no device left after allowed/private/route/memory rules")
    return mask, reasons


def build_workload_milp(inst: Instance, units: dict[str, float] | None = None) -> WorkloadContext:
    """The MILP of the version-2 instance ``inst`` (module docstring); ``units`` for the scaling."""
    wl = inst.workload
    assert wl is not None and wl.contention in ("none", "schedule")
    weights = objective_weights(inst)
    check_weights(weights)
    ctx = WorkloadContext.new(inst)
    assert isinstance(ctx, WorkloadContext)
    ctx.units = units
    add_placement(ctx, workload_rules(inst))
    _add_moves(ctx)
    s, c = inst.system, inst.problem.constraints
    energy_devs = set(np.flatnonzero(inst.scope_mask).tolist()) if "energy" in weights else set()
    energy_devs |= {s.device_index[d] for d in c.energy_budget_j}
    idle = any(s.power_idle[d] > 0 for d in energy_devs)
    deadlines = any(r.deadline_s is not None for r in wl.requests)
    if wl.contention == "none" or "latency" in weights or deadlines or idle:
        _add_latencies(ctx, idle)
    rated = wl.rated
    if "throughput" in weights or rated:
        _add_utilisation(ctx, "throughput" in weights)
    if energy_devs:
        _add_energy(ctx, sorted(energy_devs))
    if "energy" in weights:
        add_energy_total(ctx)
    if "cost" in weights:
        _add_cost(ctx)
    if c.memory:
        _add_memory(ctx)
    add_energy_budgets(ctx)
    add_max_devices(ctx)
    set_objective(ctx, weights)
    return ctx


def _add_moves(ctx: WorkloadContext) -> None:
    """``z`` and the ``need``/``src``/``only`` rows; fill ``ctx.moves`` (module docstring)."""
    inst, m, x, allowed = ctx.inst, ctx.model, ctx.x, ctx.allowed
    wl, g, s = ctx.wl, inst.graph, inst.system
    n = g.n
    found: list[tuple[int, int, int, int]] = []  # (tensor, src, dst, col or -1 - z index)
    z_labels: list[str] = []
    need: list[tuple[str, Terms]] = []
    src_rows: list[tuple[str, Terms]] = []
    only: list[tuple[str, Terms]] = []
    for t in range(n + g.m):
        req = wl.requests[int(wl.request_of_tensor[t])]
        cons = g.consumers[t]
        cand = np.flatnonzero(allowed[t]).tolist() if t < n else [req.source]
        recv = np.zeros(inst.k, dtype=bool)
        for cc in cons:
            recv |= allowed[cc]
        if t < n and g.is_output[t] and req.sink is not None:
            found += [(t, a, req.sink, int(x[t, a])) for a in cand if a != req.sink]
            recv[req.sink] = False
        tn = ctx.tensor_names[t]
        for b in np.flatnonzero(recv).tolist():
            others = [a for a in cand if a != b and wl.route(a, b) is not None]
            users = [cc for cc in cons if allowed[cc, b]]
            zs = []
            for a in others:
                zs.append(-1 - len(z_labels))
                found.append((t, a, b, zs[-1]))
                z_labels.append(f"{tn},{ctx.device_names[a]},{ctx.device_names[b]}")
                if t < n:
                    src_rows.append((z_labels[-1], [(zs[-1], 1.0), (int(x[t, a]), -1.0)]))
            own = [(int(x[t, b]), 1.0)] if t < n and allowed[t, b] else []
            if not own and t >= n and b == req.source:
                continue  # read where it is
            for cc in users:
                need.append((f"{tn},{ctx.device_names[b]},{ctx.layer_names[cc]}",
                             [*((z, 1.0) for z in zs), (int(x[cc, b]), -1.0), *own]))
            if zs:
                only.append((f"{tn},{ctx.device_names[b]}", [*((z, 1.0) for z in zs),
                                                               *((int(x[cc, b]), -1.0) for cc in users)]))
    zc = m.add_vars("z", z_labels, 0.0, 1.0)

    def col(ref: int) -> int:
        return int(zc[-1 - ref]) if ref < 0 else ref

    def fix(rows: list[tuple[str, Terms]]) -> list[tuple[str, Terms]]:
        return [(lab, [(col(cc), v) for cc, v in terms]) for lab, terms in rows]

    m.add_term_rows("need", fix(need), 0.0, INF)
    m.add_term_rows("src", fix(src_rows), -INF, 0.0)
    m.add_term_rows("only", fix(only), -INF, 0.0)
    tab = ctx.tab
    for t, a, b, ref in found:
        route = wl.route(a, b)
        assert route is not None  # the placement rules and the z pairs guarantee a route
        nb = float(tab.tensor_bytes[t])
        occ = tuple(nb / float(s.bandwidth[i, j]) for i, j in route)
        npass = float(tab.passes[int(wl.request_of_tensor[t])])  # a hop's fixed delay, once per pass
        dl = tuple(npass * float(s.link_latency[i, j]) for i, j in route)
        ctx.moves.append(Move(t, int(wl.request_of_tensor[t]), a, b, col(ref), route, occ, dl, nb))


def compute_terms(ctx: WorkloadContext, layers: Iterable[int], scale: float = 1.0) -> Terms:
    """``scale * sum_{v in layers, d} t(v, d) x[v, d]``."""
    out: Terms = []
    for v in layers:
        cols, vals = ctx.layer_time_terms(v)
        out += [(int(cc), scale * float(w)) for cc, w in zip(cols, vals, strict=True)]
    return out


def _add_latencies(ctx: WorkloadContext, horizon: bool) -> None:
    """``L_r`` (``none``: row ``lat_def``; ``schedule``: the schedule model), the aggregate column
    ``latency``, deadlines as bounds, and ``H >= release_r + L_r`` when ``horizon``."""
    m, wl = ctx.model, ctx.wl
    ub = [INF if r.deadline_s is None else float(r.deadline_s) for r in wl.requests]
    ctx.latency_cols = m.add_vars("L", [r.id for r in wl.requests], 0.0, ub, unit="time").tolist()
    if wl.contention == "schedule":
        from formulation.milp.workload_schedule import add_joint_schedule

        add_joint_schedule(ctx)
    else:
        rows = []
        for r, req in enumerate(wl.requests):
            terms = [(ctx.latency_cols[r], 1.0), *((cc, -v) for cc, v in compute_terms(ctx, req.layers))]
            terms += [(mv.col, -mv.duration) for mv in ctx.moves if mv.request == r]
            rows.append((req.id, terms))
        m.add_term_rows("lat_def", rows, 0.0, 0.0)
    agg = m.add_var("latency", 0.0, unit="time")
    ctx.metric_cols["latency"] = agg
    pairs = [(c, -r.weight) for c, r in zip(ctx.latency_cols, wl.requests, strict=True)]
    if wl.aggregate == "sum":
        m.add_row("aggregate", [(agg, 1.0), *pairs], 0.0, 0.0)
    else:
        m.add_term_rows("aggregate", [(r.id, [(agg, 1.0), p]) for r, p in zip(wl.requests, pairs, strict=True)], 0.0)
    if horizon:
        h = m.add_var("H", 0.0, unit="time")
        ctx.metric_cols["horizon"] = h
        m.add_term_rows(
            "horizon", [(r.id, [(h, 1.0), (c, -1.0)]) for r, c in zip(wl.requests, ctx.latency_cols, strict=True)],
            [r.release_s for r in wl.requests],
        )


def hop_terms(ctx: WorkloadContext, which: str, d: int, power: bool = False) -> Terms:
    """Occupied time (or, with ``power``, radio energy) of the hops sent (``which="send"``) or
    received (``"recv"``) by device ``d``, over every transfer of every request."""
    s = ctx.inst.system
    out: Terms = []
    for mv in ctx.moves:
        for (i, j), o in zip(mv.route, mv.occ, strict=True):
            if (i if which == "send" else j) != d:
                continue
            w = (s.tx_power[i, j] if which == "send" else s.rx_power[i, j]) if power else 1.0
            if w > 0 and o > 0:
                out.append((mv.col, float(w) * o))
    return out


def _add_utilisation(ctx: WorkloadContext, objective: bool) -> None:
    """``busy(x)`` per device and channel; ``throughput >= busy(x)`` and, with rates, ``busy(x) <= 1``."""
    m, wl, inst = ctx.model, ctx.wl, ctx.inst
    k = inst.k
    rho = [r.rate if r.rate is not None else 1.0 for r in wl.requests]
    busy: dict[int, Terms] = {}
    for v in range(inst.n):
        for d in np.flatnonzero(ctx.allowed[v]).tolist():
            busy.setdefault(d, []).append((int(ctx.x[v, d]), rho[int(wl.request_of_layer[v])] * float(ctx.time[v, d])))
    for mv in ctx.moves:
        for (i, j), o in zip(mv.route, mv.occ, strict=True):
            busy.setdefault(k + i * k + j, []).append((mv.col, rho[mv.request] * o))
    busy = {key: [(cc, v) for cc, v in terms if v > 0] for key, terms in sorted(busy.items())}
    busy = {key: terms for key, terms in busy.items() if terms}
    dev = ctx.device_names
    names = {key: dev[key] if key < k else f"{dev[(key - k) // k]},{dev[(key - k) % k]}" for key in busy}
    if wl.rated:
        m.add_term_rows("utilisation", [(names[key], terms) for key, terms in busy.items()], -INF, 1.0)
    if objective:
        U = m.add_var("throughput", 0.0, unit="1" if wl.rated else "time")
        ctx.metric_cols["throughput"] = U
        rows = [(names[key], [(U, 1.0), *((cc, -v) for cc, v in terms)]) for key, terms in busy.items()]
        m.add_term_rows("throughput_def", rows, 0.0)


def _add_energy(ctx: WorkloadContext, devices: list[int]) -> None:
    """``E[d]`` (and ``I[d]`` for idle power) for ``devices`` (module docstring)."""
    m, s = ctx.model, ctx.inst.system
    H = ctx.metric_cols.get("horizon")
    E = m.add_vars("E", [ctx.device_names[d] for d in devices], 0.0, unit="energy")
    idle_devs = [d for d in devices if s.power_idle[d] > 0]
    I_cols = m.add_vars("I", [ctx.device_names[d] for d in idle_devs], 0.0, unit="time")
    defs, idle_rows = [], []
    for e_col, d in zip(E.tolist(), devices, strict=True):
        cols, vals = ctx.compute_terms(d)
        comp = [(int(cc), float(v)) for cc, v in zip(cols, vals, strict=True)]
        radio = hop_terms(ctx, "send", d, True) + hop_terms(ctx, "recv", d, True)
        terms = [(e_col, 1.0), *((cc, -float(s.power_active[d]) * v) for cc, v in comp), *((cc, -v) for cc, v in radio)]
        if d in idle_devs:
            assert H is not None, "idle energy needs the horizon column"
            ic = int(I_cols[idle_devs.index(d)])
            terms.append((ic, -float(s.power_idle[d])))
            busy = comp + hop_terms(ctx, "send", d) + hop_terms(ctx, "recv", d)
            idle_rows.append((ctx.device_names[d], [(ic, 1.0), (H, -1.0), *busy]))
        defs.append((ctx.device_names[d], terms))
        ctx.energy_cols[d] = int(e_col)
    m.add_term_rows("energy_def", defs, 0.0, 0.0)
    m.add_term_rows("idle", idle_rows, 0.0)


def _add_cost(ctx: WorkloadContext) -> None:
    """``cost = sum price(d) t x + sum over hops price(hop) bytes z`` (row ``cost_def``)."""
    m, s = ctx.model, ctx.inst.system
    C = m.add_var("cost", 0.0, unit="cost")
    terms: Terms = [(C, 1.0)]
    vs, ds = np.nonzero(ctx.allowed)
    terms += [(int(ctx.x[v, d]), -float(s.price[d] * ctx.time[v, d])) for v, d in zip(vs, ds, strict=True)]
    for mv in ctx.moves:
        terms += [(mv.col, -float(s.link_price[i, j]) * mv.bytes) for i, j in mv.route]
    m.add_row("cost_def", terms, 0.0, 0.0)
    ctx.metric_cols["cost"] = C


def _add_memory(ctx: WorkloadContext) -> None:
    """Weights once per (model, layer, device), a generation's key/value cache with its layers
    (§9.10) plus each request's peak working set (§9.6)."""
    m, inst, wl = ctx.model, ctx.inst, ctx.wl
    g, s = inst.graph, inst.system
    ws, kv = memory_terms(inst)
    peak = ws if inst.problem.constraints.memory_model == "peak" else np.zeros(g.n)
    keep_rows, peak_rows, cap_rows, caps = [], [], [], []
    key_labels: list[str] = []
    key_refs: list[tuple[int, list[int]]] = []  # (device, layers) per key column
    peak_labels: list[str] = []
    peak_refs: list[tuple[int, list[int]]] = []
    for d in range(inst.k):
        vs = np.flatnonzero(ctx.allowed[:, d]).tolist()
        keys: dict[tuple[str, str], list[int]] = {}
        for v in vs:
            if g.param_bytes[v] > 0:
                keys.setdefault(wl.weight_key[v], []).append(v)
        mine: dict[int, list[int]] = {}
        for v in vs:
            if peak[v] > 0:
                mine.setdefault(int(wl.request_of_layer[v]), []).append(v)
        worst = sum(float(g.param_bytes[ls[0]]) for ls in keys.values())
        worst += sum(float(peak[ls].max()) for ls in mine.values()) + float(kv[vs].sum())
        if worst <= s.memory[d]:
            continue  # everything that may run here fits at once
        first_key, first_peak = len(key_refs), len(peak_refs)
        for key, ls in keys.items():
            key_labels.append(f"{ctx.device_names[d]},{key[0]}.{key[1]}")
            key_refs.append((d, ls))
        for r, ls in mine.items():
            peak_labels.append(f"{ctx.device_names[d]},{wl.requests[r].id}")
            peak_refs.append((d, ls))
        cap_rows.append((d, first_key, len(key_refs), first_peak, len(peak_refs), [v for v in vs if kv[v] > 0]))
        caps.append(float(s.memory[d]))
    kc = m.add_vars("wk", key_labels, 0.0, 1.0)
    pc = m.add_vars("mp", peak_labels, 0.0, unit="bytes")
    for i, (d, ls) in enumerate(key_refs):
        keep_rows += [(f"{key_labels[i]},{ctx.layer_names[v]}", [(int(kc[i]), 1.0), (int(ctx.x[v, d]), -1.0)])
                      for v in ls]
    for i, (d, ls) in enumerate(peak_refs):
        peak_rows += [
            (f"{peak_labels[i]},{ctx.layer_names[v]}", [(int(pc[i]), 1.0), (int(ctx.x[v, d]), -float(peak[v]))])
            for v in ls
        ]
    rows = []
    for d, k0, k1, p0, p1, cached in cap_rows:
        terms = [(int(kc[i]), float(g.param_bytes[key_refs[i][1][0]])) for i in range(k0, k1)]
        terms += [(int(pc[i]), 1.0) for i in range(p0, p1)]
        terms += [(int(ctx.x[v, d]), float(kv[v])) for v in cached]
        rows.append((ctx.device_names[d], terms))
    m.add_term_rows("weights_kept", keep_rows, 0.0)
    m.add_term_rows("mem_peak", peak_rows, 0.0)
    m.add_term_rows("memory", rows, ub=caps)
