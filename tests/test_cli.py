"""The command line: exit codes, JSON output per docs/instance-format.md §6, clean errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from toolchain.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "instances" / "examples"
INVALID = ROOT / "instances" / "invalid"
runner = CliRunner()


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_validate_examples() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    res = run("validate", *files)
    assert res.exit_code == 0, res.output
    assert len(files) >= 6 and res.output.count("ok ") == len(files)
    assert "alexnet-lte-latency (18 layers, 2 devices" in res.output


def test_solve_json_has_spec_keys() -> None:
    res = run("solve", EXAMPLES / "tiny-dag-three-tier.yaml", "--solver", "brute", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in (
        "instance",
        "solver",
        "status",
        "objective",
        "bound",
        "gap",
        "placement",
        "schedule",
        "metrics",
        "wall_time_s",
    ):
        assert key in out
    assert out["status"] == "optimal" and out["gap"] == 0
    assert out["objective"] == pytest.approx(0.066325)
    assert set(out["placement"].values()) == {"edge"}
    assert out["schedule"]["stem"] == pytest.approx(0.05)  # frame arrives at 2 ms + 600 kB / 12.5 MB/s
    assert out["metrics"]["latency_parallel_s"] == pytest.approx(0.066325)


def test_solve_human_output_shows_segments(tmp_path: Path) -> None:
    out_file = tmp_path / "r.json"
    res = run("solve", EXAMPLES / "alexnet-lte-phone-energy.yaml", "--solver", "brute", "--out", out_file)
    assert res.exit_code == 0
    assert "conv1 .. pool1 (3 layers)" in res.stdout and "conv2 .. fc8 (15 layers)" in res.stdout
    assert "status optimal" in res.stdout
    # evaluate the written result again: same objective
    ev = run("evaluate", EXAMPLES / "alexnet-lte-phone-energy.yaml", "--placement", out_file, "--json")
    assert ev.exit_code == 0
    assert json.loads(ev.stdout)["objective"] == pytest.approx(json.loads(out_file.read_text())["objective"])


def test_evaluate_infeasible_placement_exits_1(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    inst = yaml.safe_load((EXAMPLES / "models" / "alexnet.yaml").read_text())
    p.write_text(json.dumps({lay["id"]: "cloud" for lay in inst["layers"]}))
    res = run("evaluate", EXAMPLES / "alexnet-lte-phone-energy.yaml", "--placement", p)
    assert res.exit_code == 1
    assert "violation private" in res.stdout


def test_infeasible_instance_exits_1(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(EXAMPLES, tmp_path / "ex")
    data = yaml.safe_load((EXAMPLES / "alexnet-lte-phone-energy.yaml").read_text())
    data["problem"]["constraints"]["deadline"] = "10 ms"
    f = tmp_path / "ex" / "infeasible.yaml"
    f.write_text(yaml.safe_dump(data))
    res = run("solve", f, "--solver", "brute", "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["status"] == "infeasible"


def test_bad_requests_exit_2() -> None:
    res = run("solve", EXAMPLES / "tiny-dag-three-tier.yaml", "--solver", "nope")
    assert res.exit_code == 2 and "unknown solver 'nope'" in res.stderr
    res = run("solve", EXAMPLES / "tiny-dag-three-tier.yaml", "--solver", "brute", "--gap", "0.1")
    assert res.exit_code == 2 and "cannot honour option(s) ['gap']" in res.stderr
    res = run("solve", EXAMPLES / "missing.yaml")
    assert res.exit_code == 2 and "expected an existing file" in res.stderr
    res = run(
        "evaluate",
        EXAMPLES / "tiny-dag-three-tier.yaml",
        "--placement",
        EXAMPLES / "tiny-dag-three-tier.yaml",
    )
    assert res.exit_code == 2 and "is not valid JSON" in res.stderr


def test_solvers_and_schema() -> None:
    res = run("solvers", "--json")
    assert res.exit_code == 0
    names = {s["name"] for s in json.loads(res.stdout)}
    assert {"auto", "brute", "local", "offload"} <= names
    res = run("schema")
    assert res.exit_code == 0
    committed = json.loads((ROOT / "formulation" / "instance.schema.json").read_text())
    assert json.loads(res.stdout) == committed


EXPECTED = yaml.safe_load((INVALID / "expected.yaml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_invalid_file_exits_2_with_message(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an unrelated working directory: only the file's own folder may be read through file: references
    monkeypatch.chdir(tmp_path)
    res = run("validate", INVALID / name)
    assert res.exit_code == 2
    assert "Traceback" not in res.output + res.stderr
    assert EXPECTED[name] in " ".join(res.stderr.split()), res.stderr
    assert res.stderr.startswith(f"error: {INVALID}")  # names the file (or the referenced file in it)


def test_real_process_exit_code_and_no_traceback() -> None:
    bad = next(iter(sorted(EXPECTED)))
    proc = subprocess.run(
        [sys.executable, "-m", "toolchain.cli", "solve", str(INVALID / bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
