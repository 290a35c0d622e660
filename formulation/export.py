"""Write an :class:`~formulation.model.Instance` back as instance-file data (docs/instance-format.md).

The inverse of :mod:`formulation.loader`: :func:`instance_to_data` gives plain data in SI numbers,
model and system inline, that :func:`formulation.loader.load_instance_data` loads back equal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from formulation.model import Instance, Link
from formulation.schema import FORMAT_VERSION


def _plain(value: Any) -> Any:
    """Mapping proxies and tuples to dicts and lists, numpy scalars to Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def _figures(lk: Link) -> dict[str, float]:
    return {
        "bandwidth": lk.bandwidth_bytes_per_s,
        "latency": lk.latency_s,
        "tx_power": lk.tx_power_w,
        "rx_power": lk.rx_power_w,
        "price": lk.price_usd_per_byte,
        # Optional fields (§3.2) only where set, so that files without them are written unchanged.
        **({"overhead": lk.overhead_s} if lk.overhead_s else {}),
        **({"overhead_bandwidth": lk.overhead_bandwidth_bytes_per_s}
           if math.isfinite(lk.overhead_bandwidth_bytes_per_s) else {}),
    }


def _system_data(instance: Instance) -> dict[str, Any]:
    s = instance.system
    devices = []
    for d in s.devices:
        dev: dict[str, Any] = {"id": d.id, "tier": d.tier, "compute": d.compute_flops_per_s}
        if d.memory_bandwidth_bytes_per_s is not None:
            dev["memory_bandwidth"] = d.memory_bandwidth_bytes_per_s
        if math.isfinite(d.memory_bytes):
            dev["memory"] = d.memory_bytes
        dev.update(power_active=d.power_active_w, power_idle=d.power_idle_w, price=d.price_usd_per_s)
        if not d.comm_overlap:
            dev["comm_overlap"] = False
        if d.send_once:
            dev["send_once"] = True
        devices.append({**dev, "trusted": bool(d.trusted)})
    links: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    for (a, b), lk in s.links.items():
        if (a, b) in done:
            continue
        back = s.links.get((b, a))
        pair = back is not None and _figures(back) == _figures(lk)  # one bidirectional link
        links.append({"from": a, "to": b, **_figures(lk), **({} if pair else {"bidirectional": False})})
        done |= {(a, b), (b, a)} if pair else {(a, b)}
    out: dict[str, Any] = {"devices": devices, "links": links, "source": s.source}
    if s.sink is not None:
        out["sink"] = s.sink
    if instance.latency_table:
        out["latency"] = instance.latency_table
    return out


def instance_to_data(instance: Instance) -> dict[str, Any]:
    """The instance as instance-file data (SI numbers, model and system inline) that loads back equal.

    Parameters
    ----------
    instance : Instance
        Any instance, loaded or built in code.

    Returns
    -------
    dict
        Plain data (dicts, lists, str, float, int, bool) ready for ``json.dump`` or ``yaml.safe_dump``;
        :func:`load_instance_data` turns it back into an instance with the same layers, devices,
        channels, problem and time table. Layers are listed in the graph's topological order and a
        pair of channels with identical figures is written as one bidirectional link.
    """
    if instance.workload is not None:  # version 2: docs/instance-format.md §9
        from formulation.loader_v2 import workload_to_data

        return workload_to_data(instance)
    g, p = instance.graph, instance.problem
    layers = []
    for lay in g.layers:
        entry = {"id": lay.id, "op": lay.op, "inputs": lay.inputs, "flops": lay.flops}
        entry.update(
            param_bytes=lay.param_bytes, output_bytes=lay.output_bytes, workspace_bytes=lay.workspace_bytes
        )
        if lay.shardable is not None:  # docs/instance-format.md §2.6
            sh = lay.shardable
            entry["shardable"] = {"max_degree": sh.max_degree, "comm": sh.comm,
                                  **({} if sh.comm_bytes is None else {"comm_bytes": sh.comm_bytes})}
        layers.append({**entry, **({"attrs": lay.attrs} if lay.attrs else {})})
    model = {
        "name": g.name,
        "inputs": [{"id": t.id, "bytes": t.bytes} for t in g.inputs],
        "layers": layers,
        "outputs": [g.layer_ids[i] for i in g.outputs],
    }
    c = p.constraints
    optional = {
        "deadline": c.deadline_s,
        "energy_budget": c.energy_budget_j or None,
        "allowed": c.allowed or None,
        "private": c.private or None,
        "max_devices": c.max_devices,
        "colocate": c.colocate or None,
    }
    memory: bool | str = "params" if c.memory and c.memory_model == "params" else c.memory
    constraints: dict[str, Any] = {"memory": memory, "contiguous": c.contiguous}
    if c.pipeline:
        constraints["pipeline"] = True
    constraints.update({k: v for k, v in optional.items() if v is not None})
    objective: Any = {"weighted": p.objective.weights} if p.objective.kind == "weighted" else p.objective.kind
    problem: dict[str, Any] = {"objective": objective, "execution": p.execution}
    if p.energy_scope is not None:
        problem["energy_scope"] = p.energy_scope
    out: dict[str, Any] = {"dnnpart": FORMAT_VERSION, "name": instance.name}
    if instance.description:
        out["description"] = instance.description
    if p.scenarios is not None:
        from formulation.loader_scenarios import scenarios_data

        out["scenarios"], robust = scenarios_data(p.scenarios)
        problem.update(robust)
    out.update(model=model, system=_system_data(instance), problem={**problem, "constraints": constraints})
    return cast(dict[str, Any], _plain(out))
