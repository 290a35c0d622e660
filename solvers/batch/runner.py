"""``solvers.batch.run``: expand the grid, skip what the store holds, run the rest, save each row at once."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formulation.errors import shorten
from formulation.model import Instance
from solvers.batch.claims import LEASE_S, Claims
from solvers.batch.executors import local_rows
from solvers.batch.grid import (
    BadFile,
    BatchError,
    InstanceLike,
    Task,
    bad_file,
    bad_file_cells,
    expand_grid,
    instance_files,
    option_sets_of,
)
from solvers.batch.store import ResultsStore, load_results
from solvers.batch.worker import bad_input_row

if TYPE_CHECKING:
    import pandas as pd

EXECUTORS = ("local", "ray")


@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    out : Path
        The results store.
    n_tasks : int
        Tasks in the grid.
    n_skipped : int
        Tasks already in the store (``resume``).
    n_run : int
        Tasks run (each saved as a row).
    n_failed : int
        Rows run now whose outcome is not ``ok`` or whose status is ``error``.
    elapsed_s : float
        Wall-clock seconds of the run.
    n_elsewhere : int
        Tasks left to another batch that held them (a live claim) when this one reached them.
    bad_files : list of BadFile
        Instance files that could not be loaded; each of their tasks is an error row.
    """

    out: Path
    n_tasks: int
    n_skipped: int
    n_run: int
    n_failed: int
    elapsed_s: float
    n_elsewhere: int = 0
    bad_files: list[BadFile] = field(default_factory=list)

    def load(self) -> pd.DataFrame:
        """The whole store as a DataFrame (:func:`solvers.batch.load_results`)."""
        return load_results(self.out)


def default_memory_budget(jobs: int) -> int | None:
    """80 % of physical memory shared among ``jobs`` workers (None when it cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None
    return int(0.8 * total / max(1, jobs))


def is_failure(row: Mapping[str, Any]) -> bool:
    """A row that records a failure: outcome other than ``ok``, or status ``error``."""
    return row.get("outcome") != "ok" or row.get("status") == "error"


class _Progress:
    """A rich progress bar with done / failed / remaining counts and an ETA (or nothing)."""

    def __init__(self, total: int, show: bool) -> None:
        self.show, self.total, self.failed, self.done = show, total, 0, 0
        if not show:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("[bold]batch[/]"),
            BarColumn(),
            TextColumn("done {task.fields[done]}  failed {task.fields[failed]}  remaining {task.fields[left]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.bar.start()
        self.task = self.bar.add_task("batch", total=total, done=0, failed=0, left=total)

    def step(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        self._show()

    def skip(self) -> None:
        """A task another batch holds: it leaves this batch's count."""
        self.total -= 1
        self._show()

    def _show(self) -> None:
        if self.show:
            left = self.total - self.done
            self.bar.update(
                self.task, total=self.total, completed=self.done, done=self.done, failed=self.failed, left=left
            )

    def close(self) -> None:
        if self.show:
            self.bar.stop()


def _rows(
    executor: str, tasks: Iterator[Task], jobs: int | None, memory: int | None, n_tasks: int
) -> Iterator[tuple[Task, dict[str, Any]]]:
    if executor == "local":
        # no more worker processes than tasks: the pool starts all of its workers at once
        return local_rows(tasks, max(1, min(jobs or os.cpu_count() or 1, n_tasks)), memory)
    from solvers.batch.ray_executor import ray_rows

    return ray_rows(tasks, jobs, memory)  # Ray is initialised by run() before the store is opened


#: Longest wait for a cluster, s: longer waits overflow the system's timers, and a day is plenty.
MAX_CONNECT_TIMEOUT_S = 86_400.0


def local_jobs_limit() -> int:
    """Most local workers allowed: 16 per CPU, at least 64 (solvers are CPU-bound; each worker is a process)."""
    return max(64, 16 * (os.cpu_count() or 1))


def _positive(
    value: float | None,
    name: str,
    flag: str,
    what: str = "a positive, finite number of seconds",
    upper: float = math.inf,
) -> None:
    """Refuse zero, negative, infinite and NaN values of a numeric batch option (and values above ``upper``)."""
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise BatchError(f"{name} ({flag}) must be {what}, got {value!r}")
    if value > upper:
        raise BatchError(f"{name} ({flag}) must be at most {upper:g}, got {value!r}")


