"""Import an ONNX model as a dnnpart model, by shape inference only (the model is never run).

``onnx.shape_inference.infer_shapes`` gives every tensor's shape and type; FLOPs come from the
formulas of :mod:`toolchain.importers.flops` (the same ones the PyTorch importer uses where
torch's counter does not apply, and equal to torch's for convolutions and matrix products), so
both importers agree on the same network. Initializers are the parameters. Attention blocks are
counted as they decompose (MatMul, Softmax, ...).

Nodes whose value does not depend on a graph input (``Constant``, ``Shape`` and the shape
arithmetic that follows) are constants: free, and the initializers they read are charged to the
layers that use them.

Granularity: ``level="op"`` makes one layer per node (views such as ``Flatten`` and ``Reshape``
merged into their producer); ``level="module"`` groups consecutive nodes of one name scope
(exporters name nodes ``/layer1/layer1.0/conv1/Conv``; the scope is all but the last part).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from toolchain.importers import flops as fl
from toolchain.importers.common import OpNode, assemble, merge_view_groups, to_graph

_OPS: dict[str, str] = {
    "Conv": "conv", "ConvTranspose": "conv_transpose", "Gemm": "gemm", "MatMul": "matmul",
    "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm",
    "InstanceNormalization": "instance_norm", "GroupNormalization": "group_norm",
    "SimplifiedLayerNormalization": "rms_norm", "RMSNormalization": "rms_norm",
    "Softmax": "softmax", "LogSoftmax": "log_softmax", "Relu": "relu", "LeakyRelu": "leaky_relu",
    "Clip": "clamp", "Gelu": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "Elu": "elu", "PRelu": "prelu", "Erf": "erf", "Pow": "pow", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Exp": "exp", "Log": "log", "Add": "add", "Sub": "sub", "Mul": "mul",
    "Div": "div", "Neg": "neg", "Abs": "abs", "Max": "maximum", "Min": "minimum", "Where": "where",
    "Equal": "eq", "Less": "lt", "Greater": "gt", "Not": "logical_not", "And": "logical_and",
    "Or": "logical_or", "MaxPool": "max_pool", "AveragePool": "avg_pool",
    "GlobalAveragePool": "global_avg_pool", "GlobalMaxPool": "global_max_pool", "ReduceMean": "mean",
    "ReduceSum": "sum", "ReduceMax": "amax", "ReduceMin": "amin", "Concat": "cat", "Gather": "gather",
    "Pad": "pad", "Resize": "resize", "Upsample": "upsample", "Tile": "tile", "Reshape": "reshape",
    "Flatten": "flatten", "Transpose": "transpose", "Squeeze": "squeeze", "Unsqueeze": "unsqueeze",
    "Identity": "identity", "Dropout": "dropout", "Cast": "cast", "Slice": "slice", "Split": "split",
    "Expand": "expand", "CumSum": "cumsum", "Trilu": "tril",
}
#: Operators whose outputs depend only on shapes or attributes.
_CONSTANT_OPS = frozenset({"Constant", "Shape", "Size", "ConstantOfShape", "Range", "EyeLike"})


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _tensor_types(model: Any) -> dict[str, tuple[list[int], int]]:
    """Tensor name -> (shape, bytes per element) for every typed tensor after shape inference."""
    import onnx

    out: dict[str, tuple[list[int], int]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = []
        for d in tt.shape.dim:
            if not d.HasField("dim_value"):
                raise ValueError(
                    f"tensor {vi.name!r} has a dynamic dimension {d.dim_param or '?'!r}; "
                    "give static shapes with input_shapes={name: [dims]}"
                )
            dims.append(int(d.dim_value))
        size = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
        out[vi.name] = (dims, size)
    for init in g.initializer:
        size = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        out[init.name] = ([int(d) for d in init.dims], size)
    return out


def _cost(node: Any, ins: Sequence[list[int]], out: list[int], weight_in: bool) -> tuple[str, int, dict[str, Any]]:
    """Canonical op, FLOP and attributes of one ONNX node."""
    kind = _OPS.get(node.op_type, node.op_type.lower())
    attrs: dict[str, Any] = {"shape_in": ins[0] if ins else [], "shape_out": out}
    if kind in ("conv", "conv_transpose"):
        w = ins[1]
        nd = len(w) - 2
        attrs.update(
            kernel=list(_attr(node, "kernel_shape", w[2:])), stride=list(_attr(node, "strides", [1] * nd)),
            padding=list(_attr(node, "pads", [0] * 2 * nd))[:nd], dilation=list(_attr(node, "dilations", [1] * nd)),
            groups=int(_attr(node, "group", 1)),
        )
        return f"{kind}{nd}d", fl.conv_flops(ins[0], w, out, kind == "conv_transpose"), attrs
    if kind == "gemm":
        a, b = ins[0], ins[1]
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return ("linear" if weight_in else "matmul"), 2 * m * k * n, attrs
    if kind == "matmul":
        return ("linear" if weight_in else "matmul"), fl.matmul_flops(ins[0], ins[1]), attrs
    if kind in ("max_pool", "avg_pool"):
        kernel = list(_attr(node, "kernel_shape"))
        nd = len(kernel)
        attrs.update(
            kernel=kernel, stride=list(_attr(node, "strides", [1] * nd)),
            padding=list(_attr(node, "pads", [0] * 2 * nd))[:nd],
        )
        return f"{kind}{nd}d", fl.pool_flops(out, kernel), attrs
    if kind in fl.REDUCTIONS:
        return kind, fl.numel(ins[0]), attrs
    per = fl.per_element_flops(kind, out)
    if per is not None:
        return kind, per, attrs
    if kind == "gather" and weight_in:
        return "embedding", 0, attrs
    if kind in fl.VIEWS or kind in fl.DATA_MOVEMENT:
        return kind, 0, attrs
    attrs["unknown_op"] = node.op_type
    return kind, fl.numel(out), attrs


def _scope(name: str) -> str:
    parts = [p for p in name.split("/") if p]
    return ".".join(parts[:-1]) if len(parts) > 1 else ""


def _check_order(g: Any, inits: set[str]) -> None:
    """Every node reads only graph inputs, initializers and outputs of earlier nodes.

    ONNX requires nodes in topological order; a node reading a tensor produced later (a cycle)
    or by no node at all would otherwise be mistaken for a constant and drop an edge silently.
    """
    known = {i.name for i in g.input} | inits
    for idx, node in enumerate(g.node):
        for t in node.input:
            if t and t not in known:
                later = any(t in n.output for n in g.node[idx:])
                why = "a node at or after it produces it (a cycle, or nodes out of topological order)" if later \
                    else "no node, input or initializer produces it"
                raise ValueError(f"node {idx} ({node.name or node.op_type}) reads tensor {t!r}, but {why}")
        known.update(t for t in node.output if t)


def from_onnx(
    source: str | Path | Any,
    level: Literal["op", "module"] = "op",
    *,
    name: str | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    as_graph: bool = False,
) -> Any:
    """Import an ONNX model (path or ``onnx.ModelProto``) as a spec-form model dict or Graph.

    Parameters
    ----------
    source : path or onnx.ModelProto
        The model.
    level : {"op", "module"}
        One layer per node, or per run of nodes sharing a name scope.
    name : str, optional
        Model name (default: the graph name, else the file stem).
    input_shapes : mapping, optional
        Static shapes for graph inputs with symbolic dimensions.
    as_graph : bool
        Return a :class:`formulation.model.Graph` instead of the dict.

    Raises
    ------
    ValueError
        If a tensor's shape stays dynamic after inference, a node reads a tensor that no earlier
        node produces (ONNX requires topological order, so this is a cycle or a dangling input),
        or no operator depends on the model inputs (nothing to import).
    """
    import onnx

    model = onnx.load(str(source)) if isinstance(source, str | Path) else source
    if input_shapes:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        for inp in model.graph.input:
            if inp.name in input_shapes:
                dims = inp.type.tensor_type.shape.dim
                for d, v in zip(dims, input_shapes[inp.name], strict=True):
                    d.Clear()
                    d.dim_value = int(v)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = _tensor_types(model)
    g = model.graph
    inits = {i.name for i in g.initializer}
    weights: dict[str, set[str]] = {i: {i} for i in inits}  # constant tensor -> initializers behind it
    graph_inputs = [i.name for i in g.input if i.name not in inits]
    model_inputs = [(i, fl.numel(types[i][0]) * types[i][1]) for i in graph_inputs]
    data_tensors = set(graph_inputs)
    producer: dict[str, str] = {}
    nodes: list[OpNode] = []
    used: set[str] = set()
    prev_scope, prev_group = None, ""
    _check_order(g, inits)
    for idx, node in enumerate(g.node):
        data = [t for t in node.input if t in data_tensors]
        if not data or node.op_type in _CONSTANT_OPS:
            behind = set().union(*(weights.get(t, set()) for t in node.input if t))
            for t in node.output:
                weights[t] = behind
            continue
        reads = set().union(*(weights.get(t, set()) for t in node.input if t))
        ins = [types[t][0] for t in node.input if t in types]
        out_name = node.output[0]
        out_shape = types.get(out_name, ([], 4))[0]
        op, flop, attrs = _cost(node, ins, out_shape, bool(reads))
        out_bytes = sum(fl.numel(types[t][0]) * types[t][1] for t in node.output if t in types)
        base = re.sub(r"\s+", "_", node.name.strip("/").replace("/", ".")) or f"{op}_{idx}"
        scope = _scope(node.name)
        if level == "module" and scope and scope == prev_scope:
            group = prev_group
        else:
            group = base if base not in used else f"{base}@{idx}"
            used.add(group)
        prev_scope, prev_group = scope, group
        params = {w: fl.numel(types[w][0]) * types[w][1] for w in reads}
        counts = {w: fl.numel(types[w][0]) for w in reads}
        nd = OpNode(out_name, op, [producer.get(t, t) for t in data], flop,
                    "analytic" if flop else "none", out_bytes, group, params, counts, attrs)
        nodes.append(nd)
        for t in node.output:
            data_tensors.add(t)
            producer[t] = out_name
    merge_view_groups(nodes, set(graph_inputs))
    outputs = [producer[o.name] for o in g.output if o.name in producer]
    result = assemble(name or g.name or (Path(source).stem if isinstance(source, str | Path) else "onnx"),
                      model_inputs, nodes, outputs)
    if not result.get("layers"):
        raise ValueError(
            f"the graph has {len(g.node)} nodes and none depends on a model input "
            f"({len(graph_inputs)} inputs): there is no layer to import"
        )
    return to_graph(result) if as_graph else result
