"""The functions of the public API: load or build, solve, evaluate, batch, compare.

Each one delegates to the single implementation in :mod:`formulation` or :mod:`solvers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dnnpart.instance import Instance, SystemLike
from formulation import model as _model
from formulation.evaluator import Evaluation
from solvers.options import SolverOptions
from solvers.result import Result

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from solvers.batch.runner import BatchReport

PathLike = str | os.PathLike[str]


def load(path: PathLike, *, allow_outside: bool = False) -> Instance:
    """Load and validate an instance file (YAML or JSON), all quantities in SI base units.

    Raises
    ------
    InstanceError
        Naming the file, the field path, the value and what was expected.
    """
    return Instance.load(path, allow_outside=allow_outside)


def from_dict(data: Mapping[str, Any], *, base_dir: PathLike | None = None) -> Instance:
    """An instance from data shaped like an instance file; see :meth:`Instance.from_dict`."""
    return Instance.from_dict(data, base_dir=base_dir)


def from_networkx(
    graph: nx.DiGraph,
    system: SystemLike,
    problem: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    inputs: Mapping[str, float | str] | None = None,
) -> Instance:
    """An instance from a networkx DAG of layers; see :meth:`Instance.from_networkx`."""
    return Instance.from_networkx(graph, system, problem, name=name, inputs=inputs)


def from_module(
    module: Any, example_inputs: Any, system: SystemLike, problem: Mapping[str, Any] | None = None, **kwargs: Any
) -> Instance:
    """An instance from a PyTorch ``nn.Module``; see :meth:`Instance.from_module` (needs torch)."""
    return Instance.from_module(module, example_inputs, system, problem, **kwargs)


def solve(
    inst: _model.Instance,
    solver: str = "auto",
    *,
    time_limit: float | None = None,
    gap: float | None = None,
    threads: int | None = None,
    seed: int | None = None,
    verbose: bool = False,
    options: Mapping[str, Any] | None = None,
    explain: bool = True,
) -> Result:
    """Solve ``inst`` with a registered solver (default ``auto``) and return its checked :class:`Result`.

    Parameters
    ----------
    inst : Instance
    solver : str
        A name from ``dnnpart solvers`` (``auto``, ``highs``, ``cpsat``, ``brute``, ``heft``, ...).
    time_limit, gap, threads, seed, verbose
        The common solver options (:class:`solvers.options.SolverOptions`).
    options : mapping, optional
        Backend-specific raw options.
    explain : bool
        When the instance is proven infeasible, name a minimal set of conflicting constraints and
        the smallest relaxation that restores feasibility (``result.conflict``).

    Raises
    ------
    SolverError
        The solver cannot handle the instance or an option (raised before anything is built).
    """
    from solvers.registry import get_solver

    opts = SolverOptions(
        time_limit_s=time_limit, gap=gap, threads=threads, seed=seed, verbose=verbose, raw=dict(options or {})
    )
    res = get_solver(solver).solve(inst, opts)
    if explain:
        from solvers.conflict import attach_conflict

        attach_conflict(inst, res, time_limit_s=time_limit)
    return res


def evaluate(
    inst: _model.Instance,
    placement: Mapping[str, str] | Sequence[int] | Result,
    schedule: Mapping[str, float] | None = None,
) -> Evaluation:
    """Every metric and violation of a placement (``{layer: device}``, device indices, or a Result).

    A Result's own schedule is used in parallel mode unless ``schedule`` is given.
    """
    from formulation.evaluator import evaluate as impl

    if isinstance(placement, Result):
        schedule = schedule if schedule is not None else (placement.schedule or None)
        placement = placement.placement
    if inst.problem.execution != "parallel":
        schedule = None
    return impl(inst, placement, schedule)


def batch(
    instances: Iterable[_model.Instance | PathLike],
    solvers: Sequence[str] = ("auto",),
    *,
    out: PathLike,
    **kwargs: Any,
) -> BatchReport:
    """Solve every instance with every solver, one row per task in the SQLite store ``out``.

    Keyword arguments are those of :func:`solvers.batch.runner.run` (``option_sets``, ``seeds``,
    ``jobs``, ``executor``, ``time_limit_s``, ``resume``, ...). Read the rows with :func:`results`.
    """
    from solvers.batch.runner import run

    return run(instances, solvers, out=out, **kwargs)


def results(path: PathLike) -> pd.DataFrame:
    """The rows of a results store (or its Parquet/CSV export) as a pandas DataFrame."""
    from solvers.batch.store import load_results

    return load_results(os.fspath(path))


def compare(rows: PathLike | pd.DataFrame) -> pd.DataFrame:
    """Per instance and configuration: status, objective, gap to the best proven bound, time.

    ``rows`` is a results store path or a DataFrame from :func:`results`; see
    :func:`solvers.compare.compare_table`.
    """
    from solvers.compare import compare_table

    df = results(rows) if isinstance(rows, str | os.PathLike) else rows
    return compare_table(df)
