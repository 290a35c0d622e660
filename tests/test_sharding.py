"""Tensor + pipeline parallelism as a decision (docs/instance-format.md §2.6, §5.14; docs/sharding.md)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.evaluator.sharded import evaluate_sharded
from formulation.generators import random_instance
from formulation.loader import instance_to_data, load_instance, load_instance_data
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
    Shardable,
    System,
)
from formulation.sharding import collective, options, span
from solvers.options import UnsupportedProblem
from solvers.registry import get_solver
from solvers.result import Status

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "instances" / "examples" / "sharding-attention-4gpu.yaml"


def example(objective: str = "latency", pipeline: bool = False) -> Instance:
    inst = load_instance(EXAMPLE)
    return inst.with_problem(Problem(Objective(objective), constraints=Constraints(pipeline=pipeline)))  # type: ignore[arg-type]


# -- format -------------------------------------------------------------------------------------


def test_shardable_loads_and_round_trips() -> None:
    inst = load_instance(EXAMPLE)
    lay = {v.id: v.shardable for v in inst.graph.layers}
    assert lay["embed"] is None
    assert lay["attn"] == Shardable(4, "allreduce", 1e9)
    assert lay["mlp"] == Shardable(4, "allreduce", 2e9)
    data = instance_to_data(inst)
    again = load_instance_data(data)
    assert [v.shardable for v in again.graph.layers] == [v.shardable for v in inst.graph.layers]
    assert instance_to_data(again) == data


@pytest.mark.parametrize(
    ("shardable", "path", "words"),
    [
        ({"max_degree": 1}, "model.layers[1].shardable.max_degree", "an integer >= 2"),
        ({"max_degree": 2, "comm": "broadcast"}, "model.layers[1].shardable.comm", "allreduce"),
        ({"comm": "allreduce"}, "model.layers[1].shardable.max_degree", ""),
        ({"max_degree": 2, "comm_bytes": "3 ms"}, "model.layers[1].shardable.comm_bytes", "bytes"),
        ({"max_degree": 2, "degree": 2}, "model.layers[1].shardable.degree", ""),
    ],
)
def test_bad_shardable_is_refused_with_its_path(shardable: dict[str, object], path: str, words: str) -> None:
    data = instance_to_data(load_instance(EXAMPLE))
    data["model"]["layers"][1]["shardable"] = shardable
    with pytest.raises(InstanceError) as info:
        load_instance_data(data)
    text = str(info.value)
    assert path in text and words in text


# -- cost model -----------------------------------------------------------------------------------


def test_collective_times_by_hand() -> None:
    """Ring all-reduce 2(g-1) steps of comm/g over the slowest ring channel (docs/sharding.md)."""
    inst = example()
    attn = inst.graph.layer_index["attn"]
    pair = collective(inst, attn, (0, 1))  # 2 steps of 0.5 GB at 100 GB/s
    assert pair.steps == 2 and pair.time_s == pytest.approx(0.01) and pair.occupied_s == pytest.approx((0.01, 0.01))
    assert span(inst, attn, (0, 1)) == pytest.approx(0.11)
    four = collective(inst, attn, (0, 1, 2, 3))  # 6 steps of 0.25 GB, slowest channel 1 GB/s
    assert four.steps == 6 and four.time_s == pytest.approx(1.5)
    assert four.occupied_s == pytest.approx((0.015, 1.5, 0.015, 1.5))
    assert span(inst, attn, (0, 1, 2)) == pytest.approx(0.2 / 3 + 4 / 3)
    gather = Shardable(4, "allgather", 1e9)
    lay = [Layer("a", "x", ("x",), 2e11, 1e6, shardable=gather)]
    g2 = Instance("g", Graph("g", [ModelInput("x", 1e6)], lay), inst.system)
    assert collective(g2, 0, (0, 1, 2, 3)).time_s == pytest.approx(0.75)  # 3 steps of 0.25 s
    assert len(options(inst, attn)) == 4 + 6 + 4 + 1  # devices, pairs, triples, the four (every channel exists)
    assert len(options(inst, inst.graph.layer_index["embed"])) == 4


def _plain(inst: Instance, seed: int) -> Instance:
    rng = np.random.default_rng(seed)
    c0 = inst.problem.constraints
    cons = Constraints(memory=c0.memory, memory_model=c0.memory_model, allowed=c0.allowed,
                       pipeline=bool(rng.random() < 0.5))
    return inst.with_problem(Problem(Objective(str(rng.choice(["latency", "throughput"]))), "sequential", None, cons))  # type: ignore[arg-type]


def test_whole_layer_options_equal_the_evaluator() -> None:
    """With every option a single device, §5.14 is §5: latency, period, memory, verdicts, objective."""
    checked = 0
    for seed in range(60):
        inst = _plain(random_instance(seed, max_layers=5, max_devices=3), seed)
        for P in itertools.islice(itertools.product(range(inst.k), repeat=inst.n), 20):
            e, s = evaluate(inst, list(P)), evaluate_sharded(inst, [(d,) for d in P])
            for a, b in [(e.latency_sequential_s, s.latency_sequential_s), (e.period_s, s.period_s),
                         (e.objective, s.objective)]:
                assert a == b or math.isclose(a, b, rel_tol=1e-9)
            assert all(math.isclose(e.memory_bytes[d], s.memory_bytes[d], rel_tol=1e-9, abs_tol=1e-6)
                       for d in e.memory_bytes)
            assert sorted({v.kind for v in e.violations}) == sorted({v.kind for v in s.violations})
            checked += 1
    assert checked >= 800


def test_sharded_evaluation_by_hand() -> None:
    inst = example()
    ev = evaluate_sharded(inst, {"embed": "d0", "attn": ["d0", "d1"], "mlp": "d0"})
    assert ev.feasible and ev.latency_s == pytest.approx(0.13101)
    assert ev.busy_s == pytest.approx({"d0": 0.001 + 0.11 + 0.02, "d1": 0.11, "d2": 0.0, "d3": 0.0})
    assert ev.link_busy_s["d0->d1"] == pytest.approx(0.01 + 1e-5)  # ring + embed's output
    assert ev.period_s == pytest.approx(0.131)
    bad = evaluate_sharded(inst, {"embed": ["d0", "d1"], "attn": "d0", "mlp": "d0"})
    assert [v.kind for v in bad.violations] == ["sharding"]
    piped = evaluate_sharded(example(pipeline=True), {"embed": "d0", "attn": ["d0", "d1"], "mlp": "d2"})
    assert [v.kind for v in piped.violations] == ["pipeline"]


# -- acceptance: the solver finds the sharded optimum -----------------------------------------------


@pytest.mark.parametrize(
    ("objective", "pipeline", "solvers", "value"),
    [
        ("latency", False, ("shard-brute", "shard-milp"), 0.13101),
        ("throughput", False, ("shard-brute", "shard-milp"), 0.11),
        ("latency", True, ("shard-brute", "shard-dp"), 0.13401),
        ("throughput", True, ("shard-brute", "shard-dp"), 0.11),
    ],
)
def test_four_gpus_shard_the_attention_block(objective: str, pipeline: bool, solvers: tuple[str, ...],
                                             value: float) -> None:
    """docs/sharding.md, worked example: attn over a fast pair, mlp whole, the hand-computed optimum."""
    inst = example(objective, pipeline)
    for name in solvers:
        res = get_solver(name).solve(inst)
        assert res.status == Status.OPTIMAL, (name, res.message)
        assert res.objective == pytest.approx(value, rel=1e-9), name
        assert res.gap <= 1e-6
        groups = res.extra["sharding"]["groups"]
        assert list(groups) == ["attn"] and sorted(groups["attn"]) in (["d0", "d1"], ["d2", "d3"]), name
        again = evaluate_sharded(inst, res.extra["sharding"]["placement"])
        assert again.feasible and again.objective == res.objective
    if objective == "latency" and not pipeline:
        assert get_solver("shard-milp").solve(inst).extra["sharding"]["placement"] == {
            "embed": "d0", "attn": ["d0", "d1"], "mlp": "d0"}


def test_whole_layers_are_worse_and_other_solvers_refuse() -> None:
    inst = example()
    plain = Instance(inst.name, Graph("g", inst.graph.inputs, [
        Layer(v.id, v.op, v.inputs, v.flops, v.output_bytes) for v in inst.graph.layers]), inst.system, inst.problem)
    assert get_solver("brute").solve(plain).objective == pytest.approx(0.221)  # all on d0
    for name in ("brute", "highs", "cpsat", "dp", "auto", "local-search"):
        with pytest.raises(UnsupportedProblem, match="shardable"):
            get_solver(name).solve(inst)
    with pytest.raises(UnsupportedProblem, match="pipeline"):
        get_solver("shard-dp").solve(inst)


# -- random tiny instances: exact solvers agree with brute force -------------------------------------


def random_sharded(seed: int) -> Instance:
    """A chain of 2-3 layers on 2-4 devices, some layers shardable, random links, memory, objective."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    n = int(rng.integers(2, 4 if k < 4 else 3))
    layers = []
    for i in range(n):
        sh = None
        if rng.random() < 0.6:
            sh = Shardable(int(rng.integers(2, k + 1)), str(rng.choice(["allreduce", "allgather"])),  # type: ignore[arg-type]
                           float(rng.uniform(1e5, 5e7)) if rng.random() < 0.5 else None)
        layers.append(Layer(f"L{i}", "op", (f"L{i - 1}",) if i else ("x",), float(rng.uniform(1e9, 5e10)),
                            float(rng.uniform(1e4, 1e7)), float(rng.choice([0.0, rng.uniform(1e6, 1e8)])),
                            float(rng.choice([0.0, rng.uniform(1e5, 1e7)])), shardable=sh))
    devs = [Device(f"d{j}", float(rng.uniform(1e11, 1e12)),
                   memory_bytes=float(rng.uniform(5e7, 2e8)) if rng.random() < 0.3 else math.inf)
            for j in range(k)]
    links = [Link(f"d{a}", f"d{b}", float(rng.uniform(1e8, 1e10)), float(rng.choice([0.0, rng.uniform(0, 2e-3)])))
             for a in range(k) for b in range(k) if a != b and rng.random() < 0.85]
    sink = str(rng.choice(["d0", "none", f"d{k - 1}"]))
    system = System(devs, links, "d0", None if sink == "none" else sink)
    graph = Graph("r", [ModelInput("x", float(rng.uniform(1e4, 1e6)))], layers)
    cons = Constraints(memory=True, memory_model=str(rng.choice(["peak", "params"])),  # type: ignore[arg-type]
                       pipeline=bool(rng.random() < 0.5))
    return Instance(f"r{seed}", graph, system, Problem(Objective(str(rng.choice(["latency", "throughput"]))),  # type: ignore[arg-type]
                                                         constraints=cons))


