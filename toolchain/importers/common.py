"""The importers' common intermediate form: operator nodes grouped into layers.

Both importers (PyTorch, ONNX) first produce a list of :class:`OpNode` in topological order, each
tagged with the layer (group) it belongs to. :func:`assemble` then contracts every group into one
layer of the model section (docs/instance-format.md §2.2; ``id, op, inputs, flops, param_bytes, output_bytes, attrs``):

* ``flops`` is the sum over the group's nodes;
* ``param_bytes`` counts every weight the group reads. A weight shared by several layers (tied
  embeddings) must reside on each device that runs one of them, so it is counted in each, and the
  repeats are recorded as ``attrs.shared_param_bytes`` so unique totals stay recoverable;
* ``output_bytes`` counts the tensors that leave the group (read by another layer or a model
  output). Views of one tensor (``reshape``, ``split``...) are one storage: for each storage the
  bytes sent are the sum of its distinct escaping views, at most the storage's size;
* ``inputs`` are the groups (or model inputs) whose tensors the group reads.

Zero-FLOP views never stand alone: a group made only of views (a ``flatten``, a ``Dropout`` in
evaluation mode) is merged into the group that produced its input (:func:`merge_view_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.importers.flops import VIEWS

DTYPE_BYTES: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2,
    "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16,
}


@dataclass
class OpNode:
    """One operator of a traced or loaded graph.

    Attributes
    ----------
    name : str
        Unique node name (tensor name of its output).
    op : str
        Canonical operator name (see :mod:`toolchain.importers.flops`).
    inputs : list of str
        Names of the nodes or model inputs whose tensors it reads (data dependencies only).
    flops : int
        FLOP of one execution.
    flops_by : str
        ``"torch"`` (torch.utils.flop_counter), ``"analytic"`` (:mod:`toolchain.importers.flops`)
        or ``"none"`` (zero-FLOP operator).
    out_bytes : int
        Bytes of its output (all outputs of a multi-output node).
    group : str
        The layer this node belongs to.
    params : dict
        Weight name -> bytes, for every weight or buffer it reads.
    param_count : dict
        Trainable weight name -> number of elements (buffers excluded), for published totals.
    attrs : dict
        Operator attributes kept in the layer's ``attrs`` (shapes, kernel, stride...).
    """

    name: str
    op: str
    inputs: list[str]
    flops: int
    flops_by: str
    out_bytes: int
    group: str
    params: dict[str, int] = field(default_factory=dict)
    param_count: dict[str, int] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_view(self) -> bool:
        """True for zero-FLOP operators that only reinterpret their input."""
        return self.op in VIEWS and self.flops == 0


def merge_view_groups(nodes: Sequence[OpNode], model_inputs: set[str]) -> None:
    """Merge every group made only of views into the group producing its single input (in place).

    Groups are visited in topological order, so a chain of views collapses into the first real
    producer. A view group reading only one model input becomes an alias of it (its group is set to
    the input's id, and :func:`assemble` drops it).
    """
    by_name = {nd.name: nd for nd in nodes}
    members: dict[str, list[OpNode]] = {}
    for nd in nodes:
        members.setdefault(nd.group, []).append(nd)
    for group in list(members):
        grp = members[group]
        if not all(nd.is_view for nd in grp):
            continue
        names = {nd.name for nd in grp}
        sources = {u for nd in grp for u in nd.inputs if u not in names}
        producers = {by_name[u].group for u in sources if u in by_name}
        if len(sources) == 1 and sources <= model_inputs:
            # A view of a model input is that input: its readers read the input itself.
            for nd in grp:
                nd.group = next(iter(sources))
            members[group] = []
        elif len(sources) >= 1 and len(producers) == 1 and not (sources & model_inputs):
            target = producers.pop()
            for nd in grp:
                nd.group = target
            members[target].extend(grp)
            members[group] = []


def _storage_roots(nodes: Sequence[OpNode]) -> dict[str, str]:
    """For every node, the node that owns the storage its output aliases."""
    by_name = {nd.name: nd for nd in nodes}
    root: dict[str, str] = {}
    for nd in nodes:
        src = nd.inputs[0] if nd.inputs else None
        if nd.is_view and src is not None and src in by_name:
            root[nd.name] = root[src]
        else:
            root[nd.name] = nd.name
    return root


def _clean(value: Any) -> Any:
    """Attributes as plain YAML types (ints, floats, strings, lists, dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    return str(value)


def assemble(
    name: str,
    model_inputs: Sequence[tuple[str, int]],
    nodes: Sequence[OpNode],
    outputs: Sequence[str],
    group_attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Contract grouped nodes into a spec-form model dict (``name, inputs, layers, outputs``).

    Parameters
    ----------
    name : str
        Model name.
    model_inputs : sequence of (id, bytes)
        Tensors existing before any layer runs.
    nodes : sequence of OpNode
        All operator nodes in topological order, with their ``group`` set.
    outputs : sequence of str
        Names of the nodes whose tensors are the model outputs.
    group_attrs : mapping, optional
        Extra attributes per group (e.g. the module path and type).

    Returns
    -------
    dict
        The model section of an instance file, in SI base units, layers in topological order.
    """
    by_name = {nd.name: nd for nd in nodes}
    input_ids = {i for i, _ in model_inputs}
    roots = _storage_roots(nodes)
    order: list[str] = []
    members: dict[str, list[OpNode]] = {}
    for nd in nodes:
        if nd.group in input_ids:
            continue
        if nd.group not in members:
            order.append(nd.group)
            members[nd.group] = []
        members[nd.group].append(nd)

    escaping: dict[str, set[str]] = {g: set() for g in order}
    for nd in nodes:
        for u in nd.inputs:
            if u in by_name and by_name[u].group != nd.group and by_name[u].group in escaping:
                escaping[by_name[u].group].add(u)
    out_groups: list[str] = []
    for o in outputs:
        if o in by_name and by_name[o].group in escaping:
            escaping[by_name[o].group].add(o)
            out_groups.append(by_name[o].group)

    seen_params: set[str] = set()
    layers: list[dict[str, Any]] = []
    for g in order:
        grp = members[g]
        reads: list[str] = []
        for nd in grp:
            for u in nd.inputs:
                src = by_name[u].group if u in by_name else (u if u in input_ids else None)
                if src is not None and src != g and src not in reads:
                    reads.append(src)
        per_root: dict[str, int] = {}
        for t in sorted(escaping[g]):
            per_root[roots[t]] = per_root.get(roots[t], 0) + by_name[t].out_bytes
        if not per_root:  # a dead-end group: its result is still produced
            last = grp[-1]
            per_root[roots[last.name]] = last.out_bytes
        out_bytes = sum(min(b, by_name[r].out_bytes) if r in by_name else b for r, b in per_root.items())
        params: dict[str, int] = {}
        counts: dict[str, int] = {}
        for nd in grp:
            params.update(nd.params)
            counts.update(nd.param_count)
        shared = sum(b for p, b in params.items() if p in seen_params)
        shared_count = sum(c for p, c in counts.items() if p in seen_params)
        seen_params.update(params)
        main = max(grp, key=lambda nd: (nd.flops, not nd.is_view))
        flops = sum(nd.flops for nd in grp)
        by = sorted({nd.flops_by for nd in grp if nd.flops_by != "none"})
        attrs: dict[str, Any] = dict(group_attrs.get(g, {})) if group_attrs else {}
        attrs.update(main.attrs)
        attrs["flops_by"] = by[0] if len(by) == 1 else ("mixed" if by else "none")
        if counts:
            attrs["param_count"] = sum(counts.values()) - shared_count
        if shared:
            attrs["shared_param_bytes"] = shared
        layer: dict[str, Any] = {
            "id": g,
            "op": main.op,
            "inputs": reads,
            "flops": int(flops),
            "param_bytes": int(sum(params.values())),
            "output_bytes": int(out_bytes),
            "attrs": _clean(attrs),
        }
        layers.append(layer)
    model: dict[str, Any] = {
        "name": name,
        "inputs": [{"id": i, "bytes": int(b)} for i, b in model_inputs],
        "layers": layers,
    }
    if out_groups:
        model["outputs"] = list(dict.fromkeys(out_groups))
    return model


# --------------------------------------------------------------------------------------------------
# Model dicts: totals, conversion to a Graph, writing
# --------------------------------------------------------------------------------------------------


def totals(model: Mapping[str, Any]) -> dict[str, float]:
    """Summary numbers of a model dict.

    Returns
    -------
    dict
        ``layers``, ``flops`` (all layers), ``mac_conv_linear`` (FLOP/2 of convolution, linear
        and matmul layers: the quantity published as "GMAC"), ``params`` (unique trainable
        parameters, from ``attrs.param_count``), ``param_bytes`` (unique, buffers included).
    """
    layers = model["layers"]
    dense = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "linear", "matmul", "attention",
             "mlp", "decoder_block"}
    return {
        "layers": float(len(layers)),
        "flops": float(sum(lay["flops"] for lay in layers)),
        "mac_conv_linear": float(sum(lay["flops"] for lay in layers if lay["op"] in dense)) / 2,
        "params": float(sum((lay.get("attrs") or {}).get("param_count", 0) for lay in layers)),
        "param_bytes": float(
            sum(lay.get("param_bytes", 0) - (lay.get("attrs") or {}).get("shared_param_bytes", 0) for lay in layers)
        ),
    }


def to_graph(model: Mapping[str, Any]) -> Any:
    """A :class:`formulation.model.Graph` from a model dict whose quantities are SI numbers."""
    from formulation.model import Graph, Layer, ModelInput

    layers = [
        Layer(
            id=lay["id"],
            op=lay["op"],
            inputs=tuple(lay["inputs"]),
            flops=float(lay["flops"]),
            output_bytes=float(lay["output_bytes"]),
            param_bytes=float(lay.get("param_bytes", 0)),
            workspace_bytes=float(lay.get("workspace_bytes", 0)),
            attrs=dict(lay.get("attrs") or {}),
        )
        for lay in model["layers"]
    ]
    inputs = [ModelInput(t["id"], float(t["bytes"])) for t in model.get("inputs", [])]
    return Graph(model.get("name") or "model", inputs, layers, model.get("outputs"))


def _flow(value: Any) -> str:
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def dump_model_yaml(model: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """A model dict as YAML text with one flow-style line per layer (diff-friendly).

    ``header`` lines are written first as ``#`` comments.
    """
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append(f"name: {_flow(model['name'])}")
    lines.append("inputs:")
    lines.extend(f"  - {_flow(t)}" for t in model.get("inputs", []))
    lines.append("layers:")
    lines.extend(f"  - {_flow(lay)}" for lay in model["layers"])
    if model.get("outputs"):
        lines.append(f"outputs: {_flow(list(model['outputs']))}")
    return "\n".join(lines) + "\n"


def write_model_yaml(model: Mapping[str, Any], path: Path | str, header: Sequence[str] = ()) -> Path:
    """Write :func:`dump_model_yaml` to ``path`` (parents created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dump_model_yaml(model, header))
    return p
