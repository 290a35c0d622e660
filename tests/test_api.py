"""The public API ``import dnnpart``: exports, builders (dicts, networkx, nn.Module), solve, evaluate,
batch and compare, each checked against hand-computed values or the underlying implementation."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

import dnnpart
import formulation.model
import solvers.result
from formulation.loader import load_instance

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "instances" / "examples"

SYSTEM: dict[str, Any] = {
    "devices": [
        {"id": "phone", "compute": "10 GFLOP/s", "memory": "1 GB"},
        {"id": "server", "compute": "1 TFLOP/s"},
    ],
    "links": [{"from": "phone", "to": "server", "bandwidth": "10 MB/s", "latency": "5 ms"}],
    "source": "phone",
    "sink": "phone",
}


def diamond() -> nx.DiGraph:
    g = nx.DiGraph(name="diamond")
    g.add_node("stem", flops="1 GFLOP", output_bytes="400 kB", param_bytes="2 MB")
    g.add_node("left", op="conv2d", flops=2e9, output_bytes=1e5)
    g.add_node("right", op="conv2d", flops=3e9, output_bytes=1e5, attrs={"shape": [1, 8]})
    g.add_node("add", op="add", flops=1e6, output_bytes=1e3, reads=["mask"])
    g.add_edges_from([("stem", "left"), ("stem", "right"), ("left", "add"), ("right", "add")])
    return g


def test_exports_are_the_single_implementations() -> None:
    assert dnnpart.Result is solvers.result.Result and dnnpart.Status is solvers.result.Status
    assert issubclass(dnnpart.Instance, formulation.model.Instance)
    assert dnnpart.__version__ == version("dnnpart")
    for name in ("load", "Instance", "solve", "evaluate", "Result", "batch", "compare", "__version__"):
        assert name in dnnpart.__all__ and hasattr(dnnpart, name)


def test_import_is_light_and_torch_stays_optional() -> None:
    code = "import sys, dnnpart; print(sorted(m for m in ('torch', 'pyomo', 'ortools', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_load_solve_evaluate_match_the_modules_they_wrap() -> None:
    path = EXAMPLES / "alexnet-lte-latency.yaml"
    inst = dnnpart.load(path)
    assert isinstance(inst, dnnpart.Instance) and inst.n == 18
    res = dnnpart.solve(inst)
    assert res.status is dnnpart.Status.OPTIMAL and res.conflict is None
    assert res.objective == pytest.approx(0.298668185, rel=1e-8)
    from solvers.registry import solve as registry_solve

    assert registry_solve(load_instance(path)).objective == res.objective
    ev = dnnpart.evaluate(inst, res)
    assert ev.objective == res.objective and ev.placement == res.placement
    cloud = dnnpart.evaluate(inst, {v: "cloud" for v in inst.graph.layer_ids})
    assert cloud.latency_s > res.objective
    # options reach the solver: brute with a time limit, a raw option refused by name
    assert dnnpart.solve(inst, "brute", time_limit=30).objective == pytest.approx(res.objective)
    with pytest.raises(dnnpart.SolverError, match="raw"):
        dnnpart.solve(inst, "shortest-path", options={"presolve": "off"})


def test_from_dict_converts_units_and_reports_the_field_path() -> None:
    data = {
        "dnnpart": 1,
        "name": "two",
        "model": {
            "inputs": [{"id": "x", "bytes": "1 MB"}],
            "layers": [
                {"id": "a", "op": "conv2d", "inputs": ["x"], "flops": "2 GFLOP", "output_bytes": "100 kB"},
                {"id": "b", "op": "linear", "inputs": ["a"], "flops": "0.5 GFLOP", "output_bytes": "1 kB"},
            ],
        },
        "system": SYSTEM,
    }
    inst = dnnpart.Instance.from_dict(data)
    assert isinstance(inst, dnnpart.Instance) and inst.graph.flops.tolist() == [2e9, 5e8]
    res = dnnpart.solve(inst)
    # all on the server: 5 ms + 1 MB / 10 MB/s up, 2 + 0.5 ms compute, 5 ms + 1 kB / 10 MB/s back
    assert res.objective == pytest.approx(0.005 + 0.1 + 0.002 + 0.0005 + 0.005 + 0.0001)
    assert dnnpart.from_dict(data).graph.layer_ids == ("a", "b")
    bad = {**data, "model": {**data["model"], "layers": [{**data["model"]["layers"][0], "flops": "fast"}]}}
    with pytest.raises(dnnpart.InstanceError) as info:
        dnnpart.from_dict(bad)
    assert "model.layers[0].flops" in str(info.value) and "fast" in str(info.value)


def test_from_networkx_keeps_edges_attributes_and_model_inputs() -> None:
    inst = dnnpart.from_networkx(diamond(), SYSTEM, inputs={"image": "150 kB", "mask": 10})
    g = inst.graph
    assert inst.name == g.name == "diamond"
    assert g.layer_ids == ("stem", "left", "right", "add")
    assert {lay.id: lay.inputs for lay in g.layers} == {
        "stem": ("image", "mask"),  # no predecessors: reads every model input
        "left": ("stem",),
        "right": ("stem",),
        "add": ("left", "right", "mask"),
    }
    assert g.param_bytes.tolist() == [2e6, 0, 0, 0] and g.tensor_bytes[-2:].tolist() == [1.5e5, 10.0]
    assert g.layers[2].attrs["shape"] == [1, 8] and g.layers[0].op == "layer"
    # every layer on the phone: (1 + 2 + 3 + 0.001) GFLOP / 10 GFLOP/s
    ev = dnnpart.evaluate(inst, {v: "phone" for v in g.layer_ids})
    assert ev.latency_s == pytest.approx(0.6001)
    # the system of an instance file, and of a loaded instance, give the same devices
    from_file = dnnpart.from_networkx(diamond(), EXAMPLES / "alexnet-lte-latency.yaml", inputs={"image": 1, "mask": 1})
    loaded = dnnpart.load(EXAMPLES / "alexnet-lte-latency.yaml")
    from_inst = dnnpart.from_networkx(diamond(), loaded, inputs={"mask": 1})
    assert from_file.system.device_ids == from_inst.system.device_ids == ("phone", "cloud")
    assert from_file.system.compute.tolist() == from_inst.system.compute.tolist()
    sysfile = EXAMPLES / "systems" / "phone-cloud-lte.yaml"
    assert dnnpart.from_networkx(diamond(), sysfile, inputs={"mask": 1}).system.bandwidth[0, 1] == pytest.approx(
        5.85e6 / 8
    )


def test_from_networkx_rejects_a_missing_figure_with_the_field() -> None:
    g = nx.DiGraph()
    g.add_node("a", flops=1.0)
    with pytest.raises(dnnpart.InstanceError, match=r"model\.layers\[0\]\.output_bytes"):
        dnnpart.from_networkx(g, SYSTEM)


@pytest.mark.torch
def test_from_module_imports_a_pytorch_network() -> None:
    torch = pytest.importorskip("torch")
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    inst = dnnpart.Instance.from_module(m, torch.zeros(1, 4), SYSTEM, {"objective": "latency"}, name="mlp")
    assert inst.name == "mlp" and [(lay.id, lay.op, lay.flops) for lay in inst.graph.layers] == [
        ("0", "linear", 24.0),
        ("1", "relu", 3.0),
    ]
    assert inst.graph.param_bytes.tolist() == [(4 * 3 + 3) * 4, 0.0]
    res = dnnpart.solve(inst)
    assert res.status is dnnpart.Status.OPTIMAL and set(res.placement.values()) == {"phone"}


def test_batch_and_compare(tmp_path: Path) -> None:
    out = tmp_path / "r.db"
    report = dnnpart.batch([EXAMPLES / "alexnet-lte-latency.yaml"], ["auto", "offload"], out=out, jobs=1)
    assert (report.n_tasks, report.n_failed) == (2, 0)
    rows = dnnpart.results(out)
    assert sorted(rows["solver"]) == ["auto", "offload"]
    table = dnnpart.compare(out)
    best = table.set_index("config")
    assert best.loc["auto", "gap_to_best_bound"] == 0.0
    assert best.loc["offload", "ratio_to_best"] > 1.0
    assert dnnpart.compare(rows).equals(table)


def test_from_networkx_reads_edge_bytes_and_converts_graph_nx_back() -> None:
    g = nx.DiGraph()
    g.add_node("a", flops=1e9)
    g.add_node("b", flops=2e9, output_bytes=10.0)
    g.add_node("c", flops=3e9, output_bytes=20.0)
    g.add_edge("a", "b", bytes="300 kB")
    g.add_edge("a", "c", bytes=3e5)  # the same tensor, the same size
    inst = dnnpart.from_networkx(g, SYSTEM, inputs={"x": 1e6})
    assert inst.graph.output_bytes.tolist() == [3e5, 10.0, 20.0]
    g.edges["a", "c"]["bytes"] = 4e5  # two sizes for one tensor: refused, naming the field
    with pytest.raises(dnnpart.InstanceError, match=r"model\.layers\[0\]\.output_bytes"):
        dnnpart.from_networkx(g, SYSTEM, inputs={"x": 1e6})
    # Graph.nx (nodes carry their Layer) converts back to the same graph
    tiny = dnnpart.load(EXAMPLES / "tiny-dag-three-tier.yaml")
    back = dnnpart.from_networkx(
        tiny.graph.nx,
        tiny,
        {"objective": "latency", "execution": "parallel"},
        inputs={"frame": tiny.graph.inputs[0].bytes},
    )
    assert back.graph.layer_ids == tiny.graph.layer_ids
    for a, b in zip(back.graph.layers, tiny.graph.layers, strict=True):
        assert (a.op, a.inputs, a.flops, a.output_bytes, a.param_bytes) == (
            b.op,
            b.inputs,
            b.flops,
            b.output_bytes,
            b.param_bytes,
        )
    plain = dnnpart.solve(tiny.with_problem(back.problem), "brute").objective
    assert dnnpart.solve(back, "brute").objective == pytest.approx(plain)


def test_to_dict_round_trips() -> None:
    inst = dnnpart.load(EXAMPLES / "tiny-dag-three-tier.yaml")
    data = inst.to_dict()
    assert data["dnnpart"] == 1 and data["model"]["layers"][0]["id"] == "stem"
    again = dnnpart.from_dict(data)
    assert isinstance(again.with_problem(again.problem), dnnpart.Instance)
    assert again.graph.flops.tolist() == inst.graph.flops.tolist()
    assert again.system.bandwidth.tolist() == inst.system.bandwidth.tolist()
    assert dnnpart.solve(again, "brute").objective == pytest.approx(0.066325)
