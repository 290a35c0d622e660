"""The polynomial exact methods (scan, shortest-path, mincut, dp): hand-computed optima, and
equality with ``brute`` on random tiny instances wherever their capabilities apply."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from formulation import generators as gen
from formulation.evaluator import batch_metrics
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
from solvers.additive import additive_costs, chain_costs, sequential_equivalent
from solvers.flow import min_cut
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from tests.strategies import graphs, systems

EXACT = ("scan", "shortest-path", "mincut", "dp")
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _applies(name: str, inst: Instance, options: SolverOptions | None = None) -> bool:
    try:
        get_solver(name).check(inst, options or SolverOptions())
    except UnsupportedProblem:
        return False
    return True


def _assert_equals_brute(name: str, inst: Instance) -> None:
    ref = solve(inst, "brute")
    res = solve(inst, name)
    event(f"brute {ref.status.value}")
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, res.message
        return
    assert ref.status == Status.OPTIMAL
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-12)
    assert res.gap == 0.0
    assert res.bound == res.objective


# --------------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------------


def two_switch_chain(contiguous: bool = False) -> Instance:
    """m (1 GFLOP/s, source and sink) and c (10 GFLOP/s), 1 MB/s both ways, no link latency.

    x (1 MB) -> a (1 GFLOP, out 1 kB) -> b (10 GFLOP, out 1 kB) -> c (0.1 GFLOP, out 1 MB).
    Sequential latency (devices of a, b, c):
      mcm = 1 + 0.001 + 1 + 0.001 + 0.1                  = 2.102   (two switches)
      ccm = 1 (x) + 0.1 + 1 + 0.001 + 0.1                = 2.201   (best single cut)
      mcc = 1 + 0.001 + 1 + 0.01 + 1 (c's output back)    = 3.011
      ccc = 1 + 0.1 + 1 + 0.01 + 1                        = 3.111
      mmm = 1 + 10 + 0.1 = 11.1; cmm = 11.201; mmc = 12.011; cmc = 12.112
    """
    g = Graph(
        "two-switch",
        [ModelInput("x", 1e6)],
        [
            Layer("a", "conv", ("x",), flops=1e9, output_bytes=1e3),
            Layer("b", "conv", ("a",), flops=1e10, output_bytes=1e3),
            Layer("c", "conv", ("b",), flops=1e8, output_bytes=1e6),
        ],
    )
    s = System(
        [Device("m", 1e9, trusted=True), Device("c", 1e10)],
        [Link("m", "c", 1e6), Link("c", "m", 1e6)],
        "m",
        "m",
    )
    return Instance("two-switch", g, s, Problem(constraints=Constraints(contiguous=contiguous)))


def test_shortest_path_finds_the_two_switch_optimum() -> None:
    res = solve(two_switch_chain(), "shortest-path")
    assert res.status == Status.OPTIMAL
    assert res.placement == {"a": "m", "b": "c", "c": "m"}
    assert res.objective == pytest.approx(2.102, rel=1e-12)
    assert res.gap == 0.0


def test_scan_solves_the_single_cut_problem_and_refuses_the_general_one() -> None:
    res = solve(two_switch_chain(contiguous=True), "scan")
    assert res.status == Status.OPTIMAL
    assert res.placement == {"a": "c", "b": "c", "c": "m"}
    assert res.objective == pytest.approx(2.201, rel=1e-12)
    with pytest.raises(UnsupportedProblem, match="several device switches"):
        solve(two_switch_chain(), "scan")
    # As a heuristic on the general problem: the best single cut, never labelled optimal.
    heur = get_solver("scan").solve(two_switch_chain(), SolverOptions(raw={"single_cut": True}))
    assert heur.status == Status.FEASIBLE
    assert heur.objective == pytest.approx(2.201, rel=1e-12)
    assert heur.bound <= 2.102


def test_dp_and_auto_on_the_two_switch_chain() -> None:
    # With contiguous stages the DP's optimum is the best single cut, 2.201 (ccm).
    res = solve(two_switch_chain(contiguous=True), "dp")
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(2.201, rel=1e-12)
    # auto: shortest-path for the general problem (scan would miss 2.102), scan for the single cut.
    general = solve(two_switch_chain(), "auto")
    assert general.method == "shortest-path"
    assert general.objective == pytest.approx(2.102, rel=1e-12)
    assert "shortest path" in general.message
    single = solve(two_switch_chain(contiguous=True), "auto")
    assert single.method == "scan"
    assert single.objective == pytest.approx(2.201, rel=1e-12)


def diamond_asymmetric() -> Instance:
    """p (1 GFLOP/s, source and sink) and q (10 GFLOP/s); p -> q 1 MB/s, q -> p 2 MB/s.

    x (10 MB) -> a (0.1 GFLOP, out 1 MB) -> {b, c} (5 GFLOP each, out 100 kB) -> d (0.1 GFLOP, out 1 kB).
    Optimum a on p, b, c, d on q (x would take 10 s to ship):
      0.1 (a on p) + 1e6 / 1e6 (a's output, sent ONCE to q although b and c both read it)
      + 0.5 + 0.5 + 0.01 (b, c, d on q) + 1e3 / 2e6 (d's output back over q -> p at 2 MB/s)
      = 2.1105.
    Paying a's output per edge would give 3.1105; using p -> q figures for q -> p, 2.111.
    """
    g = Graph(
        "diamond",
        [ModelInput("x", 1e7)],
        [
            Layer("a", "conv", ("x",), flops=1e8, output_bytes=1e6),
            Layer("b", "conv", ("a",), flops=5e9, output_bytes=1e5),
            Layer("c", "conv", ("a",), flops=5e9, output_bytes=1e5),
            Layer("d", "add", ("b", "c"), flops=1e8, output_bytes=1e3),
        ],
    )
    s = System(
        [Device("p", 1e9, trusted=True), Device("q", 1e10)],
        [Link("p", "q", 1e6), Link("q", "p", 2e6)],
        "p",
        "p",
    )
    return Instance("diamond-asym", g, s, Problem())


@pytest.mark.parametrize("backend", ["ortools", "scipy", "networkx"])
def test_mincut_pays_a_shared_tensor_once_per_direction(backend: str) -> None:
    res = get_solver("mincut").solve(diamond_asymmetric(), SolverOptions(raw={"backend": backend}))
    assert res.placement == {"a": "p", "b": "q", "c": "q", "d": "q"}
    assert res.objective == pytest.approx(2.1105, rel=1e-12)
    if backend != "scipy":  # int32 scaling cannot certify 1e-9 in general (see solvers/flow.py)
        assert res.status == Status.OPTIMAL
        assert res.gap == 0.0
    assert res.extra["backend"] == backend


def test_mincut_proves_infeasibility_through_a_missing_direction() -> None:
    # a may only run on q, but nothing can go p -> q: the input x cannot reach a.
    base = diamond_asymmetric()
    s = System(list(base.system.devices), [Link("q", "p", 2e6)], "p", "p")
    inst = Instance("no-uplink", base.graph, s, Problem(constraints=Constraints(allowed={"a": ("q",)})))
    res = solve(inst, "mincut")
    assert res.status == Status.INFEASIBLE
    assert "missing link" in res.message
    assert solve(inst, "brute").status == Status.INFEASIBLE


def test_mincut_with_max_devices_one_keeps_the_best_single_device() -> None:
    # All on p: 0.1 + 5 + 5 + 0.1 = 10.2; all on q: 10 (x) + 0.01 + 0.5 + 0.5 + 0.01 + 0.0005 = 11.0205.
    inst = diamond_asymmetric().with_problem(Problem(constraints=Constraints(max_devices=1)))
    res = solve(inst, "mincut")
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(10.2, rel=1e-12)


def pipeline_three_devices() -> Instance:
    """Devices A (source, 1 GFLOP/s), B (2 GFLOP/s), C (4 GFLOP/s); 1 MB/s links A <-> B, A <-> C
    and C -> B only (no B -> C). No sink.

    Chain l0, l1, l2 of 4 GFLOP each (outputs 100 kB, 100 kB, 1 kB), input x of 1 kB read by l0.
    Period, contiguous stages:
      C: l0 l1 (2 s), B: l2 (2 s); links A -> C 0.001 s, C -> B 0.1 s      -> P = 2.0 (optimal)
      B: l0, C: l1 l2 would also give 2.0 but needs B -> C (missing).
      In the file order A, B, C the stages may only go A -> B -> C: the best is C alone, P = 3.0.
    """
    g = Graph(
        "chain3",
        [ModelInput("x", 1e3)],
        [
            Layer("l0", "op", ("x",), flops=4e9, output_bytes=1e5),
            Layer("l1", "op", ("l0",), flops=4e9, output_bytes=1e5),
            Layer("l2", "op", ("l1",), flops=4e9, output_bytes=1e3),
        ],
    )
    devs = [Device("A", 1e9), Device("B", 2e9), Device("C", 4e9)]
    links = [Link("A", "B", 1e6), Link("B", "A", 1e6), Link("A", "C", 1e6), Link("C", "A", 1e6), Link("C", "B", 1e6)]
    prob = Problem(objective=Objective("throughput"), constraints=Constraints(contiguous=True))
    return Instance("pipeline3", g, System(devs, links, "A", None), prob)


def test_dp_free_order_beats_the_file_order() -> None:
    inst = pipeline_three_devices()
    free = solve(inst, "dp")
    assert free.status == Status.OPTIMAL
    assert free.objective == pytest.approx(2.0, rel=1e-12)
    assert free.placement == {"l0": "C", "l1": "C", "l2": "B"}
    given = get_solver("dp").solve(inst, SolverOptions(raw={"order": "file"}))
    assert given.status == Status.FEASIBLE  # a given order restricts the problem: no optimality claim
    assert given.objective == pytest.approx(3.0, rel=1e-12)
    assert given.bound <= 2.0
    auto = solve(inst, "auto")
    assert auto.method == "dp" and auto.objective == pytest.approx(2.0, rel=1e-12)


def test_dp_counts_a_link_direction_shared_by_the_input_and_the_output() -> None:
    """S (source) and T (sink); measured times S: l0 3 s, l1 0.5 s; T: l0 0.5 s, l1 3 s; 1 MB/s links.

    x (1 MB) -> l0 (out 1 kB) -> l1 (out 1 MB). Placement T, S: compute 0.5 and 0.5 s, T -> S 0.001 s,
    but S -> T carries x (1 s) and l1's output (1 s): P = 2.0. Others: TT 3.5, SS 3.5, ST 3.0.
    """
    g = Graph(
        "corner",
        [ModelInput("x", 1e6)],
        [Layer("l0", "op", ("x",), 1e9, 1e3), Layer("l1", "op", ("l0",), 1e9, 1e6)],
    )
    s = System([Device("S", 1e9), Device("T", 1e9)], [Link("S", "T", 1e6), Link("T", "S", 1e6)], "S", "T")
    table = {"S": {"l0": 3.0, "l1": 0.5}, "T": {"l0": 0.5, "l1": 3.0}}
    prob = Problem(objective=Objective("throughput"), constraints=Constraints(contiguous=True))
    inst = Instance("corner", g, s, prob, latency_table=table)
    res = solve(inst, "dp")
    assert res.status == Status.OPTIMAL
    assert res.placement == {"l0": "T", "l1": "S"}
    assert res.objective == pytest.approx(2.0, rel=1e-12)
    assert res.solver_objective == pytest.approx(2.0, rel=1e-12)


def test_dp_refuses_what_it_cannot_solve_exactly() -> None:
    inst = pipeline_three_devices().with_problem(Problem(objective=Objective("throughput")))
    with pytest.raises(UnsupportedProblem, match="contiguous"):
        solve(inst, "dp")
    mixed = Objective("weighted", {"throughput": 1.0, "latency": 1.0})
    with pytest.raises(UnsupportedProblem, match="period mixed"):
        solve(pipeline_three_devices().with_problem(Problem(objective=mixed)), "dp")
    big = gen.instance(gen.chain(1000), gen.system(16), Problem(constraints=Constraints(contiguous=True)))
    with pytest.raises(UnsupportedProblem, match="order"):
        get_solver("dp").check(big, SolverOptions())


def test_additive_terms_equal_the_evaluator() -> None:
    """The layer/transfer decomposition shared by shortest-path, mincut and dp, on random placements."""
    rng = np.random.default_rng(7)
    weighted = Objective("weighted", {"latency": 1.0, "energy": 0.2, "cost": 30.0})
    for seed in range(12):
        g = gen.layered_dag(9, width=3, seed=seed) if seed % 2 else gen.chain(7, seed=seed)
        sys_ = gen.system(3, seed=seed, link_prob=0.5, sink=bool(seed % 3))
        scope = None if seed % 4 else ("d0",)
        inst = gen.instance(g, sys_, Problem(objective=weighted, energy_scope=scope))
        ac = additive_costs(inst)
        P = rng.integers(0, 3, size=(25, inst.n))
        ref = batch_metrics(inst, P, parallel=False).objective()
        got = np.array([ac.value(p) for p in P])
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        if g.is_chain:
            cc = chain_costs(ac)
            via_pairs = [
                cc.node[np.arange(inst.n), p].sum() + sum(cc.edge[v, p[v], p[v + 1]] for v in range(inst.n - 1))
                for p in P
            ]
            np.testing.assert_allclose(via_pairs, ref, rtol=1e-12)


def test_flow_backends_agree_and_scipy_guards_int32() -> None:
    # s=0, t=3; two paths 0-1-3 (caps 3, 2) and 0-2-3 (caps 1, 5), cross arc 1-2 (cap 4): max flow 2 + 1 + 1 = 4.
    tails, heads = np.array([0, 1, 0, 2, 1]), np.array([1, 3, 2, 3, 2])
    caps = np.array([3, 2, 1, 5, 4])
    for backend in ("ortools", "scipy", "networkx"):
        value, side = min_cut(4, tails, heads, caps, 0, 3, backend)  # type: ignore[arg-type]
        assert value == 4
        assert side[0] and not side[3]
    with pytest.raises(OverflowError):
        min_cut(4, tails, heads, caps * 2**30, 0, 3, "scipy")


def test_memory_that_cannot_bind_does_not_block_the_additive_methods() -> None:
    """Working sets: a 1e3 + 1e6 (x), b 1e3 + 1e3, c 1e6 + 1e3 bytes; no weights. 1.001 MB fits
    every device, so no placement can exceed memory and shortest-path solves the instance; with
    0.5 MB on c, a and c cannot run there, memory binds, and it refuses."""
    base = two_switch_chain()
    roomy = System(
        [Device("m", 1e9, memory_bytes=2e6, trusted=True), Device("c", 1e10, memory_bytes=1.001e6)],
        list(base.system.links.values()),
        "m",
        "m",
    )
    inst = Instance("roomy", base.graph, roomy, base.problem)
    assert "memory" in inst.active_constraints
    res = solve(inst, "shortest-path")
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(2.102, rel=1e-12)
    tight = System(
        [Device("m", 1e9, memory_bytes=2e6, trusted=True), Device("c", 1e10, memory_bytes=5e5)],
        list(base.system.links.values()),
        "m",
        "m",
    )
    with pytest.raises(UnsupportedProblem, match="memory"):
        solve(Instance("tight", base.graph, tight, base.problem), "shortest-path")


def test_parallel_chains_equivalent_to_sequential_are_accepted() -> None:
    inst = two_switch_chain().with_problem(Problem(execution="parallel"))
    assert sequential_equivalent(inst)
    res = solve(inst, "shortest-path")
    assert res.status == Status.OPTIMAL and res.objective == pytest.approx(2.102, rel=1e-12)
    assert res.metrics is not None and res.metrics.latency_parallel_s == pytest.approx(2.102, rel=1e-12)
    # A DAG in parallel mode is not additive: refused before anything is built.
    with pytest.raises(UnsupportedProblem, match="parallel"):
        solve(diamond_asymmetric().with_problem(Problem(execution="parallel")), "mincut")


def test_exact_methods_agree_with_each_other_on_larger_instances() -> None:
    """Beyond brute's reach, two independent exact methods must give the same optimum."""
    for seed in range(3):
        chain = gen.instance(gen.chain(300, seed=seed), gen.system(2, seed=seed), Problem(Objective("latency")))
        a, b = solve(chain, "shortest-path"), solve(chain, "mincut")
        assert a.status == b.status == Status.OPTIMAL
        assert a.objective == pytest.approx(b.objective, rel=1e-9)
        single = Problem(Objective("energy"), constraints=Constraints(contiguous=True))
        inst = gen.instance(gen.chain(150, seed=seed), gen.system(2, seed=seed, memory=True), single)
        c, d = solve(inst, "scan"), solve(inst, "dp")
        assert c.status == d.status
        if c.objective is not None:
            assert c.objective == pytest.approx(d.objective, rel=1e-9)


@pytest.mark.slow
def test_mincut_equals_the_milp_on_a_dag() -> None:
    inst = gen.instance(gen.resnet_like(300, seed=2), gen.system(2, seed=2), Problem(Objective("energy")))
    a, b = solve(inst, "mincut"), solve(inst, "highs")
    assert a.status == b.status == Status.OPTIMAL
    assert a.objective == pytest.approx(b.objective, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# Random tiny instances against brute
# --------------------------------------------------------------------------------------------------


@st.composite
def chains(draw: st.DrawFn, max_layers: int = 5) -> Graph:
    """A chain; model inputs read by the first layer and sometimes by later ones; extra outputs."""
    n = draw(st.integers(1, max_layers))
    m = draw(st.integers(1, 2))
    inputs = [ModelInput(f"in{j}", draw(st.sampled_from([0.0, 1e3, 5e4, 2e5]))) for j in range(m)]
    layers = []
    for v in range(n):
        ins = [f"L{v - 1}"] if v else ["in0"]
        if draw(st.integers(0, 4)) == 0:
            ins.append(f"in{m - 1}")
        layers.append(
            Layer(
                f"L{v}",
                "op",
                tuple(dict.fromkeys(ins)),
                flops=draw(st.sampled_from([0.0, 1e8, 5e8, 1e9, 3e9])),
                output_bytes=draw(st.sampled_from([1e3, 1e4, 1e5, 4e5])),
                param_bytes=draw(st.sampled_from([0.0, 1e5, 1e6])),
                workspace_bytes=draw(st.sampled_from([0.0, 1e4])),
            )
        )
    outputs = [f"L{n - 1}"]
    if n > 1 and draw(st.integers(0, 4)) == 0:
        outputs.append(f"L{draw(st.integers(0, n - 2))}")
    return Graph("chain", inputs, layers, outputs)


ADDITIVE = st.sampled_from(
    [
        Objective("latency"),
        Objective("energy"),
        Objective("cost"),
        Objective("weighted", {"latency": 1.0, "energy": 0.3}),
        Objective("weighted", {"latency": 1.0, "cost": 2.0}),
    ]
)


@st.composite
def placement_constraints(draw: st.DrawFn, g: Graph, s: System, **more: object) -> Constraints:
    """Random ``allowed`` and ``private`` constraints, plus the fixed fields in ``more``."""
    devs = list(s.device_ids)
    fields: dict[str, object] = {"memory": False, **more}
    fields["allowed"] = draw(
        st.sampled_from([{}, {}, {g.layer_ids[-1]: (devs[0],)}, {g.layer_ids[0]: tuple(devs[1:])}])
    )
    fields["private"] = draw(st.sampled_from([(), (), (g.input_ids[0],), (g.layer_ids[0],)]))
    return Constraints(**fields)  # type: ignore[arg-type]


@st.composite
def shortest_path_instances(draw: st.DrawFn) -> Instance:
    g = draw(chains())
    s = draw(systems(max_devices=3))
    c = draw(placement_constraints(g, s))
    ex = draw(st.sampled_from(["sequential", "sequential", "parallel"]))
    scope = draw(st.sampled_from([None, (s.device_ids[0],)]))
    return Instance("sp", g, s, Problem(draw(ADDITIVE), ex, scope, c))


@st.composite
def mincut_instances(draw: st.DrawFn) -> Instance:
    g = draw(graphs(max_layers=6))
    s = draw(systems(max_devices=2))
    c = draw(placement_constraints(g, s, max_devices=draw(st.sampled_from([None, None, None, 1]))))
    scope = draw(st.sampled_from([None, (s.device_ids[0],)]))
    return Instance("mc", g, s, Problem(draw(ADDITIVE), "sequential", scope, c))


@st.composite
def single_cut_instances(draw: st.DrawFn) -> Instance:
    g = draw(chains())
    s = draw(systems(max_devices=2))
    devs = list(s.device_ids)
    c = draw(
        placement_constraints(
            g,
            s,
            memory=draw(st.booleans()),
            contiguous=True,
            deadline_s=draw(st.sampled_from([None, None, 2.0, 0.5])),
            energy_budget_j=draw(st.sampled_from([{}, {}, {devs[0]: 3.0}])),
        )
    )
    kind = draw(st.sampled_from(["latency", "throughput", "energy", "cost", "weighted"]))
    weights = {"latency": 1.0, "throughput": 0.5} if kind == "weighted" else {}
    ex = draw(st.sampled_from(["sequential", "parallel"]))
    return Instance("scan", g, s, Problem(Objective(kind, weights), ex, None, c))  # type: ignore[arg-type]


@st.composite
def stage_instances(draw: st.DrawFn) -> Instance:
    g = draw(chains())
    s = draw(systems(max_devices=3))
    c = draw(
        placement_constraints(
            g, s, memory=draw(st.booleans()), contiguous=True, max_devices=draw(st.sampled_from([None, None, 2]))
        )
    )
    obj = draw(st.one_of(st.just(Objective("throughput")), ADDITIVE))
    return Instance("dp", g, s, Problem(obj, "sequential", None, c))


@PROPERTY
@given(shortest_path_instances())
def test_shortest_path_equals_brute(inst: Instance) -> None:
    assume(_applies("shortest-path", inst))
    _assert_equals_brute("shortest-path", inst)


@PROPERTY
@given(mincut_instances())
def test_mincut_equals_brute(inst: Instance) -> None:
    assume(_applies("mincut", inst))
    _assert_equals_brute("mincut", inst)


@PROPERTY
@given(single_cut_instances())
def test_scan_equals_brute(inst: Instance) -> None:
    assume(_applies("scan", inst))
    _assert_equals_brute("scan", inst)


@PROPERTY
@given(stage_instances())
def test_dp_equals_brute(inst: Instance) -> None:
    assume(_applies("dp", inst))
    _assert_equals_brute("dp", inst)


def test_auto_never_labels_a_heuristic_answer_optimal() -> None:
    """Whenever auto picks one of the polynomial methods, its answer is brute's optimum."""
    rng = np.random.default_rng(3)
    picked = set()
    for seed in range(40):
        g = gen.chain(4, seed=seed) if seed % 2 else gen.layered_dag(5, width=2, seed=seed)
        kind = ["latency", "throughput", "energy", "cost"][seed % 4]
        c = Constraints(contiguous=bool(rng.random() < 0.5))
        sys_ = gen.system(2 + seed % 2, seed=seed)
        inst = gen.instance(g, sys_, Problem(Objective(kind), constraints=c))  # type: ignore[arg-type]
        method, _ = get_solver("auto").choose(inst, SolverOptions())  # type: ignore[attr-defined]
        if method.name not in EXACT:
            continue
        picked.add(method.name)
        res, ref = solve(inst, "auto"), solve(inst, "brute")
        assert res.method == method.name
        assert res.status == ref.status
        if ref.objective is not None:
            assert res.objective == pytest.approx(ref.objective, rel=1e-6)
    assert picked == set(EXACT)
