"""``solvers.batch.run``: expand the grid, skip what the store holds, run the rest, save each row at once."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solvers.batch.executors import local_rows
from solvers.batch.grid import InstanceLike, Task, expand_grid
from solvers.batch.store import ResultsStore, load_results

if TYPE_CHECKING:
    import pandas as pd

EXECUTORS = ("local", "ray")


class BatchError(ValueError):
    """A batch that cannot start as asked (e.g. the store already holds rows of this grid)."""


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
    """

    out: Path
    n_tasks: int
    n_skipped: int
    n_run: int
    n_failed: int
    elapsed_s: float

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
        if self.show:
            self.bar.update(self.task, advance=1, done=self.done, failed=self.failed, left=self.total - self.done)

    def close(self) -> None:
        if self.show:
            self.bar.stop()


def _rows(
    executor: str,
    tasks: list[Task],
    jobs: int | None,
    memory: int | None,
    address: str | None,
    ray_init: Mapping[str, Any] | None,
) -> Iterator[tuple[Task, dict[str, Any]]]:
    if executor == "local":
        return local_rows(tasks, jobs or os.cpu_count() or 1, memory)
    from solvers.batch.ray_executor import ray_rows

    return ray_rows(tasks, jobs, memory, address=address, init_kwargs=ray_init)


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
) -> BatchReport:
    """Solve the grid instances x solvers x option sets x seeds, saving one row per task.

    Parameters
    ----------
    instances : iterable of Instance or path
        Instances or instance files.
    solvers : sequence of str
        Registry names (``auto``, ``brute``, ``highs``, ``pyomo:cbc``, ...).
    option_sets : sequence of mapping
        Dicts of :class:`solvers.options.SolverOptions` fields, e.g. ``[{}, {"gap": 0.01}]``.
    seeds : sequence of int or None
        Passed as ``SolverOptions.seed``; ``None`` leaves it unset.
    out : path
        The SQLite results store (see :mod:`solvers.batch.store`).
    jobs : int, optional
        Parallel workers (default: the CPU count, or the Ray cluster's CPUs).
    executor : {"local", "ray"}
        A local process pool, or Ray (``address`` of a running cluster, else a local Ray on loopback).
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

    Returns
    -------
    BatchReport

    Raises
    ------
    BatchError
        Unknown executor, or rows of this grid already stored without ``resume``.
    KeyboardInterrupt
        Propagated after the pool is stopped; every finished row is already saved.
    """
    if executor not in EXECUTORS:
        raise BatchError(f"unknown executor {executor!r}; one of {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise BatchError(f"jobs must be >= 1, got {jobs}")
    tasks = expand_grid(instances, solvers, option_sets, seeds, time_limit_s=time_limit_s)
    if task_timeout_s is not None:
        tasks = [_with_timeout(t, task_timeout_s) for t in tasks]
    n_workers = jobs or os.cpu_count() or 1
    if isinstance(memory_limit_bytes, str) and memory_limit_bytes != "auto":
        raise BatchError(f"memory_limit_bytes must be a number of bytes, 'auto' or None, got {memory_limit_bytes!r}")
    memory = default_memory_budget(n_workers) if memory_limit_bytes == "auto" else memory_limit_bytes
    assert not isinstance(memory, str)
    t0 = time.perf_counter()
    with ResultsStore(Path(out)) as store:
        done = store.done_keys()
        todo = [t for t in tasks if t.key not in done]
        skipped = len(tasks) - len(todo)
        if skipped and not resume:
            raise BatchError(
                f"{out} already holds {skipped} of the {len(tasks)} rows of this batch; pass resume=True "
                "(--resume) to skip them, or choose another output file"
            )
        bar = _Progress(len(todo), progress)
        failed = 0
        try:
            for _task, row in _rows(executor, todo, jobs, memory, address, ray_init):
                store.add(row)
                failed += is_failure(row)
                bar.step(is_failure(row))
        finally:
            bar.close()
    return BatchReport(Path(out), len(tasks), skipped, len(todo), failed, time.perf_counter() - t0)


def _with_timeout(task: Task, seconds: float) -> Task:
    from dataclasses import replace

    return replace(task, hard_timeout_s=float(seconds))
