"""The MILP engines on extreme-magnitude instances found by the property test (tests/test_numerics_property.py).

Three defects, each with its instance:

1. The optimum far below the scales of the single-device placements (the instance of
   tests/test_scip_scale.py): ``highs`` and ``pyomo:*`` returned ``feasible`` with gap 1 or an
   objective of 0 the evaluator contradicts, as ``scip`` did; every MILP engine now solves again at
   the scales of the placement found (solvers/milp/rescale.py) or refuses. ``cpsat``, whose bound
   read 0, reported ``optimal`` with gap 1: such a claim is now ``feasible``.
2. An energy optimum of exactly 0: the MILP's own value read 5e-11 J (the idle energy
   ``p_idle (L - busy)`` with the latency held to the tolerance of its scaled row), the evaluator 0,
   and the relative agreement check of 0 made it an error.
3. A 3 J energy budget against an energy scale of 4.8e40 J (no placement is feasible, so the scale
   is the longest time times the largest power, 1.8e31 W): the budget read 0 within the
   tolerances, and a placement using 1.3e9 J passed it; brute proves the instance infeasible. A
   budget or deadline below 1e-6 of its scale is now refused by the range check.
"""

from __future__ import annotations

import math

import pytest

from formulation.milp.build import build_milp
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from formulation.numerics import NumericallyUnsafe, check_range, prepare, unit_scales
from solvers.base import RawSolution, finalize
from solvers.options import SolverOptions
from solvers.registry import get_solver
from solvers.result import Status, Termination
from tests.test_scip_scale import OPTIMUM, instance

LIMIT = SolverOptions(time_limit_s=20)
MILP = ["highs", "scip", "pyomo:highs"]


# -- 1. optimum far below the single-device scales ---------------------------------------------------
@pytest.mark.parametrize("name", ["highs", "pyomo:highs"])
@pytest.mark.parametrize("bandwidth", [10**-15.5, 5.14154662814098e-35])
def test_optimum_below_the_tolerances_is_refused(name: str, bandwidth: float) -> None:
    """Formerly ``feasible`` with gap 1 (HiGHS read its bound as 0) or an error (the fixed LP read 0 s):
    at the scales of the optimum found (1e7 s) the link moves 1e5 B in more than 1e6 times that."""
    with pytest.raises(NumericallyUnsafe) as err:
        get_solver(name).solve(instance(bandwidth), LIMIT)
    assert err.value.path == "system.links[d0->d1].bandwidth"
    assert err.value.value == bandwidth
    assert f"where {name}'s tolerances cannot prove it" in str(err.value)


@pytest.mark.parametrize("name", ["highs", "pyomo:highs"])
def test_optimum_far_below_the_scale_is_proven_at_its_own(name: str) -> None:
    """Time scale 1e11 s (the link d0->d1 at 1e-11 B/s), optimum 1e7 s, below 1e-3 of it: the shared
    step solves again at the scales of the placement found, where the proof holds (gap 1e-8)."""
    res = get_solver(name).solve(instance(1e-11, l2_output_bytes=1.0), LIMIT)
    assert res.status == Status.OPTIMAL
    assert math.isclose(res.objective or math.nan, OPTIMUM, rel_tol=1e-9)
    assert res.gap <= 1e-6
    assert res.placement == {"L0": "d1", "L1": "d0", "L2": "d0"}
    assert res.extra["rescaled"][0]["time"] == pytest.approx(OPTIMUM, rel=1e-9)


def test_cpsat_bound_of_zero_is_not_optimal() -> None:
    """CP-SAT's rounding at the time scale 2e34 s covered the whole optimum (bound 0, formerly
    ``feasible`` with gap 1). The options beyond the hint's makespan cap are now left out of the
    model (the link at 5e-35 B/s among them), and the tick fits the optimum: proven at brute's value
    (more in tests/test_cpsat_extreme.py)."""
    inst = instance(5.14154662814098e-35)
    res = get_solver("cpsat").solve(inst, LIMIT)
    assert res.status == Status.OPTIMAL
    assert res.termination == Termination.OPTIMAL
    assert res.objective == pytest.approx(OPTIMUM, rel=1e-12)
    assert res.gap <= 1e-6


