"""Load instance files (format version 1) into :class:`~formulation.model.Instance` objects.

Loading goes: read the file safely (:mod:`formulation.yamlio`), check the version, resolve
``{file: PATH}`` / ``{file: PATH#KEY}`` references for ``model`` and ``system``, check the shape
of each section (:mod:`formulation.schema`), convert every quantity to SI (:mod:`formulation.units`),
check cross-references and value ranges, and build the immutable model objects.

Every problem is an :class:`~formulation.errors.InstanceError` naming the file the problem is in
(a referenced model or system file where that is where it is), the field path inside it, the
offending value and what was expected; independent problems are reported together as
:class:`~formulation.errors.InstanceErrors`.

Static infeasibility (a private input on an untrusted source, a layer too big for every device)
is not a load error: such a file is valid and simply has no feasible placement.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from formulation.errors import InstanceError, InstanceErrors
from formulation.model import (
    OBJECTIVES,
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    Shardable,
    System,
)
from formulation.schema import (
    FORMAT_VERSION,
    MISSING,
    DeviceSpec,
    FileRef,
    InstanceHeader,
    LayerSpec,
    LinkSpec,
    ModelSpec,
    ProblemSpec,
    ShardableSpec,
    SystemSpec,
    format_path,
    validate_section,
)
from formulation.units import Kind, expected_text, parse_quantity
from formulation.yamlio import ReferenceReader, check_tree, load_file

MAX_REFERENCE_DEPTH = 8
"""Longest chain of ``file:`` references followed for one section."""
MAX_REPORTED = 50
"""Most problems listed in one InstanceErrors; the rest are counted."""

Rule = Literal["positive", "nonneg"]
Part = str | int


class _Section:
    """Where a section lives (its file as shown to users, its path there) and the problems in it.

    Model, system and problem each get one, so that a broken model still lets the problems of
    the system and the problem be reported in the same run.
    """

    def __init__(self, file: str, prefix: str) -> None:
        self.file = file
        self.prefix = prefix
        self.errors: list[InstanceError] = []

    def at(self, *parts: Part) -> str:
        return format_path(parts, self.prefix)

    def error(self, parts: tuple[Part, ...], value: Any, expected: str) -> None:
        self.errors.append(InstanceError(self.file, self.at(*parts), value, expected))

    def absorb(self, exc: InstanceError) -> None:
        self.errors.extend(exc.errors if isinstance(exc, InstanceErrors) else [exc])

    def unknown(self, parts: tuple[Part, ...], value: Any, what: str, known: Sequence[str]) -> None:
        """An id that names nothing; suggest a close one, or list the few there are."""
        text = f"the id of {what}"
        close = difflib.get_close_matches(str(value), list(known), n=1)
        if close:
            text += f" (did you mean {close[0]!r}?)"
        elif 0 < len(known) <= 8:
            text += f" (one of {', '.join(known)})"
        self.error(parts, value, text)

    def quantity(self, parts: tuple[Part, ...], raw: Any, kind: Kind, rule: Rule = "nonneg") -> float:
        """Parse one quantity and check its sign; NaN (never used: the load fails) when wrong."""
        try:
            value = parse_quantity(raw, kind, file=self.file, path=self.at(*parts))
        except InstanceError as exc:
            self.absorb(exc)
            return math.nan
        if rule == "positive" and not value > 0:
            self.error(parts, raw, f"{expected_text(kind)}, greater than 0")
            return math.nan
        if rule == "nonneg" and value < 0:
            self.error(parts, raw, f"{expected_text(kind)}, not negative")
            return math.nan
        return value


def _raise(errors: list[InstanceError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            more = f"{len(errors) - MAX_REPORTED} more problems"
            shown.append(InstanceError(errors[0].file, "", more, "fewer problems (fix the above first)"))
        raise InstanceErrors(shown)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# -- References ------------------------------------------------------------------------------------


#: The key that marks referenced data as a section of its kind (``model`` data lists ``layers``).
_SECTION_KEYS = {"model": "layers", "system": "devices"}


def _is_section(value: Any, kind: str) -> bool:
    """Whether referenced data looks like a ``kind`` section (or a further reference) at all."""
    if not isinstance(value, dict):
        return False
    return _SECTION_KEYS[kind] in value or (set(value) == {"file"} and isinstance(value["file"], str))


def _resolve(
    reader: ReferenceReader, value: Any, sec: _Section, base_dir: Path, kind: str
) -> tuple[Any, _Section]:
    """The section data behind ``value`` and where it lives (``value`` itself when inline).

    Data read from a referenced file must look like a ``kind`` section (a mapping with its key,
    e.g. ``layers``) before anything in it is shown: a reference may name any file inside the
    fence, and a message quoting the content of a file that is not an instance file could leak
    it (a key file, a password file). Such a file is refused without quoting it.
    """
    seen: set[tuple[Path, str]] = set()
    for _ in range(MAX_REFERENCE_DEPTH):
        if not (isinstance(value, dict) and "file" in value):
            return value, sec
        ref = validate_section(FileRef, value, file=sec.file, prefix=sec.prefix).file
        site = sec.at("file")
        value, shown, key, real = reader.read(ref, naming_file=sec.file, site=site, base_dir=base_dir)
        if (real, key) in seen:
            raise InstanceError(sec.file, site, ref, "references that do not lead back to themselves")
        if not _is_section(value, kind):
            where = f"the key {key!r} of {shown}" if key else shown
            raise InstanceError(
                sec.file,
                site,
                ref,
                f"a {kind} file: {where} should be a mapping with the key {_SECTION_KEYS[kind]!r} "
                "(it is not; its content is not shown, since it may not be an instance file)",
            )
        seen.add((real, key))
        sec, base_dir = _Section(shown, format_path([key]) if key else ""), real.parent
    if isinstance(value, dict) and "file" in value:
        expected = f"a chain of at most {MAX_REFERENCE_DEPTH} file: references"
        raise InstanceError(sec.file, sec.at("file"), value["file"], expected)
    return value, sec


# -- Model -----------------------------------------------------------------------------------------


def _find_cycle(layers: Sequence[LayerSpec]) -> list[str]:
    """Ids on one cycle of the layer graph in data-flow order, closed (``[a, b, a]``); ``[]`` if none."""
    import networkx as nx

    g: nx.DiGraph = nx.DiGraph()
    g.add_nodes_from(lay.id for lay in layers)  # file order, so the search (and message) is stable
    g.add_edges_from((u, lay.id) for lay in layers for u in lay.inputs if u in g)
    try:
        edges = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return []
    return [u for u, _ in edges] + [edges[0][0]]


def _shardable(sec: _Section, i: int, spec: ShardableSpec | None) -> Shardable | None:
    """The layer's tensor-parallel declaration (docs/instance-format.md §2.6), bytes in SI."""
    if spec is None:
        return None
    nbytes = None
    if spec.comm_bytes is not None:
        nbytes = sec.quantity(("layers", i, "shardable", "comm_bytes"), spec.comm_bytes, "bytes")
    return Shardable(spec.max_degree, spec.comm, nbytes)


