"""Channel split: output channels, attention heads or MLP columns into parts (tensor parallelism).

Sources: DeepSlicing's channel partitioning of CNN layers (Zhang et al., IEEE TPDS 32(9), 2021),
the column/row-parallel pair of Megatron-LM (Shoeybi et al., arXiv:1909.08053, 2019) that Galaxy
applies to attention heads and MLP blocks on edge devices (Ye et al., IEEE INFOCOM 2024).

Three forms:

* ``mode="gather"`` (one layer; output-channel / column / head parallel): part ``i`` reads the
  layer's inputs whole and computes a share ``f_i`` of its output channels: ``f_i`` of its FLOP,
  weights, workspace and output bytes; a zero-FLOP ``concat`` node (the all-gather) reads every
  part and outputs the full tensor.
* ``mode="reduce"`` (one layer; input-channel / row parallel): a zero-FLOP ``slice`` per part
  sends it share ``f_i`` of the input channels; part ``i`` does ``f_i`` of the FLOP with ``f_i`` of
  the weights and outputs a *partial sum* of the full output size; a ``reduce`` node adds them,
  ``(parts - 1) * elements(output)`` FLOP.
* two layers ``A -> B`` (the Megatron pair: column-parallel ``A``, row-parallel ``B``): part ``i``
  of ``A`` computes ``f_i`` of ``A``'s output channels, part ``i`` of ``B`` reads it (no
  communication when they share a device) and outputs a partial sum of ``B``'s output; one
  ``reduce`` node adds them.

Shares are as even as possible over whole units (channels, heads, features) when their number is
known from ``attrs`` (``heads``/``num_heads``; ``out_channels``/``out_features``,
``in_channels``/``in_features``; else the channel axis of ``shape_out``/``shape_in``: axis -3 of a
4-D shape, else the last axis), else equal continuous shares ``1/parts``. Elements of an output,
for the reduce FLOP, come from ``shape_out``, else ``output_bytes / 4`` (float32).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

from formulation.granularity.provenance import GranularityError, Kind, Origin, Transformed, as_transformed
from formulation.granularity.rewrite import NewNode, Rewrite, apply_rewrites, restriction, whole_layers
from formulation.granularity.spatial import layer_chain
from formulation.model import Instance, Layer

Units = Literal["channels", "heads"]


def _channel_axis(shape: Sequence[int], op: str) -> int:
    return int(shape[-3]) if len(shape) == 4 or ("conv" in op.lower() and len(shape) >= 3) else int(shape[-1])


def unit_count(layer: Layer, side: Literal["out", "in"], units: Units = "channels") -> int | None:
    """Number of whole units along the split axis, or None when ``attrs`` do not say."""
    a = layer.attrs
    if units == "heads":
        h = a.get("heads", a.get("num_heads"))
        return int(h) if h is not None else None
    for key in (f"{side}_channels", f"{side}_features"):
        if a.get(key) is not None:
            return int(a[key])
    shape = a.get(f"shape_{side}", a.get(f"{side}_shape"))
    if shape:
        return _channel_axis([int(s) for s in shape], layer.op)
    return None


def shares(parts: int, units: int | None) -> list[tuple[float, str]]:
    """``parts`` shares (fraction, description) over ``units`` whole units, as even as possible."""
    if parts < 2:
        raise GranularityError(f"a channel split needs at least 2 parts, got {parts}")
    if units is None:
        return [(1.0 / parts, f"1/{parts}") for _ in range(parts)]
    if parts > units:
        raise GranularityError(f"cannot split {units} units into {parts} non-empty parts")
    bounds = [i * units // parts for i in range(parts + 1)]
    return [((b - a) / units, f"{a}:{b} of {units}") for a, b in itertools.pairwise(bounds)]


def output_elements(layer: Layer) -> float:
    """Elements of a layer's output: from ``shape_out``, else ``output_bytes / 4`` (float32)."""
    shape = layer.attrs.get("shape_out", layer.attrs.get("out_shape"))
    if shape:
        return float(math.prod(int(s) for s in shape))
    return layer.output_bytes / 4.0


def _scaled(inst: Instance, v: str, node_id: str, f: float, inputs: tuple[str, ...], full_out: bool,
            split: str, p: int, parts: int, detail: str, allowed: tuple[str, ...] | None) -> NewNode:
    """Part ``p`` of layer ``v``: share ``f`` of FLOP, weights, workspace (and output unless partial)."""
    g = inst.graph
    lay = g.layers[g.layer_index[v]]
    out_b = lay.output_bytes if full_out else lay.output_bytes * f
    part = Layer(
        node_id, lay.op, inputs, lay.flops * f, out_b, lay.param_bytes * f, lay.workspace_bytes * f,
        attrs={"split": split, "part": p, "share": f, "partial_sum": full_out},
    )
    times = {
        dev: float(inst.time[g.layer_index[v], inst.system.device_index[dev]] * f)
        for dev in inst.system.device_ids
        if v in inst.latency_table.get(dev, {})
    }
    private = v in inst.problem.constraints.private
    # A partial sum of a private output is as sensitive as the output itself.
    return NewNode(part, Origin("part", (v,), split, p, parts, detail, {"share": f}), times, allowed, private)


