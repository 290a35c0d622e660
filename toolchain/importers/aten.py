"""Cost of one ATen operator call: canonical name, FLOP (torch's counter first), attributes.

Used by the PyTorch importer on exported graphs (arguments are the fake tensors of
``node.meta['val']``) and on the ``torch.fx`` fallback (arguments are meta tensors seen by a
dispatch mode). torch's formulas (:data:`torch.utils.flop_counter.flop_registry`) cover matrix
products, convolutions and fused attention; everything else is counted by
:mod:`toolchain.importers.flops`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolchain.importers import flops as fl

_ALIASES: dict[str, str] = {
    "_native_batch_norm_legit_no_training": "batch_norm",
    "_native_batch_norm_legit": "batch_norm",
    "native_batch_norm": "batch_norm",
    "native_layer_norm": "layer_norm",
    "native_group_norm": "group_norm",
    "_fused_rms_norm": "rms_norm",
    "_softmax": "softmax",
    "_log_softmax": "log_softmax",
    "_safe_softmax": "softmax",
    "_adaptive_avg_pool2d": "adaptive_avg_pool",
    "adaptive_avg_pool2d": "adaptive_avg_pool",
    "_adaptive_avg_pool3d": "adaptive_avg_pool",
    "adaptive_avg_pool1d": "adaptive_avg_pool",
    "adaptive_max_pool2d": "adaptive_max_pool",
    "hardtanh": "clamp",
    "clamp_min": "clamp",
    "clamp_max": "clamp",
    "rsub": "sub",
    "true_divide": "div",
    "_unsafe_view": "reshape",
    "view": "reshape",
    "t": "transpose",
    "split_with_sizes": "split",
    "_to_copy": "cast",
    "to": "cast",
    "lift_fresh_copy": "alias",
    "constant_pad_nd": "pad",
    "upsample_nearest2d": "upsample",
    "upsample_bilinear2d": "upsample",
    "var_mean": "var",
    "native_dropout": "dropout",
    "masked_fill_": "masked_fill",
}

#: Operators whose value depends only on shapes, never on data: treated as constants.
FACTORIES = frozenset(
    {"full", "full_like", "zeros", "zeros_like", "ones", "ones_like", "empty", "empty_like", "arange",
     "scalar_tensor", "new_zeros", "new_ones", "new_full", "new_empty", "empty_strided", "rand", "randn",
     "eye", "linspace", "sym_size", "sym_numel", "sym_stride"}
)

_DENSE = {"mm", "addmm", "bmm", "baddbmm", "matmul"}
_ATTENTION_PREFIX = ("_scaled_dot_product", "scaled_dot_product")


def canonical(packet: str) -> str:
    """Canonical operator name of an ATen op packet name (``aten.relu_`` -> ``relu``)."""
    name = _ALIASES.get(packet, packet)
    if name.endswith("_") and not name.startswith("_"):
        name = name[:-1]
    if name.startswith(_ATTENTION_PREFIX):
        return "attention"
    return _ALIASES.get(name, name)


def _shape(x: Any) -> list[int]:
    return [int(s) for s in x.shape]


def _pair(v: Any, n: int) -> list[int]:
    if isinstance(v, int):
        return [v] * n
    vals = [int(x) for x in v]
    return vals * n if len(vals) == 1 else vals


def _is_tensor(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _tensors(out: Any) -> list[Any]:
    if _is_tensor(out):
        return [out]
    if isinstance(out, list | tuple):
        return [t for o in out for t in _tensors(o)]
    return []


def has_tensor(out: Any) -> bool:
    """True when ``out`` is a tensor or a (nested) tuple holding one."""
    return bool(_tensors(out))


def tensor_bytes(out: Any) -> int:
    """Bytes of a tensor or of all tensors in a (nested) tuple, by dtype."""
    return sum(int(t.numel()) * t.element_size() for t in _tensors(out))


def op_cost(
    packet: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any, reads_weight: bool
) -> tuple[str, int, str, dict[str, Any]]:
    """Canonical name, FLOP, FLOP source and attributes of one ATen call.

    Parameters
    ----------
    packet : torch OpOverloadPacket
        The operator (``aten.convolution``).
    args, kwargs : sequence, dict
        Its arguments, tensors given as (fake or meta) tensors.
    out : tensor or tuple
        Its output.
    reads_weight : bool
        Whether a weight feeds it (tells ``linear`` from an activation ``matmul``).

    Returns
    -------
    (op, flops, flops_by, attrs)
        ``flops_by`` is ``"torch"``, ``"analytic"`` or ``"none"``.
    """
    from torch.utils.flop_counter import flop_registry

    raw = packet.__name__
    name = canonical(raw)
    outs = _tensors(out)
    out_shape = _shape(outs[0]) if outs else []
    attrs: dict[str, Any] = {"shape_out": out_shape} if outs else {}
    ins = [a for a in args if _is_tensor(a)]
    if raw == "convolution":
        _x, w = args[0], args[1]
        nd = len(w.shape) - 2
        transposed = bool(args[6])
        name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
        attrs.update(
            kernel=_shape(w)[2:], stride=_pair(args[3], nd), padding=_pair(args[4], nd),
            dilation=_pair(args[5], nd), groups=int(args[8]),
        )
    elif name in ("max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d"):
        nd = 2 if "2d" in name else 1
        kernel = _pair(args[1], nd)
        stride = _pair(args[2], nd) if len(args) > 2 and args[2] else kernel
        padding = _pair(args[3], nd) if len(args) > 3 else [0] * nd
        name = ("max_pool" if "max" in name else "avg_pool") + f"{nd}d"
        attrs.update(kernel=kernel, stride=stride, padding=padding)
        if name.startswith("max") and len(args) > 4:
            attrs["dilation"] = _pair(args[4], nd)
        return name, fl.pool_flops(out_shape, kernel), "analytic", attrs
    elif raw in _DENSE:
        name = "linear" if reads_weight else "matmul"

    if packet in flop_registry:
        flop = int(flop_registry[packet](*args, out_val=out, **kwargs))
        return name, flop, "torch", attrs
    if name == "attention":
        q, k, v = args[0], args[1], args[2]
        return name, fl.attention_flops(_shape(q), _shape(k), _shape(v)), "analytic", attrs
    if raw == "matmul":
        return name, fl.matmul_flops(_shape(args[0]), _shape(args[1])), "analytic", attrs
    if name in fl.REDUCTIONS:
        return name, sum(int(t.numel()) for t in ins[:1]), "analytic", attrs
    per = fl.per_element_flops(name, out_shape)
    if per is not None:
        return name, per, "analytic", attrs
    if name in fl.VIEWS or name in fl.DATA_MOVEMENT or name in FACTORIES:
        return name, 0, "none", attrs
    # Unknown operator: one FLOP per output element, and flagged so it can be added to the table.
    attrs["unknown_op"] = raw
    return name, int(outs[0].numel()) if outs else 0, "analytic", attrs
