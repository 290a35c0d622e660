"""Version 2 in the toolchain: ``dnnpart scenario --users``, the zoo's workloads, per-request plots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from formulation.evaluator import evaluate
from formulation.loader import load_instance, load_instance_data
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from tests.test_v2_examples import SPLIT, base
from toolchain.cli import app
from toolchain.plots_workload import figure_data
from toolchain.zoo import HEADER, WORKLOADS, ZOO_DIR, generate_workloads

runner = CliRunner()
WORKLOAD_FILES = sorted((ZOO_DIR / "workloads").glob("*.yaml"))


def test_zoo_workloads_regenerate_identically(tmp_path: Path) -> None:
    os.symlink(ZOO_DIR / "models", tmp_path / "models")
    written = generate_workloads(tmp_path)
    assert [p.name for p in written] == [f"{w.name}.yaml" for w in WORKLOADS]
    assert sorted(p.name for p in written) == [p.name for p in WORKLOAD_FILES]
    for new in written:
        old = ZOO_DIR / "workloads" / new.name
        assert new.read_text() == old.read_text(), old
        assert old.read_text().splitlines()[0] == f"# {HEADER}"


@pytest.mark.parametrize("path", WORKLOAD_FILES, ids=[p.stem for p in WORKLOAD_FILES])
def test_zoo_workload_validates(path: Path) -> None:
    inst = load_instance(path)
    spec = next(w for w in WORKLOADS if w.name == path.stem)
    assert inst.workload is not None and len(inst.workload.requests) == spec.users
    assert inst.workload.contention == spec.contention
    if spec.cloud:  # users reach the cloud through the edge box
        idx = inst.system.device_index
        route = inst.workload.routes[(idx[f"{spec.user_device}-1"], idx[spec.cloud])]
        assert [inst.system.device_ids[a] for a, _ in route] == [f"{spec.user_device}-1", spec.edge]


def test_tang_workload_beats_every_symmetric_cut() -> None:
    """8 x ResNet-18 on one edge server: tang's optimum is proven (gap 0) and no worse than any
    placement where every user cuts its network at the same topological position."""
    inst = load_instance(ZOO_DIR / "workloads" / "tang-resnet18-x8-rpi3b-edge-wifi.yaml")
    res = solve(inst, "tang")
    assert res.status == Status.OPTIMAL and res.gap == 0.0
    wl = inst.workload
    assert wl is not None
    edge = "edge-gpu"
    n_per = len(wl.requests[0].layers)
    for cut in range(0, n_per + 1, 6):
        place = {}
        for r in wl.requests:
            for i, v in enumerate(r.layers):
                place[inst.graph.layer_ids[v]] = inst.system.device_ids[r.source] if i < cut else edge
        assert res.objective <= evaluate(inst, place).objective * (1 + 1e-9)


def test_scenario_users_writes_a_version_2_instance(tmp_path: Path) -> None:
    out = tmp_path / "u3.yaml"
    r = runner.invoke(app, ["scenario", "--users", "3", "--model", "alexnet", "--devices", "phone",
                            "--edge", "edge-gpu", "--network", "lte", "-o", str(out)])
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(out.read_text())
    assert data["dnnpart"] == 2 and [w["source"] for w in data["workload"]] == ["phone-1", "phone-2", "phone-3"]
    inst = load_instance(out)
    assert inst.workload is not None and inst.workload.contention == "share" and inst.workload.aggregate == "max"
    assert [w["allowed"] for w in data["workload"]] == [[f"phone-{i}", "edge-gpu"] for i in (1, 2, 3)]
    assert solve(inst, "tang").status == Status.OPTIMAL
    # --no-own-device: a user may run on another's device through the edge, outside tang's setting
    r = runner.invoke(app, ["scenario", "--users", "2", "--model", "alexnet", "--devices", "phone", "--edge",
                            "edge-gpu", "--network", "lte", "--no-own-device", "-o", str(out)])
    assert r.exit_code == 0 and all("allowed" not in w for w in yaml.safe_load(out.read_text())["workload"])
    with pytest.raises(UnsupportedProblem, match="'u1' also on phone-2"):
        get_solver("tang").check(load_instance(out), SolverOptions())
    bad = runner.invoke(app, ["scenario", "--users", "3", "--model", "nope", "--devices", "phone",
                              "--edge", "edge-gpu", "--network", "lte"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_request_gantt_rows_follow_the_joint_schedule() -> None:
    inst = load_instance_data(base("schedule"))
    ev = evaluate(inst, SPLIT)
    fig = figure_data(inst, ev)
    assert len(set(fig["colours"].values())) == 2
    u2 = fig["bars"]["u2"]
    # a@p2 [0, 0.1], the upload [0.1, 0.6], b@edge waits for u1/b: [0.64, 0.68], the return [0.68, 0.681]
    assert [(round(s, 9), round(d, 9), lab) for s, d, lab, _ in u2] == [
        (0.0, 0.1, "a@p2"), (0.1, 0.5, "p2->edge"), (0.64, 0.04, "b@edge")
    ]


def test_request_gantt_under_share_stretches_by_the_share() -> None:
    inst = load_instance_data(base("share", "max"))
    ev = evaluate(inst, SPLIT)
    bars = figure_data(inst, ev)["bars"]["u1"]
    assert bars[-1][2] == "b@edge" and bars[-1][1] == pytest.approx(0.08)  # 0.04 s at half the edge