def _build_graph(sec: _Section, spec: ModelSpec, default_name: str) -> Graph | None:
    first: dict[str, str] = {}  # tensor id -> path of its definition
    entries = [("inputs", j, t.id) for j, t in enumerate(spec.inputs)]
    entries += [("layers", i, lay.id) for i, lay in enumerate(spec.layers)]
    for key, i, tid in entries:
        if tid in first:
            sec.error((key, i, "id"), tid, f"an id not used before (already {first[tid]})")
        first.setdefault(tid, sec.at(key, i, "id"))
    inputs = [
        ModelInput(t.id, sec.quantity(("inputs", j, "bytes"), t.bytes, "bytes"))
        for j, t in enumerate(spec.inputs)
    ]
    layers: list[Layer] = []
    for i, lay in enumerate(spec.layers):
        for j, u in enumerate(lay.inputs):
            if u not in first:
                sec.unknown(("layers", i, "inputs", j), u, "a model input or layer", list(first))
        flops, out_b, par_b, ws_b = (
            sec.quantity(("layers", i, k), getattr(lay, k), "flops" if k == "flops" else "bytes")
            for k in ("flops", "output_bytes", "param_bytes", "workspace_bytes")
        )
        attrs = MappingProxyType(dict(lay.attrs or {}))
        shard = _shardable(sec, i, lay.shardable)
        layers.append(Layer(lay.id, lay.op, _dedupe(lay.inputs), flops, out_b, par_b, ws_b, attrs, shard))
    if not sec.errors:  # a cycle is only meaningful once every id is unique and known
        cycle = _find_cycle(spec.layers)
        if cycle:
            i = next(k for k, lay in enumerate(spec.layers) if lay.id == cycle[0])
            text = "an acyclic graph; these layers form a cycle: " + " -> ".join(cycle)
            sec.error(("layers", i, "inputs"), cycle, text)
    layer_ids = [lay.id for lay in spec.layers]
    for j, out in enumerate(spec.outputs or []):
        if out in first and out not in layer_ids:
            sec.error(("outputs", j), out, "a layer, not a model input")
        elif out not in first:
            sec.unknown(("outputs", j), out, "a layer", layer_ids)
    if sec.errors:
        return None
    try:
        return Graph(spec.name or default_name, inputs, layers, spec.outputs)
    except ValueError as exc:  # the checks above should have caught it; keep the file in the message
        sec.error((), spec.name, f"a valid graph ({exc})")
        return None


