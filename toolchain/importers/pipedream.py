"""PipeDream per-layer profiles (``graph.txt``) to a dnnpart model section and a latency table.

Source of the format: PipeDream (Narayanan, Harlap, Phanishayee, Seshadri, Devanur, Ganger,
Gibbons and Zaharia, "PipeDream: Generalized Pipeline Parallelism for DNN Training", SOSP 2019),
``profiler/*/profiles/*/graph.txt`` of github.com/msr-fiddle/pipedream. A file lists the nodes,
one a line (broken here)::

    node2 -- Conv2d(3, 64, kernel_size=(11, 11), stride=(4, 4), padding=(2, 2)) -- forward_compute_time=22.316,
        backward_compute_time=6.405, activation_size=198246400.000, parameter_size=93184.000

then the edges, one a tab-indented line ``nodeA -- nodeB``. ``activation_size`` is a list
``[a; b; c]`` for a node returning a tuple (an LSTM's output and states).

How the profile maps to the model (docs/pipedream.md):

* A node whose description is ``Input`` or ``Input<k>`` is a **model input** (its
  ``activation_size`` is the input tensor; its "forward time" is the data loader's and is
  dropped). Every other node is a layer with the node's id (``node2``); the description is kept
  in ``attrs.description``, and ``op`` is the class name in the importers' vocabulary
  (``Conv2d`` -> ``conv2d``).
* ``output_bytes`` = the activation size (the sum of the list for a tuple), ``param_bytes`` =
  ``parameter_size``. Both are for the **profiled mini-batch**, as are the times.
* The times are a **latency table** for one named device (default ``profiled``):
  ``forward_compute_time`` milliseconds -> seconds. ``backward_compute_time`` is kept in
  ``attrs.backward_time_s`` (dnnpart models inference).
* ``flops`` are derived from the description and the output size, with the formulas of
  :mod:`toolchain.importers.flops` (a multiply-add is 2 FLOP; activations are float32, as
  PipeDream profiled them, so elements = bytes / 4): convolutions, linear layers, LSTMs, batch
  norm, pools, elementwise operators. A wrapper module with exactly one inner module (GNMT's
  ``Classifier``) takes the inner module's formula. Other operators count 1 FLOP per output
  element and are reported as unknown (``attrs.flops_by: unknown``).
* Model **outputs** are the nodes nothing consumes, except dead ends that only select or measure
  (``__getitem__``, ``Size``, ``hidden``): GNMT's unused LSTM states are not outputs.
* The **batch size** is inferred only where the file determines it: a classifier head (a
  ``Linear(..., out_features=F)`` or ``View(F)`` that nothing consumes) whose output holds
  ``B * F`` float32 values, the same ``B`` for every such head and dividing the input's bytes.
  Otherwise it is reported as unknown, never guessed. ``per_sample=True`` divides bytes, FLOPs
  and times by it; dividing bytes and FLOPs is exact, dividing times gives the mean time per
  sample *within the profiled batch*, not a batch-1 latency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.importers.flops import PER_ELEMENT

#: Bytes per activation element: PipeDream profiled float32 PyTorch models.
FLOAT32_BYTES = 4
#: Description prefixes of model inputs.
INPUT_PREFIX = "Input"
#: Nodes that only select from a tuple, measure a shape, or stand for an empty state: never outputs.
DEAD_END_OPS = frozenset({"getitem", "size", "hidden"})

#: PipeDream (PyTorch module or function) class name -> the importers' operator vocabulary.
OPS: dict[str, str] = {
    "Conv2d": "conv2d", "Linear": "linear", "ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid",
    "Tanh": "tanh", "MaxPool2d": "max_pool2d", "AvgPool2d": "avg_pool2d", "BatchNorm2d": "batch_norm",
    "Dropout": "dropout", "View": "view", "Size": "size", "Add": "add", "Mul": "mul", "Concat": "cat",
    "__getitem__": "getitem", "Embedding": "embedding", "LSTM": "lstm", "hidden": "hidden",
    "Softmax": "softmax", "LogSoftmax": "log_softmax", "AdaptiveAvgPool2d": "adaptive_avg_pool2d",
}
#: Operators that move or select data: 0 FLOP (costed by the bytes they produce).
ZERO_FLOP_OPS = frozenset({"dropout", "view", "size", "cat", "getitem", "embedding", "hidden"})

_NODE = re.compile(
    r"^(?P<id>\S+) -- (?P<desc>.*) -- forward_compute_time=(?P<fwd>[^,]+), backward_compute_time=(?P<bwd>[^,]+), "
    r"activation_size=(?P<act>\[[^\]]*\]|[^,]+), parameter_size=(?P<par>\S+)\s*$"
)
_EDGE = re.compile(r"^\t(?P<a>\S+) -- (?P<b>\S+)\s*$")


class ProfileError(ValueError):
    """A malformed profile: names the file, the line and what was expected."""


@dataclass(frozen=True)
class ProfileNode:
    """One node of a PipeDream profile, as written (milliseconds and bytes for the mini-batch)."""

    id: str
    description: str
    forward_ms: float
    backward_ms: float
    activation_bytes: tuple[float, ...]
    parameter_bytes: float

    @property
    def class_name(self) -> str:
        """The module or function class: the description up to its first ``(``."""
        return self.description.split("(", 1)[0].strip()

    @property
    def is_input(self) -> bool:
        """``Input`` or ``Input<k>``: a model input, not a layer."""
        name = self.class_name
        return name == INPUT_PREFIX or (name.startswith(INPUT_PREFIX) and name[len(INPUT_PREFIX):].isdigit())

    @property
    def op(self) -> str:
        """Canonical operator name (unknown classes: lower case of the class name)."""
        return OPS.get(self.class_name, self.class_name.lower())

    @property
    def output_bytes(self) -> float:
        """Bytes of everything the node returns (all elements of a tuple)."""
        return float(sum(self.activation_bytes))


@dataclass(frozen=True)
class Profile:
    """A parsed ``graph.txt``: nodes in file order and edges ``(producer, consumer)``."""

    nodes: tuple[ProfileNode, ...]
    edges: tuple[tuple[str, str], ...]


@dataclass
class PipeDreamImport:
    """The result of :func:`from_pipedream`.

    Attributes
    ----------
    model : dict
        The model section (spec form, SI numbers), layers in file order.
    latency : dict
        ``{device: {layer: seconds}}``: the forward times, for a system file's ``latency:``.
    batch_size : int or None
        Samples in the profiled mini-batch when the file determines it, else None.
    batch_evidence : str
        How the batch size was inferred (or why not).
    per_sample : bool
        Whether bytes, FLOPs and times were divided by the batch size.
    unknown_ops : set of str
        Operators whose FLOPs were counted at 1 per output element.
    dropped_input_ms : dict
        The "forward time" of each model input node (the data loader's), not used.
    """

    model: dict[str, Any]
    latency: dict[str, dict[str, float]]
    batch_size: int | None
    batch_evidence: str
    per_sample: bool
    unknown_ops: set[str] = field(default_factory=set)
    dropped_input_ms: dict[str, float] = field(default_factory=dict)


def _number(text: str, where: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProfileError(f"{where}: {key}={text!r}: expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise ProfileError(f"{where}: {key}={text!r}: expected a finite number >= 0")
    return value


def parse_profile(text: str, file: str = "<text>") -> Profile:
    """Parse the text of a PipeDream ``graph.txt``.

    Raises
    ------
    ProfileError
        On a line that is neither a node nor an edge, a bad number, a duplicate node, an edge to
        an unknown node, or a file without nodes.
    """
    nodes: list[ProfileNode] = []
    edges: list[tuple[str, str]] = []
    seen: set[str] = set()
    # The last edge line of PipeDream's files has no newline and may run into the next file's
    # first node when files are concatenated; each line is therefore parsed on its own.
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file}:{no}"
        if line.startswith("\t"):
            m = _EDGE.match(line)
            if m is None:
                raise ProfileError(f"{where}: {line.strip()[:80]!r}: expected an edge 'nodeA -- nodeB'")
            edges.append((m["a"], m["b"]))
            continue
        m = _NODE.match(line)
        if m is None:
            raise ProfileError(
                f"{where}: {line[:80]!r}: expected 'ID -- DESCRIPTION -- forward_compute_time=MS, "
                "backward_compute_time=MS, activation_size=BYTES, parameter_size=BYTES'"
            )
        if m["id"] in seen:
            raise ProfileError(f"{where}: node {m['id']!r} is defined twice")
        seen.add(m["id"])
        act = m["act"].strip()
        parts = act[1:-1].split(";") if act.startswith("[") else [act]
        nodes.append(ProfileNode(
            m["id"], m["desc"].strip(), _number(m["fwd"], where, "forward_compute_time"),
            _number(m["bwd"], where, "backward_compute_time"),
            tuple(_number(p.strip(), where, "activation_size") for p in parts),
            _number(m["par"], where, "parameter_size"),
        ))
    if not nodes:
        raise ProfileError(f"{file}: no nodes (expected lines 'ID -- DESCRIPTION -- forward_compute_time=...')")
    for a, b in edges:
        for end in (a, b):
            if end not in seen:
                raise ProfileError(f"{file}: edge {a} -- {b}: node {end!r} is not defined")
    return Profile(tuple(nodes), tuple(dict.fromkeys(edges)))


# -- FLOPs ------------------------------------------------------------------------------------------


def _ints(text: str, key: str) -> tuple[int, ...] | None:
    """``kernel_size=(3, 3)`` or ``kernel_size=3`` in a description -> ``(3, 3)`` / ``(3,)``."""
    m = re.search(rf"\b{key}=(\((?P<tup>[\d,\s]+)\)|(?P<one>\d+))", text)
    if m is None:
        return None
    if m["tup"] is not None:
        return tuple(int(x) for x in m["tup"].split(",") if x.strip())
    return (int(m["one"]),)


def _positional(text: str) -> list[str]:
    """The positional arguments of ``Class(a, b, key=...)``: ``['a', 'b']``."""
    inner = text.split("(", 1)[1].rsplit(")", 1)[0] if "(" in text else ""
    return [p.strip() for p in inner.split(",") if p.strip() and "=" not in p and "(" not in p]


def _inner_modules(description: str) -> list[str]:
    """Descriptions of the modules nested in a wrapper, ``Outer(  (name): Inner(...) ...)``."""
    return [m.group(1) for m in re.finditer(r"\(\w+\): (\w+\([^()]*(?:\([^()]*\)[^()]*)*\))", description)]


def node_flops(desc: str, op: str, out_elems: float, first_out_elems: float) -> tuple[float, str]:
    """FLOP of one node from its description and output size, and how they were counted.

    ``out_elems`` counts every output element; ``first_out_elems`` those of the first element of
    a tuple output (an LSTM's output sequence). Returns ``(flops, "analytic" | "none" | "unknown")``.
    """
    if op in ZERO_FLOP_OPS:
        return 0.0, "none"
    if op == "conv2d":
        pos, kernel, groups = _positional(desc), _ints(desc, "kernel_size"), _ints(desc, "groups")
        if len(pos) >= 2 and kernel:
            kh, kw = (kernel[0], kernel[-1])
            c_in, g = int(pos[0]), (groups[0] if groups else 1)
            return 2.0 * out_elems * (c_in / g) * kh * kw, "analytic"
    if op == "linear":
        m = re.search(r"in_features=(\d+)", desc)
        if m:
            return 2.0 * out_elems * int(m.group(1)), "analytic"
    if op in ("max_pool2d", "avg_pool2d"):
        kernel = _ints(desc, "kernel_size")
        if kernel:
            return out_elems * kernel[0] * kernel[-1], "analytic"
    if op == "lstm":
        pos = _positional(desc)
        if len(pos) >= 2:
            # Per step and direction: the four gates' two matrix products, 2 * 4H * (in + H) FLOP,
            # and 9H elementwise (3 sigmoids, 2 tanh, 3 products, 1 sum); steps * batch from the output.
            d_in, h = int(pos[0]), int(pos[1])
            dirs = 2 if "bidirectional=True" in desc else 1
            layers = (_ints(desc, "num_layers") or (1,))[0]
            steps = first_out_elems / (h * dirs)
            per_step = sum(8.0 * h * ((d_in if i == 0 else h * dirs) + h) + 9.0 * h for i in range(layers))
            return steps * dirs * per_step, "analytic"
    if op in PER_ELEMENT:
        return float(PER_ELEMENT[op]) * out_elems, "analytic"
    inner = _inner_modules(desc)
    if len(inner) == 1:
        cls = inner[0].split("(", 1)[0]
        return node_flops(inner[0], OPS.get(cls, cls.lower()), out_elems, first_out_elems)
    return out_elems, "unknown"


# -- Conversion -------------------------------------------------------------------------------------


def infer_batch_size(profile: Profile) -> tuple[int | None, str]:
    """The mini-batch size when a classifier head determines it (see the module docstring)."""
    consumed = {a for a, _ in profile.edges}
    inputs = [nd for nd in profile.nodes if nd.is_input]
    found: dict[str, int] = {}
    for nd in profile.nodes:
        if nd.id in consumed or nd.is_input:
            continue
        width: int | None = None
        if nd.op == "linear":
            m = re.search(r"out_features=(\d+)", nd.description)
            width = int(m.group(1)) if m else None
        elif nd.op == "view":
            pos = _positional(nd.description)
            width = int(pos[0]) if len(pos) == 1 and pos[0].isdigit() else None
        if width:
            elems = nd.output_bytes / FLOAT32_BYTES
            if elems % width == 0:
                found[nd.id] = int(elems // width)
    if not found:
        return None, "not inferable: no Linear or View(F) classifier head that nothing consumes"
    values = set(found.values())
    if len(values) != 1:
        return None, f"not inferable: the classifier heads disagree ({found})"
    b = values.pop()
    in_bytes = sum(nd.output_bytes for nd in inputs)
    if b < 1 or (in_bytes and in_bytes % b):
        return None, f"not inferable: heads give {b}, which does not divide the input's {in_bytes:.0f} bytes"
    heads = ", ".join(f"{k} ({profile_node(profile, k).description.split('(')[0]})" for k in found)
    per = f"; input {in_bytes / b:.0f} bytes per sample" if in_bytes else ""
    return b, f"classifier head {heads}: output elements / width = {b}{per}"


def _clean(x: float) -> float | int:
    """An integral value as an int, others to 12 significant digits (no ``0.47099999999999996``)."""
    return int(x) if float(x).is_integer() else float(f"{x:.12g}")


def _natural(node_id: str) -> tuple[str, int]:
    """Sort key: ``node9`` before ``node10``."""
    m = re.fullmatch(r"(.*?)(\d+)", node_id)
    return (m.group(1), int(m.group(2))) if m else (node_id, -1)


def profile_node(profile: Profile, node_id: str) -> ProfileNode:
    """The node named ``node_id``."""
    return next(nd for nd in profile.nodes if nd.id == node_id)


def convert(
    profile: Profile, name: str, device: str = "profiled", per_sample: bool = False, file: str = "<profile>"
) -> PipeDreamImport:
    """Turn a parsed profile into a model section and a latency table (see the module docstring).

    Raises
    ------
    ProfileError
        If ``per_sample`` is asked for and the batch size cannot be inferred, or the graph has a cycle.
    """
    batch, evidence = infer_batch_size(profile)
    if per_sample and batch is None:
        raise ProfileError(f"{file}: --per-sample needs the batch size, which is {evidence}")
    scale = float(batch) if per_sample and batch else 1.0
    preds: dict[str, list[str]] = {nd.id: [] for nd in profile.nodes}
    consumed: set[str] = set()
    for a, b in profile.edges:
        preds[b].append(a)
        consumed.add(a)
    inputs = [nd for nd in profile.nodes if nd.is_input]
    layers: list[dict[str, Any]] = []
    latency: dict[str, float] = {}
    unknown: set[str] = set()
    for nd in sorted(profile.nodes, key=lambda nd: _natural(nd.id)):
        if nd.is_input:
            continue
        elems = nd.output_bytes / FLOAT32_BYTES
        flops, by = node_flops(nd.description, nd.op, elems, nd.activation_bytes[0] / FLOAT32_BYTES)
        op, inner = nd.op, _inner_modules(nd.description)
        if nd.class_name not in OPS and len(inner) == 1:
            # A wrapper of one module (GNMT's Classifier around a Linear) is that module.
            cls = inner[0].split("(", 1)[0]
            op = OPS.get(cls, cls.lower())
        if by == "unknown":
            unknown.add(nd.class_name)
        attrs: dict[str, Any] = {
            "description": nd.description,
            "backward_time_s": _clean(nd.backward_ms / 1e3 / scale),
            "flops_by": by,
            "param_count": int(nd.parameter_bytes // FLOAT32_BYTES),
        }
        if len(nd.activation_bytes) > 1:
            attrs["activation_bytes"] = [_clean(b / scale) for b in nd.activation_bytes]
        layers.append({
            "id": nd.id, "op": op, "inputs": preds[nd.id], "flops": _clean(flops / scale),
            "param_bytes": _clean(nd.parameter_bytes), "output_bytes": _clean(nd.output_bytes / scale), "attrs": attrs,
        })
        latency[nd.id] = _clean(nd.forward_ms / 1e3 / scale)
    outputs = [lay["id"] for lay in layers if lay["id"] not in consumed and lay["op"] not in DEAD_END_OPS]
    model: dict[str, Any] = {
        "name": name,
        "inputs": [{"id": nd.id, "bytes": _clean(nd.output_bytes / scale)} for nd in inputs],
        "layers": layers,
    }
    if outputs:
        model["outputs"] = outputs
    _check_acyclic(model, file)
    return PipeDreamImport(
        model, {device: latency}, batch, evidence, per_sample, unknown, {nd.id: nd.forward_ms for nd in inputs}
    )


def _check_acyclic(model: Mapping[str, Any], file: str) -> None:
    from toolchain.importers.common import to_graph

    try:
        to_graph(model)
    except ValueError as exc:
        raise ProfileError(f"{file}: {exc}") from None


def from_pipedream(
    path: str | Path, device: str = "profiled", name: str | None = None, per_sample: bool = False
) -> PipeDreamImport:
    """Import a PipeDream ``graph.txt`` profile.

    Parameters
    ----------
    path : str or Path
        The profile file.
    device : str
        Device id of the latency table (the GPU the profile was taken on).
    name : str, optional
        Model name; default the file name without ``.graph.txt`` / ``.txt``.
    per_sample : bool
        Divide bytes, FLOPs and times by the inferred batch size (an error when it is unknown).

    Returns
    -------
    PipeDreamImport

    Raises
    ------
    ProfileError
        On a malformed file (with file and line).
    InstanceError
        If the file cannot be read, is not a regular file, is too large or is not UTF-8.
    """
    from formulation.yamlio import read_text

    p = Path(path)
    text = read_text(p)  # a regular UTF-8 file within DNNPART_MAX_FILE_BYTES
    default = p.name.removesuffix(".txt").removesuffix(".graph") or p.stem
    return convert(parse_profile(text, str(p)), name or default, device, per_sample, str(p))


def header_lines(result: PipeDreamImport, source: str) -> list[str]:
    """Comment lines describing an import (for the written model and latency files)."""
    unit = "one sample (per-sample values)" if result.per_sample else "the profiled mini-batch"
    lines = [
        f"Imported by `dnnpart import pipedream {source}` (PipeDream profile, Narayanan et al., SOSP 2019).",
        f"Bytes, FLOPs and times are for {unit}; batch size: "
        + (f"{result.batch_size} ({result.batch_evidence})." if result.batch_size else f"{result.batch_evidence}."),
        "FLOPs derived from each description and output size (float32); forward times are the latency table of "
        f"device {next(iter(result.latency))!r}.",
    ]
    if result.unknown_ops:
        lines.append(f"Operators counted at 1 FLOP per output element (unknown): {sorted(result.unknown_ops)}")
    return lines
