"""Cut a PyTorch model by a placement into per-device parts (``dnnpart export-partition``).

The model is traced exactly as the importer traces it (:func:`toolchain.importers.pytorch.trace_module`:
``torch.export`` then decomposition to core ATen operators), so the fx nodes carry the layer ids
of the instance (``Trace.node_layer``). The instance's layer DAG must equal the traced one (same
ids, same inputs), else the cut is refused (exit 2): the ids would not mean the same layers.

Each layer becomes one **segment**: a ``torch.fx.GraphModule`` built from the layer's own nodes,
whose placeholders are the values it reads from other layers or model inputs and whose output
tuple is the values other layers read (or model outputs). Weights are attributes of the segment.
Nodes that do not depend on the model inputs (weight transposes, masks, position ids: constants
for the importer) are evaluated once here and stored as attributes; views of a model input are
copied into every segment that reads them. A device's part is its segments in execution order.

``OUT/manifest.json`` describes the parts (:class:`Plan`): devices, the layers of each and their
order, what each layer sends to which device, the model inputs each device receives from the
source. ``OUT/DEVICE.pt`` holds the device's segments (``torch.save`` of GraphModules: their code
and weights; :func:`load_part` rebuilds them). ``OUT/inputs.pt`` holds the example inputs and
the monolithic outputs for checking.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from formulation.errors import InstanceError
from formulation.model import Instance

MANIFEST = "manifest.json"
INPUTS = "inputs.pt"


@dataclass
class Segment:
    """One layer's computation: ``module(*[env[i] for i in inputs]) -> tuple of env[o] for o in outputs``."""

    layer: str
    inputs: list[str]
    outputs: list[str]
    module: Any


