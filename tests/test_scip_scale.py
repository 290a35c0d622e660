"""``scip`` where the optimum lies far below the scales of the single-device placements.

The instance (found by the extreme-magnitude property test, tests/test_numerics_property.py): layer
``L0`` may run on ``d1`` only, so every single-device placement is excluded, and the fastest-device
placement sends ``in1`` over the link d0->d1 of bandwidth ``b``; its latency ``1 / b`` s sets the
time scale of the model. The optimum runs ``L1`` and ``L2`` on ``d0`` one after the other,
``(1 + 1e8) FLOP / 9.99976974414163 FLOP/s = 10000230.36116257 s``, with ``L0`` on ``d1`` alongside
(0 B in, 1e-9 s, 1 B back in 1e-6 s). With ``b = 10**-15.5`` the optimum is 3e-9 of the time scale,
below SCIP's tolerances: SCIP read its bound as 0 and the result was ``feasible`` (gap 1) at the
right value; with ``b = 5.1e-35`` the integer-fixed LP read 0 s. Solved again at the scales of the
placement found, the link would take more than 1e6 times the new time scale, so ``scip`` refuses
the instance (the bad-input error) naming that bandwidth.
"""

from __future__ import annotations

import math

import pytest

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from formulation.numerics import NumericallyUnsafe
from solvers.options import SolverOptions
from solvers.registry import get_solver
from solvers.result import Status

#: The optimum of every instance below (module docstring).
OPTIMUM = (1e8 + 1.0) / 9.99976974414163


def instance(bandwidth: float, l2_output_bytes: float = 1e5) -> Instance:
    """The property test's instance with the link d0->d1 at ``bandwidth`` B/s."""
    g = Graph(
        "g",
        [ModelInput("in0", 0.0), ModelInput("in1", 1.0)],
        [
            Layer("L0", "op", ("in0",), 1.0, output_bytes=1.0, param_bytes=1.0, workspace_bytes=1.0),
            Layer("L1", "op", ("in1",), 1.0, output_bytes=1.0, param_bytes=1.0, workspace_bytes=1.0),
            Layer("L2", "op", ("in1",), 1e8, output_bytes=l2_output_bytes, param_bytes=1e6, workspace_bytes=1.0),
        ],
        ["L0", "L1", "L2"],
    )
    s = System(
        [
            Device("d0", 9.99976974414163, power_active_w=2.1716726049892187e-230, price_usd_per_s=0.5),
            Device("d1", 1e9, memory_bytes=1000.0, power_active_w=2.0, price_usd_per_s=1.0, trusted=False),
        ],
        [Link("d0", "d1", bandwidth, price_usd_per_byte=1e-299), Link("d1", "d0", 1e6)],
        "d0",
        "d0",
    )
    problem = Problem(
        Objective("latency"),
        execution="parallel",
        energy_scope=("d0",),
        constraints=Constraints(memory=False, allowed={"L0": ("d1",)}),
    )
    return Instance("scale", g, s, problem)


@pytest.mark.parametrize("bandwidth", [10**-15.5, 5.14154662814098e-35])
def test_optimum_below_the_tolerances_is_refused(bandwidth: float) -> None:
    """Formerly ``feasible`` at brute's value (gap 1) or an error (LP value 0): now the bad-input error."""
    inst = instance(bandwidth)
    ref = get_solver("brute").solve(inst)
    assert ref.status == Status.OPTIMAL and ref.objective == pytest.approx(OPTIMUM, rel=1e-12)
    assert ref.placement == {"L0": "d1", "L1": "d0", "L2": "d0"}
    with pytest.raises(NumericallyUnsafe) as err:
        get_solver("scip").solve(inst, SolverOptions(time_limit_s=20))
    assert err.value.path == "system.links[d0->d1].bandwidth"
    assert err.value.value == bandwidth
    assert "at the scales of the best placement found" in str(err.value)


def test_optimum_far_below_the_scale_is_solved_again_at_its_own() -> None:
    """Time scale 1e11 s, optimum 1e7 s: solved again at the found placement's scale and proven."""
    inst = instance(1e-11, l2_output_bytes=1.0)
    res = get_solver("scip").solve(inst, SolverOptions(time_limit_s=20))
    assert res.status == Status.OPTIMAL
    assert math.isclose(res.objective or math.nan, OPTIMUM, rel_tol=1e-9)
    assert res.gap <= 1e-6
    assert res.extra["rescaled"][0]["time"] == pytest.approx(OPTIMUM, rel=1e-9)


def test_optimum_near_the_scale_keeps_its_first_proof() -> None:
    """Time scale 1e11 s, optimum 1e7 s: at the optimum's scale the link would move the largest tensor
    (1e5 B) in 1e16 s, out of range, so there is no second solve; the first one proved the optimum."""
    inst = instance(1e-11)
    res = get_solver("scip").solve(inst, SolverOptions(time_limit_s=20))
    assert res.status == Status.OPTIMAL
    assert math.isclose(res.objective or math.nan, OPTIMUM, rel_tol=1e-9)
    assert "rescaled" not in res.extra
