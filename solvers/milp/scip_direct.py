"""SCIP through pyscipopt, fed the same scaled matrix as the ``highs`` backend.

SCIP: Bolusani et al., "The SCIP Optimization Suite 9.0", ZIB report 24-02, 2024 (branch-and-cut
with its own presolve, cuts and primal heuristics, independent of HiGHS's). pyscipopt ships the
SCIP library inside its wheel, so nothing else is installed; Pyomo's ``scip`` interface looks for
a ``scip`` executable and finds none, hence this direct backend.

Hand-over. pyscipopt creates variables and rows one Python call at a time (about 20 us each), far
slower than the matrix itself costs; instead, the scaled model loaded in HiGHS
(:class:`solvers.milp.highs_direct.HighsDirect`, the very arrays ``highs`` solves) is written as
free MPS (doubles at full precision) and read by SCIP's own reader. Columns are matched back by
name (``c<j>``), so the values SCIP returns are those of the same columns. The integer-fixed LP
that gives the formulation's own value of a placement (:meth:`fixed_objective`) is the inherited
HiGHS LP on that matrix: an LP value, whichever solver computes it.

Warm starts are passed natively as a partial solution (the placement columns; SCIP completes the
rest with its ``completesol`` heuristic). :class:`solvers.milp.solver.MilpSolver` still keeps the
start when SCIP does not return a better placement.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.decode import integer_point
from formulation.model import IntArray
from solvers.milp.backend import DEFAULT_GAP, FEAS_TOL, RETRY_FEAS_TOL, BackendRun, RunSettings
from solvers.milp.highs_direct import HighsDirect, _mute_stdout_fd
from solvers.milp.status import SCIP_STATUS, termination
from solvers.result import Termination


@contextlib.contextmanager
def _fd_into(fd: int, path: str) -> Iterator[None]:
    """Point file descriptor ``fd`` at the file ``path`` (C code ignores ``sys.stderr``)."""
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor: nothing to redirect
        os.close(target)
        yield
        return
    try:
        os.dup2(target, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(target)


def scip_available() -> tuple[bool, str]:
    """Whether pyscipopt imports."""
    try:
        import pyscipopt  # noqa: F401
    except ImportError as exc:
        return False, f"pyscipopt is not installed ({exc}); pip install pyscipopt"
    return True, ""


def scip_version() -> str:
    """``SCIP X.Y (pyscipopt A.B.C)``."""
    import pyscipopt

    m = pyscipopt.Model()
    return f"SCIP {m.version()} (pyscipopt {pyscipopt.__version__})"


class ScipDirect(HighsDirect):
    """The scaled model, loaded in HiGHS as for ``highs`` and handed to a fresh SCIP model per run."""

    def __init__(self, ctx: MilpContext) -> None:
        super().__init__(ctx)
        self._start: dict[int, float] | None = None

    def set_warm_start(self, placement: IntArray) -> bool:
        """Keep the placement's integer columns; :meth:`run` gives them to SCIP as a partial solution."""
        self._start = integer_point(self.ctx, np.asarray(placement, dtype=np.int64), None)
        return True

    def _load_scip(self, path: str) -> tuple[Any, list[Any]]:
        """A SCIP model read from the MPS file at ``path``, and its variables in column order."""
        import pyscipopt

        m = pyscipopt.Model()
        m.hideOutput()
        with _mute_stdout_fd():
            m.readProblem(path)
        n = int(self.scaling.A.shape[1])
        cols: list[Any] = [None] * n
        for var in m.getVars():
            name = var.name
            if not name.startswith("c"):
                raise RuntimeError(f"SCIP read an unexpected column {name!r} from the model file")
            cols[int(name[1:])] = var
        missing = [j for j, v in enumerate(cols) if v is None]
        if missing:
            raise RuntimeError(f"SCIP did not read columns {missing[:5]} of the model file")
        return m, cols

    def run(self, settings: RunSettings) -> BackendRun:
        """Run SCIP; map its status literally (:data:`solvers.milp.status.SCIP_STATUS`).

        As for HiGHS, an infeasibility claim at the tight tolerance is checked again at
        :data:`solvers.milp.backend.RETRY_FEAS_TOL` before it is reported.
        """
        fd, path = tempfile.mkstemp(prefix="dnnpart-scip-", suffix=".mps")
        os.close(fd)
        try:
            self.h.writeModel(path)
            out = self._run_once(path, settings, FEAS_TOL)
            if out.termination == Termination.INFEASIBLE:
                again = self._run_once(path, settings, RETRY_FEAS_TOL)
                again.solve_time_s += out.solve_time_s
                again.log = (
                    out.log + f"\n[dnnpart] infeasible at tolerance {FEAS_TOL:g}; checked again at "
                    f"{RETRY_FEAS_TOL:g}\n" + again.log
                )
                out = again
        finally:
            os.unlink(path)
        return out

    def _params(self, m: Any, settings: RunSettings, feas_tol: float) -> None:
        m.setParam("limits/gap", float(settings.gap if settings.gap is not None else DEFAULT_GAP))
        m.setParam("limits/absgap", 0.0)
        m.setParam("numerics/feastol", feas_tol)
        if settings.time_limit_s is not None:
            m.setParam("limits/time", max(float(settings.time_limit_s), 1e-3))
        if settings.seed is not None:
            # SCIP's seeds are shifted by this value (0 .. 2^31 - 1).
            m.setParam("randomization/randomseedshift", int(settings.seed) % 2**31)
        if settings.threads is not None:
            # SCIP's tree search is sequential; more than one thread runs its concurrent solver
            # (differently seeded and parameterised copies racing, :meth:`_run_once`).
            m.setParam("parallel/maxnthreads", int(settings.threads))

    def _run_once(self, path: str, settings: RunSettings, feas_tol: float) -> BackendRun:
        m, cols = self._load_scip(path)
        self._params(m, settings, feas_tol)
        fd, log_path = tempfile.mkstemp(prefix="dnnpart-scip-", suffix=".log")
        os.close(fd)
        try:
            m.setLogfile(log_path)
            if settings.verbose:
                m.hideOutput(False)
            if self._start is not None:
                sol = m.createPartialSol()
                for j, v in self._start.items():
                    m.setSolVal(sol, cols[j], v)
                m.addSol(sol)
            t0 = time.perf_counter()
            quiet = contextlib.nullcontext() if settings.verbose else _mute_stdout_fd()
            # SoPlex (SCIP's LP solver) writes some warnings straight to fd 2: they go to the log.
            with quiet, _fd_into(2, log_path + ".err"):
                if settings.threads is not None and settings.threads > 1:
                    m.solveConcurrent()
                else:
                    m.optimize()
            solve_time = time.perf_counter() - t0
            m.setLogfile(None)
            log = ""
            for name in (log_path, log_path + ".err"):
                with open(name, encoding="utf-8", errors="replace") as fh:
                    log += fh.read()
        finally:
            for name in (log_path, log_path + ".err"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
        native = m.getStatus()
        term = termination(SCIP_STATUS, native)
        _c, w = self.objective_scale()
        values = objective = None
        if m.getNSols() > 0:
            best = m.getBestSol()
            values = self.scaling.to_si(np.array([m.getSolVal(best, v) for v in cols], dtype=float))
            objective = float(m.getSolObjVal(best)) * w
        dual = float(m.getDualbound())
        bound = dual * w if math.isfinite(dual) and abs(dual) < m.infinity() else -math.inf
        gap = float(m.getGap()) if values is not None else math.inf
        gap = gap if math.isfinite(gap) and gap < m.infinity() else math.inf
        if term == Termination.GAP_LIMIT and (settings.gap is None or gap <= 1e-6):
            term = Termination.OPTIMAL  # the default gap (1e-7) reached: HiGHS says kOptimal here
        if term == Termination.OPTIMAL and settings.gap is not None and objective is not None and gap > 1e-6:
            term = Termination.GAP_LIMIT
        return BackendRun(native, term, values, objective, bound, gap, solve_time, log)
