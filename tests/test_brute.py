"""``brute`` against a naive oracle (evaluate every placement one by one), and on the format's examples."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from formulation.evaluator import batch_metrics, evaluate, optimal_makespan
from formulation.model import Instance
from solvers.options import UnsupportedProblem
from solvers.registry import solve
from solvers.result import Status
from tests.strategies import instances

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"


def naive_optimum(inst: Instance) -> float | None:
    best = math.inf
    for combo in itertools.product(range(inst.k), repeat=inst.n):
        P = np.array(combo)
        ev = evaluate(inst, P)
        if inst.problem.execution == "parallel" and np.isfinite(ev.latency_parallel_s):
            found = optimal_makespan(inst, P)
            assert found is not None
            L = np.array([found[0]])
            bm = batch_metrics(inst, P[None, :], parallel=False)
            if bm.feasible(L)[0]:
                best = min(best, float(bm.objective(L)[0]))
        elif ev.feasible:
            best = min(best, ev.objective)
    return None if math.isinf(best) else best


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_layers=5))
def test_brute_equals_naive_enumeration(inst: Instance) -> None:
    expected = naive_optimum(inst)
    res = solve(inst, "brute")
    if expected is None:
        assert res.status == Status.INFEASIBLE
    else:
        assert res.status == Status.OPTIMAL, res.message
        assert res.objective == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert res.gap == 0.0


def test_examples_have_the_known_optima() -> None:
    from formulation.loader import load_instance

    # alexnet-lte-latency: all on the phone. The image (602112 B) alone takes 0.04 + 602112 / 731250 = 0.863 s
    # over LTE, more than the whole on-phone run; cutting after pool5 costs 0.04 + 36864 / 731250 = 0.0904 s
    # of transfer against 0.078 s of fc6-fc8 on the phone (fc6 is memory bound: 151064576 B / 3 GB/s = 0.0504 s).
    expected = {
        "alexnet-lte-latency.yaml": 0.29866818533333334,
        "alexnet-lte-phone-energy.yaml": 1.152477255680513,
        # tiny-dag-three-tier: all on the edge box. frame 600 kB at 12.5 MB/s + 2 ms = 0.05 s; compute
        # (0.4 + 1.2 + 0.9 + 0.001 + 0.3) GFLOP / 200 GFLOP/s = 0.014005 s; 4 kB back 0.00232 s: 0.066325 s.
        "tiny-dag-three-tier.yaml": 0.066325,
        # throughput: the frame must cross camera->edge (600 kB / 12.5 MB/s = 0.048 s) unless the stem runs
        # on the camera (0.4 GFLOP / 10 GFLOP/s = 0.04 s) and its 800 kB output crosses instead (0.064 s).
        "tiny-dag-three-tier-throughput.yaml": 0.048,
    }
    for name, value in expected.items():
        res = solve(load_instance(EXAMPLES / name), "brute")
        assert res.status == Status.OPTIMAL
        assert res.objective == pytest.approx(value, rel=1e-6), name
    # the first example by hand: the all-phone placement's latency is the sum of roofline times
    inst = load_instance(EXAMPLES / "alexnet-lte-latency.yaml")
    g = inst.graph
    by_hand = sum(
        max(g.flops[v] / 6e9, (g.param_bytes[v] + g.output_bytes[v] + g.input_bytes_of_layer[v]) / 3e9)
        for v in range(g.n)
    )
    assert by_hand == pytest.approx(expected["alexnet-lte-latency.yaml"], rel=1e-12)
    # alexnet-lte-phone-energy by hand: conv1..pool1 on the phone, the rest in the cloud.
    # phone roofline times: conv1 max(1.40554e8 / 6e9, 1469696 / 3e9) = 0.0234256667 s,
    # relu1 max(193600 / 6e9, 1548800 / 3e9) = 0.0005162667 s, pool1 max(419904 / 6e9, 961024 / 3e9) = 0.0003203413 s
    phone = 1.40554e8 / 6e9 + 1548800 / 3e9 + 961024 / 3e9
    send = 186624 / 731250  # pool1's output, occupied seconds (tx 3.85 W)
    recv = 4000 / 731250  # fc8's output back to the sink (rx 1.5 W)
    res = solve(load_instance(EXAMPLES / "alexnet-lte-phone-energy.yaml"), "brute")
    L = res.metrics.latency_sequential_s  # type: ignore[union-attr]
    cloud = L - phone - (send + 0.04) - (recv + 0.04)
    assert cloud == pytest.approx(sum(res.metrics.compute_time_s.values()) - phone)  # type: ignore[union-attr]
    energy = 5 * phone + 3.85 * send + 1.5 * recv + 0.5 * (L - phone - send - recv)
    assert energy == pytest.approx(expected["alexnet-lte-phone-energy.yaml"], rel=1e-9)
    assert [d for d in res.placement.values()][:4] == ["phone", "phone", "phone", "cloud"]


def test_brute_refuses_large_instances() -> None:
    from formulation.model import Graph, Layer, ModelInput
    from solvers.testing import case

    system = case("chain-seq-latency").build().system
    layers = [
        Layer(f"l{i}", "conv", (f"l{i - 1}" if i else "x",), flops=1e8, output_bytes=1e3) for i in range(30)
    ]
    inst = Instance("big", Graph("big", [ModelInput("x", 1e3)], layers), system)
    with pytest.raises(UnsupportedProblem, match="1073741824 placements exceed its limit"):
        solve(inst, "brute")
