"""Tensor parallelism as a decision: the cost of one layer run by a *group* of devices.

docs/instance-format.md §2.6 and §5.14 define the model; this module is its only implementation of
the per-layer terms, used by the evaluator of sharded placements
(:mod:`formulation.evaluator.sharded`), brute force, the MILP and the stage DP.

A layer ``v`` that declares ``shardable`` may run on an **option**: one device (placed whole, as
everywhere else) or a group ``D`` of ``g = |D|`` devices, ``2 <= g <= max_degree``, listed in device
order. On a group (Megatron-LM's intra-layer model parallelism, Shoeybi et al., arXiv:1909.08053,
2019; Narayanan et al., SC 2021):

* member ``d`` computes ``t(v, d) / g`` (1/g of the heads or hidden columns; §5.1's time divided
  by ``g``) and holds ``param_bytes / g`` of the weights and ``workspace_bytes / g``; every member
  reads the layer's inputs whole and ends with the whole output (the collective below);
* the group completes the layer with a ring collective over ``comm_bytes`` (default
  ``output_bytes``): the ring sends along ``D[0] -> D[1] -> ... -> D[g-1] -> D[0]``, each of its
  ``s`` steps moves a chunk of ``comm_bytes / g`` over every ring channel at once, so a step lasts
  the slowest channel's transfer of one chunk and the collective lasts

  ``T_coll = s * max over ring channels c of (latency(c) + (comm_bytes / g) / bandwidth(c))``

  with ``s = 2 (g - 1)`` for a ring all-reduce (a reduce-scatter then an all-gather; Patarasuk and
  Yuan, "Bandwidth optimal all-reduce algorithms for clusters of workstations", J. Parallel Distrib.
  Comput. 69(2), 2009: ``2 (p-1) alpha + 2 (p-1)/p n beta``) and ``s = g - 1`` for a ring
  all-gather (Thakur, Rabenseifner and Gropp, "Optimization of collective communication operations
  in MPICH", IJHPCA 19(1), 2005). Each ring channel is occupied ``s * (comm_bytes / g) /
  bandwidth(c)``. Megatron's transformer block needs one all-reduce after the attention block and
  one after the MLP block in the forward pass (Shoeybi et al. §3), so a sharded attention or MLP
  block declares ``comm: allreduce``; a column-parallel layer whose output is needed whole
  declares ``allgather``.
* The collective is part of the layer: the layer's span is ``max_d t(v, d) / g + T_coll`` and each
  member is busy ``t(v, d) / g + T_coll`` (a synchronous collective, as in the stage costs of Alpa,
  Zheng et al., OSDI 2022).
* Tensors a group produces exist on every member; a tensor needed on a device outside the group is
  sent once, from the member with the shortest transfer time (ties: the lower device index).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from formulation.costs import transfer_seconds, working_set_bytes
from formulation.model import Instance

Option = tuple[int, ...]
"""Device indices in increasing order: one device (the layer placed whole) or a group."""


def sharded_layers(inst: Instance) -> list[int]:
    """Indices of the layers that declare ``shardable``."""
    return [i for i, lay in enumerate(inst.graph.layers) if lay.shardable is not None]


def has_sharding(inst: Instance) -> bool:
    """Some layer declares ``shardable``: the placement space includes groups."""
    return any(lay.shardable is not None for lay in inst.graph.layers)


def max_degree(inst: Instance, v: int) -> int:
    """Largest group size of layer ``v`` (1 when it is not shardable)."""
    sh = inst.graph.layers[v].shardable
    return 1 if sh is None else sh.max_degree


def ring(group: Option) -> list[tuple[int, int]]:
    """The ring's channels ``D[i] -> D[i+1 mod g]`` (none for one device)."""
    g = len(group)
    return [] if g < 2 else [(group[i], group[(i + 1) % g]) for i in range(g)]


@dataclass(frozen=True)
class Collective:
    """The collective that completes a sharded layer (module docstring)."""

    time_s: float
    steps: int
    chunk_bytes: float
    channels: tuple[tuple[int, int], ...]
    occupied_s: tuple[float, ...]
    """Per ring channel (same order as ``channels``): ``steps * chunk / bandwidth``."""

    @property
    def bytes_per_channel(self) -> float:
        """Bytes each ring channel carries."""
        return self.steps * self.chunk_bytes


NO_COLLECTIVE = Collective(0.0, 0, 0.0, (), ())


def collective(inst: Instance, v: int, group: Option) -> Collective:
    """The collective of layer ``v`` on ``group``; infinite time when a ring channel is missing."""
    g = len(group)
    if g < 2:
        return NO_COLLECTIVE
    lay = inst.graph.layers[v]
    sh = lay.shardable
    comm = "allreduce" if sh is None else sh.comm
    nbytes = lay.output_bytes if sh is None or sh.comm_bytes is None else sh.comm_bytes
    steps = 2 * (g - 1) if comm == "allreduce" else g - 1
    chunk = nbytes / g
    s = inst.system
    chans = ring(group)
    step = max(s.transfer_time(a, b, chunk) for a, b in chans)  # inf without the channel
    occ = tuple(
        float(steps * transfer_seconds(0.0, chunk, s.bandwidth[a, b])) if s.has_link[a, b] else math.inf
        for a, b in chans
    )
    return Collective(float(steps * step), steps, chunk, tuple(chans), occ)


def member_compute(inst: Instance, v: int, group: Option) -> list[float]:
    """Per member: ``t(v, d) / g`` (§5.1's time of the whole layer, split evenly)."""
    g = len(group)
    return [float(inst.time[v, d]) / g for d in group]


