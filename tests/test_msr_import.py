"""The MSR workload importer/exporter: hand-computed loads, the MSR max-load formula computed
independently of the evaluator, exact optima by enumeration, CLI round trip and error messages."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from formulation.evaluator import batch_metrics, evaluate
from formulation.loader import load_instance, load_instance_data
from solvers.registry import solve
from solvers.result import Status
from toolchain.cli import app
from toolchain.importers.msr import MsrError, msr_instance_data, parse_msr, read_msr, to_msr

#: The published workloads, unchanged, inside the repository (see instances/third_party/README.md).
DATA = Path(__file__).resolve().parents[1] / "instances" / "third_party" / "msr-dnn-partitioning"
runner = CliRunner()

#: A handmade workload (times in ms): node 3 is CPU-only, nodes 2 and 4 share colour class 7.
TINY: dict[str, Any] = {
    "maxSizePerFPGA": 650.0,
    "maxFPGAs": 2,
    "maxCPUs": 1,
    "nodes": [
        {"name": "a", "id": 1, "supportedOnFpga": 1, "cpuLatency": 10.0, "fpgaLatency": 1.0, "isBackwardNode": 0,
         "colorClass": 1, "size": 100.0},
        {"name": "b", "id": 2, "supportedOnFpga": 1, "cpuLatency": 20.0, "fpgaLatency": 2.0, "isBackwardNode": 0,
         "colorClass": 7, "size": 200.0},
        {"name": "c", "id": 3, "supportedOnFpga": 0, "cpuLatency": 3.0, "fpgaLatency": 3.0, "isBackwardNode": 0,
         "colorClass": 3, "size": 300.0},
        {"name": "d", "id": 4, "supportedOnFpga": 1, "cpuLatency": 40.0, "fpgaLatency": 4.0, "isBackwardNode": 0,
         "colorClass": 7, "size": 400.0},
    ],
    "edges": [
        {"sourceId": 1, "destId": 2, "cost": 0.5},
        {"sourceId": 1, "destId": 3, "cost": 0.5},
        {"sourceId": 2, "destId": 4, "cost": 0.25},
        {"sourceId": 3, "destId": 4, "cost": 0.125},
    ],
}


def msr_max_load(data: dict[str, Any], where: dict[int, tuple[str, int]]) -> float:
    """The max-load of an assignment ``node id -> ("cpu" | "acc", index)``, written from the
    paper's computational model and the MSR tools' ``computeLoadForResultOrg`` (times in the
    file's unit): accelerators pay compute plus the cost of every node whose output leaves them and
    of every outside node with an edge into them, each once; CPUs pay compute only."""
    nodes = {nd["id"]: nd for nd in data["nodes"]}
    cost = {e["sourceId"]: e["cost"] for e in data["edges"]}
    load: dict[tuple[str, int], float] = {}
    for nid, dev in where.items():
        load[dev] = load.get(dev, 0.0) + nodes[nid]["cpuLatency" if dev[0] == "cpu" else "fpgaLatency"]
    receivers: dict[int, set[tuple[str, int]]] = {}
    for e in data["edges"]:
        if where[e["sourceId"]] != where[e["destId"]]:
            receivers.setdefault(e["sourceId"], set()).add(where[e["destId"]])
    for u, devs in receivers.items():
        for dev in devs | {where[u]}:
            if dev[0] == "acc":
                load[dev] += cost[u]
    return max(load.values())


def msr_feasible(data: dict[str, Any], where: dict[int, tuple[str, int]]) -> bool:
    """Eligibility, accelerator memory and colour classes of the MSR model."""
    nodes = {nd["id"]: nd for nd in data["nodes"]}
    if any(dev[0] == "acc" and not nodes[nid]["supportedOnFpga"] for nid, dev in where.items()):
        return False
    size: dict[tuple[str, int], float] = {}
    for nid, dev in where.items():
        size[dev] = size.get(dev, 0.0) + nodes[nid]["size"]
    if any(dev[0] == "acc" and s > data["maxSizePerFPGA"] for dev, s in size.items()):
        return False
    by_class: dict[int, set[tuple[str, int]]] = {}
    for nid, dev in where.items():
        by_class.setdefault(nodes[nid]["colorClass"], set()).add(dev)
    return all(len(devs) == 1 for devs in by_class.values())


def assignment(inst: Any, P: np.ndarray) -> dict[int, tuple[str, int]]:
    """A placement row (device indices) as MSR node id -> (kind, index)."""
    out = {}
    for v, lay in enumerate(inst.graph.layers):
        dev = inst.system.device_ids[int(P[v])]
        out[int(lay.attrs["msr_id"])] = ("cpu" if dev.startswith("cpu") else "acc", int(dev[3:]))
    return out


def tiny_instance(**kw: Any) -> Any:
    return load_instance_data(msr_instance_data(parse_msr(TINY, "tiny.json"), **kw))


def test_hand_computed_loads() -> None:
    """a on acc0, b and d on acc1, c on cpu0 (ms):

    acc0: compute 1 + a's output sent once (to acc1 and cpu0) 0.5 = 1.5;
    acc1: compute 2 + 4 + receiving a 0.5 and c 0.125 (b -> d stays inside) = 6.625;
    cpu0: compute 3 (CPUs pay no communication). Max-load 6.625 ms; memory acc1 200 + 400 = 600 B.
    """
    inst = tiny_instance()
    ev = evaluate(inst, {"n1": "acc0", "n2": "acc1", "n3": "cpu0", "n4": "acc1"})
    assert ev.feasible
    assert ev.busy_s == pytest.approx({"cpu0": 3e-3, "acc0": 1.5e-3, "acc1": 6.625e-3}, rel=1e-12)
    assert ev.period_s == pytest.approx(6.625e-3, rel=1e-12)
    assert ev.memory_bytes["acc1"] == 600.0
    # The same placement without send_once would count a's two transfers: acc0 = 1 + 2 * 0.5 = 2 ms.
    assert ev.link_busy_s["acc0->acc1"] == pytest.approx(0.5e-3, rel=1e-12)
    assert ev.link_busy_s["acc0->cpu0"] == pytest.approx(0.5e-3, rel=1e-12)


def test_constraints_of_the_msr_model() -> None:
    inst = tiny_instance()
    assert inst.active_constraints == {"memory_params", "allowed", "colocate"}
    assert inst.allowed_mask[inst.graph.layer_index["n3"]].tolist() == [True, False, False]
    kinds = {v.kind for v in evaluate(inst, {"n1": "acc0", "n2": "acc0", "n3": "acc1", "n4": "cpu0"}).violations}
    assert kinds == {"allowed", "colocate"}
    # b and d (600 B) fit 650 B; a with b and d (700 B) does not.
    assert [v.kind for v in evaluate(inst, {"n1": "acc0", "n2": "acc0", "n3": "cpu0", "n4": "acc0"}).violations] == [
        "memory"
    ]


@pytest.mark.parametrize("cpus", [1, 2])
def test_period_equals_the_msr_max_load_on_every_placement(cpus: int) -> None:
    """Every one of the 3^4 (or 4^4) placements: the evaluator's period and feasibility are the MSR
    model's, computed independently above (two CPUs exercise the CPU-to-CPU channels)."""
    inst = tiny_instance(cpus=cpus)
    P = np.array(list(itertools.product(range(inst.k), repeat=inst.n)), dtype=np.int64)
    bm = batch_metrics(inst, P, parallel=False)
    feasible = bm.feasible()
    for r in range(P.shape[0]):
        where = assignment(inst, P[r])
        assert bm.period[r] == pytest.approx(msr_max_load(TINY, where) * 1e-3, rel=1e-12)
        assert feasible[r] == msr_feasible(TINY, where)


def test_exact_solvers_find_the_enumerated_optimum() -> None:
    """The optimum, by enumeration of the MSR model and by hand: c is CPU-only; b and d are
    colocated, 60 ms on the CPU or 6 ms on an accelerator X; a cannot join them (700 B > 650 B) and
    on the CPU would make it 10 + 3 = 13 ms; on the other accelerator it costs 1 + 0.5 ms, and X
    pays 6 + 0.5 (a) + 0.125 (c) = 6.625 ms, the optimum."""
    inst = tiny_instance()
    best = min(
        msr_max_load(TINY, assignment(inst, np.array(p)))
        for p in itertools.product(range(inst.k), repeat=inst.n)
        if msr_feasible(TINY, assignment(inst, np.array(p)))
    )
    for solver in ("brute", "highs", "cpsat"):
        res = solve(inst, solver)
        assert res.status == Status.OPTIMAL, solver
        assert res.objective == pytest.approx(best * 1e-3, rel=1e-9), solver
    assert best == pytest.approx(6.625)


def test_real_workload_period_matches_the_formula() -> None:
    """BERT-24 inference (throughput layer graph): 32 nodes, 6 accelerators of 16 GiB, 1 CPU; 200
    random placements agree with the MSR formula to rounding."""
    path = DATA / "throughput-inputs/LayerGraphs/bert24_inference.json"
    data = json.loads(path.read_text())
    inst = load_instance_data(msr_instance_data(read_msr(path)))
    assert (inst.n, inst.k) == (32, 7)
    P = np.random.default_rng(0).integers(0, inst.k, size=(200, inst.n))
    period = batch_metrics(inst, P, parallel=False).period
    expected = [msr_max_load(data, assignment(inst, P[r])) * 1e-3 for r in range(200)]
    np.testing.assert_allclose(period, expected, rtol=1e-12)


def test_training_workloads_refuse_contiguity() -> None:
    w = read_msr(DATA / "throughput-inputs/LayerGraphs/bert24_training.json")
    with pytest.raises(MsrError, match="only the forward nodes of each device to be contiguous"):
        msr_instance_data(w, contiguous=True)
    inst = load_instance_data(msr_instance_data(w))
    assert "colocate" in inst.active_constraints and len(inst.colocate_classes) == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("maxFPGAs"), "maxFPGAs: missing"),
        (lambda d: d["nodes"][1].update(cpuLatency="fast"), r"nodes\[1\]\.cpuLatency: got 'fast'; expected a finite"),
        (lambda d: d["edges"].append({"sourceId": 1, "destId": 4, "cost": 0.7}),
         r"edges\[4\]\.cost: got 0\.7; expected 0\.5, the cost of node 1's other out-edges"),
        (lambda d: d["edges"].append({"sourceId": 4, "destId": 1, "cost": 0.0}), r"cycle through nodes \[1, 2, 3, 4\]"),
        (lambda d: d["edges"].append({"sourceId": 1, "destId": 9, "cost": 0.5}), r"edges\[4\]\.destId: got 9"),
    ],
)
def test_malformed_files_name_the_field(change: Any, message: str) -> None:
    data = json.loads(json.dumps(TINY))
    change(data)
    with pytest.raises(MsrError, match=message):
        parse_msr(data, "tiny.json")


