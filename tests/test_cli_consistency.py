"""Command-line consistency (issue 16, item 4): each test reproduces a problem a first hour met."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer

from solvers import progress
from solvers.options import SolverOptions
from solvers.registry import get_solver
from tests.hostile import run
from toolchain.cli import app
from toolchain.cli import progress as live

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instances" / "examples" / "tiny-dag-three-tier.yaml"


def cli(*args: object, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess: file descriptors 1 and 2 are what a shell sees."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "toolchain.cli", *map(str, args)],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_version() -> None:
    res = run("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"dnnpart {version('dnnpart')}"


def _commands() -> list[tuple[str, Any]]:
    root: Any = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):  # a group such as `import`
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def test_short_o_means_output_in_every_command() -> None:
    """-o was --option in `solve` and --output elsewhere; now every output file is -o, nothing else is."""
    outputs = {"--out", "--output"}
    seen = 0
    for name, cmd in _commands():
        for p in cmd.params:
            opts = set(p.opts) | set(p.secondary_opts)
            if opts & outputs:
                assert "-o" in opts, f"{name}: {sorted(opts)} has no -o"
                seen += 1
            else:
                assert "-o" not in opts, f"{name}: -o is {sorted(opts)}, not the output"
    assert seen >= 15  # solve, schema, transform, sweep, pareto, batch, imports, exports, runtime...


def test_solve_o_writes_the_result_and_option_keeps_working(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = run("solve", TINY, "-s", "cpsat", "--option", "hint=none", "-o", out)
    assert res.exit_code == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "optimal"
    assert data["objective"] == pytest.approx(0.066325, rel=1e-9)  # brute force's optimum of this file
    assert data["options"]["raw"] == {"hint": "none"}
    # the old spelling `-o KEY=VALUE` is caught instead of becoming a file named KEY=VALUE
    old = run("solve", TINY, "-s", "cpsat", "-o", "hint=none")
    assert old.exit_code == 2
    assert "-o now means --out" in old.stderr and "--option KEY=VALUE" in old.stderr
    assert not Path("hint=none").exists()


def test_verbose_json_log_on_stderr_once_and_the_json_parses() -> None:
    """The HiGHS log went to stdout, twice, and `solve -v --json` printed no parseable JSON."""
    proc = cli("solve", TINY, "-s", "highs", "-v", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert data["status"] == "optimal" and data["objective"] == pytest.approx(0.066325, rel=1e-6)
    assert proc.stderr.count("Solving report") == 1  # HiGHS's closing summary, once
    assert proc.stderr.count("Presolving model") == 1
    note = proc.stderr.strip().splitlines()[-1]
    assert note.startswith("note: the engine's log shows its scaled model")
    assert "time 0.06633" in note  # the time scale: the best single-device latency (all on edge)


def test_verbose_log_of_a_solver_that_does_not_echo_is_printed_once() -> None:
    proc = cli("solve", TINY, "-s", "brute", "-v", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "optimal"
    log = json.loads(proc.stdout)["log"]
    if log:
        assert proc.stderr.count(log.strip().splitlines()[0]) == 1


def test_progress_line_format_and_gap() -> None:
    p = progress.Progress(incumbent=0.25, bound=0.2, elapsed_s=3.04)
    assert live.line(p, 3.04) == "incumbent 0.25  bound 0.2  gap 20.00%  3.0 s"  # (0.25 - 0.2) / 0.25
    assert live.line(None, 1.0) == "incumbent -  bound -  gap -  1.0 s"
    with open(os.devnull, "w") as not_a_tty:
        assert live.wanted(None, as_json=False, verbose=False, stream=not_a_tty) is False
    assert live.wanted(True, as_json=True, verbose=False) is True
    assert live.wanted(None, as_json=True, verbose=False, stream=sys.__stderr__) is False


def test_progress_reports_of_highs_and_cpsat_are_in_si_units() -> None:
    from formulation.loader import load_instance

    inst = load_instance(TINY)
    for name in ("highs", "cpsat"):
        seen: list[progress.Progress] = []
        with progress.listening(seen.append):
            res = get_solver(name).solve(inst, SolverOptions(time_limit_s=30))
        assert res.status.value == "optimal" and res.objective is not None
        best = res.objective
        incumbents = [p.incumbent for p in seen if p.incumbent is not None]
        assert incumbents, f"{name}: no progress report"
        assert incumbents[-1] == pytest.approx(best, rel=1e-6)  # SI, not the scaled model's value
        assert all(p.bound is None or p.bound <= best * (1 + 1e-6) for p in seen)
    assert not progress.active()  # nothing is left listening


def test_live_line_is_drawn_after_the_delay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import threading

    monkeypatch.setattr(live, "DELAY_S", 0.05)
    monkeypatch.setattr(live, "REFRESH_S", 0.02)
    path = tmp_path / "err.txt"
    with path.open("w") as stream:
        with live.live_line(True, stream):
            progress.report(2.0, 1.0, 0.5)
            threading.Event().wait(0.2)
        with live.live_line(True, stream):  # a short solve stays silent
            pass
    text = path.read_bytes().decode()  # bytes: universal newlines would turn each \r into \n
    redraws = text.split("\r")[1:]
    assert len(redraws) >= 3  # redrawn in place while the block ran
    assert redraws[-1].startswith("incumbent 2  bound 1  gap 50.00%  ") and redraws[-1].endswith(" s\n")
    assert text.count("\n") == 1  # one final line; the short block drew nothing


def test_import_torch_from_the_models_own_folder(tmp_path: Path) -> None:
    """`import torch mymodel:make` failed from the model's folder (cwd was not on the import path)."""
    pytest.importorskip("torch")
    (tmp_path / "cc_mymodel.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(4, 3)), (torch.zeros(1, 4),)\n"
    )
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "cc_file.py").write_text((tmp_path / "cc_mymodel.py").read_text())
    for target, out in (("cc_mymodel:make", "a.yaml"), ("nets/cc_file.py:make", "b.yaml")):
        proc = cli("import", "torch", target, "-o", out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        layers = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / out).read_text())))["layers"]
        assert [lay["op"] for lay in layers] == ["linear"] and layers[0]["flops"] == 2 * 4 * 3