# -- System ----------------------------------------------------------------------------------------

_LINK_FIELDS: tuple[tuple[str, Kind, Rule], ...] = (
    ("bandwidth", "byte_rate", "positive"),
    ("latency", "time", "nonneg"),
    ("tx_power", "power", "nonneg"),
    ("rx_power", "power", "nonneg"),
    ("price", "usd_per_byte", "nonneg"),
    ("overhead", "time", "nonneg"),
)


def _build_device(sec: _Section, d: DeviceSpec, i: int) -> Device:
    def q(key: str, kind: Kind, rule: Rule = "nonneg") -> float:
        return sec.quantity(("devices", i, key), getattr(d, key), kind, rule)

    bandwidth = None if d.memory_bandwidth is None else q("memory_bandwidth", "byte_rate", "positive")
    return Device(
        d.id,
        q("compute", "flop_rate", "positive"),
        tier=d.tier,
        memory_bandwidth_bytes_per_s=bandwidth,
        memory_bytes=math.inf if d.memory is None else q("memory", "bytes"),
        power_active_w=q("power_active", "power"),
        power_idle_w=q("power_idle", "power"),
        price_usd_per_s=q("price", "usd_rate"),
        trusted=d.trusted,
        comm_overlap=d.comm_overlap,
        send_once=d.send_once,
    )


def _build_links(sec: _Section, links: Sequence[LinkSpec], devices: Sequence[str]) -> list[Link]:
    out: list[Link] = []
    defined: dict[tuple[str, str], str] = {}  # directed channel -> path of the link defining it
    for i, lk in enumerate(links):
        n_before = len(sec.errors)
        for key, dev in (("from", lk.from_), ("to", lk.to)):
            if dev not in devices:
                sec.unknown(("links", i, key), dev, "a device", devices)
        if len(sec.errors) == n_before and lk.from_ == lk.to:
            sec.error(("links", i, "to"), lk.to, f"a device other than {lk.from_!r} (links join two devices)")
        ends_ok = len(sec.errors) == n_before
        values = [sec.quantity(("links", i, k), getattr(lk, k), kind, rule) for k, kind, rule in _LINK_FIELDS]
        obw = math.inf
        if lk.overhead_bandwidth is not None:
            obw = sec.quantity(("links", i, "overhead_bandwidth"), lk.overhead_bandwidth, "byte_rate", "positive")
        if not ends_ok:
            continue
        for a, b in [(lk.from_, lk.to)] + ([(lk.to, lk.from_)] if lk.bidirectional else []):
            if (a, b) in defined:
                text = f"each directed channel defined once; {a} -> {b} is defined by {defined[(a, b)]}"
                sec.error(("links", i), f"{a} -> {b}", text)
                continue
            defined[(a, b)] = sec.at("links", i)
            bw, lat, tx, rx, price, overhead = values  # the order of _LINK_FIELDS
            out.append(Link(a, b, bw, lat, tx, rx, price, overhead, obw))
    return out


