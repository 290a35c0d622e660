"""Graph surgery shared by every transformation: replace sets of nodes by new nodes.

A :class:`Rewrite` removes a set of nodes of the current graph and adds new ones; ``exits`` says
which new node's output stands for a removed node's output wherever it is read outside the set.
:func:`apply_rewrites` rebuilds the graph (keeping every untouched layer as is), carries the
problem over (``allowed`` and ``private`` per node, latency-table entries) and composes the
provenance. It never computes a cost: it only moves the figures the transformations give it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from formulation.granularity.provenance import GranularityError, Origin, Provenance, Transformed
from formulation.model import Graph, Instance, Layer


@dataclass
class NewNode:
    """A node added by a rewrite.

    Attributes
    ----------
    layer : Layer
        The node (its ``inputs`` name nodes of the current graph or other new nodes).
    origin : Origin
        What it stands for, in terms of the current graph's node ids.
    time_s : mapping
        Latency-table entries ``{device: seconds}`` for it (empty: the compute model of docs/instance-format.md §5.1).
    allowed : tuple of str, optional
        Devices it may run on (None: unrestricted).
    private : bool
        Its output is a private tensor.
    """

    layer: Layer
    origin: Origin
    time_s: Mapping[str, float] = field(default_factory=dict)
    allowed: tuple[str, ...] | None = None
    private: bool = False


@dataclass
class Rewrite:
    """Remove ``removed`` and add ``nodes``; ``exits[v]`` replaces removed ``v``'s output outside."""

    removed: tuple[str, ...]
    nodes: list[NewNode]
    exits: Mapping[str, str]


def restriction(inst: Instance, members: Collection[str], extra_trusted: bool = False) -> tuple[str, ...] | None:
    """The ``allowed`` entry of a new node computing ``members`` (None when unrestricted).

    It is the intersection of the members' ``allowed`` sets. Privacy of tensors that still exist in
    the new graph is carried by the ``private`` list; ``extra_trusted`` restricts to trusted
    devices for a node holding a private tensor that no longer exists as a tensor (an internal
    tensor of a merge or of a fused part), which turns that ``private`` condition into an
    ``allowed`` one.

    Raises
    ------
    GranularityError
        If no device may run all members.
    """
    g = inst.graph
    ok = np.ones(inst.k, dtype=bool)
    for v in members:
        ok &= inst.allowed_mask[g.layer_index[v]]
    if extra_trusted:
        ok &= inst.system.trusted
    if not ok.any():
        raise GranularityError(f"no device may run all of {sorted(members)} (allowed/private constraints)")
    if ok.all():
        return None
    return tuple(d for j, d in enumerate(inst.system.device_ids) if ok[j])


def whole_layers(t: Transformed, ids: Sequence[str], what: str) -> None:
    """Check that ``ids`` exist and compute whole original layers (parts cannot be re-transformed)."""
    g = t.instance.graph
    for v in ids:
        if v not in g.layer_index:
            raise GranularityError(f"{what}: {v!r} is not a layer of {t.instance.name!r}")
        o = t.provenance.origins[v]
        if not o.whole:
            raise GranularityError(
                f"{what}: {v!r} is a {o.kind} node of split {o.split!r}; transform whole layers only "
                "(apply splits last, or coarsen before splitting)"
            )


def apply_rewrites(t: Transformed, rewrites: Sequence[Rewrite], step: str) -> Transformed:
    """Apply disjoint rewrites to ``t.instance`` and compose the provenance.

    Raises
    ------
    GranularityError
        If rewrites overlap, a new id clashes, or a removed node's output is read outside its set
        without an exit.
    """
    if not rewrites:
        return Transformed(t.original, t.instance, t.provenance, (*t.steps, f"{step} (no change)"))
    inst, g = t.instance, t.instance.graph
    owner: dict[str, int] = {}
    for i, rw in enumerate(rewrites):
        for v in rw.removed:
            if v in owner:
                raise GranularityError(f"layer {v!r} is in two transformations of one step")
            owner[v] = i
    exits = {v: e for rw in rewrites for v, e in rw.exits.items()}
    kept = [v for v in g.layer_ids if v not in owner]
    taken = set(kept) | set(g.input_ids)
    for rw in rewrites:
        for nn in rw.nodes:
            if nn.layer.id in taken:
                raise GranularityError(f"new node id {nn.layer.id!r} clashes with an existing id")
            taken.add(nn.layer.id)

    def remap(ins: Sequence[str], rewrite: int | None) -> tuple[str, ...]:
        out = []
        for u in ins:
            if u in owner:
                if owner[u] == rewrite or u not in exits:
                    raise GranularityError(f"the output of removed layer {u!r} is still read and has no stand-in")
                u = exits[u]
            out.append(u)
        return tuple(dict.fromkeys(out))

    layers: list[Layer] = []
    emitted: set[int] = set()
    for v in g.layer_ids:
        if v not in owner:
            lay = g.layers[g.layer_index[v]]
            layers.append(replace(lay, inputs=remap(lay.inputs, None)))
            continue
        i = owner[v]
        if i not in emitted:
            emitted.add(i)
            layers += [replace(nn.layer, inputs=remap(nn.layer.inputs, i)) for nn in rewrites[i].nodes]
    outputs = []
    for o in g.outputs:
        v = g.layer_ids[o]
        if v in owner:
            if v not in exits:
                raise GranularityError(f"model output {v!r} was removed without a stand-in")
            v = exits[v]
        outputs.append(v)
    graph = Graph(g.name, g.inputs, layers, list(dict.fromkeys(outputs)))

    c = inst.problem.constraints
    allowed = {v: devs for v, devs in c.allowed.items() if v not in owner}
    private = [v for v in c.private if v not in owner]
    table = {d: {v: s for v, s in tab.items() if v not in owner} for d, tab in inst.latency_table.items()}
    origins: dict[str, Origin] = {v: Origin("layer", (v,)) for v in kept}
    for rw in rewrites:
        for nn in rw.nodes:
            origins[nn.layer.id] = nn.origin
            if nn.allowed is not None:
                allowed[nn.layer.id] = nn.allowed
            if nn.private:
                private.append(nn.layer.id)
            for d, sec in nn.time_s.items():
                table.setdefault(d, {})[nn.layer.id] = float(sec)
    constraints = replace(c, allowed=allowed, private=tuple(private))
    new = Instance(
        inst.name,
        graph,
        inst.system,
        replace(inst.problem, constraints=constraints),
        inst.description,
        {d: tab for d, tab in table.items() if tab},
        inst.source_path,
    )
    prov = Provenance(g.layer_ids, origins).compose(t.provenance)
    return Transformed(t.original, new, prov, (*t.steps, step))
