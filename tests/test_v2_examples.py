"""Version 2 (docs/instance-format.md §9): the worked examples of §9.9, by hand, against the evaluator
and brute force; loading rules; refusals of solvers without version-2 capabilities."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.schema_v2 import SCHEMA_V2_FILE, json_schema_v2
from solvers.options import UnsupportedProblem
from solvers.registry import get_solver, names, solve, solver_info
from solvers.result import Status

NET = {
    "inputs": [{"id": "x", "bytes": "1 MB"}],
    "layers": [
        {"id": "a", "op": "conv", "inputs": ["x"], "flops": "1 GFLOP", "output_bytes": "0.5 MB", "param_bytes": "1 MB"},
        {"id": "b", "op": "fc", "inputs": ["a"], "flops": "4 GFLOP", "output_bytes": "1 kB", "param_bytes": "2 MB"},
    ],
}


def base(contention: str = "none", aggregate: str = "sum", **problem: Any) -> dict[str, Any]:
    """§9.9's base: two phones, one edge, `net` per phone."""
    return {
        "dnnpart": 2,
        "name": "two-phones",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [
                {"id": "p1", "compute": "10 GFLOP/s", "trusted": True},
                {"id": "p2", "compute": "10 GFLOP/s"},
                {"id": "edge", "compute": "100 GFLOP/s", "memory": "3 MB"},
            ],
            "links": [
                {"from": "p1", "to": "edge", "bandwidth": "8 Mbit/s"},
                {"from": "p2", "to": "edge", "bandwidth": "8 Mbit/s"},
            ],
        },
        "workload": [
            {"id": "u1", "model": "net", "source": "p1", "sink": "p1"},
            {"id": "u2", "model": "net", "source": "p2", "sink": "p2"},
        ],
        "problem": {"aggregate": aggregate, "contention": contention, **problem},
    }


SPLIT = {"u1/a": "p1", "u1/b": "edge", "u2/a": "p2", "u2/b": "edge"}


def test_n1_none_sum() -> None:
    ev = evaluate(load_instance_data(base()), SPLIT)
    assert ev.objective == pytest.approx(1.282, rel=1e-12)
    assert ev.workload["requests"]["u1"]["latency_s"] == pytest.approx(0.641, rel=1e-12)
    # weights once per (model, layer, device): b's 2 MB on the edge once, plus each request's working set
    assert ev.memory_bytes["edge"] == pytest.approx(2e6 + 2 * (1e3 + 0.5e6))
    assert ev.feasible is False and {v.kind for v in ev.violations} == {"memory"}


def test_n2_utilisation() -> None:
    d = base(objective="throughput")
    for r in d["workload"]:
        r["rate"] = 1.5
    ev = evaluate(load_instance_data(d), SPLIT)
    assert ev.objective == pytest.approx(0.75, rel=1e-12)
    assert ev.workload["utilisation"]["edge"] == pytest.approx(0.12)  # both requests: 2 x 1.5 x 0.04
    assert ev.workload["utilisation"]["p1"] == pytest.approx(0.15)
    for r in d["workload"]:
        r["rate"] = 2.5
    ev = evaluate(load_instance_data(d), SPLIT)
    assert ev.objective == pytest.approx(1.25, rel=1e-12)
    assert "utilisation" in {v.kind for v in ev.violations}


def test_s1_share_max() -> None:
    ev = evaluate(load_instance_data(base("share", "max")), SPLIT)
    assert ev.objective == pytest.approx(0.681, rel=1e-12)
    assert ev.workload["requests"]["u2"]["shares"]["edge"] == pytest.approx(0.5, rel=1e-12)
    assert ev.workload["share_method"] == "bisection on the latency level"


def test_s2_share_sum_square_root_rule() -> None:
    d = base("share", "sum")
    d["workload"][1]["weight"] = 4
    ev = evaluate(load_instance_data(d), SPLIT)
    req = ev.workload["requests"]
    assert req["u1"]["shares"]["edge"] == pytest.approx(1 / 3, rel=1e-12)
    assert req["u1"]["latency_s"] == pytest.approx(0.721, rel=1e-12)
    assert req["u2"]["latency_s"] == pytest.approx(0.661, rel=1e-12)
    assert ev.objective == pytest.approx(3.365, rel=1e-12)


