"""The model as LP text (the CPLEX LP format read by HiGHS, CBC, GLPK, Gurobi, CPLEX, SCIP).

The text is deterministic (rows and columns in build order, coefficients with 12 significant
digits) so that it can be stored and compared: ``tests/golden/`` holds it for a 3-layer,
2-device instance per objective. Quantities are SI, exactly as the builders wrote them; solvers
receive a scaled copy instead (:mod:`solvers.milp.scaling`).
"""

from __future__ import annotations

import math

from formulation.milp.model import LinearModel

TERMS_PER_LINE = 6


def _num(v: float) -> str:
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    text = f"{v:.12g}"
    return "0" if text == "-0" else text


def _terms(pairs: list[tuple[str, float]]) -> str:
    parts = []
    for name, v in pairs:
        sign = "-" if v < 0 else "+"
        mag = abs(v)
        parts.append(f"{sign} {name}" if mag == 1 else f"{sign} {_num(mag)} {name}")
    lines = [" ".join(parts[i : i + TERMS_PER_LINE]) for i in range(0, len(parts), TERMS_PER_LINE)]
    return "\n   ".join(lines)


def lp_text(model: LinearModel) -> str:
    """The model in CPLEX LP format.

    Rows with two finite, different bounds are written as two rows ``NAME_lo`` and ``NAME_hi``;
    rows without finite bounds are left out (they constrain nothing).
    """
    names = model.col_names
    out = [f"\\ dnnpart MILP {model.name}", f"\\ {model.n_cols} columns, {model.n_rows} rows", "Minimize"]
    obj = sorted(model.objective.items())
    out.append(" obj: " + (_terms([(names[j], v) for j, v in obj if v]) or "0 " + names[0]))
    if model.objective_constant:
        out.append(f"\\ objective constant {_num(model.objective_constant)} (not part of the LP text)")
    out.append("Subject To")
    A = model.matrix().tocsr()
    rlb, rub = model.row_lb(), model.row_ub()
    for i, rname in enumerate(model.row_names):
        lo, hi = A.indptr[i], A.indptr[i + 1]
        pairs = [(names[int(j)], float(v)) for j, v in zip(A.indices[lo:hi], A.data[lo:hi], strict=True)]
        body = _terms(pairs) if pairs else f"0 {names[0]}"
        lb, ub = float(rlb[i]), float(rub[i])
        if lb == ub:
            out.append(f" {rname}: {body} = {_num(lb)}")
        elif math.isfinite(lb) and math.isfinite(ub):
            out.append(f" {rname}_lo: {body} >= {_num(lb)}")
            out.append(f" {rname}_hi: {body} <= {_num(ub)}")
        elif math.isfinite(lb):
            out.append(f" {rname}: {body} >= {_num(lb)}")
        elif math.isfinite(ub):
            out.append(f" {rname}: {body} <= {_num(ub)}")
    out.append("Bounds")
    clb, cub, integ = model.col_lb(), model.col_ub(), model.integrality()
    binaries, generals = [], []
    for j, name in enumerate(names):
        lb, ub = float(clb[j]), float(cub[j])
        if integ[j] and lb == 0 and ub == 1:
            binaries.append(name)
            continue
        if integ[j]:
            generals.append(name)
        if lb == 0 and math.isinf(ub):
            continue
        if math.isinf(lb) and math.isinf(ub):
            out.append(f" {name} free")
        else:
            out.append(f" {_num(lb)} <= {name} <= {_num(ub)}")
    if binaries:
        out.append("Binaries")
        out.extend(f" {b}" for b in binaries)
    if generals:
        out.append("Generals")
        out.extend(f" {g}" for g in generals)
    out.append("End")
    return "\n".join(out) + "\n"
