"""Executors: run tasks and yield ``(task, row)`` as each finishes, whatever happened to it.

* ``local``: a pebble ``ProcessPool`` (embedded, nothing to start). Chosen over
  ``concurrent.futures``/joblib because a crashed worker there breaks the whole pool, and over
  Dask because a crash there takes innocent tasks with it (measurements in ECOSYSTEM.md); with
  pebble only the crashed task fails and a per-task timeout kills just that worker.
* ``ray``: the same tasks as Ray remote functions with ``max_retries=0`` (a crash is recorded,
  not retried behind our back); overdue tasks are cancelled with ``force=True`` (kills the worker).

Both keep a bounded window of tasks in flight, so a timeout counts from (about) when a task
starts, an interrupt leaves little to cancel, and memory stays flat for huge grids.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from solvers.batch.grid import Task
from solvers.batch.worker import failure_row, run_task

Row = dict[str, Any]


def _finish(task: Task, row: Row, t0: float) -> Row:
    row.setdefault("task_wall_s", time.perf_counter() - t0)
    return row


def _timeout_row(task: Task, t0: float) -> Row:
    msg = f"the task ran past its hard timeout of {task.hard_timeout_s:g} s and its worker was killed"
    return _finish(task, failure_row(task, "timeout", msg), t0)


def local_rows(tasks: Iterable[Task], jobs: int, memory_budget_bytes: int | None) -> Iterator[tuple[Task, Row]]:
    """Run tasks on a local pebble process pool of ``jobs`` workers.

    Workers are forked from the driver: they start warm (every module the driver imported) and
    need no ``if __name__ == "__main__":`` guard in the user's script, which the ``spawn`` and
    ``forkserver`` start methods would (they re-run the main script in each worker). A forked
    worker never touches the driver's store connection or console, and exits with ``os._exit``.
    """
    from pebble import ProcessExpired, ProcessPool

    ctx = multiprocessing.get_context("fork")
    pending = deque(tasks)
    window = max(1, 2 * jobs)
    inflight: dict[Any, tuple[Task, float]] = {}
    pool = ProcessPool(max_workers=jobs, context=ctx)
    try:
        while pending or inflight:
            while pending and len(inflight) < window:
                task = pending.popleft()
                future = pool.schedule(run_task, args=(task, memory_budget_bytes), timeout=task.hard_timeout_s)
                inflight[future] = (task, time.perf_counter())
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in done:
                task, t0 = inflight.pop(fut)
                try:
                    row = fut.result()
                except FutureTimeout:
                    row = _timeout_row(task, t0)
                except ProcessExpired as exc:
                    msg = f"the worker died: {exc} (exit code {exc.exitcode})"
                    row = _finish(task, failure_row(task, "crashed", msg), t0)
                except Exception as exc:
                    row = _finish(task, failure_row(task, "error", f"{type(exc).__name__}: {exc}"), t0)
                yield task, row
    finally:
        pool.stop()
        pool.join()


def start_local_ray(num_cpus: int | None = None, *, dashboard: bool = False, **kwargs: Any) -> None:
    """Start a single-machine Ray whose servers (GCS, raylet, workers, dashboard) listen on 127.0.0.1 only.

    Ray resolves "localhost" to the machine's external address and binds its servers there, so
    ``_node_ip_address="127.0.0.1"`` is not enough. Its single-machine mode (the default on macOS
    and Windows, switched on elsewhere by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) uses the loopback
    address for everything; the variable is inherited by the processes Ray starts. The module
    constant is also set, in case ``ray`` was imported before the variable.

    Parameters
    ----------
    num_cpus : int, optional
        CPUs Ray may use (default: all).
    dashboard : bool
        Start the dashboard (on 127.0.0.1).
    **kwargs
        Further ``ray.init`` arguments.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    options: dict[str, Any] = {
        "num_cpus": num_cpus,
        "include_dashboard": dashboard,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if dashboard:
        options["dashboard_host"] = "127.0.0.1"
    ray.init(**{**options, **kwargs})


def ray_rows(
    tasks: Iterable[Task],
    jobs: int | None,
    memory_budget_bytes: int | None,
    *,
    address: str | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
    poll_s: float = 0.5,
) -> Iterator[tuple[Task, Row]]:
    """Run tasks on a Ray cluster: the one already initialised, the one at ``address``, or a local one.

    A Ray started here without ``address`` is :func:`start_local_ray` with ``jobs`` CPUs (loopback
    only, no dashboard unless ``init_kwargs`` ask for one); one started here is shut down at the end.
    """
    import ray
    from ray import exceptions as rex

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, **(init_kwargs or {}))
        else:
            start_local_ray(jobs, **(init_kwargs or {}))
        started = True
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
    n = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending = deque(tasks)
    inflight: dict[Any, tuple[Task, float]] = {}
    try:
        while pending or inflight:
            while pending and len(inflight) < n:
                task = pending.popleft()
                inflight[remote.remote(task, memory_budget_bytes)] = (task, time.perf_counter())
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll_s)
            for ref in ready:
                task, t0 = inflight.pop(ref)
                try:
                    row = ray.get(ref)
                except rex.OutOfMemoryError as exc:
                    msg = f"Ray's memory monitor killed the task: {exc}"
                    row = _finish(task, failure_row(task, "memory", msg), t0)
                except (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError) as exc:
                    msg = f"the worker died: {type(exc).__name__}"
                    row = _finish(task, failure_row(task, "crashed", msg), t0)
                except rex.TaskCancelledError:
                    row = _timeout_row(task, t0)
                except Exception as exc:
                    row = _finish(task, failure_row(task, "error", f"{type(exc).__name__}: {exc}"), t0)
                yield task, row
            now = time.perf_counter()
            for ref, (task, t0) in list(inflight.items()):
                if task.hard_timeout_s is not None and now - t0 > task.hard_timeout_s:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    yield task, _timeout_row(task, t0)
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
