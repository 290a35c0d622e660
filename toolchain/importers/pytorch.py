"""Import a PyTorch ``nn.Module`` as a dnnpart model (a layer DAG with FLOPs and bytes).

The module is traced with ``torch.export`` and decomposed to core ATen operators (torch's FLOP
formulas only apply after decomposition), without running it: shapes come from fake tensors, so a
module built on the ``meta`` device imports in seconds whatever its size. When export fails the
importer falls back to ``torch.fx.symbolic_trace`` and runs the traced graph on meta tensors.

Granularity (``level``):

* ``"module"``: one layer per call of a leaf module (a module without children: ``Conv2d``,
  ``Linear``, ``ReLU``...), and one per operator called outside leaf modules (the ``+`` of a
  residual block, ``torch.cat`` of an Inception block). Ids are module paths (``layer1.0.conv1``;
  a second call of the same module is ``layer1.0.relu@1``; ``layer1.0.add`` is an operator called
  in ``layer1.0``'s forward).
* ``"op"``: one layer per ATen operator (``layer1.0.conv1.conv2d``).

Views (``reshape``, ``flatten``, evaluation-mode ``Dropout``) never stand alone (see
:mod:`toolchain.importers.common`). Operators whose value does not depend on the model inputs
(attention masks, position ids, weight transposes) are constants: they cost nothing and the
weights they read are charged to the layers that use them.

Each layer's ``attrs`` carries the module path and type, input/output shapes, kernel, stride,
padding, dilation and groups of convolutions and pools, ``param_count`` (trainable elements,
each shared weight counted once) and ``flops_by`` (``torch`` when torch.utils.flop_counter
counted it, ``analytic`` for :mod:`toolchain.importers.flops`, ``mixed``, or ``none``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from toolchain.importers.aten import FACTORIES, has_tensor, op_cost, tensor_bytes
from toolchain.importers.common import OpNode, assemble, merge_view_groups, to_graph

log = logging.getLogger(__name__)

Level = Literal["module", "op"]


@dataclass
class Trace:
    """What the importer learned about a module: the model dict and how nodes map to layers.

    Attributes
    ----------
    model : dict
        Spec-form model section.
    node_layer : dict
        Graph node name -> layer id (used by the profiler to time layers).
    program : Any
        The decomposed ``torch.export.ExportedProgram`` (None after the fx fallback).
    graph_module : Any
        The traced ``torch.fx.GraphModule`` (export's lifted graph or the fx trace).
    method : str
        ``"export"`` or ``"fx"``.
    unknown_ops : set of str
        ATen operators counted by the 1-FLOP-per-element fallback.
    """

    model: dict[str, Any]
    node_layer: dict[str, str]
    program: Any
    graph_module: Any
    method: str
    unknown_ops: set[str] = field(default_factory=set)


def _canonical_param_names(module: Any) -> dict[str, str]:
    """Weight or buffer name -> the first name of the same tensor (tied weights share one)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for n, t in list(module.named_parameters(remove_duplicate=False)) + list(
        module.named_buffers(remove_duplicate=False)
    ):
        out[n] = first.setdefault(id(t), n)
    return out


class _Namer:
    """Readable unique layer ids: ``base``, then ``base@1``, ``base@2``..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, base: str) -> str:
        base = base or "layer"
        cand, k = base, 0
        while cand in self.used:
            k += 1
            cand = f"{base}@{k}"
        self.used.add(cand)
        return cand


def _module_of(node: Any) -> tuple[str, str, str]:
    """(call key, module path, module type) of the innermost module a node was called in."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", "", ""
    key, (path, typ) = list(stack.items())[-1]
    typ = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    return key, path, typ.rsplit(".", 1)[-1]


def _export(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import torch

    with warnings.catch_warnings():
        # torch's own pytree deprecation notices, not actionable by users of the importer.
        warnings.simplefilter("ignore", FutureWarning)
        ep = torch.export.export(module, args, kwargs=kwargs)
        return ep.run_decompositions()


def trace_module(
    module: Any,
    example_inputs: Sequence[Any] | Any,
    level: Level = "module",
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    method: Literal["auto", "export", "fx"] = "auto",
) -> Trace:
    """Trace ``module`` and build its model dict; see :func:`from_module` for the parameters."""
    import torch

    if level not in ("module", "op"):
        raise ValueError(f"level must be 'module' or 'op', got {level!r}")
    args = tuple(example_inputs) if isinstance(example_inputs, list | tuple) else (example_inputs,)
    kwargs = dict(example_kwargs or {})
    module = module.eval()
    name = name or type(module).__name__.lower()
    leaves = {p for p, m in module.named_modules() if not list(m.children())}
    canon = _canonical_param_names(module)
    with torch.no_grad():
        if method in ("auto", "export"):
            try:
                ep = _export(module, args, kwargs)
            except Exception as exc:
                if method == "export":
                    raise
                log.warning("torch.export failed (%s); falling back to torch.fx", exc)
            else:
                return _from_export(ep, name, level, leaves, canon)
        from toolchain.importers.fxtrace import trace_fx

        return trace_fx(module, args, kwargs, name, canon)


def _from_export(ep: Any, name: str, level: Level, leaves: set[str], canon: dict[str, str]) -> Trace:
    from torch.export.graph_signature import InputKind, OutputKind

    sig = ep.graph_signature
    weight_of: dict[str, tuple[str, bool]] = {}  # placeholder -> (weight name, trainable)
    user_inputs: list[str] = []
    for spec in sig.input_specs:
        arg = getattr(spec.arg, "name", None)
        if arg is None:
            continue
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(arg)
        else:
            target = spec.target or arg
            weight_of[arg] = (canon.get(target, target), spec.kind == InputKind.PARAMETER)

    graph = ep.graph_module.graph
    vals = {n.name: n.meta.get("val") for n in graph.nodes}
    user_inputs = [u for u in user_inputs if has_tensor(vals.get(u))]  # flags such as use_cache
    model_inputs = [(u, tensor_bytes(vals[u])) for u in user_inputs]
    const_weights: dict[str, set[str]] = {w: {w} for w in weight_of}  # constant node -> weights read
    namer = _Namer()
    call_ids: dict[str, str] = {}
    nodes: list[OpNode] = []
    group_attrs: dict[str, dict[str, Any]] = {}
    unknown: set[str] = set()
    for n in graph.nodes:
        if n.op != "call_function":
            continue
        ins = [a for a in n.all_input_nodes]
        data = [a.name for a in ins if a.name not in const_weights]
        out = vals.get(n.name)
        packet = getattr(n.target, "_overloadpacket", None)
        opname = packet.__name__ if packet is not None else getattr(n.target, "__name__", str(n.target))
        if not data or opname in FACTORIES or not has_tensor(out):
            # Input-independent values, assertions and symbolic sizes: constants, free to compute.
            const_weights[n.name] = set().union(*(const_weights.get(a.name, set()) for a in ins))
            continue
        weights = set().union(*(const_weights.get(a.name, set()) for a in ins))
        params = {weight_of[w][0]: tensor_bytes(vals[w]) for w in weights}
        counts = {weight_of[w][0]: int(vals[w].numel()) for w in weights if weight_of[w][1]}
        if packet is None:  # operator.getitem on a multi-output node
            attrs: dict[str, Any] = {}
            op, flops, by = "getitem", 0, "none"
        else:
            a_vals = _map_args(n.args, vals)
            k_vals = {k: _map_args(v, vals) for k, v in n.kwargs.items()}
            op, flops, by, attrs = op_cost(packet, a_vals, k_vals, out, bool(weights))
            if "unknown_op" in attrs:
                unknown.add(attrs["unknown_op"])
        first = next((a for a in ins if a.name in data), None)
        if first is not None and has_tensor(vals.get(first.name)) and hasattr(vals[first.name], "shape"):
            attrs = {"shape_in": [int(d) for d in vals[first.name].shape], **attrs}
        key, path, typ = _module_of(n)
        if level == "module" and path in leaves and path:
            if key not in call_ids:
                call_ids[key] = namer(path)
                group_attrs[call_ids[key]] = {"module": path, "module_type": typ}
            group = call_ids[key]
        else:
            group = namer(f"{path}.{op}" if path else op)
            group_attrs[group] = {"module": path, "module_type": typ} if path else {}
        nodes.append(OpNode(n.name, op, data, flops, by, tensor_bytes(out), group, params, counts, attrs))

    merge_view_groups(nodes, set(user_inputs))
    outputs = [s.arg.name for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT and hasattr(s.arg, "name")]
    model = assemble(name, model_inputs, nodes, outputs, group_attrs)
    node_layer = {nd.name: nd.group for nd in nodes}
    return Trace(model, node_layer, ep, ep.graph_module, "export", unknown)


def _map_args(a: Any, vals: Mapping[str, Any]) -> Any:
    """Replace fx nodes in (nested) arguments by their fake-tensor values."""
    import torch.fx

    if isinstance(a, torch.fx.Node):
        return vals.get(a.name)
    if isinstance(a, list | tuple):
        return type(a)(_map_args(x, vals) for x in a)
    if isinstance(a, dict):
        return {k: _map_args(v, vals) for k, v in a.items()}
    return a


def from_module(
    module: Any,
    example_inputs: Sequence[Any] | Any,
    level: Level = "module",
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    method: Literal["auto", "export", "fx"] = "auto",
    as_graph: bool = False,
) -> Any:
    """Import a PyTorch module as a spec-form model dict (or a :class:`formulation.model.Graph`).

    Parameters
    ----------
    module : torch.nn.Module
        The network; put in evaluation mode. Build it on the ``meta`` device (``with
        torch.device("meta"):``) to import without allocating weights.
    example_inputs : tensor or sequence of tensors
        Positional inputs of one inference (their shapes and dtypes define the model inputs;
        meta tensors are enough).
    level : {"module", "op"}
        One layer per leaf-module call (and per operator outside modules), or per ATen operator.
    example_kwargs : mapping, optional
        Keyword inputs (e.g. ``{"use_cache": False}`` for Hugging Face decoders).
    name : str, optional
        Model name (default: the module's class name in lower case).
    method : {"auto", "export", "fx"}
        Tracer; ``auto`` tries ``torch.export`` and falls back to ``torch.fx``.
    as_graph : bool
        Return a :class:`formulation.model.Graph` instead of the dict.

    Returns
    -------
    dict or Graph
        The model section (``name, inputs, layers, outputs``) in SI base units.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    >>> d = from_module(m, torch.zeros(1, 4))
    >>> [(lay["id"], lay["op"], lay["flops"]) for lay in d["layers"]]
    [('0', 'linear', 24), ('1', 'relu', 3)]
    """
    tr = trace_module(module, example_inputs, level, example_kwargs=example_kwargs, name=name, method=method)
    return to_graph(tr.model) if as_graph else tr.model