def _agree(a: object, b: object) -> bool:
    ra, rb = a, b  # Result objects
    if ra.status == Status.INFEASIBLE or rb.status == Status.INFEASIBLE:  # type: ignore[attr-defined]
        return ra.status == rb.status  # type: ignore[attr-defined]
    return ra.status == rb.status == Status.OPTIMAL and math.isclose(  # type: ignore[attr-defined]
        ra.objective, rb.objective, rel_tol=1e-6)  # type: ignore[attr-defined]


def test_exact_solvers_agree_with_brute_on_random_tiny_instances() -> None:
    """shard-milp (no pipeline) and shard-dp (pipeline) equal shard-brute; counts asserted."""
    from solvers.sharding_dp import dp_problem

    compared = {"shard-milp": 0, "shard-dp": 0}
    sharded_optima = 0
    for seed in range(160):
        inst = random_sharded(seed)
        brute = get_solver("shard-brute").solve(inst)
        assert brute.status in (Status.OPTIMAL, Status.INFEASIBLE), brute.message
        if brute.status == Status.OPTIMAL and brute.extra["sharding"]["groups"]:
            sharded_optima += 1
        name = "shard-dp" if inst.problem.constraints.pipeline else "shard-milp"
        if name == "shard-dp" and dp_problem(inst) is not None:
            continue
        other = get_solver(name).solve(inst)
        assert _agree(brute, other), (seed, name, brute.objective, other.objective, other.message)
        compared[name] += 1
    assert compared["shard-milp"] >= 50 and compared["shard-dp"] >= 50, compared
    assert sharded_optima >= 20  # the optimum shards a layer in many of them


