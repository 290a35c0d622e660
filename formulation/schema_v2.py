"""The raw structure of a version-2 instance file (docs/instance-format.md §9) and its JSON Schema.

Version 2 reuses the model, device and link sections of version 1 (:mod:`formulation.schema`) and
adds ``models``, ``workload``, ``system.routing`` and ``problem.aggregate``/``contention``. As in
version 1 these models check shape only; :mod:`formulation.loader_v2` converts units and checks
cross-references. ``python -m formulation.schema_v2`` rewrites ``formulation/instance-v2.schema.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from formulation.schema import (
    DeviceSpec,
    FileRef,
    Id,
    InstanceFile,
    LayerSpec,
    LinkSpec,
    MemoryValue,
    ModelInputSpec,
    ModelSpec,
    NonEmptyIds,
    ObjectiveValue,
    ProblemSpec,
    QuantityValue,
    ScenarioSpec,
    _q,
    _Strict,
)

FORMAT_VERSION_2 = 2
SCHEMA_V2_FILE = Path(__file__).with_name("instance-v2.schema.json")


def _same(model: type[BaseModel], name: str) -> Any:
    """A copy of a version-1 field (type, default, description): one definition for both versions."""
    return copy.copy(model.model_fields[name])


def _check_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value != FORMAT_VERSION_2:
        raise PydanticCustomError("version", "{expected}", {"expected": "the format version 2 (an integer)"})
    return FORMAT_VERSION_2


Version2 = Annotated[int, PlainValidator(_check_version), WithJsonSchema({"const": FORMAT_VERSION_2})]


def _check_routing(value: Any) -> str | dict[str, Any]:
    if value in ("direct", "shortest") or (isinstance(value, dict) and set(value) == {"routes"}):
        return value
    raise PydanticCustomError(
        "routing", "{expected}", {"expected": "direct, shortest, or {routes: {'a->b': [a, x, b], ...}}"}
    )


_ROUTING_SCHEMA = {
    "anyOf": [
        {"enum": ["direct", "shortest"]},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["routes"],
            "properties": {
                "routes": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                }
            },
        },
    ],
    "description": "direct | shortest | {routes: {'a->b': [a, x, b]}} (other pairs direct)",
    "default": "direct",
}

RoutingValue = Annotated[str | dict[str, Any], PlainValidator(_check_routing), WithJsonSchema(_ROUTING_SCHEMA)]



def _ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(d, str) and d for d in value)


def _check_request_allowed(value: Any) -> dict[str, list[str]] | list[str]:
    # one message for both forms (a plain union would report each alternative with pydantic's tags)
    if _ids(value):
        return list(value)
    if isinstance(value, dict):
        bad = next((k for k, ds in value.items() if not (isinstance(k, str) and k and _ids(ds))), None)
        if bad is None:
            return {k: list(ds) for k, ds in value.items()}
        raise PydanticCustomError("allowed", "{expected}", {
            "expected": f"a non-empty list of device ids for layer {bad!r} ({{layer: [device, ...]}})"})
    raise PydanticCustomError("allowed", "{expected}", {
        "expected": "{layer: [device, ...]}, or a non-empty list [device, ...] for every layer of the request"})


_ID_LIST_SCHEMA = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_REQUEST_ALLOWED_SCHEMA = {
    "anyOf": [{"type": "object", "additionalProperties": _ID_LIST_SCHEMA}, _ID_LIST_SCHEMA],
    "description": "devices a layer of this request may run on {layer: [device, ...]}, or [device, ...] "
    "for every layer of the request",
    "default": {},
}

RequestAllowedValue = Annotated[
    dict[str, list[str]] | list[str], PlainValidator(_check_request_allowed), WithJsonSchema(_REQUEST_ALLOWED_SCHEMA)
]


class SystemV2Spec(_Strict):
    """Devices, links and routing of a version-2 system (docs/instance-format.md §9.4)."""

    devices: list[DeviceSpec] = Field(min_length=1, description="the devices, in a fixed order")
    links: list[LinkSpec] = Field(default_factory=list, description="network links")
    routing: RoutingValue = "direct"
    latency: dict[str, dict[str, dict[str, QuantityValue]]] = Field(
        default_factory=dict,
        description="measured per-layer times {model: {device: {layer: time}}} overriding the compute model",
        json_schema_extra={"x-unit": "time"},
    )


class LayerTokensSpec(_Strict):
    """A layer's costs in a pass over T new tokens attending to S positions (docs/instance-format.md §9.10)."""

    flops: QuantityValue = _q("flops", "FLOP of every pass", 0)
    flops_per_token: QuantityValue = _q("flops", "FLOP per new token (x T)", 0)
    flops_per_position: QuantityValue = _q("flops", "FLOP per attended position (x S)", 0)
    flops_per_token_position: QuantityValue = _q("flops", "FLOP per new token and attended position (x T x S)", 0)
    output_bytes: QuantityValue = _q("bytes", "output bytes of every pass", 0)
    output_bytes_per_token: QuantityValue = _q("bytes", "output bytes per new token (x T)", 0)
    output_bytes_per_position: QuantityValue = _q("bytes", "output bytes per attended position (x S)", 0)
    output_bytes_per_token_position: QuantityValue = _q(
        "bytes", "output bytes per new token and attended position (x T x S)", 0
    )
    kv_bytes_per_position: QuantityValue = _q("bytes", "key/value cache bytes per position held, resident", 0)


class InputTokensSpec(_Strict):
    """A model input's bytes in a pass over T new tokens (docs/instance-format.md §9.10)."""

    bytes: QuantityValue = _q("bytes", "bytes of every pass", 0)
    bytes_per_token: QuantityValue = _q("bytes", "bytes per new token (x T)", 0)


