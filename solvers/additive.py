"""The objective as a sum over layers and transfers, for the polynomial exact methods.

In SEQUENTIAL mode every metric of docs/instance-format.md §5 except the period is a sum of a term per layer
(on its device) and a term per transfer (a tensor sent once from its producer's device ``a`` to a
device ``b`` that needs it). This is the cost model assumed by Neurosurgeon (Kang et al., ASPLOS
2017), JointDNN (Eshratifar et al., IEEE TMC 2019) and DADS (Hu et al., INFOCOM 2019); this
module derives the two terms from docs/instance-format.md §5 so that ``shortest-path``, ``mincut`` and ``dp``
share one derivation. Tests compare it with the evaluator on random placements.

Derivation, with ``t(v, d)`` the layer time, ``occ = n / bw(a, b)`` and ``dur = lat(a, b) + occ``:

* latency: ``L = sum_v t(v, d(v)) + sum_transfers dur``;
* cost: ``sum_v price(d) t(v, d) + sum_transfers price(a, b) n``;
* energy over the scope ``S`` with ``PI = sum_{d in S} idle(d)``: in sequential mode
  ``L >= compute(d) + sending(d) + receiving(d)`` for every device (each transfer involves a
  device at most once and ``occ <= dur``), so ``max(0, .)`` in the idle term is inactive and
  ``E = PI * L + sum_{d in S} [(active(d) - idle(d)) compute(d) + sum (tx - idle(a)) occ
  + sum (rx - idle(b)) occ]``, which is linear in the layer and transfer terms. Every transfer
  term is ``>= 0`` because ``PI >= idle(a) [a in S] + idle(b) [b in S]``.

A weighted objective with weights ``w >= 0`` is the same sum with combined coefficients; a missing
link direction gives an infinite transfer term, ``allowed``/``private`` infinite layer terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from formulation.costs import peak_term_bytes
from formulation.evaluator.batch import _private_static_violation
from formulation.model import FloatArray, Instance, IntArray

#: Metrics that are additive over layers and transfers in sequential mode.
ADDITIVE_METRICS = frozenset({"latency", "energy", "cost"})

#: Options the polynomial exact methods honour trivially: they are deterministic (any ``seed``),
#: single-threaded (within any ``threads``) and return a gap of 0 (within any ``gap``), so that
#: ``auto`` can forward these options to them.
EXACT_OPTIONS = frozenset({"time_limit_s", "seed", "gap", "threads"})


def sequential_equivalent(inst: Instance) -> bool:
    """True when parallel latency equals sequential latency for *every* placement.

    This holds for a chain with at most one model input, read only by the first layer, whose only
    output is the last layer: each layer waits for its predecessor, no two layers ever overlap,
    the list schedule is the ASAP one (device conflicts cannot occur), and no transfer runs
    concurrently with another or with compute. The Neurosurgeon and JointDNN setting is of this
    kind, so the parallel mode of such instances is solved exactly by the sequential methods.
    """
    g = inst.graph
    if not g.is_chain or g.m > 1 or g.outputs != (g.n - 1,):
        return False
    return all(c == 0 for t in range(g.n, g.n + g.m) for c in g.consumers[t])


def memory_cannot_bind(inst: Instance) -> bool:
    """No placement can exceed any device's memory, so the memory constraint changes nothing.

    A device's memory need (its layers' parameters plus their largest working set, or the
    parameters alone under ``memory: params``) only grows
    with its set of layers, so it is largest when the device runs every layer allowed on it; if
    even that fits, memory never binds. Realistic instances often satisfy this (a phone holds the
    whole model), which lets the methods that cannot model memory solve them exactly.
    """
    c, g, s = inst.problem.constraints, inst.graph, inst.system
    if not c.memory:
        return True
    peak = peak_term_bytes(inst)
    for d in range(s.k):
        on = inst.placement_mask[:, d]
        if float(g.param_bytes[on].sum()) + float(peak[on].max(initial=0.0)) > float(s.memory[d]):
            return False
    return True


def equivalent_view(inst: Instance) -> Instance:
    """``inst`` with the same feasible placements and the same value for each, simplified.

    Parallel execution becomes sequential when the two latencies coincide for every placement
    (:func:`sequential_equivalent`), and the memory constraint is dropped when it cannot bind
    (:func:`memory_cannot_bind`). The exact methods check their capabilities against this view;
    the evaluator still judges their answers on the instance itself.
    """
    p = inst.problem
    if p.execution == "parallel" and sequential_equivalent(inst):
        p = replace(p, execution="sequential")
    if p.constraints.memory and memory_cannot_bind(inst):
        p = replace(p, constraints=replace(p.constraints, memory=False))
    return inst if p == inst.problem else inst.with_problem(p)


def not_additive_reason(inst: Instance) -> str | None:
    """Why the objective is not a sum over layers and transfers (``None`` when it is)."""
    p = inst.problem
    terms = p.objective.terms()
    if any(w < 0 for w in terms.values()):
        return "a negative objective weight (the methods need weights >= 0)"
    if terms.get("throughput"):
        return "the throughput (period) objective, a bottleneck and not a sum"
    if p.execution == "parallel" and (terms.get("latency") or terms.get("energy")):
        return "parallel latency (a makespan, not a sum) in the objective"
    return None


def static_infeasibility(inst: Instance) -> str | None:
    """A reason why *no* placement is feasible that needs no search (``None`` if none is found)."""
    empty = np.flatnonzero(~inst.placement_mask.any(axis=1))
    if empty.size:
        return f"layer {inst.graph.layer_ids[int(empty[0])]!r} may run on no device (allowed/private)"
    if inst.problem.constraints.private and _private_static_violation(inst):
        return "a private model input lies on an untrusted source, or a private output must reach an untrusted sink"
    return None


@dataclass(frozen=True)
class AdditiveCosts:
    """Layer and transfer terms of an additive objective (see the module docstring).

    Attributes
    ----------
    node : (n, k) float
        Term of layer ``v`` on device ``d``; ``inf`` where ``allowed``/``private`` forbid it.
    link0, link_per_byte : (k, k) float
        A transfer of ``n`` bytes over ``a -> b`` costs ``link0[a, b] + n * link_per_byte[a, b]``;
        0 on the diagonal, ``inf`` where the direction has no link.
    """

    instance: Instance
    node: FloatArray
    link0: FloatArray
    link_per_byte: FloatArray
    link_per_s: FloatArray | None = None
    """Cost of one second of occupied link time ``n / bw``; with :attr:`link_per_usd_byte`, lets
    :meth:`transfer` divide by the bandwidth instead of multiplying by its inverse (which
    overflows for a denormal bandwidth although ``n / bw`` may be finite)."""
    link_per_usd_byte: FloatArray | None = None

    def transfer(self, nbytes: float | FloatArray) -> FloatArray:
        """``(k, k)`` (or ``(..., k, k)``) cost of sending ``nbytes`` over each direction."""
        nb = np.asarray(nbytes, dtype=float)[..., None, None]
        with np.errstate(all="ignore"):
            if self.link_per_s is not None and self.link_per_usd_byte is not None:
                bw = self.instance.system.bandwidth
                occ = nb / bw
                out = self.link0 + _nz(occ, self.link_per_s) + _nz(nb, self.link_per_usd_byte)
                # A transfer that never ends (n / bw overflows) makes the evaluator's latency, hence
                # its objective, infinite whatever the weights: its term is inf too, even where the
                # objective does not price link time (a cost objective over a free link).
                dur = occ + self.instance.system.link_latency
                ok = self.instance.system.has_link & np.isfinite(dur) & ~np.isnan(out)
                out = np.where(ok, out, math.inf)
            else:
                # 0 bytes over a link of (near) zero bandwidth cost the latency term only, not 0 * inf
                out = self.link0 + np.where(nb > 0, nb * self.link_per_byte, 0.0)
        k = self.link0.shape[0]
        out[..., np.arange(k), np.arange(k)] = 0.0
        return out

    def tensor_cost(self, t: int) -> FloatArray:
        """``(k, k)`` cost of sending tensor ``t`` over each direction."""
        return self.transfer(float(self.instance.graph.tensor_bytes[t]))

    def value(self, P: IntArray) -> float:
        """The objective of placement ``P`` (device index per layer) from the two terms."""
        g, s = self.instance.graph, self.instance.system
        P = np.asarray(P, dtype=np.int64)
        total = float(self.node[np.arange(g.n), P].sum())
        for t in range(g.n + g.m):
            a = int(P[t]) if t < g.n else s.source_index
            need = {int(P[c]) for c in g.consumers[t]}
            if t < g.n and g.is_output[t] and s.sink_index is not None:
                need.add(s.sink_index)
            need.discard(a)
            if need:
                row = self.tensor_cost(t)[a]
                total += float(sum(row[b] for b in need))
        return total


def _nz(a: float | FloatArray, b: float | FloatArray) -> FloatArray:
    """``a * b`` with ``0 * inf = 0`` (a zero weight or power makes a term vanish, not NaN)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where((np.asarray(a) == 0) | (np.asarray(b) == 0), 0.0, np.multiply(a, b))


