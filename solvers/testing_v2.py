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


def generation_g1() -> dict[str, Any]:
    """Worked example G1 of docs/instance-format.md §9.10 as file data: a generation of 100 prompt tokens
    and 10 decode steps from the phone; all on the edge 1.59555 s (TTFT 1.225 s)."""
    return {
        "dnnpart": 2,
        "name": "g1",
        "models": {
            "lm": {
                "inputs": [{"id": "ids", "bytes": 0, "tokens": {"bytes_per_token": "1 kB"}}],
                "layers": [
                    {"id": "block", "op": "decoder_block", "inputs": ["ids"], "flops": 1e9, "output_bytes": 1000,
                     "param_bytes": "2 MB",
                     "tokens": {"flops_per_token": "1 GFLOP", "flops_per_token_position": "1 MFLOP",
                                "output_bytes_per_token": "1 kB", "kv_bytes_per_position": "10 kB"}},
                    {"id": "head", "op": "linear", "inputs": ["block"], "flops": 1e8, "output_bytes": 4000,
                     "tokens": {"flops": "0.1 GFLOP", "output_bytes": "4 kB"}},
                ],
            }
        },
        "system": {
            "devices": [{"id": "phone", "compute": "10 GFLOP/s"}, {"id": "edge", "compute": "100 GFLOP/s"}],
            "links": [{"from": "phone", "to": "edge", "bandwidth": "1 MB/s", "latency": "10 ms"}],
        },
        "workload": [{"id": "u", "model": "lm", "source": "phone", "sink": "phone",
                      "tokens": {"prompt": 100, "generate": 10}}],
        "problem": {"objective": "latency"},
    }


def generation_g2() -> dict[str, Any]:
    """Worked example G2 (§9.10): G1 with a memory-bound edge whose roofline crosses at step 5;
    all on the edge 1.4315012 s."""
    d = generation_g1()
    d["system"]["devices"][1]["memory_bandwidth"] = "10 GB/s"
    block = d["models"]["lm"]["layers"][0]
    block["param_bytes"] = 0
    block["tokens"] = {"flops_per_token": 1e9, "output_bytes_per_token": 1000, "kv_bytes_per_position": 1e6}
    d["workload"][0]["tokens"] = {"prompt": 95, "generate": 10}
    return d


def _own_device(d: dict[str, Any]) -> dict[str, Any]:
    """Each request's layers only on its own device and the edge."""
    for r in d["workload"]:
        r["allowed"] = [r["source"], "edge"]
    d["name"] += "-own-device"
    return d


def _generation_stream() -> dict[str, Any]:
    d = generation_g1()
    d["name"] = "g1-stream"
    d["workload"][0]["rate"] = 0.5
    d["problem"]["objective"] = "throughput"
    return d


V2_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    # (name, build, optimum, why): solvers.testing wraps each in its Case
    (
        "v2-generation-latency",
        _build(generation_g1()),
        1.59555,
        "all on the edge: TTFT 0.11 + 1.1 + 0.001 + 0.014 = 1.225 s, then ten steps of 0.036 + 1e-5 (100 + j) s, "
        "0.37055 s; the block on the edge and the head on the phone 1.76055 s; all on the phone > 11 s",
    ),
    (
        "v2-generation-roofline",
        _build(generation_g2()),
        1.4315012,
        "all on the edge: TTFT 0.105 + 0.95 + 0.001 + 0.014 = 1.07 s; the block's steps 0.1015012 s "
        "(compute-bound to step 4, memory-bound from step 5) plus 10 x 0.026 s of the rest",
    ),
    (
        "v2-generation-stream",
        _build(_generation_stream()),
        0.605275,
        "utilisation at 0.5 generations/s: the block on the edge (busy 1.1 + 0.1 + 1e-5 x 1055 = 1.21055 s a "
        "generation) and the head on the phone (0.11 s); the head on the edge adds 0.011 s there",
    ),
    (
        "v2-share-max",
        _build(_phones("share", "max")),
        1.101,
        "both requests all on the edge: each 1.001 s alone plus 0.05 s of edge work at half the edge, "
        "0.1 s. A request keeping a on its phone takes >= 1.541 s; all local 5 s",
    ),
    (
        "v2-share-max-own-device",
        _build(_own_device(_phones("share", "max"))),
        1.101,
        "as v2-share-max with each request's `allowed` its own phone and the edge (Tang et al.'s setting, "
        "the one tang solves): the optimum above uses only those devices",
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
