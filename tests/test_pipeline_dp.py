"""The ``pipeline`` constraint and the down-set DP (``pipeline-dp``): hand-computed cases, brute force
on random tiny DAGs, the definition by chains of down-sets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate, pipeline_order, pipeline_sets
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.pipeline_dp import exactness_problem
from solvers.registry import get_solver, solve
from solvers.result import Status
from solvers.testing import case
from tests.strategies import instances

RTOL = 1e-9


def two_chains(constraints: Constraints) -> Instance:
    return case("two-chains-throughput-pipeline").build().with_problem(
        Problem(Objective("throughput"), constraints=constraints)
    )


def test_two_chains_by_hand() -> None:
    """The crossing split {a1, b2} | {b1, a2} is convex but not a pipeline: the evaluator reports it
    under ``pipeline`` only; the DP finds the pipeline optimum 6 s (hand derivation in solvers/testing.py)."""
    crossing = {"a1": "p", "a2": "q", "b1": "q", "b2": "p"}
    ev = evaluate(two_chains(Constraints(pipeline=True)), crossing)
    assert [v.kind for v in ev.violations] == ["pipeline"]
    assert ev.objective == pytest.approx(5.002, rel=RTOL)
    assert evaluate(two_chains(Constraints(contiguous=True)), crossing).feasible
    res = solve(two_chains(Constraints(pipeline=True)), "pipeline-dp")
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(6.0, rel=RTOL)
    assert res.extra["dp_value"] == pytest.approx(6.0, rel=RTOL)


def test_refusals() -> None:
    """Without ``pipeline`` the DP refuses (unless asked for a heuristic); ``dp``, ``heft``, ``mincut``
    refuse ``pipeline``."""
    plain = two_chains(Constraints(contiguous=True))
    with pytest.raises(UnsupportedProblem, match="pipeline"):
        get_solver("pipeline-dp").check(plain, SolverOptions())
    res = solve(plain, "pipeline-dp", SolverOptions(raw={"heuristic": True}))
    assert res.status == Status.FEASIBLE
    assert res.objective == pytest.approx(6.0, rel=RTOL)  # a pipeline; the convex optimum is 5.002
    piped = two_chains(Constraints(pipeline=True))
    for name in ("dp", "heft", "mincut"):
        with pytest.raises(UnsupportedProblem):
            get_solver(name).check(piped, SolverOptions())


def _is_chain_of_downsets(inst: Instance, P: np.ndarray) -> bool:
    """The definition: some order of the used devices makes every prefix union a down-set."""
    g = inst.graph
    used = sorted({int(d) for d in P})
    for perm in itertools.permutations(used):
        pos = {d: i for i, d in enumerate(perm)}
        if all(pos[int(P[u])] <= pos[int(P[v])] for u, v in g.edges):
            return True
    return False


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.data())
def test_quotient_test_matches_the_definition(data: st.DataObject) -> None:
    """``pipeline_sets`` (quotient graph acyclic) equals the chain-of-down-sets definition, and a
    pipeline order puts every edge forward; every pipeline is convex."""
    from formulation.evaluator import convex_sets

    inst = data.draw(msr_like(max_layers=7, max_acc=3))
    P = np.array(data.draw(st.lists(st.integers(0, inst.k - 1), min_size=inst.n, max_size=inst.n)))
    ok = bool(pipeline_sets(inst, P[None, :])[0])
    assert ok == _is_chain_of_downsets(inst, P)
    order = pipeline_order(inst, P)
    assert (order is not None) == ok
    if order is not None:
        pos = {d: i for i, d in enumerate(order)}
        assert all(pos[int(P[u])] <= pos[int(P[v])] for u, v in inst.graph.edges)
        onehot = (P[None, :, None] == np.arange(inst.k)[None, None, :])
        assert convex_sets(inst, onehot).all()


@st.composite
def msr_like(draw: st.DrawFn, max_layers: int = 6, max_acc: int = 3, general: bool = False) -> Instance:
    """A random DAG on accelerators (``comm_overlap: false``, ``send_once``) and at most one CPU
    (compute only), every link one bandwidth: the MSR model, where the DP's stage value is the
    busy time. ``general``: heterogeneous speeds, bandwidths per link, either device feature, a
    model input and possibly a sink (the DP is then a bound and a heuristic, never wrong)."""
    n = draw(st.integers(1, max_layers))
    in_bytes = draw(st.sampled_from([0.0, 2e5])) if general else 0.0
    names = ["x"]
    layers = []
    for v in range(n):
        k = draw(st.integers(1, min(2, len(names))))
        ins = tuple(draw(st.lists(st.sampled_from(names), min_size=k, max_size=k, unique=True)))
        layers.append(Layer(
            f"L{v}", "op", ins,
            flops=draw(st.sampled_from([0.0, 1e9, 2e9, 5e9])),
            output_bytes=draw(st.sampled_from([0.0, 1e5, 5e5, 2e6])),
            param_bytes=draw(st.sampled_from([0.0, 1e6, 2e6])),
            workspace_bytes=draw(st.sampled_from([0.0, 1e5])),
        ))
        names.append(f"L{v}")
    g = Graph("g", [ModelInput("x", in_bytes)], layers)
    n_acc = draw(st.integers(1, max_acc))
    n_cpu = draw(st.integers(0, 1))
    mem = draw(st.sampled_from([math.inf, 3e6, 5e6]))
    devs = [Device(f"cpu{i}", 1e9) for i in range(n_cpu)]
    for i in range(n_acc):
        speed = draw(st.sampled_from([4e9, 1e10])) if general else 1e10
        devs.append(Device(
            f"acc{i}", speed, memory_bytes=mem,
            comm_overlap=draw(st.booleans()) if general else False,
            send_once=draw(st.booleans()) if general else True,
        ))
    ids = [d.id for d in devs]
    links = []
    for a, b in itertools.permutations(ids, 2):
        bw = draw(st.sampled_from([1e6, 4e6])) if general else 1e6
        links.append(Link(a, b, bw))
    sink = draw(st.sampled_from([None, ids[0]])) if general else None
    c = Constraints(
        memory=draw(st.sampled_from([True, False])),
        memory_model=draw(st.sampled_from(["params", "peak"])),
        pipeline=True,
        contiguous=draw(st.booleans()),
        max_devices=draw(st.sampled_from([None, None, 1, 2])),
        colocate=draw(st.sampled_from([(), ((layers[0].id, layers[-1].id),)])),
        allowed=draw(st.sampled_from([{}, {layers[-1].id: (ids[0],)}])),
    )
    s = System(devs, links, ids[0], sink)
    return Instance("rand", g, s, Problem(Objective("throughput"), constraints=c))


def _brute(inst: Instance) -> float | None:
    res = solve(inst, "brute")
    assert res.status in (Status.OPTIMAL, Status.INFEASIBLE), res.message
    return res.objective if res.status == Status.OPTIMAL else None


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like())
def test_dp_equals_brute_on_the_msr_model(inst: Instance) -> None:
    """On the MSR model the DP's value is the period: it is proven optimal and equals brute's optimum."""
    assert exactness_problem(inst) is None
    best = _brute(inst)
    res = solve(inst, "pipeline-dp")
    if best is None:
        assert res.status == Status.INFEASIBLE, res.message
        return
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(best, rel=RTOL, abs=1e-12)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like(general=True))
def test_dp_equals_brute_on_the_whole_cost_model(inst: Instance) -> None:
    """Heterogeneous devices, per-link bandwidths, overlapping devices, inputs and a sink. The DP
    alone (``raw finish: false``) gives a feasible pipeline no better than brute's optimum and a
    bound never above it, "optimal" only at brute's optimum, always where ``exactness_problem``
    says so; by default CP-SAT finishes what the stage values miss, and the answer is brute's."""
    best = _brute(inst)
    alone = solve(inst, "pipeline-dp", SolverOptions(raw={"finish": False}))
    res = solve(inst, "pipeline-dp")
    assert alone.status != Status.ERROR and res.status != Status.ERROR, (alone.message, res.message)
    if best is None:
        assert alone.status == res.status == Status.INFEASIBLE
        return
    assert alone.has_solution and alone.objective is not None
    assert alone.objective >= best * (1 - RTOL) - 1e-12
    assert alone.bound is not None and alone.bound <= best * (1 + RTOL) + 1e-12
    if alone.status == Status.OPTIMAL:
        assert alone.objective == pytest.approx(best, rel=RTOL, abs=1e-12)
    if exactness_problem(inst) is None:
        assert alone.status == Status.OPTIMAL, alone.message
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-9)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(msr_like(max_layers=5, max_acc=2))
def test_milp_and_cpsat_equal_brute_under_pipeline(inst: Instance) -> None:
    """The pipeline rows of the MILP and CP-SAT (formulation/milp/constraints/pipeline.py,
    formulation/cp/pipeline.py) give brute's optimum."""
    best = _brute(inst)
    for name in ("highs", "cpsat"):
        res = solve(inst, name, SolverOptions(time_limit_s=60))
        if best is None:
            assert res.status == Status.INFEASIBLE, (name, res.message)
        else:
            assert res.status == Status.OPTIMAL, (name, res.message)
            assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-9), name


