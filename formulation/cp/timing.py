"""Time variables of the CP-SAT model (integer ticks): the parallel schedule with interval
variables, the period, and the parallel idle time of the energy model.

Sequential latency and sequential energy need no time variable (they are linear in the placement
and shipping literals, see :mod:`formulation.cp.objective`). All expressions here are in ticks of
:class:`formulation.cp.tables.TimeTables`; their worst-case rounding errors are the ``err_*``
attributes of that class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from formulation.cp.placement import Lit, PlacementVars
from formulation.cp.sending import recv_items, send_items
from formulation.cp.tables import Masks, TimeTables
from formulation.model import Instance, IntArray


def weighted(items: Iterable[tuple[Lit, int]]) -> cp_model.LinearExpr:
    """``sum coef * lit`` where constant literals (Python bools) become a constant."""
    lits: list[cp_model.IntVar] = []
    coefs: list[int] = []
    const = 0
    for lit, c in items:
        if not c:
            continue
        if isinstance(lit, bool):
            const += int(c) * lit
        else:
            lits.append(lit)
            coefs.append(int(c))
    expr: cp_model.LinearExpr = cp_model.LinearExpr.weighted_sum(lits, coefs) + const
    return expr


def compute_items(pv: PlacementVars, tables: TimeTables, d: int) -> list[tuple[Lit, int]]:
    """Terms of device d's compute time: ``sum_v comp[v, d] x[v, d]``."""
    return [(lit, int(tables.comp[v, dd])) for (v, dd), lit in pv.x.items() if dd == d]


def link_items(pv: PlacementVars, tables: TimeTables, a: int, b: int) -> list[tuple[Lit, int]]:
    """Terms of channel a -> b's occupied time: ``sum_t occ[t, a, b] send[t, a, b]``."""
    return [(lit, int(tables.occ[t, aa, bb])) for (t, aa, bb), lit in pv.send.items() if (aa, bb) == (a, b)]


def comm_items(
    model: cp_model.CpModel, inst: Instance, pv: PlacementVars, occ: IntArray, d: int
) -> list[tuple[Lit, int]]:
    """Terms of ``sending + receiving`` of device d in ticks of ``occ`` (each tensor sent once on a
    ``send_once`` device, :mod:`formulation.cp.sending`)."""

    def w(t: int, a: int, b: int) -> float:
        return float(occ[t, a, b])

    items = send_items(model, inst, pv, d, w) + recv_items(pv, d, w)
    return [(lit, int(c)) for lit, c in items]


def busy_items(
    model: cp_model.CpModel, inst: Instance, pv: PlacementVars, tables: TimeTables, d: int
) -> list[tuple[Lit, int]]:
    """Terms of ``compute + sending + receiving`` of device d (docs/instance-format.md §5.6), from the
    rounded-*down* tables (the idle time it bounds is then never under-estimated)."""
    items: list[tuple[Lit, int]] = [(lit, int(tables.comp_lo[v, dd])) for (v, dd), lit in pv.x.items() if dd == d]
    return items + comm_items(model, inst, pv, tables.occ_lo, d)


@dataclass(frozen=True)
class Schedule:
    """Handles of the parallel schedule: start variables and the makespan variable (ticks)."""

    starts: Sequence[cp_model.IntVar]
    latency: cp_model.IntVar


