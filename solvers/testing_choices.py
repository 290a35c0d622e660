"""Conformance cases with layer variants and exits (docs/instance-format.md §11) and hand-derived optima.

The two instances are those of §11.6. *Variants*: ``x`` (1 MB) -> ``a`` (2 GFLOP, 4 MB of weights,
0.5 MB out; ``int8``: 1 GFLOP, 1 MB, accuracy -0.01) -> ``b`` (8 GFLOP, 16 MB, 1 kB out; ``int8``:
4 GFLOP, 4 MB, -0.02; ``int4``: 2 GFLOP, 2 MB, -0.06); a phone (10 GFLOP/s, 8 MB) and a cloud
(100 GFLOP/s), a link of 1,000,000 B/s and 10 ms; model accuracy 0.80. *Exits*: ``x`` (0.6 MB) ->
``m0`` (1 GFLOP, 0.4 MB out) -> ``b0`` (0.1 GFLOP, 4 kB; exit ``early``, 0.60) and ``m0`` -> ``m1``
(4 GFLOP, 0.1 MB) -> ``m2`` (2 GFLOP, 4 kB; exit ``final``, 0.75); a phone (10 GFLOP/s) and an edge
(100 GFLOP/s), a link of 1,000,000 B/s. Only solvers with ``Capabilities.choices`` take them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from formulation.model import Instance

_VARIANTS: dict[str, Any] = {
    "dnnpart": 1,
    "name": "choices-variants",
    "model": {
        "inputs": [{"id": "x", "bytes": 1e6}],
        "accuracy": 0.80,
        "layers": [
            {
                "id": "a",
                "op": "conv2d",
                "inputs": ["x"],
                "flops": 2e9,
                "param_bytes": 4e6,
                "output_bytes": 5e5,
                "variants": [{"name": "int8", "flops": 1e9, "param_bytes": 1e6, "accuracy_delta": -0.01}],
            },
            {
                "id": "b",
                "op": "linear",
                "inputs": ["a"],
                "flops": 8e9,
                "param_bytes": 16e6,
                "output_bytes": 1e3,
                "variants": [
                    {"name": "int8", "flops": 4e9, "param_bytes": 4e6, "accuracy_delta": -0.02},
                    {"name": "int4", "flops": 2e9, "param_bytes": 2e6, "accuracy_delta": -0.06},
                ],
            },
        ],
    },
    "system": {
        "devices": [{"id": "phone", "compute": 1e10, "memory": 8e6}, {"id": "cloud", "compute": 1e11}],
        "links": [{"from": "phone", "to": "cloud", "bandwidth": 1e6, "latency": 0.01}],
        "source": "phone",
        "sink": "phone",
    },
}

_EXITS: dict[str, Any] = {
    "dnnpart": 1,
    "name": "choices-exits",
    "model": {
        "inputs": [{"id": "x", "bytes": 6e5}],
        "layers": [
            {"id": "m0", "op": "conv2d", "inputs": ["x"], "flops": 1e9, "output_bytes": 4e5},
            {"id": "b0", "op": "linear", "inputs": ["m0"], "flops": 1e8, "output_bytes": 4e3},
            {"id": "m1", "op": "conv2d", "inputs": ["m0"], "flops": 4e9, "output_bytes": 1e5},
            {"id": "m2", "op": "linear", "inputs": ["m1"], "flops": 2e9, "output_bytes": 4e3},
        ],
        "exits": [
            {"name": "early", "layer": "b0", "accuracy": 0.60},
            {"name": "final", "layer": "m2", "accuracy": 0.75},
        ],
    },
    "system": {
        "devices": [{"id": "phone", "compute": 1e10}, {"id": "edge", "compute": 1e11}],
        "links": [{"from": "phone", "to": "edge", "bandwidth": 1e6}],
        "source": "phone",
        "sink": "phone",
    },
}


def _case(base: dict[str, Any], problem: dict[str, Any], probabilities: bool = False) -> Callable[[], Instance]:
    def build() -> Instance:
        from formulation.loader import load_instance_data

        data = copy.deepcopy(base)
        data["problem"] = problem
        if probabilities:
            data["model"]["exits"][0]["probability"] = 0.6
            data["model"]["exits"][1]["probability"] = 0.4
        return load_instance_data(data)

    return build


#: ``(name, build, optimum, why)`` rows of :class:`solvers.testing.Case`.
CHOICE_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    (
        "variants-latency-min-accuracy",
        _case(_VARIANTS, {"objective": "latency", "constraints": {"min_accuracy": 0.78}}),
        0.701,
        "transfers: input 1.01 s, a's output 0.51 s, b's 0.011 s. b in base needs 16 MB (not on the phone); "
        "b int8 on the phone beside base a needs 4 + 4 + 1.5 MB > 8 MB, with int8 a the accuracy is 0.77. "
        "a int8 on the phone, b base in the cloud: 0.1 + 0.51 + 0.08 + 0.011 = 0.701 s (A = 0.79); "
        "base a: 0.801 s; b int8: 0.761 s; all in the cloud >= 1.01 s",
    ),
    (
        "variants-accuracy-deadline",
        _case(_VARIANTS, {"objective": "accuracy", "constraints": {"deadline": 0.75}}),
        1 - 0.79,
        "A = 0.80 needs every base layer: fastest 0.801 s > 0.75 s; A = 0.79 (a int8) at 0.701 s: 1 - 0.79",
    ),
    (
        "variants-min-accuracy-infeasible",
        _case(_VARIANTS, {"objective": "latency", "constraints": {"min_accuracy": 0.81}}),
        None,
        "the best accuracy is the model's 0.80 (every delta is negative)",
    ),
    (
        "exits-accuracy-deadline-600ms",
        _case(_EXITS, {"objective": "accuracy", "constraints": {"deadline": 0.6}}),
        1 - 0.75,
        "exit final: m0 on the phone, m1 and m2 on the edge 0.1 + 0.4 + 0.04 + 0.02 + 0.004 = 0.564 s <= 0.6 "
        "(phone alone 0.7 s, edge alone 0.674 s): 1 - 0.75",
    ),
    (
        "exits-accuracy-deadline-500ms",
        _case(_EXITS, {"objective": "accuracy", "constraints": {"deadline": 0.5}}),
        1 - 0.60,
        "exit final needs at least 0.564 s; exit early on the phone 0.1 + 0.01 = 0.11 s: 1 - 0.60",
    ),
    (
        "exits-expected-latency",
        _case(_EXITS, {"objective": "latency"}, probabilities=True),
        0.6 * 0.11 + 0.4 * 0.574,
        "m0, b0 on the phone, m1, m2 on the edge: paths 0.11 s and 0.11 + 0.4 + 0.04 + 0.02 + 0.004 = 0.574 s, "
        "0.6 x 0.11 + 0.4 x 0.574 = 0.2956 (phone alone 0.35 s, edge alone 0.639 s)",
    ),
]
