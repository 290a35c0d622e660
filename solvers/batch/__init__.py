"""Batch solving: the grid instances x solvers x option sets x seeds, on a local pool or Ray.

>>> from solvers import batch
>>> report = batch.run(["a.yaml", "b.yaml"], ["auto", "local"], out="results.db", jobs=2)  # doctest: +SKIP
>>> df = batch.load_results("results.db")  # doctest: +SKIP

Modules: :mod:`.grid` (tasks and keys), :mod:`.worker` (one solve, its row, the memory guard),
:mod:`.executors` (pebble pool), :mod:`.ray_executor` (Ray), :mod:`.store` (the SQLite results store), :mod:`.runner`.
"""

from solvers.batch.grid import BatchError, Task, expand_grid, instance_files, instance_hash
from solvers.batch.runner import BatchReport, is_failure, run
from solvers.batch.store import (
    COLUMN_NAMES,
    VOLATILE_COLUMNS,
    ResultsStore,
    StoreError,
    export_results,
    load_results,
)

__all__ = [
    "COLUMN_NAMES",
    "VOLATILE_COLUMNS",
    "BatchError",
    "BatchReport",
    "ResultsStore",
    "StoreError",
    "Task",
    "expand_grid",
    "export_results",
    "instance_files",
    "instance_hash",
    "is_failure",
    "load_results",
    "run",
]
