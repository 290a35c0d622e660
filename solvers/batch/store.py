"""The results store: one SQLite file, one row per task, one transaction per row.

Why SQLite (and not an append-only Parquet dataset): a committed SQLite transaction survives the
writer being killed at any instant (``kill -9``, Ctrl-C) because the write-ahead log is replayed on
the next open; the primary key on the task key makes a duplicate row impossible rather than
merely unlikely; ``--resume`` is one indexed query; and one row per transaction costs well under a
millisecond, where a Parquet dataset would need one file per row to give the same guarantee (tens
of thousands of tiny files, slow to read back). A tidy Parquet (or CSV) copy is one call away:
:func:`export_results`.

Only the batch driver writes; workers return rows to it. Two batches on one store take turns on
SQLite's write lock and never run one task twice (:mod:`solvers.batch.claims`). ``synchronous=NORMAL`` in WAL mode keeps
every committed row through a crash of the process; only a power cut or kernel crash may lose the
last few (``synchronous=FULL`` would fsync each row, which the batch rate does not need).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formulation.errors import shorten
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

#: Suffixes of the tidy copies :func:`export_results` writes.
EXPORT_SUFFIXES = (".parquet", ".csv")

#: Tables a store may hold: the rows, the version, and the claims of running batches.
STORE_TABLES = ("meta", "results", "claims")

#: The claims of tasks that a running batch has taken (see :mod:`solvers.batch.claims`).
CLAIMS_TABLE = (
    "CREATE TABLE IF NOT EXISTS claims (task_key TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, "
    "pid INTEGER NOT NULL, expires REAL NOT NULL)"
)

#: Columns holding JSON text.
JSON_COLUMNS = ("extra", "placement", "schedule", "transfers", "violations", *DICT_METRICS)


class StoreError(ValueError):
    """The file is not a results store (or is of another version), or an export cannot be written."""


def sqlite_uri(path: str | Path, mode: str) -> str:
    """A ``file:`` URI naming exactly ``path`` (``mode``: ``ro``, ``rw`` or ``rwc``).

    A store path is a file path, never a URI: ``%``, ``#``, ``?`` and spaces in a name are
    percent-encoded, so ``pct%41.db`` opens ``pct%41.db`` (not ``pctA.db``). SQLite builds that
    read every name starting with ``file:`` as a URI would otherwise misread such a name too.
    """
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


def connect(path: str | Path, *, readonly: bool = False, timeout: float = 30.0) -> sqlite3.Connection:
    """An autocommit SQLite connection to the file ``path`` (read-only, or created when absent)."""
    uri = sqlite_uri(path, "ro" if readonly else "rwc")
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)


def rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if any: an interrupt (Ctrl-C) may land before BEGIN or after COMMIT."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _not_a_store(path: Path, found: str, hint: str) -> StoreError:
    return StoreError(
        f"{path}: not a dnnpart results store: {found}; expected a SQLite file written by `dnnpart batch` "
        f"(tables meta and results, store version {SCHEMA_VERSION}); {hint}"
    )


def check_schema(conn: sqlite3.Connection, path: Path, *, hint: str) -> bool:
    """Check that ``conn`` holds a dnnpart store of this version; False when it holds no table at all.

    Raises
    ------
    StoreError
        One paragraph: the file, what was found, what was expected, and ``hint``.
    """
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    if not tables:
        return False
    foreign = sorted(set(tables) - set(STORE_TABLES))
    if "results" not in tables or "meta" not in tables or foreign:
        shown = ", ".join(sorted(tables)[:8]) + (" ..." if len(tables) > 8 else "")
        raise _not_a_store(path, f"a SQLite database with the table(s) {shown}", hint)
    have = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    missing = [c for c in COLUMN_NAMES if c not in have]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise _not_a_store(path, f"its results table lacks the column(s) {shown}", hint)
    version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if version is None or str(version[0]) != str(SCHEMA_VERSION):
        got = "no store version" if version is None else f"store version {shorten(version[0])}"
        raise _not_a_store(path, got, hint)
    return True


class ResultsStore:
    """An open results store (SQLite, WAL). Use as a context manager.

    Parameters
    ----------
    path : str or Path
        The store file; created (with its folder) when absent. An existing file must be a
        dnnpart store (or an empty database): another SQLite file is refused, never altered.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix == ".parquet":
            raise StoreError(
                f"{self.path}: the results store is a SQLite file (e.g. results.db); a Parquet copy is "
                f"made with `dnnpart results STORE --export {self.path.name}` or --export on `dnnpart batch`"
            )
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder; expected the results store's file name (e.g. results.db)")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: not a regular file (a device, a pipe...); expected a results store file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hint = "choose another --out file"
        try:
            self.conn = connect(self.path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the results store ({exc})") from None
        try:
            is_store = check_schema(self.conn, self.path, hint=hint)  # before anything alters the file
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise _not_a_store(self.path, f"SQLite cannot read it ({exc})", hint) from None
        except StoreError:
            self.conn.close()
            raise
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if not is_store:
                self._create()
            self.conn.execute(CLAIMS_TABLE)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise StoreError(
                f"{self.path}: cannot write to the results store (SQLite: {exc}); check that the file and its "
                "folder are writable (SQLite also writes STORE-wal and STORE-shm beside it), or choose another --out"
            ) from None

    def _create(self) -> None:
        cols = ", ".join(f"{name} {typ}" for name, typ in COLUMNS)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS results ({cols})")
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.conn.execute("COMMIT")
        except BaseException:
            rollback(self.conn)
            raise

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
        except sqlite3.OperationalError:  # another batch still reads or writes the store
            pass
        finally:
            self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _numeric_columns() -> list[str]:
    return [name for name, typ in COLUMNS if typ.startswith(("REAL", "INTEGER"))]


def _text_columns() -> list[str]:
    return [name for name, typ in COLUMNS if typ.startswith("TEXT")]


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    """Cells that are not of their column's type become missing, and are listed in ``df.attrs["damaged"]``.

    SQLite (and CSV) let any cell hold any value; a hand-edited or damaged store may hold text in
    a number column, a blob in a text column or broken JSON. Such a cell is shown as missing
    rather than stopping every reader; ``df.attrs["damaged"]`` lists ``(row, column, value)``.
    """
    import pandas as pd

    damaged: list[tuple[int, str, str]] = []

    def flag(mask: pd.Series, col: str) -> None:
        for i in df.index[mask][:1000]:
            damaged.append((int(i), col, shorten(df.at[i, col], 60)))

    for col in _numeric_columns() + [c for c in df.columns if "." in str(c)]:
        if col not in df.columns or pd.api.types.is_numeric_dtype(df[col]):
            continue
        num = pd.to_numeric(df[col].map(_as_number), errors="coerce")
        flag(num.isna() & df[col].notna(), col)
        df[col] = num
    for col in _text_columns():
        if col not in df.columns:
            continue
        bad = df[col].map(lambda v: v is not None and not isinstance(v, str) and not _is_missing(v))
        if bad.any():
            flag(bad, col)
            df[col] = df[col].where(~bad, None)
    for col in JSON_COLUMNS:
        if col not in df.columns:
            continue
        numbers = col in DICT_METRICS
        bad = df[col].map(lambda v, numbers=numbers: isinstance(v, str) and not _is_json(v, dict_of_numbers=numbers))
        if bad.any():
            flag(bad, col)
            df[col] = df[col].where(~bad, None)
    df.attrs["damaged"] = damaged
    return df


def _is_missing(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _as_number(v: Any) -> Any:
    """Numbers and numeric text pass; anything else (blobs, words) becomes NaN."""
    if isinstance(v, bool) or v is None:
        return float("nan") if v is None else float(v)
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float("nan")


def _is_json(text: str, *, dict_of_numbers: bool) -> bool:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if not dict_of_numbers:
        return True
    return isinstance(data, dict) and all(
        (isinstance(v, int | float) and not isinstance(v, bool)) or v in ("inf", "-inf", None) for v in data.values()
    )


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
    out.attrs = dict(df.attrs)
    return out


#: Columns an export must hold to be read back (the per-device metrics may be expanded or not).
REQUIRED_EXPORT_COLUMNS = ("task_key", "instance_hash", "instance", "solver", "options", "outcome", "status")


def _read_export(p: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # pyarrow, the CSV parser and the file system raise many types
        kind = "Parquet" if p.suffix == ".parquet" else "CSV"
        raise StoreError(
            f"{p}: cannot be read as a {kind} export of a results store ({type(exc).__name__}: {shorten(str(exc))}); "
            "expected a file written by `dnnpart results STORE --export`"
        ) from None
    missing = [c for c in REQUIRED_EXPORT_COLUMNS if c not in df.columns]
    if missing:
        raise StoreError(
            f"{p}: not an export of a dnnpart results store: it lacks the column(s) {', '.join(missing)}; "
            "expected a file written by `dnnpart results STORE --export`"
        )
    return _clean(df)


def load_results(path: str | Path, *, expand: bool = True) -> pd.DataFrame:
    """Load a results store (or a Parquet/CSV export of one) into a pandas DataFrame.

    Parameters
    ----------
    path : str or Path
        A SQLite store written by :func:`solvers.batch.run`, or a ``.parquet``/``.csv`` export.
        It is a file path (never read as a URI).
    expand : bool
        Turn the per-device and per-link metrics into one float column per key
        (``energy_j.phone``, ``link_bytes.phone->cloud``); otherwise keep them as JSON text.

    Returns
    -------
    pandas.DataFrame
        One row per task, in the order the rows were written. Cells that do not hold their
        column's type (a damaged or hand-edited store) are missing, and listed as
        ``(row, column, value)`` in ``df.attrs["damaged"]``.

    Raises
    ------
    FileNotFoundError, StoreError
        StoreError for a file that is not a store of this version, or an unreadable export.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(2, "no such file", str(p))
    if p.is_dir():
        raise StoreError(f"{p}: is a folder; expected a results store file (e.g. results.db)")
    if not p.is_file():  # a pipe would block the reader forever, a device never ends
        raise StoreError(f"{p}: not a regular file (a device, a pipe...); expected a results store file")
    if p.suffix in EXPORT_SUFFIXES:
        return _read_export(p)
    hint = "pass a store written by `dnnpart batch --out` (or a .parquet/.csv export of one)"
    try:
        conn = connect(p, readonly=True)
        try:
            if not check_schema(conn, p, hint=hint):
                raise _not_a_store(p, "an empty file or database", hint)
            df = pd.read_sql_query("SELECT * FROM results ORDER BY rowid", conn)
        finally:
            conn.close()
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
        raise _not_a_store(p, f"SQLite cannot read it ({exc})", hint) from None
    df = _clean(df)
    return _expand(df) if expand else df


def check_export_path(out: str | Path) -> Path:
    """Refuse an export path that cannot be written (checked before any work); the path.

    Raises
    ------
    StoreError
        Naming the path and what was expected.
    """
    o = Path(out)
    if o.suffix not in EXPORT_SUFFIXES:
        raise StoreError(f"{o}: an export is a .parquet or .csv file; got the suffix {o.suffix or '(none)'!r}")
    if o.is_dir():
        raise StoreError(f"{o}: is a folder; expected the file name of the export")
    if not o.parent.is_dir():
        raise StoreError(f"{o}: the folder {o.parent} does not exist; create it or choose another export path")
    if not os.access(o.parent, os.W_OK | os.X_OK):
        raise StoreError(f"{o}: cannot write into the folder {o.parent} (permission denied)")
    return o


def export_results(store: str | Path, out: str | Path) -> int:
    """Write a tidy copy of a store as Parquet (``.parquet``) or CSV (``.csv``); the row count.

    The path is checked before the store is read, and the copy is written to a temporary file in
    the same folder and renamed into place: an existing export is replaced whole or not at all.
    """
    o = check_export_path(out)
    df = load_results(store)
    fd, tmp_name = tempfile.mkstemp(dir=o.parent, prefix=f".{o.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if o.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        tmp.replace(o)
    except OSError as exc:
        raise StoreError(f"{o}: cannot write the export ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return len(df)
