"""Per-request columns of version-2 results in batch stores and ``dnnpart compare`` (solvers/request_columns.py).

Hand-computed instance: phones ``p0`` and ``p1`` (1 GFLOP/s) and a server ``s`` (100 GFLOP/s), each
phone linked to ``s`` at 1 MB/s. Requests ``a`` (from ``p0``) and ``b`` (from ``p1``) run one layer of
1 GFLOP with a 1 kB input and a 1 kB output and return to their phone; ``schedule`` contention,
``sum``. At home a request takes 1 s; on the server 0.001 + 0.01 + 0.001 = 0.012 s alone. Both on
the server, one waits for the other: 0.012 s and 0.001 + 0.01 (wait) + 0.01 + 0.001 = 0.022 s, sum
0.034 s (the optimum; one on the server and one at home gives 1.012 s). ``a``'s deadline 0.015 s puts
``a`` first: ``a`` 0.012 s (met), ``b`` 0.022 s (deadline 0.5 s, met).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from solvers import batch
from solvers.compare import compare_table
from solvers.request_columns import request_summary
from toolchain.cli import app

runner = CliRunner()


def _data() -> dict[str, Any]:
    return {
        "dnnpart": 2,
        "name": "two-phones-one-server",
        "models": {"m": {"inputs": [{"id": "x", "bytes": 1e3}],
                         "layers": [{"id": "l", "op": "conv", "inputs": ["x"], "flops": 1e9, "output_bytes": 1e3}]}},
        "system": {
            "devices": [{"id": "p0", "compute": 1e9}, {"id": "p1", "compute": 1e9}, {"id": "s", "compute": 1e11}],
            "links": [{"from": "p0", "to": "s", "bandwidth": 1e6}, {"from": "p1", "to": "s", "bandwidth": 1e6}],
        },
        "workload": [{"id": "a", "model": "m", "source": "p0", "sink": "p0", "deadline": 0.015},
                     {"id": "b", "model": "m", "source": "p1", "sink": "p1", "deadline": 0.5}],
        "problem": {"objective": "latency", "aggregate": "sum", "contention": "schedule"},
    }


def test_request_summary_by_hand() -> None:
    report = {"requests": {"a": {"latency_s": 0.012, "deadline_s": 0.015},
                           "b": {"latency_s": 0.022, "deadline_s": 0.02},
                           "c": {"latency_s": math.inf, "deadline_s": 1.0},
                           "d": {"latency_s": 0.5, "deadline_s": None}}}
    got = request_summary(report)
    assert got["a"] == {"latency_s": 0.012, "deadline_s": 0.015, "deadline_met": True}
    assert got["b"]["deadline_met"] is False and got["c"]["deadline_met"] is False
    assert got["d"]["deadline_met"] is None


def _row(solver: str, seed: int, requests: dict[str, Any], obj: float) -> dict[str, Any]:
    return {"instance_hash": "h", "instance": "I", "solver": solver, "options": "{}", "seed": seed,
            "status": "feasible", "objective": obj, "bound": 0.02, "wall_time_s": 1.0,
            "extra": json.dumps({"requests": requests})}


def test_compare_table_per_request_columns_over_seeds() -> None:
    """Two seeds of ``h``: a's latency 0.02 and 0.04 (median 0.03), b's deadline met once only (not met)."""
    ok = {"a": {"latency_s": 0.02, "deadline_s": None, "deadline_met": None},
          "b": {"latency_s": 0.01, "deadline_s": 0.015, "deadline_met": True}}
    late = {"a": {"latency_s": 0.04, "deadline_s": None, "deadline_met": None},
            "b": {"latency_s": 0.016, "deadline_s": 0.015, "deadline_met": False}}
    df = pd.DataFrame([_row("h", 1, ok, 0.03), _row("h", 2, late, 0.056), _row("g", 1, ok, 0.03)])
    t = compare_table(df).set_index("config")
    assert t.loc["h", "latency_s.a"] == pytest.approx(0.03) and t.loc["h", "latency_s.b"] == pytest.approx(0.013)
    assert not t.loc["h", "deadline_met.b"] and t.loc["g", "deadline_met.b"]
    assert "deadline_met.a" not in t.columns  # a has no deadline


def test_batch_and_compare_show_each_request(tmp_path: Path) -> None:
    inst = tmp_path / "two.yaml"
    inst.write_text(yaml.safe_dump(_data()), encoding="utf-8")
    out = tmp_path / "r.db"
    res = runner.invoke(app, ["batch", str(inst), "--solvers", "brute,cpsat-v2", "--out", str(out), "--jobs", "1",
                              "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    df = batch.load_results(out)
    assert sorted(df["status"]) == ["optimal", "optimal"]
    assert df["objective"].tolist() == pytest.approx([0.034, 0.034], rel=1e-9)
    csv = tmp_path / "c.csv"
    res = runner.invoke(app, ["compare", str(out), "--csv", str(csv)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "per request (version 2)" in res.output
    table = pd.read_csv(csv).set_index("config")
    for solver in ("brute", "cpsat-v2"):
        assert table.loc[solver, "latency_s.a"] == pytest.approx(0.012, rel=1e-9)
        assert table.loc[solver, "latency_s.b"] == pytest.approx(0.022, rel=1e-9)
        assert bool(table.loc[solver, "deadline_met.a"]) and bool(table.loc[solver, "deadline_met.b"])
    lines = [ln for ln in res.output.splitlines() if "brute" in ln and ("0.012" in ln or "0.022" in ln)]
    assert len(lines) == 2 and all("yes" in ln for ln in lines)