class LayerSpecV2(LayerSpec):
    """A layer of a version-2 model: version 1's keys and its per-token costs (§9.10)."""

    tokens: LayerTokensSpec | None = Field(None, description="costs of a pass of a generation request (§9.10)")


class ModelInputSpecV2(ModelInputSpec):
    """A model input of a version-2 model: version 1's keys and its per-token bytes (§9.10)."""

    tokens: InputTokensSpec | None = Field(None, description="bytes of a pass of a generation request (§9.10)")


class ModelSpecV2(ModelSpec):
    """A version-2 model: the model section of §2 whose layers and inputs may carry ``tokens`` (§9.10)."""

    inputs: list[ModelInputSpecV2] = Field(default_factory=list, description="model input tensors")  # type: ignore[assignment]
    layers: list[LayerSpecV2] = Field(min_length=1, description="the layers, in any order")  # type: ignore[assignment]


class GenerationSpec(_Strict):
    """A generation request's tokens (docs/instance-format.md §9.10)."""

    prompt: int = Field(ge=1, description="prompt tokens processed by the prefill (>= 1)")
    generate: int = Field(ge=1, description="decode steps after the prefill, one token each (>= 1)")


class RequestSpecV2(_Strict):
    """One request of the workload (docs/instance-format.md §9.2)."""

    id: Id = Field(description="request id, unique, without '/'")
    model: Id = Field(description="name of a model of `models`")
    source: Id = Field(description="device holding the request's model inputs at its release")
    sink: Id | None = Field(None, description="device that must receive the request's outputs (default: none)")
    weight: QuantityValue = _q("number", "weight of the request's latency in the aggregate (>= 0)", 1)
    rate: QuantityValue | None = _q("number", "inferences per second (> 0); all requests or none", None)
    release: QuantityValue = _q("time", "time its inputs exist on the source", 0)
    deadline: QuantityValue | None = _q("time", "latency (completion - release) <= deadline (> 0)", None)
    allowed: RequestAllowedValue = Field(
        default_factory=dict,
        description="devices a layer of this request may run on {layer: [device, ...]}, "
        "or [device, ...] for every layer of the request",
    )
    private: list[Id] = Field(
        default_factory=list, description="this request's tensors allowed only on trusted devices"
    )
    tokens: GenerationSpec | None = Field(
        None, description="a generation: {prompt: P, generate: G}, a prefill then G decode steps (§9.10)"
    )


class ConstraintsV2Spec(_Strict):
    """Constraints of a version-2 problem (docs/instance-format.md §9.3)."""

    memory: MemoryValue = Field(True, description="enforce device memory: true, false, or params")
    energy_budget: dict[str, QuantityValue] = Field(
        default_factory=dict,
        description="energy bound per device {device: energy}, over all requests",
        json_schema_extra={"x-unit": "energy"},
    )
    max_devices: int | None = Field(None, ge=1, description="at most this many devices execute layers")


class ProblemV2Spec(_Strict):
    """Objective, aggregate, contention, energy scope and constraints (docs/instance-format.md §9.3)."""

    objective: ObjectiveValue = "latency"
    aggregate: Literal["sum", "max"] = Field("sum", description="sum (weighted) or max of per-request latencies")
    contention: Literal["none", "schedule", "share"] = Field(
        "none", description="how requests share devices and links: none | schedule | share"
    )
    energy_scope: NonEmptyIds | None = Field(None, description="devices whose energy counts (default: all)")
    constraints: ConstraintsV2Spec = ConstraintsV2Spec.model_validate({})
    # network states (docs/instance-format.md §10): the same keys as version 1's
    robust: str = _same(ProblemSpec, "robust")
    deadline_probability: float | None = _same(ProblemSpec, "deadline_probability")


class InstanceV2Header(_Strict):
    """Top level of a version-2 file with the sections left unchecked (the loader resolves them)."""

    dnnpart: Version2 = Field(description="format version, the integer 2")
    name: str = Field(min_length=1, description="instance identifier, used in result tables")
    description: str = Field("", description="free text")
    models: dict[str, Any] = Field(min_length=1, description="named models {name: model or {file: PATH}}")
    system: Any = Field(description="devices, links and routing, inline or {file: PATH}")
    workload: list[Any] = Field(min_length=1, description="the requests")
    problem: Any = Field(None, description="objective, aggregate, contention and constraints")
    scenarios: Any = Field(None, description="network states, each overriding link and device figures")


class InstanceV2File(InstanceV2Header):
    """A whole version-2 instance file, as described by its JSON Schema."""

    models: dict[str, ModelSpecV2 | FileRef] = Field(
        min_length=1, description="named models {name: model or {file: PATH}}"
    )
    system: SystemV2Spec | FileRef = Field(description="devices, links and routing, inline or {file: PATH}")
    workload: list[RequestSpecV2] = Field(min_length=1, description="the requests")
    problem: ProblemV2Spec | None = Field(None, description="objective, aggregate, contention and constraints")
    scenarios: list[ScenarioSpec] | None = _same(InstanceFile, "scenarios")


def json_schema_v2() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a version-2 instance file."""
    schema = InstanceV2File.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dnnpart.invalid/instance-v2.schema.json",
        "title": "dnnpart instance, format version 2",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def write_json_schema_v2(path: Path | str = SCHEMA_V2_FILE) -> None:
    """Write :func:`json_schema_v2` to ``path`` (default: the committed copy next to this module)."""
    Path(path).write_text(json.dumps(json_schema_v2(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_json_schema_v2()