def span(inst: Instance, v: int, group: Option) -> float:
    """Time of layer ``v`` on ``group`` in sequential latency: slowest member + collective."""
    return max(member_compute(inst, v, group)) + collective(inst, v, group).time_s


def param_share(inst: Instance, v: int, group: Option) -> float:
    """Weights each member holds: ``param_bytes / g``."""
    return float(inst.graph.param_bytes[v]) / len(group)


def peak_term(inst: Instance, v: int, group: Option) -> float:
    """Per member, the working set beyond its weights (§5.9): ``workspace / g + output + inputs``
    under ``memory: peak``, 0 under ``params``."""
    if inst.problem.constraints.memory_model != "peak":
        return 0.0
    g = inst.graph
    return float(working_set_bytes(g)[v] - g.workspace_bytes[v] * (1.0 - 1.0 / len(group)))


def best_sender(inst: Instance, holders: Sequence[int], dst: int, nbytes: float) -> tuple[int, float]:
    """``(sender, duration)``: the holder with the shortest transfer to ``dst`` (ties: lower index);
    duration ``inf`` when no holder has a channel to ``dst``."""
    best, dur = holders[0], math.inf
    for a in sorted(holders):
        t = inst.system.transfer_time(a, dst, nbytes)
        if t < dur:
            best, dur = a, t
    return best, dur


@dataclass(frozen=True)
class Send:
    """One transfer of a tensor to a device that needs it: sender, receiver, duration, occupied time."""

    src: int
    dst: int
    duration_s: float
    occupied_s: float


def sends(inst: Instance, holders: Sequence[int], need: Iterable[int], nbytes: float) -> list[Send]:
    """The transfers of a tensor of ``nbytes`` held on ``holders`` to every device of ``need`` that
    does not hold it: once each, from :func:`best_sender` (duration ``inf`` without any channel)."""
    out = []
    held = set(holders)
    for e in sorted(set(need) - held):
        a, dur = best_sender(inst, holders, e, nbytes)
        occ = float(transfer_seconds(0.0, nbytes, inst.system.bandwidth[a, e])) if math.isfinite(dur) else math.inf
        out.append(Send(a, e, dur, occ))
    return out


def chain_problem(inst: Instance) -> str | None:
    """Why ``inst`` is not a chain the MILP and the DP take (None when it is): layers ``0 -> 1 ->
    ... -> n-1`` (:attr:`formulation.model.Graph.is_chain`) and every model input read by one layer
    at most (so each tensor has one reader besides the sink)."""
    g = inst.graph
    if not g.is_chain:
        return "a DAG with branches (only chains)"
    many = [g.tensor_ids[t] for t in range(g.n, len(g.tensor_ids)) if len(g.consumers[t]) > 1]
    if many:
        return f"model input(s) {many} read by several layers"
    return None


def groups(k: int, max_size: int) -> Iterator[Option]:
    """Every group of ``2..max_size`` of ``k`` devices, by size then lexicographically."""
    for size in range(2, min(k, max_size) + 1):
        yield from itertools.combinations(range(k), size)


def options(inst: Instance, v: int) -> list[Option]:
    """The options of layer ``v``: every device it may run on whole, then every group of
    ``2..max_degree`` such devices whose ring channels exist (``allowed`` applies to every member)."""
    s = inst.system
    ok = inst.allowed_mask[v]
    out: list[Option] = [(d,) for d in range(s.k) if ok[d]]
    for grp in groups(s.k, max_degree(inst, v)):
        if all(ok[d] for d in grp) and all(s.has_link[a, b] for a, b in ring(grp)):
            out.append(grp)
    return out


def option_count(inst: Instance) -> int:
    """Number of (layer, option) pairs."""
    return sum(len(options(inst, v)) for v in range(inst.n))


def option_label(inst: Instance, group: Option) -> str:
    """``d`` for one device, ``a+b+c`` for a group (how results name a group)."""
    return "+".join(inst.system.device_ids[d] for d in group)


def as_options(inst: Instance, placement: dict[str, Sequence[str] | str]) -> list[Option]:
    """Options by layer index from ``{layer: device or [devices]}``.

    Raises
    ------
    ValueError
        Unknown layer or device, a missing layer, or a device repeated in a group.
    """
    g, s = inst.graph, inst.system
    out: list[Option | None] = [None] * g.n
    for lid, val in placement.items():
        if lid not in g.layer_index:
            raise ValueError(f"unknown layer {lid!r} in the placement")
        devs = [val] if isinstance(val, str) else list(val)
        if not devs:
            raise ValueError(f"layer {lid!r}: an empty group")
        unknown = [d for d in devs if d not in s.device_index]
        if unknown:
            raise ValueError(f"layer {lid!r}: unknown device(s) {unknown}")
        idx = sorted(s.device_index[d] for d in devs)
        if len(set(idx)) != len(idx):
            raise ValueError(f"layer {lid!r}: a device repeated in the group {devs}")
        out[g.layer_index[lid]] = tuple(idx)
    missing = [g.layer_ids[i] for i, o in enumerate(out) if o is None]
    if missing:
        raise ValueError(f"the placement misses layer(s) {missing[:5]}")
    return [o for o in out if o is not None]


def to_placement(inst: Instance, opts: Sequence[Option]) -> dict[str, list[str] | str]:
    """``{layer: device}`` for whole layers and ``{layer: [devices]}`` for groups."""
    ids = inst.system.device_ids
    return {
        lid: ids[o[0]] if len(o) == 1 else [ids[d] for d in o]
        for lid, o in zip(inst.graph.layer_ids, opts, strict=True)
    }

