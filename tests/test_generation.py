"""Generation requests (docs/instance-format.md §9.10): the worked examples G1 and G2 by hand, the
closed forms against the passes one by one, loading, export, refusals, and ``cpsat-v2`` against brute
force on random tiny generation instances (100 in the default suite, 300 more with ``-m slow``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.generation import _pass_graph, phase_tables, sum_affine, sum_max_affine
from formulation.loader import instance_to_data, load_instance_data
from formulation.model import Instance
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from solvers.testing_v2 import generation_g1, generation_g2
from tests.agree import agrees_with_brute
from tests.strategies_v2 import v2_data

G1: dict[str, Any] = generation_g1()
SPLIT = {"u/block": "edge", "u/head": "phone"}


def g2() -> dict[str, Any]:
    """Worked example G2 (as G1 with a roofline crossing) as file data."""
    return generation_g2()


def _gen(ev: Any, r: str = "u") -> dict[str, Any]:
    return dict(ev.workload["requests"][r]["generation"])


def test_worked_example_g1_by_hand() -> None:
    inst = load_instance_data(G1)
    ev = evaluate(inst, SPLIT)
    gen = _gen(ev)
    ttft = 0.11 + 1.1 + 0.11 + 0.01
    steps = [0.011 + (0.01 + 1e-5 * (100 + j)) + 0.011 + 0.01 for j in range(1, 11)]
    assert gen["ttft_s"] == pytest.approx(ttft, rel=1e-12) == pytest.approx(1.33, rel=1e-12)
    assert gen["total_s"] == pytest.approx(ttft + sum(steps), rel=1e-12) == pytest.approx(1.76055, rel=1e-12)
    assert gen["tpot_s"] == pytest.approx(0.043055, rel=1e-12)
    assert ev.latency_s == pytest.approx(1.76055, rel=1e-12)
    assert gen["output_tokens"] == 11 and gen["kv_cache_bytes"] == {"edge": pytest.approx(1.1e6)}
    assert ev.memory_bytes["edge"] == pytest.approx(2e6 + 1.1e6 + 2e5, rel=1e-12)
    # the phone holds the head's largest working set: the prefill's 100 kB input and 4 kB output
    assert ev.memory_bytes["phone"] == pytest.approx(104_000, rel=1e-12)
    # link bytes: the prefill's 100 kB and 10 steps of 1 kB each way
    assert ev.link_bytes["phone->edge"] == pytest.approx(110_000)
    assert ev.link_bytes["edge->phone"] == pytest.approx(110_000)
    # the edge's compute over the generation sets U; 11 tokens per generation
    busy = 1.1 + sum(0.01 + 1e-5 * (100 + j) for j in range(1, 11))
    assert gen["max_tokens_per_s"] == pytest.approx(11 / busy, rel=1e-12)


def test_worked_example_g2_roofline_crossing_by_hand() -> None:
    inst = load_instance_data(g2())
    ev = evaluate(inst, SPLIT)
    gen = _gen(ev)
    block = [max(0.01, (1e6 * (95 + j) + 2000) / 1e10) for j in range(1, 11)]
    assert block[3] == pytest.approx(0.01) and block[4] > 0.01  # j = 4 compute-bound, j = 5 memory-bound
    assert sum(block) == pytest.approx(0.1015012, rel=1e-12)
    assert gen["ttft_s"] == pytest.approx(0.105 + 0.95 + 0.105 + 0.01, rel=1e-12)
    assert gen["total_s"] == pytest.approx(1.5915012, rel=1e-12)
    assert gen["tpot_s"] == pytest.approx(0.04215012, rel=1e-12)
    assert gen["kv_cache_bytes"] == {"edge": pytest.approx(1.05e8)}
    assert ev.memory_bytes["edge"] == pytest.approx(1.05e8 + 190_000, rel=1e-12)


@pytest.mark.parametrize("solver", ["cpsat-v2", "highs", "scip", "pyomo:highs"])
@pytest.mark.parametrize("data", [G1, g2()], ids=["G1", "G2"])
def test_worked_examples_brute_and_exact_solvers_agree(data: dict[str, Any], solver: str) -> None:
    inst = load_instance_data(data)
    ref = solve(inst, "brute")
    res = solve(inst, solver)
    assert ref.status == res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    # both examples: everything on the edge (G1 1.59555 s, G2 1.4315012 s; the split of the table 1.76055 s)
    assert res.placement == {"u/block": "edge", "u/head": "edge"}
    assert res.objective == pytest.approx(1.59555 if data is G1 else 1.4315012, rel=1e-12)
    # all four placements by hand: the optimum is the best of them
    vals = [evaluate(inst, {"u/block": b, "u/head": h}).objective for b in ("phone", "edge") for h in ("phone", "edge")]
    assert ref.objective == pytest.approx(min(vals), rel=1e-12)


def test_closed_forms_equal_the_passes_one_by_one() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        a1, b1, a2, b2 = rng.normal(size=4)
        n = int(rng.integers(0, 30))
        i = np.arange(n)
        assert sum_affine(a1, b1, n) == pytest.approx(float((a1 + b1 * i).sum()), abs=1e-9)
        want = float(np.maximum(a1 + b1 * i, a2 + b2 * i).sum())
        got = sum_max_affine(np.array(a1), np.array(b1), np.array(a2), np.array(b2), n)
        assert got == pytest.approx(want, abs=1e-9)
    # crossing exactly at an integer step, and equal slopes
    assert sum_max_affine(np.array(0.0), np.array(1.0), np.array(3.0), np.array(0.0), 6) == pytest.approx(3 * 4 + 4 + 5)
    assert sum_max_affine(np.array(1.0), np.array(2.0), np.array(2.0), np.array(2.0), 3) == pytest.approx(2 + 4 + 6)


def _unrolled_time(inst: Instance) -> np.ndarray:
    """Layer times of every pass from §5.1 itself (Instance.time of each pass's graph), summed."""
    wl = inst.workload
    assert wl is not None
    g = inst.graph
    rq = wl.request_of_tensor
    P = np.array([float(r.prompt or 1) for r in wl.requests])[rq]
    G = max(r.generate or 0 for r in wl.requests)
    total = Instance("p", _pass_graph(inst, P, P), inst.system).time.copy()
    for j in range(1, G + 1):
        t = Instance("s", _pass_graph(inst, np.ones(g.n + g.m), P + j), inst.system).time
        steps = np.array([(wl.requests[int(rq[v])].generate or 0) >= j for v in range(g.n)])
        total += np.where(steps[:, None], t, 0.0)
    return total


@pytest.mark.parametrize("data", [G1, g2()], ids=["G1", "G2"])
def test_total_times_equal_the_unrolled_roofline(data: dict[str, Any]) -> None:
    inst = load_instance_data(data)
    np.testing.assert_allclose(phase_tables(inst).time, _unrolled_time(inst), rtol=1e-12)


def test_export_round_trip_and_share() -> None:
    d = copy.deepcopy(G1)
    d["workload"].append({"id": "v", "model": "lm", "source": "phone", "sink": "phone", "weight": 2})
    d["problem"]["contention"] = "share"
    inst = load_instance_data(d)
    back = load_instance_data(instance_to_data(inst))
    pl = {**SPLIT, "v/block": "edge", "v/head": "phone"}
    a, b = evaluate(inst, pl), evaluate(back, pl)
    assert a.objective == pytest.approx(b.objective, rel=1e-15) and a.workload == b.workload
    assert instance_to_data(back) == instance_to_data(inst)
    # every resource is shared: the generation's TTFT is its prefill's work there over its shares
    gen = _gen(a)
    s = a.workload["requests"]["u"]["shares"]
    want = 0.02 + 0.1 / s["phone->edge"] + 1.1 / s["edge"] + 0.1 / s["edge->phone"] + 0.01 / s["phone"]
    assert gen["ttft_s"] == pytest.approx(want, rel=1e-12)
    assert 0 < s["edge"] < 1
    assert "generation" not in a.workload["requests"]["v"]


def test_schedule_contention_refuses_generation_on_load() -> None:
    d = copy.deepcopy(G1)
    d["problem"]["contention"] = "schedule"
    with pytest.raises(InstanceError) as info:
        load_instance_data(d, file="g.yaml")
    text = str(info.value)
    assert "workload[0].tokens" in text and "none or share" in text


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("workload", 0, "tokens", "prompt"), 0, "an integer >= 1"),
        (("workload", 0, "tokens", "generate"), 1.5, "integer"),
        (("models", "lm", "layers", 0, "tokens", "kv_bytes_per_position"), "5 ms", "bytes"),
        (("models", "lm", "layers", 0, "tokens", "flops_per_token"), -1, "not negative"),
    ],
)
def test_bad_generation_fields_name_their_path(path: tuple[Any, ...], value: Any, expected: str) -> None:
    d = copy.deepcopy(G1)
    node: Any = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(InstanceError) as info:
        load_instance_data(d, file="g.yaml")
    where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
    assert where in str(info.value) and expected in str(info.value)


