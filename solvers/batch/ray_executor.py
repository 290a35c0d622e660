"""The Ray executor: tasks as Ray remote functions on a cluster, or on a local Ray bound to loopback.

Tasks run with ``max_retries=0``, so a crash is recorded, not retried behind our back. A task's
hard timeout counts from when it *starts* on a worker, not from submission: a fresh Ray worker
spends seconds starting and importing (more on a loaded machine), and a task queued behind a
crashed worker's replacement has not started either. Each task reports its start to a small
actor (:class:`StartLog`) that the driver reads while it waits; an overdue task is cancelled
with ``force=True``, which kills its worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from solvers.batch.executors import Row, finish, take, timeout_row
from solvers.batch.grid import Task
from solvers.batch.worker import failure_row, run_task

#: Seconds between reads of the start log while tasks with a timeout are running.
START_POLL_S = 0.2


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
    # Ray's Python loggers have no handler here (configure_logging=False), so its start-up warnings
    # (e.g. that token authentication is on) would reach the console through logging's last resort.
    quiet = logging.getLogger("ray")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        ray.init(**{**options, **kwargs})
    finally:
        quiet.setLevel(level)


class StartLog:
    """Collects the keys of tasks that have started (used as a Ray actor)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def started(self, key: str) -> None:
        """Record that the task ``key`` started."""
        self.keys.append(key)

    def drain(self) -> list[str]:
        """The keys recorded since the last call."""
        out, self.keys = self.keys, []
        return out


def run_task_logged(task: Task, memory_budget_bytes: int | None, log: Any) -> Row:
    """:func:`solvers.batch.worker.run_task`, after telling ``log`` (a StartLog actor) that it started."""
    if log is not None:
        log.started.remote(task.key)
    return run_task(task, memory_budget_bytes)


def _collect(ray: Any, ref: Any, task: Task, t0: float) -> Row:
    from ray import exceptions as rex

    try:
        row: Row = ray.get(ref)
    except rex.OutOfMemoryError as exc:
        row = finish(task, failure_row(task, "memory", f"Ray's memory monitor killed the task: {exc}"), t0)
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.LocalRayletDiedError) as exc:
        row = finish(task, failure_row(task, "crashed", f"the worker died: {type(exc).__name__}"), t0)
    except rex.TaskCancelledError:
        row = timeout_row(task, t0)
    except Exception as exc:
        row = finish(task, failure_row(task, "error", f"{type(exc).__name__}: {exc}"), t0)
    return row


def ensure_ray(
    jobs: int | None,
    *,
    address: str | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
    connect_timeout_s: float | None = None,
) -> bool:
    """Make sure Ray is initialised: the Ray already initialised, the cluster at ``address``, or a local one.

    A cluster at ``address`` is reached through :func:`solvers.batch.ray_connect.connect` (bounded
    in time, quiet, a clear :class:`~solvers.batch.ray_connect.ClusterError` when it fails). A Ray
    started here without ``address`` is :func:`start_local_ray` with ``jobs`` CPUs (loopback only, no
    dashboard unless ``init_kwargs`` ask for one).

    Returns
    -------
    bool
        Whether Ray was initialised here (and so is to be shut down after the batch).
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        from solvers.batch.ray_connect import DEFAULT_CONNECT_TIMEOUT_S, connect

        connect(address, timeout_s=connect_timeout_s or DEFAULT_CONNECT_TIMEOUT_S, init_kwargs=init_kwargs)
    else:
        start_local_ray(jobs, **(init_kwargs or {}))
    return True


def ray_rows(
    tasks: Iterable[Task],
    jobs: int | None,
    memory_budget_bytes: int | None,
    *,
    address: str | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
    connect_timeout_s: float | None = None,
) -> Iterator[tuple[Task, Row]]:
    """Run tasks on a Ray cluster (see :func:`ensure_ray`); a Ray started here is shut down at the end.

    At most ``jobs`` tasks (default: the cluster's CPUs) are in flight; tasks are pulled lazily.
    """
    import ray

    started_ray = ensure_ray(jobs, address=address, init_kwargs=init_kwargs, connect_timeout_s=connect_timeout_s)
    pending = iter(tasks)
    log: Any = None
    remote = ray.remote(num_cpus=1, max_retries=0)(run_task_logged)
    n = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
    inflight: dict[Any, tuple[Task, float]] = {}
    start: dict[str, float] = {}
    last_read = 0.0
    try:
        while True:
            for task in take(pending, n - len(inflight)):
                if log is None and task.hard_timeout_s is not None:
                    log = ray.remote(num_cpus=0)(StartLog).remote()
                inflight[remote.remote(task, memory_budget_bytes, log)] = (task, time.perf_counter())
            if not inflight:
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=START_POLL_S)
            for ref in ready:
                task, t0 = inflight.pop(ref)
                start.pop(task.key, None)
                yield task, _collect(ray, ref, task, t0)
            now = time.perf_counter()
            if log is None or now - last_read < START_POLL_S:
                continue
            last_read = now
            running = {task.key for task, _ in inflight.values()}
            for key in ray.get(log.drain.remote()):
                if key in running:
                    start.setdefault(key, now)
            for ref, (task, t0) in list(inflight.items()):
                began = start.get(task.key)
                if task.hard_timeout_s is not None and began is not None and now - began > task.hard_timeout_s:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    yield task, timeout_row(task, t0)
    finally:
        for ref in inflight:
            ray.cancel(ref, force=True)
        if started_ray:
            ray.shutdown()
