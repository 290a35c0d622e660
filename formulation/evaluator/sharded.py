"""Evaluate a *sharded* placement: every layer on one device or on a group (docs/instance-format.md §5.14).

A sharded placement maps each layer to an option of :mod:`formulation.sharding` (a device, or a
group of devices for a layer that declares ``shardable``). The metrics are those of §5 with a
group's terms from :mod:`formulation.sharding`:

* tensors: a tensor exists where it is produced (every member of a group; the source for a model
  input) and is *needed* on every member of every option that reads it and on the sink for a model
  output; each needing device that does not hold it receives it once, from the holder with the
  shortest transfer (:func:`formulation.sharding.best_sender`);
* ``L_seq = sum over layers of span(v, option) + sum over transfers of their duration`` (§5.3;
  a group's span is its slowest member plus its collective);
* ``busy(d) = sum over layers whose option contains d of t(v, d) / g + T_coll`` and ``occupied(c)``
  the transfers' and collectives' occupied time on channel ``c``; ``P = max(busy, occupied)`` (§5.5);
* ``M(d) = sum of param_bytes / g + max of the working-set term`` over the layers whose option
  contains ``d`` (§5.9 with the member's shares);
* violations: ``link`` (a needed transfer or a ring channel without a channel), ``memory``,
  ``allowed`` (every member must be allowed), ``pipeline`` (used options pairwise disjoint or equal,
  and their quotient graph acyclic: one stage per device, a group being one stage), and ``sharding``
  (a group on a layer that does not declare ``shardable``, or larger than its ``max_degree``).

With every option a single device these are exactly the evaluator's values of §5
(``tests/test_sharding.py`` checks latency, period, memory and the verdicts on random instances).
Energy, cost and parallel latency are not defined for groups and are reported as NaN; the solvers of
sharded instances (:mod:`solvers.sharding`) accept only sequential latency and the period.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from formulation.evaluator.batch import REL_TOL
from formulation.evaluator.evaluate import Evaluation, Transfer, Violation
from formulation.model import Instance
from formulation.sharding import (
    Option,
    as_options,
    collective,
    max_degree,
    member_compute,
    param_share,
    peak_term,
    sends,
    span,
)

#: Constraint kinds a sharded placement is judged on.
SHARDED_CONSTRAINTS = frozenset({"memory", "memory_params", "allowed", "pipeline"})
#: Objectives defined for sharded placements.
SHARDED_OBJECTIVES = frozenset({"latency", "throughput"})


def unsupported(inst: Instance) -> list[str]:
    """What of ``inst`` the sharded cost model does not define (empty when it can be judged)."""
    p = inst.problem
    out = []
    terms = {m for m, w in p.objective.terms().items() if w}
    if not terms <= SHARDED_OBJECTIVES or len(terms) != 1:
        out.append(f"objective {p.objective} (sharded placements: latency or throughput)")
    if "latency" in terms and p.execution != "sequential":
        out.append("parallel latency (sharded placements: sequential latency)")
    extra = sorted(inst.active_constraints - SHARDED_CONSTRAINTS)
    if extra:
        out.append(f"constraints {extra}")
    if inst.system.features:
        out.append(f"device features {sorted(inst.system.features)}")
    if inst.workload is not None or p.scenarios is not None:
        out.append("version-2 workloads and network states")
    return out


def evaluate_sharded(inst: Instance, placement: Mapping[str, Sequence[str] | str] | Sequence[Option]) -> Evaluation:
    """Every metric of a sharded placement (module docstring).

    Parameters
    ----------
    placement : mapping or sequence
        ``{layer: device or [devices]}``, or options (device-index tuples) by layer index.

    Raises
    ------
    ValueError
        When the instance uses something the sharded model does not define (:func:`unsupported`),
        or the placement names unknown layers or devices.
    """
    why = unsupported(inst)
    if why:
        raise ValueError(f"instance {inst.name!r}: sharded placements are not defined with " + "; ".join(why))
    opts = as_options(inst, dict(placement)) if isinstance(placement, Mapping) else [tuple(o) for o in placement]
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    dev = s.device_ids
    k = s.k
    compute = np.zeros(k)
    busy = np.zeros(k)
    params = np.zeros(k)
    peak = np.zeros(k)
    occupied = np.zeros((k, k))
    nbytes = np.zeros((k, k))
    viol: list[Violation] = []
    transfers: list[Transfer] = []
    lat = 0.0
    for v, o in enumerate(opts):
        lid = g.layer_ids[v]
        if len(o) > max_degree(inst, v):
            why_not = "does not declare shardable" if max_degree(inst, v) == 1 else f"max_degree {max_degree(inst, v)}"
            viol.append(Violation("sharding", f"layer {lid!r} runs on {len(o)} devices; it {why_not}"))
        if not all(inst.allowed_mask[v, d] for d in o):
            viol.append(Violation("allowed", f"layer {lid!r} runs on {[dev[d] for d in o]}; allowed only on "
                                             f"{list(c.allowed.get(lid, ()))}"))
        coll = collective(inst, v, o)
        lat += span(inst, v, o)
        for d, t in zip(o, member_compute(inst, v, o), strict=True):
            compute[d] += t
            busy[d] += t + coll.time_s
            params[d] += param_share(inst, v, o)
            peak[d] = max(peak[d], peak_term(inst, v, o))
        for (a, b), occ in zip(coll.channels, coll.occupied_s, strict=True):
            if not s.has_link[a, b]:
                viol.append(Violation("link", f"layer {lid!r}: the ring of {[dev[d] for d in o]} needs a "
                                              f"channel {dev[a]!r} -> {dev[b]!r}"))
                continue
            occupied[a, b] += occ
            nbytes[a, b] += coll.bytes_per_channel
            transfers.append(Transfer(f"{lid} (collective)", dev[a], dev[b], coll.bytes_per_channel, occ,
                                      coll.time_s, math.nan, math.nan))
    # tensors: holders and the devices that need them
    need: list[set[int]] = [set() for _ in g.tensor_ids]
    for v, o in enumerate(opts):
        for t in g.layer_inputs[v]:
            need[t].update(o)
    if s.sink_index is not None:
        for out in g.outputs:
            need[out].add(s.sink_index)
    for t in range(len(g.tensor_ids)):
        holders = list(opts[t]) if t < g.n else [s.source_index]
        size = float(g.tensor_bytes[t])
        for snd in sends(inst, holders, need[t], size):
            a, e = snd.src, snd.dst
            if not math.isfinite(snd.duration_s):
                viol.append(Violation("link", f"tensor {g.tensor_ids[t]!r} must reach {dev[e]!r} but no holder "
                                              f"{[dev[h] for h in holders]} has a link to it"))
                lat = math.inf
                continue
            occupied[a, e] += snd.occupied_s
            nbytes[a, e] += size
            lat += snd.duration_s
            transfers.append(Transfer(g.tensor_ids[t], dev[a], dev[e], size, snd.occupied_s, snd.duration_s,
                                      math.nan, math.nan))
    memory = params + peak
    if c.memory:
        viol += [
            Violation("memory", f"device {d!r} needs {memory[j]:.6g} bytes but has {s.memory[j]:.6g}")
            for j, d in enumerate(dev)
            if memory[j] > s.memory[j] * (1 + REL_TOL)
        ]
    if c.pipeline and not is_pipeline(inst, opts):
        viol.append(Violation("pipeline", "the options used are not disjoint stages of a pipeline (a device in "
                                          "two options, or a cycle between options)"))
    # a tensor that cannot arrive makes the period infinite too (§5.2)
    period = float(max(busy.max(initial=0.0), occupied.max(initial=0.0))) if math.isfinite(lat) else math.inf
    objective = lat if inst.problem.objective.terms().get("latency") else period
    chans = [(s.device_index[a], s.device_index[b]) for (a, b) in s.links]
    return Evaluation(
        placement={g.layer_ids[v]: dev[o[0]] for v, o in enumerate(opts)},
        schedule={},
        latency_s=lat,
        latency_sequential_s=lat,
        latency_parallel_s=math.nan,
        period_s=period,
        throughput_per_s=(1.0 / period) if period > 0 else math.inf,
        compute_time_s={d: float(compute[j]) for j, d in enumerate(dev)},
        busy_s={d: float(busy[j]) for j, d in enumerate(dev)},
        energy_j={d: math.nan for d in dev},
        energy_total_j=math.nan,
        cost_usd=math.nan,
        memory_bytes={d: float(memory[j]) for j, d in enumerate(dev)},
        link_bytes={f"{dev[a]}->{dev[b]}": float(nbytes[a, b]) for a, b in chans},
        link_busy_s={f"{dev[a]}->{dev[b]}": float(occupied[a, b]) for a, b in chans},
        transfers=tuple(transfers),
        objective=objective,
        violations=tuple(viol),
    )


def is_pipeline(inst: Instance, opts: Sequence[Option]) -> bool:
    """The used options are pairwise disjoint (or equal) and their quotient graph is acyclic
    (§5.10's ``pipeline`` with a group as one stage)."""
    used = sorted(set(opts))
    seen: set[int] = set()
    for o in used:
        if seen & set(o):
            return False
        seen |= set(o)
    q: nx.DiGraph = nx.DiGraph()
    q.add_nodes_from(used)
    q.add_edges_from((opts[u], opts[v]) for u, v in inst.graph.edges if opts[u] != opts[v])
    return bool(nx.is_directed_acyclic_graph(q))
