"""HiGHS through highspy, fed the scaled matrix directly (``Highs.passModel``, no modelling layer).

HiGHS: Huangfu and Hall, "Parallelizing the dual revised simplex method", Mathematical
Programming Computation 10, 2018; the MIP solver is by Gottwald (HiGHS 1.x). The model arrives as
one row-wise sparse matrix, so building costs what numpy costs; see ``benchmarks/milp.py`` for the
measured comparison with the Pyomo path and ``docs/milp.md`` for the decision.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from formulation.milp.context import MilpContext
from formulation.model import IntArray
from solvers import progress
from solvers.milp.backend import DEFAULT_GAP, FEAS_TOL, RETRY_FEAS_TOL, BackendRun, MilpBackend, RunSettings
from solvers.milp.status import HIGHS_STATUS, termination
from solvers.result import Termination


def highs_available() -> tuple[bool, str]:
    """Whether highspy imports."""
    try:
        import highspy  # noqa: F401
    except ImportError as exc:  # pragma: no cover - highspy is a dependency
        return False, f"highspy is not installed ({exc})"
    return True, ""


def highs_version() -> str:
    """``HiGHS X.Y.Z``."""
    h = _new_highs()
    return f"HiGHS {h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"


def _new_highs() -> Any:
    """A silent ``highspy.Highs`` (its banner goes to the C stdout, so the fd is muted briefly)."""
    import highspy

    with _mute_stdout_fd():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    return h


@contextlib.contextmanager
def _mute_stdout_fd() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null (C code ignores ``sys.stdout`` redirection)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real fd 1 (e.g. a captured stream): nothing to mute
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class HighsDirect(MilpBackend):
    """The scaled model loaded in one ``highspy.Highs`` object."""

    def __init__(self, ctx: MilpContext) -> None:
        super().__init__(ctx)
        self.h: Any = _new_highs()
        self._pass(self.h, relax=None)

    def _pass(self, h: Any, relax: Mapping[int, float] | None) -> None:
        """Load the model; with ``relax``, integer columns are fixed to those values and made continuous."""
        sc = self.scaling
        c, _w = self.objective_scale()
        lb, ub = sc.col_lb.copy(), self.scaling.from_si(self.ub_si)
        integ = sc.integer.astype(np.int32)
        if relax is not None:
            cols = np.fromiter(relax.keys(), dtype=np.int64, count=len(relax))
            vals = np.fromiter(relax.values(), dtype=float, count=len(relax))
            lb[cols] = vals
            ub[cols] = vals
            integ = np.zeros_like(integ)
        A = sc.A
        status = h.passModel(
            int(A.shape[1]),
            int(A.shape[0]),
            int(A.nnz),
            2,  # row-wise
            1,  # minimise
            0.0,
            c,
            lb,
            ub,
            sc.row_lb,
            sc.row_ub,
            A.indptr.astype(np.int32),
            A.indices.astype(np.int32),
            A.data.astype(float),
            integ,
        )
        if status.name == "kError":
            raise RuntimeError("HiGHS rejected the model (passModel returned kError)")

    def _load_objective(self) -> None:
        c, _w = self.objective_scale()
        idx = np.arange(c.size, dtype=np.int32)
        self.h.changeColsCost(c.size, idx, c)

    def _load_col_ub(self, col: int, ub_si: float) -> None:
        self.ub_si = self.ub_si.copy()
        self.ub_si[col] = ub_si
        lb = float(self.scaling.col_lb[col])
        self.h.changeColBounds(col, lb, self.scaling.bound_to_scaled(col, ub_si))

    def set_warm_start(self, placement: IntArray) -> bool:
        """Not passed to HiGHS: its MIP-start path is unreliable in HiGHS 1.16 (see below).

        With a start, HiGHS 1.16 can return the start unchanged as "optimal" with the dual bound
        set to its value although a better solution exists, or report the objective of another
        point than the one returned (reproducers: ``tests/golden/highs_mipstart_*.mps`` with the
        start and options in the ``.json`` next to them; ``docs/milp.md``). Warm starts are
        therefore honoured outside HiGHS by :class:`solvers.milp.solver.MilpSolver`, which keeps
        the start when HiGHS does not prove a better placement.
        """
        return False

    def _options(self, h: Any, settings: RunSettings, log_path: str | None, feas_tol: float) -> None:
        set_opt = h.setOptionValue
        set_opt("output_flag", True)
        set_opt("log_to_console", bool(settings.verbose))
        if log_path:
            set_opt("log_file", log_path)
        set_opt("mip_rel_gap", float(settings.gap if settings.gap is not None else DEFAULT_GAP))
        set_opt("mip_abs_gap", 0.0)
        set_opt("primal_feasibility_tolerance", feas_tol)
        set_opt("mip_feasibility_tolerance", feas_tol)
        if settings.time_limit_s is not None:
            set_opt("time_limit", float(settings.time_limit_s))
        if settings.threads is not None:
            set_opt("threads", int(settings.threads))
        if settings.seed is not None:
            set_opt("random_seed", int(settings.seed))

    def run(self, settings: RunSettings) -> BackendRun:
        """Run HiGHS; map its status literally (:data:`solvers.milp.status.HIGHS_STATUS`)."""
        out = self._run_once(self.h, settings, FEAS_TOL)
        if out.termination == Termination.INFEASIBLE:
            # Presolve can declare the tight-tolerance model infeasible on rows spanning many orders
            # of magnitude; an infeasibility claim is only kept if it holds at HiGHS's usual tolerance.
            again = self._run_once(self.h, settings, RETRY_FEAS_TOL)
            again.solve_time_s += out.solve_time_s
            note = f"\n[dnnpart] infeasible at tolerance {FEAS_TOL:g}; checked again at {RETRY_FEAS_TOL:g}\n"
            again.log = out.log + note + again.log
            out = again
        return out

    def _run_once(self, h: Any, settings: RunSettings, feas_tol: float) -> BackendRun:
        fd, log_path = tempfile.mkstemp(prefix="dnnpart-highs-", suffix=".log")
        os.close(fd)
        try:
            self._options(h, settings, log_path, feas_tol)
            if settings.threads is not None:
                # HiGHS keeps one process-wide thread pool; a new thread count needs a new pool.
                h.resetGlobalScheduler(True)
            t0 = time.perf_counter()
            w_si = self.objective_scale()[1] if progress.active() else 1.0
            unwatch = progress.watch_highs(h, lambda v: v * w_si)  # the engine's scaled objective -> SI
            try:
                h.run()
            finally:
                unwatch()
                if settings.threads is not None:
                    h.resetGlobalScheduler(True)
            solve_time = time.perf_counter() - t0
            h.setOptionValue("log_file", "")
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                log = fh.read()
        finally:
            os.unlink(log_path)
        native = h.getModelStatus().name
        term = termination(HIGHS_STATUS, native)
        info = h.getInfo()
        _c, w = self.objective_scale()
        values = None
        objective = None
        if int(info.primal_solution_status) == 2:
            values = self.scaling.to_si(np.asarray(h.getSolution().col_value))
            objective = float(info.objective_function_value) * w
        bound = float(info.mip_dual_bound) * w if math.isfinite(info.mip_dual_bound) else -math.inf
        gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else math.inf
        if term == Termination.OPTIMAL and settings.gap is not None and objective is not None and gap > 1e-6:
            term = Termination.GAP_LIMIT
        return BackendRun(native, term, values, objective, bound, gap, solve_time, log)

    def fixed_objective(self, fixed: Mapping[int, float]) -> float | None:
        """Solve the LP left after fixing ``fixed``; its objective in SI units (None if not optimal)."""
        h = _new_highs()
        self._pass(h, relax=fixed)
        h.setOptionValue("primal_feasibility_tolerance", FEAS_TOL)
        h.run()
        if h.getModelStatus().name != "kOptimal":
            return None
        _c, w = self.objective_scale()
        return float(h.getInfo().objective_function_value) * w
