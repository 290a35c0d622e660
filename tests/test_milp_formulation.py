"""MILP builders against hand-computed optima (every figure's arithmetic is written out).

System ``two`` used throughout: ``m`` (1 GFLOP/s, 2 W active, 0.5 W idle, trusted, source and
sink) and ``c`` (10 GFLOP/s), one bidirectional link of 1 MB/s and 10 ms, tx 1 W, rx 0.5 W.
A tensor of B bytes takes ``0.01 + B / 1e6`` s to cross and occupies the link ``B / 1e6`` s.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np
import pytest

from formulation.evaluator import evaluate
from formulation.milp import build_milp
from formulation.milp.lpwriter import lp_text
from formulation.milp.model import LinearModel, safe_names
from formulation.milp.schedule import horizon, semi_active_starts
from formulation.model import (
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)
from solvers.milp.scaling import scale_model
from solvers.milp.solver import HighsSolver
from solvers.options import SolverOptions
from solvers.result import Status


def two(*, one_way: bool = False, cloud_memory: float = math.inf, idle_c: float = 0.0) -> System:
    devs = [
        Device("m", 1e9, power_active_w=2.0, power_idle_w=0.5, trusted=True),
        Device("c", 1e10, memory_bytes=cloud_memory, power_idle_w=idle_c),
    ]
    fig = {"bandwidth_bytes_per_s": 1e6, "latency_s": 0.01, "tx_power_w": 1.0, "rx_power_w": 0.5}
    links = [Link("m", "c", **fig)] if one_way else [Link("m", "c", **fig), Link("c", "m", **fig)]
    return System(devs, links, "m", "m")


def diamond() -> Graph:
    """x (1 MB) -> a -> {b, c} -> d; a's output (100 kB) has two consumers."""
    layers = [
        Layer("a", "conv", ("x",), 1e9, output_bytes=1e5, param_bytes=1e6),
        Layer("b", "conv", ("a",), 2e9, output_bytes=5e4, param_bytes=2e6),
        Layer("c", "conv", ("a",), 3e9, output_bytes=2e4, param_bytes=3e6),
        Layer("d", "add", ("b", "c"), 1e9, output_bytes=1e3),
    ]
    return Graph("diamond", [ModelInput("x", 1e6)], layers)


def inst_of(graph: Graph, system: System, problem: Problem, table: dict | None = None) -> Instance:
    return Instance("t", graph, system, problem, latency_table=MappingProxyType(table or {}))


def solve(inst: Instance, **raw: object) -> tuple[float, dict[str, str]]:
    res = HighsSolver().solve(inst, SolverOptions(raw=raw) if raw else None)
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective is not None
    return res.objective, res.placement


FORCED = MappingProxyType({"a": ("m",), "b": ("c",), "c": ("c",), "d": ("m",)})


@pytest.mark.parametrize("pairs", [True, False])
def test_tensor_with_two_consumers_is_sent_once(pairs: bool) -> None:
    # a on m, b and c on the cloud, d on m. Times: a 1 s, b 0.2 s, c 0.3 s, d 1 s.
    # Transfers: a's output once to c (0.01 + 0.1), b back (0.01 + 0.05), c back (0.01 + 0.02).
    # L = 1 + 0.2 + 0.3 + 1 + 0.11 + 0.06 + 0.03 = 2.7 s (per consumer it would be 2.81 s).
    p = Problem(constraints=Constraints(allowed=FORCED))
    obj, place = solve(inst_of(diamond(), two(), p), pairs=pairs)
    assert obj == pytest.approx(2.7, rel=1e-9)
    assert place == {"a": "m", "b": "c", "c": "c", "d": "m"}


@pytest.mark.parametrize("pairs", [True, False])
def test_output_goes_to_the_sink_and_input_comes_from_the_source(pairs: bool) -> None:
    # Everything on the cloud: x up (0.01 + 1.0), times 0.1 + 0.2 + 0.3 + 0.1, d's 1 kB back
    # to the sink (0.011): L = 1.01 + 0.7 + 0.011 = 1.721 s, the unconstrained optimum
    # (all on m: 1 + 2 + 3 + 1 = 7 s; other mixes pay 1.01 s for x anyway and compute slower,
    # except a on m, a tie: 1 s + its output up 0.11 s = x up 1.01 s + 0.1 s on c).
    obj, place = solve(inst_of(diamond(), two(), Problem()), pairs=pairs)
    assert obj == pytest.approx(1.721, rel=1e-9)
    assert {v: d for v, d in place.items() if v != "a"} == {"b": "c", "c": "c", "d": "c"}


