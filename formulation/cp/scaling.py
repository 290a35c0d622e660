"""Integer scaling for CP-SAT: the one place where floats become integers, with error bounds.

CP-SAT (Perron and Didier, Google OR-Tools, 2024) accepts only integer coefficients and domains.
Every float of the cost model passes through this module:

* **times** that must be variables (the parallel schedule, the period, parallel idle times) become
  integer *ticks* of ``1 / ticks_per_s`` seconds, ``ticks_per_s`` being the largest power of ten
  that keeps the time span of interest below ``ticks_max`` (:func:`ticks_max_for`) ticks. The span
  is an upper bound on the makespan/period of any solution as good as the solution hint when one
  is known, else the worst-case horizon; start times may range over the whole worst-case horizon
  (at most :data:`DOMAIN_LIMIT` ticks). Powers of ten keep "nice" data (milliseconds,
  microseconds) exact;
* **linear forms** with float coefficients (sequential latency, energy, cost, weighted sums, and
  the per-tick value of tick variables) are multiplied by a power-of-ten scale ``S`` and rounded
  (:func:`integerize`). ``S`` is the smallest power of ten whose coefficient rounding error is
  below :data:`COEF_RTOL` of the form's magnitude, but never so large that ``sum |coef| * ub``
  exceeds :data:`UNITS_LIMIT` (CP-SAT rejects models that could overflow 64-bit integers);
* **bytes** (memory) are counted in units of a power of two (one byte unless the totals are huge),
  rounded *up* for demands and *down* for capacities, so a placement the model accepts never
  exceeds a memory limit.

Every rounding is accounted for. :class:`FloatForm` carries ``model_error``, a bound on the
difference between the cost-model value of a metric and the value of the form (from rounding
durations to ticks); :func:`integerize` adds the coefficient rounding. The resulting
:attr:`IntegerForm.error` is a *worst-case* bound valid for every assignment:
``|true value - integer value / S - constant| <= error``. Constraints ``form <= rhs`` are imposed
with that margin (:func:`add_upper_bound`), so the model never accepts a placement the evaluator
rejects.

Precision is a budget of 64-bit digits shared between time and coefficients: a tick variable of
horizon ``H`` ticks with an arbitrary per-tick coefficient (idle power, an odd weight) resolves
that coefficient only to about ``H / UNITS_LIMIT``. :func:`ticks_max_for` therefore uses a fine
tick (horizon ~1e12 ticks) when every per-tick coefficient is a short decimal, and a coarse one
(~1e9 ticks) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from formulation.model import FloatArray, IntArray

#: Time horizon in ticks when every per-tick coefficient is a short decimal (exact at any scale).
TIME_TICKS_FINE = 1e12
#: Time horizon in ticks when some per-tick coefficient is arbitrary (digits go to the coefficient).
TIME_TICKS_COARSE = 1e9
#: Largest tick value of any variable domain (start times span the worst-case horizon).
DOMAIN_LIMIT = 1e14
#: Largest ``sum |integer coef| * ub`` of a scaled form. CP-SAT's overflow check is near 4e18, but
#: its presolve computes in doubles: with OR-Tools 9.15 a budget constraint whose coefficients
#: summed to ~1.3e16 (above 2**53) was presolved wrongly and a feasible, better placement was lost
#: (reproduced in tests/test_cpsat_scaling.py). Staying below 2**53 with room for sums avoids it.
UNITS_LIMIT = 1e15
#: Target coefficient rounding error of :func:`integerize`, relative to the form's magnitude.
COEF_RTOL = 1e-10
#: Digits after the decimal point of a per-second coefficient that :func:`ticks_max_for` deems short.
SHORT_DECIMAL_DIGITS = 6
#: Largest byte total counted in single bytes; above it bytes are counted in powers of two.
BYTES_MAX = float(2**40)
#: Relative tolerance of the evaluator's constraint checks (deadline, budgets, memory).
FEASIBILITY_RTOL = 1e-9


def power_of_ten_scale(upper: float, target: float) -> float:
    """The largest ``10**k`` with ``upper * 10**k <= target`` (``1.0`` when ``upper`` is not positive).

    Parameters
    ----------
    upper : float
        Largest magnitude that will be scaled.
    target : float
        Largest scaled magnitude allowed.
    """
    if not (upper > 0 and math.isfinite(upper)):
        return 1.0
    return float(10.0 ** math.floor(math.log10(target / upper)))


def round_to_ticks(seconds: FloatArray | float, ticks_per_s: float, up: bool = True) -> tuple[IntArray, FloatArray]:
    """Round durations to integer ticks, up (default) or down (up to float noise of 1e-12 relative).

    Rounding durations up makes every path of the model at least as long as the true one, so a
    makespan or period in ticks never under-estimates the true value (a deadline needs no margin);
    busy times in the idle term are rounded down, so the idle time is never under-estimated either
    (an energy budget needs no margin). Zero and "nice" durations stay exact both ways.

    Returns
    -------
    ticks : int array
        ``ceil`` (or ``floor``) of ``seconds * ticks_per_s`` (0 where the input is not finite).
    error_s : float array
        ``|ticks / ticks_per_s - seconds|``, the rounding error in seconds (0 where not finite).
    """
    sec = np.asarray(seconds, dtype=np.float64)
    finite = np.isfinite(sec)
    scaled = np.where(finite, sec * ticks_per_s, 0.0)
    noise = 1e-12 * np.abs(scaled)
    ticks = (np.ceil(scaled - noise) if up else np.floor(scaled + noise)).astype(np.int64)
    err = np.abs(ticks - scaled) / ticks_per_s
    return ticks, err


def ticks_at_least(seconds: float, ticks_per_s: float) -> int:
    """``ceil(seconds * ticks_per_s)``: a tick count not below ``seconds``."""
    return math.ceil(seconds * ticks_per_s)


@dataclass(frozen=True)
class ByteUnit:
    """Bytes counted in units of ``unit`` bytes (a power of two), demands up, capacities down."""

    unit: float

    @staticmethod
    def choose(total_bytes: float) -> ByteUnit:
        """One byte when ``total_bytes <= BYTES_MAX``, else the smallest power of two keeping it there."""
        if not (total_bytes > BYTES_MAX and math.isfinite(total_bytes)):
            return ByteUnit(1.0)
        return ByteUnit(float(2.0 ** math.ceil(math.log2(total_bytes / BYTES_MAX))))

    def demand(self, nbytes: float) -> int:
        """A demand in units, rounded up (never under-counts)."""
        return math.ceil(nbytes / self.unit)

    def capacity(self, nbytes: float) -> int:
        """A capacity in units with the evaluator's tolerance, rounded down (never over-grants)."""
        return math.floor(nbytes * (1 + FEASIBILITY_RTOL) / self.unit)