def test_shard_milp_leaves_out_options_beyond_a_feasible_value() -> None:
    """One layer of 1 FLOP at 1 FLOP/s on d0 (source and sink) or d1, whose way back is a channel
    of 1e-15 B/s (1e15 s for one byte): d0 gives 1 s, the best single device, so d1's option is left
    out before building; kept, its 1e15 coefficient beside the 1 s of d0 in one row let the solver's
    absolute tolerance report a latency of 0 s."""
    from formulation.loader import load_instance_data
    from formulation.sharding_milp import build
    from solvers.sharding import _single_device_bound

    dev = {"compute": 1.0, "memory": 1.0, "power_active": 1.0, "power_idle": 1.0}
    inst = load_instance_data({
        "dnnpart": 1, "name": "dead-way-back",
        "model": {"name": "g", "inputs": [{"id": "in0", "bytes": 1.0}],
                  "layers": [{"id": "L0", "op": "op", "inputs": ["in0"], "flops": 1.0, "output_bytes": 1.0}]},
        "system": {"devices": [{"id": "d0", **dev}, {"id": "d1", **dev}],
                   "links": [{"from": "d0", "to": "d1", "bandwidth": 1e5, "bidirectional": False},
                             {"from": "d1", "to": "d0", "bandwidth": 1e-15, "latency": 1.0, "bidirectional": False}],
                   "source": "d0", "sink": "d0"},
        "problem": {"objective": "latency", "constraints": {"memory": False}},
    })
    assert _single_device_bound(inst) == pytest.approx(1.0, abs=1e-12)
    assert [o for o, _ in build(inst, 1.0).x[0]] == [(0,)]
    assert [o for o, _ in build(inst).x[0]] == [(0,), (1,)]
    res = get_solver("shard-milp").solve(inst)
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(1.0, abs=1e-12)
    assert res.placement == {"L0": "d0"}


def test_shard_milp_enumerates_when_its_value_is_not_the_evaluators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the model's value of the options it decodes differs from the evaluator's (made here by
    adding 1 s to it), shard-milp answers with the enumeration and says so: the same optimum as
    shard-brute, proven, never an error row."""
    from solvers.milp.highs_direct import HighsDirect

    real = HighsDirect.fixed_objective
    monkeypatch.setattr(HighsDirect, "fixed_objective", lambda self, fixed: (real(self, fixed) or 0.0) + 1.0)
    seen = 0
    for seed in range(40):
        inst = random_sharded(seed)
        if inst.problem.constraints.pipeline:
            continue
        brute = get_solver("shard-brute").solve(inst)
        res = get_solver("shard-milp").solve(inst)
        if brute.status != Status.OPTIMAL:
            continue
        assert res.status == Status.OPTIMAL and res.objective == pytest.approx(brute.objective, rel=1e-9)
        assert "enumerated" in res.extra["fallback"]
        seen += 1
    assert seen >= 5