def _sum_except(values: FloatArray, skip: tuple[int, ...]) -> float:
    """Sum of ``values`` over the indices not in ``skip`` (no subtraction)."""
    return float(sum(float(x) for i, x in enumerate(values) if i not in skip))


def additive_costs(inst: Instance) -> AdditiveCosts:
    """Layer and transfer terms of ``inst``'s objective.

    Raises
    ------
    ValueError
        If the objective is not additive (:func:`not_additive_reason`).
    """
    why = not_additive_reason(inst)
    if why:
        raise ValueError(f"the objective of {inst.name!r} is not additive: {why}")
    s = inst.system
    terms = inst.problem.objective.terms()
    w_lat, w_en, w_cost = (float(terms.get(m, 0.0)) for m in ("latency", "energy", "cost"))
    k = s.k
    scope = inst.scope_mask
    pi_s = np.where(scope, s.power_idle, 0.0)
    # Every coefficient is a sum of non-negative parts, computed without the subtraction
    # ``active - idle`` of the derivation (which cancels catastrophically when the idle power dwarfs
    # the rest): a second of L is paid by the latency weight and the idle power of every scoped
    # device, except the device that computes (or sends, or receives) during it, which pays its
    # active (tx, rx) power instead.
    others = np.array([_sum_except(pi_s, (d,)) for d in range(k)])
    with np.errstate(all="ignore"):
        dev = w_lat + _nz(w_en, others) + _nz(w_cost, s.price) + _nz(w_en, np.where(scope, s.power_active, 0.0))
        node = _nz(inst.time, dev[None, :])
        node = np.where(inst.placement_mask & np.isfinite(inst.time), node, math.inf)
        inv_bw = np.where(s.has_link, 1.0 / s.bandwidth, 0.0)
        idle_ab = np.array([[_sum_except(pi_s, (a, b)) for b in range(k)] for a in range(k)])
        radio = np.where(scope[:, None], s.tx_power, 0.0) + np.where(scope[None, :], s.rx_power, 0.0)
        per_s_link = w_lat + _nz(w_en, idle_ab) + _nz(w_en, radio)
        per_byte = _nz(inv_bw, per_s_link) + _nz(w_cost, s.link_price)
        link0 = _nz(w_lat + _nz(w_en, pi_s.sum()), s.link_latency)
    per_byte = np.where(s.has_link & ~np.isnan(per_byte), per_byte, math.inf)
    link0 = np.where(s.has_link & ~np.isnan(link0), link0, math.inf)
    node = np.where(np.isnan(node), math.inf, node)
    per_byte[np.arange(k), np.arange(k)] = 0.0
    link0[np.arange(k), np.arange(k)] = 0.0
    money = _nz(w_cost, s.link_price)
    return AdditiveCosts(inst, node, link0, per_byte, per_s_link, money)


