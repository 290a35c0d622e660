"""The MILP as a Pyomo model, solved by any solver Pyomo can reach (Hart et al., "Pyomo: modeling and
solving mathematical programs in Python", Mathematical Programming Computation 3, 2011).

The Pyomo model is emitted from the same scaled matrix the direct HiGHS path uses: one indexed
variable ``v[j]`` per column and one constraint ``c[i]`` per row, built from
``LinearExpression`` objects (the fastest way to hand Pyomo a linear row). Two Pyomo interfaces
exist and both are handled, each with its own literal status map (:mod:`solvers.milp.status`):

* the newer ``pyomo.contrib.solver`` interface (``highs``, ``gurobi_direct``, ``scip_direct`` ...):
  options ``time_limit``, ``rel_gap``, ``threads``; results ``incumbent_objective`` and
  ``objective_bound``;
* the legacy ``pyomo.opt`` interface (``cbc``, ``glpk``, ``cplex``, ``gurobi``, ``scip``,
  ``xpress`` ...): options are solver-specific names (:data:`LEGACY_OPTION_NAMES`), warm starts
  where the solver is ``warm_start_capable``.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping
from contextlib import redirect_stdout
from typing import Any

import numpy as np

from formulation.milp.context import MilpContext
from formulation.model import IntArray
from solvers.milp.backend import DEFAULT_GAP, FEAS_TOL, BackendRun, MilpBackend, RunSettings
from solvers.milp.status import PYOMO_CONTRIB_STATUS, PYOMO_LEGACY_STATUS, termination
from solvers.result import Termination

#: Option names of the legacy-interface solvers: our option -> the solver's own name.
#: Options a legacy solver reads as whole numbers only (glpsol rejects ``--tmlim 29.99``).
INTEGER_OPTIONS: frozenset[tuple[str, str]] = frozenset({("glpk", "time_limit_s")})


def _legacy_value(solver: str, key: str, value: Any) -> Any:
    """``value`` as ``solver``'s command line takes it: a whole-number limit is rounded up (at least 1)."""
    if (solver, key) in INTEGER_OPTIONS:
        return max(1, math.ceil(float(value)))
    return value


LEGACY_OPTION_NAMES: dict[str, dict[str, str]] = {
    "cbc": {"time_limit_s": "sec", "gap": "ratioGap", "threads": "threads", "seed": "randomSeed"},
    "glpk": {"time_limit_s": "tmlim", "gap": "mipgap"},
    "cplex": {"time_limit_s": "timelimit", "gap": "mip_tolerances_mipgap", "threads": "threads", "seed": "randomseed"},
    "cplex_direct": {"time_limit_s": "timelimit", "gap": "mip_tolerances_mipgap", "threads": "threads"},
    "gurobi": {"time_limit_s": "TimeLimit", "gap": "MIPGap", "threads": "Threads", "seed": "Seed"},
    "gurobi_persistent": {"time_limit_s": "TimeLimit", "gap": "MIPGap", "threads": "Threads", "seed": "Seed"},
    "scip": {"time_limit_s": "limits/time", "gap": "limits/gap", "seed": "randomization/randomseedshift"},
    "xpress": {"time_limit_s": "maxtime", "gap": "miprelstop", "threads": "threads", "seed": "randomseed"},
    "xpress_direct": {"time_limit_s": "maxtime", "gap": "miprelstop", "threads": "threads", "seed": "randomseed"},
}
#: Seed option names of the contrib-interface solvers (their time limit, gap and threads are generic).
CONTRIB_SEED_NAMES: dict[str, str] = {"highs": "random_seed", "gurobi_direct": "Seed", "gurobi_persistent": "Seed"}
#: Tolerances passed to contrib-interface solvers: HiGHS gets those of the direct path (its default
#: integrality tolerance of 1e-6, times a big-M coefficient of the schedule models, let an incumbent
#: sit below its placement's true value by more than the 1e-6 of a proven optimum).
CONTRIB_TOLERANCES: dict[str, dict[str, float]] = {
    "highs": {"mip_feasibility_tolerance": FEAS_TOL, "primal_feasibility_tolerance": FEAS_TOL},
}


