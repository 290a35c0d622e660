"""A backend-neutral mixed-integer linear program: named variable blocks and named row blocks.

Every builder of :mod:`formulation.milp` writes into one :class:`LinearModel`; the backends of
:mod:`solvers.milp` hand the same matrix to HiGHS directly (``highspy.Highs.passModel``) or build a
Pyomo model from it for any Pyomo-reachable solver, and :mod:`formulation.milp.lpwriter` prints it as
LP text. Writing the mathematics once and emitting it several ways is what keeps the direct HiGHS
path and the Pyomo path equal by construction (they are also tested equal on the golden instances).

The model is a minimisation ``min c^T x + c0`` subject to ``row_lb <= A x <= row_ub`` and
``col_lb <= x <= col_ub``, some columns integer. Every column carries a *unit* tag (``time``,
``energy``, ``cost``, ``bytes`` or ``1``) so that :mod:`solvers.milp.scaling` can rescale it; all
coefficients are SI (seconds, joules, USD, bytes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from formulation.model import FloatArray, IntArray

INF = math.inf
UNITS = ("1", "time", "energy", "cost", "bytes")

_SAFE = re.compile(r"[^A-Za-z0-9_.]")


def safe_names(ids: Sequence[str]) -> list[str]:
    """Identifiers made safe for LP/MPS names (letters, digits, ``_`` and ``.``), kept unique.

    Characters outside that set become ``_``; a collision (two ids mapping to the same text) is
    resolved by suffixing the position, so names stay unique and deterministic.
    """
    out: list[str] = []
    seen: set[str] = set()
    for i, s in enumerate(ids):
        name = _SAFE.sub("_", s) or f"_{i}"
        if name[0].isdigit() or name[0] == ".":
            name = "_" + name
        if name in seen:
            name = f"{name}__{i}"
        seen.add(name)
        out.append(name)
    return out


@dataclass(frozen=True)
class Block:
    """A contiguous range of columns or rows created by one builder call."""

    name: str
    start: int
    stop: int

    @property
    def indices(self) -> IntArray:
        """Indices of the block's columns or rows."""
        return np.arange(self.start, self.stop, dtype=np.int64)


