"""The ``pyomo:NAME`` solver family: the MILP solved by any solver Pyomo can reach.

``get_solver("pyomo:cbc")`` calls :func:`pyomo_solver` (registered in ``solvers.registry._FAMILIES``),
which makes a solver class for that name. Its availability says precisely whether Pyomo and the
named solver are usable here. Options it cannot map to the named solver raise
:class:`solvers.options.OptionNotSupported` before anything is built.
"""

from __future__ import annotations

from typing import ClassVar

from formulation.milp.context import MilpContext
from formulation.model import Instance
from solvers.base import Solver
from solvers.milp.backend import MilpBackend
from solvers.milp.solver import RAW_KEYS, MilpSolver
from solvers.options import OptionNotSupported, SolverOptions


class PyomoSolver(MilpSolver):
    """The MILP through Pyomo; subclasses made by :func:`pyomo_solver` fix ``pyomo_name``.

    ``raw={"auto_warm_start": False}`` disables the default warm start (warm-start capable
    legacy solvers only).
    """

    pyomo_name: ClassVar[str] = ""
    description = "exact MILP through Pyomo with a named solver (pyomo:NAME)"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        from solvers.milp.pyomo_backend import pyomo_availability

        return pyomo_availability(cls.pyomo_name)

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import version

        return f"Pyomo {version('pyomo')} / {cls.pyomo_name}"

    def raw_keys(self) -> frozenset[str]:
        return RAW_KEYS - {"interface"}

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        from solvers.milp.pyomo_backend import (
            CONTRIB_SEED_NAMES,
            LEGACY_OPTION_NAMES,
            contrib_names,
            warm_start_capable,
        )

        name = self.pyomo_name
        if name in contrib_names():
            mapped = {"time_limit_s", "gap", "threads"} | ({"seed"} if name in CONTRIB_SEED_NAMES else set())
        else:
            mapped = set(LEGACY_OPTION_NAMES.get(name, {}))
            if warm_start_capable(name):
                mapped.add("warm_start")
        bad = sorted((options.requested() - {"raw"}) - mapped)
        if bad:
            raise OptionNotSupported(
                f"solver {self.name!r} cannot honour option(s) {bad} through Pyomo (it maps {sorted(mapped) or 'none'})"
            )

    def make_backend(self, ctx: MilpContext, options: SolverOptions) -> MilpBackend:
        from solvers.milp.pyomo_backend import PyomoBackend

        return PyomoBackend(ctx, self.pyomo_name)


def pyomo_solver(name: str) -> Solver:
    """A solver for ``pyomo:NAME`` (the family factory of the registry)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in name)
    cls = type(
        f"PyomoSolver_{safe}",
        (PyomoSolver,),
        {"name": f"pyomo:{name}", "pyomo_name": name, "__doc__": f"The MILP solved by Pyomo solver {name!r}."},
    )
    return cls()
