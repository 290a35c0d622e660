"""Claims: a running batch takes each task in the store before it solves it, so two batches never solve one task twice.

Two ``--resume`` batches over one store (two terminals, two machines on a shared disk, a batch
restarted while the first still runs) would otherwise both see a task as not done and both
solve it. Each batch therefore *claims* a task just before it hands it to a worker: in one
``BEGIN IMMEDIATE`` transaction (SQLite's write lock serialises the two batches) it checks that
the task has no row and no live claim of another batch, and writes its own claim
``(task_key, owner, host, pid, expires)``. The claim is dropped when the row is saved.

A claim is a lease: its owner renews it every ``lease_s / 3`` seconds from a background thread,
and a claim whose lease has run out is free again, so the tasks of a batch that died
(``kill -9``, a lost machine) are retried by the next batch after at most ``lease_s``. On the
owner's own host a dead owner is recognised at once (its process id no longer exists), so a
batch resumed on the same machine right after a crash does not wait for the lease.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from solvers.batch.store import connect, rollback

#: Default lease of a claim, s: a batch that stops renewing (it died) frees its tasks after this long.
LEASE_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class Claims:
    """The claims one batch holds in a store; use as a context manager (renewal thread, release at the end).

    Parameters
    ----------
    path : Path
        The results store (already created by :class:`solvers.batch.store.ResultsStore`).
    lease_s : float
        Lease of a claim, s.
    """

    def __init__(self, path: Path, lease_s: float = LEASE_S) -> None:
        if not (lease_s > 0 and lease_s < float("inf")):
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.path, self.lease_s = path, float(lease_s)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self.conn = connect(path)
        self.elsewhere: dict[str, tuple[str, int]] = {}  # task key -> (host, pid) of the batch holding it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _live(self, host: str, pid: int, expires: float, now: float) -> bool:
        if expires <= now:
            return False
        return host != self.host or _pid_alive(pid)

    def claim(self, key: str) -> bool:
        """Take the task ``key``: False when it already has a row or another live batch holds it."""
        now = time.time()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.conn.execute("SELECT 1 FROM results WHERE task_key = ?", (key,)).fetchone():
                self.conn.execute("COMMIT")
                return False
            held = self.conn.execute(
                "SELECT owner, host, pid, expires FROM claims WHERE task_key = ?", (key,)
            ).fetchone()
            if held is not None and held[0] != self.owner and self._live(held[1], held[2], held[3], now):
                self.conn.execute("COMMIT")
                self.elsewhere[key] = (held[1], held[2])
                return False
            self.conn.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                (key, self.owner, self.host, self.pid, now + self.lease_s),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            rollback(self.conn)
            raise
        self.elsewhere.pop(key, None)
        return True

    def release(self, key: str) -> None:
        """Drop this batch's claim of ``key`` (its row is saved, or it will not run)."""
        self.conn.execute("DELETE FROM claims WHERE task_key = ? AND owner = ?", (key, self.owner))

    def renew(self, conn: sqlite3.Connection | None = None) -> None:
        """Extend the lease of every claim this batch holds (through ``conn``, default its own)."""
        (conn or self.conn).execute(
            "UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + self.lease_s, self.owner)
        )

    def _renew_loop(self) -> None:
        conn = connect(self.path)  # a connection of the thread's own
        try:
            while not self._stop.wait(self.lease_s / 3):
                self.renew(conn)
        finally:
            conn.close()

    def __enter__(self) -> Claims:
        self._thread = threading.Thread(target=self._renew_loop, name="dnnpart-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
        finally:
            self.conn.close()
