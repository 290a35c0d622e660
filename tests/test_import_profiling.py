"""Profiler: per-layer timings on CPU (tiny model), the latency table, and the roofline fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from formulation.loader import load_instance_data  # noqa: E402
from toolchain.cli import app  # noqa: E402
from toolchain.models.toy import branchy  # noqa: E402
from toolchain.profiling import LayerTiming, Profile, calibrate, layer_work, profile_module  # noqa: E402

pytestmark = pytest.mark.torch


def test_profile_times_every_layer_and_feeds_a_latency_table() -> None:
    module, args = branchy(channels=4, image=8)
    prof = profile_module(module, args, repeats=3, warmup=1, device_name="here")
    ids = [lay["id"] for lay in prof.model["layers"]]
    assert list(prof.layers) == ids == ["conv", "bn", "relu", "conv2", "relu@1", "add", "cat", "pool", "fc"]
    for t in prof.layers.values():
        assert 0 < t.min_s <= t.median_s and t.p25_s <= t.median_s <= t.p75_s
    assert prof.eager_median_s > 0
    data = prof.to_data()
    assert set(data["latency"]["here"]) == set(ids) and set(data["spread"]["here"]["conv"]) == {"p25", "p75", "min"}
    system = {"devices": [{"id": "here", "compute": "1 GFLOP/s"}], "source": "here", "latency": data["latency"]}
    inst = load_instance_data({"dnnpart": 1, "name": "p", "model": prof.model, "system": system})
    assert [inst.time[inst.graph.layer_index[i], 0] for i in ids] == [prof.layers[i].median_s for i in ids]


def _synthetic(compute: float, bandwidth: float) -> Profile:
    """Layers timed exactly by the roofline of the given device."""
    model = {
        "name": "m",
        "inputs": [{"id": "x", "bytes": 1000}],
        "layers": [
            # compute-bound: 1e9 FLOP over 2e3 B; memory-bound: 1e3 FLOP over 1e6 + 1e6 B
            {"id": "a", "op": "conv2d", "inputs": ["x"], "flops": 1e9, "param_bytes": 0, "output_bytes": 1000},
            {"id": "b", "op": "relu", "inputs": ["a"], "flops": 1e3, "param_bytes": 1e6, "output_bytes": 1e6},
            {"id": "c", "op": "conv2d", "inputs": ["b"], "flops": 4e9, "param_bytes": 0, "output_bytes": 1000},
        ],
    }
    _, flops, moved, _ = layer_work(model)
    assert list(moved) == [2000, 1000 + 1e6 + 1e6, 1e6 + 1000]
    times = [max(f / compute, m / bandwidth) for f, m in zip(flops, moved, strict=True)]
    layers = {lay["id"]: LayerTiming(t, t, t, t) for lay, t in zip(model["layers"], times, strict=True)}
    return Profile("d", "cpu", 1, 0, layers, model, sum(times))


def test_calibration_recovers_a_known_roofline() -> None:
    # compute 50 GFLOP/s, 10 GB/s: a takes 1e9/5e10 = 20 ms, b 2.001e6/1e10 = 0.2001 ms, c 80 ms
    cal = calibrate(_synthetic(50e9, 10e9))
    assert cal.compute_flops_per_s == pytest.approx(50e9, rel=1e-3)
    assert cal.memory_bandwidth_bytes_per_s == pytest.approx(10e9, rel=1e-3)
    assert cal.per_op["conv2d"].layers == 2 and cal.per_op["conv2d"].median_abs_rel_error < 1e-3
    assert cal.total_predicted_s == pytest.approx(cal.total_measured_s, rel=1e-3)
    assert cal.to_data()["compute"] == "50 GFLOP/s"


def test_profile_rejects_bad_settings() -> None:
    module, args = branchy(channels=2, image=4)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        profile_module(module, args, repeats=0)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        profile_module(module, args, device="tpu")


runner = CliRunner()


def test_cli_profile_with_calibration(tmp_path: Path) -> None:
    out, model_out = tmp_path / "lat.yaml", tmp_path / "model.yaml"
    res = runner.invoke(app, ["profile", "toolchain.models.toy:branchy", "--repeats", "2", "--warmup", "1",
                              "--name", "box", "--calibrate", "-o", str(out), "--model-out", str(model_out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    model = yaml.safe_load(model_out.read_text())
    assert set(data["latency"]["box"]) == {lay["id"] for lay in model["layers"]}
    assert data["calibration"]["compute"].endswith("GFLOP/s") and "conv2d" in data["calibration"]["fit_by_op"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cli_profile_cuda_unavailable_exits_2() -> None:
    res = runner.invoke(app, ["profile", "toolchain.models.toy:branchy", "--device", "cuda"])
    assert res.exit_code == 2
    assert "no CUDA device" in res.output and "Traceback" not in res.output
