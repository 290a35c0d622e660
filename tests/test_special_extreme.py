"""The additive exact algorithms (dp, mincut, shortest-path) on figures far apart in magnitude.

Hand-built instances of wrong answers once given on extreme magnitudes (1e-300 to 1e300): each
must give ``brute``'s optimum, prove infeasibility where ``brute`` finds no finite placement, or
refuse before solving with the bad-input error.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Literal

import pytest

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from formulation.numerics import NumericallyUnsafe
from solvers.registry import solve
from solvers.result import Result, Status

ADDITIVE = ("dp", "mincut", "shortest-path")
Kind = Literal["throughput", "energy", "cost"]


def _quiet_solve(inst: Instance, name: str) -> Result:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the instance's own tables overflow to inf
        return solve(inst, name)


def absorbed_stage(objective: Kind) -> Instance:
    """Chain x -> L0 -> L1, L1 allowed on d0 only; L0 would take 1e19 s on d0 and 0.1 s on d1.

    d0: 1 FLOP/s, 1 USD/s; d1: 1e20 FLOP/s, 0.1 USD/s. L0 = 1e19 FLOP, L1 = 1.5 FLOP; every tensor
    1 byte over 1 MB/s links, free. L1 runs 1.5 s on d0. Optimum L0 on d1, L1 on d0:

    * cost: 0.1 s * 0.1 USD/s + 1.5 s * 1 USD/s = 1.51 USD (L0 on d0 would cost 1e19 USD);
    * period: max(0.1 s, 1.5 s, 1e-6 s per transfer) = 1.5 s.

    Prefix sums over d0's column read L1's stage as (1e19 + 1.5) - 1e19 = 0: the 1.5 is lost.
    """
    g = Graph(
        "absorbed",
        [ModelInput("x", 1.0)],
        [Layer("L0", "op", ("x",), 1e19, output_bytes=1.0), Layer("L1", "op", ("L0",), 1.5, output_bytes=1.0)],
    )
    s = System(
        [Device("d0", 1.0, price_usd_per_s=1.0), Device("d1", 1e20, price_usd_per_s=0.1)],
        [Link("d0", "d1", 1e6), Link("d1", "d0", 1e6)],
        "d0",
        None,
    )
    cons = Constraints(memory=False, contiguous=True, allowed={"L1": ("d0",)})
    return Instance("absorbed", g, s, Problem(Objective(objective), constraints=cons))


@pytest.mark.parametrize(("objective", "optimum"), [("cost", 1.51), ("throughput", 1.5)])
def test_dp_keeps_a_small_stage_after_a_huge_layer(objective: Kind, optimum: float) -> None:
    inst = absorbed_stage(objective)
    ref = _quiet_solve(inst, "brute")
    assert ref.status == Status.OPTIMAL and ref.objective == pytest.approx(optimum, rel=1e-12)
    res = _quiet_solve(inst, "dp")
    assert res.status == Status.OPTIMAL, res.message
    assert res.placement == {"L0": "d1", "L1": "d0"}
    assert res.objective == pytest.approx(optimum, rel=1e-12)
    assert res.solver_objective == pytest.approx(optimum, rel=1e-12)


def test_dp_counts_the_parameters_of_a_stage_after_a_huge_layer() -> None:
    """Memory ``params``: L0 holds 1e19 bytes (fits d1 only), L1 2 bytes on d0 (1 byte): no placement fits."""
    base = absorbed_stage("cost")
    g = Graph(
        "absorbed-memory",
        list(base.graph.inputs),
        [
            Layer("L0", "op", ("x",), 1e19, output_bytes=1.0, param_bytes=1e19),
            Layer("L1", "op", ("L0",), 1.5, output_bytes=1.0, param_bytes=2.0),
        ],
    )
    s = System(
        [Device("d0", 1.0, memory_bytes=1.0, price_usd_per_s=1.0), Device("d1", 1e20, price_usd_per_s=0.1)],
        list(base.system.links.values()),
        "d0",
        None,
    )
    cons = Constraints(memory=True, memory_model="params", contiguous=True, allowed={"L1": ("d0",)})
    inst = Instance("absorbed-memory", g, s, Problem(Objective("cost"), constraints=cons))
    assert _quiet_solve(inst, "brute").status == Status.INFEASIBLE
    res = _quiet_solve(inst, "dp")
    assert res.status == Status.INFEASIBLE, res.message


def endless_input(objective: Kind, only_d1: bool) -> Instance:
    """x (1e300 bytes) at d0 feeds L0 (1 GFLOP); the link d0 -> d1 of 1e-10 B/s takes 1e310 s = inf.

    d0: 1 GFLOP/s, 1 USD/s, 2 W active; d1: 1 GFLOP/s, free and powerless; the link is free and
    powerless too, so a cost or energy objective prices the transfer at 0 while the evaluator's
    latency, hence objective, is infinite. L0 on d0: 1 s, 1 USD or 2 J; on d1 it never starts.
    """
    g = Graph("endless", [ModelInput("x", 1e300)], [Layer("L0", "op", ("x",), 1e9, output_bytes=1.0)])
    s = System(
        [Device("d0", 1e9, power_active_w=2.0, price_usd_per_s=1.0), Device("d1", 1e9)],
        [Link("d0", "d1", 1e-10), Link("d1", "d0", 1e6)],
        "d0",
        None,
    )
    cons = Constraints(memory=False, allowed={"L0": ("d1",)} if only_d1 else {})
    return Instance("endless", g, s, Problem(Objective(objective), execution="sequential", constraints=cons))


@pytest.mark.parametrize("name", ADDITIVE)
@pytest.mark.parametrize(("objective", "optimum"), [("cost", 1.0), ("energy", 2.0)])
def test_a_transfer_that_never_ends_is_not_free(name: str, objective: Kind, optimum: float) -> None:
    inst = endless_input(objective, only_d1=False)
    ref = _quiet_solve(inst, "brute")
    assert ref.status == Status.OPTIMAL and ref.objective == pytest.approx(optimum, rel=1e-12)
    res = _quiet_solve(inst, name)
    assert res.status == Status.OPTIMAL, res.message
    assert res.placement == {"L0": "d0"}
    assert res.objective == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("name", ADDITIVE)
@pytest.mark.parametrize("objective", ["cost", "energy"])
def test_only_endless_transfers_is_infeasible(name: str, objective: Kind) -> None:
    inst = endless_input(objective, only_d1=True)
    assert _quiet_solve(inst, "brute").status == Status.INFEASIBLE
    res = _quiet_solve(inst, name)
    assert res.status == Status.INFEASIBLE, res.message
    assert res.objective is None


def overflowing_latency(objective: Kind) -> Instance:
    """Two layers of 1e308 FLOP at 1 FLOP/s on either device: each 1e308 s, together 2e308 s = inf.

    Every placement's latency overflows, so the evaluator's objective is inf for all (brute finds
    no solution), while the cost (1e-300 USD/s: 1e8 USD per layer) and the energy (no power: 0 J)
    are finite sums the algorithms would report.
    """
    g = Graph(
        "overflow",
        [ModelInput("x", 1.0)],
        [Layer("L0", "op", ("x",), 1e308, output_bytes=1.0), Layer("L1", "op", ("L0",), 1e308, output_bytes=1.0)],
    )
    s = System(
        [Device("d0", 1.0, price_usd_per_s=1e-300), Device("d1", 1.0, price_usd_per_s=1e-300)],
        [Link("d0", "d1", 1e6), Link("d1", "d0", 1e6)],
        "d0",
        None,
    )
    return Instance("overflow", g, s, Problem(Objective(objective), constraints=Constraints(memory=False)))


@pytest.mark.parametrize("name", ADDITIVE)
@pytest.mark.parametrize("objective", ["cost", "energy"])
def test_a_latency_that_may_overflow_is_refused(name: str, objective: Kind) -> None:
    inst = overflowing_latency(objective)
    assert _quiet_solve(inst, "brute").status == Status.INFEASIBLE
    with pytest.raises(NumericallyUnsafe, match=r"model\.layers\[0\]: got 1e\+308.*latency") as err:
        _quiet_solve(inst, name)
    # The refusal states the limit of an algorithm adding in doubles, not the MILP's unit scales.
    msg = err.value.message()
    assert f"outside the range that {name} represents safely (exact sums in double precision" in msg
    assert "unit scale" not in msg and msg.endswith("use brute or auto")


@pytest.mark.parametrize("name", ADDITIVE)
def test_a_latency_objective_sees_its_own_overflow(name: str) -> None:
    """With d1 at 1e308 FLOP/s (1 s per layer) and a latency objective, the terms are the times.

    A placement whose latency overflows has an overflowing sum of terms, so nothing is refused:
    optimum both layers on d1, 1 s + 1 s plus x (1 byte) over 1 MB/s = 2.000001 s.
    """
    base = overflowing_latency("cost")
    s = System([Device("d0", 1.0), Device("d1", 1e308)], list(base.system.links.values()), "d0", None)
    cons = Constraints(memory=False, contiguous=name == "dp")  # dp: contiguous stages on a chain
    inst = Instance("overflow-latency", base.graph, s, Problem(Objective("latency"), constraints=cons))
    ref = _quiet_solve(inst, "brute")
    assert ref.status == Status.OPTIMAL and ref.objective == pytest.approx(2.000001, rel=1e-12)
    res = _quiet_solve(inst, name)
    assert res.status == Status.OPTIMAL, res.message
    assert res.placement == {"L0": "d1", "L1": "d1"}
    assert res.objective == pytest.approx(2.000001, rel=1e-12)


def dear_way_back() -> Instance:
    """Chain x -> L0 -> L1 -> L2 (1 GFLOP each, 1-byte tensors), source and sink d0.

    d0: 1 GFLOP/s at 1 USD/s (1 USD per layer); d1: 1 GFLOP/s, free. d0 -> d1 is free; d1 -> d0
    costs 1.5e308 USD per byte, so every way back costs 1.5e308 USD and three of them (the
    capacities of the min-cut network) add up past the largest double; L1 may run on d0 only (an
    infinite capacity besides). Anything on d1 must send some tensor back to d0 (L2's output goes
    to the sink): the optimum is all on d0, 3 USD.
    """
    g = Graph(
        "dear-way-back",
        [ModelInput("x", 1.0)],
        [
            Layer("L0", "op", ("x",), 1e9, output_bytes=1.0),
            Layer("L1", "op", ("L0",), 1e9, output_bytes=1.0),
            Layer("L2", "op", ("L1",), 1e9, output_bytes=1.0),
        ],
    )
    s = System(
        [Device("d0", 1e9, price_usd_per_s=1.0), Device("d1", 1e9)],
        [Link("d0", "d1", 1e6), Link("d1", "d0", 1e6, price_usd_per_byte=1.5e308)],
        "d0",
        "d0",
    )
    cons = Constraints(memory=False, allowed={"L1": ("d0",)})
    return Instance("dear-way-back", g, s, Problem(Objective("cost"), constraints=cons))


@pytest.mark.parametrize("name", ADDITIVE)
def test_capacities_summing_past_the_largest_double(name: str) -> None:
    inst = dear_way_back()
    if name == "dp":
        inst = inst.with_problem(replace(inst.problem, constraints=replace(inst.problem.constraints, contiguous=True)))
    ref = _quiet_solve(inst, "brute")
    assert ref.status == Status.OPTIMAL and ref.objective == pytest.approx(3.0, rel=1e-12)
    res = _quiet_solve(inst, name)
    assert res.status == Status.OPTIMAL, res.message
    assert res.placement == {"L0": "d0", "L1": "d0", "L2": "d0"}
    assert res.objective == pytest.approx(3.0, rel=1e-12)


@pytest.mark.parametrize("name", ADDITIVE)
def test_a_rate_spread_refusal_names_the_doubles_limit(name: str) -> None:
    """Energy with idle power: d0's 1e9 W active power against d1's 1e-3 W idle power spans 1e12 > 1e8
    (FLOAT_RATE_RANGE), so the evaluator's ``L - busy`` rounding could decide the comparison."""
    g = Graph("spread", [ModelInput("x", 1.0)], [Layer("L0", "op", ("x",), 1.0, output_bytes=1.0)])
    s = System(
        [Device("d0", 1.0, power_active_w=1e9), Device("d1", 1.0, power_idle_w=1e-3)],
        [Link("d0", "d1", 1e6), Link("d1", "d0", 1e6)],
        "d0",
        None,
    )
    inst = Instance("spread", g, s, Problem(Objective("energy"), constraints=Constraints(memory=False)))
    with pytest.raises(NumericallyUnsafe, match=r"system\.devices\[0\]\.power_active: got 1000000000\.0") as err:
        _quiet_solve(inst, name)
    msg = err.value.message()
    assert "the per-second rates of the objective span at most 1e+08" in msg
    assert f"outside the range that {name} represents safely (exact sums in double precision" in msg
    assert "unit scale" not in msg and msg.endswith("use brute or auto")