@dataclass(frozen=True)
class ChainCosts:
    """An additive objective on a chain as layer terms plus terms on consecutive pairs.

    On a chain the output of layer ``v < n-1`` is read by layer ``v+1`` only, so the transfers of
    tensor ``v`` depend on ``d(v)``, ``d(v+1)`` and (for a model output) the sink. The objective of
    a placement is ``sum_v node[v, d(v)] + sum_v edge[v, d(v), d(v+1)]``, plus, for each model
    input in :attr:`multi_inputs`, its cost to every device other than the source that runs one of
    its consumers.

    Attributes
    ----------
    node : (n, k) float
        Layer term; plus the transfer of the layer's output to the sink when it is a model output;
        plus the transfer from the source of every model input read by this layer only.
    edge : (n-1, k, k) float
        Transfer of tensor ``v`` from ``d(v)`` to ``d(v+1)``, 0 when that device is the sink and
        ``v`` a model output (it is sent once, and ``node`` already paid for it).
    multi_inputs : tuple of int
        Tensor indices of model inputs read by several layers (not folded into ``node``).
    """

    node: FloatArray
    edge: FloatArray
    multi_inputs: tuple[int, ...]


def chain_costs(ac: AdditiveCosts) -> ChainCosts:
    """:class:`ChainCosts` of a chain instance.

    Raises
    ------
    ValueError
        If the graph is not a chain.
    """
    inst = ac.instance
    g, s = inst.graph, inst.system
    if not g.is_chain:
        raise ValueError(f"{inst.name!r} is not a chain")
    n = g.n
    node = ac.node.copy()
    w = ac.transfer(g.output_bytes)  # (n, k, k)
    edge = w[:-1].copy()
    if s.sink_index is not None:
        outs = np.asarray(g.outputs, dtype=np.int64)
        node[outs] += w[outs, :, s.sink_index]
        inner = outs[outs < n - 1]
        edge[inner, :, s.sink_index] = 0.0
    multi = []
    for t in range(n, n + g.m):
        cons = g.consumers[t]
        if len(cons) == 1:
            node[cons[0]] += ac.tensor_cost(t)[s.source_index]
        elif len(cons) > 1:
            multi.append(t)
    return ChainCosts(node, edge, tuple(multi))