def _build_system(
    sec: _Section, spec: SystemSpec, graph: Graph | None
) -> tuple[System | None, dict[str, dict[str, float]]]:
    ids: list[str] = []
    devices: list[Device] = []
    for i, d in enumerate(spec.devices):
        if d.id in ids:
            first = sec.at("devices", ids.index(d.id), "id")
            sec.error(("devices", i, "id"), d.id, f"an id not used before (already {first})")
        else:
            ids.append(d.id)
            devices.append(_build_device(sec, d, i))
    links = _build_links(sec, spec.links, ids)
    for key, dev in (("source", spec.source), ("sink", spec.sink)):
        if dev is not None and dev not in ids:
            sec.unknown((key,), dev, "a device", ids)
    table: dict[str, dict[str, float]] = {}
    for dev, times in spec.latency.items():
        if dev not in ids:
            sec.unknown(("latency", dev), dev, "a device", ids)
            continue
        row = table.setdefault(dev, {})
        for lay, raw in times.items():
            if graph is not None and lay not in graph.layer_index:
                sec.unknown(("latency", dev, lay), lay, "a layer of the model", graph.layer_ids)
            else:
                row[lay] = sec.quantity(("latency", dev, lay), raw, "time")
    if sec.errors:
        return None, table
    try:
        return System(devices, links, spec.source, spec.sink), table
    except (ValueError, KeyError) as exc:
        sec.error((), ids, f"a valid system ({exc})")
        return None, table


# -- Problem ---------------------------------------------------------------------------------------


