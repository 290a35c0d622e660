"""The integer scaling of formulation/cp/scaling.py: scales, rounding, and worst-case error bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from formulation.cp.scaling import (
    TIME_TICKS_COARSE,
    TIME_TICKS_FINE,
    ByteUnit,
    FloatForm,
    add_upper_bound,
    integerize,
    is_short_decimal,
    power_of_ten_scale,
    round_to_ticks,
    ticks_max_for,
)


def test_power_of_ten_scale() -> None:
    # 3.2 * 1e8 = 3.2e8 <= 1e9 < 3.2e9.
    assert power_of_ten_scale(3.2, 1e9) == 1e8
    # 0.004 * 1e11 = 4e8 <= 1e9 < 4e9.
    assert power_of_ten_scale(0.004, 1e9) == 1e11
    assert power_of_ten_scale(0.0, 1e9) == 1.0
    assert power_of_ten_scale(math.inf, 1e9) == 1.0


def test_round_to_ticks_up_and_down() -> None:
    # At 1e9 ticks/s: 1.5 ms = 1,500,000 ticks exactly; 0.25 ns rounds up to 1 tick (error
    # 0.75 ns) or down to 0 (error 0.25 ns); 0.1 s is 1e8 ticks despite 0.1 * 1e9 float noise.
    ticks, err = round_to_ticks(np.array([1.5e-3, 0.0, 2.5e-10, 0.1, math.inf]), 1e9)
    assert ticks.tolist() == [1_500_000, 0, 1, 100_000_000, 0]
    assert err == pytest.approx([0.0, 0.0, 0.75e-9, 0.0, 0.0], abs=1e-18)
    ticks, err = round_to_ticks(np.array([1.5e-3, 2.5e-10]), 1e9, up=False)
    assert ticks.tolist() == [1_500_000, 0]
    assert err == pytest.approx([0.0, 0.25e-9], abs=1e-18)


def test_byte_unit() -> None:
    assert ByteUnit.choose(1e9).unit == 1.0
    # 2**42 bytes exceed 2**40: counted in units of 2**2 bytes.
    unit = ByteUnit.choose(2.0**42)
    assert unit.unit == 4.0
    assert unit.demand(10.0) == 3  # 10 / 4 = 2.5, up
    assert unit.capacity(10.0) == 2  # 10 (1 + 1e-9) / 4 = 2.5..., down
    assert ByteUnit(1.0).capacity(1650.0) == 1650


def test_short_decimals_choose_the_tick() -> None:
    assert is_short_decimal(0.05) and is_short_decimal(2.5) and not is_short_decimal(1 / 3)
    assert ticks_max_for([1.0, 0.5, 100.0]) == TIME_TICKS_FINE
    assert ticks_max_for([1.0, 1 / 3]) == TIME_TICKS_COARSE


def _form(model: cp_model.CpModel, coefs: list[float], ubs: list[int]) -> tuple[FloatForm, list[cp_model.IntVar]]:
    xs = [model.new_int_var(0, ub, f"v{i}") for i, ub in enumerate(ubs)]
    form = FloatForm()
    for x, c, ub in zip(xs, coefs, ubs, strict=True):
        form.add_terms([x], [c], ub=ub)
    return form, xs


def test_integerize_exact_decimals() -> None:
    """0.1 x + 0.25 y: magnitude 0.35; the first scale (1e6 / 0.35 -> 1e6) is exact."""
    model = cp_model.CpModel()
    form, _ = _form(model, [0.1, 0.25], [1, 1])
    ints = integerize(form)
    assert ints.scale == 1e6
    assert ints.coefs == (100_000, 250_000)
    assert ints.error == 0.0


def test_integerize_error_bound_of_an_odd_coefficient() -> None:
    """x * 2/7 with x <= 1: at scale S the rounding error is |2/7 - round(2S/7)/S| <= 1/(2S); the
    scale is the smallest power of ten bringing it to at most 1e-10 of the magnitude 2/7.
    At 1e9: 2e9/7 = 285714285.71 rounds to 285714286, error 0.29 / 1e9 = 2.9e-10 > 2.9e-11;
    at 1e10: 2857142857.14 rounds to 2857142857, error 0.14 / 1e10 = 1.4e-11 <= 2.9e-11."""
    model = cp_model.CpModel()
    form, _ = _form(model, [2 / 7], [1])
    ints = integerize(form)
    assert ints.scale == 1e10
    assert ints.coefs == (2_857_142_857,)
    assert ints.error == pytest.approx(abs(2 / 7 - 2_857_142_857 / 1e10))
    assert ints.error <= 1e-10 * 2 / 7


def test_constant_literals_go_to_the_constant() -> None:
    form = FloatForm()
    form.add_terms([True, False], [2.5, 7.0])
    assert form.constant == 2.5 and not form.terms


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(
    coefs=st.lists(st.floats(-1e3, 1e3, allow_nan=False).filter(lambda c: abs(c) > 1e-9), min_size=1, max_size=6),
    data=st.data(),
)
def test_worst_case_error_holds_for_every_assignment(coefs: list[float], data: st.DataObject) -> None:
    """|sum c_i v_i - integer value / S| <= error for random coefficients, bounds and values."""
    ubs = data.draw(st.lists(st.integers(1, 10**6), min_size=len(coefs), max_size=len(coefs)))
    model = cp_model.CpModel()
    form, xs = _form(model, coefs, ubs)
    ints = integerize(form)
    values = [data.draw(st.integers(0, ub)) for ub in ubs]
    by_index = {x.index: v for x, v in zip(xs, values, strict=True)}
    exact = sum(c * v for c, v in zip(coefs, values, strict=True))
    approx = ints.to_float(ints.integer_value(lambda var: by_index[var.index]))
    assert abs(exact - approx) <= ints.error * (1 + 1e-9) + 1e-12 * max(1.0, abs(exact))


def _feasible_with(form: FloatForm, model: cp_model.CpModel, xs: list[cp_model.IntVar], values: list[int]) -> bool:
    for x, v in zip(xs, values, strict=True):
        model.add(x == v)
    solver = cp_model.CpSolver()
    return solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)


def test_upper_bound_is_exact_at_the_limit_and_safe_beyond() -> None:
    """0.3 x + 0.7 y <= 1.0 admits x = y = 1 (exactly 1.0); <= 0.99999 does not; a budget of 0
    admits x = y = 0; an infinite limit adds nothing."""
    for rhs, values, ok in (
        (1.0, [1, 1], True),
        (0.99999, [1, 1], False),
        (0.0, [0, 0], True),
        (math.inf, [1, 1], True),
    ):
        model = cp_model.CpModel()
        form, xs = _form(model, [0.3, 0.7], [1, 1])
        add_upper_bound(model, form, rhs)
        assert _feasible_with(form, model, xs, values) is ok, rhs


def test_upper_bound_subtracts_the_underestimate() -> None:
    """A form that may under-estimate its metric by 0.1 must stay 0.1 below the limit."""
    model = cp_model.CpModel()
    form, xs = _form(model, [1.0], [10])
    form.under = 0.1
    limit = add_upper_bound(model, form, 5.0)
    assert limit / integerize(form, round_up=True).scale == pytest.approx(4.9, rel=1e-9)
    assert not _feasible_with(form, model, xs, [5])


def test_upper_bound_of_a_tiny_form_against_a_large_limit() -> None:
    """1e-12 x (x <= 5) against 1e6: the scale (~1e26) puts the limit beyond 64 bits; the row is
    redundant (the form is at most 5e-12) and must be dropped, not overflow. Against -1 it is
    infeasible."""
    model = cp_model.CpModel()
    form, xs = _form(model, [1e-12], [5])
    add_upper_bound(model, form, 1e6)
    assert not model.proto.constraints
    assert _feasible_with(form, model, xs, [5])
    model = cp_model.CpModel()
    form, xs = _form(model, [1e-12], [5])
    add_upper_bound(model, form, -1.0)
    assert not _feasible_with(form, model, xs, [0])
