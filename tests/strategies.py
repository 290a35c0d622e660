"""Hypothesis strategies: random tiny instances covering every feature of the cost model.

Thin wrappers: the builders are :func:`formulation.generators.tiny_graph`, ``tiny_system``,
``tiny_problem`` and ``tiny_instance`` (the one random-instance module), fed by hypothesis draws so
that failing examples shrink.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from formulation import generators as gen
from formulation.model import Graph, Instance, Problem, System


class _Draws:
    """:class:`formulation.generators.Chooser` over one hypothesis ``draw``."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[Any]) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def distinct(self, options: Sequence[Any], k: int) -> list[Any]:
        return self.draw(st.lists(st.sampled_from(list(options)), min_size=k, max_size=k, unique=True))

    def boolean(self) -> bool:
        return self.draw(st.booleans())


@st.composite
def graphs(draw: st.DrawFn, max_layers: int = 6) -> Graph:
    """A random DAG: each layer reads 1-2 earlier tensors (model inputs or layers)."""
    return gen.tiny_graph(_Draws(draw), max_layers)


@st.composite
def systems(draw: st.DrawFn, max_devices: int = 3) -> System:
    """2-3 devices, random figures; links possibly one-way or missing (never from the source)."""
    return gen.tiny_system(_Draws(draw), max_devices)


@st.composite
def problems(draw: st.DrawFn, g: Graph, s: System, constraints: bool = True) -> Problem:
    """Any objective, either execution mode, optional constraints."""
    return gen.tiny_problem(_Draws(draw), g, s, constraints)


@st.composite
def instances(draw: st.DrawFn, max_layers: int = 6, max_devices: int = 3, constraints: bool = True) -> Instance:
    """A random tiny instance."""
    return gen.tiny_instance(_Draws(draw), max_layers, max_devices, constraints)
