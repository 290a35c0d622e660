"""Export the MILP of an instance: ``.lp`` (CPLEX LP text) or ``.mps`` (free MPS, written by HiGHS).

The exported model is the formulation exactly as built, in SI units and with readable names
(``x(layer,device)``, ``z(tensor,from,to)``, ``S(layer)`` ...); it is not the scaled copy given to
solvers, so its coefficients span many orders of magnitude. Any LP/MPS reader (HiGHS, CBC, GLPK,
Gurobi, CPLEX, SCIP) can load it; its optimum is the instance's optimum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from formulation.milp.build import build_milp
from formulation.milp.lpwriter import lp_text
from formulation.milp.model import LinearModel
from formulation.model import Instance

FORMATS = (".lp", ".mps")


def write_model(inst: Instance, path: str | Path) -> Path:
    """Build the MILP of ``inst`` and write it to ``path`` (format from the suffix).

    Raises
    ------
    ValueError
        When the suffix is neither ``.lp`` nor ``.mps``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{p}: cannot write a model as {suffix or 'a file without suffix'!r}; use .lp or .mps")
    model = build_milp(inst).model
    if suffix == ".lp":
        text = lp_text(model)
        if model.infeasible_reasons:
            text = "".join(f"\\ infeasible whatever the values: {r}\n" for r in model.infeasible_reasons) + text
        p.write_text(text)
    else:
        write_mps(model, p)
    return p


def write_mps(model: LinearModel, path: Path) -> None:
    """Write ``model`` as free MPS through HiGHS (names kept)."""
    import highspy

    from solvers.milp.highs_direct import _new_highs

    A = model.matrix().tocsc()
    lp = highspy.HighsLp()
    lp.num_col_ = model.n_cols
    lp.num_row_ = model.n_rows
    lp.col_cost_ = model.cost()
    lp.col_lower_ = model.col_lb()
    lp.col_upper_ = model.col_ub()
    lp.row_lower_ = model.row_lb()
    lp.row_upper_ = model.row_ub()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = A.indices.astype(np.int32)
    lp.a_matrix_.value_ = A.data.astype(float)
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in model.integrality()
    ]
    lp.col_names_ = list(model.col_names)
    lp.row_names_ = list(model.row_names)
    h = _new_highs()
    h.passModel(lp)
    status = h.writeModel(str(path))
    if status.name == "kError":
        raise OSError(f"{path}: HiGHS could not write the model")
