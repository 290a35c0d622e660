"""Coarsening: merge layers into single nodes (block granularity).

Three ways to choose what to merge, one merge operation:

* :func:`merge_cheap_successors` -- a layer absorbs the trivially cheap layers that follow it
  (activation, normalisation, residual ``add``): the "layer" of most partitioning papers, e.g. a
  convolution with its batch norm and ReLU (Neurosurgeon, Kang et al., ASPLOS 2017, profiles such
  fused layers);
* :func:`merge_by_module` -- layers of one module of the model hierarchy (a ResNet block, a
  transformer layer) to a chosen depth, from ``attrs.module`` (or dotted layer ids);
* :func:`merge_to_cut_points` -- the segments between consecutive cut points, so that only the
  candidate cut edges remain, as QDMP does between cut vertices (Zhang et al., "Towards Real-time
  Cooperative Deep Inference over the Cloud and Edge End Devices", Proc. ACM IMWUT 4(2), 2020).

What a merge preserves
----------------------
A group ``S`` may be merged when it is *convex* (no path leaves ``S`` and re-enters it) and has a
*single exit* (exactly one member whose output is read outside ``S``, is a model output, or is
read by nobody). The merged node gets ``flops = sum``, ``param_bytes = sum``, ``output_bytes`` =
the exit's, inputs = the tensors members read from outside ``S`` and the time
``t(S, d) = sum of t(v, d)`` (written to the latency table where the compute model of docs/instance-format.md §5.1 would
not give the sum: roofline devices and measured entries). For every placement that puts all of
``S`` on one device, the evaluator then gives **exactly** the same sequential latency, period,
compute time per device, bytes and busy time per link, transfers, cost, energy in sequential
mode, and the same verdict on allowed, private, contiguous, max_devices and (in sequential mode)
deadline and energy budget.

Two metrics cannot be preserved exactly by a plain node under the cost model (docs/instance-format.md §5):

* **memory**: the peak of a layer (docs/instance-format.md §5.9) is ``workspace + output + inputs``. The merged node's
  ``workspace_bytes`` is set to ``max(0, max_v peak(v) - output(S) - inputs(S))``, so the merged
  memory equals the original whenever ``max_v peak(v) >= output(S) + inputs(S)`` (recorded as
  ``attrs.memory_exact``) and is larger otherwise (a conservative bound: a merged node is checked
  against more memory than its members ever hold at once);
* **parallel latency**: a merged node runs its members back to back and starts when *all* its
  external inputs have arrived. Every schedule of the coarse instance expands to a schedule of
  the original with the same makespan (members back to back in topological order), so the coarse
  optimum is an upper bound on the original optimum; the list schedules of the two instances may
  differ. Energy and deadline in parallel mode inherit this.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from formulation.costs import working_set_bytes
from formulation.granularity.provenance import GranularityError, Origin, Transformed, as_transformed
from formulation.granularity.rewrite import NewNode, Rewrite, apply_rewrites, restriction, whole_layers
from formulation.model import Instance, Layer

#: Normalised op names that are trivially cheap next to the layer producing their input.
CHEAP_OPS = frozenset(
    {
        "relu", "relu6", "leakyrelu", "prelu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
        "tanh", "hardswish", "hardsigmoid", "hardtanh", "mish", "softplus", "clamp",
        "batchnorm", "layernorm", "groupnorm", "instancenorm", "rmsnorm",
        "add", "dropout", "identity",
    }
)

#: ``attrs`` keys read (in order) for a layer's module path.
MODULE_KEYS = ("module", "module_path", "scope")


def normalise_op(op: str) -> str:
    """Op name in a canonical spelling: lower case, no ``_``, no trailing ``1d``/``2d``/``3d``.

    ``BatchNorm2d``, ``batch_norm`` and ``batchnorm`` all become ``batchnorm``.
    """
    s = op.lower().replace("_", "").replace("-", "")
    return re.sub(r"[123]d$", "", s)


# --------------------------------------------------------------------------------------------------
# The merge
# --------------------------------------------------------------------------------------------------


def _position_window(inst: Instance, members: Collection[str]) -> tuple[int, int]:
    idx = [inst.graph.layer_index[v] for v in members]
    return min(idx), max(idx)


def is_convex(inst: Instance, members: Collection[str]) -> bool:
    """No layer outside ``members`` lies on a path between two members.

    Only layers between the first and last member in topological order can lie on such a path, so
    one forward and one backward pass over that window suffice.
    """
    g = inst.graph
    S = {g.layer_index[v] for v in members}
    lo, hi = _position_window(inst, members)
    below = np.zeros(g.n, dtype=bool)  # has an ancestor in S
    for v in range(lo, hi + 1):
        below[v] = any(u in S or below[u] for u in g.preds[v])
    above = np.zeros(g.n, dtype=bool)  # has a descendant in S
    for v in range(hi, lo - 1, -1):
        above[v] = any(w in S or above[w] for w in g.succs[v] if w <= hi)
    return not any(below[v] and above[v] and v not in S for v in range(lo, hi + 1))


def group_exits(inst: Instance, members: Collection[str]) -> list[str]:
    """Members whose output is read outside the group, is a model output, or is read by nobody."""
    g = inst.graph
    S = {g.layer_index[v] for v in members}
    out = []
    for v in sorted(S):
        if g.is_output[v] or not g.succs[v] or any(w not in S for w in g.succs[v]):
            out.append(g.layer_ids[v])
    return out


def merged_node(inst: Instance, members: Sequence[str], node_id: str, op: str | None = None) -> NewNode:
    """The node standing for a convex, single-exit group (see the module docstring for the rules).

    Raises
    ------
    GranularityError
        If the group has several exits (the message names them).
    """
    g = inst.graph
    order = sorted(members, key=g.layer_index.__getitem__)
    exits = group_exits(inst, order)
    if len(exits) != 1:
        raise GranularityError(
            f"cannot merge {order}: {len(exits)} members ({exits}) have outputs used outside the group; "
            "a merged node has one output tensor"
        )
    exit_id = exits[0]
    S = set(order)
    idx = [g.layer_index[v] for v in order]
    external: list[str] = []
    for v in order:
        external += [u for u in g.layers[g.layer_index[v]].inputs if u not in S]
    external = list(dict.fromkeys(external))
    in_bytes = sum(float(g.tensor_bytes[g.tensor_index[u]]) for u in external)
    out_bytes = float(g.output_bytes[g.layer_index[exit_id]])
    peak = float(working_set_bytes(g)[idx].max())
    private = set(inst.problem.constraints.private)
    internal_private = any(v in private for v in order if v != exit_id)
    main = max(order, key=lambda v: g.flops[g.layer_index[v]])
    layer = Layer(
        id=node_id,
        op=op or g.layers[g.layer_index[main]].op,
        inputs=tuple(external),
        flops=float(sum(g.flops[i] for i in idx)),
        output_bytes=out_bytes,
        param_bytes=float(sum(g.param_bytes[i] for i in idx)),
        workspace_bytes=max(0.0, peak - out_bytes - in_bytes),
        attrs={"members": list(order), "memory_exact": peak >= out_bytes + in_bytes},
    )
    return NewNode(
        layer,
        Origin("merged", tuple(order)),
        time_s=_summed_times(inst, idx),
        allowed=restriction(inst, order, extra_trusted=internal_private),
        private=exit_id in private,
    )


def _summed_times(inst: Instance, idx: Sequence[int]) -> dict[str, float]:
    """Latency-table entries making ``t(merged, d) = sum t(v, d)`` where the compute model would not.

    On a device without roofline and without measured entries for the members, ``sum flops /
    compute`` already is the sum of the members' times, so no entry is written.
    """
    s = inst.system
    names = {inst.graph.layer_ids[i] for i in idx}
    out = {}
    for j, dev in enumerate(s.devices):
        measured = bool(names & set(inst.latency_table.get(dev.id, {})))
        if measured or dev.memory_bandwidth_bytes_per_s is not None:
            out[dev.id] = float(sum(inst.time[i, j] for i in idx))
    return out


def _merged_id(members: Sequence[str], taken: set[str], preferred: str | None = None) -> str:
    base = preferred or ("+".join(members) if len(members) <= 3 else f"{members[0]}..{members[-1]}")
    if base in taken and preferred and len(members) > 1:
        base = f"{members[0]}..{members[-1]}"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}#{k}", k + 1
    taken.add(name)
    return name


def merge_groups(
    x: Instance | Transformed,
    groups: Iterable[Sequence[str]],
    *,
    op: str | None = None,
    names: Sequence[str | None] | None = None,
    step: str = "merge",
    check_convex: bool = True,
) -> Transformed:
    """Merge each group of layers into one node.

    Parameters
    ----------
    x : Instance or Transformed
    groups : iterable of sequences of layer ids
        Disjoint groups of the current graph; groups of one layer are left alone.
    op : str, optional
        Op of the merged nodes (default: the op of the member with most FLOP).
    names : sequence, optional
        Preferred ids per group (default ``a+b+c`` or ``first..last``).
    step : str
        Description recorded in :attr:`Transformed.steps`.
    check_convex : bool
        Check convexity (callers whose groups are convex by construction skip it).

    Raises
    ------
    GranularityError
        If a group is not convex, has several exits, names an unknown or split node, or no device
        may run all its members.
    """
    t = as_transformed(x)
    inst = t.instance
    taken = set(inst.graph.layer_ids) | set(inst.graph.input_ids)
    groups = [list(gr) for gr in groups]
    rewrites = []
    for i, members in enumerate(groups):
        if len(members) < 2:
            continue
        whole_layers(t, members, "merge")
        if check_convex and not is_convex(inst, members):
            raise GranularityError(f"cannot merge {members}: a path leaves the group and re-enters it")
        order = sorted(members, key=inst.graph.layer_index.__getitem__)
        taken -= set(order)
        node_id = _merged_id(order, taken, names[i] if names else None)
        nn = merged_node(inst, order, node_id, op)
        exit_id = group_exits(inst, order)[0]
        rewrites.append(Rewrite(tuple(order), [nn], {exit_id: node_id}))
    return apply_rewrites(t, rewrites, step)


# --------------------------------------------------------------------------------------------------
# Choosing groups
# --------------------------------------------------------------------------------------------------


def merge_cheap_successors(
    x: Instance | Transformed, cheap_ops: Collection[str] | None = None
) -> Transformed:
    """Merge every layer with the chain of trivially cheap layers that follows it.

    Layers are visited in topological order; a cheap layer ``w`` (op in ``cheap_ops``, compared
    after :func:`normalise_op`) joins the group whose exit ``e`` it reads when ``w`` is ``e``'s only
    consumer and ``e`` is not a model output. ``w`` then becomes the exit. Such groups are convex
    and single-exit by construction: every path out of the group passes through ``e -> w``, and
    ``w``'s other inputs (the skip of a residual ``add``) cannot descend from the group.

    Parameters
    ----------
    cheap_ops : collection of str, optional
        Default :data:`CHEAP_OPS`.
    """
    t = as_transformed(x)
    g = t.instance.graph
    cheap = {normalise_op(o) for o in (cheap_ops if cheap_ops is not None else CHEAP_OPS)}
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    exit_of: list[int] = []
    for v in range(g.n):
        whole = t.provenance.origins[g.layer_ids[v]].whole
        target = None
        if whole and normalise_op(g.layers[v].op) in cheap:
            for e in g.preds[v]:
                gi = group_of.get(e)
                if gi is not None and exit_of[gi] == e and g.succs[e] == (v,) and not g.is_output[e]:
                    target = gi
                    break
        if target is None:
            if not whole:
                continue
            group_of[v] = len(groups)
            groups.append([v])
            exit_of.append(v)
        else:
            group_of[v] = target
            groups[target].append(v)
            exit_of[target] = v
    named = [[g.layer_ids[i] for i in gr] for gr in groups if len(gr) > 1]
    return merge_groups(t, named, step="merge cheap successors", check_convex=False)


def module_path(layer: Layer) -> tuple[str, ...]:
    """The module path of a layer: ``attrs.module`` (dotted string, or a module stack whose last
    entry is the full path), else its id split on dots (``layer1.0.conv1``)."""
    for key in MODULE_KEYS:
        val = layer.attrs.get(key)
        if isinstance(val, list | tuple) and val:
            val = val[-1]
        if isinstance(val, str) and val:
            return tuple(val.split("."))
    return tuple(layer.id.split("."))


def merge_by_module(x: Instance | Transformed, depth: int) -> Transformed:
    """Merge the layers of each module at ``depth`` of the model hierarchy.

    Layers whose module path (:func:`module_path`) has at least ``depth`` components are grouped
    by its first ``depth`` components (``depth=2`` on torchvision ResNet ids groups ``layer1.0``,
    a basic block). A group that is not convex or has several exits is not merged whole: its
    sub-modules at ``depth + 1`` are tried instead, down to single layers.

    Raises
    ------
    GranularityError
        If ``depth < 1``.
    """
    if depth < 1:
        raise GranularityError(f"module depth must be >= 1, got {depth}")
    t = as_transformed(x)
    inst = t.instance
    g = inst.graph
    paths = {v: module_path(lay) for v, lay in zip(g.layer_ids, g.layers, strict=True)}
    whole = [v for v in g.layer_ids if t.provenance.origins[v].whole]
    chosen: list[tuple[list[str], str]] = []

    def visit(members: list[str], d: int) -> None:
        buckets: dict[tuple[str, ...], list[str]] = {}
        for v in members:
            if len(paths[v]) >= d:
                buckets.setdefault(paths[v][:d], []).append(v)
        for key, grp in buckets.items():
            if len(grp) < 2:
                continue
            if is_convex(inst, grp) and len(group_exits(inst, grp)) == 1:
                chosen.append((grp, ".".join(key)))
            else:
                visit(grp, d + 1)

    visit(whole, depth)
    return merge_groups(
        t, [c[0] for c in chosen], op="block", names=[c[1] for c in chosen], step=f"merge modules at depth {depth}"
    )


def cut_points(inst: Instance | Transformed) -> list[str]:
    """Layers at which the graph can be cut with only that layer's output crossing.

    Layer ``c`` at topological position ``i`` is a cut point when every layer before it has all
    its consumers at positions ``<= i`` and none of them is a model output or unread; then every
    earlier layer is an ancestor of ``c`` and ``c``'s output is the only tensor (besides model
    inputs, which live on the source) that crosses from the prefix to the rest. These are the cut
    vertices of QDMP (Zhang et al., IMWUT 2020) for graphs with one input.
    """
    g = as_transformed(inst).instance.graph
    running, bad, out = -1, False, []
    for i in range(g.n):
        if running <= i and not bad:
            out.append(g.layer_ids[i])
        running = max(running, max(g.succs[i], default=-1))
        bad = bad or bool(g.is_output[i]) or not g.succs[i]
    return out


def merge_to_cut_points(x: Instance | Transformed, points: Sequence[str] | None = None) -> Transformed:
    """Merge each segment between consecutive cut points into one node.

    The segment after cut point ``c_i`` up to and including ``c_{i+1}`` is convex and its only
    exit is ``c_{i+1}``, so the coarse graph is a chain whose edges are exactly the candidate cut
    edges. The part after the last cut point is merged when it has a single exit. Segments holding
    a node of a split are left alone.

    Parameters
    ----------
    points : sequence of str, optional
        The cut points to keep (each must be one of :func:`cut_points`); default all of them. A
        subset merges more: on a chain, ``points=["conv3", "pool5"]`` leaves three nodes.

    Raises
    ------
    GranularityError
        If a given point is not a cut point.
    """
    t = as_transformed(x)
    g = t.instance.graph
    allc = cut_points(t)
    if points is None:
        chosen = allc
    else:
        bad = [p for p in points if p not in set(allc)]
        if bad:
            raise GranularityError(f"{bad} are not cut points of {t.instance.name!r}; cut points: {allc}")
        chosen = sorted(set(points), key=g.layer_index.__getitem__)
    bounds = [g.layer_index[c] for c in chosen]
    segments: list[list[str]] = []
    start = 0
    for b in bounds:
        segments.append(list(g.layer_ids[start : b + 1]))
        start = b + 1
    tail = list(g.layer_ids[start:])
    if tail and len(group_exits(t.instance, tail)) == 1:
        segments.append(tail)
    keep = [s for s in segments if all(t.provenance.origins[v].whole for v in s)]
    return merge_groups(t, keep, op="block", names=[_block_name(t, s) for s in keep], step="merge to cut points",
                        check_convex=False)


def _block_name(t: Transformed, nodes: Sequence[str]) -> str | None:
    """The deepest module path common to a segment's original layers (``layer1.0``), or None.

    Dotted original ids (or ``attrs.module``) name blocks the way the model's code does; segments
    spanning modules keep the default ``first..last`` name.
    """
    orig = t.original.graph
    layers = [v for n in nodes for v in t.provenance.origins[n].layers]
    if len(layers) < 2:
        return None
    paths = [module_path(orig.layers[orig.layer_index[v]]) for v in layers]
    common: list[str] = []
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common) if common else None


def group_summary(t: Transformed) -> Mapping[str, Any]:
    """``{merged node: members}`` of a transformation, for reports."""
    return {n: list(o.layers) for n, o in t.provenance.origins.items() if o.kind == "merged"}
