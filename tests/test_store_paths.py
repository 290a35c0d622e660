"""The results store as a file: names are paths (never URIs), foreign databases are refused, damaged cells are flagged.

Known values come from the conformance chain (solvers/testing.py): ``local`` puts all three
layers on the phone ``m``, sequential latency 4.0 s.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from formulation.model import Instance
from solvers import batch
from solvers.batch.store import ResultsStore, StoreError
from solvers.testing import CASES


def chain() -> Instance:
    return CASES[0].build()


@pytest.mark.parametrize("name", ["pct%41.db", "hash#frag.db", "q?mode=ro.db", "with space.db", "file:odd.db"])
def test_store_names_are_file_paths_not_uris(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative name, as typed on the command line
    decoy = tmp_path / "pctA.db"  # what 'pct%41.db' would open if it were read as a URI
    batch.run([chain()], ["offload"], out=tmp_path / "decoy-src.db", jobs=1)
    (tmp_path / "decoy-src.db").rename(decoy)
    rep = batch.run([chain()], ["local"], out=name, jobs=1)
    assert rep.n_run == 1
    assert (tmp_path / name).is_file()
    df = batch.load_results(name)
    assert df["solver"].tolist() == ["local"] and df["objective"].tolist() == [pytest.approx(4.0)]
    # the writer and the reader opened exactly that file: nothing else was created
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == sorted(
        [name, "pctA.db"]
    )
    assert batch.load_results(decoy)["solver"].tolist() == ["offload"]


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (id INTEGER, score REAL)")
    conn.execute("INSERT INTO results VALUES (1, 0.5)")
    conn.commit()
    conn.close()


def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    _foreign(other)
    before = other.read_bytes()
    with pytest.raises(StoreError) as err:
        batch.run([chain()], ["local"], out=other, jobs=1)
    msg = str(err.value)
    assert str(other) in msg and "not a dnnpart results store" in msg
    assert "a SQLite database with the table(s) results" in msg
    assert "store version 1" in msg and "another --out" in msg
    assert other.read_bytes() == before  # no table added to someone else's database
    with pytest.raises(StoreError, match="not a dnnpart results store"):
        batch.load_results(other)
    # a results table of another shape beside a meta table
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"its results table lacks the column\(s\) task_key, instance_hash"):
        batch.load_results(other)
    # a database with other tables altogether
    app = tmp_path / "app.db"
    conn = sqlite3.connect(app)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match=r"with the table\(s\) users"):
        ResultsStore(app)
    # an empty file is not a store to read, but a fine new store to write
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="an empty file"):
        batch.load_results(empty)
    assert batch.run([chain()], ["local"], out=empty, jobs=1).n_run == 1


def test_another_store_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    batch.run([chain()], ["local"], out=db, jobs=1)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="store version '7'"):
        batch.load_results(db)
    with pytest.raises(StoreError, match="store version '7'"):
        batch.run([chain()], ["local"], out=db, jobs=1, resume=True)


def test_damaged_cells_are_missing_and_listed(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    batch.run([chain()], ["local"], [{}], [1, 2, 3], out=db, jobs=1)
    conn = sqlite3.connect(db)
    keys = [k for (k,) in conn.execute("SELECT task_key FROM results ORDER BY rowid")]
    conn.execute("UPDATE results SET objective = 'abc', energy_j = '{broken' WHERE task_key = ?", (keys[0],))
    conn.execute("UPDATE results SET status = x'00ff', wall_time_s = x'01' WHERE task_key = ?", (keys[1],))
    conn.execute('UPDATE results SET link_bytes = \'{"m->c": "lots"}\' WHERE task_key = ?', (keys[2],))
    conn.commit()
    conn.close()
    df = batch.load_results(db)
    assert len(df) == 3
    damaged = {(row, col) for row, col, _ in df.attrs["damaged"]}
    assert damaged == {(0, "objective"), (0, "energy_j"), (1, "status"), (1, "wall_time_s"), (2, "link_bytes")}
    assert df["objective"].isna().tolist() == [True, False, False]
    assert df.loc[1, "objective"] == pytest.approx(4.0)  # the healthy cells are untouched
    assert df["status"].tolist()[0] == "feasible" and df["status"].isna().tolist() == [False, True, False]
    # the damaged per-device cell became no columns for that row, the others expanded as usual
    assert df["energy_j.m"].isna().tolist() == [True, False, False]
    shown = dict(((r, c), v) for r, c, v in df.attrs["damaged"])
    assert shown[(0, "objective")] == "'abc'"


def test_an_export_that_is_not_one_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(StoreError, match="cannot be read as a Parquet export"):
        batch.load_results(junk)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(StoreError, match=r"lacks the column\(s\) task_key"):
        batch.load_results(other)


def test_export_path_checked_first_and_written_whole(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    batch.run([chain()], ["local"], out=db, jobs=1)
    with pytest.raises(StoreError, match=r"the folder .*missing does not exist"):
        batch.export_results(db, tmp_path / "missing" / "x.parquet")
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        batch.export_results(db, folder)
    with pytest.raises(StoreError, match=r"'\.xlsx'"):
        batch.export_results(db, tmp_path / "x.xlsx")
    # the export is checked before the store is read: a bad store with a bad path names the path
    with pytest.raises(StoreError, match="does not exist"):
        batch.export_results(tmp_path / "nope.db", tmp_path / "missing" / "x.csv")
    out = tmp_path / "x.csv"
    out.write_text("old contents")
    assert batch.export_results(db, out) == 1
    assert batch.load_results(out)["objective"].tolist() == [pytest.approx(4.0)]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_pipes_devices_and_folders_are_refused_without_opening_them(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    for path in (fifo, Path(os.devnull), tmp_path):
        with pytest.raises(StoreError, match=r"not a regular file|is a folder"):
            batch.load_results(path)
        with pytest.raises(StoreError, match=r"not a regular file|is a folder"):
            ResultsStore(path)
