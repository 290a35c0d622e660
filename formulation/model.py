"""Immutable model objects: the DNN graph, the system of devices and links, the problem, the instance.

Everything here is in SI base units (s, bytes, FLOP, FLOP/s, bytes/s, W, J, USD); unit strings exist
only in instance files and are converted by :mod:`formulation.loader`.

Index conventions shared by every solver:

* layers are numbered ``0 .. n-1`` in a deterministic topological order (Kahn's algorithm, ties
  broken by the order of the file);
* tensors are numbered ``0 .. n+m-1``: tensor ``i < n`` is the output of layer ``i``, tensor
  ``n + j`` is model input ``j`` (which exists on the system's ``source`` at time 0);
* devices are numbered ``0 .. D-1`` in file order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
import numpy as np
import numpy.typing as npt

# The array helpers and the system's classes live in their own modules; they are named here too, so
# ``from formulation.model import System`` (and the rest) keeps working.
from formulation.arrays import BoolArray as BoolArray
from formulation.arrays import FloatArray as FloatArray
from formulation.arrays import IntArray as IntArray
from formulation.arrays import _frozen as _frozen
from formulation.arrays import _mappingproxy as _mappingproxy
from formulation.system import DEVICE_FEATURES as DEVICE_FEATURES
from formulation.system import TIERS as TIERS
from formulation.system import Device as Device
from formulation.system import Link as Link
from formulation.system import System as System

if TYPE_CHECKING:
    from formulation.choices import Choices
    from formulation.scenarios import ScenarioSet
    from formulation.workload import Workload

OBJECTIVES = ("latency", "throughput", "energy", "cost")
"""Names of the plain objectives; ``weighted`` combines them."""
EXECUTIONS = ("sequential", "parallel")
CONSTRAINT_KINDS = (
    "memory",
    "deadline",
    "energy_budget",
    "allowed",
    "private",
    "contiguous",
    "max_devices",
    "colocate",
    "memory_params",
    "pipeline",
)
"""Constraint kinds as solvers declare them. ``memory_params`` is the memory constraint under the
weights-only memory model (``constraints.memory: params``); ``memory`` is the default
params-plus-peak model. An instance activates at most one of the two."""
MEMORY_MODELS = ("peak", "params")
"""``peak``: params plus the peak working set (docs/instance-format.md §5.9); ``params``: parameters only."""


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInput:
    """A tensor that exists on the source device before any layer runs."""

    id: str
    bytes: float


@dataclass(frozen=True)
class Shardable:
    """A layer that may be split over a group of devices by tensor parallelism
    (docs/instance-format.md §2.6; cost model in :mod:`formulation.sharding`).

    Attributes
    ----------
    max_degree : int
        Largest group size ``g`` (>= 2); every ``g`` in ``2..max_degree`` may be chosen.
    comm : {"allreduce", "allgather"}
        The collective that completes the layer on its group (Megatron-LM: a row-parallel layer
        ends with an all-reduce of partial sums, a column-parallel one with an all-gather).
    comm_bytes : float or None
        Bytes of the tensor the collective combines; ``None``: the layer's ``output_bytes``.
    """

    max_degree: int
    comm: Literal["allreduce", "allgather"] = "allreduce"
    comm_bytes: float | None = None


@dataclass(frozen=True)
class Layer:
    """One node of the DNN graph.

    Attributes
    ----------
    id, op : str
        Unique identifier and free-text operator name.
    inputs : tuple of str
        Ids of the model inputs or layers whose output this layer reads (duplicates removed).
    flops : float
        FLOP for one inference.
    param_bytes, output_bytes, workspace_bytes : float
        Weights resident on the executing device, the output tensor, and transient extra memory.
    attrs : Mapping
        Free metadata kept from the file (e.g. shapes, module path); never used by the cost model.
    """

    id: str
    op: str
    inputs: tuple[str, ...]
    flops: float
    output_bytes: float
    param_bytes: float = 0.0
    workspace_bytes: float = 0.0
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    shardable: Shardable | None = None
    """Tensor parallelism the solver may choose for this layer (None: placed whole)."""


class Graph:
    """An immutable DAG of layers with array views for fast solvers.

    Parameters
    ----------
    name : str
        Model name.
    inputs : sequence of ModelInput
        Model inputs.
    layers : sequence of Layer
        Layers in any order; they are stored in a deterministic topological order.
    outputs : sequence of str, optional
        Ids of output layers; default: layers that no layer consumes.

    Raises
    ------
    ValueError
        If an id is duplicated or unknown, or the graph has a cycle. The loader checks all of this
        first with file-level messages; this is the last line of defence for programmatic use.
    """

    def __init__(
        self,
        name: str,
        inputs: Sequence[ModelInput],
        layers: Sequence[Layer],
        outputs: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.inputs: tuple[ModelInput, ...] = tuple(inputs)
        ids = [t.id for t in self.inputs] + [lay.id for lay in layers]
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                raise ValueError(f"duplicate id {i!r}")
            seen.add(i)
        known = set(ids)
        for lay in layers:
            for u in lay.inputs:
                if u not in known:
                    raise ValueError(f"layer {lay.id!r} reads unknown tensor {u!r}")
        order = _topological_order(layers)
        self.layers: tuple[Layer, ...] = tuple(layers[i] for i in order)
        self.layer_ids: tuple[str, ...] = tuple(lay.id for lay in self.layers)
        self.input_ids: tuple[str, ...] = tuple(t.id for t in self.inputs)
        self.n = len(self.layers)
        self.m = len(self.inputs)
        self.layer_index: Mapping[str, int] = MappingProxyType({v: i for i, v in enumerate(self.layer_ids)})
        self.tensor_ids: tuple[str, ...] = self.layer_ids + self.input_ids
        self.tensor_index: Mapping[str, int] = MappingProxyType({v: i for i, v in enumerate(self.tensor_ids)})

        self.flops: FloatArray = _frozen([lay.flops for lay in self.layers])
        self.param_bytes: FloatArray = _frozen([lay.param_bytes for lay in self.layers])
        self.output_bytes: FloatArray = _frozen([lay.output_bytes for lay in self.layers])
        self.workspace_bytes: FloatArray = _frozen([lay.workspace_bytes for lay in self.layers])
        self.tensor_bytes: FloatArray = _frozen(
            [lay.output_bytes for lay in self.layers] + [t.bytes for t in self.inputs]
        )
        self.layer_inputs: tuple[tuple[int, ...], ...] = tuple(
            tuple(dict.fromkeys(self.tensor_index[u] for u in lay.inputs)) for lay in self.layers
        )
        consumers: list[list[int]] = [[] for _ in self.tensor_ids]
        for vi, ins in enumerate(self.layer_inputs):
            for ti in ins:
                consumers[ti].append(vi)
        self.consumers: tuple[tuple[int, ...], ...] = tuple(tuple(c) for c in consumers)
        self.preds: tuple[tuple[int, ...], ...] = tuple(
            tuple(t for t in ins if t < self.n) for ins in self.layer_inputs
        )
        self.succs: tuple[tuple[int, ...], ...] = self.consumers[: self.n]
        if outputs is None:
            out = [i for i in range(self.n) if not self.succs[i]]
        else:
            out = []
            for o in outputs:
                if o not in self.layer_index:
                    raise ValueError(f"output {o!r} is not a layer")
                out.append(self.layer_index[o])
        self.outputs: tuple[int, ...] = tuple(dict.fromkeys(out))
        out_set = set(self.outputs)
        self.is_output: BoolArray = _frozen([i in out_set for i in range(self.n)], bool)
        # Bytes a layer reads (distinct input tensors): used by the roofline time and memory peak.
        self.input_bytes_of_layer: FloatArray = _frozen(
            [sum(self.tensor_bytes[t] for t in ins) for ins in self.layer_inputs]
        )

    # -- structure ----------------------------------------------------------------------------
    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Layer-to-layer edges ``(u, v)`` in index space."""
        return tuple((u, v) for v in range(self.n) for u in self.preds[v])

    @cached_property
    def is_chain(self) -> bool:
        """True when the layers form one path ``0 -> 1 -> ... -> n-1`` (inputs may feed any layer).

        A chain here is a graph whose every layer ``i > 0`` reads layer ``i-1`` and no other layer.
        Model inputs may be read by any layer (they live on the source).
        """
        return all(self.preds[i] == ((i - 1,) if i else ()) for i in range(self.n))

    @cached_property
    def nx(self) -> nx.DiGraph:
        """A networkx view over layer ids (nodes carry the Layer as ``layer``)."""
        g = nx.DiGraph()
        for lay in self.layers:
            g.add_node(lay.id, layer=lay)
        for u, v in self.edges:
            g.add_edge(self.layer_ids[u], self.layer_ids[v], bytes=float(self.output_bytes[u]))
        return g

    @cached_property
    def ancestors(self) -> BoolArray:
        """``A[u, v]`` is True when there is a path of one or more edges from layer u to layer v."""
        a = np.zeros((self.n, self.n), dtype=bool)
        for v in range(self.n):
            for u in self.preds[v]:
                a[u, v] = True
                a[:, v] |= a[:, u]
        a.setflags(write=False)
        return a

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {self.n} layers, {self.m} inputs)"