def medium_instance(seed: int, n: int = 14, n_acc: int = 3) -> Instance:
    """A random layered DAG of ``n`` layers (each reads one or two of the previous four) on ``n_acc``
    MSR accelerators and one CPU, with a colocation pair and a memory limit."""
    rng = np.random.default_rng(seed)
    layers = []
    for v in range(n):
        k = min(v, int(rng.integers(1, 3)))
        window = range(max(0, v - 4), v)
        ins = tuple(f"L{u}" for u in sorted(rng.choice(window, size=k, replace=False))) if v else ("x",)
        layers.append(Layer(f"L{v}", "op", ins, flops=float(rng.choice([1e9, 2e9, 4e9, 8e9])),
                            output_bytes=float(rng.choice([0.0, 5e5, 2e6, 8e6])),
                            param_bytes=float(rng.choice([0.0, 1e6, 4e6]))))
    g = Graph("medium", [ModelInput("x", 0.0)], layers)
    devs = [Device("cpu0", 1e9)] + [Device(f"acc{i}", 1e10, memory_bytes=1.2e7, comm_overlap=False, send_once=True)
                                     for i in range(n_acc)]
    links = [Link(a.id, b.id, 1e8) for a, b in itertools.permutations(devs, 2)]
    c = Constraints(memory_model="params", pipeline=True, colocate=((f"L{n // 3}", f"L{n // 3 + 1}"),))
    system = System(devs, links, "cpu0", None)
    return Instance(f"medium{seed}", g, system, Problem(Objective("throughput"), constraints=c))


