"""Load layer variants, exits and the accuracy fields of an instance file (docs/instance-format.md §11).

Checked here with the loader's messages (file, field path, value, what was expected) and attached to
the :class:`~formulation.model.Problem` as a :class:`~formulation.choices.Choices`. A file with no
``variants``, ``exits``, ``model.accuracy``, ``objective: accuracy`` or ``constraints.min_accuracy``
gets ``None``: its meaning is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from formulation.choices import Choices, Exit, Variant
from formulation.model import Graph, Problem
from formulation.schema import ModelSpec

if TYPE_CHECKING:
    from formulation.loader import _Section

#: Tolerance of the sum of the exit probabilities.
PROBABILITY_SUM_TOL = 1e-9


def _fraction(sec: _Section, parts: tuple[str | int, ...], value: float | None, low: float = 0.0) -> None:
    if value is not None and not (isinstance(value, int | float) and low <= value <= 1.0 and math.isfinite(value)):
        sec.error(parts, value, f"a number in [{low:g}, 1]")


def _variants(sec: _Section, spec: ModelSpec) -> dict[str, tuple[Variant, ...]]:
    out: dict[str, tuple[Variant, ...]] = {}
    for i, lay in enumerate(spec.layers):
        if not lay.variants:
            continue
        names: set[str] = set()
        found = []
        for j, var in enumerate(lay.variants):
            at: tuple[str | int, ...] = ("layers", i, "variants", j)
            if var.name == "base" or var.name in names:
                sec.error((*at, "name"), var.name, "a name unique among the layer's variants, other than 'base'")
            names.add(var.name)
            figures = []
            keys: tuple[tuple[str, Literal["flops", "bytes"]], ...] = (
                ("flops", "flops"),
                ("param_bytes", "bytes"),
                ("workspace_bytes", "bytes"),
            )
            for key, kind in keys:
                raw = getattr(var, key)
                base = getattr(lay, key)
                figures.append(sec.quantity((*at, key), raw if raw is not None else base, kind))
            _fraction(sec, (*at, "accuracy_delta"), var.accuracy_delta, -1.0)
            found.append(Variant(var.name, figures[0], figures[1], figures[2], float(var.accuracy_delta)))
        out[lay.id] = tuple(found)
    return out


def _exits(sec: _Section, spec: ModelSpec, graph: Graph) -> tuple[Exit, ...]:
    exits = spec.exits or []
    names: set[str] = set()
    out = []
    for j, ex in enumerate(exits):
        at: tuple[str | int, ...] = ("exits", j)
        if ex.name in names:
            sec.error((*at, "name"), ex.name, "a name unique among the exits")
        names.add(ex.name)
        if ex.layer not in graph.layer_index:
            sec.unknown((*at, "layer"), ex.layer, "a layer", graph.layer_ids)
        _fraction(sec, (*at, "accuracy"), ex.accuracy)
        _fraction(sec, (*at, "probability"), ex.probability)
        out.append(
            Exit(ex.name, ex.layer, float(ex.accuracy), None if ex.probability is None else float(ex.probability))
        )
    if not out:
        return ()
    given = [e.probability is not None for e in out]
    if any(given) and not all(given):
        sec.error(("exits",), [e.name for e in out], "a probability for every exit or for none")
    elif all(given) and abs(sum(e.probability or 0.0 for e in out) - 1.0) > PROBABILITY_SUM_TOL:
        sec.error(("exits",), [e.probability for e in out], "probabilities that sum to 1")
    layers = [e.layer for e in out]
    outputs = [graph.layer_ids[o] for o in graph.outputs]
    if len(set(layers)) != len(layers) or set(layers) != set(outputs):
        sec.error(
            ("exits",),
            layers,
            f"one exit per model output, each on an output layer (the model outputs are {outputs})",
        )
    if spec.accuracy is not None:
        sec.error(("accuracy",), spec.accuracy, "no model accuracy with exits (each exit has its own)")
    return tuple(out)


def add_choices(
    model_sec: _Section, problem_sec: _Section, spec: ModelSpec, raw_problem: Any, graph: Graph, problem: Problem
) -> Problem:
    """``problem`` with the file's model choices attached (unchanged when the file declares none)."""
    given = raw_problem if isinstance(raw_problem, Mapping) else {}
    constraints = given.get("constraints") if isinstance(given.get("constraints"), Mapping) else {}
    maximise = given.get("objective") == "accuracy"
    min_acc = constraints.get("min_accuracy") if constraints else None
    declared = any(lay.variants for lay in spec.layers) or spec.exits or spec.accuracy is not None
    if not (declared or maximise or min_acc is not None):
        return problem
    n_before = len(model_sec.errors) + len(problem_sec.errors)
    variants = _variants(model_sec, spec)
    exits = _exits(model_sec, spec, graph)
    _fraction(model_sec, ("accuracy",), spec.accuracy)
    _fraction(problem_sec, ("constraints", "min_accuracy"), min_acc)
    if problem.execution != "sequential":
        problem_sec.error(("execution",), problem.execution, "sequential with variants, exits or accuracy (§11.2)")
    if problem.scenarios is not None:
        problem_sec.error(("objective",), given.get("objective"), "no network states with variants or exits (§11)")
    if len(model_sec.errors) + len(problem_sec.errors) > n_before:  # reported by the loader
        return problem
    choices = Choices(
        variants=MappingProxyType(variants),
        exits=exits,
        accuracy=1.0 if spec.accuracy is None else float(spec.accuracy),
        maximise_accuracy=maximise,
        min_accuracy=None if min_acc is None else float(min_acc),
    )
    return replace(problem, choices=choices)
