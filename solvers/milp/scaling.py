"""Numerical scaling of the MILP before it reaches a solver.

The formulation is written in SI units, where a latency is 1e-3 s, a cost 1e-8 USD and a memory
row 1e9 bytes: far from the absolute tolerances solvers use (HiGHS: 1e-7 feasibility, 1e-6
absolute MIP gap). Every continuous column is divided by the typical magnitude of its unit
(``time``, ``energy``, ``cost``, ``bytes``: the metrics of the best single-device placement,
:func:`formulation.numerics.unit_scales`), then every row by a scale of its own (below), and the
objective by its largest coefficient: row equilibration after a unit-based column scaling (Tomlin,
"On scaling linear programming problems", Mathematical Programming Study 4, 1975). The solver sees
coefficients of order one; values, objective and bound are mapped back exactly by :class:`Scaling`.

Row scale. A solver's feasibility tolerance is absolute on the scaled row: a row divided by ``s``
may be violated by ``tol * s`` in its column-scaled terms, which a quantity column with scaled
coefficient ``a`` absorbs as ``tol * s / a`` of its unit. Rows that define a quantity (the
latency, the period, an energy, a cost, a start time: the columns that carry a unit) are therefore
divided by the largest coefficient among those columns, so that the quantity's coefficient is at
least one and the tolerance stays ``tol`` in the quantity's own scaled unit. Dividing by the
largest coefficient of the row instead lets the data coefficients decide: in the sequential latency
row ``latency = sum t x + sum d z`` a transfer over a slow link can take a hundred times the
single-device latency, and the latency would then be free to sit ``100 tol`` (relative) below the
value of its placement, past the evaluator comparison (``tests/test_milp_scaling_rows.py``). Rows
without such a column (placement, transfer and memory rows) are divided by their largest
coefficient. No row is divided by less than :data:`MAX_ROW_RANGE`-th of its largest coefficient,
which keeps scaled coefficients below that range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from formulation import numerics
from formulation.milp.context import MilpContext
from formulation.model import FloatArray

#: Largest scaled coefficient a row may get from being divided by its quantity columns' coefficient
#: (see the module docstring). The range check admits data up to this many times its unit scale
#: (:data:`formulation.numerics.SAFE_MAX`), so no checked defining row reaches it; the sequential
#: latency rows of the benchmark families need about 150.
MAX_ROW_RANGE = numerics.SAFE_MAX


def unit_scales(ctx: MilpContext) -> dict[str, float]:
    """Typical magnitude of each unit for this instance, the one decision shared with the range
    check (:func:`formulation.numerics.unit_scales`: the best single-device placement's latency,
    energy, cost and memory, so that HiGHS's absolute tolerances are relative to a good answer); those
    the builder set in ``ctx.units`` where it did (version-2 workloads, :mod:`formulation.milp.workload`)."""
    if ctx.units is not None:
        return dict(ctx.units)
    return numerics.unit_scales(ctx.inst)


@dataclass
class Scaling:
    """A scaled copy of the model: ``x_si = col_scale * x``, row ``i`` divided by ``row_scale[i]``.

    Attributes
    ----------
    A : csr_matrix
        Scaled constraint matrix.
    col_lb, col_ub, row_lb, row_ub : arrays
        Scaled bounds.
    integer : bool array
    """

    A: sp.csr_matrix
    col_lb: FloatArray
    col_ub: FloatArray
    row_lb: FloatArray
    row_ub: FloatArray
    integer: np.ndarray
    col_scale: FloatArray
    row_scale: FloatArray

    def cost(self, c_si: FloatArray) -> tuple[FloatArray, float]:
        """Scaled objective vector for the SI objective ``c_si`` and the objective scale ``w``.

        The solver minimises ``c_scaled . x_scaled = (c_si . x_si) / w``.
        """
        c = c_si * self.col_scale
        w = float(np.abs(c).max(initial=0.0))
        w = w if w > 0 else 1.0
        return c / w, w

    def to_si(self, x_scaled: FloatArray) -> FloatArray:
        """Column values in SI units."""
        return np.asarray(x_scaled, dtype=float) * self.col_scale

    def from_si(self, x_si: FloatArray) -> FloatArray:
        """Column values in solver units."""
        return np.asarray(x_si, dtype=float) / self.col_scale

    def bound_to_scaled(self, col: int, value_si: float) -> float:
        """A column bound in solver units."""
        return value_si / float(self.col_scale[col])


def row_scales(A: sp.csr_matrix, quantity: np.ndarray) -> FloatArray:
    """The divisor of each row of the column-scaled matrix ``A`` (see the module docstring).

    ``quantity[j]`` says whether column ``j`` carries a unit. A row with such a column is divided by
    ``max(max_j |a_ij| over those columns, max_j |a_ij| / MAX_ROW_RANGE)``, any other row by its
    largest coefficient, an empty row by one.
    """
    absA = abs(A).tocsr()
    row_max = np.zeros(A.shape[0])
    q_max = np.zeros(A.shape[0])
    if A.nnz:
        row_max = np.asarray(absA.max(axis=1).todense()).ravel()
        q_max = np.asarray((absA @ sp.diags(quantity.astype(float))).max(axis=1).todense()).ravel()
    scale = np.where(q_max > 0, np.maximum(q_max, row_max / MAX_ROW_RANGE), row_max)
    return np.where(scale > 0, scale, 1.0)


def scale_model(ctx: MilpContext) -> Scaling:
    """Scale ``ctx.model`` (see the module docstring)."""
    m = ctx.model
    units = unit_scales(ctx)
    col_scale = np.array([units[u] for u in m.units()], dtype=float)
    A = m.matrix().tocsr()
    A = (A @ sp.diags(col_scale)).tocsr()
    row_scale = row_scales(A, np.array([u != "1" for u in m.units()], dtype=bool))
    A = (sp.diags(1.0 / row_scale) @ A).tocsr()
    with np.errstate(invalid="ignore"):
        return Scaling(
            A=A,
            col_lb=m.col_lb() / col_scale,
            col_ub=m.col_ub() / col_scale,
            row_lb=m.row_lb() / row_scale,
            row_ub=m.row_ub() / row_scale,
            integer=m.integrality(),
            col_scale=col_scale,
            row_scale=row_scale,
        )
