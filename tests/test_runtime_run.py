"""dnnpart run: measured times of emulated links against hand-computed predictions; worker failures.

The three-layer model sends 256 KiB tensors over 20 Mbit/s links with 10 ms latency: each
transfer takes 10 ms + 262144 B / 2.5e6 B/s = 114.86 ms, against about a millisecond of compute
per layer, so the measured times are dominated by the emulated links and the tolerance (10 % of
the prediction) covers compute noise, thread wake-ups and serialisation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
import yaml
from torch import nn

from formulation.loader import load_instance_data
from toolchain.importers.pytorch import from_module
from toolchain.runtime import partition as pt
from toolchain.runtime.driver import WorkerFailure, run_workers
from toolchain.runtime.report import compare

ROOT = Path(__file__).resolve().parents[1]
XFER = 0.010 + 262144 / 2.5e6
"""One transfer: latency + bytes / bandwidth (seconds)."""
LAYER = 0.001
"""Latency-table time of each layer (seconds)."""
TOL = 0.10


class Three(nn.Module):
    """conv 1x1 -> ReLU -> conv 1x1 on a 64x32x32 tensor (256 KiB in float32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(64, 64, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(64, 64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


def three() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Factory for the command line."""
    return Three(), (torch.randn(1, 64, 32, 32),)


def instance_data(devices: list[str], sink: str | None = "a") -> dict[str, Any]:
    module, args = three()
    model = from_module(module, args)
    links = [{"from": a, "to": b, "bandwidth": "20 Mbit/s", "latency": "10 ms"}
             for i, a in enumerate(devices) for b in devices[i + 1:]]
    return {
        "dnnpart": 1, "name": "three", "model": model,
        "system": {"devices": [{"id": d, "compute": "1 GFLOP/s"} for d in devices], "links": links,
                   "source": devices[0], "sink": sink,
                   "latency": {d: {lay["id"]: f"{LAYER * 1e3:g} ms" for lay in model["layers"]} for d in devices}},
        "problem": {"objective": "latency", "execution": "parallel"},
    }


@pytest.fixture(scope="module")
def cut_parts(tmp_path_factory: pytest.TempPathFactory) -> Any:
    def make(placement: dict[str, str], devices: list[str], sink: str | None = "a") -> tuple[Any, Any, Path]:
        inst = load_instance_data(instance_data(devices, sink))
        torch.manual_seed(0)
        module, args = three()
        part = pt.cut(inst, placement, module, args, {})
        out = tmp_path_factory.mktemp("parts")
        pt.save(part, out)
        return inst, part, out

    return make


@pytest.mark.parametrize(
    ("placement", "devices", "n_xfers"),
    [
        ({"conv1": "a", "relu": "b", "conv2": "b"}, ["a", "b"], 2),  # a -> b, result back to the sink a
        ({"conv1": "a", "relu": "b", "conv2": "c"}, ["a", "b", "c"], 3),  # a -> b -> c -> a
    ],
    ids=["two-workers", "three-workers"],
)
@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_measured_latency_matches_hand_computed(cut_parts: Any, placement: dict[str, str], devices: list[str],
                                               n_xfers: int, mode: str) -> None:
    _check_hand_computed(cut_parts, placement, devices, n_xfers, mode, "a")


@pytest.mark.parametrize(
    ("placement", "sink", "n_xfers"),
    [
        ({"conv1": "b", "relu": "b", "conv2": "b"}, "a", 2),  # the source only sends x and receives the result
        ({"conv1": "a", "relu": "b", "conv2": "b"}, None, 1),  # no sink: the output stays on b
    ],
    ids=["idle-source", "no-sink"],
)
def test_source_without_layers_and_no_sink(cut_parts: Any, placement: dict[str, str], sink: str | None,
                                           n_xfers: int) -> None:
    _check_hand_computed(cut_parts, placement, ["a", "b"], n_xfers, "parallel", sink)


def _check_hand_computed(cut_parts: Any, placement: dict[str, str], devices: list[str], n_xfers: int, mode: str,
                         sink: str | None) -> None:
    inst, part, out = cut_parts(placement, devices, sink)
    hand = 3 * LAYER + n_xfers * XFER  # a chain: sequential and parallel latency coincide
    run = run_workers(inst, part.plan, out, part.inputs, mode, inferences=3, warmup=1)
    diff = pt.max_abs_diff([run.outputs[o] for o in part.plan.outputs], part.reference)
    rep = compare(inst, part.plan, run, diff)
    assert rep["latency"]["predicted_s"] == pytest.approx(hand, rel=1e-12)
    assert rep["latency"]["measured_median_s"] == pytest.approx(hand, rel=TOL)
    assert rep["outputs_match"] <= 1e-5
    assert len(rep["transfers"]) == n_xfers
    for t in rep["transfers"]:
        assert t["predicted_s"] == pytest.approx(XFER, rel=1e-12)
        assert t["measured_median_s"] == pytest.approx(XFER, rel=TOL)


def test_stream_throughput_matches_link_occupancy(cut_parts: Any) -> None:
    inst, part, out = cut_parts({"conv1": "a", "relu": "b", "conv2": "c"}, ["a", "b", "c"])
    run = run_workers(inst, part.plan, out, part.inputs, "stream", inferences=5, warmup=1)
    rep = compare(inst, part.plan, run, 0.0)
    period = 262144 / 2.5e6  # each link carries one tensor per inference; latency does not occupy it
    assert rep["throughput"]["predicted_period_s"] == pytest.approx(period, rel=1e-12)
    assert rep["throughput"]["measured_period_s"] == pytest.approx(period, rel=TOL)


def test_slowdown_multiplies_compute(cut_parts: Any) -> None:
    inst, part, out = cut_parts({"conv1": "a", "relu": "a", "conv2": "a"}, ["a", "b"])
    run = run_workers(inst, part.plan, out, part.inputs, "parallel", inferences=2, warmup=1, slowdown={"a": 4.0})
    rows = sorted((r for tr in run.traces[-1].values() for r in tr["layers"]), key=lambda r: r[2])
    assert len(rows) == 3
    compute = sum(r[4] for r in rows)
    # The sleeps owed are paid by the end of the device's last layer: a sleep never ends early and
    # may end late by the scheduler's wake-up delay (loaded host).
    assert 4.0 * compute - 1e-6 <= rows[-1][3] - rows[0][2] <= 4.0 * compute + 0.02


def _gone(pids: list[int]) -> bool:
    return all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids)


def test_killed_worker_ends_the_run(cut_parts: Any) -> None:
    inst, part, out = cut_parts({"conv1": "a", "relu": "b", "conv2": "c"}, ["a", "b", "c"])
    seen: list[int] = []

    def kill_b(pids: dict[str, int | None]) -> None:
        seen.extend(p for p in pids.values() if p is not None)
        threading.Timer(0.3, os.kill, (pids["b"], signal.SIGKILL)).start()

    with pytest.raises(WorkerFailure, match=r"device 'b'.*exit status -9"):
        run_workers(inst, part.plan, out, part.inputs, "parallel", inferences=50, warmup=0, on_start=kill_b)
    assert len(seen) == 3
    deadline = time.monotonic() + 10
    while not _gone(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(seen)


def test_cli_run_killed_worker_exit_1_no_process_left(tmp_path: Path) -> None:
    inst = tmp_path / "three.yaml"
    inst.write_text(yaml.safe_dump(instance_data(["a", "b", "c"])))
    placement = tmp_path / "p.json"
    placement.write_text('{"conv1": "a", "relu": "b", "conv2": "c"}')
    cmd = [sys.executable, "-m", "toolchain.cli", "run", str(inst), "--model", "tests.test_runtime_run:three",
           "-p", str(placement), "--inferences", "100", "--json"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        me = psutil.Process(proc.pid)
        seen: set[int] = set()
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            kids = me.children(recursive=True)
            seen |= {k.pid for k in kids}
            # The workers are the forked children of the fork server (grandchildren of the driver).
            workers = [k for k in kids if k.ppid() != proc.pid]
            if len(workers) == 3:
                break
            time.sleep(0.2)
        assert len(workers) == 3, "the three workers did not start"
        time.sleep(1.5)  # connected and in the middle of the inferences
        workers[1].send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "worker of device" in err and "exit status -9" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while not _gone(sorted(seen)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(sorted(seen)), "a process of the run outlived it"


@pytest.mark.slow
def test_ray_executor_matches_and_a_killed_actor_ends_the_run(cut_parts: Any) -> None:
    inst, part, out = cut_parts({"conv1": "a", "relu": "b", "conv2": "b"}, ["a", "b"])
    run = run_workers(inst, part.plan, out, part.inputs, "parallel", inferences=2, warmup=1, executor="ray")
    rep = compare(inst, part.plan, run, 0.0)
    assert rep["latency"]["measured_median_s"] == pytest.approx(3 * LAYER + 2 * XFER, rel=TOL)
    assert pt.max_abs_diff([run.outputs[o] for o in part.plan.outputs], part.reference) <= 1e-5
    seen: list[int] = []

    def kill_b(pids: dict[str, int | None]) -> None:
        seen.extend(p for p in pids.values() if p is not None)
        threading.Timer(0.3, os.kill, (pids["b"], signal.SIGKILL)).start()

    with pytest.raises(WorkerFailure, match="actor failed"):
        run_workers(inst, part.plan, out, part.inputs, "parallel", inferences=50, warmup=0, executor="ray",
                    on_start=kill_b)
    assert len(seen) == 2


def test_cli_run_report_and_plot(tmp_path: Path) -> None:
    inst = tmp_path / "three.yaml"
    inst.write_text(yaml.safe_dump(instance_data(["a", "b"])))
    placement = tmp_path / "p.json"
    placement.write_text('{"placement": {"conv1": "a", "relu": "b", "conv2": "b"}}')
    out, plot = tmp_path / "run.json", tmp_path / "gantt.png"
    cmd = [sys.executable, "-m", "toolchain.cli", "run", str(inst), "--model", "tests.test_runtime_run:three",
           "-p", str(placement), "--mode", "sequential", "--inferences", "2", "--out", str(out), "--plot", str(plot)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rep = json.loads(out.read_text())
    hand = 3 * LAYER + 2 * XFER
    assert rep["mode"] == "sequential" and rep["inferences"] == 2 and rep["outputs_match"] <= 1e-5
    assert rep["predicted"]["latency_sequential_s"] == pytest.approx(hand, rel=1e-12)
    lat = rep["latency"]
    assert lat["predicted_s"] == pytest.approx(hand, rel=1e-12)
    assert lat["rel_error"] == pytest.approx((lat["measured_median_s"] - hand) / hand, rel=1e-9)
    assert abs(lat["rel_error"]) < TOL and lat["measured_p95_s"] >= lat["measured_median_s"]
    assert [r["layer"] for r in rep["layers"]] == ["conv1", "relu", "conv2"]
    assert all(r["predicted_s"] == pytest.approx(LAYER) for r in rep["layers"])
    assert {(t["tensor"], t["src"], t["dst"]) for t in rep["transfers"]} == {("conv1", "a", "b"), ("conv2", "b", "a")}
    assert plot.stat().st_size > 10_000
    # A placement that needs a missing link is refused before anything runs.
    no_link = instance_data(["a", "b", "c"])
    no_link["system"]["links"] = [lk for lk in no_link["system"]["links"] if lk["to"] != "c"]
    inst.write_text(yaml.safe_dump(no_link))
    placement.write_text('{"conv1": "a", "relu": "c", "conv2": "a"}')
    res = subprocess.run([*cmd[:9], "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "no link" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--mode", "fast"], "--mode 'fast'"),
        (["--executor", "mpi"], "--executor 'mpi'"),
        (["--slowdown", "z=2"], "--slowdown 'z=2'"),
        (["--slowdown", "a=0.5"], "F >= 1"),
        (["--inferences", "0"], "--inferences"),
        (["--mode", "stream", "--inferences", "1"], "stream needs --inferences >= 2"),
        (["--plot", "g.xyz"], "--plot"),
    ],
)
def test_cli_run_bad_options_exit_2(tmp_path: Path, option: list[str], expected: str) -> None:
    from typer.testing import CliRunner

    from toolchain.cli import app

    inst = tmp_path / "three.yaml"
    inst.write_text(yaml.safe_dump(instance_data(["a", "b"])))
    placement = tmp_path / "p.json"
    placement.write_text('{"conv1": "a", "relu": "b", "conv2": "b"}')
    opts = [str(tmp_path / o) if o.endswith(".xyz") else o for o in option]
    res = CliRunner().invoke(app, ["run", str(inst), "--model", "no.such.module:f", "-p", str(placement), *opts])
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_killed_driver_leaves_no_worker_behind(tmp_path: Path) -> None:
    inst = tmp_path / "three.yaml"
    inst.write_text(yaml.safe_dump(instance_data(["a", "b", "c"])))
    placement = tmp_path / "p.json"
    placement.write_text('{"conv1": "a", "relu": "b", "conv2": "c"}')
    cmd = [sys.executable, "-m", "toolchain.cli", "run", str(inst), "--model", "tests.test_runtime_run:three",
           "-p", str(placement), "--inferences", "100"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            kids = me.children(recursive=True)
            seen |= {k.pid for k in kids}
            if len([k for k in kids if k.ppid() != proc.pid]) == 3:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(seen) >= 4  # the fork server and three workers
    deadline = time.monotonic() + 15
    while not _gone(sorted(seen)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(sorted(seen)), "a worker outlived its driver"
