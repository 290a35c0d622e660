"""Version-2 conformance cases (docs/instance-format.md §9) with hand-derived optima.

*Two phones* ``p1``, ``p2`` (1 GFLOP/s) and ``edge`` (100 GFLOP/s), links ``p*``–``edge`` of 1 MB/s;
model ``net``: input ``x`` 1 MB, ``a`` 1 GFLOP -> 0.5 MB, ``b`` 4 GFLOP -> 1 kB. One request per
phone (source and sink its phone). A request alone: all local 5 s; ``a`` local, ``b`` on the edge
``1 + 0.5 + 0.04 + 0.001 = 1.541`` s; all on the edge ``1 + 0.01 + 0.04 + 0.001 = 1.051`` s.

*Three tiers* ``phone`` (1 GFLOP/s) – ``edge`` (100 GFLOP/s) – ``cloud`` (1 TFLOP/s): ``phone``–``edge``
1 MB/s, 10 ms; ``edge``–``cloud`` 10 MB/s, 20 ms; no ``phone``–``cloud`` link; shortest routes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from formulation.loader import load_instance_data
from formulation.model import Instance

NET = {
    "inputs": [{"id": "x", "bytes": 1e6}],
    "layers": [
        {"id": "a", "op": "conv", "inputs": ["x"], "flops": 1e9, "output_bytes": 5e5, "param_bytes": 1e6},
        {"id": "b", "op": "fc", "inputs": ["a"], "flops": 4e9, "output_bytes": 1e3, "param_bytes": 2e6},
    ],
}


def _phones(contention: str, aggregate: str, same_phone: bool = False) -> dict[str, Any]:
    return {
        "dnnpart": 2,
        "name": f"two-phones-{contention}-{aggregate}",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [
                {"id": "p1", "compute": 1e9},
                {"id": "p2", "compute": 1e9},
                {"id": "edge", "compute": 1e11},
            ],
            "links": [{"from": "p1", "to": "edge", "bandwidth": 1e6}, {"from": "p2", "to": "edge", "bandwidth": 1e6}],
        },
        "workload": [
            {"id": "u1", "model": "net", "source": "p1", "sink": "p1"},
            {"id": "u2", "model": "net", "source": "p1" if same_phone else "p2", "sink": "p1" if same_phone else "p2"},
        ],
        "problem": {"aggregate": aggregate, "contention": contention, "constraints": {"memory": False}},
    }


def _tiers() -> dict[str, Any]:
    return {
        "dnnpart": 2,
        "name": "three-tiers-routed",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [
                {"id": "phone", "compute": 1e9},
                {"id": "edge", "compute": 1e11},
                {"id": "cloud", "compute": 1e12},
            ],
            "links": [
                {"from": "phone", "to": "edge", "bandwidth": 1e6, "latency": 0.01},
                {"from": "edge", "to": "cloud", "bandwidth": 1e7, "latency": 0.02},
            ],
            "routing": "shortest",
        },
        "workload": [{"id": "r", "model": "net", "source": "phone", "sink": "phone"}],
    }


def _build(data: dict[str, Any]) -> Callable[[], Instance]:
    def build() -> Instance:
        return load_instance_data(data)

    return build


V2_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    # (name, build, optimum, why): solvers.testing wraps each in its Case
    (
        "v2-share-max",
        _build(_phones("share", "max")),
        1.101,
        "both requests all on the edge: each 1.001 s alone plus 0.05 s of edge work at half the edge, "
        "0.1 s. A request keeping a on its phone takes >= 1.541 s; all local 5 s",
    ),
    (
        "v2-share-sum",
        _build(_phones("share", "sum")),
        2.202,
        "both all on the edge: 2 x 1.001 + (sqrt(0.05) + sqrt(0.05))^2 = 2.202 (square-root rule)",
    ),
    (
        "v2-schedule-one-phone",
        _build(_phones("schedule", "max", same_phone=True)),
        1.541,
        "both requests from p1, one uplink. One all on the edge, the other with a on p1: p1 computes "
        "a [0, 1] while the uplink carries the first input [0, 1]; then a's 0.5 MB [1, 1.5]; the edge runs "
        "[1, 1.05] and b [1.5, 1.54]; outputs back at 1.051 and 1.541. Both on the edge: uploads end at 1 "
        "and 2, max 2.051; both with a on p1: 2.541; anything local takes >= 5 s",
    ),
    (
        "v2-routed-latency",
        _build(_tiers()),
        1.071,
        "all on the edge: upload 1 MB 1.01 s, compute 0.05 s, return 0.011 s. All in the cloud costs "
        "1.13 s of upload over the relay; a on the phone 1 s of compute first; all local 5 s",
    ),
]