def test_solvers_without_generation_refuse() -> None:
    inst = load_instance_data(G1)
    for name in ("tang", "offload", "pipeline-dp"):
        with pytest.raises(UnsupportedProblem, match=r"generation requests|version-2 workloads"):
            get_solver(name).check(inst, SolverOptions())
    for name in ("cpsat-v2", "highs", "scip"):
        get_solver(name).check(inst, SolverOptions())
    local = evaluate(inst, {"u/block": "phone", "u/head": "phone"}).objective
    assert solve(inst, "local").objective == pytest.approx(local)


# -- cpsat-v2 against brute force on random tiny generation instances ---------------------------------


@st.composite
def generation_data(draw: st.DrawFn) -> dict[str, Any]:
    """A version-2 instance of :func:`tests.strategies_v2.v2_data` (``none``, latency, no rates) whose
    models carry per-token costs and some of whose requests are generations."""
    d = draw(v2_data("none", rates=False))
    d["problem"]["objective"] = "latency"
    for dev in d["system"]["devices"]:
        if draw(st.booleans()):
            dev["memory_bandwidth"] = draw(st.sampled_from([1e8, 1e9, 1e10]))
    for model in d["models"].values():
        for mi in model["inputs"]:
            if draw(st.booleans()):
                mi["tokens"] = {"bytes": draw(st.sampled_from([0.0, 1e3])),
                                "bytes_per_token": draw(st.sampled_from([8.0, 1e4]))}
        for lay in model["layers"]:
            if draw(st.integers(0, 3)) == 0:
                continue
            lay["tokens"] = {
                "flops": draw(st.sampled_from([0.0, 1e7])),
                "flops_per_token": draw(st.sampled_from([0.0, 1e8, 1e9])),
                "flops_per_position": draw(st.sampled_from([0.0, 1e6])),
                "flops_per_token_position": draw(st.sampled_from([0.0, 1e6, 1e7])),
                "output_bytes": draw(st.sampled_from([0.0, 1e3])),
                "output_bytes_per_token": draw(st.sampled_from([0.0, 1e3, 1e4])),
                "output_bytes_per_position": draw(st.sampled_from([0.0, 1e3])),
                "output_bytes_per_token_position": draw(st.sampled_from([0.0, 1e2])),
                "kv_bytes_per_position": draw(st.sampled_from([0.0, 1e4, 1e5])),
            }
    for r in d["workload"]:
        if draw(st.integers(0, 3)) > 0:
            r["tokens"] = {"prompt": draw(st.integers(1, 40)), "generate": draw(st.integers(1, 30))}
    if not any("tokens" in r for r in d["workload"]):
        d["workload"][0]["tokens"] = {"prompt": 16, "generate": 8}
    return d


