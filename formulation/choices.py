"""Model choices with accuracy: layer variants and early exits (docs/instance-format.md §11).

A layer may declare *variants* (quantised or pruned versions with their own FLOPs, weights and
workspace, and an accuracy change); a model may declare *exits* (BranchyNet, Teerapittayanon et al.,
ICPR 2016: a branch whose output may end the inference). A **configuration** is one variant per
layer (index 0 is the layer's own figures, the *base*) and, when exits are chosen, one exit. The
decision of a solver is a configuration and a placement.

Semantics, each exactly as documented in §11:

* ``choose`` (exits without probabilities; Edgent, Li et al., IEEE TWC 19(1), 2020): one exit ``e``
  is chosen; the inference runs the layers ``S_e`` (``e`` and its ancestors) and ``e``'s output is
  the model output. Accuracy ``A = acc(e) + sum of delta(v) over v in S_e``.
* ``expected`` (every exit with a probability; BranchyNet): every exit is deployed; a share ``p_k`` of
  the inputs leaves at exit ``k`` (exits are tried in list order), having run
  ``S_k = union of S_{e_j} for j <= k``. Latency, energy, cost and busy times are expectations
  ``sum_k p_k metric(path k)``; accuracy ``A = sum_k p_k (acc(e_k) + sum of delta(v) over S_{e_k})``.
* ``variants`` (no exits): one path, every layer; ``A = model accuracy + sum of delta(v)``.

Each path is an ordinary instance (:func:`path_instances`) judged by the cost model of §5 unchanged;
the *deployment* (every layer of some path, outputs: the configuration's exits) carries memory and
the static constraints. This module combines them (:func:`choice_batch`), once, for the evaluator
and for brute force.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from formulation.model import (
    BoolArray,
    FloatArray,
    Graph,
    Instance,
    IntArray,
    Layer,
    Problem,
)

#: Absolute tolerance of the accuracy constraint (float noise only).
ACCURACY_TOL = 1e-9


@dataclass(frozen=True)
class Variant:
    """A version of a layer: its figures replace the layer's own (docs/instance-format.md §11.1)."""

    name: str
    flops: float
    param_bytes: float
    workspace_bytes: float
    accuracy_delta: float


@dataclass(frozen=True)
class Exit:
    """An exit: the layer whose output ends the inference there, its accuracy and probability."""

    name: str
    layer: str
    accuracy: float
    probability: float | None = None