@dataclass
class FloatForm:
    """A linear form ``constant + sum coef * var`` in a float unit (s, J, USD, objective units).

    Attributes
    ----------
    terms : list of (IntVar, float, int)
        Variable, coefficient per unit of the variable (a boolean, or a count of ticks), and an
        upper bound on the variable's value (used by the error bound and the scale choice).
    constant : float
        Kept in floats, never scaled.
    model_error : float
        Bound on ``|cost-model value - form value|`` over all assignments (from tick rounding).
    under : float
        Bound on ``cost-model value - form value`` (how much the form may under-estimate; ticks
        are rounded up, so a makespan or period never does).
    """

    terms: list[tuple[cp_model.IntVar, float, int]] = field(default_factory=list)
    constant: float = 0.0
    model_error: float = 0.0
    under: float = 0.0

    def add_terms(self, variables: Iterable[cp_model.IntVar | bool], coefs: Iterable[float], ub: int = 1) -> None:
        """Append ``coef * var`` terms (zero coefficients are dropped; constant literals go to the
        constant)."""
        for var, c in zip(variables, coefs, strict=True):
            if not c:
                continue
            if isinstance(var, bool):
                self.constant += float(c) * var
            else:
                self.terms.append((var, float(c), int(ub)))

    def plus(self, other: FloatForm, weight: float = 1.0) -> FloatForm:
        """``self + weight * other`` as a new form (errors add with ``|weight|``; a negative weight
        turns the other form's over-estimate into an under-estimate)."""
        return FloatForm(
            self.terms + [(v, weight * c, ub) for v, c, ub in other.terms if weight * c],
            self.constant + weight * other.constant,
            self.model_error + abs(weight) * other.model_error,
            self.under + (weight * other.under if weight >= 0 else -weight * other.model_error),
        )

    def magnitude(self) -> float:
        """Upper bound on ``|form - constant|``: ``sum |coef| * ub``."""
        return float(sum(abs(c) * ub for _, c, ub in self.terms))


@dataclass(frozen=True)
class IntegerForm:
    """A :class:`FloatForm` scaled to integers: ``value ~= (sum coefs * vars) / scale + constant``.

    Attributes
    ----------
    variables, coefs : list
        The CP-SAT variables and their integer coefficients (duplicates merged).
    scale : float
        Integer units per float unit.
    constant : float
        The float constant (not scaled).
    error : float
        Worst-case ``|true value - value()|`` in float units: the form's model error plus
        ``sum |coef - round(coef * scale) / scale| * ub`` over its terms.
    ubs : tuple of int
        Upper bounds of the variables (all variables are non-negative).
    """

    variables: tuple[cp_model.IntVar, ...]
    coefs: tuple[int, ...]
    scale: float
    constant: float
    error: float
    ubs: tuple[int, ...] = ()

    def integer_range(self) -> tuple[int, int]:
        """Smallest and largest value :attr:`expr` can take (variables in ``[0, ub]``)."""
        lo = sum(c * ub for c, ub in zip(self.coefs, self.ubs, strict=True) if c < 0)
        hi = sum(c * ub for c, ub in zip(self.coefs, self.ubs, strict=True) if c > 0)
        return lo, hi

    @property
    def expr(self) -> cp_model.LinearExpr:
        """The integer linear expression for CP-SAT."""
        return cp_model.LinearExpr.weighted_sum(list(self.variables), list(self.coefs))

    def integer_value(self, value_of: Callable[[cp_model.IntVar], int]) -> int:
        """``sum coefs * value_of(var)`` (exact integer arithmetic)."""
        return sum(c * int(value_of(v)) for v, c in zip(self.variables, self.coefs, strict=True))

    def to_float(self, integer_value: float) -> float:
        """An integer value of :attr:`expr` (or a bound on it) back in float units."""
        return integer_value / self.scale + self.constant


