"""The MSR device-placement workloads (JSON) to dnnpart instances, and back.

Source of the format and of the computational model: Tarnawski, Phanishayee, Devanur, Mahajan and
Nina Paravecino, "Efficient Algorithms for Device Placement of DNN Graph Operators", NeurIPS 2020
(section "Computational Model"), and the README, ``throughput-ip/ip.py`` and ``throughput-dp/dp.cpp``
of github.com/msr-fiddle/dnn-partitioning. A file holds ``maxSizePerFPGA`` (bytes), ``maxFPGAs``
(k), ``maxCPUs`` (l), ``nodes`` (``id``, ``supportedOnFpga``, ``cpuLatency``, ``fpgaLatency``,
``size`` in bytes, ``isBackwardNode``, optional ``colorClass``; other keys are debug information)
and ``edges`` (``sourceId``, ``destId``, ``cost``: the time to move the source's output between an
accelerator and CPU memory, the same on every out-edge of a node; optional ``size``).

The model (max-load, i.e. the pipelined period): k identical accelerators with a memory limit and
l CPU cores; a node runs on a CPU (``cpuLatency``) or, if supported, on an accelerator
(``fpgaLatency``); the nodes of an accelerator must fit ``maxSizePerFPGA`` (sum of ``size``); nodes
of one colour class run on one device; an accelerator's load is its compute plus ``cost(u)`` once
for every node ``u`` it holds whose output leaves it, plus ``cost(u)`` once for every outside node
``u`` with an edge into it (communication not overlapped with compute); a CPU's load is its compute
(CPUs pay no communication); optionally each device's node set is contiguous (convex).

How it maps onto the unified model, exactly (docs/msr.md):

* devices ``cpu0 .. cpu{l-1}`` (``comm_overlap: true``: busy time = compute) and ``acc0 ..
  acc{k-1}`` (``comm_overlap: false``, ``send_once: true``: busy time = compute + sending each
  tensor once + receiving each tensor once), accelerator memory ``maxSizePerFPGA``;
* a node is a layer ``n<id>`` with ``param_bytes = size``; the constraint ``memory: params`` counts
  parameters only, as the MSR knapsack rows do (CPUs have no memory limit);
* times: a latency table (``cpuLatency`` on CPUs, ``fpgaLatency`` on accelerators, converted from
  the file's time unit, milliseconds by default; ``flops`` are 0 and unused);
* communication: every channel between an accelerator and any other device has the bandwidth
  ``B`` (a power of two, default 2^31 B/s) and the node's output is ``cost(u) * B`` bytes, so its
  occupied time ``bytes / B`` is ``cost(u)`` exactly (scaling by a power of two is exact in binary
  floating point). The MSR ``size`` of an edge is not used (it is debug information there, and in
  the throughput layer graphs it is 1,000 times ``cost * B`` at 2^31 B/s, see docs/msr.md);
* channels between two CPUs get a bandwidth so large that their occupancy stays below
  ``sum_v min(cpu, fpga latency) / (k + l)``, a lower bound on the max-load of every placement, so
  the period of every placement equals its MSR max-load (an accelerator's channels are occupied at
  most as long as it sends or receives, which its load already counts);
* ``supportedOnFpga: false`` -> ``allowed`` lists the CPUs; colour classes of several nodes ->
  ``colocate``; ``contiguous`` on request.

Training workloads (``isBackwardNode``) are exact without contiguity (forward and backward loads
add up, the MSR objective without ``diffmaxima``); with ``contiguous`` they are refused, because
the MSR IP constrains only the forward subgraph to be contiguous, which dnnpart's ``contiguous``
(every layer) does not express.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formulation.errors import Described, int_digits
from formulation.model import Instance

#: Default channel bandwidth (bytes/s) of the accelerators: a power of two, so bytes / B is exact.
DEFAULT_BANDWIDTH = float(2**31)
#: Seconds per unit of the file's times (cpuLatency, fpgaLatency, cost): milliseconds.
DEFAULT_TIME_UNIT_S = 1e-3
#: The MSR tools' tolerance for "the same cost on every out-edge of a node".
COST_ATOL = 1e-6
#: Keys of a node and of an edge the importer reads (others are kept as attrs).
NODE_KEYS = ("id", "supportedOnFpga", "cpuLatency", "fpgaLatency", "isBackwardNode", "colorClass", "size")


class MsrError(ValueError):
    """A malformed MSR workload: names the file, the field, the value and what was expected."""


@dataclass(frozen=True)
class MsrNode:
    """One node as written (times in the file's unit, size in bytes)."""

    id: int
    supported_on_fpga: bool
    cpu_latency: float
    fpga_latency: float
    size: float
    is_backward: bool
    color_class: int | None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MsrWorkload:
    """A parsed MSR file."""

    name: str
    max_size_per_fpga: float
    max_fpgas: int
    max_cpus: int
    nodes: tuple[MsrNode, ...]
    edges: tuple[tuple[int, int], ...]
    out_cost: Mapping[int, float]
    """Per-node transfer cost of its output (0 for nodes without out-edges)."""


MAX_DEVICES = 1024
"""Most devices (accelerators plus CPUs) an imported instance may have: every solver's model grows
with the number of devices, and a count such as ``maxFPGAs: 10000000`` would exhaust memory."""


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond the range of a float
        return False


def _number(file: str, where: str, value: Any, integer: bool = False, flag: bool = False) -> float:
    ok = isinstance(value, bool) if flag else (isinstance(value, int | float) and not isinstance(value, bool))
    if flag and not ok and isinstance(value, int) and value in (0, 1):
        ok = True
    if not ok or (not flag and not _finite(value)):
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
            value = Described(f"an integer of {int_digits(value)} digits")
        what = "a boolean or 0/1" if flag else ("an integer" if integer else "a finite number")
        raise MsrError(f"{file}: {where}: got {value!r}; expected {what}")
    if integer and not flag and float(value) != int(value):
        raise MsrError(f"{file}: {where}: got {value!r}; expected an integer")
    return float(value)


def parse_msr(data: Any, file: str = "<msr>", name: str | None = None) -> MsrWorkload:
    """Validate MSR workload data (the decoded JSON) into a :class:`MsrWorkload`.

    Raises
    ------
    MsrError
        On a missing or malformed field, duplicate node ids, an edge to an unknown node, a self-loop,
        two different costs on the out-edges of one node (beyond the MSR tools' 1e-6), or a cycle.
    """
    if not isinstance(data, dict):
        raise MsrError(f"{file}: got {type(data).__name__}; expected a JSON object with maxSizePerFPGA, "
                       "maxFPGAs, maxCPUs, nodes, edges")
    for key in ("maxSizePerFPGA", "maxFPGAs", "maxCPUs", "nodes", "edges"):
        if key not in data:
            raise MsrError(f"{file}: {key}: missing; expected the MSR workload format (maxSizePerFPGA, maxFPGAs, "
                           "maxCPUs, nodes, edges)")
    max_size = _number(file, "maxSizePerFPGA", data["maxSizePerFPGA"])
    k = int(_number(file, "maxFPGAs", data["maxFPGAs"], integer=True))
    ell = int(_number(file, "maxCPUs", data["maxCPUs"], integer=True))
    if k < 0 or ell < 0 or k + ell == 0:
        raise MsrError(f"{file}: maxFPGAs, maxCPUs: got {k}, {ell}; expected counts >= 0, not both 0")
    if k + ell > MAX_DEVICES:
        raise MsrError(f"{file}: maxFPGAs, maxCPUs: got {k}, {ell}; expected at most {MAX_DEVICES} devices in all")
    if not isinstance(data["nodes"], list) or not data["nodes"]:
        raise MsrError(f"{file}: nodes: got {data['nodes']!r:.60}; expected a non-empty list of nodes")
    nodes: list[MsrNode] = []
    seen: set[int] = set()
    for i, raw in enumerate(data["nodes"]):
        where = f"nodes[{i}]"
        if not isinstance(raw, dict):
            raise MsrError(f"{file}: {where}: got {raw!r:.60}; expected an object")
        for key in ("id", "supportedOnFpga", "cpuLatency", "fpgaLatency", "isBackwardNode"):
            if key not in raw:
                raise MsrError(f"{file}: {where}.{key}: missing; expected it on every node")
        nid = int(_number(file, f"{where}.id", raw["id"], integer=True))
        if nid in seen:
            raise MsrError(f"{file}: {where}.id: got {nid}; expected an id not used before")
        seen.add(nid)
        times = [_number(file, f"{where}.{key}", raw[key]) for key in ("cpuLatency", "fpgaLatency")]
        size = _number(file, f"{where}.size", raw.get("size", 0.0))
        for key, val in (("cpuLatency", times[0]), ("fpgaLatency", times[1]), ("size", size)):
            if val < 0:
                raise MsrError(f"{file}: {where}.{key}: got {val!r}; expected a number >= 0")
        cc = raw.get("colorClass")
        nodes.append(
            MsrNode(
                id=nid,
                supported_on_fpga=bool(_number(file, f"{where}.supportedOnFpga", raw["supportedOnFpga"], flag=True)),
                cpu_latency=times[0],
                fpga_latency=times[1],
                size=size,
                is_backward=bool(_number(file, f"{where}.isBackwardNode", raw["isBackwardNode"], flag=True)),
                color_class=None if cc is None else int(_number(file, f"{where}.colorClass", cc, integer=True)),
                extra={key: v for key, v in raw.items() if key not in NODE_KEYS},
            )
        )
    if not isinstance(data["edges"], list):
        raise MsrError(f"{file}: edges: got {data['edges']!r:.60}; expected a list of edges")
    edges: list[tuple[int, int]] = []
    cost: dict[int, float] = {}
    for i, raw in enumerate(data["edges"]):
        where = f"edges[{i}]"
        if not isinstance(raw, dict) or any(key not in raw for key in ("sourceId", "destId", "cost")):
            raise MsrError(f"{file}: {where}: got {raw!r:.80}; expected an object with sourceId, destId, cost")
        u = int(_number(file, f"{where}.sourceId", raw["sourceId"], integer=True))
        v = int(_number(file, f"{where}.destId", raw["destId"], integer=True))
        for key, end in (("sourceId", u), ("destId", v)):
            if end not in seen:
                raise MsrError(f"{file}: {where}.{key}: got {end}; expected the id of a node")
        if u == v:
            raise MsrError(f"{file}: {where}: got the self-loop {u} -> {v}; expected an edge between two nodes")
        c = _number(file, f"{where}.cost", raw["cost"])
        if c < 0:
            raise MsrError(f"{file}: {where}.cost: got {c!r}; expected a number >= 0")
        if u in cost and abs(cost[u] - c) > COST_ATOL:
            raise MsrError(f"{file}: {where}.cost: got {c!r}; expected {cost[u]!r}, the cost of node {u}'s "
                           "other out-edges (a node's output costs the same on every out-edge)")
        cost.setdefault(u, c)
        edges.append((u, v))
    _check_acyclic(file, [nd.id for nd in nodes], edges)
    out_cost = {nd.id: cost.get(nd.id, 0.0) for nd in nodes}
    return MsrWorkload(name or Path(file).stem, max_size, k, ell, tuple(nodes), tuple(edges), out_cost)


def _check_acyclic(file: str, ids: list[int], edges: list[tuple[int, int]]) -> None:
    indeg = dict.fromkeys(ids, 0)
    succ: dict[int, list[int]] = defaultdict(list)
    for u, v in dict.fromkeys(edges):
        indeg[v] += 1
        succ[u].append(v)
    stack = [i for i in ids if indeg[i] == 0]
    seen = 0
    while stack:
        u = stack.pop()
        seen += 1
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                stack.append(v)
    if seen != len(ids):
        cyc = sorted(i for i in ids if indeg[i] > 0)[:10]
        raise MsrError(f"{file}: edges: the graph has a cycle through nodes {cyc}; expected a DAG")


def read_msr(path: str | Path) -> MsrWorkload:
    """Read and validate an MSR workload file."""
    from formulation.yamlio import read_text

    p = Path(path)
    text = read_text(p)  # a regular file within the size limit (DNNPART_MAX_FILE_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MsrError(f"{p}: line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise MsrError(f"{p}: nested too deeply; expected the MSR workload format") from None
    except ValueError as exc:  # an integer literal too long to convert
        raise MsrError(f"{p}: {str(exc)[:120]}; expected numbers within the range of a float") from None
    return parse_msr(data, str(p), p.stem)


def layer_id(node_id: int) -> str:
    """The dnnpart layer id of MSR node ``node_id``."""
    return f"n{node_id}"


def cpu_channel_bandwidth(w: MsrWorkload, k: int, ell: int, bandwidth: float) -> float:
    """Bandwidth of CPU-to-CPU channels: a power of two at least ``total bytes / LB``.

    ``LB = sum_v min(cpuLatency, fpgaLatency if supported) / (k + l)`` is a lower bound on the
    max-load of every placement (the loads add up to at least the sum of the cheapest times), so a
    CPU-to-CPU channel, carrying at most every tensor once, is never busier than the period.
    """
    cheapest = sum(min(nd.cpu_latency, nd.fpga_latency if nd.supported_on_fpga and k else math.inf) for nd in w.nodes)
    total = sum(w.out_cost.values()) * bandwidth
    if total == 0:
        return bandwidth
    if cheapest <= 0:
        raise MsrError(f"{w.name}: every node has zero latency; CPU-to-CPU transfers cannot be made free "
                       "of occupancy (use --cpus 1)")
    need = total / (cheapest / (k + ell))
    return float(2 ** math.ceil(math.log2(max(need, bandwidth))))


def msr_instance_data(
    w: MsrWorkload,
    *,
    fpgas: int | None = None,
    cpus: int | None = None,
    contiguous: bool = False,
    time_unit_s: float = DEFAULT_TIME_UNIT_S,
    bandwidth: float = DEFAULT_BANDWIDTH,
    name: str | None = None,
) -> dict[str, Any]:
    """The spec-form instance data of a workload (see the module docstring for the mapping).

    Parameters
    ----------
    fpgas, cpus : int, optional
        Override ``maxFPGAs`` / ``maxCPUs``.
    contiguous : bool
        Each device's layers must be convex (the MSR ``contig`` mode).
    time_unit_s : float
        Seconds per unit of the file's times (default: milliseconds).
    bandwidth : float
        Accelerator channel bandwidth in bytes/s; a power of two keeps transfer times exact.

    Raises
    ------
    MsrError
        For ``contiguous`` on a training workload, or counts that leave no device.
    """
    k = w.max_fpgas if fpgas is None else fpgas
    ell = w.max_cpus if cpus is None else cpus
    if k < 0 or ell < 0 or k + ell == 0:
        raise MsrError(f"{w.name}: --fpgas {k}, --cpus {ell}: expected counts >= 0, not both 0")
    if k + ell > MAX_DEVICES:
        raise MsrError(f"{w.name}: --fpgas {k}, --cpus {ell}: expected at most {MAX_DEVICES} devices in all")
    if contiguous and any(nd.is_backward for nd in w.nodes):
        raise MsrError(
            f"{w.name}: contiguous splits of a training workload (isBackwardNode) cannot be expressed exactly: the "
            "MSR IP requires only the forward nodes of each device to be contiguous, while dnnpart's contiguous "
            "constrains every layer; import it without --contiguous"
        )
    unsupported = [layer_id(nd.id) for nd in w.nodes if not nd.supported_on_fpga]
    if unsupported and ell == 0:
        raise MsrError(f"{w.name}: nodes {unsupported[:5]} are not supported on accelerators and there is no CPU")
    preds: dict[int, list[int]] = defaultdict(list)
    for u, v in w.edges:
        if u not in preds[v]:
            preds[v].append(u)
    layers = []
    for nd in w.nodes:
        attrs = {"msr_id": nd.id, "is_backward": nd.is_backward, **dict(nd.extra)}
        if nd.color_class is not None:
            attrs["color_class"] = nd.color_class
        layers.append({
            "id": layer_id(nd.id), "op": "msr_node", "inputs": [layer_id(u) for u in preds[nd.id]], "flops": 0.0,
            "param_bytes": nd.size, "output_bytes": w.out_cost[nd.id] * time_unit_s * bandwidth, "attrs": attrs,
        })
    cpu_ids = [f"cpu{i}" for i in range(ell)]
    acc_ids = [f"acc{i}" for i in range(k)]
    devices = [{"id": d, "tier": "other", "compute": 1.0} for d in cpu_ids]
    devices += [{"id": d, "tier": "other", "compute": 1.0, "memory": w.max_size_per_fpga, "comm_overlap": False,
                 "send_once": True} for d in acc_ids]
    links = [{"from": a, "to": b, "bandwidth": bandwidth} for i, a in enumerate(acc_ids) for b in acc_ids[i + 1:]]
    links += [{"from": c, "to": a, "bandwidth": bandwidth} for c in cpu_ids for a in acc_ids]
    if ell > 1:
        cpu_bw = cpu_channel_bandwidth(w, k, ell, bandwidth)
        links += [{"from": a, "to": b, "bandwidth": cpu_bw} for i, a in enumerate(cpu_ids) for b in cpu_ids[i + 1:]]
    latency: dict[str, dict[str, float]] = {}
    for d in cpu_ids:
        latency[d] = {layer_id(nd.id): nd.cpu_latency * time_unit_s for nd in w.nodes}
    for d in acc_ids:
        latency[d] = {layer_id(nd.id): nd.fpga_latency * time_unit_s for nd in w.nodes}
    classes: dict[int, list[str]] = defaultdict(list)
    for nd in w.nodes:
        if nd.color_class is not None:
            classes[nd.color_class].append(layer_id(nd.id))
    constraints: dict[str, Any] = {"memory": "params", "contiguous": contiguous}
    colocate = [group for _, group in sorted(classes.items()) if len(group) > 1]
    if colocate:
        constraints["colocate"] = colocate
    if unsupported and k:
        constraints["allowed"] = {lay: list(cpu_ids) for lay in unsupported}
    label = name or w.name
    return {
        "dnnpart": 1,
        "name": label + ("--contiguous" if contiguous else ""),
        "description": (
            f"MSR device-placement workload {w.name} (Tarnawski et al., NeurIPS 2020): {k} accelerators "
            f"({w.max_size_per_fpga:.6g} B each) and {ell} CPUs, max-load objective"
            + (", contiguous splits" if contiguous else "")
            + f". Times in units of {time_unit_s:g} s; tensor bytes = cost x {bandwidth:g} B/s."
        ),
        "model": {"name": w.name, "inputs": [], "layers": layers},
        "system": {"devices": devices, "links": links, "source": (cpu_ids or acc_ids)[0], "latency": latency},
        "problem": {"objective": "throughput", "constraints": constraints},
    }


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


class NotMsrShaped(ValueError):
    """An instance that the MSR format cannot express (names what differs)."""


def to_msr(inst: Instance, *, time_unit_s: float = DEFAULT_TIME_UNIT_S) -> dict[str, Any]:
    """The MSR workload JSON (a dict) of an instance of the MSR shape.

    The shape: CPUs (``comm_overlap: true``) that are identical to each other and accelerators
    (``comm_overlap: false``, ``send_once: true``) that are identical to each other (same times,
    memory and channel bandwidth), every accelerator channel of one bandwidth ``B``, no model input
    read by a layer, no sink, ``memory: params`` (or memory unlimited). Node ids are the layers'
    ``attrs.msr_id`` when every layer has one (imported files round-trip), else 1, 2, ... in
    topological order; ``cost = output_bytes / B`` in the file's time unit; ``colorClass`` numbers
    the colocation classes; ``supportedOnFpga`` is false for layers not allowed on accelerators.

    Raises
    ------
    NotMsrShaped
        Naming the first property that differs.
    """
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    cpus = [d for d in range(s.k) if s.comm_overlap[d]]
    accs = [d for d in range(s.k) if not s.comm_overlap[d]]
    if not all(s.send_once[a] for a in accs):
        raise NotMsrShaped("every accelerator (comm_overlap: false) must have send_once: true")
    if s.sink is not None:
        raise NotMsrShaped(f"the MSR model has no sink; the instance sends its outputs to {s.sink!r}")
    if any(g.consumers[t] and g.tensor_bytes[t] > 0 for t in range(g.n, g.n + g.m)):
        raise NotMsrShaped("the MSR model has no model inputs; some layer reads a non-empty model input")
    for group, what in ((cpus, "CPUs"), (accs, "accelerators")):
        for d in group[1:]:
            if not np.array_equal(inst.time[:, d], inst.time[:, group[0]]) or s.memory[d] != s.memory[group[0]]:
                raise NotMsrShaped(f"the {what} must be identical; {s.device_ids[d]!r} differs from "
                                   f"{s.device_ids[group[0]]!r} in times or memory")
    if any(math.isfinite(s.memory[d]) for d in cpus) and c.memory:
        raise NotMsrShaped("CPUs have no memory limit in the MSR model")
    if c.memory and c.memory_model != "params" and any(math.isfinite(s.memory[a]) for a in accs):
        raise NotMsrShaped("the MSR memory limit counts node sizes only: use memory: params")
    if c.contiguous or c.max_devices is not None or c.private or c.deadline_s is not None or c.energy_budget_j:
        raise NotMsrShaped("the MSR format holds no contiguous, max_devices, private, deadline or energy constraint "
                           "(contiguity is a mode of the MSR tools, not part of the file)")
    acc_links = {float(s.bandwidth[a, b]) for a in accs for b in range(s.k) if b != a}
    acc_links |= {float(s.bandwidth[b, a]) for a in accs for b in range(s.k) if b != a}
    if len(acc_links) > 1 or (accs and not all(s.has_link[a, b] and s.has_link[b, a]
                                               for a in accs for b in range(s.k) if b != a)):
        raise NotMsrShaped("every accelerator needs channels of one bandwidth to and from every other device")
    bandwidth = acc_links.pop() if acc_links else DEFAULT_BANDWIDTH
    ids = [lay.attrs.get("msr_id") for lay in g.layers]
    if any(not isinstance(i, int) for i in ids) or len(set(ids)) != len(ids):
        ids = list(range(1, g.n + 1))
    allowed = inst.allowed_mask if c.allowed else np.ones((g.n, s.k), dtype=bool)
    klass = _color_classes(inst)
    nodes = []
    for v, lay in enumerate(g.layers):
        if cpus and not allowed[v, cpus].all():
            raise NotMsrShaped(f"layer {lay.id!r} may not run on every CPU")
        if accs and allowed[v, accs].any() and not allowed[v, accs].all():
            raise NotMsrShaped(f"layer {lay.id!r} may run on some accelerators only")
        node: dict[str, Any] = {"name": str(lay.attrs.get("name", lay.id)), "id": ids[v]}
        node["supportedOnFpga"] = int(bool(accs) and bool(allowed[v, accs].all()))
        node["cpuLatency"] = float(inst.time[v, cpus[0]]) / time_unit_s if cpus else 0.0
        node["fpgaLatency"] = float(inst.time[v, accs[0]]) / time_unit_s if accs else 0.0
        node["isBackwardNode"] = int(bool(lay.attrs.get("is_backward", False)))
        node["colorClass"] = klass[v]
        node["size"] = float(lay.param_bytes)
        nodes.append(node)
    edges = [
        {"sourceId": ids[u], "destId": ids[v], "cost": float(g.output_bytes[u]) / bandwidth / time_unit_s,
         "size": float(g.output_bytes[u])}
        for u, v in g.edges
    ]
    max_size = float(s.memory[accs[0]]) if accs and math.isfinite(s.memory[accs[0]]) and c.memory else float(
        g.param_bytes.sum())
    return {"maxSizePerFPGA": max_size, "maxFPGAs": len(accs), "maxCPUs": len(cpus), "nodes": nodes, "edges": edges}


def _color_classes(inst: Instance) -> list[int]:
    """``colorClass`` of every layer: the imported ``attrs.color_class`` when those induce exactly the
    colocation classes (a round trip keeps the file's numbers), else classes numbered 1, 2, ..."""
    g = inst.graph
    given = [lay.attrs.get("color_class") for lay in g.layers]
    members: dict[Any, list[int]] = defaultdict(list)
    for v, cc in enumerate(given):
        members[cc].append(v)
    wanted = sorted(sorted(int(v) for v in cls) for cls in inst.colocate_classes)
    if all(isinstance(cc, int) for cc in given) and sorted(m for m in members.values() if len(m) > 1) == wanted:
        return [int(cc) for cc in given]  # type: ignore[arg-type]
    out = list(range(len(wanted) + 1, len(wanted) + 1 + g.n))
    for j, cls in enumerate(wanted):
        for v in cls:
            out[v] = j + 1
    return out


def _flow(value: Any) -> str:
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def instance_yaml(data: Mapping[str, Any], header: list[str]) -> str:
    """Instance data as YAML text: one flow-style line per layer, device, link and latency row."""
    m, sysd, prob = data["model"], data["system"], data["problem"]
    lines = [f"# {h}" for h in header]
    lines += [f"dnnpart: {data['dnnpart']}", f"name: {_flow(data['name'])}"]
    if data.get("description"):
        lines.append(f"description: {_flow(data['description'])}")
    lines += ["model:", f"  name: {_flow(m['name'])}", f"  inputs: {_flow(m['inputs'])}", "  layers:"]
    lines += [f"    - {_flow(lay)}" for lay in m["layers"]]
    lines += ["system:", "  devices:"] + [f"    - {_flow(d)}" for d in sysd["devices"]]
    lines += ["  links:"] + [f"    - {_flow(lk)}" for lk in sysd["links"]] if sysd["links"] else ["  links: []"]
    lines.append(f"  source: {_flow(sysd['source'])}")
    lines += ["  latency:"] + [f"    {dev}: {_flow(row)}" for dev, row in sysd["latency"].items()]
    lines += ["problem:", f"  objective: {_flow(prob['objective'])}", "  constraints:"]
    lines += [f"    {key}: {_flow(val)}" for key, val in prob["constraints"].items()]
    return "\n".join(lines) + "\n"