#: Largest sum of finite terms the algorithms add up in doubles (room below DBL_MAX ~ 1.8e308).
SUM_LIMIT = 1e300


def check_overflow(inst: Instance, engine: str) -> None:
    """Refuse ``inst`` when a sum of its finite layer and transfer terms (or times) could overflow to ``inf``.

    The algorithms add ``n`` layer terms and up to ``(n + m) k`` transfer terms; when the largest
    finite ones could reach :data:`SUM_LIMIT`, a placement's total may become ``inf`` in doubles
    where its terms are finite, and an exact comparison of totals is lost. That matters only when
    no single-device placement has a finite total (otherwise an overflowing sum is never optimal).

    Raises
    ------
    formulation.numerics.NumericallyUnsafe
        Naming the layer and device, or the link, of the largest term.
    """
    from formulation.numerics import DOUBLE_RANGE, refuse

    if not_additive_reason(inst):
        check_latency_overflow(inst, engine, None)
        return
    ac = additive_costs(inst)
    check_latency_overflow(inst, engine, ac)
    g, s = inst.graph, inst.system
    count = g.n + (g.n + g.m) * max(s.k, 1)
    node = np.where(np.isfinite(ac.node), ac.node, 0.0)
    top = float(g.tensor_bytes.max(initial=0.0))
    link = ac.transfer(top) if top > 0 else ac.link0
    link = np.where(np.isfinite(link), link, 0.0)
    if max(float(node.max(initial=0.0)), float(link.max(initial=0.0))) * count <= SUM_LIMIT:
        return
    # Terms are >= 0: with a finite single-device placement, every sum that overflows exceeds it
    # and belongs to no optimal placement, so overflow cannot change the answer.
    if any(math.isfinite(ac.value(np.full(g.n, d, dtype=np.int64))) for d in range(s.k)):
        return
    if float(node.max(initial=0.0)) * count > SUM_LIMIT:
        v, d = (int(x) for x in np.unravel_index(int(np.argmax(node)), node.shape))
        raise refuse(
            inst,
            engine,
            f"system.devices[{d}]",
            float(node[v, d]),
            f"layer {g.layer_ids[v]!r} on {s.device_ids[d]!r} costs a term whose sums stay below {SUM_LIMIT:g}",
            represents=DOUBLE_RANGE,
            instead="brute or auto",
        )
    if float(link.max(initial=0.0)) * count > SUM_LIMIT:
        a, b = (int(x) for x in np.unravel_index(int(np.argmax(link)), link.shape))
        raise refuse(
            inst,
            engine,
            f"system.links[{s.device_ids[a]}->{s.device_ids[b]}]",
            float(link[a, b]),
            f"the largest tensor costs a term on this link whose sums stay below {SUM_LIMIT:g}",
            represents=DOUBLE_RANGE,
            instead="brute or auto",
        )