#: Solver name -> executable path given explicitly (``dnnpart solve --solver-executable PATH``).
#: ``pyomo:NAME`` takes registered solver names only: an unknown name would make Pyomo run a file
#: of that name as an AMPL solver, so a path reaches Pyomo only through this table.
EXECUTABLES: dict[str, str] = {}


def legacy_names() -> set[str]:
    """Public solver names registered with Pyomo's legacy ``SolverFactory``."""
    import pyomo.environ as pyo

    return {n for n in pyo.SolverFactory._cls if not n.startswith("_")}


def _legacy_factory(name: str) -> Any:
    import pyomo.environ as pyo
    from pyomo.common.log import LoggingIntercept

    exe = EXECUTABLES.get(name)
    # Pyomo logs warnings (with tracebacks) while it looks for a solver; the caller reports instead.
    with LoggingIntercept(io.StringIO(), "pyomo"):
        return pyo.SolverFactory(name, executable=exe) if exe else pyo.SolverFactory(name)


def contrib_names() -> set[str]:
    """Solver names registered with the ``pyomo.contrib.solver`` factory."""
    import pyomo.environ  # noqa: F401  (registers the plug-ins)
    from pyomo.contrib.solver.common.factory import SolverFactory

    return set(SolverFactory._cls)


def pyomo_availability(name: str) -> tuple[bool, str]:
    """Whether Pyomo can run solver ``name`` here, and why not."""
    try:
        import pyomo.environ  # noqa: F401  (registers the plug-ins)
    except ImportError as exc:  # pragma: no cover - pyomo is a dependency
        return False, f"Pyomo is not installed ({exc})"
    if name in contrib_names():
        from pyomo.contrib.solver.common.factory import SolverFactory

        avail = SolverFactory(name).available()
        if int(avail) > 0:
            return True, ""
        return False, f"Pyomo solver {name!r} is not usable here ({avail.name})"
    from pyomo.opt.base.solvers import UnknownSolver

    if name not in legacy_names():  # never let Pyomo treat an unknown name as a file to execute
        return False, (
            f"Pyomo knows no solver named {name!r} (NAME is a Pyomo solver name such as cbc, glpk, scip; "
            "give an executable's path with --solver-executable)"
        )
    with redirect_stdout(io.StringIO()):
        try:
            solver = _legacy_factory(name)
        except Exception as exc:
            return False, f"Pyomo cannot create solver {name!r}: {exc}"
    if isinstance(solver, UnknownSolver):
        return False, f"Pyomo knows no solver named {name!r}"
    try:
        ok = bool(solver.available(exception_flag=False))
    except Exception as exc:
        return False, f"Pyomo solver {name!r} is not usable here: {exc}"
    if not ok:
        return False, f"Pyomo solver {name!r} is not installed here (no executable or library found)"
    return True, ""


def warm_start_capable(name: str) -> bool:
    """Legacy-interface solvers that accept a MIP start through Pyomo."""
    if name in contrib_names():
        return False
    with redirect_stdout(io.StringIO()):
        solver = _legacy_factory(name)
    return bool(getattr(solver, "warm_start_capable", lambda: False)())


def build_pyomo_model(name: str, A: Any, col_lb: Any, col_ub: Any, row_lb: Any, row_ub: Any, integer: Any) -> Any:
    """A Pyomo ``ConcreteModel`` of ``row_lb <= A v <= row_ub``, ``col_lb <= v <= col_ub``."""
    import pyomo.environ as pyo
    from pyomo.core.expr.numeric_expr import LinearExpression

    m = pyo.ConcreteModel(name=name)
    n = int(A.shape[1])
    m.v = pyo.Var(range(n))
    v = m.v
    for j in range(n):
        var = v[j]
        if integer[j]:
            var.domain = pyo.Binary if col_lb[j] >= 0 and col_ub[j] <= 1 else pyo.Integers
        var.setlb(None if math.isinf(col_lb[j]) else float(col_lb[j]))
        var.setub(None if math.isinf(col_ub[j]) else float(col_ub[j]))
    indptr, indices, data = A.indptr, A.indices, A.data

    def rule(_m: Any, i: int) -> Any:
        lo, hi = indptr[i], indptr[i + 1]
        expr = LinearExpression(
            constant=0.0,
            linear_coefs=data[lo:hi].tolist(),
            linear_vars=[v[int(j)] for j in indices[lo:hi]],
        )
        lb = None if math.isinf(row_lb[i]) else float(row_lb[i])
        ub = None if math.isinf(row_ub[i]) else float(row_ub[i])
        if lb is not None and lb == ub:
            return expr == lb
        return (lb, expr, ub)

    m.c = pyo.Constraint(range(int(A.shape[0])), rule=rule)
    return m


