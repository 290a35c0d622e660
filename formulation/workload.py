"""Version-2 workloads: many requests of named models on one system (docs/instance-format.md §9).

A version-2 instance is lowered to one combined DAG whose layers are ``REQUEST/LAYER`` (and whose
model inputs are ``REQUEST/INPUT``): placements map ``REQUEST/LAYER`` to a device, and every piece
of the version-1 machinery that works on a graph (layer times, ``allowed``/``private`` masks,
enumeration) works on it unchanged. What the combined graph cannot say is kept here:

* per request: its source, sink, weight, rate, release and deadline, and which combined layers,
  inputs and outputs are its own;
* the weights-sharing key ``(model, layer)`` of every combined layer: parameters are resident once
  per (model, layer, device) whichever requests use them (§9.6);
* the route table: the channels a tensor travels from device ``a`` to device ``b`` (§9.4);
* the aggregate of per-request latencies (``sum``/``max``) and the contention model
  (``none``/``schedule``/``share``, §9.5).

A version-1 instance carries no workload (``Instance.workload is None``) and keeps every code path
it had; it is the one-request, rate-1, direct-routing case of this model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from formulation.generation import TokenCosts
from formulation.model import Graph, IntArray, Layer, ModelInput, _frozen

AGGREGATES = ("sum", "max")
CONTENTIONS = ("none", "schedule", "share")
ROUTINGS = ("direct", "shortest", "explicit")
#: Separates a request id from a layer or tensor id in the combined graph.
REQUEST_SEP = "/"

Route = tuple[tuple[int, int], ...]
"""The channels ``(a, b)`` (device indices) a transfer travels, in order; ``()`` for no transfer."""


@dataclass(frozen=True)
class Request:
    """One request of the workload (SI units; ``layers``/``inputs``/``outputs`` in combined indices).

    Attributes
    ----------
    id, model : str
        Request id and the name of its model.
    source, sink : int, int or None
        Device indices: where its inputs exist at ``release_s``, where its outputs must arrive.
    weight : float
        Weight of its latency in a ``sum`` (and ``max``) aggregate.
    rate : float or None
        Inferences per second (utilisation, §9.3).
    release_s, deadline_s : float, float or None
        When its inputs exist; the bound on its latency (completion minus release).
    layers, inputs, outputs : tuple of int
        Its combined layer indices (topological), combined tensor indices of its model inputs, and
        its output layers.
    """

    id: str
    model: str
    source: int
    sink: int | None
    weight: float
    rate: float | None
    release_s: float
    deadline_s: float | None
    layers: tuple[int, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    prompt: int | None = None
    """Prompt tokens of a generation request (§9.10); ``None`` for one ordinary pass."""
    generate: int | None = None
    """Decode steps of a generation request (§9.10); ``None`` for one ordinary pass."""


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests, aggregate, contention and routes of a version-2 instance (docs/instance-format.md §9).

    Attributes
    ----------
    requests : tuple of Request
        In file order.
    aggregate, contention, routing : str
        ``problem.aggregate``, ``problem.contention`` and the routing mode of ``system.routing``.
    routes : mapping
        ``routes[(a, b)]`` for every ordered pair of distinct devices with a route; a pair absent
        from it has none (a transfer there is a ``link`` violation).
    request_of_layer, request_of_tensor : (n,), (n + m,) int
        The request each combined layer and tensor belongs to.
    weight_key : tuple of (str, str)
        ``(model, layer id)`` of every combined layer: the unit of weights sharing.
    """

    requests: tuple[Request, ...]
    aggregate: Literal["sum", "max"]
    contention: Literal["none", "schedule", "share"]
    routing: Literal["direct", "shortest", "explicit"]
    routes: Mapping[tuple[int, int], Route]
    request_of_layer: IntArray
    request_of_tensor: IntArray
    weight_key: tuple[tuple[str, str], ...]
    tokens: Mapping[str, Mapping[str, TokenCosts]] = field(default_factory=dict)
    """``tokens[model][local id]``: the per-token costs of a layer or model input (§9.10)."""
    tensor_local: tuple[str, ...] = ()
    """The id of every combined tensor in its own model (the part after ``REQUEST/``)."""

    def tokens_of(self, t: int) -> TokenCosts | None:
        """The per-token costs of combined tensor ``t`` (layers, then model inputs), if its model has them."""
        model = self.requests[int(self.request_of_tensor[t])].model
        return self.tokens.get(model, {}).get(self.tensor_local[t])

    @property
    def generation(self) -> bool:
        """Some request is a generation (§9.10)."""
        return any(r.generate is not None for r in self.requests)

    @property
    def rated(self) -> bool:
        """Every request has a rate: utilisation is then a constraint (§9.3)."""
        return all(r.rate is not None for r in self.requests)

    @property
    def request_ids(self) -> tuple[str, ...]:
        """Request ids in file order."""
        return tuple(r.id for r in self.requests)

    def route(self, a: int, b: int) -> Route | None:
        """The channels from device ``a`` to ``b`` (``()`` when ``a == b``, ``None`` without a route)."""
        if a == b:
            return ()
        return self.routes.get((a, b))


