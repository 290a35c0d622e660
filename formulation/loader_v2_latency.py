"""Measured layer times of a version-2 system (docs/instance-format.md §9.4, ``system.latency``).

``latency: {MODEL: {DEVICE: {LAYER: TIME}}}`` gives, per named model, measured times that replace
the computed time ``t(v, d)`` of §5.1 for those layers on those devices, as version 1's
``latency: {DEVICE: {LAYER: TIME}}`` does (§3.4). They are keyed by model because layer ids are the
model's own: every request of the model runs its layers in the measured times, so the combined
instance carries them as the version-1 table on the combined ids ``REQUEST/LAYER``
(:attr:`formulation.model.Instance.latency_table`), which every cost expression reads through
``Instance.time``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from formulation.model import Graph, Instance
from formulation.workload import REQUEST_SEP, RequestSpec

ModelTimes = dict[str, dict[str, dict[str, float]]]
"""``{model: {device: {layer: seconds}}}``."""


def build_model_latency(
    sec: Any, raw: Mapping[str, Mapping[str, Mapping[str, Any]]], models: Mapping[str, Graph],
    device_ids: Sequence[str], model_names: Sequence[str],
) -> ModelTimes:
    """Check ``system.latency`` (model names, device ids, layer ids, times >= 0) and convert to seconds.

    ``sec`` is the system's section (its errors are reported with the other problems of the file);
    ``model_names`` are every name of ``models``, ``models`` those whose graph was built.
    """
    out: ModelTimes = {}
    for name, per_device in raw.items():
        if name not in model_names:
            sec.unknown(("latency", name), name, "a model of `models`", list(model_names))
            continue
        g = models.get(name)
        if not isinstance(per_device, Mapping):
            sec.error(("latency", name), per_device, "a mapping {device: {layer: time}}")
            continue
        for dev, times in per_device.items():
            if dev not in device_ids:
                sec.unknown(("latency", name, dev), dev, "a device", list(device_ids))
                continue
            if not isinstance(times, Mapping):
                sec.error(("latency", name, dev), times, "a mapping {layer: time}")
                continue
            row = out.setdefault(name, {}).setdefault(dev, {})
            for lay, value in times.items():
                if g is not None and lay not in g.layer_index:
                    sec.unknown(("latency", name, dev, lay), lay, f"a layer of model {name!r}", g.layer_ids)
                else:
                    row[lay] = sec.quantity(("latency", name, dev, lay), value, "time")
    return out


def check_generation(sec: Any, times: ModelTimes, specs: Sequence[RequestSpec]) -> None:
    """A model run by a generation request (§9.10) takes no measured times: its layer times are
    per pass, from its per-token figures, and one measured number could not say which pass."""
    for rs in specs:
        if getattr(rs, "generate", None) is not None and times.get(rs.model):
            sec.error(("latency", rs.model), "{...}",
                      f"no measured times for a model run by a generation request (request {rs.id!r})")


def combined_table(times: ModelTimes, specs: Sequence[RequestSpec]) -> MappingProxyType[str, Any]:
    """The table on the combined ids: ``{device: {REQUEST/LAYER: seconds}}`` for every request."""
    table: dict[str, dict[str, float]] = {}
    for rs in specs:
        for dev, row in times.get(rs.model, {}).items():
            target = table.setdefault(dev, {})
            for lay, sec in row.items():
                target[f"{rs.id}{REQUEST_SEP}{lay}"] = sec
    return MappingProxyType({d: MappingProxyType(row) for d, row in table.items()})


def latency_data(instance: Instance) -> dict[str, dict[str, dict[str, float]]]:
    """``system.latency`` of a version-2 instance as file data (the inverse of :func:`combined_table`):
    each model's times read from the first request that runs it."""
    wl = instance.workload
    assert wl is not None
    out: dict[str, dict[str, dict[str, float]]] = {}
    first: dict[str, str] = {}
    for r in wl.requests:
        first.setdefault(r.model, r.id)
    for dev, row in instance.latency_table.items():
        for key, sec in row.items():
            req, lay = key.split(REQUEST_SEP, 1)
            model = wl.requests[wl.request_ids.index(req)].model
            if first[model] == req:
                out.setdefault(model, {}).setdefault(dev, {})[lay] = float(sec)
    return out