def test_k1_schedule_device_contention() -> None:
    ev = evaluate(load_instance_data(base("schedule")), SPLIT)
    assert ev.objective == pytest.approx(1.322, rel=1e-12)
    assert ev.schedule["u1/b"] == pytest.approx(0.6) and ev.schedule["u2/b"] == pytest.approx(0.64)
    assert ev.schedule["u2/b>p2#0"] == pytest.approx(0.68)


def k2() -> dict[str, Any]:
    d = base("schedule")
    d["workload"][1].update(source="p1", sink="p1")
    return d


def test_k2_schedule_link_contention() -> None:
    inst = load_instance_data(k2())
    place = {"u1/a": "p1", "u1/b": "edge", "u2/a": "p1", "u2/b": "edge"}
    ev = evaluate(inst, place)
    assert ev.objective == pytest.approx(1.782, rel=1e-12)
    assert ev.schedule["u2/a>edge#0"] == pytest.approx(0.6)  # the uplink is busy with u1 until 0.6
    # a given schedule is checked: both uploads at once break the one-transfer-per-channel rule
    bad = dict(ev.schedule, **{"u2/a>edge#0": 0.2})
    ev2 = evaluate(inst, place, bad)
    assert any(v.kind == "schedule" and "overlap" in v.message for v in ev2.violations)


def test_k2_brute_optimum_is_judged() -> None:
    inst = load_instance_data(k2())
    res = solve(inst, "brute")
    assert res.status == Status.OPTIMAL
    # u2 entirely on the phone: p1 runs u1/a [0, .1], u2/a [.1, .2], u2/b [.2, .6]; u1 as alone (0.641)
    assert res.objective == pytest.approx(0.641 + 0.6, rel=1e-12)
    ev = evaluate(inst, res.placement, res.schedule)
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12)


def routed(extra_link: bool = False, routing: Any = "shortest") -> dict[str, Any]:
    links = [
        {"from": "phone", "to": "edge", "bandwidth": "8 Mbit/s", "latency": "10 ms", "tx_power": "1 W",
         "rx_power": "0.5 W", "price": "0.1 USD/GB"},
        {"from": "edge", "to": "cloud", "bandwidth": "80 Mbit/s", "latency": "20 ms", "tx_power": "2 W",
         "rx_power": "1 W", "price": "0.05 USD/GB"},
    ]
    if extra_link:
        links.append({"from": "phone", "to": "cloud", "bandwidth": "1 Mbit/s", "latency": "50 ms"})
    return {
        "dnnpart": 2,
        "name": "routed",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [
                {"id": "phone", "compute": "10 GFLOP/s"},
                {"id": "edge", "compute": "100 GFLOP/s"},
                {"id": "cloud", "compute": "1 TFLOP/s"},
            ],
            "links": links,
            "routing": routing,
        },
        "workload": [{"id": "r", "model": "net", "source": "phone", "sink": "phone"}],
    }


ROUTED = {"r/a": "phone", "r/b": "cloud"}


def test_r1_store_and_forward_relay_energy_and_cost() -> None:
    ev = evaluate(load_instance_data(routed()), ROUTED)
    assert ev.latency_s == pytest.approx(0.7151, rel=1e-12)
    assert ev.energy_j["edge"] == pytest.approx(0.3511, rel=1e-12)
    assert ev.cost_usd == pytest.approx(7.515e-5, rel=1e-12)
    assert ev.workload["routes"][0]["route"] == ["phone", "edge", "cloud"]
    # with direct routing the same placement has no route phone -> cloud
    ev2 = evaluate(load_instance_data(routed(routing="direct")), ROUTED)
    assert [v.kind for v in ev2.violations] == ["link", "link"]


def test_r2_shortest_prefers_fewer_hops() -> None:
    ev = evaluate(load_instance_data(routed(extra_link=True)), ROUTED)
    assert ev.latency_s == pytest.approx(4.212, rel=1e-12)


def test_r3_explicit_route_others_direct() -> None:
    inst = load_instance_data(routed(True, {"routes": {"phone->cloud": ["phone", "edge", "cloud"]}}))
    ev = evaluate(inst, ROUTED)
    assert ev.latency_s == pytest.approx(0.742, rel=1e-12)