@pytest.mark.parametrize("seed", range(3))
def test_dp_equals_milp_and_cpsat_on_medium_dags(seed: int) -> None:
    """14 layers on 3 accelerators and a CPU (brute would need 4^14 placements): the DP's optimum is
    the one both exact engines prove."""
    inst = medium_instance(seed)
    dp = solve(inst, "pipeline-dp")
    assert dp.status == Status.OPTIMAL and dp.objective is not None, dp.message
    for name in ("cpsat", "highs"):
        res = solve(inst, name, SolverOptions(time_limit_s=120))
        assert res.status == Status.OPTIMAL and res.objective is not None, (name, res.message)
        assert res.objective == pytest.approx(dp.objective, rel=1e-6), name


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 10))
def test_dp_equals_cpsat_on_larger_dags(seed: int) -> None:
    """20 layers on 4 accelerators and a CPU."""
    inst = medium_instance(seed, n=20, n_acc=4)
    dp = solve(inst, "pipeline-dp")
    res = solve(inst, "cpsat", SolverOptions(time_limit_s=300))
    assert dp.status == Status.OPTIMAL and res.status == Status.OPTIMAL, (dp.message, res.message)
    assert res.objective == pytest.approx(dp.objective, rel=1e-6)


def test_pipeline_loads_round_trips_and_rejects_non_booleans() -> None:
    """``constraints.pipeline`` is optional (files without it keep their meaning and are written
    back without it), round-trips, and a non-boolean is a clear error naming the field."""
    from formulation.errors import InstanceError
    from formulation.loader import instance_to_data, load_instance_data

    data = instance_to_data(two_chains(Constraints(pipeline=True)))
    assert data["problem"]["constraints"]["pipeline"] is True
    assert load_instance_data(data).problem.constraints.pipeline
    assert "pipeline" not in instance_to_data(two_chains(Constraints(contiguous=True)))["problem"]["constraints"]
    data["problem"]["constraints"]["pipeline"] = "maybe"
    expected = r"x\.yaml: problem\.constraints\.pipeline: got 'maybe'; expected a boolean"
    with pytest.raises(InstanceError, match=expected):
        load_instance_data(data, file="x.yaml")


def test_too_many_distinct_devices_are_refused_before_solving() -> None:
    """18 devices of different speeds: 2^18 count vectors per down-set, refused by ``check``; 17
    are accepted (2^17)."""
    def system(k: int) -> Instance:
        g = Graph("one", [ModelInput("x", 0.0)], [Layer("a", "fc", ("x",), flops=1e9, output_bytes=1e3)])
        devs = [Device(f"d{i}", 1e9 * (i + 1)) for i in range(k)]
        links = [Link(a.id, b.id, 1e6) for a, b in itertools.permutations(devs, 2)]
        return Instance("wide", g, System(devs, links, "d0", None),
                        Problem(Objective("throughput"), constraints=Constraints(pipeline=True)))

    with pytest.raises(UnsupportedProblem, match="count"):
        get_solver("pipeline-dp").check(system(18), SolverOptions())
    get_solver("pipeline-dp").check(system(17), SolverOptions())


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_dp_equals_brute_on_the_shared_random_instances(inst: Instance) -> None:
    """The shared strategy (tests/strategies.py: any devices, one-way and missing links, sinks,
    inputs, every constraint) made a throughput problem under ``pipeline``: brute's answer, whether
    the DP's stage values prove it or CP-SAT finishes from the DP's pipeline."""
    from dataclasses import replace

    c = replace(inst.problem.constraints, pipeline=True, deadline_s=None, energy_budget_j={})
    inst = inst.with_problem(Problem(Objective("throughput"), execution=inst.problem.execution, constraints=c))
    best = _brute(inst)
    res = solve(inst, "pipeline-dp")
    if best is None:
        assert res.status == Status.INFEASIBLE, res.message
    else:
        assert res.status == Status.OPTIMAL, res.message
        assert res.objective == pytest.approx(best, rel=1e-6, abs=1e-9)
