"""The model of placement plus configuration (docs/instance-format.md §11.5) solved by HiGHS or SCIP.

:func:`formulation.choices_model.build_choice_model` writes the rows once; here they become one
row-wise matrix for ``highspy`` (auxiliary columns continuous and >= 0, the rest binary). The
placement and configuration read back are judged by the evaluator like every answer.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from formulation.choices import config_dict
from formulation.choices_model import ChoiceModel, build_choice_model
from solvers.base import RawSolution
from solvers.milp.status import HIGHS_STATUS, SCIP_STATUS, termination
from solvers.options import SolverOptions
from solvers.result import Termination

#: Primal feasibility tolerance (the evaluator allows a relative 1e-9 on its own checks).
FEAS_TOL = 1e-9


def unit(magnitude: float) -> float:
    """The power of ten at or below ``magnitude`` (1 for 0): rows and the objective are divided by it
    so that their largest coefficient lies in [1, 10), where HiGHS's absolute tolerances are
    meaningful (a cost objective of 1e-5 USD would otherwise sit at the size of its dual tolerance)."""
    if not (magnitude > 0 and math.isfinite(magnitude)):
        return 1.0
    return float(10.0 ** math.floor(math.log10(magnitude)))


def matrix(m: ChoiceModel) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(A, row_lb, row_ub, c, c0)`` of the model: logic rows, ``aux - form >= const`` rows and
    ``form <= rhs`` rows."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lb: list[float] = []
    ub: list[float] = []

    def row(terms: dict[int, float], lo: float, hi: float, scale: float = 1.0) -> None:
        for col, v in terms.items():
            rows.append(len(lb))
            cols.append(col)
            vals.append(float(v) / scale)
        lb.append(lo)
        ub.append(hi)

    for terms, lo, hi in m.logic:
        row({k: float(v) for k, v in terms.items()}, lo, hi)
    for aux, form in m.lower:
        row({aux: 1.0, **{k: -v for k, v in form.terms.items()}}, form.const, math.inf)
    for _name, form, rhs in m.upper:
        k = unit(max((abs(v) for v in form.terms.values()), default=1.0))
        row(form.terms, -math.inf, (rhs - form.const) / k, k)
    r = len(lb)
    A = sp.csr_matrix((vals, (rows, cols)), shape=(r, len(m.names)))
    A.sum_duplicates()
    c = np.zeros(len(m.names))
    for col, v in m.objective.terms.items():
        c[col] += v
    return A, np.array(lb, dtype=float), np.array(ub, dtype=float), c, m.objective.const


@dataclass
class _Run:
    """What one engine returned, in the units of the scaled objective."""

    native: str
    term: Termination
    values: np.ndarray | None
    objective: float
    bound: float


def _run_highs(h: Any, options: SolverOptions) -> _Run:
    h.setOptionValue("mip_rel_gap", float(options.gap if options.gap is not None else 1e-9))
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("primal_feasibility_tolerance", FEAS_TOL)
    h.setOptionValue("mip_feasibility_tolerance", FEAS_TOL)
    if options.time_limit_s is not None:
        h.setOptionValue("time_limit", float(options.time_limit_s))
    if options.seed is not None:
        h.setOptionValue("random_seed", int(options.seed))
    h.run()
    native = h.getModelStatus().name
    info = h.getInfo()
    bound = float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else -math.inf
    values = np.asarray(h.getSolution().col_value) if int(info.primal_solution_status) == 2 else None
    return _Run(native, termination(HIGHS_STATUS, native), values, float(info.objective_function_value), bound)


def _run_scip(h: Any, n: int, options: SolverOptions) -> _Run:
    """The model loaded in HiGHS, written as free MPS and read by SCIP (as :mod:`solvers.milp.scip_direct`
    hands over the placement MILP); columns are matched back by their names ``c<j>``."""
    import pyscipopt

    from solvers.milp.highs_direct import _mute_stdout_fd

    fd, path = tempfile.mkstemp(prefix="dnnpart-choices-", suffix=".mps")
    os.close(fd)
    try:
        h.writeModel(path)
        s = pyscipopt.Model()
        s.hideOutput()
        with _mute_stdout_fd():
            s.readProblem(path)
    finally:
        os.unlink(path)
    cols: list[Any] = [None] * n
    for var in s.getVars():
        cols[int(var.name[1:])] = var
    s.setParam("limits/gap", float(options.gap if options.gap is not None else 1e-9))
    s.setParam("limits/absgap", 0.0)
    s.setParam("numerics/feastol", FEAS_TOL)
    if options.time_limit_s is not None:
        s.setParam("limits/time", max(float(options.time_limit_s), 1e-3))
    if options.seed is not None:
        s.setParam("randomization/randomseedshift", int(options.seed) % 2**31)
    with _mute_stdout_fd():
        s.optimize()
    native = str(s.getStatus())
    term = termination(SCIP_STATUS, native)
    if term == Termination.GAP_LIMIT and options.gap is None:
        term = Termination.OPTIMAL  # the default gap of 1e-9 reached
    values = objective = None
    if s.getNSols() > 0:
        best = s.getBestSol()
        values = np.array([s.getSolVal(best, v) if v is not None else 0.0 for v in cols], dtype=float)
        objective = float(s.getSolObjVal(best))
    dual = float(s.getDualbound())
    bound = dual if math.isfinite(dual) and abs(dual) < s.infinity() else -math.inf
    return _Run(native, term, values, objective if objective is not None else math.inf, bound)


def solve_choices_milp(inst: object, options: SolverOptions, engine: str = "highs") -> RawSolution:
    """Build, solve with HiGHS (``engine="highs"``) or SCIP (``"scip"``), decode."""
    from solvers.milp.highs_direct import _new_highs

    t0 = time.perf_counter()
    m = build_choice_model(inst)  # type: ignore[arg-type]
    if m.infeasible:
        return RawSolution(Termination.INFEASIBLE, message="infeasible before solving: " + "; ".join(m.infeasible))
    A, rlb, rub, c, c0 = matrix(m)
    w = unit(float(np.abs(c).max()) if c.size else 1.0)
    c, c0 = c / w, c0 / w
    n = len(m.names)
    integ = np.array([1 if b else 0 for b in m.binary], dtype=np.int32)
    col_ub = np.where(integ == 1, 1.0, math.inf)
    h = _new_highs()
    status = h.passModel(
        n,
        int(A.shape[0]),
        int(A.nnz),
        2,
        1,
        float(c0),
        c,
        np.zeros(n),
        col_ub,
        rlb,
        rub,
        A.indptr.astype(np.int32),
        A.indices.astype(np.int32),
        A.data.astype(float),
        integ,
    )
    if status.name == "kError":
        raise RuntimeError("HiGHS rejected the model (passModel returned kError)")
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = _run_scip(h, n, options) if engine == "scip" else _run_highs(h, options)
    solve = time.perf_counter() - t1
    term = run.term
    bound = run.bound * w if math.isfinite(run.bound) else -math.inf
    extra = {"native_status": run.native, "model_columns": n, "model_rows": int(A.shape[0])}
    if run.values is None:
        return RawSolution(term, bound=bound, build_time_s=build, solve_time_s=solve, extra=extra)
    P, cfg = m.decode(run.values)
    return RawSolution(
        term,
        placement=P,
        # auxiliaries (idle, peak) may keep slack in an incumbent that is not proven optimal
        solver_objective=run.objective * w if term == Termination.OPTIMAL else None,
        bound=bound,
        build_time_s=build,
        solve_time_s=solve,
        extra=extra,
        choices=config_dict(m.inst, cfg),
        objective_atol=1e-7 * w * max(1.0, abs(run.objective)),
    )
