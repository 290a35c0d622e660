"""Spatial (sub-layer) split of convolution/pool layers into row bands or a tile grid.

Sources: MoDNN's one-dimensional partition of each layer (Mao et al., DATE 2017), DeepThings'
Fused Tile Partitioning across a stack of layers (Zhao, Barijough and Gerstlauer, IEEE TCAD
37(11), 2018), AOFL's fused layers over heterogeneous devices (Zhou et al., ACM/IEEE SEC 2019) and
CoEdge's row shares (Zeng et al., IEEE/ACM ToN 29(2), 2021).

Receptive field. A window layer (kernel ``k``, stride ``s``, padding ``p`` before the first row,
dilation ``d``) computes output rows ``[a, b)`` from input rows

    ``[max(0, a*s - p), min(H_in, (b-1)*s - p + d*(k-1) + 1))``

(rows outside ``[0, H_in)`` are padding and need no data; the interval is the hull of the kernel
taps inside the input, tightened tap by tap where a dilation gap meets the border); columns
alike. For a stack of layers
the region of each layer's output that a part needs is obtained by applying this from the last
layer back to the first, so a part's FLOP and input include the halo of the whole stack exactly.

Cost of a part. The FLOP of a convolution or pool are the same for every output element (the
importers count padded positions too), so a part computing region ``R_l`` of layer ``l`` does
``flops(l) * |R_l| / (H_l * W_l)``; bytes of a region are the tensor's bytes times the same area
share (all channels are kept). A fused part holds all the stack's weights; its workspace is the
largest ``input region + output region`` of one layer of the stack, less its own input and output.

Graph. A split replaces the stack by, per part, a zero-FLOP ``slice`` node (the scatter: it reads
the stack's input and outputs exactly that part's input region, halo included), the part node,
and one ``concat`` node (the gather: it reads every part and outputs the full tensor, which stands
for the stack's last layer from then on). Placing each slice with the producer of the input makes
each transfer exactly that part's region; the format's "one output tensor per layer" is why the
scatter is one slice node per part. ``mode="layerwise"`` splits each window layer (with the
cheap layers after it) separately, gathering after each, as MoDNN's group owner does;
``mode="exchange"`` splits each window layer too but, instead of gathering, each part reads from
every part of the previous layer a slice with exactly the rows and columns it needs (its own band
and the halo of its neighbours, as CoEdge and AOFL exchange boundary rows); ``mode="fused"``
(DeepThings) keeps intermediate results on the part's device and trades redundant halo compute
for fewer transfers.

Layer metadata (``attrs``, the importers' names): ``kernel``, ``stride``, ``padding`` (before:
``[ph, pw]``; a 4-entry ONNX ``pads`` list uses its first two), ``dilation``, ``shape_in``,
``shape_out`` (``[C, H, W]`` or ``[N, C, H, W]``). Elementwise layers (ReLU, batch norm...) need no
window attrs: they keep the shape of their input.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from formulation.granularity.coarsen import CHEAP_OPS, normalise_op
from formulation.granularity.provenance import GranularityError, Origin, Transformed, as_transformed
from formulation.granularity.rewrite import NewNode, Rewrite, apply_rewrites, restriction, whole_layers
from formulation.model import Instance, Layer

Interval = tuple[int, int]
Region = tuple[Interval, Interval]
"""``((row_lo, row_hi), (col_lo, col_hi))``, half-open."""

_ALIASES: dict[str, tuple[str, ...]] = {
    "kernel": ("kernel", "kernel_size", "kernel_shape"),
    "stride": ("stride", "strides"),
    "padding": ("padding", "pads", "pad"),
    "dilation": ("dilation", "dilations"),
    "shape_in": ("shape_in", "in_shape", "input_shape"),
    "shape_out": ("shape_out", "out_shape", "output_shape"),
}

#: Ops that keep their input's spatial shape element by element (no halo).
IDENTITY_OPS = frozenset(CHEAP_OPS - {"add"})


def _attr(layer: Layer, key: str) -> Any:
    for k in _ALIASES[key]:
        if k in layer.attrs:
            return layer.attrs[k]
    return None


def _pair(layer: Layer, key: str, default: int) -> tuple[int, int]:
    val = _attr(layer, key)
    if val is None:
        return (default, default)
    if isinstance(val, int | float):
        return (int(val), int(val))
    vals = [int(v) for v in val]
    if len(vals) == 1:
        return (vals[0], vals[0])
    if len(vals) in (2, 4):  # [h, w] or ONNX [top, left, bottom, right]
        return (vals[0], vals[1])
    raise GranularityError(f"layer {layer.id!r}: attrs {key} = {val!r}; expected an int or [h, w]")


def _chw(layer: Layer, key: str) -> tuple[int, int, int] | None:
    val = _attr(layer, key)
    if val is None:
        return None
    dims = [int(v) for v in val]
    if len(dims) == 4:
        dims = dims[1:]
    if len(dims) != 3:
        raise GranularityError(f"layer {layer.id!r}: attrs {key} = {val!r}; expected [C, H, W] or [N, C, H, W]")
    return (dims[0], dims[1], dims[2])


@dataclass(frozen=True)
class Window:
    """Geometry of one layer along rows (axis 0) and columns (axis 1).

    Attributes
    ----------
    kernel, stride, dilation, pad : (int, int)
        ``pad`` is the padding before the first row / column.
    in_shape, out_shape : (C, H, W)
    """

    layer: str
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]

    @property
    def identity(self) -> bool:
        """Elementwise: output row ``i`` needs input row ``i`` only."""
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.pad == (0, 0)

    def input_interval(self, axis: int, lo: int, hi: int) -> Interval:
        """Input rows (axis 0) or columns (axis 1) needed for output ``[lo, hi)`` (half-open).

        The hull of the kernel taps ``o*s - p + d*j`` (``o`` in ``[lo, hi)``, ``j < k``) that fall
        inside the input: ``[max(0, lo*s - p), min(H, (hi-1)*s - p + d*(k-1) + 1))`` when no
        dilation gap meets the border, tightened tap by tap otherwise; ``(0, 0)`` when every tap
        is padding.
        """
        if hi <= lo:
            return (0, 0)
        k, s, d, p = self.kernel[axis], self.stride[axis], self.dilation[axis], self.pad[axis]
        size = self.in_shape[1 + axis]
        first, last = size, -1
        for j in range(k):
            o = max(lo, -((d * j - p) // s))  # smallest o >= lo with o*s - p + d*j >= 0
            if o < hi:
                first = min(first, o * s - p + d * j)
            o = min(hi - 1, (size - 1 + p - d * j) // s)  # largest o < hi with the tap <= size - 1
            if o >= lo:
                last = max(last, o * s - p + d * j)
        return (first, last + 1) if first <= last else (0, 0)

    def input_region(self, out: Region) -> Region:
        """Input region needed for an output region."""
        return (self.input_interval(0, *out[0]), self.input_interval(1, *out[1]))


def window_of(layer: Layer, prev_shape: tuple[int, int, int] | None = None) -> Window:
    """The :class:`Window` of a layer from its ``attrs`` (see the module docstring for the keys).

    Parameters
    ----------
    prev_shape : (C, H, W), optional
        Output shape of the layer before it in a stack (used when ``shape_in`` is absent).

    Raises
    ------
    GranularityError
        If the geometry is missing or inconsistent (the message names the layer and the keys).
    """
    in_shape = _chw(layer, "shape_in") or prev_shape
    out_shape = _chw(layer, "shape_out")
    if in_shape is None:
        raise GranularityError(f"layer {layer.id!r}: attrs shape_in ([C, H, W]) is needed for a spatial split")
    if prev_shape is not None and in_shape != prev_shape:
        raise GranularityError(
            f"layer {layer.id!r}: attrs shape_in {list(in_shape)} differs from the previous layer's output "
            f"{list(prev_shape)}"
        )
    if _attr(layer, "kernel") is None:
        if normalise_op(layer.op) not in IDENTITY_OPS:
            raise GranularityError(
                f"layer {layer.id!r} (op {layer.op!r}) has no window geometry: a spatial split needs attrs "
                "kernel, stride, padding, dilation and shape_in/shape_out (docs/granularity.md), or an "
                "elementwise op"
            )
        out_shape = out_shape or in_shape
        if out_shape[1:] != in_shape[1:]:
            raise GranularityError(
                f"elementwise layer {layer.id!r} changes the spatial shape {in_shape} -> {out_shape}"
            )
        return Window(layer.id, (1, 1), (1, 1), (1, 1), (0, 0), in_shape, out_shape)
    k = _pair(layer, "kernel", 1)
    s = _pair(layer, "stride", 1)
    d = _pair(layer, "dilation", 1)
    p = _pair(layer, "padding", 0)
    if out_shape is None:
        if "pool" not in normalise_op(layer.op):
            raise GranularityError(f"layer {layer.id!r}: attrs shape_out ([C, H, W]) is needed for a spatial split")
        hw = [(in_shape[1 + a] + 2 * p[a] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in (0, 1)]
        out_shape = (in_shape[0], hw[0], hw[1])
    if min(k + s + d) < 1 or min(p) < 0 or min(out_shape) < 1:
        raise GranularityError(f"layer {layer.id!r}: invalid geometry kernel={k} stride={s} dilation={d} padding={p}")
    return Window(layer.id, k, s, d, p, in_shape, out_shape)


def stack_regions(windows: Sequence[Window], out: Region) -> list[Region]:
    """Regions a part needs, from the stack's input to its last output.

    Returns
    -------
    list of Region
        ``regions[0]`` is the region of the stack's input; ``regions[l]`` (``l = 1..L``) the region
        of layer ``l``'s output, with ``regions[L] == out``.
    """
    regions = [out]
    for w in reversed(windows):
        regions.append(w.input_region(regions[-1]))
    return regions[::-1]


def even_bounds(size: int, parts: int) -> list[int]:
    """Boundaries of ``parts`` bands of sizes differing by at most one: ``[i * size // parts]``."""
    if parts < 1 or parts > size:
        raise GranularityError(f"cannot cut {size} rows/columns into {parts} non-empty bands")
    return [i * size // parts for i in range(parts + 1)]


def _area(r: Region) -> int:
    return max(0, r[0][1] - r[0][0]) * max(0, r[1][1] - r[1][0])


def _fmt(r: Region) -> str:
    return f"rows {r[0][0]}:{r[0][1]}, cols {r[1][0]}:{r[1][1]}"


# --------------------------------------------------------------------------------------------------
# The graph transformation
# --------------------------------------------------------------------------------------------------


def layer_chain(inst: Instance, first: str, last: str | None) -> list[str]:
    """The chain of layers from ``first`` to ``last`` (each reads only the previous one).

    Raises
    ------
    GranularityError
        If the layers between do not form a chain whose intermediate outputs are read only inside.
    """
    g = inst.graph
    last = last or first
    for v in (first, last):
        if v not in g.layer_index:
            raise GranularityError(f"{v!r} is not a layer of {inst.name!r}")
    chain = [first]
    while chain[-1] != last:
        i = g.layer_index[chain[-1]]
        if g.is_output[i] or len(g.succs[i]) != 1:
            raise GranularityError(
                f"{first!r}..{last!r} is not a chain: {chain[-1]!r} has {len(g.succs[i])} consumers"
                + (" and is a model output" if g.is_output[i] else "")
            )
        nxt = g.succs[i][0]
        if len(g.layer_inputs[nxt]) != 1:
            raise GranularityError(f"{g.layer_ids[nxt]!r} reads several tensors; a split stack must be a chain")
        if g.layer_index[last] < nxt:
            raise GranularityError(f"{last!r} does not follow {first!r} in a chain")
        chain.append(g.layer_ids[nxt])
    if len(g.layer_inputs[g.layer_index[first]]) != 1:
        raise GranularityError(f"{first!r} reads several tensors; a split stack must start from one tensor")
    return chain


def stack_windows(inst: Instance, chain: Sequence[str]) -> list[Window]:
    """Windows of a chain of layers, shapes propagated from the first layer's ``shape_in``."""
    g = inst.graph
    out: list[Window] = []
    prev = None
    for v in chain:
        w = window_of(g.layers[g.layer_index[v]], prev)
        out.append(w)
        prev = w.out_shape
    return out


@dataclass(frozen=True)
class _Unit:
    name: str
    layers: tuple[str, ...]
    windows: tuple[Window, ...]


def _units(name: str, chain: Sequence[str], windows: Sequence[Window], mode: str) -> list[_Unit]:
    if mode == "fused":
        return [_Unit(name, tuple(chain), tuple(windows))]
    groups: list[list[int]] = []
    for i, w in enumerate(windows):
        if not groups or not w.identity:
            groups.append([i])
        else:
            groups[-1].append(i)
    return [_Unit(chain[gr[0]], tuple(chain[i] for i in gr), tuple(windows[i] for i in gr)) for gr in groups]


def _tag(r: int, c: int, cols: int, rows: int) -> str:
    if rows > 1 and cols > 1:
        return f"{r}.{c}"
    return str(r if cols == 1 else c)


@dataclass(frozen=True)
class _Source:
    """A tensor (or a part of one) a unit's parts read: its id, the region it holds, its bytes."""

    id: str
    tag: str
    region: Region
    bytes: float
    private: bool = False


def _intersect(a: Region, b: Region) -> Region:
    return tuple((max(x[0], y[0]), min(x[1], y[1])) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _unit_nodes(
    inst: Instance,
    unit: _Unit,
    sources: Sequence[_Source],
    row_bounds: Sequence[int],
    col_bounds: Sequence[int],
    split: str,
    gather: bool,
) -> tuple[list[NewNode], list[_Source], str | None]:
    """Slices, parts (and the gather) of one unit.

    Part ``i`` reads, from every source whose region overlaps its input region, a ``slice`` node
    with exactly the overlap. Returns the nodes, the parts as sources for a next unit, and the
    gather's id (None without a gather).
    """
    g = inst.graph
    idx = [g.layer_index[v] for v in unit.layers]
    private = set(inst.problem.constraints.private)
    last = unit.layers[-1]
    internal_private = any(v in private for v in unit.layers[:-1])
    allowed = restriction(inst, unit.layers, extra_trusted=internal_private)
    measured = [dev for dev in inst.system.device_ids if set(unit.layers) & set(inst.latency_table.get(dev, {}))]
    rows, cols = len(row_bounds) - 1, len(col_bounds) - 1
    total = rows * cols
    full_flops = float(sum(g.flops[i] for i in idx))
    areas = [w.out_shape[1] * w.out_shape[2] for w in unit.windows]
    nodes: list[NewNode] = []
    parts: list[NewNode] = []
    outs: list[_Source] = []
    for r in range(rows):
        for c in range(cols):
            p = r * cols + c
            out_region = ((row_bounds[r], row_bounds[r + 1]), (col_bounds[c], col_bounds[c + 1]))
            regions = stack_regions(unit.windows, out_region)
            # An earlier region may be empty when every kernel tap falls into padding.
            share = [_area(regions[j + 1]) / areas[j] for j in range(len(idx))]
            tag = _tag(r, c, cols, rows)
            info: dict[str, Any] = {
                "out_rows": list(out_region[0]), "out_cols": list(out_region[1]),
                "in_rows": list(regions[0][0]), "in_cols": list(regions[0][1]),
            }
            slice_ids, in_b = [], 0.0
            for src in sources:
                ov = _intersect(regions[0], src.region)
                if _area(ov) == 0:
                    continue
                b = src.bytes * _area(ov) / _area(src.region)
                sid = f"{unit.name}#in{tag}" if len(sources) == 1 else f"{unit.name}#in{tag}<{src.tag}"
                nodes.append(
                    NewNode(
                        Layer(sid, "slice", (src.id,), 0.0, b, attrs={"split": split, "region": _fmt(ov)}),
                        Origin("scatter", unit.layers, split, p, total, f"input {_fmt(ov)}", info),
                        private=src.private,
                    )
                )
                slice_ids.append(sid)
                in_b += b
            outs_b = [float(g.output_bytes[i]) * sh for i, sh in zip(idx, share, strict=True)]
            flops = float(sum(g.flops[i] * sh for i, sh in zip(idx, share, strict=True)))
            peaks = [
                (in_b if j == 0 else outs_b[j - 1]) + outs_b[j] + float(g.workspace_bytes[i]) * share[j]
                for j, i in enumerate(idx)
            ]
            part_id = f"{unit.name}#p{tag}"
            part = Layer(
                part_id,
                g.layers[idx[0]].op if len(idx) == 1 else "fused",
                tuple(slice_ids),
                flops,
                outs_b[-1],
                param_bytes=float(sum(g.param_bytes[i] for i in idx)),
                workspace_bytes=max(0.0, max(peaks) - in_b - outs_b[-1]),
                attrs={"split": split, "part": p, "layers": list(unit.layers), "region": _fmt(out_region)},
            )
            times = {
                dev: float(sum(inst.time[i, j] * sh for i, sh in zip(idx, share, strict=True)))
                for dev, j in ((dev, inst.system.device_index[dev]) for dev in measured)
            }
            info["flops_share"] = flops / full_flops if full_flops else share[-1]
            parts.append(
                NewNode(part, Origin("part", unit.layers, split, p, total, _fmt(out_region), info), times, allowed,
                        private=last in private)
            )
            outs.append(_Source(part_id, tag, out_region, outs_b[-1], last in private))
    nodes += parts
    if not gather:
        return nodes, outs, None
    gather_id = f"{unit.name}#out"
    layer = Layer(
        gather_id, "concat", tuple(pn.layer.id for pn in parts), 0.0, float(g.output_bytes[idx[-1]]),
        attrs={"split": split, "parts": total},
    )
    origin = Origin("gather", unit.layers, split, None, total, f"{total} parts")
    nodes.append(NewNode(layer, origin, private=last in private))
    return nodes, outs, gather_id


def split_spatial(
    x: Instance | Transformed,
    first: str,
    last: str | None = None,
    *,
    rows: int = 1,
    cols: int = 1,
    row_bounds: Sequence[int] | None = None,
    col_bounds: Sequence[int] | None = None,
    mode: Literal["fused", "layerwise", "exchange"] = "fused",
    name: str | None = None,
) -> Transformed:
    """Split the chain ``first..last`` of conv/pool (and elementwise) layers into a grid of parts.

    Parameters
    ----------
    x : Instance or Transformed
    first, last : str
        First and last layer of the stack (``last`` defaults to ``first``).
    rows, cols : int
        Bands along H and W of the last layer's output (``rows=k`` alone: MoDNN row bands;
        ``rows=3, cols=3``: DeepThings' 3x3 grid). Bands are as even as possible.
    row_bounds, col_bounds : sequence of int, optional
        Explicit boundaries of the last layer's output (``[0, 10, 25, 38]``), e.g. from
        :mod:`.proportional`; fused mode only.
    mode : {"fused", "layerwise", "exchange"}
        One part per tile through the whole stack (fused); each window layer split and gathered
        on its own (layerwise); or each window layer split with parts reading, from the previous
        layer's parts, exactly the rows and columns they need (exchange: halo exchange between
        neighbours, no gather until the end).
    name : str, optional
        Name of the split (default ``first`` or ``first-last``); node ids are ``NAME#p0``,
        ``NAME#in0`` (slices) and ``NAME#out`` (gather).

    Raises
    ------
    GranularityError
        If the layers are not a chain with window geometry, a band is empty, or the ids clash.
    """
    t = as_transformed(x)
    inst = t.instance
    chain = layer_chain(inst, first, last)
    whole_layers(t, chain, "spatial split")
    if mode not in ("fused", "layerwise", "exchange"):
        raise GranularityError(f"spatial split mode {mode!r}: expected 'fused', 'layerwise' or 'exchange'")
    windows = stack_windows(inst, chain)
    split = name or (first if len(chain) == 1 else f"{first}-{chain[-1]}")
    units = _units(split, chain, windows, mode)
    if (row_bounds is not None or col_bounds is not None) and len(units) > 1:
        raise GranularityError("explicit row/column bounds need mode='fused' (one unit)")
    g = inst.graph
    x_id = g.layers[g.layer_index[chain[0]]].inputs[0]
    w0 = windows[0].in_shape
    x_private = x_id in inst.problem.constraints.private
    sources = [_Source(x_id, "", ((0, w0[1]), (0, w0[2])), float(g.tensor_bytes[g.tensor_index[x_id]]), x_private)]
    nodes: list[NewNode] = []
    exit_id = x_id
    for n, u in enumerate(units):
        h, w = u.windows[-1].out_shape[1:]
        rb = list(row_bounds) if row_bounds is not None else even_bounds(h, rows)
        cb = list(col_bounds) if col_bounds is not None else even_bounds(w, cols)
        for bounds, size, what in ((rb, h, "row"), (cb, w, "column")):
            if bounds[0] != 0 or bounds[-1] != size or any(a >= b for a, b in itertools.pairwise(bounds)):
                raise GranularityError(f"split {split!r}: {what} bounds {bounds} must increase from 0 to {size}")
        gather = mode != "exchange" or n == len(units) - 1
        unit_nodes, outs, gid = _unit_nodes(inst, u, sources, rb, cb, split, gather)
        nodes += unit_nodes
        if gid is not None:
            exit_id = gid
            full = ((0, h), (0, w))
            last_private = u.layers[-1] in inst.problem.constraints.private
            sources = [_Source(gid, "", full, float(g.output_bytes[g.layer_index[u.layers[-1]]]), last_private)]
        else:
            sources = outs
    parts = (len(rb) - 1) * (len(cb) - 1)
    step = f"spatial split {split} into {parts} parts ({mode})"
    return apply_rewrites(t, [Rewrite(tuple(chain), nodes, {chain[-1]: exit_id})], step)
