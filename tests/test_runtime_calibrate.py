"""The optional link overheads (format §3.2) and calibrate-links: meaning, solvers, fit, files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from formulation.evaluator import evaluate
from formulation.loader import instance_to_data, load_instance, load_instance_data
from solvers.registry import solve
from toolchain.cli import app
from toolchain.runtime.calibrate import ALL, apply_to_file, fit


def chain(overhead: dict[str, Any] | None = None) -> dict[str, Any]:
    """Three layers, two devices, a 1 MB/s link with 2 ms latency; outputs back to the phone."""
    link = {"from": "phone", "to": "edge", "bandwidth": "1 MB/s", "latency": "2 ms", **(overhead or {})}
    return {
        "dnnpart": 1, "name": "chain",
        "model": {"inputs": [{"id": "x", "bytes": 100_000}], "layers": [
            {"id": "l1", "op": "conv2d", "inputs": ["x"], "flops": 4e8, "output_bytes": 50_000},
            {"id": "l2", "op": "conv2d", "inputs": ["l1"], "flops": 4e8, "output_bytes": 20_000},
            {"id": "l3", "op": "conv2d", "inputs": ["l2"], "flops": 4e8, "output_bytes": 1_000},
        ]},
        "system": {"devices": [{"id": "phone", "compute": "1 GFLOP/s"}, {"id": "edge", "compute": "10 GFLOP/s"}],
                   "links": [link], "source": "phone", "sink": "phone"},
        "problem": {"objective": "latency"},
    }


def test_overhead_fields_add_to_every_transfer() -> None:
    pl = {"l1": "phone", "l2": "edge", "l3": "edge"}
    base = evaluate(load_instance_data(chain()), pl)
    ev = evaluate(load_instance_data(chain({"overhead": "0.5 ms", "overhead_bandwidth": "100 MB/s"})), pl)
    # l1 -> edge: 50 kB; l3 -> phone: 1 kB. Each: 2 ms + 0.5 ms + n / 1e6 + n / 1e8.
    want = {"l1": 2.5e-3 + 50_000 / 1e6 + 50_000 / 1e8, "l3": 2.5e-3 + 1_000 / 1e6 + 1_000 / 1e8}
    assert {t.tensor: t.duration_s for t in ev.transfers} == pytest.approx(want, rel=1e-12)
    assert {t.tensor: t.duration_s for t in base.transfers} == pytest.approx(
        {"l1": 2e-3 + 0.05, "l3": 2e-3 + 0.001}, rel=1e-12)
    # The per-byte part occupies the link (period), the fixed part does not.
    assert ev.link_busy_s["phone->edge"] == pytest.approx(50_000 / 1e6 + 50_000 / 1e8, rel=1e-12)
    assert ev.latency_sequential_s - base.latency_sequential_s == pytest.approx(
        2 * 0.5e-3 + 51_000 / 1e8, rel=1e-9)


def test_defaults_keep_the_meaning_and_the_written_file() -> None:
    plain = load_instance_data(chain())
    zero = load_instance_data(chain({"overhead": 0}))
    assert (plain.system.link_latency == zero.system.link_latency).all()
    assert (plain.system.bandwidth == zero.system.bandwidth).all()
    assert "overhead" not in instance_to_data(plain)["system"]["links"][0]
    with_it = instance_to_data(load_instance_data(chain({"overhead": "1 ms", "overhead_bandwidth": "1 GB/s"})))
    lk = with_it["system"]["links"][0]
    assert lk["overhead"] == pytest.approx(1e-3) and lk["overhead_bandwidth"] == pytest.approx(1e9)


@pytest.mark.parametrize("bad", [{"overhead": "-1 ms"}, {"overhead_bandwidth": 0}, {"overhead": "3 MB"}])
def test_bad_overhead_is_refused(bad: dict[str, Any]) -> None:
    from formulation.errors import InstanceError

    with pytest.raises(InstanceError, match="links"):
        load_instance_data(chain(bad))


@pytest.mark.parametrize(("solver", "execution"), [
    ("highs", "sequential"), ("highs", "parallel"), ("cpsat", "sequential"), ("cpsat", "parallel"),
    ("shortest-path", "sequential"),
])
def test_solvers_see_the_overhead(solver: str, execution: str) -> None:
    data = chain({"overhead": "500 ms", "overhead_bandwidth": "2 MB/s"})
    data["problem"]["execution"] = execution
    inst = load_instance_data(data)
    best = solve(inst, "brute")
    res = solve(inst, solver)
    assert res.objective == pytest.approx(best.objective, rel=1e-6)
    # The overhead changes the optimum here: without it the edge is worth using.
    assert best.placement == {"l1": "phone", "l2": "phone", "l3": "phone"}
    assert solve(load_instance_data(chain()), "brute").placement != best.placement


def _report(rows: list[tuple[float, float]], mode: str = "parallel") -> dict[str, Any]:
    return {"mode": mode, "transfers": [
        {"src": "phone", "dst": "edge", "bytes": n, "link_s": 0.002 + n / 1e6, "measured_median_s": 0.002 + n / 1e6 + o}
        for n, o in rows]}


def test_fit_recovers_constant_and_per_byte_overhead() -> None:
    rows = [(n, 4e-4 + n * 2e-9) for n in (1e3, 1e4, 1e5, 1e6)]
    f = fit([_report(rows), _report([(5e5, 10.0)], mode="stream")])[ALL]  # stream rows are left out
    assert f.overhead_s == pytest.approx(4e-4, rel=1e-6)
    assert f.per_byte_s == pytest.approx(2e-9, rel=1e-6)
    assert f.samples == 4
    # A negative slope is not a cost: the fit stays non-negative.
    g = fit([_report([(1e3, 1e-3), (1e4, 1e-3), (1e6, 0.0)])])[ALL]
    assert g.per_byte_s == 0.0 and g.overhead_s == pytest.approx(1e-3)
    # One transfer delayed by 50 ms (a busy host) does not move the fit.
    h = fit([_report([*rows, (3e4, 0.05)])])[ALL]
    assert h.overhead_s == pytest.approx(4e-4, rel=1e-6) and h.per_byte_s == pytest.approx(2e-9, rel=1e-6)


def test_calibrated_file_predicts_the_measured_times(tmp_path: Path) -> None:
    data = chain()
    system = tmp_path / "system.yaml"
    system.write_text("# my system\n" + yaml.safe_dump(data["system"]))
    rows = [(n, 8e-4 + n * 1e-9) for n in (1e3, 5e4, 2e5)]
    runs = tmp_path / "run.json"
    runs.write_text(json.dumps(_report(rows)))
    out = tmp_path / "calibrated.yaml"
    res = CliRunner().invoke(app, ["calibrate-links", str(system), str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.startswith("# my system\n") and "overhead: 0.8 ms" in text
    inst_data = copy.deepcopy(data)
    inst_data["system"] = {"file": "calibrated.yaml"}
    (tmp_path / "inst.yaml").write_text(yaml.safe_dump(inst_data))
    inst = load_instance(tmp_path / "inst.yaml")
    for n, o in rows:
        assert inst.system.transfer_time(0, 1, n) == pytest.approx(0.002 + n / 1e6 + o, rel=1e-5)
    # Not a run report, or an instance that refers to its system: exit 2 with the file named.
    bad = CliRunner().invoke(app, ["calibrate-links", str(system), str(system), "--out", str(out)])
    assert bad.exit_code == 2 and "system.yaml" in bad.output
    with pytest.raises(Exception, match="refers to a system file"):
        apply_to_file(tmp_path / "inst.yaml", fit([_report(rows)]))