@pytest.mark.parametrize("pairs", [True, False])
def test_missing_link_direction_forbids_returning(pairs: bool) -> None:
    # Only m -> c exists: nothing can come back to the sink m, so d must run on m and so must
    # every layer whose output d needs: everything on m, L = 1 + 2 + 3 + 1 = 7 s.
    obj, place = solve(inst_of(diamond(), two(one_way=True), Problem()), pairs=pairs)
    assert obj == pytest.approx(7.0, rel=1e-9)
    assert set(place.values()) == {"m"}


@pytest.mark.parametrize("execution", ["sequential", "parallel"])
def test_energy_idle_term_both_modes(execution: str) -> None:
    # Placement a:m, b:c, c:m, d:m; energy scope {m}; powers m 2 W active, 0.5 W idle,
    # tx 1 W, rx 0.5 W. m computes a + c + d = 1 + 3 + 1 = 5 s, sends a (0.1 s occupied),
    # receives b (0.05 s).
    # sequential: L = 5 + 0.2 + 0.11 + 0.06 = 5.37; idle = 5.37 - 5.15 = 0.22
    #   E = 2*5 + 1*0.1 + 0.5*0.05 + 0.5*0.22 = 10.235 J
    # parallel: a 0-1; a reaches c at 1.11; b 1.11-1.31, back at 1.37; c on m 1-4; d 4-5: L = 5;
    #   idle = max(0, 5 - 5.15) = 0: E = 10 + 0.1 + 0.025 = 10.125 J
    allowed = MappingProxyType({"a": ("m",), "b": ("c",), "c": ("m",), "d": ("m",)})
    p = Problem(Objective("energy"), execution, ("m",), Constraints(allowed=allowed))  # type: ignore[arg-type]
    obj, _ = solve(inst_of(diamond(), two(), p))
    assert obj == pytest.approx(10.235 if execution == "sequential" else 10.125, rel=1e-9)


def test_parallel_branches_overlap() -> None:
    # Forced a:m, b:c, c:c, d:m in parallel mode. a 0-1; a's output on c at 1.11; b 1.11-1.31
    # and c 1.31-1.61 on the one cloud device (either order gives the same end); b back by
    # 1.31 + 0.06 = 1.37, c back by 1.61 + 0.03 = 1.64; d 1.64-2.64: L = 2.64 s.
    p = Problem(execution="parallel", constraints=Constraints(allowed=FORCED))
    res = HighsSolver().solve(inst_of(diamond(), two(), p))
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(2.64, rel=1e-9)
    assert res.schedule["d"] == pytest.approx(1.64, rel=1e-9)


def test_memory_counts_params_plus_peak() -> None:
    # Cloud memory 5.2 MB. The unconstrained optimum, all on the cloud (1.721 s), needs params
    # 1 + 2 + 3 = 6 MB there: infeasible. a on m, b, c, d on the cloud is as fast:
    # 1 + 0.11 (a's 100 kB up) + 0.2 + 0.3 + 0.1 + 0.011 = 1.721 s, and needs on the cloud
    # params 2 + 3 = 5 MB plus the peak max(b: 0.1 in + 0.05 out, c: 0.1 + 0.02,
    # d: 0.05 + 0.02 + 0.001) = 0.15 MB: 5.15 MB <= 5.2 MB.
    p = Problem(constraints=Constraints(memory=True))
    res = HighsSolver().solve(inst_of(diamond(), two(cloud_memory=5.2e6), p))
    assert res.status == Status.OPTIMAL
    assert res.placement == {"a": "m", "b": "c", "c": "c", "d": "c"}
    assert res.objective == pytest.approx(1.721, rel=1e-9)
    assert res.metrics is not None and res.metrics.memory_bytes["c"] == pytest.approx(5.15e6, rel=1e-12)


def chain3() -> Graph:
    """x (1 MB) -> a (1e8) -> b (1e10) -> c (1e8); outputs of 1 kB (0.011 s across)."""
    layers = [
        Layer("a", "op", ("x",), 1e8, output_bytes=1e3),
        Layer("b", "op", ("a",), 1e10, output_bytes=1e3),
        Layer("c", "op", ("b",), 1e8, output_bytes=1e3),
    ]
    return Graph("chain3", [ModelInput("x", 1e6)], layers)