class PyomoBackend(MilpBackend):
    """The scaled model as a Pyomo model, solved by Pyomo solver ``solver_name``."""

    def __init__(self, ctx: MilpContext, solver_name: str) -> None:
        super().__init__(ctx)
        sc = self.scaling
        self.solver_name = solver_name
        self.contrib = solver_name in contrib_names()
        self.model = build_pyomo_model(
            ctx.model.name, sc.A, sc.col_lb, sc.from_si(self.ub_si), sc.row_lb, sc.row_ub, sc.integer
        )
        self._warm = False
        self._load_objective()

    def _load_objective(self) -> None:
        import pyomo.environ as pyo
        from pyomo.core.expr.numeric_expr import LinearExpression

        c, _w = self.objective_scale()
        nz = np.flatnonzero(c)
        m = self.model
        if hasattr(m, "obj"):
            m.del_component(m.obj)
        m.obj = pyo.Objective(
            expr=LinearExpression(constant=0.0, linear_coefs=c[nz].tolist(), linear_vars=[m.v[int(j)] for j in nz]),
            sense=pyo.minimize,
        )

    def _load_col_ub(self, col: int, ub_si: float) -> None:
        self.ub_si = self.ub_si.copy()
        self.ub_si[col] = ub_si
        ub = self.scaling.bound_to_scaled(col, ub_si)
        self.model.v[col].setub(None if math.isinf(ub) else ub)

    def set_warm_start(self, placement: IntArray) -> bool:
        """Set the ``x`` values as the MIP start (legacy solvers that are warm-start capable)."""
        if self.contrib or not warm_start_capable(self.solver_name):
            return False
        vs, ds = np.nonzero(self.ctx.allowed)
        for v, d in zip(vs.tolist(), ds.tolist(), strict=True):
            self.model.v[int(self.ctx.x[v, d])].set_value(1.0 if placement[v] == d else 0.0)
        self._warm = True
        return True

    def write(self, path: str) -> None:
        """Write the Pyomo model (scaled) in the format of ``path``'s suffix, with symbolic labels."""
        self.model.write(path, io_options={"symbolic_solver_labels": True})

    def run(self, settings: RunSettings) -> BackendRun:
        """Solve through the contrib or the legacy interface."""
        log = io.StringIO()
        t0 = time.perf_counter()
        with redirect_stdout(log):
            out = self._run_contrib(settings) if self.contrib else self._run_legacy(settings)
        out.solve_time_s = time.perf_counter() - t0
        out.log = log.getvalue() + out.log
        return out

    def _values(self) -> np.ndarray:
        v = self.model.v
        return np.array([v[j].value if v[j].value is not None else 0.0 for j in range(len(v))], dtype=float)

    def _finish(self, native: str, term: Termination, have: bool, bound_scaled: float | None, log: str) -> BackendRun:
        c, w = self.objective_scale()
        values = objective = None
        if have:
            xs = self._values()
            values = self.scaling.to_si(xs)
            objective = float(c @ xs) * w
        bound = float(bound_scaled) * w if bound_scaled is not None and math.isfinite(bound_scaled) else -math.inf
        gap = math.inf
        if objective is not None and math.isfinite(bound):
            gap = max(0.0, (objective - bound) / max(abs(objective), 1e-12))
        return BackendRun(native, term, values, objective, bound, gap, 0.0, log)

    def _run_contrib(self, settings: RunSettings) -> BackendRun:
        from pyomo.contrib.solver.common.factory import SolverFactory

        solver = SolverFactory(self.solver_name)
        opts: dict[str, Any] = dict(CONTRIB_TOLERANCES.get(self.solver_name, {}))
        if settings.seed is not None and self.solver_name in CONTRIB_SEED_NAMES:
            opts[CONTRIB_SEED_NAMES[self.solver_name]] = int(settings.seed)
        kw: dict[str, Any] = {
            "tee": bool(settings.verbose),
            "load_solutions": False,
            "raise_exception_on_nonoptimal_result": False,
            "rel_gap": float(settings.gap if settings.gap is not None else DEFAULT_GAP),
            "abs_gap": 0.0,  # as on the direct path: the relative gap alone decides
            "solver_options": opts,
        }
        if settings.time_limit_s is not None:
            kw["time_limit"] = float(settings.time_limit_s)
        if settings.threads is not None:
            kw["threads"] = int(settings.threads)
        res = solver.solve(self.model, **kw)
        native = res.termination_condition.name
        term = termination(PYOMO_CONTRIB_STATUS, native)
        have = res.solution_status.name in ("feasible", "optimal")
        if have:
            res.solution_loader.load_vars()
        return self._gap_limited(self._finish(native, term, have, res.objective_bound, ""), settings)

    def _run_legacy(self, settings: RunSettings) -> BackendRun:
        solver = _legacy_factory(self.solver_name)
        names = LEGACY_OPTION_NAMES.get(self.solver_name, {})
        values = {
            "time_limit_s": settings.time_limit_s,
            "gap": settings.gap if settings.gap is not None else DEFAULT_GAP,
            "threads": settings.threads,
            "seed": settings.seed,
        }
        for key, val in values.items():
            if val is not None and key in names:
                solver.options[names[key]] = _legacy_value(self.solver_name, key, val)
        kw: dict[str, Any] = {"tee": bool(settings.verbose), "load_solutions": False}
        if self._warm:
            kw["warmstart"] = True
        res = solver.solve(self.model, **kw)
        native = res.solver.termination_condition.name
        term = termination(PYOMO_LEGACY_STATUS, native)
        good = {"optimal", "feasible", "bestSoln", "globallyOptimal", "locallyOptimal"}
        have = (
            len(res.solution) > 0
            and res.solution(0).status.name in good
            and term not in (Termination.INFEASIBLE, Termination.UNBOUNDED, Termination.ERROR)
        )
        if have:
            self.model.solutions.load_from(res)
        lb = res.problem.lower_bound if res.problem else None
        bound = float(lb) if lb is not None and math.isfinite(float(lb)) else None
        out = self._finish(native, term, have, bound, "")
        # The legacy interfaces read the bound from the solver's text output, printed with a few
        # significant digits (cbc: 0.00015761 for 0.000157606...): a bound above the solver's own
        # incumbent is that rounding, never information, so it is cut to the incumbent.
        if out.objective is not None and math.isfinite(out.bound) and out.bound > out.objective:
            out.bound, out.gap = out.objective, 0.0
        return self._gap_limited(out, settings)

    @staticmethod
    def _gap_limited(out: BackendRun, settings: RunSettings) -> BackendRun:
        if (
            out.termination == Termination.OPTIMAL
            and settings.gap is not None
            and out.gap > 1e-6
            and math.isfinite(out.gap)
        ):
            out.termination = Termination.GAP_LIMIT
        return out

    def fixed_objective(self, fixed: Mapping[int, float]) -> float | None:
        """Fix the integer columns, re-solve the LP with the same solver, restore the model."""
        m = self.model
        for col, val in fixed.items():
            m.v[col].fix(val)
        try:
            out = self.run(RunSettings())
        finally:
            for col in fixed:
                m.v[col].unfix()
        if out.termination != Termination.OPTIMAL:
            return None
        return out.objective