def _wifi_variants(folder: Path) -> list[Path]:
    """Three copies of the tiny instance whose camera-cloud link has 12, 142 and 18 Mbit/s."""
    text = TINY.read_text()
    files = []
    for bw in (12, 142, 18):
        f = folder / f"wifi{bw}.yaml"
        body = text.replace("name: tiny-dag-three-tier", f"name: wifi{bw}")
        f.write_text(body.replace("bandwidth: 8 Mbit/s", f"bandwidth: {bw} Mbit/s"))
        files.append(f)
    return files


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wifi")
    _wifi_variants(folder)
    db = folder / "r.db"
    res = run("batch", folder, "--solvers", "brute,heft", "--jobs", "1", "--no-progress", "-o", db,
              "--options", '{"time_limit_s": 60}', "--options", "{}")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    return db


def test_results_carry_the_varied_parameters_and_sort_naturally(store: Path, tmp_path: Path) -> None:
    """A swept bandwidth was no column, and `wifi142` sorted between `wifi12` and `wifi18`."""
    res = run("results", store, "--json", "--export", tmp_path / "r.csv")
    assert res.exit_code == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    col = "param.links.camera->cloud.bandwidth"
    by_name = {r["instance"]: r[col] for r in rows}
    assert by_name == {"wifi12": 1.5e6, "wifi18": 2.25e6, "wifi142": 17.75e6}  # Mbit/s / 8 = bytes/s
    assert [r["instance"] for r in rows][::4] == ["wifi12", "wifi18", "wifi142"]  # 4 rows each
    assert "param.devices.edge.compute" not in rows[0]  # only what varies
    assert {r["option.time_limit_s"] for r in rows} == {60.0, None}  # the option grid, too
    exported = pd.read_csv(tmp_path / "r.csv")
    assert sorted(exported[col].unique()) == [1.5e6, 2.25e6, 17.75e6]


def test_compare_sorts_naturally(store: Path, tmp_path: Path) -> None:
    res = run("compare", store, "--csv", tmp_path / "c.csv")
    assert res.exit_code == 0, res.stderr
    table = pd.read_csv(tmp_path / "c.csv")
    assert list(dict.fromkeys(table["instance"])) == ["wifi12", "wifi18", "wifi142"]


def test_sweep_rows_name_the_swept_parameter() -> None:
    res = run("sweep", TINY, "--param", "links.camera-cloud.bandwidth", "--values", "8,16", "--json")
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)["rows"]
    assert [r["param.links.camera-cloud.bandwidth"] for r in rows] == [1e6, 2e6]  # SI: bytes/s


def test_granularity_result_feeds_evaluate(tmp_path: Path) -> None:
    """`evaluate FILE --placement` refused the output of `solve FILE --granularity block --json`."""
    out = tmp_path / "r.json"
    res = run("solve", TINY, "--granularity", "block", "--json", "-o", out)
    assert res.exit_code == 0, res.stderr
    data = json.loads(out.read_text())
    assert set(data["placement"]) == {"stem", "left", "right", "merge", "head"}  # the file's own layer ids
    assert "right+left+merge" in data["granularity"]["node_placement"]  # the solved, coarse view
    ev = run("evaluate", TINY, "--placement", out, "--json")
    assert ev.exit_code == 0, ev.stderr
    assert json.loads(ev.stdout)["objective"] == pytest.approx(data["objective"], rel=1e-9)


def test_scenario_list_needs_no_devices_and_shows_figures() -> None:
    res = run("scenario", "--list")
    assert res.exit_code == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "rpi3b" in text and "5.8 GFLOP/s" in text and "1 GiB" in text  # catalogue figures
    assert "nbiot" in text and "0.13 Mbit/s" in text
    bare = run("scenario")
    assert bare.exit_code == 2 and "--devices and --network are required" in bare.stderr