def check_numbers(
    *,
    jobs: int | None = None,
    time_limit_s: float | None = None,
    task_timeout_s: float | None = None,
    memory_limit_bytes: int | str | None = None,
    connect_timeout_s: float | None = None,
    lease_s: float | None = None,
    seeds: Sequence[int | None] = (),
) -> None:
    """Check every numeric option of a batch before anything runs.

    Raises
    ------
    BatchError
        Naming the option (and its command-line flag), the value and what was expected.
    """
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise BatchError(f"jobs (--jobs) must be a whole number >= 1, got {jobs!r}")
    _positive(time_limit_s, "time_limit_s", "--time-limit")
    _positive(task_timeout_s, "task_timeout_s", "--task-timeout")
    _positive(connect_timeout_s, "connect_timeout_s", "--connect-timeout", upper=MAX_CONNECT_TIMEOUT_S)
    _positive(lease_s, "lease_s", "--lease")
    if isinstance(memory_limit_bytes, str):
        if memory_limit_bytes != "auto":
            raise BatchError(
                f"memory_limit_bytes must be a number of bytes, 'auto' or None, got {memory_limit_bytes!r}"
            )
    else:
        _positive(memory_limit_bytes, "memory_limit_bytes", "--memory-limit", "a positive number of bytes")
    from solvers.options import MAX_SEED

    for seed in seeds:
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
            raise BatchError(
                f"seed (--seeds) must be a whole number in 0..{MAX_SEED} (the engines take a 32-bit seed), "
                f"got {shorten(seed)}"
            )


def _load_all(instances: Iterable[InstanceLike]) -> tuple[list[Instance], list[BadFile]]:
    """Load the instance files (a folder: the files inside); a file that fails to load is set aside, not fatal.

    Raises
    ------
    BatchError
        A path that does not exist, or a folder without instance files (nothing to set aside).
    """
    from formulation.loader import load_instance

    good: list[Instance] = []
    bad: list[BadFile] = []
    items = [x for item in instances for x in ([item] if isinstance(item, Instance) else instance_files([item]))]
    for item in items:
        if isinstance(item, Instance):
            good.append(item)
            continue
        try:
            good.append(load_instance(item))
        except Exception as exc:  # any failure of one file becomes its error rows, never the batch's
            bad.append(bad_file(item, exc))
    return good, bad


