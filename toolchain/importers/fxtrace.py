"""The ``torch.fx`` fallback of the PyTorch importer (used when ``torch.export`` fails).

``torch.fx.symbolic_trace`` gives one node per leaf-module call (``call_module``), function
(``call_function``) and tensor method (``call_method``); the graph is run once on the example
inputs (meta tensors suffice) under a dispatch mode that sees every ATen call of every node, so
FLOPs use the same formulas as the export path (:func:`toolchain.importers.aten.op_cost`). Each
fx node is one layer, so ``level="module"`` and ``"op"`` give the same graph here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolchain.importers.aten import op_cost, tensor_bytes
from toolchain.importers.common import OpNode, assemble, merge_view_groups


def trace_fx(
    module: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], name: str, canon: Mapping[str, str]
) -> Any:
    """Trace with ``torch.fx`` and build a :class:`toolchain.importers.pytorch.Trace`."""
    import torch
    import torch.fx
    from torch.utils._python_dispatch import TorchDispatchMode

    from toolchain.importers.pytorch import Trace, _Namer

    gm = torch.fx.symbolic_trace(module, concrete_args=dict(kwargs) or None)

    class _Recorder(TorchDispatchMode):
        def __init__(self, reads_weight: bool) -> None:
            super().__init__()
            self.reads_weight = reads_weight
            self.calls: list[tuple[str, int, str, dict[str, Any]]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.calls.append(op_cost(func.overloadpacket, args, kwargs, out, self.reads_weight))
            return out

    costs: dict[str, list[tuple[str, int, str, dict[str, Any]]]] = {}
    values: dict[str, Any] = {}

    def weights_of(n: torch.fx.Node) -> dict[str, tuple[int, int]]:
        """Weight name -> (bytes, trainable elements) read by node ``n``."""
        out: dict[str, tuple[int, int]] = {}
        named: list[tuple[str, Any, bool]] = []
        if n.op == "call_module":
            sub = gm.get_submodule(str(n.target))
            named += [(f"{n.target}.{k}", p, True) for k, p in sub.named_parameters()]
            # Integer buffers (BatchNorm's num_batches_tracked) are bookkeeping no operator reads.
            named += [(f"{n.target}.{k}", b, False) for k, b in sub.named_buffers() if b.is_floating_point()]
        for a in n.all_input_nodes:
            if a.op == "get_attr":
                t = values[a.name]
                named.append((str(a.target), t, isinstance(t, torch.nn.Parameter)))
        for k, t, trainable in named:
            out[canon.get(k, k)] = (tensor_bytes(t), int(t.numel()) if trainable else 0)
        return out

    class _Runner(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            rec = _Recorder(bool(weights_of(n)) if n.op != "placeholder" else False)
            with rec:
                out = super().run_node(n)
            values[n.name] = out
            costs[n.name] = rec.calls
            return out

    _Runner(gm).run(*args, *kwargs.values())

    namer = _Namer()
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder" and hasattr(values.get(n.name), "shape")]
    model_inputs = [(u, tensor_bytes(values[u])) for u in inputs]
    nodes: list[OpNode] = []
    group_attrs: dict[str, dict[str, Any]] = {}
    known = set(inputs)
    unknown: set[str] = set()
    for n in gm.graph.nodes:
        if n.op not in ("call_module", "call_function", "call_method"):
            continue
        data = [a.name for a in n.all_input_nodes if a.name in known]
        if not data or (not hasattr(values.get(n.name), "shape") and not isinstance(values.get(n.name), tuple)):
            continue
        known.add(n.name)
        calls = costs[n.name]
        flops = sum(c[1] for c in calls)
        main = max(calls, key=lambda c: c[1]) if calls else ("getitem", 0, "none", {})
        unknown |= {c[3]["unknown_op"] for c in calls if "unknown_op" in c[3]}
        by = sorted({c[2] for c in calls if c[2] != "none"})
        ws = weights_of(n)
        if n.op == "call_module":
            gid = namer(str(n.target))
            group_attrs[gid] = {"module": str(n.target), "module_type": type(gm.get_submodule(str(n.target))).__name__}
        else:
            gid = namer(n.name)
        op = main[0] if calls else "getitem"
        first: Any = values.get(data[0])
        attrs: dict[str, Any] = {"shape_in": [int(d) for d in first.shape]} if hasattr(first, "shape") else {}
        attrs.update(main[3])
        nodes.append(
            OpNode(
                n.name, op, data, flops, by[0] if len(by) == 1 else ("mixed" if by else "none"),
                tensor_bytes(values[n.name]), gid, {k: b for k, (b, _) in ws.items()},
                {k: c for k, (_, c) in ws.items() if c}, attrs,
            )
        )
    merge_view_groups(nodes, set(inputs))
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    outputs = [a.name for a in out_node.all_input_nodes]
    model = assemble(name, model_inputs, nodes, outputs, group_attrs)
    return Trace(model, {nd.name: nd.group for nd in nodes}, None, gm, "fx", unknown)