def integerize(
    form: FloatForm, limit: float = UNITS_LIMIT, rtol: float = COEF_RTOL, round_up: bool = False
) -> IntegerForm:
    """Scale a float form to integers with a power-of-ten scale and a worst-case error bound.

    The scale is the smallest power of ten (from the one that maps the form's magnitude to ~1e6)
    whose coefficient rounding error ``sum |coef - round(coef * S) / S| * ub`` is at most
    ``rtol`` times the magnitude, capped so that the scaled magnitude stays below ``limit``.

    Parameters
    ----------
    form : FloatForm
    limit : float
        Largest ``sum |integer coef| * ub``.
    rtol : float
        Target coefficient rounding error relative to the form's magnitude.
    round_up : bool
        Round every coefficient up instead of to the nearest integer (up to float noise of
        ``1e-9`` relative), so that ``integer value / S >= form value`` for non-negative variables:
        the safe direction for ``form <= rhs`` (:func:`add_upper_bound`).
    """
    merged: dict[int, tuple[cp_model.IntVar, float, int]] = {}
    for var, coef, bound in form.terms:
        _, c0, b0 = merged.get(var.index, (var, 0.0, 0))
        merged[var.index] = (var, c0 + coef, max(b0, bound))
    items = [m for m in merged.values() if m[1]]
    c = np.array([m[1] for m in items], dtype=np.float64)
    ub = np.array([m[2] for m in items], dtype=np.float64)
    magnitude = float(np.abs(c) @ ub) if items else 0.0
    top = power_of_ten_scale(magnitude, limit)
    scale = min(power_of_ten_scale(magnitude, 1e6), top)

    def to_int(x: FloatArray) -> FloatArray:
        if round_up:
            return np.ceil(x - 1e-9 * np.abs(x))
        return np.rint(x)

    while True:
        rounding = float(np.abs(c - to_int(c * scale) / scale) @ ub) if items else 0.0
        if rounding <= rtol * magnitude or scale >= top:
            break
        scale *= 10.0
    ic = to_int(c * scale).astype(np.int64)
    keep = ic != 0
    return IntegerForm(
        tuple(m[0] for m, k in zip(items, keep, strict=True) if k),
        tuple(int(x) for x in ic[keep]),
        scale,
        form.constant,
        form.model_error + rounding,
        tuple(int(m[2]) for m, k in zip(items, keep, strict=True) if k),
    )


def is_short_decimal(value: float, digits: int = SHORT_DECIMAL_DIGITS) -> bool:
    """``value`` has at most ``digits`` digits after the decimal point (up to float noise)."""
    scaled = value * 10.0**digits
    return abs(scaled - round(scaled)) <= 1e-9 * max(1.0, abs(scaled))


def ticks_max_for(per_second_coefs: Iterable[float]) -> float:
    """:data:`TIME_TICKS_FINE` when every coefficient of a tick variable (per second) is a short
    decimal, else :data:`TIME_TICKS_COARSE` (see the module docstring)."""
    if all(is_short_decimal(c) for c in per_second_coefs):
        return TIME_TICKS_FINE
    return TIME_TICKS_COARSE


def add_upper_bound(model: cp_model.CpModel, form: FloatForm, rhs: float, atol: float = 0.0) -> int:
    """Impose ``form <= rhs`` (with the evaluator's tolerance) safely despite rounding.

    Coefficients are rounded *up* (:func:`integerize` with ``round_up``), so the integer value
    over-estimates the form's value; the form's possible under-estimate of the true value
    (``under``, from tick rounding) is subtracted from the right-hand side:
    ``integer <= floor(S * (rhs * (1 + FEASIBILITY_RTOL) + atol - constant - under))``. The model
    therefore never admits a placement the evaluator rejects; it may reject placements within the
    rounding of the limit (documented in ``docs/cpsat.md``). Latency (sequential, or a parallel
    makespan of rounded-up ticks) is never under-estimated, so a deadline of exactly 0 or exactly
    a placement's latency stays reachable, and so does an energy budget in sequential mode.

    Returns
    -------
    int
        The integer right-hand side used (0 and no constraint when ``rhs`` is +inf or NaN).
    """
    if not math.isfinite(rhs):
        # +inf bounds nothing; a NaN limit never compares as violated in the evaluator either.
        if rhs == -math.inf:
            model.add_bool_or([False])
        return 0
    ints = integerize(form, round_up=True)
    slack = rhs * (1 + FEASIBILITY_RTOL) + atol - form.constant - form.under
    limit = math.floor(slack * ints.scale)
    # A small form against a large limit can put the limit beyond 64 bits: decide such rows here.
    lo, hi = ints.integer_range()
    if limit < lo:
        model.add_bool_or([False])
    elif limit < hi:
        model.add(ints.expr <= limit)
    return int(limit)
