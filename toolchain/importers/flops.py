"""Analytic FLOP formulas and the operator vocabulary shared by the PyTorch and ONNX importers.

Convention (the one of ``instances/examples/models/alexnet.yaml``): a multiply-add counts as
**2 FLOP**; biases are not counted (as in :mod:`torch.utils.flop_counter`, whose formulas the
PyTorch importer prefers where they cover an operator). Published "GMAC" totals therefore equal
the FLOP totals of convolution and linear layers divided by 2.

Operators that torch's counter does not cover are counted here, per output element unless stated:

=========================================  =====================================================
operator (canonical name)                   FLOP
=========================================  =====================================================
conv1d/2d/3d, conv_transpose                2 · out elements · C_in/groups · kernel (transposed:
                                            2 · in elements · C_out/groups · kernel)
linear, matmul (batched, broadcast)         2 · batch · M · K · N
attention (fused scaled dot product)        2·B·H·L·S·E + 2·B·H·L·S·Ev + 3·B·H·L·S (softmax)
elementwise (add, mul, relu, gelu, ...)     1 per output element (a transcendental counts as 1)
batch_norm (inference, folded to a·x + b)   2 per element
layer_norm, group_norm, rms_norm            5 per element (mean, centre, variance, scale, affine)
softmax, log_softmax                        3 per element (exp, sum, divide; the max-shift is free)
max_pool, avg_pool                          kernel size per output element
adaptive / global average pool, reductions  1 per input element
cat, split, reshape, copy, gather, pad      0 (data movement, costed by the bytes it produces)
=========================================  =====================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = Sequence[int]

#: FLOP per output element of elementwise and normalisation operators (canonical names).
PER_ELEMENT: dict[str, int] = {
    **{
        name: 1
        for name in (
            "add", "sub", "mul", "div", "neg", "abs", "relu", "relu6", "leaky_relu", "elu", "gelu",
            "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "exp", "log", "sqrt", "rsqrt",
            "pow", "erf", "sin", "cos", "reciprocal", "clamp", "maximum", "minimum", "where",
            "masked_fill", "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "logical_and",
            "logical_or", "bitwise_and", "bitwise_or", "bitwise_not", "floor", "ceil", "round",
            "sign", "prelu", "softplus", "mish",
        )
    },
    "batch_norm": 2,
    "instance_norm": 5,
    "layer_norm": 5,
    "group_norm": 5,
    "rms_norm": 4,
    "softmax": 3,
    "log_softmax": 3,
}

#: Reductions: 1 FLOP per input element.
REDUCTIONS = frozenset(
    {"mean", "sum", "amax", "amin", "max", "min", "prod", "var", "std", "any", "all", "cumsum",
     "adaptive_avg_pool", "global_avg_pool", "adaptive_max_pool", "global_max_pool", "norm"}
)

#: Zero-FLOP operators that only reinterpret their input: fused into the layer that produced it.
VIEWS = frozenset(
    {"reshape", "view", "permute", "transpose", "expand", "squeeze", "unsqueeze", "flatten",
     "unflatten", "slice", "select", "split", "chunk", "unbind", "alias", "clone", "contiguous",
     "identity", "dropout", "cast", "detach", "getitem", "as_strided"}
)

#: Zero-FLOP operators that build a new tensor from others (kept as layers when they join branches).
DATA_MOVEMENT = frozenset(
    {"cat", "stack", "gather", "index", "index_select", "embedding", "pad", "repeat", "tile",
     "scatter", "tril", "triu", "copy", "roll", "flip", "topk", "sort", "argmax", "argmin", "resize",
     "upsample", "pixel_shuffle", "channel_shuffle"}
)


def numel(shape: Shape) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a scalar)."""
    return math.prod(int(s) for s in shape)


def conv_flops(in_shape: Shape, weight_shape: Shape, out_shape: Shape, transposed: bool = False) -> int:
    """FLOP of an N-d convolution: ``2 · out elements · C_in/groups · prod(kernel)``.

    ``weight_shape`` is PyTorch/ONNX layout ``[C_out, C_in/groups, *kernel]`` (transposed:
    ``[C_in, C_out/groups, *kernel]``). A transposed convolution does the same work per *input*
    element: ``2 · in elements · C_out/groups · prod(kernel)``. Equals torch's ``conv_flop_count``.
    """
    if transposed:
        return 2 * numel(in_shape) * numel(weight_shape[1:])
    return 2 * numel(out_shape) * numel(weight_shape[1:])


def matmul_flops(a_shape: Shape, b_shape: Shape) -> int:
    """FLOP of ``a @ b`` with numpy broadcasting of batch dimensions: ``2 · batch · M · K · N``."""
    a = list(a_shape)
    b = list(b_shape)
    if len(a) == 1:
        a = [1, *a]
    if len(b) == 1:
        b = [*b, 1]
    m, k = a[-2], a[-1]
    n = b[-1]
    batch_a, batch_b = a[:-2], b[:-2]
    width = max(len(batch_a), len(batch_b))
    batch_a = [1] * (width - len(batch_a)) + batch_a
    batch_b = [1] * (width - len(batch_b)) + batch_b
    batch = math.prod(max(x, y) for x, y in zip(batch_a, batch_b, strict=True))
    return 2 * batch * m * k * n


def attention_flops(q_shape: Shape, k_shape: Shape, v_shape: Shape) -> int:
    """FLOP of fused scaled-dot-product attention on ``[..., L, E]``, ``[..., S, E]``, ``[..., S, Ev]``.

    ``Q Kᵀ`` is ``2·L·S·E`` per batch-head, the softmax ``3·L·S``, and ``P V`` ``2·L·S·Ev``.
    """
    *batch, seq_q, e = q_shape
    seq_k = k_shape[-2]
    ev = v_shape[-1]
    bh = numel(batch)
    return bh * (2 * seq_q * seq_k * e + 3 * seq_q * seq_k + 2 * seq_q * seq_k * ev)


def pool_flops(out_shape: Shape, kernel: Shape) -> int:
    """FLOP of a max/average pool: one comparison or addition per window element per output."""
    return numel(out_shape) * numel(kernel)


def per_element_flops(op: str, out_shape: Shape) -> int | None:
    """FLOP of an elementwise or normalisation operator, or None if ``op`` is not one."""
    per = PER_ELEMENT.get(op)
    return None if per is None else per * numel(out_shape)
