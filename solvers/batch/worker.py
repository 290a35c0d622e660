"""What runs inside a worker: the memory guard, one solve, and the tidy row it becomes.

Every outcome of a task is a row: a solve (whatever its status), a solver error raised before
solving (unsupported problem or option), an exception, an exhausted memory guard, and, built by
the driver with :func:`failure_row`, a timeout or a crashed worker.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import math
import os
import resource
import socket
import time
from collections.abc import Iterator
from typing import Any

from solvers.batch.grid import Task
from solvers.result import Result, Status, Termination

#: Outcomes of a task, recorded in the ``outcome`` column.
OUTCOMES = ("ok", "error", "timeout", "crashed", "memory")

#: Captured solver logs are cut to this many characters in the store.
LOG_CHARS = 20_000

#: Dict-valued metrics, stored as JSON and expanded to ``name.key`` columns by ``load_results``.
DICT_METRICS = ("compute_time_s", "energy_j", "memory_bytes", "link_bytes", "link_busy_s")

#: Scalar metrics of :class:`formulation.evaluator.Evaluation`.
SCALAR_METRICS = (
    "latency_s",
    "latency_sequential_s",
    "latency_parallel_s",
    "period_s",
    "throughput_per_s",
    "energy_total_j",
    "cost_usd",
)


def _vm_bytes() -> int:
    """This process's current virtual size (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


@contextlib.contextmanager
def memory_guard(budget_bytes: int | None) -> Iterator[None]:
    """Limit the address space to the current size plus ``budget_bytes`` while the block runs.

    ``RLIMIT_AS`` counts virtual memory, and a worker's baseline (imported libraries, a Ray
    worker's mapped object store) varies widely; a budget *on top of* the current size guards the
    task's own allocations whatever the baseline. An allocation beyond it raises ``MemoryError``
    in Python (a native library may abort instead: the driver then records a crash). The previous
    limit is restored afterwards, so a reused worker (Ray) is left as it was found.
    """
    if not budget_bytes:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_bytes() + int(budget_bytes)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _resolve_solver(task: Task) -> Any:
    from solvers.registry import get_solver

    if task.solver_target is None:
        return get_solver(task.solver)
    module, _, attr = task.solver_target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj()


def run_task(task: Task, memory_budget_bytes: int | None = None) -> dict[str, Any]:
    """Solve one task and return its row (never raises for a problem of the task itself).

    Parameters
    ----------
    task : Task
    memory_budget_bytes : int, optional
        See :func:`memory_guard`.

    Returns
    -------
    dict
        A row with every column of :data:`solvers.batch.store.COLUMNS`.
    """
    from solvers.options import SolverError

    t0 = time.perf_counter()
    try:
        with memory_guard(memory_budget_bytes):
            solver = _resolve_solver(task)
            res = solver.solve(task.instance, task.solver_options())
        # Solver.solve turns a backend's exception into an error Result; keep a memory failure visible.
        hit_guard = res.status == Status.ERROR and res.message.startswith("MemoryError")
        row = result_row(task, res, "memory" if hit_guard else "ok")
    except MemoryError:
        row = failure_row(task, "memory", f"the task exceeded its memory budget of {memory_budget_bytes} bytes")
    except SolverError as exc:
        row = failure_row(task, "error", str(exc))
    except Exception as exc:
        row = failure_row(task, "error", f"{type(exc).__name__}: {exc}")
    row["task_wall_s"] = time.perf_counter() - t0
    return row


def _num(x: float | None) -> float | None:
    """NaN and None are stored as NULL; infinities are kept (SQLite stores them)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(x)


def _json(x: Any) -> str:
    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        if isinstance(v, dict):
            return {str(k): fix(w) for k, w in v.items()}
        if isinstance(v, list | tuple):
            return [fix(w) for w in v]
        return v

    return json.dumps(fix(x), sort_keys=True, allow_nan=False, default=str)


def _base_row(task: Task) -> dict[str, Any]:
    inst = task.instance
    return {
        "task_key": task.key,
        "instance_hash": task.instance_hash,
        "instance": inst.name,
        "instance_file": task.instance_file,
        "solver": task.solver,
        "options": task.options_json,
        "seed": task.seed,
        "n_layers": inst.n,
        "n_devices": inst.k,
        "objective_kind": str(inst.problem.objective),
        "execution": inst.problem.execution,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
        "worker_pid": os.getpid(),
    }


def result_row(task: Task, res: Result, outcome: str) -> dict[str, Any]:
    """The tidy row of a :class:`Result`: every Result field and every metric, flattened."""
    row = _base_row(task)
    row.update(
        outcome=outcome,
        status=res.status.value,
        termination=res.termination.value,
        method=res.method or res.solver,
        solver_version=res.solver_version,
        objective=_num(res.objective),
        solver_objective=_num(res.solver_objective),
        bound=_num(res.bound),
        gap=_num(res.gap),
        wall_time_s=res.wall_time_s,
        build_time_s=res.build_time_s,
        solve_time_s=res.solve_time_s,
        message=res.message,
        log=res.log[-LOG_CHARS:],
        extra=_json(res.extra),
        placement=_json(res.placement) if res.placement else None,
        schedule=_json(res.schedule) if res.schedule else None,
    )
    ev = res.metrics
    if ev is None:
        for name in (*SCALAR_METRICS, *DICT_METRICS, "feasible", "bytes_moved", "transfers", "violations"):
            row[name] = None
        return row
    for name in SCALAR_METRICS:
        row[name] = _num(getattr(ev, name))
    for name in DICT_METRICS:
        row[name] = _json(getattr(ev, name))
    row["feasible"] = int(ev.feasible)
    row["bytes_moved"] = float(sum(ev.link_bytes.values()))
    row["transfers"] = _json([t.__dict__ for t in ev.transfers])
    row["violations"] = _json([{"kind": v.kind, "message": v.message} for v in ev.violations])
    if ev.workload:  # version 2: each request's latency and deadline (solvers/request_columns.py)
        from solvers.request_columns import KEY, request_summary

        row["extra"] = _json({**res.extra, KEY: request_summary(ev.workload)})
    return row


def failure_row(task: Task, outcome: str, message: str) -> dict[str, Any]:
    """The row of a task that produced no Result (error before solving, timeout, crash, memory).

    ``status`` follows docs/instance-format.md §6.2: a timeout is ``time_limit_no_solution`` (termination
    ``time_limit``); every other failure is ``error``. ``outcome`` says which failure it was.
    """
    timeout = outcome == "timeout"
    res = Result(
        instance=task.instance.name,
        solver=task.solver,
        status=Status.TIME_LIMIT_NO_SOLUTION if timeout else Status.ERROR,
        termination=Termination.TIME_LIMIT if timeout else Termination.ERROR,
        options=dict(task.options),
        message=message,
    )
    return result_row(task, res, outcome)


def bad_input_row(
    key: str, content_hash: str, file: str, solver: str, options: str, seed: int | None, message: str
) -> dict[str, Any]:
    """The row of a task whose instance file could not be loaded (outcome and status ``error``).

    Its instance columns (name, size, objective) are empty: there is no instance to read them from.
    """
    return {
        "task_key": key,
        "instance_hash": content_hash,
        "instance": os.path.basename(file),
        "instance_file": file,
        "solver": solver,
        "options": options,
        "seed": seed,
        "outcome": "error",
        "status": Status.ERROR.value,
        "termination": Termination.ERROR.value,
        "method": solver,
        "message": message,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        "host": socket.gethostname(),
        "worker_pid": os.getpid(),
        "task_wall_s": 0.0,
    }