def _agree(data: dict[str, Any]) -> None:
    agrees_with_brute(load_instance_data(data), "cpsat-v2", SolverOptions(time_limit_s=60))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cpsat_v2_equals_brute_on_generations(data: st.DataObject) -> None:
    _agree(data.draw(generation_data()))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cpsat_v2_equals_brute_on_generations_many(data: st.DataObject) -> None:
    _agree(data.draw(generation_data()))


@pytest.mark.parametrize("solver", ["brute", "highs", "scip"])
def test_stream_token_rates_by_hand(solver: str) -> None:
    """A stream of generations (``rate`` 0.5 per second): tokens/s is ``rate (G + 1)``; the busiest
    resource sets the utilisation and the largest token rate; the throughput optimum splits G1."""
    d = copy.deepcopy(G1)
    d["workload"][0]["rate"] = 0.5
    d["problem"]["objective"] = "throughput"
    inst = load_instance_data(d)
    res = solve(inst, solver)
    assert res.status == Status.OPTIMAL and res.placement == SPLIT
    # the edge runs the block: the prefill's 1.1 s and ten steps of 0.01 + 1e-5 (100 + j) s
    busy = 1.1 + sum(0.01 + 1e-5 * (100 + j) for j in range(1, 11))
    assert res.objective == pytest.approx(0.5 * busy, rel=1e-9)  # utilisation of the edge, 0.605275
    gen = _gen(res.metrics)
    assert gen["tokens_per_s"] == pytest.approx(0.5 * 11)
    assert gen["max_tokens_per_s"] == pytest.approx(11 / busy, rel=1e-9) == pytest.approx(9.08678, rel=1e-5)
    # everything on the edge keeps the edge busier (the head's 11 x 1 ms): U = 0.5 x 1.22155
    assert evaluate(inst, {"u/block": "edge", "u/head": "edge"}).objective == pytest.approx(0.5 * (busy + 0.011))
