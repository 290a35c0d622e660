"""Two batches over one store never solve a task twice: claims with leases (solvers/batch/claims.py).

The counting solver (``fault-count``, solvers/batch/faults.py) appends one line per solve to a
file, with the process id of the batch that ran it, so the lines count the solves whichever
process made them.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from solvers import batch
from solvers.batch.claims import Claims
from solvers.batch.faults import register_faulty, unregister_faulty
from solvers.batch.grid import expand_grid
from solvers.testing import CASES

N_TASKS = 24
DELAY_S = 0.15  # 24 tasks of 0.15 s on one worker each: the two batches overlap for seconds

DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from solvers import batch
    from solvers.batch.faults import register_faulty
    from tests.test_store_claims import grid_args

    register_faulty()
    db, record, ready, go = sys.argv[1:5]
    Path(ready).touch()
    while not Path(go).exists():  # start together
        time.sleep(0.01)
    rep = batch.run(*grid_args(record), out=db, jobs=1, resume=True)
    print(json.dumps({"n_run": rep.n_run, "n_skipped": rep.n_skipped, "n_elsewhere": rep.n_elsewhere}))
    """
)


def grid_args(record: str) -> tuple[list, list[str], list[dict], list[int]]:
    return [CASES[0].build()], ["fault-count"], [{"raw": {"record": record, "delay_s": DELAY_S}}], list(range(N_TASKS))


@pytest.fixture
def faulty() -> object:
    register_faulty()
    yield
    unregister_faulty()


def test_two_concurrent_resume_batches_solve_each_task_once(tmp_path: Path) -> None:
    db, record, go = tmp_path / "shared.db", tmp_path / "solves.txt", tmp_path / "go"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = []
    for i in range(2):
        ready = tmp_path / f"ready{i}"
        cmd = [sys.executable, str(script), str(db), str(record), str(ready), str(go)]
        procs.append(
            subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
            time.sleep(0.02)
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    reports = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    lines = record.read_text().split()
    pids, seeds = lines[0::2], [int(s) for s in lines[1::2]]
    # every task solved exactly once, by one batch or the other
    assert sorted(seeds) == list(range(N_TASKS))
    assert Counter(seeds).most_common(1)[0][1] == 1
    assert sum(r["n_run"] for r in reports) == N_TASKS
    # both batches worked (they started together; neither can do it all before the other claims)
    assert {p.pid for p in procs} == {int(x) for x in pids}
    assert sorted(r["n_run"] for r in reports) == sorted(Counter(pids).values())
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT task_key) FROM results").fetchone() == (N_TASKS, N_TASKS)
        assert conn.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)  # every claim released
    finally:
        conn.close()


def _claim(db: Path, key: str, host: str, pid: int, expires: float) -> None:
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?)", (key, f"{host}:{pid}:x", host, pid, expires))
    conn.commit()
    conn.close()


def test_a_live_claim_is_left_alone_and_an_expired_one_is_taken_over(tmp_path: Path, faulty: object) -> None:
    db, record = tmp_path / "c.db", tmp_path / "solves.txt"
    args = grid_args(str(record))
    keys = [t.key for t in expand_grid(*args)]
    with batch.ResultsStore(db):
        pass
    far = time.time() + 3600
    _claim(db, keys[0], "another-host", 1, far)  # another machine's batch, still renewing its lease
    _claim(db, keys[1], "another-host", 1, time.time() - 1)  # its lease ran out: that batch died
    _claim(db, keys[2], socket.gethostname(), _dead_pid(), far)  # this machine, a process that is gone
    rep = batch.run(*args, out=db, jobs=1, resume=True)
    assert (rep.n_run, rep.n_elsewhere) == (N_TASKS - 1, 1)
    solved = sorted(int(s) for s in record.read_text().split()[1::2])
    assert solved == list(range(1, N_TASKS))  # seed 0 is the live claim's task
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT task_key, host FROM claims").fetchall() == [(keys[0], "another-host")]
    finally:
        conn.close()


def test_claims_expire_unless_renewed(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with batch.ResultsStore(db):
        pass
    # two owners in one live process: only the lease can free a task
    first, second = Claims(db, lease_s=0.3), Claims(db, lease_s=0.3)
    assert first.claim("k") and not second.claim("k")
    assert second.elsewhere == {"k": (socket.gethostname(), os.getpid())}
    first.renew()
    assert not second.claim("k")
    time.sleep(0.4)
    assert second.claim("k") and not first.claim("k")
    second.release("k")
    assert first.claim("k")
    for c in (first, second):
        c.conn.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
