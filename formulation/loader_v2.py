"""Load version-2 instance files (docs/instance-format.md §9) into one combined :class:`Instance`.

The models, devices and links are read by the version-1 loader's own functions (same checks, same
messages); what is new here is ``models``, ``workload``, ``system.routing`` and the version-2
``problem``. The requests are lowered to one combined graph (:func:`formulation.workload.lower`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from formulation.errors import InstanceError
from formulation.loader import (
    _build_device,
    _build_graph,
    _build_links,
    _build_objective,
    _dedupe,
    _raise,
    _resolve,
    _roots,
    _Section,
)
from formulation.loader_generation import check_contention, model_tokens, request_tokens_data, tokens_data
from formulation.loader_v2_latency import ModelTimes, build_model_latency, check_generation, combined_table
from formulation.model import Constraints, Device, Graph, Instance, Problem, System
from formulation.routing import direct_routes, explicit_routes, shortest_routes
from formulation.schema import CHANNEL_SEPARATOR, format_path, validate_section
from formulation.schema_v2 import InstanceV2Header, ModelSpecV2, ProblemV2Spec, RequestSpecV2, SystemV2Spec
from formulation.workload import REQUEST_SEP, RequestSpec, Route, lower
from formulation.yamlio import ReferenceReader


def build_v2(
    data: Any, file: str, base_dir: Path | None, allow_outside: bool, source_path: str | None
) -> Instance:
    """Validate version-2 data and build its combined instance (all problems reported together)."""
    header = validate_section(InstanceV2Header, dict(data), file=file)
    reader = ReferenceReader(_roots(base_dir), allow_outside)
    here = base_dir if base_dir is not None else Path.cwd()
    errors: list[InstanceError] = []

    models: dict[str, Graph] = {}
    tokens: dict[str, Any] = {}  # per-token costs of each model's layers and inputs (§9.10)
    for name, raw_model in header.models.items():
        sec = _Section(file, format_path(["models", name]))
        try:
            raw, sec = _resolve(reader, raw_model, sec, here, "model")
            spec = validate_section(ModelSpecV2, raw, file=sec.file, prefix=sec.prefix)
            g = _build_graph(sec, spec, name)
            tokens[name] = model_tokens(sec, spec)
            if g is not None:
                models[name] = g
        except InstanceError as exc:
            sec.absorb(exc)
        errors += sec.errors

    system: System | None = None
    routes: dict[tuple[int, int], Route] = {}
    routing = "direct"
    times: ModelTimes = {}  # measured layer times per model (§9.4, `system.latency`)
    sys_sec = _Section(file, "system")
    try:
        raw, sys_sec = _resolve(reader, header.system, sys_sec, here, "system")
        sys_spec = validate_section(SystemV2Spec, raw, file=sys_sec.file, prefix=sys_sec.prefix)
        system = _build_system_v2(sys_sec, sys_spec)
        if system is not None:
            routing, routes = _build_routes(sys_sec, sys_spec.routing, system)
            times = build_model_latency(sys_sec, sys_spec.latency, models, system.device_ids, list(header.models))
    except InstanceError as exc:
        sys_sec.absorb(exc)
    errors += sys_sec.errors

    specs, allowed, private = _build_requests(file, header.workload, models, system, errors)
    gen_sec = _Section(sys_sec.file, sys_sec.prefix)
    check_generation(gen_sec, times, specs)
    errors += gen_sec.errors

    prob_sec = _Section(file, "problem")
    problem = Problem()
    aggregate, contention = "sum", "none"
    try:
        pspec = validate_section(ProblemV2Spec, header.problem or {}, file=file, prefix="problem")
        aggregate, contention = pspec.aggregate, pspec.contention
        errors += check_contention(file, header.workload, contention)
        problem = _build_problem_v2(prob_sec, pspec, system, allowed, private)
    except InstanceError as exc:
        prob_sec.absorb(exc)
    errors += prob_sec.errors
    if system is not None and not prob_sec.errors:  # network states: docs/instance-format.md §10
        from formulation.loader_scenarios import with_scenarios

        scenario_sec = _Section(file, "scenarios")
        try:
            dl = any(rs.deadline_s is not None for rs in specs)
            problem = with_scenarios(scenario_sec, problem, header.scenarios, header.problem, system, deadlines=dl)
        except InstanceError as exc:
            scenario_sec.absorb(exc)
        errors += scenario_sec.errors
    _raise(errors)
    assert system is not None
    graph, workload = lower(
        header.name, models, specs, cast(Any, aggregate), cast(Any, contention), cast(Any, routing), routes,
        tokens=tokens,
    )
    table = combined_table(times, specs)
    return Instance(header.name, graph, system, problem, header.description, table, source_path, workload)


def _build_system_v2(sec: _Section, spec: SystemV2Spec) -> System | None:
    ids: list[str] = []
    devices: list[Device] = []
    for i, d in enumerate(spec.devices):
        if d.id in ids:
            first = sec.at("devices", ids.index(d.id), "id")
            sec.error(("devices", i, "id"), d.id, f"an id not used before (already {first})")
            continue
        if not d.comm_overlap or d.send_once:
            key = "comm_overlap" if not d.comm_overlap else "send_once"
            sec.error(("devices", i, key), getattr(d, key), "its version-1 default: version 2 does not support it yet")
        ids.append(d.id)
        devices.append(_build_device(sec, d, i))
    links = _build_links(sec, spec.links, ids)
    if sec.errors:
        return None
    # A version-2 system has no single source: each request names its own. System requires one, so
    # the first device stands in; no version-2 code path reads it.
    return System(devices, links, ids[0], None)


def _build_routes(
    sec: _Section, raw: str | dict[str, Any], system: System
) -> tuple[str, dict[tuple[int, int], Route]]:
    if raw == "direct":
        return "direct", direct_routes(system)
    if raw == "shortest":
        return "shortest", shortest_routes(system)
    given: dict[tuple[int, int], list[int]] = {}
    idx = system.device_index
    for key, path in cast(dict[str, Any], raw)["routes"].items():
        where = ("routing", "routes", key)
        ends = key.split(CHANNEL_SEPARATOR)
        if len(ends) != 2 or any(e not in idx for e in ends) or ends[0] == ends[1]:
            sec.error(where, key, "a pair 'a->b' of two different devices")
            continue
        if not (isinstance(path, list) and len(path) >= 2 and all(isinstance(p, str) for p in path)):
            sec.error(where, path, "a list of at least two device ids")
            continue
        bad = [p for p in path if p not in idx]
        if bad:
            sec.unknown((*where, path.index(bad[0])), bad[0], "a device", system.device_ids)
            continue
        if path[0] != ends[0] or path[-1] != ends[1] or len(set(path)) != len(path):
            sec.error(where, path, f"a path from {ends[0]!r} to {ends[1]!r} that visits no device twice")
            continue
        missing = [(a, b) for a, b in itertools.pairwise(path) if (a, b) not in system.links]
        if missing:
            a, b = missing[0]
            sec.error(where, path, f"a path over existing channels (there is no link {a} -> {b})")
            continue
        given[(idx[ends[0]], idx[ends[1]])] = [idx[p] for p in path]
    return "explicit", explicit_routes(system, given)


def _build_requests(
    file: str, raw: list[Any], models: dict[str, Graph], system: System | None, errors: list[InstanceError]
) -> tuple[list[RequestSpec], dict[str, tuple[str, ...]], list[str]]:
    specs: list[RequestSpec] = []
    allowed: dict[str, tuple[str, ...]] = {}
    private: list[str] = []
    seen: dict[str, str] = {}
    rated: list[bool] = []
    for j, item in enumerate(raw):
        sec = _Section(file, format_path(["workload", j]))
        try:
            rq = validate_section(RequestSpecV2, item, file=file, prefix=sec.prefix)
        except InstanceError as exc:
            sec.absorb(exc)
            errors += sec.errors
            continue
        if REQUEST_SEP in rq.id:
            sec.error(("id",), rq.id, f"a request id without {REQUEST_SEP!r} (it joins request and layer ids)")
        elif rq.id in seen:
            sec.error(("id",), rq.id, f"an id not used before (already {seen[rq.id]})")
        seen.setdefault(rq.id, sec.at("id"))
        g = models.get(rq.model)
        if rq.model not in models:
            sec.unknown(("model",), rq.model, "a model of `models`", list(models))
        dev_index: Mapping[str, int] = system.device_index if system is not None else {}

        def check_dev(
            parts: tuple[str | int, ...], d: str, sec: _Section = sec, known: Mapping[str, int] = dev_index
        ) -> None:
            if system is not None and d not in known:
                sec.unknown(parts, d, "a device", list(known))

        check_dev(("source",), rq.source)
        if rq.sink is not None:
            check_dev(("sink",), rq.sink)
        weight = sec.quantity(("weight",), rq.weight, "number")
        rate = None if rq.rate is None else sec.quantity(("rate",), rq.rate, "number", "positive")
        release = sec.quantity(("release",), rq.release, "time")
        deadline = None if rq.deadline is None else sec.quantity(("deadline",), rq.deadline, "time", "positive")
        rated.append(rq.rate is not None)
        if isinstance(rq.allowed, list):  # the devices of every layer of the request (§9.2)
            for i, d in enumerate(rq.allowed):
                check_dev(("allowed", i), d)
            for lay in g.layer_ids if g is not None else ():
                allowed[f"{rq.id}{REQUEST_SEP}{lay}"] = _dedupe(rq.allowed)
        for lay, ds in (rq.allowed if isinstance(rq.allowed, dict) else {}).items():
            if g is not None and lay not in g.layer_index:
                sec.unknown(("allowed", lay), lay, "a layer of its model", g.layer_ids)
            for i, d in enumerate(ds):
                check_dev(("allowed", lay, i), d)
            allowed[f"{rq.id}{REQUEST_SEP}{lay}"] = _dedupe(ds)
        for i, t in enumerate(rq.private):
            if g is not None and t not in g.tensor_index:
                sec.unknown(("private", i), t, "a model input or layer of its model", g.tensor_ids)
            private.append(f"{rq.id}{REQUEST_SEP}{t}")
        errors += sec.errors
        if not sec.errors and system is not None:
            specs.append(
                RequestSpec(
                    rq.id,
                    rq.model,
                    system.device_index[rq.source],
                    None if rq.sink is None else system.device_index[rq.sink],
                    weight,
                    rate,
                    release,
                    deadline,
                    prompt=None if rq.tokens is None else rq.tokens.prompt,
                    generate=None if rq.tokens is None else rq.tokens.generate,
                )
            )
    if any(rated) and not all(rated):
        first = rated.index(not rated[0])
        errors.append(
            InstanceError(file, format_path(["workload", first, "rate"]), "inconsistent rates",
                          "a rate on every request or on none (utilisation sums over all requests)")
        )
    return specs, allowed, private


def _build_problem_v2(
    sec: _Section, spec: ProblemV2Spec, system: System | None, allowed: dict[str, tuple[str, ...]], private: list[str]
) -> Problem:
    objective = _build_objective(sec, spec.objective)
    c = spec.constraints

    def check_devices(devs: Iterable[tuple[tuple[str | int, ...], str]]) -> None:
        for parts, dev in devs:
            if system is not None and dev not in system.device_index:
                sec.unknown(parts, dev, "a device", system.device_ids)

    check_devices((("energy_scope", j), d) for j, d in enumerate(spec.energy_scope or []))
    check_devices((("constraints", "energy_budget", d), d) for d in c.energy_budget)
    budget = {d: sec.quantity(("constraints", "energy_budget", d), b, "energy") for d, b in c.energy_budget.items()}
    if not math.isfinite(sum(budget.values()) if budget else 0.0):
        return Problem()
    constraints = Constraints(
        memory=c.memory is not False,
        energy_budget_j=MappingProxyType(budget),
        allowed=MappingProxyType(allowed),
        private=_dedupe(private),
        max_devices=c.max_devices,
        memory_model="params" if c.memory == "params" else "peak",
    )
    scope = None if spec.energy_scope is None else _dedupe(spec.energy_scope)
    # `schedule` is one joint parallel schedule; `none` and `share` measure sequential runs (§9.5).
    execution: Literal["sequential", "parallel"] = "parallel" if spec.contention == "schedule" else "sequential"
    return Problem(objective, execution, scope, constraints)


def workload_to_data(instance: Instance) -> dict[str, Any]:
    """A version-2 instance as instance-file data (SI numbers, everything inline) that loads back equal.

    Each model is written once, from the first request that runs it; routes are written as their
    mode, and explicit routes as the pairs whose route is not their direct channel.
    """
    from formulation.export import _plain, _system_data

    wl = instance.workload
    assert wl is not None
    g, s, p = instance.graph, instance.system, instance.problem
    c = p.constraints

    def local(x: str) -> str:
        return x.split(REQUEST_SEP, 1)[1]

    models: dict[str, Any] = {}
    for r in wl.requests:
        if r.model in models:
            continue
        layers = []
        for v in r.layers:
            lay = g.layers[v]
            entry: dict[str, Any] = {"id": local(lay.id), "op": lay.op, "inputs": [local(u) for u in lay.inputs],
                                     "flops": lay.flops, "param_bytes": lay.param_bytes,
                                     "output_bytes": lay.output_bytes, "workspace_bytes": lay.workspace_bytes}
            if (tk := wl.tokens_of(v)) is not None:  # per-token costs (§9.10)
                entry["tokens"] = tokens_data(tk)
            layers.append({**entry, **({"attrs": lay.attrs} if lay.attrs else {})})
        inputs = []
        for t in r.inputs:
            entry = {"id": local(g.tensor_ids[t]), "bytes": float(g.tensor_bytes[t])}
            if (tk := wl.tokens_of(t)) is not None:
                entry["tokens"] = tokens_data(tk)
            inputs.append(entry)
        models[r.model] = {
            "name": r.model,
            "inputs": inputs,
            "layers": layers,
            "outputs": [local(g.layer_ids[o]) for o in r.outputs],
        }
    system = {k: v for k, v in _system_data(instance).items() if k in ("devices", "links")}
    routing: Any = wl.routing
    if wl.routing == "explicit":
        ids = s.device_ids
        routing = {"routes": {f"{ids[a]}->{ids[b]}": [ids[route[0][0]], *(ids[h[1]] for h in route)]
                              for (a, b), route in sorted(wl.routes.items()) if len(route) > 1}}
    system["routing"] = routing
    if instance.latency_table:  # measured layer times, per model (§9.4)
        from formulation.loader_v2_latency import latency_data

        system["latency"] = latency_data(instance)
    workload = []
    for r in wl.requests:
        entry = {"id": r.id, "model": r.model, "source": s.device_ids[r.source], "weight": r.weight,
                 "release": r.release_s}
        if r.sink is not None:
            entry["sink"] = s.device_ids[r.sink]
        if r.rate is not None:
            entry["rate"] = r.rate
        if r.deadline_s is not None:
            entry["deadline"] = r.deadline_s
        if (gen := request_tokens_data(wl, wl.requests.index(r))) is not None:
            entry["tokens"] = gen
        prefix = f"{r.id}{REQUEST_SEP}"
        allowed = {local(v): list(ds) for v, ds in c.allowed.items() if v.startswith(prefix)}
        private = [local(t) for t in c.private if t.startswith(prefix)]
        if allowed:
            entry["allowed"] = allowed
        if private:
            entry["private"] = private
        workload.append(entry)
    memory: bool | str = "params" if c.memory and c.memory_model == "params" else c.memory
    constraints: dict[str, Any] = {"memory": memory}
    if c.energy_budget_j:
        constraints["energy_budget"] = c.energy_budget_j
    if c.max_devices is not None:
        constraints["max_devices"] = c.max_devices
    objective: Any = {"weighted": p.objective.weights} if p.objective.kind == "weighted" else p.objective.kind
    problem: dict[str, Any] = {"objective": objective, "aggregate": wl.aggregate, "contention": wl.contention}
    if p.energy_scope is not None:
        problem["energy_scope"] = p.energy_scope
    out: dict[str, Any] = {"dnnpart": 2, "name": instance.name}
    if instance.description:
        out["description"] = instance.description
    if p.scenarios is not None:  # network states (§10), as in version 1
        from formulation.loader_scenarios import scenarios_data

        out["scenarios"], robust = scenarios_data(p.scenarios)
        problem.update(robust)
    out.update(models=models, system=system, workload=workload, problem={**problem, "constraints": constraints})
    return cast(dict[str, Any], _plain(out))
