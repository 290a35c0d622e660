"""The model of placement plus configuration (docs/instance-format.md §11.5) solved by HiGHS.

:func:`formulation.choices_model.build_choice_model` writes the rows once; here they become one
row-wise matrix for ``highspy`` (auxiliary columns continuous and >= 0, the rest binary). The
placement and configuration read back are judged by the evaluator like every answer.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp

from formulation.choices import config_dict
from formulation.choices_model import ChoiceModel, build_choice_model
from solvers.base import RawSolution
from solvers.milp.status import HIGHS_STATUS, termination
from solvers.options import SolverOptions
from solvers.result import Termination

#: Primal feasibility tolerance (the evaluator allows a relative 1e-9 on its own checks).
FEAS_TOL = 1e-9


def matrix(m: ChoiceModel) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(A, row_lb, row_ub, c, c0)`` of the model: logic rows, ``aux - form >= const`` rows and
    ``form <= rhs`` rows."""
    rows, cols, vals, lb, ub = [], [], [], [], []
    r = 0
    for terms, lo, hi in m.logic:
        for c, v in terms.items():
            rows.append(r), cols.append(c), vals.append(float(v))
        lb.append(lo), ub.append(hi)
        r += 1
    for aux, form in m.lower:
        rows.append(r), cols.append(aux), vals.append(1.0)
        for c, v in form.terms.items():
            rows.append(r), cols.append(c), vals.append(-v)
        lb.append(form.const), ub.append(math.inf)
        r += 1
    for _name, form, rhs in m.upper:
        for c, v in form.terms.items():
            rows.append(r), cols.append(c), vals.append(v)
        lb.append(-math.inf), ub.append(rhs - form.const)
        r += 1
    A = sp.csr_matrix((vals, (rows, cols)), shape=(r, len(m.names)))
    A.sum_duplicates()
    c = np.zeros(len(m.names))
    for col, v in m.objective.terms.items():
        c[col] += v
    return A, np.array(lb, dtype=float), np.array(ub, dtype=float), c, m.objective.const


def solve_choices_milp(inst: object, options: SolverOptions) -> RawSolution:
    """Build, solve with HiGHS, decode."""
    from solvers.milp.highs_direct import _new_highs

    t0 = time.perf_counter()
    m = build_choice_model(inst)  # type: ignore[arg-type]
    if m.infeasible:
        return RawSolution(Termination.INFEASIBLE, message="infeasible before solving: " + "; ".join(m.infeasible))
    A, rlb, rub, c, c0 = matrix(m)
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
    h.setOptionValue("mip_rel_gap", float(options.gap if options.gap is not None else 1e-9))
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("primal_feasibility_tolerance", FEAS_TOL)
    h.setOptionValue("mip_feasibility_tolerance", FEAS_TOL)
    if options.time_limit_s is not None:
        h.setOptionValue("time_limit", float(options.time_limit_s))
    if options.seed is not None:
        h.setOptionValue("random_seed", int(options.seed))
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    h.run()
    solve = time.perf_counter() - t1
    native = h.getModelStatus().name
    term = termination(HIGHS_STATUS, native)
    info = h.getInfo()
    bound = float(info.mip_dual_bound) if math.isfinite(info.mip_dual_bound) else -math.inf
    extra = {"native_status": native, "model_columns": n, "model_rows": int(A.shape[0])}
    if int(info.primal_solution_status) != 2:
        return RawSolution(term, bound=bound, build_time_s=build, solve_time_s=solve, extra=extra)
    values = np.asarray(h.getSolution().col_value)
    P, cfg = m.decode(values)
    return RawSolution(
        term,
        placement=P,
        # auxiliaries (idle, peak) may keep slack in an incumbent that is not proven optimal
        solver_objective=float(info.objective_function_value) if term == Termination.OPTIMAL else None,
        bound=bound,
        build_time_s=build,
        solve_time_s=solve,
        extra=extra,
        choices=config_dict(m.inst, cfg),
        objective_atol=1e-7 * max(1.0, abs(float(info.objective_function_value))),
    )
