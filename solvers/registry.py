"""The solver registry: every backend is named here, in one place, and imported lazily.

Heavy libraries (Pyomo, OR-Tools, torch) are imported only when a solver that needs them is used,
so ``dnnpart --help`` and ``dnnpart validate`` stay fast.

To add a solver, write a :class:`solvers.base.Solver` subclass and add one line to ``_SOLVERS``.
Parameterised families (``pyomo:NAME``) are resolved through ``_FAMILIES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from formulation.model import Instance
from solvers.base import Solver
from solvers.options import Capabilities, SolverError, SolverOptions
from solvers.result import Result

#: name -> "module:Class". The order is the display order of ``dnnpart solvers``.
_SOLVERS: dict[str, str] = {
    "auto": "solvers.auto:AutoSolver",
    "brute": "solvers.brute:BruteForce",
    "local": "solvers.baselines:LocalBaseline",
    "offload": "solvers.baselines:OffloadBaseline",
    "scan": "solvers.scan:Scan",
    "shortest-path": "solvers.shortest_path:ShortestPath",
    "mincut": "solvers.mincut:MinCut",
    "dp": "solvers.dp:DynamicProgramming",
    "pipeline-dp": "solvers.pipeline_dp:PipelineDP",
    "heft": "solvers.heft:Heft",
    "local-search": "solvers.local_search:LocalSearch",
    "cpsat": "solvers.cpsat:CpSatSolver",
    "highs": "solvers.milp.solver:HighsSolver",
    "tang": "solvers.tang:Tang",
    "cpsat-v2": "solvers.cpsat_workload:CpSatWorkload",
    "scip": "solvers.milp.scip_solver:ScipSolver",
    "proportional": "solvers.proportional:Proportional",
    "shard-brute": "solvers.sharding:ShardBrute",
    "shard-milp": "solvers.sharding:ShardMilpSolver",
    "shard-dp": "solvers.sharding_dp:ShardDP",
    "scip-share": "solvers.scip_share:ScipShare",
}

#: prefix -> "module:factory" where ``factory(suffix) -> Solver`` builds e.g. ``pyomo:cbc``.
_FAMILIES: dict[str, str] = {
    "pyomo": "solvers.milp.pyomo_solver:pyomo_solver",
}


class UnknownSolver(SolverError):
    """No solver of that name is registered."""


def names() -> list[str]:
    """Registered solver names (families such as ``pyomo:NAME`` are not listed)."""
    return list(_SOLVERS)


def families() -> list[str]:
    """Registered family prefixes (``pyomo`` for ``pyomo:NAME``)."""
    return list(_FAMILIES)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def solver_class(name: str) -> type[Solver]:
    """The class registered under ``name``.

    Raises
    ------
    UnknownSolver
    """
    if name not in _SOLVERS:
        raise UnknownSolver(f"unknown solver {name!r}; registered: {', '.join(names())}")
    cls = _load(_SOLVERS[name])
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        raise TypeError(f"{_SOLVERS[name]} is not a Solver subclass")
    return cls


def get_solver(name: str) -> Solver:
    """A solver instance by registry name, including family names like ``pyomo:cbc``.

    Raises
    ------
    UnknownSolver
    """
    prefix, sep, suffix = name.partition(":")
    if sep and prefix in _FAMILIES:
        factory: Callable[[str], Solver] = _load(_FAMILIES[prefix])
        return factory(suffix)
    return solver_class(name)()


def register(name: str, target: str | type[Solver]) -> None:
    """Register a solver at run time (tests, plug-ins). ``target`` is a class or "module:Class"."""
    if isinstance(target, type):
        _SOLVERS[name] = f"{target.__module__}:{target.__qualname__}"
    else:
        _SOLVERS[name] = target


def unregister(name: str) -> None:
    """Remove a run-time registration."""
    _SOLVERS.pop(name, None)


@dataclass(frozen=True)
class SolverInfo:
    """Name, availability (and why not), exactness and capabilities of a solver."""

    name: str
    available: bool
    reason: str
    exact: bool
    capabilities: Capabilities
    description: str


def solver_info(name: str) -> SolverInfo:
    """Describe a registered solver without building anything."""
    try:
        cls = solver_class(name)
    except ImportError as exc:
        return SolverInfo(name, False, f"import failed: {exc}", False, Capabilities(), "")
    ok, why = cls.available()
    return SolverInfo(
        name, ok, why, cls.exact, cls.capabilities, cls.description or (cls.__doc__ or "").split("\n")[0]
    )


def solve(inst: Instance, solver: str = "auto", options: SolverOptions | None = None) -> Result:
    """Solve ``inst`` with the named solver (default ``auto``)."""
    return get_solver(solver).solve(inst, options)