def add_parallel_schedule(
    model: cp_model.CpModel,
    inst: Instance,
    pv: PlacementVars,
    masks: Masks,
    tables: TimeTables,
    latency_cap: int,
) -> Schedule:
    """Parallel latency with optional intervals, one ``NoOverlap`` per device and delayed precedence.

    For every layer v: a start ``S[v]`` and, for every device d it may run on, an optional interval
    of size ``comp[v, d]`` present iff ``x[v, d]`` (the *alternative* pattern of IBM CP Optimizer,
    Laborie et al., "IBM ILOG CP Optimizer for scheduling", Constraints 2018). Constraints:

    * ``NoOverlap`` of the intervals of each device (one layer at a time, no preemption);
    * ``S[v] >= E[u]`` for every edge ``u -> v`` and, when ``x[u, a] AND x[v, b]`` with ``a != b``,
      ``S[v] >= E[u] + dur[u, a, b]``; a model input read on ``b != source`` gives
      ``S[v] >= dur[input, source, b]`` (communication delays as in the scheduling-with-
      communication-delays ILPs of Venugopalan and Sinnen, IEEE TPDS 2015). Transfers never wait
      for a channel: they are concurrent (docs/instance-format.md §5.4), and the delay of a tensor read by
      several layers on b is the same single transfer;
    * ``L >= E[o]`` for every model output o, and ``L >= E[o] + dur[o, a, sink]`` when
      ``x[o, a]`` with ``a != sink``;
    * redundant: ``L >= sum comp[v, d] x[v, d]`` over layers that precede an output (they all run
      inside ``[0, L]`` on d);
    * ``L <= latency_cap`` (ticks): a deadline, or the makespan above which no solution can beat
      the solution hint (see :func:`formulation.cp.build.time_caps`).
    """
    g, s = inst.graph, inst.system
    H = tables.horizon
    starts: list[cp_model.IntVar] = []
    ends: list[cp_model.LinearExpr] = []
    per_device: list[list[cp_model.IntervalVar]] = [[] for _ in range(s.k)]
    for v in range(g.n):
        devs = [d for d in range(s.k) if (v, d) in pv.x]
        S = model.new_int_var(0, H, f"start[{g.layer_ids[v]}]")
        sizes = [int(tables.comp[v, d]) for d in devs]
        if len(set(sizes)) <= 1:
            E: cp_model.LinearExpr = S + (sizes[0] if sizes else 0)
        else:
            E = model.new_int_var(0, H, f"end[{g.layer_ids[v]}]")
            model.add(S + weighted((pv.x[v, d], c) for d, c in zip(devs, sizes, strict=True)) == E)
        for d, c in zip(devs, sizes, strict=True):
            per_device[d].append(
                model.new_optional_fixed_size_interval_var(S, c, pv.x[v, d], f"run[{g.layer_ids[v]},{d}]")
            )
        starts.append(S)
        ends.append(E)
    for ivs in per_device:
        if len(ivs) > 1:
            model.add_no_overlap(ivs)
    for v in range(g.n):
        for t in g.layer_inputs[v]:
            if t < g.n:
                model.add(starts[v] >= ends[t])
            for a in range(s.k):
                for b in range(s.k):
                    if not masks.ship[t, a, b] or (v, b) not in pv.x or not tables.dur[t, a, b]:
                        continue
                    delay = int(tables.dur[t, a, b])
                    if t < g.n:
                        model.add(starts[v] >= ends[t] + delay).only_enforce_if([pv.x[t, a], pv.x[v, b]])
                    else:
                        model.add(starts[v] >= delay).only_enforce_if(pv.x[v, b])
    L = model.new_int_var(0, latency_cap, "latency")
    sink = s.sink_index
    for o in g.outputs:
        model.add(ends[o] <= L)
        if sink is None:
            continue
        for a in range(s.k):
            if masks.ship[o, a, sink] and tables.dur[o, a, sink]:
                model.add(ends[o] + int(tables.dur[o, a, sink]) <= L).only_enforce_if(pv.x[o, a])
    before_output = g.is_output | g.ancestors[:, list(g.outputs)].any(axis=1) if g.outputs else g.is_output
    for d in range(s.k):
        items = [(lit, int(tables.comp[v, d])) for (v, dd), lit in pv.x.items() if dd == d and before_output[v]]
        if len(items) > 1:
            model.add(weighted(items) <= L)
    return Schedule(starts, L)


@dataclass(frozen=True)
class Period:
    """The period variable and the expressions it bounds (``P >= each``), in ticks."""

    var: cp_model.IntVar
    parts: Sequence[cp_model.LinearExpr]


def add_period(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, tables: TimeTables, cap: int) -> Period:
    """``P >= busy[d]`` for every device and ``P >= busy[a -> b]`` for every channel; ``P <= cap``.

    The pipelined period (docs/instance-format.md §5.5): the min-max (bottleneck) objective of
    pipeline partitioning, as in PipeDream (Narayanan et al., SOSP 2019) and Tarnawski et al.
    (NeurIPS 2020). A device's busy time is its compute, plus its sending and receiving when its
    communication does not overlap compute (``comm_overlap: false``, the accelerator load of
    Tarnawski et al.), all from the rounded-up tables so the period is never under-estimated.
    """
    P = model.new_int_var(0, cap, "period")
    parts = []
    for d in range(inst.k):
        items = compute_items(pv, tables, d)
        if not inst.system.comm_overlap[d]:
            items += comm_items(model, inst, pv, tables.occ, d)
        parts.append(weighted(items))
    channels = sorted({(a, b) for (_t, a, b) in pv.send})
    for a, b in channels:
        parts.append(weighted(link_items(pv, tables, a, b)))
    for e in parts:
        model.add(e <= P)
    return Period(P, parts)


@dataclass(frozen=True)
class Idle:
    """Idle time of one device: ``var >= L - busy``, ``var >= 0`` (ticks, at most ``ub``)."""

    device: int
    ub: int
    var: cp_model.IntVar
    busy: cp_model.LinearExpr


def add_idle(
    model: cp_model.CpModel,
    inst: Instance,
    pv: PlacementVars,
    tables: TimeTables,
    d: int,
    latency: cp_model.IntVar,
    ub: int,
) -> Idle:
    """``idle[d] >= L - compute[d] - sending[d] - receiving[d]`` and ``idle[d] >= 0`` (parallel mode).

    The idle term ``max(0, L - busy)`` of the energy model (docs/instance-format.md §5.6; the idle/active split of
    Neurosurgeon's mobile energy, Kang et al., ASPLOS 2017). In parallel mode a device's busy time
    can exceed ``L`` (its transfers overlap each other and its compute), hence the max. Bounding
    from below is exact because idle power is non-negative and idle time only appears with
    non-negative weight in the objective and on the left of energy budgets (``<=``).
    """
    busy = weighted(busy_items(model, inst, pv, tables, d))
    var = model.new_int_var(0, ub, f"idle[{d}]")
    model.add(var >= latency - busy)
    return Idle(d, ub, var, busy)
