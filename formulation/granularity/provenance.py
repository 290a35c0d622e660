"""Provenance: the map from the nodes of a transformed graph back to the user's original layers.

Every granularity transformation (:mod:`.coarsen`, :mod:`.spatial`, :mod:`.channel`) returns a
:class:`Transformed`: the new instance, which formulations and solvers see unchanged, and a
:class:`Provenance` that says, for every node of the new graph, which original layers it stands
for and how (a whole layer, a merge of layers, one part of a split, or the scatter/gather that
moves a split's data). Results are mapped back with :meth:`Transformed.layer_view`, so users read
them in terms of their own layer ids, with the parts shown.

Transformations compose: applying one to a :class:`Transformed` composes the provenances, so the
final map always points to the layers of the original file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from formulation.model import Graph, Instance

Kind = Literal["layer", "merged", "part", "scatter", "gather", "reduce"]

#: Kinds of nodes that compute whole original layers (they may be merged or split further).
WHOLE_KINDS = frozenset({"layer", "merged"})


class GranularityError(ValueError):
    """A transformation cannot be applied as asked (the message names the layers and the reason)."""


@dataclass(frozen=True)
class Origin:
    """What one node of a transformed graph stands for.

    Attributes
    ----------
    kind : str
        ``layer`` (one original layer, unchanged), ``merged`` (several whole layers run as one
        node), ``part`` (a share of the work of one or more layers), ``scatter`` (sends a part its
        share of the input), ``gather`` (assembles the parts' outputs) or ``reduce`` (sums partial
        outputs of an input-channel split).
    layers : tuple of str
        Original layer ids it computes (whole for layer/merged, a share for part) or whose data it
        moves (scatter, gather, reduce).
    split : str
        Name of the split it belongs to (empty for layer/merged).
    part, parts : int, optional
        Index of the part and number of parts of its split.
    detail : str
        Human-readable share, e.g. ``rows 0:38, cols 0:76`` or ``channels 0:32 of 64``.
    info : mapping
        Machine-readable share (regions, FLOP share) for reports.
    """

    kind: Kind
    layers: tuple[str, ...]
    split: str = ""
    part: int | None = None
    parts: int | None = None
    detail: str = ""
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def whole(self) -> bool:
        """True when the node computes whole original layers."""
        return self.kind in WHOLE_KINDS


class Provenance:
    """Origins of every node of a transformed graph, in terms of the original layer ids.

    Parameters
    ----------
    original_layers : sequence of str
        Layer ids of the original graph (topological order).
    origins : mapping
        ``{node id: Origin}`` for every node of the transformed graph.
    """

    def __init__(self, original_layers: Sequence[str], origins: Mapping[str, Origin]) -> None:
        self.original_layers: tuple[str, ...] = tuple(original_layers)
        self.origins: Mapping[str, Origin] = MappingProxyType(dict(origins))
        by_layer: dict[str, list[str]] = {v: [] for v in self.original_layers}
        for node, o in self.origins.items():
            for v in o.layers:
                by_layer[v].append(node)
        self._by_layer = {v: tuple(ns) for v, ns in by_layer.items()}

    @classmethod
    def identity(cls, graph: Graph) -> Provenance:
        """Every layer stands for itself."""
        return cls(graph.layer_ids, {v: Origin("layer", (v,)) for v in graph.layer_ids})

    def nodes_of(self, layer: str) -> tuple[str, ...]:
        """Nodes that compute (part of) or move data of an original layer."""
        return self._by_layer[layer]

    def whole_node(self, layer: str) -> str | None:
        """The node computing ``layer`` whole, or None if the layer was split."""
        for node in self._by_layer[layer]:
            if self.origins[node].whole:
                return node
        return None

    @property
    def merge_only(self) -> bool:
        """True when no layer was split: every original layer lies in exactly one node."""
        return all(o.whole for o in self.origins.values())

    def compose(self, inner: Provenance) -> Provenance:
        """This provenance (over ``inner``'s nodes) expressed in ``inner``'s original layers.

        A transformation may merge or split only whole nodes of ``inner`` (enforced by the
        transformations), so the composed kinds are simply this provenance's kinds.
        """
        out: dict[str, Origin] = {}
        for node, o in self.origins.items():
            if o.kind == "layer":
                out[node] = inner.origins[o.layers[0]]
                continue
            layers: list[str] = []
            for x in o.layers:
                layers.extend(inner.origins[x].layers)
            out[node] = Origin(o.kind, tuple(layers), o.split, o.part, o.parts, o.detail, o.info)
        return Provenance(inner.original_layers, out)

    def expand(self, placement: Mapping[str, str]) -> dict[str, str]:
        """A placement of the transformed graph as a placement of the original layers.

        Defined only when no layer was split (:attr:`merge_only`): each original layer runs where
        its node runs.

        Raises
        ------
        GranularityError
            If some layer was split into parts (use :meth:`Transformed.layer_view`).
        """
        out: dict[str, str] = {}
        for v in self.original_layers:
            node = self.whole_node(v)
            if node is None:
                raise GranularityError(f"layer {v!r} was split into parts; it has no single device")
            out[v] = placement[node]
        return out

    def restrict(self, placement: Mapping[str, str]) -> dict[str, str]:
        """An original placement restricted to the nodes of the transformed graph.

        Each node takes the device of its first original layer; meaningful for placements that
        respect the transformation (all members of a merged node on one device).
        """
        return {node: placement[o.layers[0]] for node, o in self.origins.items() if o.whole}


@dataclass(frozen=True)
class PartPlacement:
    """Where one node standing for (part of) an original layer runs."""

    node: str
    kind: str
    device: str
    split: str = ""
    part: int | None = None
    parts: int | None = None
    detail: str = ""
    start_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (None omitted)."""
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


@dataclass(frozen=True)
class Transformed:
    """A transformed instance with its provenance and the original it came from.

    Attributes
    ----------
    original : Instance
        The instance as loaded.
    instance : Instance
        What formulations and solvers see.
    provenance : Provenance
        Map from ``instance``'s nodes to ``original``'s layers.
    steps : tuple of str
        The transformations applied, in order, in words.
    """

    original: Instance
    instance: Instance
    provenance: Provenance
    steps: tuple[str, ...] = ()

    def layer_view(
        self, placement: Mapping[str, str], schedule: Mapping[str, float] | None = None
    ) -> dict[str, list[PartPlacement]]:
        """For every original layer, the nodes that compute or move it and where they run.

        Parameters
        ----------
        placement : mapping
            ``{node: device}`` over the transformed instance.
        schedule : mapping, optional
            ``{node: start seconds}``; shown when given.
        """
        out: dict[str, list[PartPlacement]] = {}
        for v in self.provenance.original_layers:
            rows = []
            for node in self.provenance.nodes_of(v):
                o = self.provenance.origins[node]
                start = None if schedule is None else schedule.get(node)
                rows.append(PartPlacement(node, o.kind, placement[node], o.split, o.part, o.parts, o.detail, start))
            out[v] = rows
        return out

    def original_placement(self, placement: Mapping[str, str]) -> dict[str, str | list[str]]:
        """Each original layer's device, or the devices of its parts (in part order) when split."""
        out: dict[str, str | list[str]] = {}
        for v, rows in self.layer_view(placement).items():
            whole = [r.device for r in rows if r.kind in WHOLE_KINDS]
            out[v] = whole[0] if whole else [r.device for r in rows if r.kind == "part"]
        return out

    def report(self, placement: Mapping[str, str], schedule: Mapping[str, float] | None = None) -> dict[str, Any]:
        """JSON-ready view of a placement in original terms (used by ``dnnpart solve``)."""
        return {
            "steps": list(self.steps),
            "nodes": self.instance.n,
            "original_layers": self.original.n,
            "placement": self.original_placement(placement),
            "layers": {
                v: [r.to_dict() for r in rows] for v, rows in self.layer_view(placement, schedule).items()
            },
        }


def as_transformed(x: Instance | Transformed) -> Transformed:
    """Wrap a plain instance as the identity transformation.

    Raises
    ------
    GranularityError
        For a version-2 instance: its requests, routes and weights keys would be lost.
    """
    if isinstance(x, Transformed):
        return x
    if x.workload is not None:
        raise GranularityError(
            f"instance {x.name!r} is a version-2 workload (docs/instance-format.md §9); granularity "
            "transformations do not support it yet"
        )
    return Transformed(x, x, Provenance.identity(x.graph))