@dataclass(frozen=True)
class Choices:
    """Variants, exits and the accuracy objective and constraint of an instance (§11)."""

    variants: Mapping[str, tuple[Variant, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """``{layer id: declared variants}``; the base (the layer's own figures) is not listed."""
    exits: tuple[Exit, ...] = ()
    accuracy: float = 1.0
    """Accuracy of the full model with every layer's own figures (used without exits)."""
    maximise_accuracy: bool = False
    """``objective: accuracy``: maximise ``A`` (reported objective ``1 - A``)."""
    min_accuracy: float | None = None

    @property
    def mode(self) -> Literal["choose", "expected", "variants"]:
        """How exits are used: one chosen, all with probabilities, or none declared."""
        if not self.exits:
            return "variants"
        return "expected" if self.exits[0].probability is not None else "choose"


@dataclass(frozen=True)
class Config:
    """A configuration: ``variant[v]`` per layer index (0: base) and the chosen exit (choose mode)."""

    variant: tuple[int, ...]
    exit: int | None = None


@dataclass(frozen=True)
class Path:
    """One way an inference can go: its weight, its ordinary instance and its layers (indices of the
    full graph, in the order of the path instance's layers)."""

    weight: float
    instance: Instance
    layers: IntArray
    exit: str | None


@dataclass(frozen=True)
class Configured:
    """A configuration made concrete: its paths, its deployment and its accuracy."""

    config: Config
    paths: tuple[Path, ...]
    deployment: Instance
    deployed: IntArray
    """Indices (full graph) of the deployment's layers, in its own layer order."""
    accuracy: float


def choices_of(inst: Instance) -> Choices | None:
    """The instance's model choices, or None (every code path then unchanged)."""
    return getattr(inst.problem, "choices", None)


def variant_names(inst: Instance, v: int) -> tuple[str, ...]:
    """Names of layer ``v``'s variants, ``base`` first."""
    ch = choices_of(inst)
    extra = ch.variants.get(inst.graph.layer_ids[v], ()) if ch else ()
    return ("base", *(x.name for x in extra))


def closure(g: Graph, layer: int) -> BoolArray:
    """``layer`` and its ancestors (the layers an inference ending at ``layer`` runs)."""
    out = np.array(g.ancestors[:, layer], dtype=bool)
    out[layer] = True
    return out


def path_sets(inst: Instance, exit_index: int | None) -> list[tuple[float, BoolArray, tuple[int, ...]]]:
    """``(weight, layer set, output layers)`` of every path (§11.2)."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    if ch.mode == "variants":
        return [(1.0, np.ones(g.n, dtype=bool), g.outputs)]
    idx = [g.layer_index[e.layer] for e in ch.exits]
    if ch.mode == "choose":
        assert exit_index is not None
        e = idx[exit_index]
        return [(1.0, closure(g, e), (e,))]
    out: list[tuple[float, BoolArray, tuple[int, ...]]] = []
    acc = np.zeros(g.n, dtype=bool)
    for e, ex in zip(idx, ch.exits, strict=True):
        acc = acc | closure(g, e)
        out.append((float(ex.probability or 0.0), acc.copy(), (e,)))
    return out


def accuracy_of(inst: Instance, cfg: Config) -> float:
    """The accuracy ``A`` of a configuration (docs/instance-format.md §11.3)."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    delta = np.zeros(g.n)
    for v, j in enumerate(cfg.variant):
        if j:
            delta[v] = ch.variants[g.layer_ids[v]][j - 1].accuracy_delta
    if ch.mode == "variants":
        return float(ch.accuracy + delta.sum())
    if ch.mode == "choose":
        assert cfg.exit is not None
        ex = ch.exits[cfg.exit]
        return float(ex.accuracy + delta[closure(g, g.layer_index[ex.layer])].sum())
    return float(
        sum(
            (ex.probability or 0.0) * (ex.accuracy + delta[closure(g, g.layer_index[ex.layer])].sum())
            for ex in ch.exits
        )
    )


def _layer(lay: Layer, var: Variant | None) -> Layer:
    if var is None:
        return lay
    return replace(lay, flops=var.flops, param_bytes=var.param_bytes, workspace_bytes=var.workspace_bytes)


def _sub_instance(inst: Instance, cfg: Config, keep: BoolArray, outputs: tuple[int, ...], tag: str) -> Instance:
    """The ordinary instance of the layers ``keep`` with the configuration's variant figures.

    Constraints keep what concerns those layers; measured times (``system.latency``) apply to the
    base variant only. The objective is the problem's cost objective (latency when it is accuracy).
    """
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    layers = []
    for v in np.flatnonzero(keep):
        lay = g.layers[v]
        j = cfg.variant[v]
        layers.append(_layer(lay, ch.variants[lay.id][j - 1] if j else None))
    ids = {lay.id for lay in layers}
    graph = Graph(f"{g.name}{tag}", g.inputs, layers, [g.layer_ids[o] for o in outputs])
    c = inst.problem.constraints
    constraints = replace(
        c,
        allowed=MappingProxyType({v: d for v, d in c.allowed.items() if v in ids}),
        private=tuple(t for t in c.private if t in ids or t in g.input_ids),
        colocate=tuple(grp for grp in (tuple(v for v in group if v in ids) for group in c.colocate) if len(grp) > 1),
    )
    problem = Problem(inst.problem.objective, "sequential", inst.problem.energy_scope, constraints)
    base = {g.layer_ids[v] for v in range(g.n) if cfg.variant[v] == 0}
    table = MappingProxyType(
        {
            d: MappingProxyType({v: t for v, t in row.items() if v in ids and v in base})
            for d, row in inst.latency_table.items()
        }
    )
    return Instance(f"{inst.name}{tag}", graph, inst.system, problem, inst.description, table, inst.source_path)


def configure(inst: Instance, cfg: Config) -> Configured:
    """Paths, deployment and accuracy of a configuration (docs/instance-format.md §11.2)."""
    g, ch = inst.graph, choices_of(inst)
    has_exits = ch is not None and bool(ch.exits)
    sets = path_sets(inst, cfg.exit)
    paths = []
    deployed = np.zeros(g.n, dtype=bool)
    outs: list[int] = []
    for k, (w, keep, out) in enumerate(sets):
        sub = _sub_instance(inst, cfg, keep, out, f"#path{k}")
        idx = np.array([g.layer_index[v] for v in sub.graph.layer_ids], dtype=np.int64)
        paths.append(Path(w, sub, idx, g.layer_ids[out[0]] if has_exits else None))
        deployed |= keep
        outs += list(out)
    dep = _sub_instance(inst, cfg, deployed, tuple(dict.fromkeys(outs)), "#deployment")
    dep = dep.with_problem(
        replace(
            dep.problem,
            constraints=replace(dep.problem.constraints, deadline_s=None, energy_budget_j=MappingProxyType({})),
        )
    )
    didx = np.array([g.layer_index[v] for v in dep.graph.layer_ids], dtype=np.int64)
    return Configured(cfg, tuple(paths), dep, didx, accuracy_of(inst, cfg))


def configurations(inst: Instance) -> Iterator[Config]:
    """Every configuration: the variants of every layer times the exits (choose mode)."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    counts = [len(ch.variants.get(v, ())) + 1 for v in g.layer_ids]
    exits: list[int | None] = list(range(len(ch.exits))) if ch.mode == "choose" else [None]
    for e in exits:
        for combo in itertools.product(*(range(c) for c in counts)):
            yield Config(tuple(combo), e)


def count_configurations(inst: Instance) -> int:
    """Number of configurations (:func:`configurations`)."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    n = math.prod(len(ch.variants.get(v, ())) + 1 for v in g.layer_ids)
    return n * (len(ch.exits) if ch.mode == "choose" else 1)


def parse_config(inst: Instance, given: Mapping[str, Any] | None) -> Config:
    """A configuration from ``{variants: {layer: name}, exit: name}`` (§11.4); omitted layers run their
    base figures, an omitted exit is the last exit of the list. Raises ``ValueError``."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    given = dict(given or {})
    unknown = set(given) - {"variants", "exit"}
    if unknown:
        raise ValueError(f"choices: unknown keys {sorted(unknown)}; expected variants and exit")
    variant = [0] * g.n
    for lay, name in dict(given.get("variants") or {}).items():
        if lay not in g.layer_index:
            raise ValueError(f"choices.variants: {lay!r} is not a layer")
        names = variant_names(inst, g.layer_index[lay])
        if name not in names:
            raise ValueError(f"choices.variants.{lay}: {name!r} is not a variant of {lay!r} (one of {list(names)})")
        variant[g.layer_index[lay]] = names.index(name)
    exit_index = None
    if ch.mode == "choose":
        exit_names = [e.name for e in ch.exits]
        name = given.get("exit")
        if name is None:
            exit_index = len(exit_names) - 1
        elif name not in exit_names:
            raise ValueError(f"choices.exit: {name!r} is not an exit (one of {exit_names})")
        else:
            exit_index = exit_names.index(name)
    elif given.get("exit") is not None:
        raise ValueError("choices.exit: this instance has no exit to choose")
    return Config(tuple(variant), exit_index)


def choices_from_json(data: Any) -> dict[str, Any] | None:
    """The configuration inside a placement file (§11.4): a top-level ``choices``, or the
    ``metrics.choices`` of a result; None when there is none."""
    if not isinstance(data, Mapping):
        return None
    found = data.get("choices")
    if not isinstance(found, Mapping):
        metrics = data.get("metrics")
        found = metrics.get("choices") if isinstance(metrics, Mapping) else None
    if not isinstance(found, Mapping):
        return None
    return {k: found[k] for k in ("variants", "exit") if k in found}


def config_dict(inst: Instance, cfg: Config) -> dict[str, Any]:
    """The configuration as ``{variants: {layer: name}, exit: name}`` (layers with variants only)."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    out: dict[str, Any] = {
        "variants": {
            g.layer_ids[v]: variant_names(inst, v)[j]
            for v, j in enumerate(cfg.variant)
            if g.layer_ids[v] in ch.variants
        }
    }
    out["exit"] = ch.exits[cfg.exit].name if cfg.exit is not None else None
    return out


@dataclass(frozen=True)
class ChoiceBatch:
    """The metrics of one configuration under N placements (full-graph device indices), §11.2-§11.3."""

    configured: Configured
    latency: FloatArray
    """(N,) expected sequential latency ``sum_k p_k L_k``."""
    path_latency: FloatArray
    """(N, K) latency of every path."""
    energy: FloatArray
    """(N, k) expected energy per device."""
    energy_total: FloatArray
    cost: FloatArray
    busy: FloatArray
    link_busy: FloatArray
    link_bytes: FloatArray
    compute_time: FloatArray
    memory: FloatArray
    objective: FloatArray
    violations: dict[str, BoolArray]

    @cached_property
    def period(self) -> FloatArray:
        """(N,) the largest expected busy time of any device or channel (§11.2)."""
        dev = self.busy.max(axis=1)
        if self.link_busy.shape[1] == 0:
            return dev
        return np.asarray(np.maximum(dev, self.link_busy.max(axis=(1, 2))))

    def feasible(self) -> BoolArray:
        """(N,) no violation."""
        bad = np.zeros(self.latency.shape[0], dtype=bool)
        for v in self.violations.values():
            bad |= v
        return ~bad


def choice_batch(inst: Instance, conf: Configured, P: IntArray) -> ChoiceBatch:
    """Judge N placements ``P`` (N, n) of the full graph under one configuration: every path by the
    ordinary vectorised cost model, combined as documented in §11.2 (the one place it is combined)."""
    from formulation.evaluator.batch import REL_TOL, batch_metrics

    ch = choices_of(inst)
    assert ch is not None
    P = np.atleast_2d(np.asarray(P, dtype=np.int64))
    N, k = P.shape[0], inst.k
    bd = batch_metrics(conf.deployment, P[:, conf.deployed], parallel=False)
    L = np.zeros(N)
    Ls = np.zeros((N, len(conf.paths)))
    energy = np.zeros((N, k))
    cost = np.zeros(N)
    busy = np.zeros((N, k))
    comp = np.zeros((N, k))
    link_busy = np.zeros((N, k, k))
    link_bytes = np.zeros((N, k, k))
    for i, path in enumerate(conf.paths):
        bm = batch_metrics(path.instance, P[:, path.layers], parallel=False)
        Lk = bm.latency_sequential
        Ls[:, i] = Lk
        w = path.weight
        with np.errstate(invalid="ignore"):
            L = L + w * Lk
            energy = energy + w * bm.energy(Lk)
            cost = cost + w * bm.cost
            busy = busy + w * bm.busy
            comp = comp + w * bm.compute_time
            link_busy = link_busy + w * bm.link_busy
            link_bytes = link_bytes + w * bm.link_bytes
    scope = inst.scope_mask
    e_total = energy[:, scope].sum(axis=1)
    violations = dict(bd.static_violations)
    c = inst.problem.constraints
    if c.deadline_s is not None:
        with np.errstate(invalid="ignore"):
            violations["deadline"] = np.asarray(~(c.deadline_s * (1 + REL_TOL) >= Ls).all(axis=1), dtype=bool)
    if c.energy_budget_j:
        bad = np.zeros(N, dtype=bool)
        for dev, budget in c.energy_budget_j.items():
            with np.errstate(invalid="ignore"):
                bad |= ~(energy[:, inst.system.device_index[dev]] <= budget * (1 + REL_TOL) + 1e-15)
        violations["energy_budget"] = bad
    if ch.min_accuracy is not None:
        violations["accuracy"] = np.full(N, conf.accuracy < ch.min_accuracy - ACCURACY_TOL)
    batch = ChoiceBatch(
        conf,
        L,
        Ls,
        energy,
        e_total,
        cost,
        busy,
        link_busy,
        link_bytes,
        comp,
        bd.memory,
        np.zeros(N),
        violations,
    )
    if ch.maximise_accuracy:
        obj = np.full(N, 1.0 - conf.accuracy)
    else:
        obj = np.zeros(N)
        metric = {"latency": L, "energy": e_total, "cost": cost, "throughput": batch.period}
        for name, w in inst.problem.objective.terms().items():
            if w:
                obj = obj + w * metric[name]
    # a path that never completes makes every objective infinite (as in §5)
    obj = np.where(np.isfinite(Ls).all(axis=1), obj, np.inf)
    return replace(batch, objective=obj)
