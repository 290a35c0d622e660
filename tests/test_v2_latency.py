"""Version-2 measured layer times (docs/instance-format.md §9.4, ``system.latency`` per model): the
evaluator and the version-2 solvers use them, by hand; bad tables are refused; export round-trips."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import instance_to_data, load_instance_data
from solvers.options import SolverOptions
from solvers.registry import solve

NET = {
    "inputs": [{"id": "x", "bytes": "1 MB"}],
    "layers": [
        {"id": "a", "op": "conv", "inputs": ["x"], "flops": "1 GFLOP", "output_bytes": "0.5 MB"},
        {"id": "b", "op": "fc", "inputs": ["a"], "flops": "4 GFLOP", "output_bytes": "1 kB"},
    ],
}
#: §9.4's example, plus `b` measured at 1 s on the phones (computed: 0.4 s)
TABLE = {"net": {"p1": {"a": "20 ms", "b": "1 s"}, "p2": {"a": "20 ms", "b": "1 s"}, "edge": {"b": "100 ms"}}}
SPLIT = {"u1/a": "p1", "u1/b": "edge", "u2/a": "p2", "u2/b": "edge"}
LOCAL = {"u1/a": "p1", "u1/b": "p1", "u2/a": "p2", "u2/b": "p2"}


def data(contention: str = "none", table: Any = TABLE) -> dict[str, Any]:
    """§9.9's two phones and one edge (memory not enforced) with measured times."""
    return {
        "dnnpart": 2,
        "name": "measured",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [
                {"id": "p1", "compute": "10 GFLOP/s"},
                {"id": "p2", "compute": "10 GFLOP/s"},
                {"id": "edge", "compute": "100 GFLOP/s"},
            ],
            "links": [
                {"from": "p1", "to": "edge", "bandwidth": "8 Mbit/s"},
                {"from": "p2", "to": "edge", "bandwidth": "8 Mbit/s"},
            ],
            "latency": copy.deepcopy(table),
        },
        "workload": [
            {"id": "u1", "model": "net", "source": "p1", "sink": "p1"},
            {"id": "u2", "model": "net", "source": "p2", "sink": "p2"},
        ],
        "problem": {"contention": contention, "constraints": {"memory": False}},
    }


def test_table_reaches_every_request_of_the_model() -> None:
    inst = load_instance_data(data())
    t = inst.time
    ids, dev = inst.graph.layer_index, inst.system.device_index
    for r in ("u1", "u2"):
        assert t[ids[f"{r}/a"], dev["p1"]] == pytest.approx(0.02)
        assert t[ids[f"{r}/b"], dev["edge"]] == pytest.approx(0.1)
        assert t[ids[f"{r}/a"], dev["edge"]] == pytest.approx(0.01)  # not measured: 1 GFLOP / 100 GFLOP/s


def test_evaluator_by_hand_none_and_schedule() -> None:
    ev = evaluate(load_instance_data(data("none")), SPLIT)
    assert ev.workload["requests"]["u1"]["latency_s"] == pytest.approx(0.621, rel=1e-12)  # 0.02 + 0.5 + 0.1 + 0.001
    assert ev.objective == pytest.approx(1.242, rel=1e-12)
    assert evaluate(load_instance_data(data("none")), LOCAL).objective == pytest.approx(2 * 1.02, rel=1e-12)
    ev = evaluate(load_instance_data(data("schedule")), SPLIT)
    assert ev.schedule["u1/b"] == pytest.approx(0.52) and ev.schedule["u2/b"] == pytest.approx(0.62)
    assert ev.objective == pytest.approx(0.621 + 0.721, rel=1e-12)
    # without the table the same placement takes 0.641 per request alone (§9.9)
    plain = load_instance_data(data("none", table={}))
    assert evaluate(plain, SPLIT).objective == pytest.approx(1.282, rel=1e-12)
    assert evaluate(plain, LOCAL).objective == pytest.approx(1.0, rel=1e-12)  # 0.1 + 0.4 per request


@pytest.mark.parametrize("solver", ["brute", "cpsat-v2", "local-search"])
@pytest.mark.parametrize(("contention", "optimum"), [("none", 1.242), ("schedule", 1.342)])
def test_solvers_use_the_table(solver: str, contention: str, optimum: float) -> None:
    """Measured, the phones are slow at `b` (1 s): every request splits; computed, all stay local (1.0)."""
    res = solve(load_instance_data(data(contention)), solver, SolverOptions(time_limit_s=20))
    assert res.objective == pytest.approx(optimum, rel=1e-6)
    assert res.placement == SPLIT
    res = solve(load_instance_data(data(contention, table={})), solver, SolverOptions(time_limit_s=20))
    assert res.objective == pytest.approx(1.0, rel=1e-6)
    assert res.placement == LOCAL


@pytest.mark.parametrize(
    ("table", "path", "expected"),
    [
        ({"nett": {"p1": {"a": "1 s"}}}, "system.latency.nett", "a model of `models`"),
        ({"net": {"p9": {"a": "1 s"}}}, "system.latency.net.p9", "a device"),
        ({"net": {"p1": {"c": "1 s"}}}, "system.latency.net.p1.c", "a layer of model 'net'"),
        ({"net": {"p1": {"a": "-1 s"}}}, "system.latency.net.p1.a", "not negative"),
        ({"net": {"p1": {"a": "1 GB"}}}, "system.latency.net.p1.a", "time"),
    ],
)
def test_bad_tables_are_refused(table: Any, path: str, expected: str) -> None:
    with pytest.raises(InstanceError) as err:
        load_instance_data(data(table=table), file="f.yaml")
    text = str(err.value)
    assert "f.yaml" in text and path in text and expected in text


def test_export_round_trip() -> None:
    inst = load_instance_data(data("schedule"))
    out = instance_to_data(inst)
    assert out["system"]["latency"] == {"net": {"p1": {"a": 0.02, "b": 1.0}, "p2": {"a": 0.02, "b": 1.0},
                                                "edge": {"b": 0.1}}}
    back = load_instance_data(out)
    assert (back.time == inst.time).all()
    assert evaluate(back, SPLIT).objective == pytest.approx(1.342, rel=1e-12)