def test_contiguity_excludes_leaving_and_reentering() -> None:
    # c runs 5 s on the cloud (latency table). Unconstrained best: m c m = 0.1 + 0.011 + 1
    # + 0.011 + 0.1 = 1.222 s, not convex for m. Convex placements: mmm 0.1 + 10 + 0.1 = 10.2,
    # ccc 1.01 + 0.01 + 1 + 5 + 0.011 = 7.031, mcc 0.1 + 0.011 + 1 + 5 + 0.011 = 6.122,
    # ccm 1.01 + 0.01 + 1 + 0.011 + 0.1 = 2.131, cmm 1.01 + 0.01 + 0.011 + 10 + 0.1 = 11.131,
    # mmc 0.1 + 10 + 0.011 + 5 + 0.011 = 15.122: best ccm = 2.131 s.
    table = {"c": {"c": 5.0}}
    free = inst_of(chain3(), two(), Problem(), table)
    assert solve(free)[0] == pytest.approx(1.222, rel=1e-9)
    conv = inst_of(chain3(), two(), Problem(constraints=Constraints(contiguous=True)), table)
    obj, place = solve(conv)
    assert obj == pytest.approx(2.131, rel=1e-9)
    assert place == {"a": "c", "b": "c", "c": "m"}


def test_max_devices_one() -> None:
    # With at most one device: all on m (7 s) or all on the cloud (1.721 s, see above).
    p = Problem(constraints=Constraints(max_devices=1))
    obj, place = solve(inst_of(diamond(), two(), p))
    assert obj == pytest.approx(1.721, rel=1e-9)
    assert set(place.values()) == {"c"}


def test_deadline_binds_a_cost_objective() -> None:
    # Cost: the cloud costs 1 USD per busy second. All on m is free but takes 7 s. Under a 3 s
    # deadline the cheapest placement moves the cheapest-to-move work: candidates with L <= 3:
    #   a:m b:c c:c d:m  L 2.7, cost 0.5;   a:m b:m c:c d:m  L = 1 + 2 + 0.3 + 1 + 0.11 + 0.03 = 4.44 (too slow)
    #   a:m b:c c:m d:m  L 5.37 (too slow); all cloud L 1.721, cost 0.7.
    # So the optimum is 0.5 USD (b and c on the cloud).
    sys_ = two()
    devs = [sys_.devices[0], Device("c", 1e10, price_usd_per_s=1.0)]
    s = System(devs, list(sys_.links.values()), "m", "m")
    p = Problem(Objective("cost"), constraints=Constraints(deadline_s=3.0))
    obj, place = solve(inst_of(diamond(), s, p))
    assert obj == pytest.approx(0.5, rel=1e-9)
    assert place == {"a": "m", "b": "c", "c": "c", "d": "m"}


def test_energy_budget_binds_a_latency_objective() -> None:
    # All on the cloud (the latency optimum, 1.721 s) costs m: sending x, 1 W * 1.0 s = 1.0 J;
    # receiving d's 1 kB, 0.5 W * 0.001 s = 0.0005 J; idling 0.5 W * (1.721 - 1.0 - 0.001) s
    # = 0.36 J: 1.3605 J. Any layer on m costs at least 2 W * 1 s = 2 J. So a 1.3 J budget on m
    # leaves no feasible placement, and a 1.4 J budget leaves the latency optimum.
    p = Problem(constraints=Constraints(energy_budget_j=MappingProxyType({"m": 1.3})))
    res = HighsSolver().solve(inst_of(diamond(), two(), p))
    assert res.status == Status.INFEASIBLE
    # With 1.4 J the all-cloud placement fits (1.3605 J).
    p2 = Problem(constraints=Constraints(energy_budget_j=MappingProxyType({"m": 1.4})))
    obj, place = solve(inst_of(diamond(), two(), p2))
    assert obj == pytest.approx(1.721, rel=1e-9)
    assert evaluate(inst_of(diamond(), two(), p2), place).energy_j["m"] == pytest.approx(1.3605, rel=1e-9)