def split_channels(
    x: Instance | Transformed,
    first: str,
    last: str | None = None,
    *,
    parts: int = 2,
    mode: Literal["gather", "reduce"] = "gather",
    units: Units = "channels",
    name: str | None = None,
) -> Transformed:
    """Split one layer, or a column/row-parallel pair ``first -> last``, into channel parts.

    Parameters
    ----------
    first, last : str
        The layer (``last`` omitted or equal), or the two layers of a pair.
    parts : int
        Number of parts (>= 2).
    mode : {"gather", "reduce"}
        For one layer: split output channels and all-gather, or input channels and reduce. A pair
        is always column-then-row with one reduce.
    units : {"channels", "heads"}
        What the shares count (``heads`` reads ``attrs.heads``).
    name : str, optional
        Split name (default ``first`` or ``first-last``); ids ``NAME#p0``, ``NAME#out``.

    Raises
    ------
    GranularityError
        If the layers are not one layer or a chain of two, or the shares cannot be formed.
    """
    t = as_transformed(x)
    inst = t.instance
    g = inst.graph
    chain = layer_chain(inst, first, last) if last not in (None, first) else [first]
    whole_layers(t, chain, "channel split")
    if len(chain) > 2:
        raise GranularityError(f"a channel split takes one layer or a pair, got {len(chain)} layers {chain}")
    if mode not in ("gather", "reduce"):
        raise GranularityError(f"channel split mode {mode!r}: expected 'gather' or 'reduce'")
    split = name or (first if len(chain) == 1 else f"{first}-{chain[-1]}")
    lay = [g.layers[g.layer_index[v]] for v in chain]
    private = set(inst.problem.constraints.private)
    pair = len(chain) == 2
    side: Literal["out", "in"] = "in" if mode == "reduce" and not pair else "out"
    sh = shares(parts, unit_count(lay[0], side, units))
    allowed = [restriction(inst, [v]) for v in chain]
    nodes: list[NewNode] = []
    part_ids: list[str] = []
    for p, (f, desc) in enumerate(sh):
        detail = f"{units} {desc}"
        if mode == "gather" and not pair:
            nodes.append(_scaled(inst, first, f"{split}#p{p}", f, lay[0].inputs, False, split, p, parts, detail,
                                 allowed[0]))
        elif not pair:
            if len(lay[0].inputs) != 1:
                raise GranularityError(f"{first!r} reads several tensors; an input-channel split needs one")
            x_id = lay[0].inputs[0]
            x_bytes = float(g.tensor_bytes[g.tensor_index[x_id]])
            sl = Layer(f"{split}#in{p}", "slice", (x_id,), 0.0, x_bytes * f, attrs={"split": split, "share": f})
            nodes.append(NewNode(sl, Origin("scatter", (first,), split, p, parts, f"input {detail}"),
                                 private=x_id in private))
            nodes.append(_scaled(inst, first, f"{split}#p{p}", f, (sl.id,), True, split, p, parts, detail,
                                 allowed[0]))
        else:
            a_id = f"{split}#a{p}"
            nodes.append(_scaled(inst, chain[0], a_id, f, lay[0].inputs, False, split, p, parts, detail, allowed[0]))
            nodes.append(_scaled(inst, chain[1], f"{split}#p{p}", f, (a_id,), True, split, p, parts, detail,
                                 allowed[1]))
        part_ids.append(f"{split}#p{p}")
    out_layer = lay[-1]
    reduce = mode == "reduce" or pair
    kind: Kind = "reduce" if reduce else "gather"
    join = Layer(
        f"{split}#out",
        "reduce_sum" if reduce else "concat",
        tuple(part_ids),
        (parts - 1) * output_elements(out_layer) if reduce else 0.0,
        out_layer.output_bytes,
        attrs={"split": split, "parts": parts},
    )
    nodes.append(NewNode(join, Origin(kind, tuple(chain), split, None, parts, f"{parts} parts"),
                         private=chain[-1] in private))
    step = f"channel split {split} into {parts} parts ({'pair' if pair else mode}, {units})"
    return apply_rewrites(t, [Rewrite(tuple(chain), nodes, {chain[-1]: join.id})], step)