@dataclass
class Plan:
    """The manifest: how the parts fit together (JSON-ready; node names are the env keys).

    Attributes
    ----------
    devices : list of str
        Device ids of the instance, in its order.
    source, sink : str, str or None
        Where the model inputs are and where the outputs must end up.
    user_inputs : list of str
        Model input names, in the order of the flattened ``(args, kwargs)``.
    outputs : list of str
        Node names of the model outputs, in the model's output order.
    placement : dict
        Layer id -> device id.
    order : dict
        Device id -> its layers in execution order.
    global_order : list of str
        Every layer in one topological order (the order of sequential execution).
    sends : dict
        Layer -> {destination device: [node names]} of values sent after it runs.
    input_sends : dict
        Destination device -> [model input names] sent by the source at the start.
    producer : dict
        Node name or model input -> the layer producing it (the input's own name for model inputs).
    files : dict
        Device id -> file name of its segments.
    """

    devices: list[str]
    source: str
    sink: str | None
    user_inputs: list[str]
    outputs: list[str]
    placement: dict[str, str]
    order: dict[str, list[str]]
    global_order: list[str]
    sends: dict[str, dict[str, list[str]]]
    input_sends: dict[str, list[str]]
    producer: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_json`."""
        return Plan(**data)


@dataclass
class Partition:
    """A cut model: the plan, each device's segments, example inputs and monolithic outputs."""

    plan: Plan
    parts: dict[str, list[Segment]]
    inputs: list[Any]
    reference: list[Any]


def check_ids(inst: Instance, model: dict[str, Any], where: str) -> None:
    """Refuse (exit 2) unless the instance's layer DAG equals the traced model's (ids and inputs)."""
    g = inst.graph
    traced = {lay["id"]: list(lay["inputs"]) for lay in model["layers"]}
    file = str(inst.source_path or "<instance>")
    ours = set(g.layer_ids)
    missing, extra = sorted(ours - set(traced)), sorted(set(traced) - ours)
    if missing or extra:
        raise InstanceError(
            file, "model.layers", missing[:5] or extra[:5],
            f"the layer ids of the graph {where} traces to ({len(traced)} layers; "
            f"{len(missing)} of the instance's ids are not in it, {len(extra)} of its ids are not in the instance)",
        )
    for v, lay in enumerate(g.layer_ids):
        have = sorted(g.tensor_ids[t] for t in g.layer_inputs[v])
        if have != sorted(traced[lay]):
            raise InstanceError(
                file, f"model.layers[{lay}].inputs", have,
                f"the inputs the traced graph of {where} gives this layer: {sorted(traced[lay])}",
            )


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


@dataclass
class Traced:
    """A module traced for cutting: the export, its weights and one run's values of every node."""

    trace: Any
    weights: dict[str, Any]
    user_inputs: list[str]
    outputs: list[str]
    flat: list[Any]
    values: dict[str, Any]
    reference: list[Any]


def trace_for_cut(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], where: str = "the model") -> Traced:
    """Trace ``module`` as the importer does and run the graph once on ``args`` (reusable by :func:`cut`)."""
    import torch
    import torch.fx
    from torch.export.graph_signature import InputKind, OutputKind
    from torch.utils import _pytree as pytree

    from toolchain.importers.pytorch import trace_module

    module = module.eval()
    with torch.no_grad():
        trace = trace_module(module, args, "module", example_kwargs=kwargs, method="export")
    ep = trace.program
    gm = ep.graph_module
    sig = ep.graph_signature
    state = {**ep.state_dict, **ep.constants}
    weights: dict[str, Any] = {}
    user_inputs: list[str] = []
    for spec in sig.input_specs:
        name = spec.arg.name
        if spec.kind == InputKind.USER_INPUT:
            user_inputs.append(name)
        else:
            weights[name] = state[spec.target]
    flat = list(pytree.tree_flatten((args, kwargs))[0])
    if len(flat) != len(user_inputs):
        expected = f"{len(user_inputs)} flattened inputs (torch.export's signature)"
        raise InstanceError(where, "inputs", len(flat), expected)
    outputs = [s.arg.name for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]

    # One run of the whole graph: every node's value (constants are taken from it, and the
    # outputs are the reference the parts must reproduce).
    values: dict[str, Any] = {}

    class _Record(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            out = super().run_node(n)
            values[n.name] = out
            return out

    ordered = [weights.get(n.name) for n in gm.graph.nodes if n.op == "placeholder"]
    it = iter(flat)
    ordered = [w if w is not None else next(it) for w in ordered]
    with torch.no_grad():
        _Record(gm).run(*ordered)
        mono = module(*args, **kwargs)
    reference = [x for x in pytree.tree_flatten(mono)[0] if _is_tensor(x)]
    graph_outs = [values[o] for o in outputs]
    if len(reference) != len(graph_outs):
        reference = graph_outs
    return Traced(trace, weights, user_inputs, outputs, flat, values, reference)


def cut(inst: Instance, placement: dict[str, str], module: Any, args: tuple[Any, ...],
        kwargs: dict[str, Any], where: str = "the model", traced: Traced | None = None) -> Partition:
    """Cut ``module`` by ``placement`` (layer id -> device id); ``traced`` reuses an earlier trace.

    Raises
    ------
    InstanceError
        When the instance's layers do not match the traced graph.
    """
    import torch
    import torch.fx

    from formulation.evaluator import evaluate

    tr = traced if traced is not None else trace_for_cut(module, args, kwargs, where)
    check_ids(inst, tr.trace.model, where)
    trace, weights, user_inputs, outputs = tr.trace, tr.weights, tr.user_inputs, tr.outputs
    flat, values, reference = tr.flat, tr.values, tr.reference
    gm = trace.program.graph_module

    node_layer = trace.node_layer
    layer_ids = set(inst.graph.layer_ids)
    inputs_set = set(user_inputs)
    consumers: dict[str, set[str]] = {}  # node -> layers reading it (through input views too)

    def owner(n: Any) -> str | None:
        lay = node_layer.get(n.name)
        return lay if lay in layer_ids else None

    def local_closure(n: Any) -> bool:
        """True for nodes copied into each reader: views of a model input."""
        return n.op == "call_function" and owner(n) is None and node_layer.get(n.name) in inputs_set

    def sources(n: Any) -> set[str]:
        """Layer outputs and model inputs a node reads, through views of model inputs."""
        out: set[str] = set()
        for a in n.all_input_nodes:
            if owner(a) is not None or a.name in inputs_set:
                out.add(a.name)
            elif local_closure(a):
                out |= sources(a)
        return out

    for n in gm.graph.nodes:
        lay = owner(n)
        if lay is None:
            continue
        for s in sources(n):
            consumers.setdefault(s, set()).add(lay)
    for o in outputs:
        consumers.setdefault(o, set()).add("<output>")

    ev = evaluate(inst, placement)
    topo = {lay: i for i, lay in enumerate(inst.graph.layer_ids)}
    devices = list(inst.system.device_ids)
    order = {d: sorted((lay for lay, dd in placement.items() if dd == d), key=lambda x: (ev.schedule[x], topo[x]))
             for d in devices}
    source, sink = inst.system.source, inst.system.sink
    sends: dict[str, dict[str, list[str]]] = {}
    producer: dict[str, str] = {u: u for u in user_inputs}
    input_sends: dict[str, list[str]] = {}
    segments: dict[str, list[Segment]] = {d: [] for d in devices}
    members: dict[str, list[Any]] = {}
    for n in gm.graph.nodes:
        lay = owner(n)
        if lay is not None:
            members.setdefault(lay, []).append(n)
            producer[n.name] = lay
    for u in user_inputs:
        for lay in consumers.get(u, ()):
            if lay != "<output>" and placement[lay] != source:
                dst = input_sends.setdefault(placement[lay], [])
                if u not in dst:
                    dst.append(u)
    attr_re = re.compile(r"[^0-9a-zA-Z_]")
    for lay in inst.graph.layer_ids:
        own = members.get(lay, [])
        names = {n.name for n in own}
        dev = placement[lay]
        exported = [n.name for n in own if consumers.get(n.name, set()) - {lay}]
        for o in exported:
            for c in consumers[o] - {lay}:
                to = sink if c == "<output>" else placement[c]
                if to is not None and to != dev:
                    lst = sends.setdefault(lay, {}).setdefault(to, [])
                    if o not in lst:
                        lst.append(o)
        g = torch.fx.Graph()
        root = torch.nn.Module()
        env: dict[str, Any] = {}
        seg_inputs: list[str] = []

        def fetch(a: Any, _root: Any = root, _g: Any = g, _env: dict[str, Any] = env,
                  _ins: list[str] = seg_inputs, _names: set[str] = names) -> Any:
            if a.name in _env:
                return _env[a.name]
            if owner(a) is not None or a.name in inputs_set:
                _ins.append(a.name)
                _env[a.name] = _g.placeholder(attr_re.sub("_", a.name))
            elif local_closure(a):
                _env[a.name] = _copy(_g, a, lambda b: fetch(b))
            else:  # a weight, or a constant evaluated once above
                val = weights[a.name] if a.name in weights else values[a.name]
                if not _is_tensor(val):
                    return val
                attr = f"c{len(_env)}_{attr_re.sub('_', a.name)}"
                _root.register_buffer(attr, val.detach().clone())
                _env[a.name] = _g.get_attr(attr)
            return _env[a.name]

        for n in own:
            env[n.name] = _copy(g, n, fetch)
        g.output(tuple(env[o] for o in exported))
        seg = torch.fx.GraphModule(root, g)
        segments[dev].append(Segment(lay, seg_inputs, exported, seg))
    for d in devices:
        pos = {lay: i for i, lay in enumerate(order[d])}
        segments[d].sort(key=lambda s: pos[s.layer])
    plan = Plan(devices, source, sink, user_inputs, outputs, dict(placement), order,
                list(inst.graph.layer_ids), sends, input_sends, producer)
    return Partition(plan, segments, flat, reference)


def _copy(g: Any, n: Any, fetch: Any) -> Any:
    """Copy fx node ``n`` into graph ``g`` (arguments through ``fetch``), without tracing metadata."""
    new = g.node_copy(n, fetch)
    new.meta = {}
    return new


def save(part: Partition, out: Path) -> list[Path]:
    """Write the manifest, one segment file per device and the example inputs; returns the files."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for d, segs in part.parts.items():
        fname = re.sub(r"[^0-9A-Za-z_.-]", "_", d) + ".pt"
        part.plan.files[d] = fname
        torch.save([(s.layer, s.inputs, s.outputs, s.module) for s in segs], out / fname)
        written.append(out / fname)
    torch.save({"inputs": part.inputs, "reference": part.reference}, out / INPUTS)
    (out / MANIFEST).write_text(json.dumps(part.plan.to_json(), indent=1))
    return [out / MANIFEST, *written, out / INPUTS]


def load_plan(out: Path) -> Plan:
    """The manifest of an exported partition."""
    return Plan.from_json(json.loads((out / MANIFEST).read_text()))


def load_part(out: Path, plan: Plan, device: str) -> list[Segment]:
    """Rebuild one device's segments (GraphModules with their weights) from its file."""
    import torch

    raw = torch.load(out / plan.files[device], weights_only=False)
    return [Segment(lay, list(ins), list(outs), mod) for lay, ins, outs, mod in raw]


def load_inputs(out: Path) -> tuple[list[Any], list[Any]]:
    """The example inputs (flattened) and the monolithic outputs saved with a partition."""
    import torch

    data = torch.load(out / INPUTS, weights_only=False)
    return list(data["inputs"]), list(data["reference"])


def run_in_process(plan: Plan, parts: dict[str, list[Segment]], inputs: list[Any]) -> list[Any]:
    """Run the parts one layer at a time in ``plan.global_order``, in this process; the model outputs.

    Values crossing devices go through the wire format of :mod:`toolchain.runtime.transport`
    (serialised and rebuilt), so this also checks that every sent value survives the trip.
    """
    import torch

    from toolchain.runtime.transport import decode_values, encode_values

    envs: dict[str, dict[str, Any]] = {d: {} for d in plan.devices}
    envs[plan.source].update(zip(plan.user_inputs, inputs, strict=True))
    for dst, names in plan.input_sends.items():
        envs[dst].update(decode_values(encode_values({u: envs[plan.source][u] for u in names})))
    seg_of = {s.layer: s for segs in parts.values() for s in segs}
    with torch.no_grad():
        for lay in plan.global_order:
            dev = plan.placement[lay]
            seg = seg_of[lay]
            env = envs[dev]
            outs = seg.module(*[env[i] for i in seg.inputs])
            env.update(zip(seg.outputs, outs, strict=True))
            for dst, names in plan.sends.get(lay, {}).items():
                envs[dst].update(decode_values(encode_values({o: env[o] for o in names})))
    final = envs[plan.sink] if plan.sink is not None else {k: v for e in envs.values() for k, v in e.items()}
    return [final[o] for o in plan.outputs]


def max_abs_diff(got: list[Any], want: list[Any]) -> float:
    """Largest absolute difference between two lists of tensors (inf when shapes differ)."""
    worst = 0.0
    if len(got) != len(want):
        return float("inf")
    for a, b in zip(got, want, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            return float("inf")
        if a.numel():
            worst = max(worst, float((a.double() - b.double()).abs().max()))
    return worst