@dataclass(frozen=True)
class RequestSpec:
    """A request before lowering (ids resolved, quantities in SI)."""

    id: str
    model: str
    source: int
    sink: int | None
    weight: float = 1.0
    rate: float | None = None
    release_s: float = 0.0
    deadline_s: float | None = None
    prompt: int | None = None
    generate: int | None = None


def combined_id(request: str, local: str) -> str:
    """``REQUEST/LOCAL``: the id of a request's layer or tensor in the combined graph."""
    return f"{request}{REQUEST_SEP}{local}"


def lower(
    name: str,
    models: Mapping[str, Graph],
    specs: Sequence[RequestSpec],
    aggregate: Literal["sum", "max"],
    contention: Literal["none", "schedule", "share"],
    routing: Literal["direct", "shortest", "explicit"],
    routes: Mapping[tuple[int, int], Route],
    tokens: Mapping[str, Mapping[str, TokenCosts]] | None = None,
) -> tuple[Graph, Workload]:
    """The combined graph and the workload of a list of requests.

    Each request contributes a copy of its model's layers and inputs, renamed ``REQUEST/ID``; the
    copies share nothing in the graph (requests do not exchange tensors), only their weights key.
    """
    inputs: list[ModelInput] = []
    layers: list[Layer] = []
    outputs: list[str] = []
    for rs in specs:
        g = models[rs.model]
        inputs += [ModelInput(combined_id(rs.id, t.id), t.bytes) for t in g.inputs]
        for lay in g.layers:
            layers.append(
                Layer(
                    combined_id(rs.id, lay.id),
                    lay.op,
                    tuple(combined_id(rs.id, u) for u in lay.inputs),
                    lay.flops,
                    lay.output_bytes,
                    lay.param_bytes,
                    lay.workspace_bytes,
                    lay.attrs,
                    shardable=lay.shardable,  # kept, so that solvers without sharding refuse it
                )
            )
        outputs += [combined_id(rs.id, g.layer_ids[o]) for o in g.outputs]
    graph = Graph(name, inputs, layers, outputs)
    req_index = {rs.id: i for i, rs in enumerate(specs)}
    sep_req = [tid.split(REQUEST_SEP, 1)[0] for tid in graph.tensor_ids]
    req_of_tensor = np.array([req_index[r] for r in sep_req], dtype=np.int64)
    requests = []
    for i, rs in enumerate(specs):
        mine = [v for v in range(graph.n) if req_of_tensor[v] == i]
        requests.append(
            Request(
                rs.id,
                rs.model,
                rs.source,
                rs.sink,
                rs.weight,
                rs.rate,
                rs.release_s,
                rs.deadline_s,
                tuple(mine),
                tuple(t for t in range(graph.n, graph.n + graph.m) if req_of_tensor[t] == i),
                tuple(o for o in graph.outputs if req_of_tensor[o] == i),
                rs.prompt,
                rs.generate,
            )
        )
    weight_key = tuple(
        (specs[int(req_of_tensor[v])].model, graph.layer_ids[v].split(REQUEST_SEP, 1)[1]) for v in range(graph.n)
    )
    workload = Workload(
        tuple(requests),
        aggregate,
        contention,
        routing,
        dict(routes),
        _frozen(req_of_tensor[: graph.n], np.int64),
        _frozen(req_of_tensor, np.int64),
        weight_key,
        dict(tokens or {}),
        tuple(tid.split(REQUEST_SEP, 1)[1] for tid in graph.tensor_ids),
    )
    return graph, workload