def run(
    instances: Iterable[InstanceLike],
    solvers: Sequence[str] = ("auto",),
    option_sets: Sequence[Mapping[str, Any]] = ({},),
    seeds: Sequence[int | None] = (None,),
    *,
    out: str | os.PathLike[str],
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    time_limit_s: float | None = None,
    task_timeout_s: float | None = None,
    memory_limit_bytes: int | str | None = "auto",
    resume: bool = False,
    progress: bool = False,
    ray_init: Mapping[str, Any] | None = None,
    connect_timeout_s: float | None = None,
    lease_s: float = LEASE_S,
) -> BatchReport:
    """Solve the grid instances x solvers x option sets x seeds, saving one row per task.

    Parameters
    ----------
    instances : iterable of Instance or path
        Instances, instance files, or folders (the instance files directly inside). A file that
        cannot be loaded does not stop the batch: each of its tasks is an error row naming the file
        and the problem (see ``BatchReport.bad_files``).
    solvers : sequence of str
        Registry names (``auto``, ``brute``, ``highs``, ``pyomo:cbc``, ...).
    option_sets : sequence of mapping
        Dicts of :class:`solvers.options.SolverOptions` fields, e.g. ``[{}, {"gap": 0.01}]``.
    seeds : sequence of int or None
        Passed as ``SolverOptions.seed``; ``None`` leaves it unset.
    out : path
        The SQLite results store (see :mod:`solvers.batch.store`); a file path, never a URI.
    jobs : int, optional
        Parallel workers (default: the CPU count, or the Ray cluster's CPUs).
    executor : {"local", "ray"}
        A local process pool, or Ray (``address`` of a running cluster, else a local Ray on loopback).
    address : str, optional
        ``HOST:PORT`` of a Ray cluster's head (see :mod:`solvers.batch.ray_connect`).
    time_limit_s : float, optional
        ``time_limit_s`` for option sets that do not set one.
    task_timeout_s : float, optional
        Hard wall-clock limit per task, after which its worker is killed and the row records a
        timeout; default ``1.5 * time_limit_s + 10 s`` when a time limit is set, else none.
    memory_limit_bytes : int, "auto" or None
        Address-space budget per task on top of the worker's baseline (see
        :func:`solvers.batch.worker.memory_guard`); ``"auto"``: 80 % of RAM divided by ``jobs``.
    resume : bool
        Skip tasks whose row is already in ``out``. Without it, a store that already holds rows of
        this grid is refused.
    progress : bool
        Show a progress bar (done / failed / remaining, ETA) on the terminal.
    ray_init : mapping, optional
        Extra ``ray.init`` arguments (e.g. ``{"include_dashboard": True}``).
    connect_timeout_s : float, optional
        Limit on connecting to the cluster at ``address`` (default 30 s).
    lease_s : float
        Lease of this batch's claims on its tasks (:mod:`solvers.batch.claims`): another batch on
        the same store skips a claimed task, and takes it over when the lease runs out unrenewed.

    Returns
    -------
    BatchReport

    Raises
    ------
    BatchError
        Unknown executor, a bad numeric option, rows of this grid already stored without
        ``resume``, or a cluster that cannot be used (:class:`~solvers.batch.ray_connect.ClusterError`).
    StoreError
        ``out`` is not a results store.
    KeyboardInterrupt
        Propagated after the pool is stopped; every finished row is already saved.
    """
    if executor not in EXECUTORS:
        raise BatchError(f"unknown executor {executor!r}; one of {', '.join(EXECUTORS)}")
    if executor == "local" and jobs is not None and isinstance(jobs, int) and jobs > local_jobs_limit():
        raise BatchError(
            f"jobs (--jobs) must be at most {local_jobs_limit()} on this machine ({os.cpu_count()} CPUs) with the "
            f"local executor, got {jobs}: each worker is a process, and CPU-bound solvers gain nothing from more "
            "workers than CPUs"
        )
    check_numbers(
        jobs=jobs,
        time_limit_s=time_limit_s,
        task_timeout_s=task_timeout_s,
        memory_limit_bytes=memory_limit_bytes,
        connect_timeout_s=connect_timeout_s,
        lease_s=lease_s,
        seeds=seeds,
    )
    good, bad = _load_all(instances)
    tasks = expand_grid(good, solvers, option_sets, seeds, time_limit_s=time_limit_s)
    if task_timeout_s is not None:
        tasks = [replace(t, hard_timeout_s=float(task_timeout_s)) for t in tasks]
    sets = option_sets_of(option_sets, time_limit_s)
    bad_rows = {
        key: bad_input_row(key, b.content_hash, b.file, name, oj, seed, b.message)
        for b in bad
        for key, name, oj, seed in bad_file_cells(b, solvers, sets, seeds)
    }
    n_workers = jobs or os.cpu_count() or 1
    memory = default_memory_budget(n_workers) if memory_limit_bytes == "auto" else memory_limit_bytes
    assert not isinstance(memory, str)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if executor == "ray" and address:  # a cluster that cannot be used is refused before the store is made
            stack.callback(_ray_shutdown, _ray_start(jobs, address, ray_init, connect_timeout_s))
        store = stack.enter_context(ResultsStore(Path(out)))
        done = store.done_keys()
        todo = [t for t in tasks if t.key not in done]
        bad_todo = [r for k, r in bad_rows.items() if k not in done]
        n_all = len(tasks) + len(bad_rows)
        skipped = n_all - len(todo) - len(bad_todo)
        if skipped and not resume:
            raise BatchError(
                f"{out} already holds {skipped} of the {n_all} rows of this batch; pass resume=True "
                "(--resume) to skip them, or choose another output file"
            )
        if executor == "ray" and not address:  # a local Ray takes seconds to start: only once the store is fine
            stack.callback(_ray_shutdown, _ray_start(jobs, address, ray_init, connect_timeout_s))
        n_run = failed = 0
        for row in bad_todo:
            if store.add(row):
                n_run, failed = n_run + 1, failed + 1
        claims = stack.enter_context(Claims(Path(out), lease_s))
        bar = _Progress(len(todo), progress)
        stack.callback(bar.close)

        def claimed() -> Iterator[Task]:
            for task in todo:
                if claims.claim(task.key):
                    yield task
                else:
                    bar.skip()

        for task, row in _rows(executor, claimed(), jobs, memory, len(todo)):
            store.add(row)
            claims.release(task.key)
            n_run += 1
            failed += is_failure(row)
            bar.step(is_failure(row))
        elsewhere = len(claims.elsewhere)
    return BatchReport(Path(out), n_all, skipped, n_run, failed, time.perf_counter() - t0, elsewhere, bad)


def _ray_start(
    jobs: int | None, address: str | None, ray_init: Mapping[str, Any] | None, connect_timeout_s: float | None
) -> bool:
    import importlib.util

    from solvers.batch.ray_executor import ensure_ray

    if importlib.util.find_spec("ray") is None:  # pragma: no cover - the tests run with the ray extra
        raise BatchError("--executor ray needs Ray: install the ray extra (pip install 'dnnpart[ray]')")

    return ensure_ray(jobs, address=address, init_kwargs=ray_init, connect_timeout_s=connect_timeout_s)


def _ray_shutdown(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
