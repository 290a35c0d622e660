"""Cheap lower bounds on the optimal objective, valid for every feasible placement (and schedule).

Heuristics (``heft``, ``local-search``, ``scan`` in heuristic mode, ``dp`` in its restricted modes)
report these as ``bound``; constraints only shrink the feasible set, so a bound that ignores them
stays valid. Every bound below relaxes the problem by letting each layer take its cheapest allowed
device independently:

* additive objectives (:mod:`solvers.additive`, sequential mode): every transfer term is ``>= 0``,
  so ``sum_v min_d node(v, d)``;
* parallel latency: the larger of the critical path with each layer at its fastest allowed time,
  plus the transfers that allowed sets make unavoidable (a model input read by a layer that may not
  run on the source, an edge whose two layers share no allowed device, an output that may not run
  on the sink), each at its fastest link; and the total of the fastest times over the number of
  devices that may execute layers (a device runs one layer at a time);
* period: the larger of the slowest layer at its fastest, the load bound above, and the heaviest
  ``colocate`` class: its layers share one device, so that device computes at least the class's
  total time on the device allowed for all of them where that total is least; on a device whose
  communication does not overlap its compute (``comm_overlap: false``) the class also pays, for
  each outside predecessor, its compute there or the receipt of its tensor, and for each tensor
  of the class read outside, its sending or the compute of its outside readers (each outside
  layer counted once), the cheaper of each (:func:`_neighbourhood_load`); the fractional-placement
  LP (each layer split over its allowed devices, every device's compute load and weights limited:
  :mod:`solvers.lp_bound`; it ignores communication, valid because transfer times are ``>= 0``);
  and, stronger, the least load of any set of layers around each unit, by minimum cuts
  (:mod:`solvers.unit_load`);
* energy in parallel mode: active power times the fastest-energy time of each layer (the radio and
  idle terms are ``>= 0``);
* cost: each layer at its cheapest allowed device (transfer prices are ``>= 0``);
* weighted (weights ``>= 0``): the weighted sum of the bounds of the terms.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from formulation.costs import transfer_seconds
from formulation.model import FloatArray, Instance, Objective
from solvers.additive import additive_costs, equivalent_view, not_additive_reason, static_infeasibility
from solvers.lp_bound import MAX_COLUMNS, fractional_period_bound
from solvers.unit_load import unit_load_bound


def _min_allowed(inst: Instance, values: FloatArray) -> FloatArray:
    """Per layer, the minimum of ``values[v, d]`` over its allowed devices."""
    return np.where(inst.placement_mask, values, math.inf).min(axis=1)


def _devices_usable(inst: Instance) -> int:
    m = inst.problem.constraints.max_devices
    usable = int(inst.placement_mask.any(axis=0).sum())
    return max(1, min(usable, m) if m is not None else usable)


def _fastest_transfer(inst: Instance, src: np.ndarray, dst: np.ndarray, nbytes: float) -> float:
    """Fastest transfer of ``nbytes`` from a device of ``src`` to a different device of ``dst``."""
    s = inst.system
    with np.errstate(divide="ignore", invalid="ignore"):
        dur = np.where(s.has_link, transfer_seconds(s.link_latency, nbytes, s.bandwidth), math.inf)
    sub = dur[np.ix_(src, dst)]
    return float(sub.min()) if sub.size else math.inf


def parallel_latency_lower_bound(inst: Instance) -> float:
    """A lower bound on the parallel latency of every placement and schedule (see module docstring)."""
    g, s = inst.graph, inst.system
    mask = inst.placement_mask
    tmin = _min_allowed(inst, inst.time)
    allowed = [np.flatnonzero(mask[v]) for v in range(g.n)]
    finish = np.zeros(g.n)
    for v in range(g.n):
        start = 0.0
        for t in g.layer_inputs[v]:
            if t >= g.n:
                if not mask[v, s.source_index]:
                    src = np.array([s.source_index])
                    start = max(start, _fastest_transfer(inst, src, allowed[v], float(g.tensor_bytes[t])))
                continue
            delay = 0.0
            if not (mask[t] & mask[v]).any():
                delay = _fastest_transfer(inst, allowed[t], allowed[v], float(g.tensor_bytes[t]))
            start = max(start, finish[t] + delay)
        finish[v] = start + tmin[v]
    cp = 0.0
    for o in g.outputs:
        tail = 0.0
        if s.sink_index is not None and not mask[o, s.sink_index]:
            tail = _fastest_transfer(inst, allowed[o], np.array([s.sink_index]), float(g.output_bytes[o]))
        cp = max(cp, float(finish[o]) + tail)
    return max(cp, float(tmin.sum()) / _devices_usable(inst))


def _neighbourhood_load(inst: Instance) -> float:
    """The largest, over units (``colocate`` classes and single layers), of the least busy time of
    the device holding the unit (see the module docstring).

    Each outside layer enters at most once, as its compute (it shares the device) or as one
    transfer (the tensor it sends in, or the class tensor it forces out), so the terms never count
    the same work twice: a valid bound for every placement.
    """
    g, s = inst.graph, inst.system
    mask, time = inst.placement_mask, inst.time
    others = ~np.eye(s.k, dtype=bool) & s.has_link

    def fastest(nbytes: float, links: np.ndarray, bw: np.ndarray) -> float:
        # Occupancy only: link latency is no part of a device's busy time (docs/cost-model.md).
        with np.errstate(divide="ignore", invalid="ignore"):
            dur = np.where(links, nbytes / bw, math.inf)
        return float(dur.min(initial=math.inf))

    in_class = set().union(*(set(map(int, c)) for c in inst.colocate_classes)) if inst.colocate_classes else set()
    units = [np.asarray(c) for c in inst.colocate_classes] + [np.array([v]) for v in range(g.n) if v not in in_class]
    best = 0.0
    for unit in units:
        members = set(map(int, unit))
        ins = sorted({u for c in members for u in g.preds[c]} - members)
        values = []
        for d in np.flatnonzero(mask[unit].all(axis=0)):
            val = float(time[unit, d].sum())
            if not s.comm_overlap[d]:
                into = (others[:, d], s.bandwidth[:, d])
                for u in ins:
                    here = time[u, d] if mask[u, d] else math.inf
                    val += min(here, fastest(float(g.tensor_bytes[u]), *into))
                seen = set(ins)
                for c in sorted(members):
                    readers = [w for w in g.succs[c] if w not in members]
                    if not readers:
                        continue
                    own = [w for w in readers if w not in seen]
                    seen.update(own)
                    send = fastest(float(g.tensor_bytes[c]), others[d], s.bandwidth[d])
                    here = sum(float(time[w, d]) if mask[w, d] else math.inf for w in own)
                    val += min(send, here)
            values.append(val)
        best = max(best, min(values, default=0.0))
    return best


def metric_lower_bound(inst: Instance, metric: str) -> float:
    """A lower bound on one metric (``throughput`` is the period) over every feasible placement."""
    tmin = _min_allowed(inst, inst.time)
    if metric == "throughput":
        simple = max(float(tmin.max(initial=0.0)), float(tmin.sum()) / _devices_usable(inst), _neighbourhood_load(inst),
                     fractional_period_bound(inst, max_columns=MAX_COLUMNS))
        return unit_load_bound(inst, floor=simple)
    if metric == "cost":
        return float(_min_allowed(inst, inst.time * inst.system.price[None, :]).sum())
    if metric == "latency" and inst.problem.execution == "parallel":
        return parallel_latency_lower_bound(inst)
    if metric == "energy" and inst.problem.execution == "parallel":
        active = inst.time * (inst.system.power_active * inst.scope_mask)[None, :]
        return float(_min_allowed(inst, active).sum())
    one = inst.with_problem(replace(inst.problem, objective=Objective(metric)))  # type: ignore[arg-type]
    return float(additive_costs(one).node.min(axis=1).sum())


def cheap_lower_bound(inst: Instance) -> float:
    """A valid lower bound on the optimal objective of ``inst`` (``-inf`` when none is cheap).

    Returns ``-inf`` when a layer has no allowed device (nothing is feasible: no placement will be
    reported and no bound is needed), a weight is negative, or a request is a generation.
    """
    if static_infeasibility(inst):
        return -math.inf
    from formulation.generation import has_generation

    if has_generation(inst):  # the time table is one plain pass, not a generation's passes (§9.10)
        return -math.inf
    seq = equivalent_view(inst)
    if not_additive_reason(seq) is None:
        return float(additive_costs(seq).node.min(axis=1).sum())
    total = 0.0
    for metric, w in inst.problem.objective.terms().items():
        if w < 0:
            return -math.inf
        if w:
            total += w * metric_lower_bound(seq, metric)
    return total