def test_private_static_violation_is_infeasible_before_solving() -> None:
    # The model input is private and the source is untrusted: no placement can be feasible.
    sys_ = two()
    devs = [Device("m", 1e9), sys_.devices[1]]
    s = System(devs, list(sys_.links.values()), "m", "m")
    p = Problem(constraints=Constraints(private=("x",)))
    res = HighsSolver().solve(inst_of(diamond(), s, p))
    assert res.status == Status.INFEASIBLE
    assert "untrusted source" in res.message


def test_horizon_and_earliest_starts_by_hand() -> None:
    # chain3 on two devices: H = sum over layers of (largest time + largest transfer in):
    # a: 0.1 + x's 1.01 ; b: 10 + 0.011 ; c: 0.1 + 0.011 ; plus c's 1 kB to the sink 0.011.
    # H = 1.11 + 10.011 + 0.111 + 0.011 = 11.243. est: a 0, b 0.01 (a on the cloud), c 1.01.
    ctx = build_milp(inst_of(chain3(), two(), Problem(execution="parallel")))
    H, est = horizon(ctx)
    assert pytest.approx(11.243, rel=1e-12) == H
    assert est == pytest.approx([0.0, 0.01, 1.01], rel=1e-12)


def test_semi_active_starts_follow_the_hint_order() -> None:
    # diamond, a:m b:c c:c d:m. Hint puts c before b on the cloud: a 0-1, a arrives 1.11,
    # c 1.11-1.41, b 1.41-1.61; b back 1.61 + 0.06 = 1.67, c back 1.41 + 0.03 = 1.44; d at 1.67.
    inst = inst_of(diamond(), two(), Problem(execution="parallel"))
    P = np.array([0, 1, 1, 0])
    starts, order = semi_active_starts(inst, P, np.array([0.0, 2.0, 1.5, 3.0]))
    assert starts == pytest.approx([0.0, 1.41, 1.11, 1.67], rel=1e-12)
    assert order.tolist() == [0, 2, 1, 3]
    # An explicit order pair overrides the hint.
    starts2, _ = semi_active_starts(inst, P, np.array([0.0, 2.0, 1.5, 3.0]), [(1, 2)])
    assert starts2 == pytest.approx([0.0, 1.11, 1.31, 1.64], rel=1e-12)


def test_linear_model_sums_duplicates_and_names_safely() -> None:
    m = LinearModel("t")
    x = m.add_vars("x", ["a", "b"], 0, 1, integer=True)
    m.add_rows("r", ["one"], [0, 0, 0], [x[0], x[0], x[1]], [1.0, 2.0, -1.0], 0.0)
    assert m.matrix().toarray().tolist() == [[3.0, -1.0]]
    m.tighten_ub(int(x[1]), 0.5)
    m.tighten_ub(int(x[1]), 0.9)
    assert m.col_ub().tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="added twice"):
        m.add_vars("x", ["c"])
    assert safe_names(["conv 1", "conv/1", "2x", "ok.id"]) == ["conv_1", "conv_1__1", "_2x", "ok.id"]


def test_lp_text_names_every_family() -> None:
    p = Problem(execution="parallel", constraints=Constraints(contiguous=True, max_devices=1))
    text = lp_text(build_milp(inst_of(diamond(), two(cloud_memory=5e6), p)).model)
    for family in (
        "assign(",
        "pair_out(",
        "pair_in(",
        "zpair(",
        "zonly(",
        "prec(",
        "makespan(",
        "same(",
        "first(",
        "second(",
        "mem_peak(",
        "memory(",
        "cont_in(",
        "cont_prop(",
        "cont_enter(",
        "use(",
        "max_devices:",
    ):
        assert family in text, family


def test_scaling_rows_have_unit_max_and_round_trip() -> None:
    ctx = build_milp(inst_of(diamond(), two(), Problem(Objective("energy"), "parallel")))
    sc = scale_model(ctx)
    # rows with a quantity column (a unit other than "1"): largest quantity coefficient 1; others: largest 1
    quantity = np.array([u != "1" for u in ctx.model.units()])
    absA = abs(sc.A).toarray()
    q_max, row_max = (absA * quantity).max(axis=1), absA.max(axis=1)
    assert np.allclose(np.where(q_max > 0, q_max, row_max)[row_max > 0], 1.0)
    assert (q_max > 0).sum() > 0 and (row_max > 1.5).sum() > 0  # both kinds of rows, some above 1
    v = np.linspace(0.0, 1.0, ctx.model.n_cols)
    assert np.allclose(sc.to_si(sc.from_si(v)), v, rtol=1e-15)
