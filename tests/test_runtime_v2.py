"""``dnnpart run`` and ``export-partition`` refuse version-2 instances: exit 2, one clear paragraph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolchain.cli import app

ROOT = Path(__file__).resolve().parents[1]
FOUR = ROOT / "instances" / "zoo" / "workloads" / "four-dnns-3tier-routed-schedule.yaml"


@pytest.mark.parametrize("command", ["run", "export-partition"])
def test_version_2_refused_with_exit_2(command: str, tmp_path: Path) -> None:
    placement = tmp_path / "p.json"
    placement.write_text(json.dumps({"u1/conv1": "pi1"}), encoding="utf-8")
    args = [command, str(FOUR), "--model", "alexnet", "--placement", str(placement)]
    if command == "export-partition":
        args += ["--out", str(tmp_path / "parts")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "a version-2 instance (4 request(s) of the model(s) alexnet, googlenet, mobilenet_v2, resnet18" in text
    assert "contention 'schedule', routing 'shortest'" in text
    assert "Traceback" not in res.output and not (tmp_path / "parts").exists()