def test_shortest_ties_broken_by_latency() -> None:
    d = routed()
    d["system"]["devices"].append({"id": "edge2", "compute": "1 GFLOP/s"})
    d["system"]["links"] += [
        {"from": "phone", "to": "edge2", "bandwidth": "8 Mbit/s", "latency": "1 ms"},
        {"from": "edge2", "to": "cloud", "bandwidth": "8 Mbit/s", "latency": "1 ms"},
    ]
    inst = load_instance_data(d)
    assert inst.workload is not None
    idx = inst.system.device_index
    assert inst.workload.routes[(idx["phone"], idx["cloud"])] == ((0, 3), (3, 2))  # 2 ms beats 30 ms


def test_brute_matches_hand_values_share_and_none() -> None:
    # S1's instance: brute's optimum is never worse than the hand placement, and is judged by the evaluator
    inst = load_instance_data(base("share", "max", constraints={"memory": False}))
    res = solve(inst, "brute")
    assert res.status == Status.OPTIMAL and res.objective is not None and res.objective <= 0.681 + 1e-12
    # everything local takes 0.5 s per phone without sharing anything: the min-max optimum
    assert res.objective == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize(
    ("change", "path", "expected"),
    [
        (lambda d: d["workload"][0].update(model="nett"), "workload[0].model", "did you mean 'net'"),
        (lambda d: d["workload"][1].update(id="u1"), "workload[1].id", "not used before"),
        (lambda d: d["workload"][0].update(id="u/1"), "workload[0].id", "without '/'"),
        (lambda d: d["workload"][0].update(rate=2), "workload[1].rate", "every request or on none"),
        (lambda d: d["workload"][0].update(allowed={"c": ["p1"]}), "workload[0].allowed.c", "a layer of its model"),
        (lambda d: d["problem"].update(contention="fair"), "problem.contention", "schedule"),
        (lambda d: d["system"].update(routing={"routes": {"p1->p2": ["p1", "p2"]}}), "system.routing.routes",
         "no link p1 -> p2"),
        (lambda d: d["system"]["devices"][0].update(send_once=True), "system.devices[0].send_once", "version 2"),
    ],
)
def test_load_errors_name_the_field(change: Any, path: str, expected: str) -> None:
    d = base()
    change(d)
    with pytest.raises(InstanceError) as info:
        load_instance_data(d, file="v2.yaml")
    assert path in str(info.value) and expected in str(info.value)


def test_solvers_without_version_2_refuse_clearly() -> None:
    inst = load_instance_data(base("share", "max"))
    for name in names():
        if not solver_info(name).available or name in ("brute", "auto"):
            continue
        caps = get_solver(name).capabilities
        if "share" in caps.workload:
            continue
        with pytest.raises(UnsupportedProblem, match="version-2"):
            get_solver(name).solve(inst)


def test_schema_v2_copy_and_reference() -> None:
    """The committed schema equals the generated one; every v2 key is documented in §9."""
    assert json.loads(SCHEMA_V2_FILE.read_text(encoding="utf-8")) == json_schema_v2()
    text = (Path(__file__).resolve().parent.parent / "docs" / "instance-format.md").read_text(encoding="utf-8")
    section = text[text.index("## 9. Version 2") :]
    defs = json_schema_v2()["$defs"]
    for cls in ("RequestSpecV2", "ProblemV2Spec", "SystemV2Spec", "ConstraintsV2Spec"):
        for key in defs[cls]["properties"]:
            assert f"`{key}`" in section, (cls, key)
    for key in json_schema_v2()["properties"]:
        assert f"| `{key}` |" in section, key


def test_explicit_routes_are_exported() -> None:
    from formulation.loader import instance_to_data

    inst = load_instance_data(routed(True, {"routes": {"phone->cloud": ["phone", "edge", "cloud"]}}))
    data = instance_to_data(inst)
    assert data["system"]["routing"] == {"routes": {"phone->cloud": ["phone", "edge", "cloud"]}}
    assert evaluate(load_instance_data(data), ROUTED).latency_s == pytest.approx(0.742, rel=1e-12)
