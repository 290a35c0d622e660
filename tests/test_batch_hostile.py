"""``dnnpart batch``, ``results`` and ``compare`` on hostile input: exit 2 with one paragraph, never a traceback.

Values: on the three-layer conformance chain (solvers/testing.py) ``local`` keeps every layer on
the phone ``m`` (sequential latency 4.0 s).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from formulation.loader import instance_to_data
from solvers import batch
from solvers.testing import CASES
from toolchain.cli import app

runner = CliRunner()


def cli(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    f = tmp_path / "chain.yaml"
    f.write_text(yaml.safe_dump(instance_to_data(CASES[0].build())))
    return f


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--task-timeout", "-1", "task_timeout_s (--task-timeout) must be a positive, finite number of s"),
        ("--task-timeout", "-1", "got -1.0"),
        ("--task-timeout", "nan", "task_timeout_s (--task-timeout) must be a positive, finite number of s"),
        ("--task-timeout", "inf", "got inf"),
        ("--time-limit", "0", "time_limit_s (--time-limit) must be a positive"),
        ("--time-limit", "nan", "time_limit_s (--time-limit) must be a positive"),
        ("--jobs", "0", "jobs (--jobs) must be a whole number >= 1, got 0"),
        ("--jobs", "-3", "got -3"),
        ("--jobs", "1000000", "jobs (--jobs) must be at most"),
        ("--connect-timeout", "1e300", "connect_timeout_s (--connect-timeout) must be at most 86400, got 1e+300"),
        ("--connect-timeout", "-5", "connect_timeout_s (--connect-timeout) must be a positive"),
        ("--memory-limit", "-4 GiB", "--memory-limit '-4 GiB': expected a positive size"),
        ("--seeds", "1,99999999999999999999999", "seed (--seeds) must be a whole number in 0..2147483647"),
        ("--seeds", "-1", "got -1"),
    ],
)  # fmt: skip
def test_numeric_options_out_of_range_exit_2_before_anything_runs(
    chain_file: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    out = tmp_path / "o.db"
    res = cli("batch", chain_file, "--solvers", "local", "--out", out, "--no-progress", option, value)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not out.exists()  # refused before the store was made


def test_store_names_with_uri_characters_on_the_command_line(
    chain_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = cli("batch", chain_file, "--solvers", "local", "--out", "pct%41 #1?.db", "--no-progress")
    assert res.exit_code == 0, res.output
    assert Path("pct%41 #1?.db").is_file() and not Path("pctA.db").exists()
    Path("pctA.db").write_bytes(Path("pct%41 #1?.db").read_bytes())
    Path("pct%41 #1?.db").unlink()
    missing = cli("results", "pct%41 #1?.db")  # must not open pctA.db
    assert missing.exit_code == 2 and "pct%41 #1?.db: no such file" in missing.output


def test_foreign_store_exits_2_for_batch_results_and_compare(chain_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE results (id INTEGER, score REAL)")
    conn.commit()
    conn.close()
    for args in (["results", other], ["compare", other], ["batch", chain_file, "--out", other, "--no-progress"]):
        res = cli(*args)
        assert res.exit_code == 2, res.output
        assert f"{other}: not a dnnpart results store: a SQLite database with the table(s) results" in res.output
        assert "Traceback" not in res.output


def test_damaged_cells_are_flagged_not_fatal(chain_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    batch.run([chain_file], ["local", "offload"], out=db, jobs=1)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE results SET objective = 'lots', wall_time_s = x'ff', energy_j = '[' WHERE solver = 'local'")
    conn.commit()
    conn.close()
    res = cli("results", db)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "2 rows, 1 instances, 2 solvers" in text
    # the damaged row is local's, first or second in the store depending on which task finished first
    assert "3 cell(s) do not hold their column's type" in text, text
    assert re.search(r"row [01] objective = 'lots'; row [01] wall_time_s = b'\\xff'", text), text
    as_json = cli("results", db, "--json")
    assert as_json.exit_code == 0 and '"objective": null' in as_json.output
    assert cli("compare", db).exit_code == 0


def test_export_to_a_missing_folder_exits_2_before_the_work(chain_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    target = tmp_path / "missing" / "x.parquet"
    res = cli("batch", chain_file, "--solvers", "local", "--out", db, "--export", target, "--no-progress")
    assert res.exit_code == 2 and f"--export {target}: the folder {target.parent} does not exist" in res.output
    assert not db.exists()  # nothing was solved
    assert cli("batch", chain_file, "--solvers", "local", "--out", db, "--no-progress").exit_code == 0
    res = cli("results", db, "--export", target)
    assert res.exit_code == 2 and str(target.parent) in res.output and "Traceback" not in res.output
    good = tmp_path / "x.parquet"
    assert cli("results", db, "--export", good).exit_code == 0
    assert batch.load_results(good)["objective"].tolist() == [pytest.approx(4.0)]


def test_a_400_digit_number_fails_its_own_tasks_only(chain_file: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(chain_file.read_text())
    data["name"] = "huge"
    text = yaml.safe_dump(data).replace("flops: 1000000000.0", "flops: " + "9" * 400, 1)
    assert "9" * 400 in text
    bad = tmp_path / "huge.yaml"
    bad.write_text(text)
    db = tmp_path / "h.db"
    res = cli("batch", chain_file, bad, "--solvers", "local,offload", "--out", db, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "4 tasks run (2 failed)" in res.output  # the two tasks of the bad file
    df = batch.load_results(db).set_index(["instance", "solver"])
    assert df.loc[("chain3", "local"), "objective"] == pytest.approx(4.0)
    assert df.loc[("chain3", "offload"), "outcome"] == "ok"
    for solver in ("local", "offload"):
        row = df.loc[("huge.yaml", solver)]
        assert (row["outcome"], row["status"]) == ("error", "error")
        assert str(bad) in row["message"] and "400 digits" in row["message"]
    assert "warning: " in res.output and "(its tasks are error rows)" in res.output
    # the batch goes on with --resume: the bad file's rows are not solved again
    again = cli("batch", chain_file, bad, "--solvers", "local,offload", "--out", db, "--resume", "--no-progress")
    assert again.exit_code == 0 and "0 tasks run (0 failed), 4 already done" in again.output


def test_any_exception_of_a_loader_fails_that_file_only(
    chain_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import formulation.loader

    real = formulation.loader.load_instance

    def fussy(path: Path, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == "odd.yaml":
            raise OverflowError("int too large to convert to float")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(formulation.loader, "load_instance", fussy)
    odd = tmp_path / "odd.yaml"
    odd.write_text(chain_file.read_text().replace("chain3", "odd"))
    rep = batch.run([chain_file, odd], ["local"], out=tmp_path / "o.db", jobs=1)
    assert (rep.n_tasks, rep.n_run, rep.n_failed) == (2, 2, 1)
    assert [b.file for b in rep.bad_files] == [str(odd)]
    assert (
        rep.bad_files[0].message
        == f"{odd}: the file could not be loaded (OverflowError: int too large to convert to float)"
    )


def test_a_pipe_given_as_an_instance_fails_its_tasks_without_blocking(chain_file: Path, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    rep = batch.run([fifo, chain_file], ["local"], out=tmp_path / "p.db", jobs=1)
    assert (rep.n_run, rep.n_failed) == (2, 1)
    assert [b.file for b in rep.bad_files] == [str(fifo)] and "regular file" in rep.bad_files[0].message


def test_python_api_takes_folders_and_refuses_missing_paths(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    data = instance_to_data(CASES[0].build())
    (folder / "b.yaml").write_text(yaml.safe_dump(data))
    (folder / "a.json").write_text(json.dumps(data))
    (folder / "notes.txt").write_text("not an instance")
    rep = batch.run([folder], ["local"], out=tmp_path / "f.db", jobs=1)
    assert (rep.n_tasks, rep.n_run, rep.bad_files) == (1, 1, [])  # two files, one content: one task
    assert batch.load_results(rep.out)["instance_file"].tolist() == [str(folder / "a.json")]
    with pytest.raises(batch.BatchError, match=r"nope\.yaml: no such file"):
        batch.run([tmp_path / "nope.yaml"], ["local"], out=tmp_path / "g.db")
    (tmp_path / "empty").mkdir()
    with pytest.raises(batch.BatchError, match="folder holds no instance file"):
        batch.run([tmp_path / "empty"], ["local"], out=tmp_path / "g.db")