class LinearModel:
    """A MILP under construction (see the module docstring).

    Parameters
    ----------
    name : str
        Model name (printed in LP files).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.col_names: list[str] = []
        self._col_lb: list[FloatArray] = []
        self._col_ub: list[FloatArray] = []
        self._col_int: list[npt.NDArray[np.bool_]] = []
        self._col_unit: list[str] = []
        self.col_blocks: dict[str, Block] = {}
        self.row_names: list[str] = []
        self._row_lb: list[FloatArray] = []
        self._row_ub: list[FloatArray] = []
        self._coo_r: list[IntArray] = []
        self._coo_c: list[IntArray] = []
        self._coo_v: list[FloatArray] = []
        self.row_blocks: dict[str, Block] = {}
        self.objective: dict[int, float] = {}
        self.objective_constant = 0.0
        self.infeasible_reasons: list[str] = []
        """Reasons the model is infeasible whatever the values (e.g. a layer with no device)."""

    # -- columns ------------------------------------------------------------------------------
    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return len(self.col_names)

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.row_names)

    def add_vars(
        self,
        block: str,
        labels: Sequence[str],
        lb: float | npt.ArrayLike = 0.0,
        ub: float | npt.ArrayLike = INF,
        *,
        integer: bool = False,
        unit: str = "1",
    ) -> IntArray:
        """Add one column per label, named ``block(label)``; return their indices.

        Raises
        ------
        ValueError
            On an unknown unit or a block name used twice.
        """
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; expected one of {UNITS}")
        if block in self.col_blocks:
            raise ValueError(f"variable block {block!r} added twice")
        n = len(labels)
        start = self.n_cols
        self.col_names.extend(f"{block}({lab})" if lab else block for lab in labels)
        self._col_lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy())
        self._col_ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy())
        self._col_int.append(np.full(n, integer))
        self._col_unit.extend([unit] * n)
        self.col_blocks[block] = Block(block, start, start + n)
        return np.arange(start, start + n, dtype=np.int64)

    def add_var(self, name: str, lb: float = 0.0, ub: float = INF, *, integer: bool = False, unit: str = "1") -> int:
        """Add one scalar column named ``name``."""
        return int(self.add_vars(name, [""], lb, ub, integer=integer, unit=unit)[0])

    def tighten_ub(self, col: int, ub: float) -> None:
        """Lower the upper bound of column ``col`` to ``ub`` (never raises it)."""
        for i, blk in enumerate(self.col_blocks.values()):
            if blk.start <= col < blk.stop:
                arr = self._col_ub[i]
                arr[col - blk.start] = min(arr[col - blk.start], ub)
                return
        raise IndexError(f"no column {col}")

    # -- rows ---------------------------------------------------------------------------------
    def add_rows(
        self,
        block: str,
        labels: Sequence[str],
        row: npt.ArrayLike,
        col: npt.ArrayLike,
        val: npt.ArrayLike,
        lb: float | npt.ArrayLike = -INF,
        ub: float | npt.ArrayLike = INF,
    ) -> IntArray:
        """Add rows ``lb <= sum val * x[col] <= ub`` given in coordinate form.

        Parameters
        ----------
        block : str
            Block name; rows are named ``block(label)``.
        labels : sequence of str
            One label per row.
        row, col, val : array_like
            Triplets: ``row`` indexes ``labels`` (0-based within this call), ``col`` a column.
            Repeated ``(row, col)`` pairs are summed.
        lb, ub : float or array_like
            Row bounds (scalars broadcast).

        Raises
        ------
        ValueError
            On a block name used twice or an out-of-range index.
        """
        if block in self.row_blocks:
            raise ValueError(f"row block {block!r} added twice")
        n = len(labels)
        r = np.asarray(row, dtype=np.int64)
        c = np.asarray(col, dtype=np.int64)
        v = np.asarray(val, dtype=float)
        if r.size and (r.min() < 0 or r.max() >= n or c.min() < 0 or c.max() >= self.n_cols):
            raise ValueError(f"row block {block!r}: index out of range")
        start = self.n_rows
        self.row_names.extend(f"{block}({lab})" if lab else block for lab in labels)
        self._row_lb.append(np.broadcast_to(np.asarray(lb, dtype=float), (n,)).copy())
        self._row_ub.append(np.broadcast_to(np.asarray(ub, dtype=float), (n,)).copy())
        keep = v != 0.0
        self._coo_r.append(r[keep] + start)
        self._coo_c.append(c[keep])
        self._coo_v.append(v[keep])
        self.row_blocks[block] = Block(block, start, start + n)
        return np.arange(start, start + n, dtype=np.int64)

    def add_term_rows(
        self,
        block: str,
        rows: Sequence[tuple[str, Sequence[tuple[int, float]]]],
        lb: float | npt.ArrayLike = -INF,
        ub: float | npt.ArrayLike = INF,
    ) -> IntArray:
        """Add rows given as ``(label, [(col, coef), ...])`` pairs (bounds broadcast as in :meth:`add_rows`)."""
        r = [i for i, (_, terms) in enumerate(rows) for _ in terms]
        c = [col for _, terms in rows for col, _ in terms]
        v = [val for _, terms in rows for _, val in terms]
        return self.add_rows(block, [lab for lab, _ in rows], r, c, v, lb, ub)

    def add_row(self, name: str, terms: Iterable[tuple[int, float]], lb: float = -INF, ub: float = INF) -> int:
        """Add one row ``lb <= sum coef * x[col] <= ub`` from ``(col, coef)`` terms."""
        tl = list(terms)
        cols = [c for c, _ in tl]
        vals = [v for _, v in tl]
        return int(self.add_rows(name, [""], np.zeros(len(tl), dtype=np.int64), cols, vals, lb, ub)[0])

    # -- objective ----------------------------------------------------------------------------
    def add_objective(self, terms: Iterable[tuple[int, float]], constant: float = 0.0) -> None:
        """Add ``sum coef * x[col] + constant`` to the objective."""
        for c, v in terms:
            self.objective[c] = self.objective.get(c, 0.0) + v
        self.objective_constant += constant

    # -- frozen views -------------------------------------------------------------------------
    def col_lb(self) -> FloatArray:
        """Lower bounds of all columns."""
        return np.concatenate(self._col_lb) if self._col_lb else np.zeros(0)

    def col_ub(self) -> FloatArray:
        """Upper bounds of all columns."""
        return np.concatenate(self._col_ub) if self._col_ub else np.zeros(0)

    def integrality(self) -> npt.NDArray[np.bool_]:
        """True for integer columns."""
        return np.concatenate(self._col_int) if self._col_int else np.zeros(0, dtype=bool)

    def units(self) -> list[str]:
        """Unit tag of every column."""
        return list(self._col_unit)

    def row_lb(self) -> FloatArray:
        """Lower bounds of all rows."""
        return np.concatenate(self._row_lb) if self._row_lb else np.zeros(0)

    def row_ub(self) -> FloatArray:
        """Upper bounds of all rows."""
        return np.concatenate(self._row_ub) if self._row_ub else np.zeros(0)

    def cost(self) -> FloatArray:
        """Dense objective vector."""
        c = np.zeros(self.n_cols)
        for j, v in self.objective.items():
            c[j] += v
        return c

    def matrix(self) -> sp.csr_matrix:
        """The constraint matrix (duplicates summed, explicit zeros dropped)."""
        if not self._coo_r:
            return sp.csr_matrix((0, self.n_cols))
        A = sp.coo_matrix(
            (np.concatenate(self._coo_v), (np.concatenate(self._coo_r), np.concatenate(self._coo_c))),
            shape=(self.n_rows, self.n_cols),
        ).tocsr()
        A.sum_duplicates()
        A.eliminate_zeros()
        return A

    def col(self, name: str) -> int:
        """Index of a scalar column by its full name (e.g. ``latency``)."""
        blk = self.col_blocks[name]
        return blk.start

    def stats(self) -> dict[str, int]:
        """Size of the model: columns, integer columns, rows, nonzeros."""
        return {
            "columns": self.n_cols,
            "integer_columns": int(self.integrality().sum()),
            "rows": self.n_rows,
            "nonzeros": int(self.matrix().nnz),
        }