def check_latency_overflow(inst: Instance, engine: str, ac: AdditiveCosts | None) -> None:
    """Refuse ``inst`` when a placement of finite layer and transfer times could have an infinite latency.

    The evaluator gives every metric of a placement whose sequential latency ``L`` is not finite
    the objective ``inf`` (it never completes), whatever the objective: a cost, an energy without
    idle power or a period does not contain ``L``, so the algorithms cannot see ``L`` overflow.
    ``L`` is at most the sum over layers of their largest finite time on an allowed device plus,
    for each tensor, ``k - 1`` times its largest finite transfer time ``latency + bytes / bw``;
    below :data:`SUM_LIMIT` no placement's ``L`` overflows, and an infinite time or transfer is an
    infinite term of the algorithms (:attr:`AdditiveCosts.node`, :meth:`AdditiveCosts.transfer`).
    Above it, ``inst`` is still solved when the additive terms ``ac`` pay at least one unit per
    second of every layer and transfer (a latency weight of 1 or more, for example): a placement
    whose ``L`` overflows then has an overflowing sum of terms as well, ``inf`` to the algorithms.

    Raises
    ------
    formulation.numerics.NumericallyUnsafe
        Naming the layer of the largest finite time, or the link of the largest transfer time.
    """
    from formulation.numerics import DOUBLE_RANGE, refuse

    g, s = inst.graph, inst.system
    k = s.k
    t = np.where(inst.placement_mask & np.isfinite(inst.time), inst.time, 0.0)
    a, b = np.nonzero(s.has_link & ~np.eye(k, dtype=bool))
    with np.errstate(all="ignore"):
        dur = g.tensor_bytes[:, None] / s.bandwidth[a, b][None, :] + s.link_latency[a, b][None, :]
    dur = np.where(np.isfinite(dur), dur, 0.0)
    lay = t.max(axis=1, initial=0.0)
    ten = dur.max(axis=1, initial=0.0) * max(k - 1, 0)
    with np.errstate(over="ignore"):
        total = float(lay.sum()) + float(ten.sum())
    if total <= SUM_LIMIT or (ac is not None and _terms_cover_times(ac)):
        return
    if float(lay.sum()) > float(ten.sum()):
        v, d = (int(x) for x in np.unravel_index(int(np.argmax(t)), t.shape))
        raise refuse(
            inst,
            engine,
            f"model.layers[{v}]",
            float(t[v, d]),
            f"layer {g.layer_ids[v]!r} on {s.device_ids[d]!r} takes a time whose sums (a latency) stay below "
            f"{SUM_LIMIT:g} s",
            represents=DOUBLE_RANGE,
            instead="brute or auto",
        )
    x, j = (int(y) for y in np.unravel_index(int(np.argmax(dur)), dur.shape))
    raise refuse(
        inst,
        engine,
        f"system.links[{s.device_ids[a[j]]}->{s.device_ids[b[j]]}]",
        float(dur[x, j]),
        f"the largest tensor takes a transfer time on this link whose sums (a latency) stay below {SUM_LIMIT:g} s",
        represents=DOUBLE_RANGE,
        instead="brute or auto",
    )


def _terms_cover_times(ac: AdditiveCosts) -> bool:
    """Every layer term is at least its time and every transfer term at least its duration."""
    inst = ac.instance
    s = inst.system
    ok = inst.placement_mask & np.isfinite(inst.time)
    if not bool(np.all(ac.node[ok] >= inst.time[ok])):
        return False
    links = s.has_link & ~np.eye(s.k, dtype=bool)
    per_s = ac.link_per_s if ac.link_per_s is not None else np.zeros((s.k, s.k))
    # transfer term = link0 + occupied seconds * per_s + money >= latency + occupied seconds
    return bool(np.all(ac.link0[links] >= s.link_latency[links]) and np.all(per_s[links] >= 1.0))
