"""The results store: one SQLite file, one row per task, one transaction per row.

Why SQLite (and not an append-only Parquet dataset): a committed SQLite transaction survives the
writer being killed at any instant (``kill -9``, Ctrl-C) because the write-ahead log is replayed on
the next open; the primary key on the task key makes a duplicate row impossible rather than
merely unlikely; ``--resume`` is one indexed query; and one row per transaction costs well under a
millisecond, where a Parquet dataset would need one file per row to give the same guarantee (tens
of thousands of tiny files, slow to read back). A tidy Parquet (or CSV) copy is one call away:
:func:`export_results`.

Only the batch driver writes; workers return rows to it. ``synchronous=NORMAL`` in WAL mode keeps
every committed row through a crash of the process; only a power cut or kernel crash may lose the
last few (``synchronous=FULL`` would fsync each row, which the batch rate does not need).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solvers.batch.worker import DICT_METRICS

if TYPE_CHECKING:
    import pandas as pd

#: Store format version, kept in the ``meta`` table.
SCHEMA_VERSION = 1

#: Every column of the ``results`` table, in order, with its SQLite type.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("task_key", "TEXT PRIMARY KEY"),
    ("instance_hash", "TEXT NOT NULL"),
    ("instance", "TEXT"),
    ("instance_file", "TEXT"),
    ("solver", "TEXT NOT NULL"),
    ("options", "TEXT NOT NULL"),
    ("seed", "INTEGER"),
    ("n_layers", "INTEGER"),
    ("n_devices", "INTEGER"),
    ("objective_kind", "TEXT"),
    ("execution", "TEXT"),
    ("outcome", "TEXT NOT NULL"),
    ("status", "TEXT NOT NULL"),
    ("termination", "TEXT"),
    ("method", "TEXT"),
    ("solver_version", "TEXT"),
    ("objective", "REAL"),
    ("solver_objective", "REAL"),
    ("bound", "REAL"),
    ("gap", "REAL"),
    ("wall_time_s", "REAL"),
    ("build_time_s", "REAL"),
    ("solve_time_s", "REAL"),
    ("task_wall_s", "REAL"),
    ("message", "TEXT"),
    ("log", "TEXT"),
    ("extra", "TEXT"),
    ("placement", "TEXT"),
    ("schedule", "TEXT"),
    ("feasible", "INTEGER"),
    ("latency_s", "REAL"),
    ("latency_sequential_s", "REAL"),
    ("latency_parallel_s", "REAL"),
    ("period_s", "REAL"),
    ("throughput_per_s", "REAL"),
    ("energy_total_j", "REAL"),
    ("cost_usd", "REAL"),
    ("bytes_moved", "REAL"),
    ("compute_time_s", "TEXT"),
    ("energy_j", "TEXT"),
    ("memory_bytes", "TEXT"),
    ("link_bytes", "TEXT"),
    ("link_busy_s", "TEXT"),
    ("transfers", "TEXT"),
    ("violations", "TEXT"),
    ("finished_at", "TEXT"),
    ("host", "TEXT"),
    ("worker_pid", "INTEGER"),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)

#: Columns that depend on the machine or the moment, not on the task (left out when comparing runs).
VOLATILE_COLUMNS = (
    "wall_time_s",
    "build_time_s",
    "solve_time_s",
    "task_wall_s",
    "finished_at",
    "host",
    "worker_pid",
    "log",
    "message",
)

STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StoreError(ValueError):
    """The file is not a results store (or is of another version)."""


class ResultsStore:
    """An open results store (SQLite, WAL). Use as a context manager.

    Parameters
    ----------
    path : str or Path
        The store file; created (with its folder) when absent.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix == ".parquet":
            raise StoreError(
                f"{self.path}: the results store is a SQLite file (e.g. results.db); a Parquet copy is "
                f"made with `dnnpart results STORE --export {self.path.name}` or --export on `dnnpart batch`"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a dnnpart results store ({exc})") from None

    def _create(self) -> None:
        cols = ", ".join(f"{name} {typ}" for name, typ in COLUMNS)
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS results ({cols})")
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        (version,) = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if int(version) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: results store version {version}; this dnnpart reads {SCHEMA_VERSION}")

    def done_keys(self) -> set[str]:
        """Keys of every task with a row."""
        return {k for (k,) in self.conn.execute("SELECT task_key FROM results")}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Insert one row in its own transaction; False when its key is already present."""
        values = [row.get(c) for c in COLUMN_NAMES]
        marks = ", ".join("?" for _ in COLUMN_NAMES)
        cur = self.conn.execute(f"INSERT OR IGNORE INTO results ({', '.join(COLUMN_NAMES)}) VALUES ({marks})", values)
        return cur.rowcount == 1

    def add_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert rows one transaction each; the number inserted."""
        return sum(self.add(r) for r in rows)

    def __len__(self) -> int:
        (n,) = self.conn.execute("SELECT COUNT(*) FROM results").fetchone()
        return int(n)

    def close(self) -> None:
        """Checkpoint the log into the main file and close."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _expand(df: pd.DataFrame) -> pd.DataFrame:
    """Dict metrics (JSON text) to one column per key: ``energy_j.phone``, ``link_bytes.a->b``."""
    import pandas as pd

    def parse(text: Any) -> dict[str, Any]:
        if not isinstance(text, str):
            return {}
        return {k: (float(v) if isinstance(v, str) else v) for k, v in json.loads(text).items()}

    parts = [df]
    for name in DICT_METRICS:
        if name not in df.columns:
            continue
        wide = pd.DataFrame([parse(t) for t in df[name]], index=df.index)
        wide.columns = [f"{name}.{c}" for c in wide.columns]
        parts.append(wide.astype(float))
    out = pd.concat(parts, axis=1).drop(columns=[n for n in DICT_METRICS if n in df.columns])
    return out


def load_results(path: str | Path, *, expand: bool = True) -> pd.DataFrame:
    """Load a results store (or a Parquet/CSV export of one) into a pandas DataFrame.

    Parameters
    ----------
    path : str or Path
        A SQLite store written by :func:`solvers.batch.run`, or a ``.parquet``/``.csv`` export.
    expand : bool
        Turn the per-device and per-link metrics into one float column per key
        (``energy_j.phone``, ``link_bytes.phone->cloud``); otherwise keep them as JSON text.

    Returns
    -------
    pandas.DataFrame
        One row per task, in the order the rows were written.

    Raises
    ------
    FileNotFoundError, StoreError
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "no such file", str(p))
    if p.suffix == ".parquet":
        df = pd.read_parquet(p)
        return df
    if p.suffix == ".csv":
        return pd.read_csv(p)
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            df = pd.read_sql_query("SELECT * FROM results ORDER BY rowid", conn)
        finally:
            conn.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise StoreError(f"{p}: not a dnnpart results store ({exc})") from None
    return _expand(df) if expand else df


def export_results(store: str | Path, out: str | Path) -> int:
    """Write a tidy copy of a store as Parquet (``.parquet``) or CSV (``.csv``); the row count."""
    o = Path(out)
    df = load_results(store)
    if o.suffix == ".parquet":
        tmp = o.with_name(o.name + ".tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(o)
    elif o.suffix == ".csv":
        df.to_csv(o, index=False)
    else:
        raise StoreError(f"{o}: export to .parquet or .csv")
    return len(df)
