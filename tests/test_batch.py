"""Batch solving on the local pool: the grid, one row per task with every field, failures as rows, resume.

Known optima come from the conformance cases (solvers/testing.py), whose arithmetic is written
there: on the three-layer chain, sequential latency is 0.521 s for ccc (optimal) and 4.0 s for
mmm (the ``local`` baseline).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from formulation.loader import instance_to_data, load_instance, load_instance_data
from solvers import batch
from solvers.batch.faults import register_faulty, unregister_faulty
from solvers.batch.grid import expand_grid, instance_hash
from solvers.batch.store import COLUMN_NAMES, ResultsStore, StoreError
from solvers.testing import CASES

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"
CASE = {c.name: c for c in CASES}


@pytest.fixture(scope="module")
def faulty() -> object:
    register_faulty()
    yield
    unregister_faulty()


def chain():  # type: ignore[no-untyped-def]
    return CASE["chain-seq-latency"].build()


# -- grid -------------------------------------------------------------------------------------------


def test_grid_is_the_cross_product_with_unique_keys() -> None:
    a, b = chain(), CASE["chain-cost"].build()
    tasks = expand_grid([a, b], ["brute", "local"], [{}, {"gap": 0.01}], [0, 1, 2], time_limit_s=5)
    assert len(tasks) == 2 * 2 * 2 * 3
    assert len({t.key for t in tasks}) == 24
    assert {t.options_json for t in tasks} == {'{"time_limit_s":5.0}', '{"gap":0.01,"time_limit_s":5.0}'}
    # hard timeout = 1.5 x limit + 10 s grace
    assert {t.hard_timeout_s for t in tasks} == {17.5}


def test_instance_hash_ignores_name_and_file_form_but_not_content() -> None:
    inst = load_instance(EXAMPLES / "alexnet-lte-latency.yaml")
    data = instance_to_data(inst)
    data["name"] = "renamed"
    same = load_instance_data(data)
    assert instance_hash(same) == instance_hash(inst)
    data["system"]["links"][0]["bandwidth"] *= 2
    assert instance_hash(load_instance_data(data)) != instance_hash(inst)
    # identical content under two names is one task
    assert len(expand_grid([inst, same], ["local"])) == 1


def test_grid_refuses_unknown_option_and_solver() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        expand_grid([chain()], ["local"], [{"gapp": 1}])
    from solvers.registry import UnknownSolver

    with pytest.raises(UnknownSolver):
        expand_grid([chain()], ["no-such-solver"])


# -- running, rows ----------------------------------------------------------------------------------


def test_rows_hold_every_result_field_and_metric(tmp_path: Path) -> None:
    out = tmp_path / "r.db"
    rep = batch.run([chain()], ["brute", "local"], out=out, jobs=2)
    assert (rep.n_tasks, rep.n_run, rep.n_skipped, rep.n_failed) == (2, 2, 0, 0)
    df = batch.load_results(out)
    dict_metrics = {"compute_time_s", "energy_j", "memory_bytes", "link_bytes", "link_busy_s"}
    assert set(COLUMN_NAMES) - dict_metrics <= set(df.columns)
    df = df.set_index("solver")
    brute, local = df.loc["brute"], df.loc["local"]
    assert brute["status"] == "optimal" and brute["outcome"] == "ok"
    assert brute["objective"] == pytest.approx(0.521)
    assert brute["bound"] == pytest.approx(0.521) and brute["gap"] == 0.0
    assert json.loads(brute["placement"]) == {"a": "c", "b": "c", "c": "c"}
    assert local["status"] == "feasible" and local["objective"] == pytest.approx(4.0)
    assert local["bound"] == -math.inf and local["gap"] == math.inf
    # ccc: c computes 0.1 + 0.2 + 0.1 = 0.4 s; m sends x (1e5 B) and receives c's output (1e3 B)
    assert brute["compute_time_s.c"] == pytest.approx(0.4)
    assert brute["compute_time_s.m"] == 0.0
    assert brute["link_bytes.m->c"] == 1e5 and brute["link_bytes.c->m"] == 1e3
    assert brute["bytes_moved"] == 1.01e5
    # cost: 0.4 busy s at 1 USD/s + 1.01e5 B at 1e-6 USD/B = 0.501 (conformance table)
    assert brute["cost_usd"] == pytest.approx(0.501)
    assert brute["latency_sequential_s"] == pytest.approx(0.521)
    assert brute["n_layers"] == 3 and brute["n_devices"] == 2 and brute["objective_kind"] == "latency"
    assert brute["instance_hash"] == instance_hash(chain())


def test_failures_become_rows_and_spare_the_other_tasks(tmp_path: Path, faulty: object) -> None:
    out = tmp_path / "f.db"
    inst = chain()
    rep = batch.run(
        [inst],
        ["fault-crash", "fault-hang", "fault-memory", "fault-raise", "fault-slow", "brute", "local"],
        [{"raw": {"bytes": 8 << 30, "delay_s": 0.05}}],
        out=out,
        jobs=2,
        task_timeout_s=1.5,
        memory_limit_bytes=1 << 30,
    )
    df = batch.load_results(out).set_index("solver")
    assert rep.n_run == 7 and len(df) == 7
    assert df.loc["fault-crash", ["outcome", "status"]].tolist() == ["crashed", "error"]
    assert "exit code -11" in df.loc["fault-crash", "message"]  # SIGSEGV
    assert df.loc["fault-hang", ["outcome", "status", "termination"]].tolist() == [
        "timeout",
        "time_limit_no_solution",
        "time_limit",
    ]
    assert df.loc["fault-memory", "outcome"] == "memory"
    assert df.loc["fault-raise", ["outcome", "status"]].tolist() == ["ok", "error"]
    assert "deliberate failure" in df.loc["fault-raise", "message"]
    # the healthy tasks ran normally beside the crash
    assert df.loc["fault-slow", "objective"] == pytest.approx(4.0)
    # brute cannot honour the raw option: an error row naming it, not a crash of the batch
    assert df.loc["brute", "status"] == "error" and "raw" in df.loc["brute", "message"]
    assert rep.n_failed == 6  # all but fault-slow


def test_resume_skips_done_rows_and_refuses_without_it(tmp_path: Path) -> None:
    out = tmp_path / "r.db"
    batch.run([chain()], ["local"], out=out, jobs=1)
    with pytest.raises(batch.BatchError, match="already holds 1 of the 2 rows"):
        batch.run([chain()], ["local", "offload"], out=out, jobs=1)
    rep = batch.run([chain()], ["local", "offload"], out=out, jobs=1, resume=True)
    assert (rep.n_skipped, rep.n_run) == (1, 1)
    assert sorted(batch.load_results(out)["solver"]) == ["local", "offload"]


# -- the store --------------------------------------------------------------------------------------


def test_store_keeps_one_row_per_key_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "s.db"
    batch.run([chain()], ["local"], [{}], [1, 2], out=out, jobs=1)
    rows = batch.load_results(out, expand=False).to_dict("records")
    with ResultsStore(out) as store:
        assert store.add(rows[0]) is False  # the key is taken: ignored, not duplicated
        assert len(store) == 2
    assert sorted(batch.load_results(out)["seed"]) == [1, 2]
    n = batch.export_results(out, tmp_path / "s.parquet")
    back = batch.load_results(tmp_path / "s.parquet")
    assert n == 2 and back["objective"].tolist() == [pytest.approx(4.0)] * 2
    assert "energy_j.m" in back.columns
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_rejects_parquet_name_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="SQLite"):
        ResultsStore(tmp_path / "results.parquet")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    with pytest.raises(StoreError, match="not a dnnpart results store"):
        batch.load_results(junk)
