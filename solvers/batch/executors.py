"""Executors: run tasks and yield ``(task, row)`` as each finishes, whatever happened to it.

* ``local``: a pebble ``ProcessPool`` (embedded, nothing to start). Chosen over
  ``concurrent.futures``/joblib because a crashed worker there breaks the whole pool, and over
  Dask because a crash there takes innocent tasks with it (one deliberate
  crash in a batch of 100 files failed one to three others); with
  pebble only the crashed task fails and a per-task timeout kills just that worker.
* ``ray`` (:mod:`solvers.batch.ray_executor`): the same tasks as Ray remote functions.

Both keep a bounded window of tasks in flight, so a timeout counts from (about) when a task
starts, an interrupt leaves little to cancel, and memory stays flat for huge grids. Both pull
their tasks lazily from the iterable (:func:`take`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from solvers.batch.grid import Task
from solvers.batch.worker import failure_row, run_task

Row = dict[str, Any]


def finish(task: Task, row: Row, t0: float) -> Row:
    """Fill ``task_wall_s`` (driver-measured) in a row the driver built itself."""
    row.setdefault("task_wall_s", time.perf_counter() - t0)
    return row


def timeout_row(task: Task, t0: float) -> Row:
    """The row of a task killed at its hard timeout."""
    msg = f"the task ran past its hard timeout of {task.hard_timeout_s:g} s and its worker was killed"
    return finish(task, failure_row(task, "timeout", msg), t0)


def take(tasks: Iterator[Task], n: int) -> list[Task]:
    """Up to ``n`` more tasks, pulled one by one only when a slot is free.

    Tasks are pulled lazily (not listed up front) because pulling one may claim it in the store
    (:mod:`solvers.batch.claims`): a batch claims only what it is about to run.
    """
    return list(itertools.islice(tasks, max(0, n)))


def local_rows(tasks: Iterable[Task], jobs: int, memory_budget_bytes: int | None) -> Iterator[tuple[Task, Row]]:
    """Run tasks on a local pebble process pool of ``jobs`` workers.

    Workers are forked from the driver: they start warm (every module the driver imported) and
    need no ``if __name__ == "__main__":`` guard in the user's script, which the ``spawn`` and
    ``forkserver`` start methods would (they re-run the main script in each worker). A forked
    worker never touches the driver's store connection or console, and exits with ``os._exit``.
    """
    from pebble import ProcessExpired, ProcessPool

    ctx = multiprocessing.get_context("fork")
    pending = iter(tasks)
    window = max(1, 2 * jobs)
    inflight: dict[Any, tuple[Task, float]] = {}
    pool = ProcessPool(max_workers=jobs, context=ctx)
    try:
        while True:
            for task in take(pending, window - len(inflight)):
                future = pool.schedule(run_task, args=(task, memory_budget_bytes), timeout=task.hard_timeout_s)
                inflight[future] = (task, time.perf_counter())
            if not inflight:
                break
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in done:
                task, t0 = inflight.pop(fut)
                try:
                    row = fut.result()
                except FutureTimeout:
                    row = timeout_row(task, t0)
                except ProcessExpired as exc:
                    msg = f"the worker died: {exc} (exit code {exc.exitcode})"
                    row = finish(task, failure_row(task, "crashed", msg), t0)
                except Exception as exc:
                    row = finish(task, failure_row(task, "error", f"{type(exc).__name__}: {exc}"), t0)
                yield task, row
    finally:
        pool.stop()
        pool.join()