def _build_objective(sec: _Section, raw: str | dict[str, Any]) -> Objective:
    names = ", ".join(OBJECTIVES)
    if isinstance(raw, str):
        if raw in OBJECTIVES:
            return Objective(cast(Any, raw))
        if raw == "accuracy":  # maximised over the model choices (§11); the costs keep latency
            return Objective()
        close = difflib.get_close_matches(raw, [*OBJECTIVES, "weighted"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close and close[0] != raw else ""
        expected = f"one of {names}, or {{weighted: {{metric: weight}}}}{hint}"
        if raw == "weighted":
            expected = "weights for weighted, e.g. {weighted: {latency: 1.0, energy: 0.05}}"
        sec.error(("objective",), raw, expected)
        return Objective()
    extra = [k for k in raw if k != "weighted"]
    if extra or "weighted" not in raw:
        bad = raw[extra[0]] if extra else MISSING
        sec.error(("objective", *extra[:1]), bad, "the one key weighted: {weighted: {metric: weight}}")
        return Objective()
    given = raw["weighted"]
    if not isinstance(given, dict) or not given:
        sec.error(("objective", "weighted"), given, f"a non-empty mapping {{metric: weight}} over {names}")
        return Objective()
    weights: dict[str, float] = {}
    n_before = len(sec.errors)
    for name, w in given.items():
        if name not in OBJECTIVES:
            sec.error(("objective", "weighted", str(name)), name, f"a metric name, one of {names}")
        else:
            weights[name] = sec.quantity(("objective", "weighted", name), w, "number")
    if len(sec.errors) == n_before and not any(v > 0 for v in weights.values()):
        sec.error(("objective", "weighted"), given, "weights >= 0, at least one of them > 0")
    if len(sec.errors) > n_before:  # reported with its field path; Objective would refuse it too
        return Objective()
    return Objective("weighted", MappingProxyType(weights))


def _build_problem(sec: _Section, raw: Any, graph: Graph | None, system: System | None) -> Problem:
    if raw is None:
        return Problem()
    spec = validate_section(ProblemSpec, raw, file=sec.file, prefix=sec.prefix)
    objective = _build_objective(sec, spec.objective)
    c = spec.constraints

    def check_devices(devs: Iterable[tuple[tuple[Part, ...], str]]) -> None:
        for parts, dev in devs:
            if system is not None and dev not in system.device_index:
                sec.unknown(parts, dev, "a device", system.device_ids)

    check_devices((("energy_scope", j), d) for j, d in enumerate(spec.energy_scope or []))
    check_devices((("constraints", "energy_budget", d), d) for d in c.energy_budget)
    for lay, devs in c.allowed.items():
        if graph is not None and lay not in graph.layer_index:
            sec.unknown(("constraints", "allowed", lay), lay, "a layer", graph.layer_ids)
        check_devices((("constraints", "allowed", lay, j), d) for j, d in enumerate(devs))
    for j, t in enumerate(c.private):
        if graph is not None and t not in graph.tensor_index:
            sec.unknown(("constraints", "private", j), t, "a model input or layer", graph.tensor_ids)
    for j, group in enumerate(c.colocate):
        for i, lay in enumerate(group):
            if graph is not None and lay not in graph.layer_index:
                sec.unknown(("constraints", "colocate", j, i), lay, "a layer", graph.layer_ids)
    deadline = None
    if c.deadline is not None:
        deadline = sec.quantity(("constraints", "deadline"), c.deadline, "time", "positive")
    budget = {
        d: sec.quantity(("constraints", "energy_budget", d), b, "energy") for d, b in c.energy_budget.items()
    }
    constraints = Constraints(
        memory=c.memory is not False,
        deadline_s=deadline,
        energy_budget_j=MappingProxyType(budget),
        allowed=MappingProxyType({lay: _dedupe(devs) for lay, devs in c.allowed.items()}),
        private=_dedupe(c.private),
        contiguous=c.contiguous,
        pipeline=c.pipeline,
        max_devices=c.max_devices,
        colocate=tuple(_dedupe(group) for group in c.colocate),
        memory_model="params" if c.memory == "params" else "peak",
    )
    scope = None if spec.energy_scope is None else _dedupe(spec.energy_scope)
    return Problem(objective, spec.execution, scope, constraints)


# -- Entry points ----------------------------------------------------------------------------------


def _roots(base_dir: Path | None) -> tuple[Path, ...]:
    roots = [Path.cwd().resolve()]
    if base_dir is not None:
        roots.insert(0, Path(base_dir).resolve())
    return tuple(dict.fromkeys(roots))


def load_instance(path: str | os.PathLike[str], *, allow_outside: bool = False) -> Instance:
    """Load and validate an instance file (YAML or JSON).

    Parameters
    ----------
    path : str or path-like
        The instance file; ``.json`` files are read as JSON, others as YAML.
    allow_outside : bool
        Follow ``file:`` references that resolve (after symlinks) outside both the instance file's
        directory and the current working directory; refused by default.

    Returns
    -------
    Instance
        The validated instance, all quantities in SI base units.

    Raises
    ------
    InstanceError
        The first problem found, or :class:`~formulation.errors.InstanceErrors` listing several.
    """
    p = Path(path)
    data = load_file(p, display=str(path))
    return _build(data, str(path), p.parent, allow_outside, str(path))


def load_instance_data(
    data: Mapping[str, Any],
    *,
    file: str = "<dict>",
    base_dir: str | os.PathLike[str] | None = None,
    allow_outside: bool = False,
) -> Instance:
    """Validate in-memory instance data (the structure of an instance file).

    Parameters
    ----------
    data : mapping
        The parsed file: ``{dnnpart: 1, name: ..., model: ..., system: ..., problem: ...}``.
    file : str
        Name used in error messages.
    base_dir : str or path-like, optional
        Directory that ``file:`` references are relative to; default the working directory.
    allow_outside : bool
        Follow references that resolve outside ``base_dir`` and the working directory.

    Returns
    -------
    Instance
        The validated instance.

    Raises
    ------
    InstanceError
        The first problem found, or :class:`~formulation.errors.InstanceErrors` listing several.
    """
    base = Path(base_dir) if base_dir is not None else None
    check_tree(data, file)  # files are checked as they are read; in-memory data here
    return _build(data, file, base, allow_outside, None)


def _build(
    data: Any, file: str, base_dir: Path | None, allow_outside: bool, source_path: str | None
) -> Instance:
    if not isinstance(data, Mapping):
        raise InstanceError(file, "", data, "a mapping with keys dnnpart, name, model, system (and problem)")
    if "dnnpart" not in data:
        raise InstanceError(
            file,
            "dnnpart",
            MISSING,
            f"the format version key 'dnnpart: {FORMAT_VERSION}' (is this an instance file? "
            "model and system files are named from one by {file: PATH})",
        )
    version = data["dnnpart"]
    if not isinstance(version, bool) and isinstance(version, int) and version == 2:
        from formulation.loader_v2 import build_v2  # version 2: docs/instance-format.md §9

        return build_v2(data, file, base_dir, allow_outside, source_path)
    if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
        raise InstanceError(file, "dnnpart", version, f"the format version {FORMAT_VERSION} or 2 (an integer)")
    header = validate_section(InstanceHeader, dict(data), file=file)
    reader = ReferenceReader(_roots(base_dir), allow_outside)
    here = base_dir if base_dir is not None else Path.cwd()

    graph: Graph | None = None
    model_sec = _Section(file, "model")
    try:
        raw, model_sec = _resolve(reader, header.model, model_sec, here, "model")
        spec = validate_section(ModelSpec, raw, file=model_sec.file, prefix=model_sec.prefix)
        graph = _build_graph(model_sec, spec, header.name)
    except InstanceError as exc:
        model_sec.absorb(exc)

    system: System | None = None
    table: dict[str, dict[str, float]] = {}
    system_sec = _Section(file, "system")
    try:
        raw, system_sec = _resolve(reader, header.system, system_sec, here, "system")
        sys_spec = validate_section(SystemSpec, raw, file=system_sec.file, prefix=system_sec.prefix)
        system, table = _build_system(system_sec, sys_spec, graph)
    except InstanceError as exc:
        system_sec.absorb(exc)

    problem = Problem()
    problem_sec = _Section(file, "problem")
    try:
        problem = _build_problem(problem_sec, header.problem, graph, system)
    except InstanceError as exc:
        problem_sec.absorb(exc)
    scenario_sec = _Section(file, "scenarios")
    if system is not None and not problem_sec.errors:
        from formulation.loader_scenarios import with_scenarios  # network states: §10

        try:
            problem = with_scenarios(scenario_sec, problem, header.scenarios, header.problem, system)
        except InstanceError as exc:
            scenario_sec.absorb(exc)
    if graph is not None and not model_sec.errors and not problem_sec.errors:
        from formulation.loader_choices import add_choices  # variants and exits: §11

        try:
            problem = add_choices(model_sec, problem_sec, spec, header.problem, graph, problem)
        except InstanceError as exc:
            model_sec.absorb(exc)
    _raise(model_sec.errors + system_sec.errors + problem_sec.errors + scenario_sec.errors)
    assert graph is not None and system is not None  # no errors means both were built
    latency = MappingProxyType({d: MappingProxyType(row) for d, row in table.items()})
    return Instance(header.name, graph, system, problem, header.description, latency, source_path)


from formulation.export import instance_to_data  # noqa: E402  (the export lives beside the loader)

__all__ = ["instance_to_data", "load_instance", "load_instance_data"]