# -- 2. an energy optimum of exactly 0 ---------------------------------------------------------------
def zero_energy() -> Instance:
    """Energy on d0 (idle 0.5 W, active 0 W) with every layer on d0: busy the whole latency, 0 J."""
    g = Graph(
        "g",
        [ModelInput("in0", 1.0), ModelInput("in1", 1000.0)],
        [
            Layer("L0", "op", ("in0",), 4.863132287655979e-258, output_bytes=1.5135868517420322e-140,
                  param_bytes=3.305068399983917e-219, workspace_bytes=0.0),
            Layer("L1", "op", ("L0",), 1.0, output_bytes=1e4, param_bytes=1e5, workspace_bytes=1e4),
            Layer("L2", "op", ("L1", "in0"), 1.0, output_bytes=3.7940537462998954e-209, param_bytes=0.0,
                  workspace_bytes=1e4),
            Layer("L3", "op", ("L1",), 1e9, output_bytes=3.2462124137580125e-31, param_bytes=1e5, workspace_bytes=1e4),
        ],
        ["L2", "L3"],
    )
    s = System(
        [
            Device("d0", 1e10, memory_bytes=1e12, power_active_w=0.0, power_idle_w=0.5, price_usd_per_s=0.5,
                   trusted=True),
            Device("d1", 1e10, memory_bytes=1e12, power_active_w=0.0, power_idle_w=0.0, price_usd_per_s=0.5),
        ],
        [Link("d0", "d1", 1e6, latency_s=0.02, tx_power_w=1.0), Link("d1", "d0", 1e5, latency_s=0.02)],
        "d0",
        None,
    )
    problem = Problem(
        Objective("energy"),
        execution="parallel",
        energy_scope=("d0",),
        constraints=Constraints(
            memory=True, deadline_s=2.0, energy_budget_j={"d0": 2.51188643150958}, private=("L0",), max_devices=1
        ),
    )
    return Instance("zero-energy", g, s, problem)


ALL_ON_D0 = {"L0": "d0", "L1": "d0", "L2": "d0", "L3": "d0"}


@pytest.mark.parametrize("name", MILP)
def test_energy_optimum_of_zero_is_proven(name: str) -> None:
    """Formerly an error: the MILP's 5e-11 J against the evaluator's 0 J at relative tolerance 0."""
    inst = zero_energy()
    ref = get_solver("brute").solve(inst)
    assert ref.status == Status.OPTIMAL and ref.objective == 0.0 and ref.placement == ALL_ON_D0
    res = get_solver(name).solve(inst, LIMIT)
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == 0.0 and res.gap == 0.0
    assert res.placement == ALL_ON_D0
    assert abs(res.solver_objective or 0.0) < 1e-9


def test_agreement_tolerance_is_the_models_scale() -> None:
    """1e-6 of the objective at the unit scales (energy scale 0.1 J: 1e-7 J): 5e-11 J agrees with 0,
    1e-6 J does not."""
    from solvers.milp.highs_direct import HighsDirect

    inst = zero_energy()
    energy = unit_scales(inst)["energy"]
    assert energy == pytest.approx(0.1000000002, rel=1e-12)  # the latency 0.1 s of all-on-d0 times 1 W
    atol = HighsDirect(build_milp(prepare(inst, "highs")[0])).agreement_atol()
    assert atol == pytest.approx(1e-6 * energy, rel=1e-12)
    solver = get_solver("highs")
    agree = finalize(solver, inst, RawSolution(Termination.OPTIMAL, ALL_ON_D0, solver_objective=5e-11,
                                               agreement_atol=atol), LIMIT)
    assert agree.status == Status.OPTIMAL and agree.objective == 0.0
    differ = finalize(solver, inst, RawSolution(Termination.OPTIMAL, ALL_ON_D0, solver_objective=1e-6,
                                                agreement_atol=atol), LIMIT)
    assert differ.status == Status.ERROR
    assert "the solver reported objective 1e-06 but the evaluator gives 0.0" in differ.message


