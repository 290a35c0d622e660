"""Colocation classes, the weights-only memory model and the device features across the engines.

Hand-computed evaluator values, loader round trips and error messages, the capability audit (each
solver declares exactly the constraint kinds and features it enforces), and the exact engines
(MILP, CP-SAT, DP on chains) against ``brute`` on random tiny instances that draw every feature.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import instance_to_data, load_instance_data
from formulation.model import (
    CONSTRAINT_KINDS,
    DEVICE_FEATURES,
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
from solvers.brute import BruteForce
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, names, solve
from solvers.result import Status
from tests.feature_instances import feature_instance, with_features
from tests.strategies import systems
from tests.test_exact_algorithms import chains

SEEDS = st.integers(min_value=0, max_value=10**9)
ALL = frozenset(CONSTRAINT_KINDS)


def chain_instance(problem: Problem, memory: float = math.inf) -> Instance:
    """in (1 kB) -> a -> b -> c on two devices ``p`` (1 GFLOP/s) and ``q`` (2 GFLOP/s), 1 MB/s link.

    a: 1 GFLOP, params 1 MB, out 100 kB; b: 2 GFLOP, params 2 MB, out 100 kB; c: 1 GFLOP,
    params 1 MB, out 1 kB. Times on p: 1, 2, 1 s; on q: 0.5, 1, 0.5 s. ``q`` has ``memory``.
    """
    g = Graph(
        "chain",
        [ModelInput("in", 1e3)],
        [
            Layer("a", "op", ("in",), 1e9, output_bytes=1e5, param_bytes=1e6),
            Layer("b", "op", ("a",), 2e9, output_bytes=1e5, param_bytes=2e6),
            Layer("c", "op", ("b",), 1e9, output_bytes=1e3, param_bytes=1e6),
        ],
    )
    s = System(
        [Device("p", 1e9), Device("q", 2e9, memory_bytes=memory)],
        [Link("p", "q", 1e6), Link("q", "p", 1e6)],
        "p",
        None,
    )
    return Instance("chain", g, s, problem)


# --------------------------------------------------------------------------------------------------
# Evaluator and loader
# --------------------------------------------------------------------------------------------------


def test_memory_params_counts_only_parameters() -> None:
    """All on q: params 1 + 2 + 1 = 4 MB; peak working set max(in 1 kB + out 100 kB, 100 + 100 kB,
    100 + 1 kB) = 200 kB, so the default (peak) model needs 4.2 MB and the weights-only model 4 MB."""
    peak = chain_instance(Problem(constraints=Constraints(memory=True)), memory=4.1e6)
    params = chain_instance(Problem(constraints=Constraints(memory=True, memory_model="params")), memory=4.1e6)
    on_q = {"a": "q", "b": "q", "c": "q"}
    assert evaluate(peak, on_q).memory_bytes["q"] == pytest.approx(4.2e6)
    assert [v.kind for v in evaluate(peak, on_q).violations] == ["memory"]
    assert evaluate(params, on_q).memory_bytes["q"] == pytest.approx(4.0e6)
    assert evaluate(params, on_q).feasible
    assert peak.active_constraints == {"memory"}
    assert params.active_constraints == {"memory_params"}


def test_colocation_is_a_constraint_of_the_evaluator() -> None:
    """Groups [a, c] and [c, b] merge into one class {a, b, c} (colocation is transitive)."""
    inst = chain_instance(Problem(constraints=Constraints(memory=False, colocate=(("a", "c"), ("c", "b")))))
    assert [cls.tolist() for cls in inst.colocate_classes] == [[0, 1, 2]]
    assert inst.active_constraints == {"colocate"}
    ev = evaluate(inst, {"a": "p", "b": "q", "c": "q"})
    assert [v.kind for v in ev.violations] == ["colocate"]
    assert "['a', 'b', 'c'] must run on one device; they run on ['p', 'q']" in ev.violations[0].message
    assert evaluate(inst, {"a": "q", "b": "q", "c": "q"}).feasible
    single = chain_instance(Problem(constraints=Constraints(colocate=(("a",),))))
    assert single.colocate_classes == () and "colocate" not in single.active_constraints


def test_loader_reads_and_writes_both_extensions() -> None:
    inst = chain_instance(
        Problem(Objective("throughput"), constraints=Constraints(memory_model="params", colocate=(("a", "b"),))),
        memory=5e6,
    )
    data = instance_to_data(inst)
    assert data["problem"]["constraints"]["memory"] == "params"
    assert data["problem"]["constraints"]["colocate"] == [["a", "b"]]
    back = load_instance_data(data)
    assert back.problem.constraints.memory_model == "params"
    assert back.problem.constraints.colocate == (("a", "b"),)
    data["problem"]["constraints"]["colocate"] = [["a", "zz"]]
    where = r"problem\.constraints\.colocate\[0\]\[1\]: got 'zz'; expected the id of a layer"
    with pytest.raises(InstanceError, match=where):
        load_instance_data(data)
    data["problem"]["constraints"].update(colocate=[["a", "b"]], memory="weights")
    with pytest.raises(InstanceError, match=r"constraints\.memory: got 'weights'; expected true, false, or params"):
        load_instance_data(data)


# --------------------------------------------------------------------------------------------------
# Capability audit
# --------------------------------------------------------------------------------------------------

#: What each registered solver enforces, by construction or through the evaluator (see the notes).
DECLARED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # Judged by the evaluator on every candidate (enumeration, single-device baselines, the 2n
    # single cuts of scan, local-search moves): every constraint kind and device feature.
    "brute": (ALL, frozenset(DEVICE_FEATURES)),
    "local": (ALL, frozenset(DEVICE_FEATURES)),
    "offload": (ALL, frozenset(DEVICE_FEATURES)),
    "scan": (ALL, frozenset(DEVICE_FEATURES)),
    "local-search": (ALL, frozenset(DEVICE_FEATURES)),
    # The general formulations: every kind as rows / constraints, both features exactly.
    "highs": (ALL, frozenset(DEVICE_FEATURES)),
    "cpsat": (ALL, frozenset(DEVICE_FEATURES)),
    "scip": (ALL, frozenset(DEVICE_FEATURES)),  # the MILP of highs, solved by SCIP
    "dp": (
        frozenset({"memory", "memory_params", "allowed", "private", "contiguous", "max_devices", "colocate"}),
        frozenset(),
    ),
    # Pipelines of DAGs: stage values count both features; a stage never splits a class.
    "pipeline-dp": (
        frozenset(
            {"memory", "memory_params", "allowed", "private", "contiguous", "max_devices", "colocate", "pipeline"}
        ),
        frozenset(DEVICE_FEATURES),
    ),
    "mincut": (frozenset({"allowed", "private", "max_devices"}), frozenset()),
    "shortest-path": (frozenset({"allowed", "private"}), frozenset()),
    # HEFT places each layer where its memory model (peak or params) has room; deadlines judged after.
    "heft": (frozenset({"memory", "memory_params", "allowed", "private", "deadline"}), frozenset()),
    # auto dispatches to one of the above and refuses when none covers the instance.
    "auto": (ALL, frozenset()),
    # The CoEdge row split: the memory rows of its model, judged by the evaluator on the split.
    "proportional": (frozenset({"memory"}), frozenset()),
    # Version-2 workloads (tests/test_v2_*.py check both against brute force): Tang et al.'s
    # candidates come from shortest paths / minimum cuts restricted to the allowed devices; the
    # CP-SAT workload model has rows for shared-weight memory (both models), allowed, private and
    # max_devices.
    "tang": (frozenset({"allowed", "private"}), frozenset()),
    "cpsat-v2": (frozenset({"memory", "memory_params", "allowed", "private", "max_devices"}), frozenset()),
    # Tensor parallelism (solvers/sharding*.py, tests/test_sharding*.py): memory per member of a
    # group (params / g), allowed for every member; brute and the stage DP also take `pipeline`.
    "shard-brute": (frozenset({"memory", "memory_params", "allowed", "pipeline"}), frozenset()),
    "shard-milp": (frozenset({"memory", "memory_params", "allowed"}), frozenset()),
    "shard-dp": (frozenset({"memory", "memory_params", "allowed", "pipeline"}), frozenset()),
    # The share MINLP: rows for shared-weight memory, max_devices and budgets; allowed/private fix x.
    "scip-share": (
        frozenset({"memory", "memory_params", "allowed", "private", "max_devices", "energy_budget"}),
        frozenset(),
    ),
}


def test_every_solver_declares_exactly_what_it_enforces() -> None:
    assert set(DECLARED) >= set(names()), f"audit the capabilities of {sorted(set(names()) - set(DECLARED))}"
    for name in names():
        cap = get_solver(name).capabilities
        assert (cap.constraints, cap.features) == DECLARED[name], name


def test_solvers_that_cannot_colocate_refuse_before_building() -> None:
    """Two devices, additive latency: min-cut and shortest-path would apply but for the colocation."""
    inst = chain_instance(Problem(constraints=Constraints(memory=False, colocate=(("a", "c"),))))
    for name in ("mincut", "shortest-path"):
        with pytest.raises(UnsupportedProblem, match=r"constraints \['colocate'\]"):
            get_solver(name).check(inst, SolverOptions())



def test_heft_places_by_the_memory_model() -> None:
    """q holds 3 MB. ``params``: a and b fit on q (1 + 2 MB), a [0.001, 0.501], b [0.501, 1.501]; c
    (1 MB more) goes to p after b's 100 kB (0.1 s): ends at 2.601. ``peak``: b's weights and a
    working set of 200 kB do not fit beside a's, so b runs on p [0.601, 2.601] and c on q after
    another 0.1 s: [2.701, 3.201]."""
    for model, placement, latency in (("params", "qqp", 2.601), ("peak", "qpq", 3.201)):
        inst = chain_instance(Problem(execution="parallel", constraints=Constraints(memory_model=model)), memory=3e6)
        res = solve(inst, "heft")
        assert res.status == Status.FEASIBLE
        assert "".join(res.placement[v] for v in "abc") == placement
        assert res.objective == pytest.approx(latency, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# Hand-computed optima
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["brute", "highs", "cpsat", "dp"])
def test_colocated_contiguous_pipeline(solver: str) -> None:
    """Throughput, contiguous, a and c colocated (so all three on one device).

    Without colocation the best split is a, b on q and c on p: busy q = 0.5 + 1 = 1.5 s, p = 1 s,
    link q -> p 100 kB / 1 MB/s = 0.1 s, input p -> q 0.001 s; period 1.5 s. With colocation the
    only contiguous placements put everything on one device: q gives 0.5 + 1 + 0.5 = 2 s (input
    link 0.001 s), p gives 4 s. Optimum 2.0 s.
    """
    free = chain_instance(Problem(Objective("throughput"), constraints=Constraints(memory=False, contiguous=True)))
    assert solve(free, "brute").objective == pytest.approx(1.5)
    inst = chain_instance(
        Problem(Objective("throughput"), constraints=Constraints(memory=False, contiguous=True, colocate=(("a", "c"),)))
    )
    res = solve(inst, solver)
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(2.0, rel=1e-6)
    assert set(res.placement.values()) == {"q"}


@pytest.mark.parametrize("solver", ["brute", "highs", "cpsat", "dp"])
def test_weights_only_memory_admits_a_better_split(solver: str) -> None:
    """Throughput, contiguous, q of limited memory; period of each contiguous split (no sink):

    all on p 4 s; all on q 2 s; p: a | q: b, c and q: a, b | p: c 1.5 s (busy q 1.5, p 1, links
    0.1 s); q: a | p: b, c and p: a, b | q: c 3 s. Memory on q, peak model (params + peak; peaks
    a 101 kB, b 200 kB, c 101 kB): a or c alone 1.101 MB, a, b or b, c 3.2 MB, all 4.2 MB; weights
    only: 1, 3 and 4 MB. So with 1 MB: peak 4 s (nothing fits q), params 3 s; 2.05 MB: 3 s and 3 s;
    3.1 MB: 3 s and 1.5 s; 3.25 MB: 1.5 s and 1.5 s.
    """
    cases = [(1.0e6, 4.0, 3.0), (2.05e6, 3.0, 3.0), (3.1e6, 3.0, 1.5), (3.25e6, 1.5, 1.5)]
    for memory, peak_opt, params_opt in cases:
        for model, expected in (("peak", peak_opt), ("params", params_opt)):
            c = Constraints(memory=True, contiguous=True, memory_model=model)  # type: ignore[arg-type]
            res = solve(chain_instance(Problem(Objective("throughput"), constraints=c), memory=memory), solver)
            assert res.status == Status.OPTIMAL, (memory, model, res.message)
            assert res.objective == pytest.approx(expected, rel=1e-6), (memory, model)


# --------------------------------------------------------------------------------------------------
# Exact engines against brute on random tiny instances with every feature
# --------------------------------------------------------------------------------------------------


def _agree(name: str, inst: Instance, options: SolverOptions | None = None) -> None:
    try:
        ref = BruteForce().solve(inst)
    except UnsupportedProblem:
        return
    res = get_solver(name).solve(inst, options or SolverOptions())
    assert res.status == ref.status, (name, ref.status, res.status, res.message)
    if ref.objective is None:
        return
    assert res.objective is not None
    tol = 2 * float(res.extra.get("scaling_error", 0.0)) + 1e-6 * abs(ref.objective) + 1e-12
    assert abs(res.objective - ref.objective) <= tol, (name, res.objective, ref.objective)
    assert res.bound is not None and res.bound <= ref.objective + tol


def _throughput(inst: Instance) -> Instance:
    p = inst.problem
    return inst.with_problem(Problem(Objective("throughput"), p.execution, p.energy_scope, p.constraints))


@settings(max_examples=80, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS, pairs=st.booleans())
def test_milp_equals_brute_with_features(seed: int, pairs: bool) -> None:
    inst = feature_instance(seed)
    _agree("highs", inst, SolverOptions(raw={"pairs": pairs}))


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_milp_equals_brute_on_the_period_with_features(seed: int) -> None:
    """The period is where ``comm_overlap: false`` and ``send_once`` matter most."""
    _agree("highs", _throughput(feature_instance(seed, max_layers=7)))


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS, period=st.booleans())
def test_cpsat_equals_brute_with_features(seed: int, period: bool) -> None:
    inst = feature_instance(seed, max_layers=5)
    _agree("cpsat", _throughput(inst) if period else inst, SolverOptions(time_limit_s=30, seed=0))


@st.composite
def pipeline_instances(draw: st.DrawFn) -> Instance:
    """Chains on 2-3 devices, period or additive objective, contiguous, with colocation of
    consecutive layers and either memory model (the DP's exact domain)."""
    g = draw(chains())
    s = draw(systems(max_devices=3))
    plain = [replace(d, comm_overlap=True, send_once=False) for d in s.devices]
    s = System(plain, list(s.links.values()), s.source, s.sink)
    obj = draw(st.sampled_from([Objective("throughput"), Objective("latency"), Objective("cost")]))
    c = Constraints(memory=draw(st.booleans()), contiguous=True)
    inst = Instance("dp", g, s, Problem(obj, "sequential", None, c))
    out = with_features(inst, draw(SEEDS), chain_safe=True)
    return Instance("dp", g, s, out.problem, latency_table=MappingProxyType({}))


@settings(max_examples=80, derandomize=True, deadline=None, database=None)
@given(inst=pipeline_instances())
def test_dp_equals_brute_with_colocation_and_memory_models(inst: Instance) -> None:
    try:
        get_solver("dp").check(inst, SolverOptions())
    except UnsupportedProblem:
        assume(False)
    _agree("dp", inst)


def test_dp_refuses_the_device_features() -> None:
    inst = chain_instance(Problem(Objective("throughput"), constraints=Constraints(memory=False, contiguous=True)))
    s = inst.system
    serial = System([replace(d, comm_overlap=False) for d in s.devices], list(s.links.values()), s.source, s.sink)
    with pytest.raises(UnsupportedProblem, match=r"device features \['comm_not_overlapped'\]"):
        get_solver("dp").check(Instance("x", inst.graph, serial, inst.problem), SolverOptions())


# --------------------------------------------------------------------------------------------------
# Interchangeable devices: symmetry breaking keeps every optimum
# --------------------------------------------------------------------------------------------------


def test_interchangeable_classes_and_canonical_placements() -> None:
    """Three identical accelerators and a source CPU: the CPU is never in a class (it holds the
    inputs); the canonical relabelling orders the accelerators by the first layer they run."""
    from formulation.symmetry import canonical_placement, interchangeable_classes

    g = Graph("g", [ModelInput("in", 1e3)], [Layer(f"L{i}", "op", (f"L{i-1}",) if i else ("in",), 1e9, 1e3)
                                             for i in range(5)])
    devs = [Device("cpu", 1e9)] + [Device(f"a{i}", 2e9, memory_bytes=1e9) for i in range(3)]
    links = [Link(a.id, b.id, 1e6) for a in devs for b in devs if a.id != b.id]
    inst = Instance("g", g, System(devs, links, "cpu", None), Problem(Objective("throughput")))
    assert interchangeable_classes(inst) == [[1, 2, 3]]
    P = np.array([3, 3, 0, 1, 3])
    Q = canonical_placement(inst, P)
    assert Q.tolist() == [1, 1, 0, 2, 1]
    assert evaluate(inst, Q).period_s == pytest.approx(evaluate(inst, P).period_s)
    # A different channel to one accelerator breaks its symmetry with the others.
    odd = [Link(a.id, b.id, 2e6 if "a2" in (a.id, b.id) else 1e6) for a in devs for b in devs if a.id != b.id]
    inst2 = Instance("g", g, System(devs, odd, "cpu", None), Problem(Objective("throughput")))
    assert interchangeable_classes(inst2) == [[1, 2]]


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS, period=st.booleans())
def test_symmetry_breaking_keeps_the_optimum(seed: int, period: bool) -> None:
    """MILP and CP-SAT with symmetry breaking against brute, on instances whose devices but the
    first are interchangeable (up to 4 devices, every objective and constraint)."""
    from tests.feature_instances import with_identical_devices

    inst = with_identical_devices(feature_instance(seed, max_layers=5, max_devices=4), seed)
    if period:
        inst = _throughput(inst)
    _agree("highs", inst, SolverOptions(raw={"symmetry": True}))
    _agree("cpsat", inst, SolverOptions(time_limit_s=30, seed=0, raw={"symmetry": True}))
