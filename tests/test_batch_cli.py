"""``dnnpart batch``, ``results``, ``compare`` and ``sweep``: outputs, files written, and exit code 2 for bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from formulation.loader import instance_to_data
from solvers import batch
from tests.test_sweep import offload_choice
from toolchain.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"
runner = CliRunner()


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


#: The four examples the expected values below are for (the folder may gain more examples).
FOUR = ["alexnet-lte-latency", "alexnet-lte-phone-energy", "tiny-dag-three-tier", "tiny-dag-three-tier-throughput"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the four examples, with the models/ and systems/ they reference."""
    root = tmp_path_factory.mktemp("examples")
    for sub in ("models", "systems"):
        shutil.copytree(EXAMPLES / sub, root / sub)
    for name in FOUR:
        shutil.copy(EXAMPLES / f"{name}.yaml", root)
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Path:
    out = tmp_path_factory.mktemp("cli") / "r.db"
    res = run("batch", folder, "--solvers", "local,offload", "--out", out, "--jobs", "2", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "8 tasks run (0 failed), 0 already done" in res.output
    return out


def test_batch_store_and_resume(store: Path, folder: Path) -> None:
    df = batch.load_results(store)
    assert len(df) == 8 and sorted(set(df["solver"])) == ["local", "offload"]
    # offload ships the private image off the phone, and the camera frame off the camera: infeasible
    infeasible = df[df["status"] == "no_solution_found"]  # baselines prove nothing
    assert sorted(infeasible["instance"]) == ["alexnet-lte-phone-energy", "tiny-dag-three-tier"]
    again = run("batch", folder, "--solvers", "local,offload", "--out", store, "--no-progress")
    assert again.exit_code == 2 and "already holds 8 of the 8 rows" in again.output
    resumed = run("batch", folder, "--solvers", "local,offload", "--out", store, "--resume", "--no-progress")
    assert resumed.exit_code == 0 and "0 tasks run (0 failed), 8 already done" in resumed.output


def test_results_summary_and_export(store: Path, tmp_path: Path) -> None:
    res = run("results", store, "--export", tmp_path / "r.parquet")
    assert res.exit_code == 0, res.output
    assert "8 rows, 4 instances, 2 solvers" in res.output
    assert len(batch.load_results(tmp_path / "r.parquet")) == 8


def test_compare_table_profile_and_plot(store: Path, tmp_path: Path) -> None:
    res = run("compare", store, "--plot", tmp_path / "p.png", "--csv", tmp_path / "c.csv")
    assert res.exit_code == 0, res.output
    assert "performance profile" in res.output and (tmp_path / "p.png").stat().st_size > 10_000
    import pandas as pd

    table = pd.read_csv(tmp_path / "c.csv")
    assert len(table) == 8
    # on alexnet-lte-latency local (all on the phone) beats offload: 0.2987 s against 0.9097 s
    alex = table[table["instance"] == "alexnet-lte-latency"].set_index("config")
    assert alex.loc["offload", "ratio_to_best"] == pytest.approx(0.909702 / 0.298668, rel=1e-4)


def test_sweep_json_and_plot(tmp_path: Path) -> None:
    f = tmp_path / "offload.yaml"
    f.write_text(yaml.safe_dump(instance_to_data(offload_choice())))
    res = run(
        "sweep", f, "--param", "links.m-c.bandwidth", "--values", "1,4,16,64", "--solver", "brute",
        "--json", "--plot", tmp_path / "s.png",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    # hand-derived in tests/test_sweep.py: the phone offloads above 8.016 Mbit/s
    assert [r["latency_s"] for r in rows] == pytest.approx([1.0, 1.0, 0.5015, 0.126125])
    assert [r["cut"] for r in rows] == ["all on m", "all on m", "all on c", "all on c"]
    assert (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["batch", EXAMPLES / "nope.yaml"], "no such file"),
        (["batch", EXAMPLES, "--out", "x.parquet"], "SQLite"),
        (["batch", EXAMPLES, "--options", "{gap: 1}"], "not JSON"),
        (["batch", EXAMPLES, "--options", '{"gapp": 1}'], "unknown option(s) ['gapp']"),
        (["batch", EXAMPLES, "--solvers", "nosuch"], "unknown solver 'nosuch'"),
        (["batch", EXAMPLES, "--executor", "dask"], "--executor 'dask'"),
        (["batch", EXAMPLES, "--seeds", "a,b"], "--seeds 'a,b'"),
        (["batch", EXAMPLES, "--memory-limit", "4 parsecs"], "unknown unit 'parsecs'"),
        (["results", "missing.db"], "no such file"),
        (["compare", EXAMPLES / "alexnet-lte-latency.yaml"], "not a dnnpart results store"),
        (["sweep", EXAMPLES / "alexnet-lte-latency.yaml", "--param", "links.phone-edge.bandwidth", "--values", "1"],
         "names no link"),
        (["sweep", EXAMPLES / "alexnet-lte-latency.yaml", "--param", "links.phone-cloud.bandwidth", "--values",
          "1:2:cubic"], "--values '1:2:cubic'"),
        (["sweep", EXAMPLES / "alexnet-lte-latency.yaml", "--param", "links.phone-cloud.bandwidth", "--values", "1",
          "--unit", "W"], "measures a power"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_without_traceback(args: list[object], message: str, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [str(a) for a in args]
        + (["--out", str(tmp_path / "o.db")] if args[0] == "batch" and "--out" not in args else []),
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
