"""The raw structure of an instance file (format version 1) as pydantic models, and its JSON Schema.

These models check shape only: which keys exist, which are required, and the type of each value.
Quantities stay as written (a number or a ``"<number> <unit>"`` string; the unit kind of each field
is in its ``x-unit`` schema entry) and ids stay unresolved: :mod:`formulation.loader` converts units
and checks cross-references, with the same kind of error.

Unknown keys are errors, booleans must be YAML/JSON booleans, and integers must be integers.
Validation failures are translated into :class:`~formulation.errors.InstanceError` with field paths
such as ``system.devices[1].compute`` (:mod:`formulation.schema_errors`); pydantic's own multi-line
report is never shown.

Run ``python -m formulation.schema`` to rewrite ``formulation/instance.schema.json``.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from formulation.model import EXECUTIONS, OBJECTIVES, TIERS

# Field paths and error translation live in formulation.schema_errors; they are named here too, so
# ``from formulation.schema import format_path`` (and the rest) keeps working.
from formulation.schema_errors import MISSING as MISSING
from formulation.schema_errors import field_names as field_names
from formulation.schema_errors import format_path as format_path
from formulation.schema_errors import translate_errors as translate_errors
from formulation.schema_errors import validate_section as validate_section
from formulation.units import Kind, expected_text

FORMAT_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("instance.schema.json")


# --------------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------------


def _check_quantity(value: Any) -> float | str:
    # bool is an int subclass, and True silently becoming 1.0 FLOP/s would hide a broken file.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError(
            "quantity", "{expected}", {"expected": 'a number or a string "<number> <unit>"'}
        )
    return value


_QUANTITY_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*[^\s\d].*$"},
        {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"},
    ]
}

QuantityValue = Annotated[float | str, PlainValidator(_check_quantity), WithJsonSchema(_QUANTITY_SCHEMA)]
"""A quantity as written: a bare number in the SI base unit, or ``"<number> <unit>"``."""


def _q(kind: Kind, description: str, default: Any = ...) -> Any:
    """A quantity field of unit ``kind`` (recorded as ``x-unit`` for the loader and the schema)."""
    return Field(
        default,
        description=f"{description}; {expected_text(kind)}",
        json_schema_extra={"x-unit": kind},
    )


def _check_version(value: Any) -> int:
    if isinstance(value, bool) or value != FORMAT_VERSION or not isinstance(value, int):
        raise PydanticCustomError(
            "version", "{expected}", {"expected": f"the format version {FORMAT_VERSION} (an integer)"}
        )
    return FORMAT_VERSION


Version = Annotated[int, PlainValidator(_check_version), WithJsonSchema({"const": FORMAT_VERSION})]


def _check_objective(value: Any) -> str | dict[str, Any]:
    # Names and weights are checked by the loader, which can point at the offending entry.
    if isinstance(value, str) or (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        return value
    raise PydanticCustomError(
        "objective", "{expected}", {"expected": "an objective name or {weighted: {metric: weight}}"}
    )


_OBJECTIVE_SCHEMA = {
    "anyOf": [
        {"enum": [*OBJECTIVES, "accuracy"]},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["weighted"],
            "properties": {
                "weighted": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"enum": list(OBJECTIVES)},
                    "additionalProperties": _QUANTITY_SCHEMA,
                }
            },
        },
    ],
    "description": "latency | throughput | energy | cost | accuracy (maximised), or {weighted: {metric: "
    "weight}} (a weighted sum of metrics in base units; weights >= 0, not all 0)",
    "default": "latency",
}

ObjectiveValue = Annotated[
    str | dict[str, Any], PlainValidator(_check_objective), WithJsonSchema(_OBJECTIVE_SCHEMA)
]

def _check_memory(value: Any) -> bool | str:
    if isinstance(value, bool) or value == "params":
        return cast(bool | str, value)
    raise PydanticCustomError(
        "memory", "{expected}", {"expected": "true, false, or params (count parameters only)"}
    )


MemoryValue = Annotated[
    bool | str, PlainValidator(_check_memory), WithJsonSchema({"anyOf": [{"type": "boolean"}, {"const": "params"}]})
]
"""``constraints.memory``: a boolean, or ``params`` for the weights-only memory model."""

Id = Annotated[str, Field(min_length=1)]
"""An identifier (model input, layer or device)."""

CHANNEL_SEPARATOR = "->"
"""Joins two device ids into the name of a channel (``phone->cloud``) in metrics and results."""


def _check_device_id(value: str) -> str:
    # With '->' inside a device id, two different channels could share one name, and the metrics
    # keyed by channel name (link_bytes, link_busy_s) would silently lose one of them.
    if CHANNEL_SEPARATOR in value:
        raise PydanticCustomError(
            "device_id",
            "{expected}",
            {"expected": f"a device id without {CHANNEL_SEPARATOR!r} (it joins two device ids into a "
             "channel name such as phone->cloud)"},
        )
    return value


DeviceId = Annotated[
    str,
    Field(min_length=1, json_schema_extra={"not": {"pattern": CHANNEL_SEPARATOR}}),
    AfterValidator(_check_device_id),
]
"""A device id: an identifier without the channel separator ``->``."""
NonEmptyIds = Annotated[list[Id], Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


class ModelInputSpec(_Strict):
    """A model input tensor (exists on the source device at time 0)."""

    id: Id = Field(description="tensor id, unique across inputs and layers")
    bytes: QuantityValue = _q("bytes", "size of the tensor")


class ShardableSpec(_Strict):
    """Tensor parallelism a solver may choose for a layer (docs/instance-format.md §2.6)."""

    max_degree: int = Field(ge=2, description="largest group of devices the layer may be split over (>= 2)")
    comm: Literal["allreduce", "allgather"] = Field(
        "allreduce", description="collective completing the layer on its group: allreduce | allgather"
    )
    comm_bytes: QuantityValue | None = _q("bytes", "bytes the collective combines (default: output_bytes)", None)


class VariantSpec(_Strict):
    """A version of a layer the solver may choose (docs/instance-format.md §11.1)."""

    name: Id = Field(description="variant name, unique among the layer's variants, not 'base'")
    flops: QuantityValue | None = _q("flops", "work of one inference (default: the layer's)", None)
    param_bytes: QuantityValue | None = _q("bytes", "weights (default: the layer's)", None)
    workspace_bytes: QuantityValue | None = _q("bytes", "transient memory (default: the layer's)", None)
    accuracy_delta: float = Field(
        0.0, description="change of the model's accuracy when the layer runs this variant (in [-1, 1])"
    )


class ExitSpec(_Strict):
    """An exit of the model (docs/instance-format.md §11.2)."""

    name: Id = Field(description="exit name, unique among the exits")
    layer: Id = Field(description="the layer whose output ends the inference at this exit (a model output)")
    accuracy: float = Field(description="accuracy of the inferences that end here (in [0, 1])")
    probability: float | None = Field(
        None,
        description="share of the inputs that leave at this exit (in [0, 1]; given for every exit or "
        "for none: without, one exit is chosen)",
    )


class LayerSpec(_Strict):
    """One layer of the model graph."""

    id: Id = Field(description="layer id, unique across inputs and layers")
    op: str = Field(description="operator name, free text (conv2d, linear, matmul, ...)")
    inputs: list[Id] = Field(description="ids of the model inputs or layers this layer reads")
    flops: QuantityValue = _q("flops", "work of one inference")
    param_bytes: QuantityValue = _q("bytes", "weights resident on the executing device", 0)
    output_bytes: QuantityValue = _q("bytes", "size of the layer's output tensor")
    workspace_bytes: QuantityValue = _q("bytes", "extra transient memory while the layer runs", 0)
    attrs: dict[str, Any] | None = Field(None, description="free metadata, ignored by the cost model")
    shardable: ShardableSpec | None = Field(
        None, description="the layer may be split over a group of devices by tensor parallelism"
    )
    variants: list[VariantSpec] | None = Field(
        None, min_length=1, description="versions of the layer a solver may choose instead of its own figures"
    )


class ModelSpec(_Strict):
    """The DNN graph (docs/instance-format.md §2)."""

    name: str | None = Field(None, description="model name (default: the instance name)")
    inputs: list[ModelInputSpec] = Field(default_factory=list, description="model input tensors")
    layers: list[LayerSpec] = Field(min_length=1, description="the layers, in any order")
    outputs: NonEmptyIds | None = Field(
        None, description="ids of output layers (default: layers that no layer consumes)"
    )
    accuracy: float | None = Field(
        None, description="accuracy of the model with every layer's own figures (in [0, 1]; default 1)"
    )
    exits: list[ExitSpec] | None = Field(None, min_length=1, description="early exits (BranchyNet, Edgent)")


class DeviceSpec(_Strict):
    """A device (docs/instance-format.md §3.1)."""

    id: DeviceId = Field(description="device id (without '->', which joins device ids into channel names)")
    tier: Literal["end", "edge", "cloud", "other"] = Field("other", description="end | edge | cloud | other")
    compute: QuantityValue = _q("flop_rate", "effective compute rate (> 0)")
    memory_bandwidth: QuantityValue | None = _q(
        "byte_rate", "memory bandwidth (> 0); enables the roofline time", None
    )
    memory: QuantityValue | None = _q("bytes", "memory (default: unlimited)", None)
    power_active: QuantityValue = _q("power", "power while computing", 0)
    power_idle: QuantityValue = _q("power", "power while idle", 0)
    price: QuantityValue = _q("usd_rate", "price per busy second", 0)
    trusted: bool = Field(False, description="may hold private tensors")
    comm_overlap: bool = Field(
        True, description="communication overlaps compute; false: busy time = compute + sending + receiving"
    )
    send_once: bool = Field(False, description="one transmission reaches every device that needs a tensor")


class LinkSpec(_Strict):
    """A network link (docs/instance-format.md §3.2); both directions unless ``bidirectional: false``."""

    from_: Id = Field(alias="from", description="sending device")
    to: Id = Field(description="receiving device")
    bandwidth: QuantityValue = _q("byte_rate", "bandwidth (> 0)")
    latency: QuantityValue = _q("time", "latency per transfer", 0)
    tx_power: QuantityValue = _q("power", "power drawn by the sender while sending", 0)
    rx_power: QuantityValue = _q("power", "power drawn by the receiver while receiving", 0)
    price: QuantityValue = _q("usd_per_byte", "price per byte sent", 0)
    overhead: QuantityValue = _q("time", "fixed overhead added to every transfer (serialisation, sockets)", 0)
    overhead_bandwidth: QuantityValue | None = _q(
        "byte_rate", "rate of the per-byte overhead: each transfer also takes bytes / overhead_bandwidth (> 0)", None
    )
    bidirectional: bool = Field(True, description="the same figures apply from `to` to `from`")


class SystemSpec(_Strict):
    """Devices and links (docs/instance-format.md §3)."""

    devices: list[DeviceSpec] = Field(min_length=1, description="the devices, in a fixed order")
    links: list[LinkSpec] = Field(default_factory=list, description="network links")
    source: Id = Field(description="device holding the model inputs at time 0")
    sink: Id | None = Field(None, description="device where model outputs must end up (default: none)")
    latency: dict[str, dict[str, QuantityValue]] = Field(
        default_factory=dict,
        description="measured per-layer times {device: {layer: time}} overriding the compute model",
        json_schema_extra={"x-unit": "time"},
    )


class ConstraintsSpec(_Strict):
    """Constraints (docs/instance-format.md §4.4)."""

    memory: MemoryValue = Field(
        True,
        description="enforce device memory: true (params plus peak working set), false, or params "
        "(parameters only)",
    )
    deadline: QuantityValue | None = _q("time", "latency <= deadline (> 0)", None)
    energy_budget: dict[str, QuantityValue] = Field(
        default_factory=dict,
        description="energy bound per device {device: energy}",
        json_schema_extra={"x-unit": "energy"},
    )
    allowed: dict[str, NonEmptyIds] = Field(
        default_factory=dict, description="devices a layer may run on {layer: [device, ...]}"
    )
    private: list[Id] = Field(default_factory=list, description="tensors allowed only on trusted devices")
    contiguous: bool = Field(False, description="each device's layer set must be convex in the DAG")
    pipeline: bool = Field(
        False,
        description="the devices' layer sets are pipeline stages: the devices can be ordered so that every "
        "edge between two devices goes forward",
    )
    max_devices: int | None = Field(None, ge=1, description="at most this many devices execute layers")
    colocate: list[NonEmptyIds] = Field(
        default_factory=list, description="groups of layers that must run on one device [[layer, ...], ...]"
    )
    min_accuracy: float | None = Field(
        None, description="the configuration's accuracy is at least this (in [0, 1]; §11.3)"
    )


class ProblemSpec(_Strict):
    """Objective, execution mode, energy scope and constraints (docs/instance-format.md §4)."""

    objective: ObjectiveValue = "latency"
    execution: Literal["sequential", "parallel"] = Field(
        "sequential", description="how latency is measured: sequential | parallel"
    )
    energy_scope: NonEmptyIds | None = Field(None, description="devices whose energy counts (default: all)")
    constraints: ConstraintsSpec = ConstraintsSpec.model_validate({})
    robust: str = Field(
        "expected",
        description="with scenarios: what one placement minimises over the states: expected | worst | "
        "cvar:ALPHA (0 <= ALPHA < 1)",
        json_schema_extra={"pattern": r"^(expected|worst|cvar:[0-9.eE+-]+)$"},
    )
    deadline_probability: float | None = Field(
        None,
        description="with scenarios: the deadline must hold in states of total probability >= this "
        "(0 < value <= 1; default: in every state)",
    )


class ScenarioSpec(_Strict):
    """A network state (docs/instance-format.md §10.1)."""

    name: Id = Field(description="state name, unique among the states")
    probability: float = Field(description="probability of the state (> 0; the states' probabilities sum to 1)")
    set_: dict[str, QuantityValue] = Field(
        default_factory=dict,
        alias="set",
        description="figures of this state {links.FROM-TO.FIELD | links.FROM->TO.FIELD | devices.ID.FIELD: value}",
    )


class FileRef(_Strict):
    """A section kept in another file: ``{file: PATH}`` or ``{file: PATH#KEY}``."""

    file: str = Field(
        min_length=1,
        description="path relative to the file naming it; PATH#KEY takes top-level key KEY of that file",
    )


class InstanceHeader(_Strict):
    """Top level with ``model`` and ``system`` left unchecked (the loader resolves them first)."""

    dnnpart: Version = Field(description=f"format version, the integer {FORMAT_VERSION}")
    name: str = Field(min_length=1, description="instance identifier, used in result tables")
    description: str = Field("", description="free text")
    model: Any = Field(description="the DNN graph, inline or {file: PATH}")
    system: Any = Field(description="devices and links, inline or {file: PATH}")
    problem: Any = Field(None, description="objective and constraints")
    scenarios: Any = Field(None, description="network states, each overriding link and device figures")


class InstanceFile(InstanceHeader):
    """A whole instance file, as described by the JSON Schema."""

    model: ModelSpec | FileRef = Field(description="the DNN graph, inline or {file: PATH}")
    system: SystemSpec | FileRef = Field(description="devices and links, inline or {file: PATH}")
    problem: ProblemSpec | None = Field(None, description="objective and constraints")
    scenarios: list[ScenarioSpec] | None = Field(
        None, min_length=1, description="network states, each overriding link and device figures"
    )


# Guard against the literals drifting from the names in formulation.model.
assert set(typing.get_args(DeviceSpec.model_fields["tier"].annotation)) == set(TIERS)
assert set(typing.get_args(ProblemSpec.model_fields["execution"].annotation)) == set(EXECUTIONS)


# --------------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an instance file.

    Returns
    -------
    dict
        The schema; ``formulation/instance.schema.json`` holds a copy (kept equal by a test).
    """
    schema = InstanceFile.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dnnpart.invalid/instance.schema.json",
        "title": f"dnnpart instance, format version {FORMAT_VERSION}",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def write_json_schema(path: Path | str = SCHEMA_FILE) -> None:
    """Write :func:`json_schema` to ``path`` (default: the committed copy next to this module).

    Parameters
    ----------
    path : Path or str
        Destination file.
    """
    Path(path).write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_json_schema()
