"""Conformance cases with network states (docs/instance-format.md §10) and hand-derived optima.

The instance is ``instances/examples/robust-three-states.yaml`` (docs/networks.md, "Worked
example"): layers ``features`` (0.2 GFLOP, 100 kB out) and ``head`` (0.5 GFLOP) on a 300 kB image, a
phone of 1 GFLOP/s and a cloud of 100 GFLOP/s, the link at 10, 1 and 0.2 MB/s in the states good
(p 0.7), usual (0.2) and bad (0.1). Sequential latency per state (devices of features, head)::

    phone, phone   0.7    0.7    0.7        phone, cloud   0.215  0.305  0.705
    cloud, cloud   0.037  0.307  1.507      cloud, phone   0.542  0.902  2.502

Version 2 (docs/instance-format.md §10.5): model ``net`` — input ``x`` 1 MB; ``a`` 1 GFLOP -> 0.5 MB;
``b`` 4 GFLOP -> 1 kB. Phones ``p1``, ``p2`` at 10 GFLOP/s, ``edge`` at 100 GFLOP/s, links ``p1``-``edge``
and ``p2``-``edge`` at 1,000,000 B/s; requests ``u1`` (source and sink ``p1``) and ``u2`` (``p2``).
States ``cool`` (p 0.8, the file's figures) and ``hot`` (p 0.2, both phones at 1 GFLOP/s). A request
alone, placements (a, b), cool / hot: A (phone, phone) 0.5 / 5; B (phone, edge) 0.641 / 1.541;
C (edge, edge) 1.051 / 1.051; D (edge, phone) 1.91 / 5.51.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from formulation.model import Instance
from formulation.scenarios import parse_measure

EXAMPLE = Path(__file__).resolve().parents[1] / "instances" / "examples" / "robust-three-states.yaml"


def _case(measure: str, level: float | None = None, deadline: float | None = None) -> Callable[[], Instance]:
    def build() -> Instance:
        from formulation.loader import load_instance

        inst = load_instance(EXAMPLE)
        p = inst.problem
        assert p.scenarios is not None
        m, alpha = parse_measure(measure)
        sc = dataclasses.replace(p.scenarios, measure=m, alpha=alpha, deadline_probability=level)
        cons = dataclasses.replace(p.constraints, deadline_s=deadline)
        return inst.with_problem(dataclasses.replace(p, constraints=cons, scenarios=sc))

    return build


#: ``(name, build, optimum, why)`` rows of :class:`solvers.testing.Case`.
SCENARIO_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    ("states-expected", _case("expected"), 0.238, "cloud, cloud: 0.7 * 0.037 + 0.2 * 0.307 + 0.1 * 1.507"),
    ("states-worst", _case("worst"), 0.7, "phone, phone: 0.7 in every state; every split is worse in bad"),
    (
        "states-cvar",
        _case("cvar:0.8"),
        0.505,
        "phone, cloud: the worst 20 % is bad (0.1) and half of usual, (0.1 * 0.705 + 0.1 * 0.305) / 0.2",
    ),
    (
        "states-deadline-every-state",
        _case("expected", None, 0.4),
        None,
        "no placement meets 0.4 s in bad (the best there is 0.7 s)",
    ),
    (
        "states-deadline-chance",
        _case("worst", 0.9, 0.4),
        0.705,
        "0.4 s holds in good and usual (p 0.9) for phone, cloud and cloud, cloud; their worst: 0.705, 1.507",
    ),
]

NET: dict[str, Any] = {
    "inputs": [{"id": "x", "bytes": 1e6}],
    "layers": [
        {"id": "a", "op": "conv", "inputs": ["x"], "flops": 1e9, "output_bytes": 5e5},
        {"id": "b", "op": "fc", "inputs": ["a"], "flops": 4e9, "output_bytes": 1e3},
    ],
}
#: The hot state: both phones throttled to 1 GFLOP/s.
HOT = {"devices.p1.compute": "1 GFLOP/s", "devices.p2.compute": "1 GFLOP/s"}
#: Placements of one request's (a, b) by letter: p its phone.
PLACE = {"A": ("p", "p"), "B": ("p", "edge"), "C": ("edge", "edge"), "D": ("edge", "p")}


def phones(contention: str, robust: str, **problem: Any) -> dict[str, Any]:
    """The two-phone version-2 example with states cool and hot (module docstring), as file data."""
    return {
        "dnnpart": 2,
        "name": f"phones-{contention}-{robust}",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [{"id": "p1", "compute": 1e10}, {"id": "p2", "compute": 1e10}, {"id": "edge", "compute": 1e11}],
            "links": [{"from": "p1", "to": "edge", "bandwidth": 1e6}, {"from": "p2", "to": "edge", "bandwidth": 1e6}],
        },
        "workload": [
            {"id": "u1", "model": "net", "source": "p1", "sink": "p1"},
            {"id": "u2", "model": "net", "source": "p2", "sink": "p2"},
        ],
        "scenarios": [{"name": "cool", "probability": 0.8}, {"name": "hot", "probability": 0.2, "set": dict(HOT)}],
        "problem": {"contention": contention, "robust": robust, **problem},
    }


def placement(u1: str, u2: str) -> dict[str, str]:
    """The two requests' placements by letter (:data:`PLACE`)."""
    out = {}
    for req, letter, phone in (("u1", u1, "p1"), ("u2", u2, "p2")):
        for lay, where in zip("ab", PLACE[letter], strict=True):
            out[f"{req}/{lay}"] = phone if where == "p" else "edge"
    return out


def _phones_case(contention: str, robust: str, deadline: float | None = None, **problem: Any) -> Callable[[], Instance]:
    def build() -> Instance:
        from formulation.loader import load_instance_data

        data = phones(contention, robust, **problem)
        if deadline is not None:
            data["workload"][0]["deadline"] = deadline
        return load_instance_data(data)

    return build


SCENARIO_CASES += [
    ("v2-states-none-expected", _phones_case("none", "expected"), 1.642,
     "0.8 cool + 0.2 hot per request: A 1.4, B 0.821, C 1.051, D 2.63; both B"),
    ("v2-states-none-worst", _phones_case("none", "worst"), 2.102,
     "hot sums at least 2 x 1.051, reached only by C, C (2.102 in both states)"),
    ("v2-states-none-cvar", _phones_case("none", "cvar:0.5"), 2.002,
     "CVaR_0.5 = 0.4 hot + 0.6 cool where hot is worse: per request B 1.001, C 1.051, A 2.3; both B"),
    ("v2-states-schedule-expected", _phones_case("schedule", "expected"), 1.682,
     "both B, one b waits 0.04 s on the edge in each state: 0.8 x 1.322 + 0.2 x 3.122; any other placement "
     "pays >= 0.821 + 1.051 alone"),
    ("v2-states-schedule-worst", _phones_case("schedule", "worst"), 2.152,
     "C, C: the edge runs one request's a and b, then the other's: 1.051 + 1.101 in both states"),
    ("v2-states-deadline-chance", _phones_case("schedule", "expected", 0.7, deadline_probability=0.8), 1.682,
     "u1 within 0.7 s: both B meet it when cool (p 0.8), as required"),
    ("v2-states-deadline-every-state", _phones_case("schedule", "expected", 0.7), None,
     "u1 takes at least 1.051 s when hot, above its 0.7 s deadline"),
]
