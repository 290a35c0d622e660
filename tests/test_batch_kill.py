"""kill -9 of the batch driver mid-run loses no finished row, and --resume completes every task exactly once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from solvers import batch
from solvers.batch.faults import register_faulty, unregister_faulty
from solvers.batch.grid import expand_grid
from solvers.testing import CASES

N_TASKS = 30
DELAY_S = 0.1  # each task sleeps this long: 30 tasks on 2 workers take >= 1.5 s


def grid_args() -> tuple[list, list[str], list[dict], list[int]]:  # type: ignore[type-arg]
    return [CASES[0].build()], ["fault-slow"], [{"raw": {"delay_s": DELAY_S}}], list(range(N_TASKS))


DRIVER = textwrap.dedent(
    """
    import sys
    from solvers import batch
    from solvers.batch.faults import register_faulty
    from tests.test_batch_kill import grid_args

    register_faulty()
    batch.run(*grid_args(), out=sys.argv[1], jobs=2)
    """
)


def _rows(db: Path) -> list[tuple[str, str, int]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("SELECT task_key, finished_at, worker_pid FROM results").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        conn.close()


def test_sigkill_of_the_driver_then_resume(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script), str(db)], cwd=root, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_rows(db)) < 4:
            assert proc.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no rows after 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        # workers notice the closed pipe and exit; make sure of it (our own process group)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    assert 4 <= len(before) < N_TASKS, "kill -9 must land mid-run"

    register_faulty()
    try:
        report = batch.run(*grid_args(), out=db, jobs=2, resume=True)
        keys = {t.key for t in expand_grid(*grid_args())}
    finally:
        unregister_faulty()
    after = _rows(db)
    # every finished row survived unchanged: same key, same finish time, same worker (not re-run)
    assert set(before) <= set(after)
    assert (report.n_skipped, report.n_run) == (len(before), N_TASKS - len(before))
    # every task done exactly once: one row per key, and exactly the grid's keys
    assert len(after) == N_TASKS
    assert {k for k, _, _ in after} == keys
    conn = sqlite3.connect(db)
    try:
        (dupes,) = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT task_key) FROM results").fetchone()
        (bad,) = conn.execute("SELECT COUNT(*) FROM results WHERE outcome != 'ok' OR status != 'feasible'").fetchone()
    finally:
        conn.close()
    assert dupes == 0 and bad == 0


CLI_DRIVER = textwrap.dedent(
    """
    import sys
    from solvers.batch.faults import register_faulty
    from toolchain.cli import app

    register_faulty()
    app(sys.argv[1:])
    """
)


def test_ctrl_c_of_dnnpart_batch_keeps_rows_and_says_resume(tmp_path: Path) -> None:
    import yaml

    from formulation.loader import instance_to_data

    inst = tmp_path / "chain.yaml"
    inst.write_text(yaml.safe_dump(instance_to_data(CASES[0].build())))
    db = tmp_path / "int.db"
    script = tmp_path / "cli.py"
    script.write_text(CLI_DRIVER)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    options = json.dumps({"raw": {"delay_s": DELAY_S}})
    seeds = ",".join(map(str, range(N_TASKS)))
    args = ["batch", str(inst), "--solvers", "fault-slow", "--options", options, "--seeds", seeds, "--out", str(db)]
    args += ["--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=root,
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_rows(db)) < 4:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    before = _rows(db)
    assert 4 <= len(before) < N_TASKS
    cmd = [sys.executable, str(script), *args, "--resume"]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{N_TASKS - len(before)} tasks run (0 failed), {len(before)} already done" in done.stdout
    after = _rows(db)
    assert set(before) <= set(after) and len({k for k, _, _ in after}) == len(after) == N_TASKS