def test_cli_import_export_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "tiny.json"
    src.write_text(json.dumps(TINY))
    out = tmp_path / "tiny.yaml"
    res = runner.invoke(app, ["import", "msr", str(src), "-o", str(out), "--contiguous"])
    assert res.exit_code == 0, res.output
    inst = load_instance(out)
    assert inst.problem.constraints.contiguous and inst.problem.objective.kind == "throughput"
    plain = tmp_path / "plain.yaml"
    assert runner.invoke(app, ["import", "msr", str(src), "-o", str(plain)]).exit_code == 0
    back = tmp_path / "back.json"
    res = runner.invoke(app, ["export", "msr", str(plain), "-o", str(back)])
    assert res.exit_code == 0, res.output
    again = json.loads(back.read_text())
    assert {k: again[k] for k in ("maxSizePerFPGA", "maxFPGAs", "maxCPUs")} == {"maxSizePerFPGA": 650.0, "maxFPGAs": 2,
                                                                                   "maxCPUs": 1}
    by_id = {nd["id"]: nd for nd in again["nodes"]}
    for nd in TINY["nodes"]:
        for key, val in nd.items():
            expected = val if isinstance(val, str) else pytest.approx(val, rel=1e-15)
            assert by_id[nd["id"]][key] == expected, (nd["id"], key)
    edges = sorted((e["sourceId"], e["destId"], e["cost"]) for e in again["edges"])
    want = sorted((e["sourceId"], e["destId"], e["cost"]) for e in TINY["edges"])
    assert [e[:2] for e in edges] == [e[:2] for e in want]
    np.testing.assert_allclose([e[2] for e in edges], [e[2] for e in want], rtol=1e-15)
    # The contiguous instance is not expressible (contiguity is a mode of the MSR tools).
    res = runner.invoke(app, ["export", "msr", str(out)])
    assert res.exit_code == 2 and "not expressible in the MSR format" in res.output


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"maxSizePerFPGA": 1, "maxFPGAs": 1, "maxCPUs": 1, "nodes": [], "edges": []}')
    res = runner.invoke(app, ["import", "msr", str(bad)])
    assert res.exit_code == 2 and "nodes: got []" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["import", "msr", str(bad), "--time-unit", "parsecs"])
    assert res.exit_code == 2
    src = tmp_path / "tiny.json"
    src.write_text(json.dumps(TINY))
    res = runner.invoke(app, ["import", "msr", str(src), "--fpgas", "0", "--cpus", "0"])
    assert res.exit_code == 2 and "not both 0" in res.output


def test_exporter_names_what_differs() -> None:
    inst = tiny_instance()
    data = to_msr(inst)
    assert data["maxFPGAs"] == 2 and len(data["nodes"]) == 4
    from dataclasses import replace

    from formulation.model import Instance, System

    s = inst.system
    devs = [replace(d, send_once=False) if d.id == "acc1" else d for d in s.devices]
    odd = Instance("odd", inst.graph, System(devs, list(s.links.values()), s.source, s.sink), inst.problem,
                   latency_table=inst.latency_table)
    from toolchain.importers.msr import NotMsrShaped

    with pytest.raises(NotMsrShaped, match="send_once: true"):
        to_msr(odd)
