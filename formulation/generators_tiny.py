"""Tiny instances from discrete choices: hypothesis draws or a seeded generator.

The builders here (:func:`tiny_graph`, :func:`tiny_system`, :func:`tiny_problem`,
:func:`tiny_instance`) are fed by a :class:`Chooser`: the hypothesis strategies of the tests
(``tests/strategies.py``, which shrink) or :class:`RngChooser` over a seed. They are re-exported by
:mod:`formulation.generators`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from formulation.model import (
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)


class Chooser(Protocol):
    """Where the choices of the ``tiny_*`` builders come from: hypothesis draws (the strategies of
    ``tests/strategies.py``, which shrink) or a seeded generator (:class:`RngChooser`)."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``lo..hi`` (both included)."""
        ...

    def choice(self, options: Sequence[Any]) -> Any:
        """One of ``options``."""
        ...

    def distinct(self, options: Sequence[Any], k: int) -> list[Any]:
        """``k`` different elements of ``options``."""
        ...

    def boolean(self) -> bool:
        """True or False."""
        ...


class RngChooser:
    """:class:`Chooser` over ``numpy.random.default_rng(seed)``."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def distinct(self, options: Sequence[Any], k: int) -> list[Any]:
        return [options[int(i)] for i in self.rng.choice(len(options), size=k, replace=False)]

    def boolean(self) -> bool:
        return bool(self.rng.integers(2))


def tiny_graph(pick: Chooser, max_layers: int = 6) -> Graph:
    """A DAG of 1..``max_layers`` layers, each reading 1-2 earlier tensors (model inputs or layers),
    figures from small discrete sets (zero FLOPs, parameters and workspace included)."""
    n = pick.integer(1, max_layers)
    m = pick.integer(1, 2)
    inputs = [ModelInput(f"in{j}", pick.choice([0.0, 1e3, 5e4, 2e5])) for j in range(m)]
    names = [i.id for i in inputs]
    layers = []
    for v in range(n):
        k = pick.integer(1, min(2, len(names)))
        ins = tuple(pick.distinct(names, k))
        layers.append(
            Layer(
                f"L{v}",
                "op",
                ins,
                flops=pick.choice([0.0, 1e8, 5e8, 1e9, 3e9]),
                output_bytes=pick.choice([1e3, 1e4, 1e5, 4e5]),
                param_bytes=pick.choice([0.0, 1e5, 1e6]),
                workspace_bytes=pick.choice([0.0, 1e4]),
            )
        )
        names.append(f"L{v}")
    return Graph("g", inputs, layers)


def tiny_system(pick: Chooser, max_devices: int = 3) -> System:
    """2..``max_devices`` devices; links possibly one-way or missing (never from the source)."""
    k = pick.integer(2, max_devices)
    devs = [
        Device(
            f"d{i}",
            pick.choice([1e9, 2e9, 1e10]),
            memory_bandwidth_bytes_per_s=pick.choice([None, None, 1e8]),
            memory_bytes=pick.choice([float("inf"), 3e6, 1.5e6]),
            power_active_w=pick.choice([0.0, 2.0, 5.0]),
            power_idle_w=pick.choice([0.0, 0.5]),
            price_usd_per_s=pick.choice([0.0, 0.5]),
            trusted=(i == 0) or pick.boolean(),
        )
        for i in range(k)
    ]
    links = []
    for a in range(k):
        for b in range(a + 1, k):
            mode = pick.choice(["both", "both", "both", "one", "none"] if a else ["both"])
            if mode == "none":
                continue
            fig = dict(
                bandwidth_bytes_per_s=pick.choice([1e5, 1e6, 1e7]),
                latency_s=pick.choice([0.0, 0.005, 0.02]),
                tx_power_w=pick.choice([0.0, 1.0]),
                rx_power_w=pick.choice([0.0, 0.5]),
                price_usd_per_byte=pick.choice([0.0, 1e-7]),
            )
            links.append(Link(f"d{a}", f"d{b}", **fig))
            if mode == "both":
                fig2 = dict(fig, bandwidth_bytes_per_s=pick.choice([1e5, 1e6, 1e7]))
                links.append(Link(f"d{b}", f"d{a}", **fig2))
    sink = pick.choice(["d0", None, f"d{k - 1}"])
    return System(devs, links, "d0", sink)


def tiny_problem(pick: Chooser, g: Graph, s: System, constraints: bool = True) -> Problem:
    """Any objective, either execution mode, optional constraints (each kind may be drawn)."""
    kind = pick.choice(["latency", "throughput", "energy", "cost", "weighted"])
    weights = {}
    if kind == "weighted":
        weights = {"latency": 1.0, pick.choice(["energy", "cost", "throughput"]): 0.3}
    devs = list(s.device_ids)
    scope = pick.choice([None, (devs[0],)])
    c = Constraints()
    if constraints:
        c = Constraints(
            memory=pick.boolean(),
            deadline_s=pick.choice([None, None, 2.0, 0.5]),
            energy_budget_j=pick.choice([{}, {}, {devs[0]: 3.0}]),
            allowed=pick.choice([{}, {g.layer_ids[-1]: (devs[0],)}, {g.layer_ids[0]: tuple(devs[1:])}]),
            private=pick.choice([(), (g.input_ids[0],), (g.layer_ids[0],)]),
            contiguous=pick.boolean(),
            max_devices=pick.choice([None, None, 1, 2]),
        )
    return Problem(
        Objective(kind, weights),
        execution=pick.choice(["sequential", "parallel"]),
        energy_scope=scope,
        constraints=c,
    )


def tiny_instance(pick: Chooser, max_layers: int = 6, max_devices: int = 3, constraints: bool = True) -> Instance:
    """A tiny instance: :func:`tiny_graph`, :func:`tiny_system` and :func:`tiny_problem`."""
    g = tiny_graph(pick, max_layers)
    s = tiny_system(pick, max_devices)
    return Instance("rand", g, s, tiny_problem(pick, g, s, constraints))