def _topological_order(layers: Sequence[Layer]) -> list[int]:
    """Kahn's algorithm with ties broken by position in ``layers`` (deterministic)."""
    import heapq

    pos = {lay.id: i for i, lay in enumerate(layers)}
    indeg = [0] * len(layers)
    out: list[list[int]] = [[] for _ in layers]
    for i, lay in enumerate(layers):
        for u in dict.fromkeys(lay.inputs):
            if u in pos:
                indeg[i] += 1
                out[pos[u]].append(i)
    heap = [i for i, d in enumerate(indeg) if d == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for j in out[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                heapq.heappush(heap, j)
    if len(order) != len(layers):
        cyc = [layers[i].id for i, d in enumerate(indeg) if d > 0]
        raise ValueError(f"the graph has a cycle through {cyc}")
    return order


# --------------------------------------------------------------------------------------------------
# Problem
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    """``kind`` is one of latency, throughput, energy, cost, weighted; ``weights`` for weighted."""

    kind: Literal["latency", "throughput", "energy", "cost", "weighted"] = "latency"
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        """Validated when built, by every path (files, the Python API, generators): a known kind;
        weights only for ``weighted``, there a non-empty mapping over the metric names with numeric
        weights, at least one of them > 0 (docs/instance-format.md §4.3). Raises ``ValueError``.
        The range of the weights is the engines' concern (:mod:`formulation.numerics`), and their
        sign the concern of the builders that need weights >= 0 (:meth:`negative_weights`)."""
        if self.kind not in (*OBJECTIVES, "weighted"):
            raise ValueError(f"objective kind {self.kind!r}: expected one of {', '.join(OBJECTIVES)} or weighted")
        if self.kind != "weighted":
            if self.weights:
                raise ValueError(f"objective {self.kind!r} takes no weights (got {dict(self.weights)})")
            return
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise ValueError(f"weighted objective: expected a non-empty {{metric: weight}}, got {self.weights!r}")
        for name, w in self.weights.items():
            if name not in OBJECTIVES:
                raise ValueError(f"weighted objective: {name!r} is not a metric (one of {', '.join(OBJECTIVES)})")
            if isinstance(w, bool) or not isinstance(w, int | float | np.floating | np.integer):
                raise ValueError(f"weighted objective: weight of {name!r} is {w!r}; expected a number")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError(f"weighted objective {dict(self.weights)}: expected at least one weight > 0")

    def negative_weights(self) -> dict[str, float]:
        """The terms with a negative weight (builders that bound metrics from below refuse them)."""
        return {m: w for m, w in self.terms().items() if w < 0}

    def terms(self) -> dict[str, float]:
        """The objective as ``{metric: weight}`` (a plain objective is one term of weight 1)."""
        if self.kind == "weighted":
            return dict(self.weights)
        return {self.kind: 1.0}

    def __str__(self) -> str:
        if self.kind != "weighted":
            return self.kind
        return "weighted(" + ", ".join(f"{k}={w:g}" for k, w in self.weights.items()) + ")"


@dataclass(frozen=True)
class Constraints:
    """Constraint set of docs/instance-format.md §4.4 (device and layer names, SI values)."""

    memory: bool = True
    deadline_s: float | None = None
    energy_budget_j: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    allowed: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    private: tuple[str, ...] = ()
    contiguous: bool = False
    max_devices: int | None = None
    colocate: tuple[tuple[str, ...], ...] = ()
    """Groups of layers that must run on one device (each group on a single device)."""
    pipeline: bool = False
    """The devices' layer sets are the stages of a pipeline: the devices can be ordered so that every
    edge between two devices goes forward (``formulation.evaluator.pipeline_order``)."""
    memory_model: Literal["peak", "params"] = "peak"
    """What counts against a device's memory: ``peak`` (docs/instance-format.md §5.9: parameters plus the peak
    working set) or ``params`` (parameters only, e.g. weights-resident accelerators whose
    activations stream through host memory)."""


@dataclass(frozen=True)
class Problem:
    """Objective, execution mode, energy scope and constraints."""

    objective: Objective = field(default_factory=Objective)
    execution: Literal["sequential", "parallel"] = "sequential"
    energy_scope: tuple[str, ...] | None = None
    """Devices whose energy counts; ``None`` means all."""
    constraints: Constraints = field(default_factory=Constraints)
    scenarios: ScenarioSet | None = None
    """Network states and the robust measure over them (docs/instance-format.md §10); ``None``: one
    state, the system as given, and every code path unchanged."""
    choices: Choices | None = None
    """Layer variants, early exits and the accuracy objective/constraint (docs/instance-format.md
    §11); ``None``: every layer placed with its own figures, every code path unchanged."""


# --------------------------------------------------------------------------------------------------
# Instance
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Instance:
    """A complete, validated partitioning instance with derived cost tables.

    Attributes
    ----------
    latency_table : mapping
        Measured per-layer times ``{device: {layer: seconds}}`` overriding the compute model.
    """

    name: str
    graph: Graph
    system: System
    problem: Problem = field(default_factory=Problem)
    description: str = ""
    latency_table: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    source_path: str | None = None
    workload: Workload | None = None
    """The requests of a version-2 instance (docs/instance-format.md §9); ``None`` for version 1, whose
    every code path is unchanged."""

    @property
    def n(self) -> int:
        """Number of layers."""
        return self.graph.n

    @property
    def k(self) -> int:
        """Number of devices."""
        return self.system.k

    @cached_property
    def time(self) -> FloatArray:
        """``time[v, d]`` = t(v, d) of docs/instance-format.md §5.1 (latency table, else compute or roofline)."""
        g, s = self.graph, self.system
        t = g.flops[:, None] / s.compute[None, :]
        moved = g.param_bytes + g.output_bytes + g.input_bytes_of_layer
        for j, dev in enumerate(s.devices):
            if dev.memory_bandwidth_bytes_per_s is not None:
                t[:, j] = np.maximum(t[:, j], moved / dev.memory_bandwidth_bytes_per_s)
        for dev_id, table in self.latency_table.items():
            j = s.device_index[dev_id]
            for lay_id, sec in table.items():
                t[g.layer_index[lay_id], j] = sec
        return _frozen(t)

    @cached_property
    def scope_mask(self) -> BoolArray:
        """``scope_mask[d]``: device d's energy counts in the energy objective."""
        scope = self.problem.energy_scope
        if scope is None:
            return _frozen(np.ones(self.k, dtype=bool), bool)
        return _frozen([d in scope for d in self.system.device_ids], bool)

    @cached_property
    def private_tensors(self) -> BoolArray:
        """``private_tensors[t]`` over tensor indices."""
        priv = set(self.problem.constraints.private)
        return _frozen([t in priv for t in self.graph.tensor_ids], bool)

    @cached_property
    def allowed_mask(self) -> BoolArray:
        """``mask[v, d]``: layer v may run on device d under the ``allowed`` constraint."""
        g, s, c = self.graph, self.system, self.problem.constraints
        mask = np.ones((g.n, s.k), dtype=bool)
        for lay_id, devs in c.allowed.items():
            row = np.zeros(s.k, dtype=bool)
            for d in devs:
                row[s.device_index[d]] = True
            mask[g.layer_index[lay_id]] &= row
        return _frozen(mask, bool)

    @cached_property
    def private_mask(self) -> BoolArray:
        """``mask[v, d]``: layer v may run on device d under the ``private`` constraint.

        ``private`` reduces exactly to placement restrictions: a private tensor exists on its
        producer's device and on every device it is sent to, i.e. on the devices of all its
        consumers (and on the sink, a static condition checked by the evaluator). So the producer
        and every consumer of a private tensor must run on trusted devices.
        """
        g, s = self.graph, self.system
        mask = np.ones((g.n, s.k), dtype=bool)
        for t in np.flatnonzero(self.private_tensors):
            users = list(g.consumers[t]) + ([int(t)] if t < g.n else [])
            for v in users:
                mask[v] &= s.trusted
        return _frozen(mask, bool)

    @cached_property
    def placement_mask(self) -> BoolArray:
        """``mask[v, d]``: layer v may run on device d under ``allowed`` and ``private``."""
        return _frozen(self.allowed_mask & self.private_mask, bool)

    @cached_property
    def active_constraints(self) -> frozenset[str]:
        """Constraint kinds that can restrict some placement of this instance."""
        c, s = self.problem.constraints, self.system
        act = set()
        if c.memory and np.isfinite(s.memory).any():
            act.add("memory_params" if c.memory_model == "params" else "memory")
        if c.deadline_s is not None:
            act.add("deadline")
        if c.energy_budget_j:
            act.add("energy_budget")
        if c.allowed:
            act.add("allowed")
        if c.private:
            act.add("private")
        if c.contiguous:
            act.add("contiguous")
        if c.pipeline and s.k > 1:
            act.add("pipeline")
        if c.max_devices is not None and c.max_devices < s.k:
            act.add("max_devices")
        if self.colocate_classes:
            act.add("colocate")
        return frozenset(act)

    @cached_property
    def colocate_classes(self) -> tuple[IntArray, ...]:
        """Layer indices that must share a device, as disjoint classes of two or more layers.

        Overlapping ``colocate`` groups are merged (colocation is transitive); each class is sorted
        by layer index and the classes by their first layer. Groups of one layer impose nothing.
        """
        g = self.graph
        parent = list(range(g.n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for group in self.problem.constraints.colocate:
            idx = [g.layer_index[v] for v in group]
            for v in idx[1:]:
                parent[find(v)] = find(idx[0])
        classes: dict[int, list[int]] = {}
        for v in range(g.n):
            classes.setdefault(find(v), []).append(v)
        out = [np.array(c, dtype=np.int64) for c in classes.values() if len(c) > 1]
        for arr in out:
            arr.setflags(write=False)
        return tuple(sorted(out, key=lambda a: int(a[0])))

    def placement_indices(self, placement: Mapping[str, str] | Sequence[int] | npt.NDArray[Any]) -> IntArray:
        """Normalise a placement (``{layer: device}`` or device indices by layer index) to an array.

        Raises
        ------
        ValueError
            If a layer is missing or a device is unknown.
        """
        g, s = self.graph, self.system
        if isinstance(placement, Mapping):
            missing = [v for v in g.layer_ids if v not in placement]
            if missing:
                raise ValueError(f"placement misses layers {missing[:5]}")
            unknown_layers = [v for v in placement if v not in g.layer_index]
            if unknown_layers:
                raise ValueError(f"placement names unknown layers {unknown_layers[:5]}")
            out = np.empty(g.n, dtype=np.int64)
            for v, d in placement.items():
                if d not in s.device_index:
                    raise ValueError(f"placement puts {v!r} on unknown device {d!r}")
                out[g.layer_index[v]] = s.device_index[d]
            return out
        arr = np.asarray(placement, dtype=np.int64)
        if arr.shape != (g.n,) or (arr < 0).any() or (arr >= s.k).any():
            raise ValueError(f"placement must be {g.n} device indices in [0, {s.k})")
        return arr

    def placement_dict(self, placement: npt.ArrayLike) -> dict[str, str]:
        """Device indices by layer index to ``{layer id: device id}``."""
        arr = np.asarray(placement, dtype=np.int64)
        return {v: self.system.device_ids[int(d)] for v, d in zip(self.graph.layer_ids, arr, strict=True)}

    def with_problem(self, problem: Problem) -> Instance:
        """The same model and system under another problem."""
        return Instance(
            self.name,
            self.graph,
            self.system,
            problem,
            self.description,
            self.latency_table,
            self.source_path,
            self.workload,
        )

    def __repr__(self) -> str:
        return f"Instance({self.name!r}, {self.graph!r}, {self.system!r})"