# -- 3. an energy budget far below the energy scale --------------------------------------------------
def tiny_budget(budget: float = 3.0) -> Instance:
    """Throughput with ``budget`` J on d0; L2 on d0 only, L0 (3e9 FLOP) on d1 only once d0's 5 W x 1.5 s
    exceeds the budget and d2's 1 B of memory holds nothing: d0 then idles 2.67e9 s at 0.5 W."""
    g = Graph(
        "g",
        [ModelInput("in0", 50000.0), ModelInput("in1", 1.125303301648191e-280)],
        [
            Layer("L0", "op", ("in0", "in1"), 3e9, output_bytes=1.0, param_bytes=1e5, workspace_bytes=1e4),
            Layer("L1", "op", ("in0", "in1"), 1e8, output_bytes=1.0, param_bytes=0.0, workspace_bytes=0.0),
            Layer("L2", "op", ("L1", "L0"), 1e8, output_bytes=4e5, param_bytes=1.856760518912583e-286,
                  workspace_bytes=1e4),
        ],
        ["L0", "L1", "L2"],
    )
    s = System(
        [
            Device("d0", 2e9, memory_bandwidth_bytes_per_s=1e8, memory_bytes=1.3118384460821743e225,
                   power_active_w=5.0, power_idle_w=0.5, price_usd_per_s=4.0337913676261935e-267, trusted=True),
            Device("d1", 1.1220184543019633, memory_bytes=1.5e6, power_active_w=5.0, power_idle_w=0.5,
                   price_usd_per_s=0.5, trusted=True),
            Device("d2", 9.303775766581421e118, memory_bandwidth_bytes_per_s=9.509834282979734e165, memory_bytes=1.0,
                   power_active_w=0.0, power_idle_w=2.468830779815309e-264, price_usd_per_s=1e-299, trusted=True),
        ],
        [
            Link("d0", "d1", 1e5, tx_power_w=1.0, rx_power_w=0.5),
            Link("d1", "d0", 1e6, latency_s=2.0308788733841442e-156, tx_power_w=1.0, rx_power_w=0.5),
            Link("d0", "d2", 1e6, latency_s=0.02, rx_power_w=0.00019582303216548054, price_usd_per_byte=1e-7),
            Link("d2", "d0", 6.659841909681845e187, latency_s=2.5758918919946887e-186, tx_power_w=1.8063128363549676e31,
                 price_usd_per_byte=1e-7),
            Link("d1", "d2", 1e5, latency_s=1e-300, tx_power_w=1.0),
            Link("d2", "d1", 1.0, latency_s=0.02, tx_power_w=0.0007674562764778101),
        ],
        "d0",
        None,
    )
    problem = Problem(
        Objective("throughput"),
        execution="parallel",
        constraints=Constraints(memory=True, energy_budget_j={"d0": budget}, allowed={"L2": ("d0",)}),
    )
    return Instance("tiny-budget", g, s, problem)


@pytest.mark.parametrize("name", [*MILP, "cpsat"])
def test_budget_below_the_energy_scale_is_refused(name: str) -> None:
    """Formerly an error (the placement found used 1.3e9 J against the 3 J budget): refused up front."""
    inst = tiny_budget()
    assert get_solver("brute").solve(inst).status == Status.INFEASIBLE
    with pytest.raises(NumericallyUnsafe) as err:
        get_solver(name).solve(inst, LIMIT)
    assert err.value.path == "constraints.energy_budget.d0"
    assert err.value.value == 3.0
    assert "at least 1/1e+06 of the energy scale 4.83e+40 J" in str(err.value)


def test_limits_at_their_scale_pass_the_range_check() -> None:
    """The threshold itself: a budget just above 1e-6 of the energy scale passes that check, and a
    deadline below 1e-6 of the time scale is refused before the budget is (above, the budget is)."""
    inst = tiny_budget()
    sc = unit_scales(inst)
    assert sc["time"] == pytest.approx(3e9 / 1.1220184543019633, rel=1e-12)  # L0 on d1, the longest time
    assert sc["energy"] == pytest.approx(sc["time"] * 1.8063128363549676e31, rel=1e-12)  # times d2's tx power
    at_scale = tiny_budget(1.01e-6 * sc["energy"])
    try:
        check_range(at_scale, "highs")
    except NumericallyUnsafe as exc:
        assert exc.path != "constraints.energy_budget.d0"
    c = inst.problem.constraints
    for deadline, refused in ((0.99e-6 * sc["time"], True), (1.01e-6 * sc["time"], False)):
        cons = Constraints(memory=True, deadline_s=deadline, energy_budget_j=c.energy_budget_j, allowed=c.allowed)
        timed = inst.with_problem(Problem(Objective("throughput"), execution="parallel", constraints=cons))
        try:
            check_range(timed, "highs")
            path = ""
        except NumericallyUnsafe as exc:
            path = exc.path
        assert path == ("constraints.deadline" if refused else "constraints.energy_budget.d0")
