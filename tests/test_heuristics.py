"""Heuristics (heft, local-search) and the cheap lower bounds: hand-computed runs, and on random tiny
instances never better than brute's optimum, never labelled optimal, with a bound below it."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from formulation import generators as gen
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.bounds import cheap_lower_bound
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status, Termination
from tests.strategies import graphs, instances, systems

PROPERTY = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def diamond(constraints: Constraints | None = None) -> Instance:
    """p (trusted; source and sink) and q, 1 GFLOP/s each, 1 MB/s both ways, no link latency.

    x (1 kB) -> a (1 GFLOP, out 100 kB) -> {b, c} (2 GFLOP each, out 100 kB) -> d (0.1 GFLOP, out 1 kB).
    """
    g = Graph(
        "diamond",
        [ModelInput("x", 1e3)],
        [
            Layer("a", "conv", ("x",), flops=1e9, output_bytes=1e5),
            Layer("b", "conv", ("a",), flops=2e9, output_bytes=1e5),
            Layer("c", "conv", ("a",), flops=2e9, output_bytes=1e5),
            Layer("d", "add", ("b", "c"), flops=1e8, output_bytes=1e3),
        ],
    )
    s = System([Device("p", 1e9, trusted=True), Device("q", 1e9)], [Link("p", "q", 1e6), Link("q", "p", 1e6)], "p", "p")
    return Instance("diamond", g, s, Problem(execution="parallel", constraints=constraints or Constraints()))


def test_heft_by_hand() -> None:
    """Mean costs equal the real ones (identical devices). Ranks: d 0.1 + 0.001 (to the sink) = 0.101;
    b = c = 2 + 0.1 + 0.101 = 2.201; a = 1 + 0.1 + 2.201 = 3.301: order a, b, c, d.
    a: EFT 1.0 on p (x is there), 1.001 on q -> p.  b: 3.0 on p, 1.1 + 2 = 3.1 on q -> p.
    c: p is busy until 3.0 -> 5.0; on q 3.1 -> q.  d: on p its input c arrives at 3.2 -> 3.3;
    on q (b arrives at 3.1, c is there at 3.1) 3.2, plus 0.001 to the sink -> 3.201 -> q.
    Bound: critical path a, b, d at full speed = 3.1 (> total work 5.1 / 2 devices).
    """
    res = solve(diamond(), "heft")
    assert res.status == Status.FEASIBLE and res.termination == Termination.COMPLETED
    assert res.placement == {"a": "p", "b": "p", "c": "q", "d": "q"}
    assert res.schedule == pytest.approx({"a": 0.0, "b": 1.0, "c": 1.1, "d": 3.1})
    assert res.objective == pytest.approx(3.201, rel=1e-12)
    assert res.bound == pytest.approx(3.1, rel=1e-12)
    assert res.gap == pytest.approx((3.201 - 3.1) / 3.201, rel=1e-9)


def test_heft_honours_allowed_and_private() -> None:
    # c may only run on p: after b (ends 3.0) it ends at 5.0; d then ends 5.1 on p (5.201 on q).
    res = solve(diamond(Constraints(allowed={"c": ("p",)})), "heft")
    assert res.placement == {"a": "p", "b": "p", "c": "p", "d": "p"}
    assert res.objective == pytest.approx(5.1, rel=1e-12)
    # b's output private: b and its reader d stay on the trusted p; c still goes to q.
    res = solve(diamond(Constraints(private=("b",))), "heft")
    assert res.placement["b"] == "p" and res.placement["d"] == "p"
    assert res.metrics is not None and res.metrics.feasible


def test_heft_honours_memory() -> None:
    # 1 MB of weights on b and c; p holds 1.5 MB (one of them plus working sets), q holds 0.5 MB
    # (neither): no placement exists, and HEFT says so without claiming a proof.
    g = diamond().graph
    layers = [
        Layer(lay.id, lay.op, lay.inputs, lay.flops, lay.output_bytes, 1e6 if lay.id in "bc" else 0.0)
        for lay in g.layers
    ]
    s = System(
        [Device("p", 1e9, memory_bytes=1.5e6, trusted=True), Device("q", 1e9, memory_bytes=5e5)],
        [Link("p", "q", 1e6), Link("q", "p", 1e6)],
        "p",
        "p",
    )
    inst = Instance("mem", Graph("g", g.inputs, layers), s, Problem(execution="parallel"))
    res = solve(inst, "heft")
    assert res.status == Status.NO_SOLUTION_FOUND  # a heuristic proves nothing
    assert "no device can take layer 'c'" in res.message
    assert solve(inst, "brute").status == Status.INFEASIBLE


def plateau_chain() -> Instance:
    """m (1 GFLOP/s, source and sink) and c (10 GFLOP/s), 1 MB/s both ways; c must run on m.

    x (1 kB) -> a (2 GFLOP, out 10 MB) -> b (2 GFLOP, out 1 kB) -> c (0.1 GFLOP, out 1 kB).
    mmm = 2 + 2 + 0.1 = 4.1. Single moves: cmm = 0.001 + 0.2 + 10 + 2 + 0.1 = 12.301,
    mcm = 2 + 10 + 0.2 + 0.001 + 0.1 = 12.301: a local optimum. Moving the segment a, b:
    ccm = 0.001 + 0.2 + 0.2 + 0.001 + 0.1 = 0.502, the optimum.
    """
    g = Graph(
        "plateau",
        [ModelInput("x", 1e3)],
        [
            Layer("a", "conv", ("x",), flops=2e9, output_bytes=1e7),
            Layer("b", "conv", ("a",), flops=2e9, output_bytes=1e3),
            Layer("c", "conv", ("b",), flops=1e8, output_bytes=1e3),
        ],
    )
    s = System(
        [Device("m", 1e9, trusted=True), Device("c", 1e10)], [Link("m", "c", 1e6), Link("c", "m", 1e6)], "m", "m"
    )
    return Instance("plateau", g, s, Problem(constraints=Constraints(allowed={"c": ("m",)})))


def test_segment_moves_leave_the_plateau_of_single_moves() -> None:
    inst = plateau_chain()
    ls = get_solver("local-search")
    single = ls.solve(inst, SolverOptions(raw={"segment_samples": 0, "restarts": 0}))
    assert single.placement == {"a": "m", "b": "m", "c": "m"}
    assert single.objective == pytest.approx(4.1, rel=1e-12)
    full = ls.solve(inst, SolverOptions(seed=5))
    assert full.placement == {"a": "c", "b": "c", "c": "m"}
    assert full.objective == pytest.approx(0.502, rel=1e-12)
    assert full.status == Status.FEASIBLE  # even when it is optimal, a heuristic does not say so
    assert solve(inst, "brute").objective == pytest.approx(0.502, rel=1e-12)
    # Sequential latency is additive: the bound is each layer at its fastest, 0.2 + 0.2 + 0.1.
    assert full.bound == pytest.approx(0.5, rel=1e-12)


def test_local_search_is_seeded_and_starts_from_the_warm_start() -> None:
    inst = gen.instance(gen.layered_dag(12, width=3, seed=4), gen.system(3, seed=4), Problem(execution="parallel"))
    ls = get_solver("local-search")
    a = ls.solve(inst, SolverOptions(seed=11))
    b = ls.solve(inst, SolverOptions(seed=11))
    assert a.placement == b.placement and a.objective == b.objective and a.extra == b.extra
    # From a's answer as the warm start, with no step allowed, the answer is a's placement again.
    frozen = ls.solve(inst, SolverOptions(warm_start=a.placement, raw={"max_steps": 0}))
    assert frozen.placement == a.placement and frozen.extra["steps"] == 0
    assert a.objective is not None and a.objective <= solve(inst, "local").objective  # type: ignore[operator]
    with pytest.raises(UnsupportedProblem, match="warm_start"):
        ls.solve(inst, SolverOptions(warm_start={"nope": "d0"}))


# --------------------------------------------------------------------------------------------------
# Random tiny instances against brute
# --------------------------------------------------------------------------------------------------


@st.composite
def heft_instances(draw: st.DrawFn) -> Instance:
    g = draw(graphs(max_layers=6))
    s = draw(systems(max_devices=3))
    devs = list(s.device_ids)
    c = Constraints(
        memory=draw(st.booleans()),
        allowed=draw(st.sampled_from([{}, {g.layer_ids[-1]: (devs[0],)}, {g.layer_ids[0]: tuple(devs[1:])}])),
        private=draw(st.sampled_from([(), (g.input_ids[0],), (g.layer_ids[0],)])),
        deadline_s=draw(st.sampled_from([None, None, 2.0])),
    )
    return Instance("heft", g, s, Problem(Objective("latency"), "parallel", None, c))


def _check_heuristic(name: str, inst: Instance, options: SolverOptions | None = None) -> None:
    ref = solve(inst, "brute")
    res = get_solver(name).solve(inst, options)
    event(f"brute {ref.status.value}, {name} {res.status.value}")
    assert res.status in (Status.FEASIBLE, Status.NO_SOLUTION_FOUND), res.message
    assert res.termination != Termination.OPTIMAL
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.NO_SOLUTION_FOUND
        return
    assert ref.objective is not None
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12
    if res.status == Status.FEASIBLE:
        assert res.objective is not None and res.objective >= ref.objective * (1 - 1e-9) - 1e-12
        assert res.gap >= 0 and (res.gap > 0 or res.bound == res.objective)


@PROPERTY
@given(heft_instances())
def test_heft_is_never_better_than_brute_and_bounds_below(inst: Instance) -> None:
    _check_heuristic("heft", inst)


@PROPERTY
@given(instances(max_layers=5))
def test_local_search_is_never_better_than_brute_and_bounds_below(inst: Instance) -> None:
    _check_heuristic("local-search", inst, SolverOptions(seed=1, raw={"max_steps": 30, "restarts": 1}))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_layers=5))
def test_cheap_lower_bound_is_below_the_optimum(inst: Instance) -> None:
    ref = solve(inst, "brute")
    assume(ref.status == Status.OPTIMAL)
    lb = cheap_lower_bound(inst)
    assert ref.objective is not None
    assert math.isfinite(lb)
    assert lb <= ref.objective * (1 + 1e-9) + 1e-12


def test_period_bound_counts_the_heaviest_colocation_class() -> None:
    """Period of the diamond: slowest layer 2 s, total 5.1 s / 2 devices = 2.55 s; with b and c
    colocated one device computes both, 2 + 2 = 4 s, on either device (both 1 GFLOP/s). The bound is
    tight: b and c on q (4 s), a and d on p (1.1 s), links busy 0.2 and 0.2 s (overlapped)."""
    period = Problem(objective=Objective("throughput"), execution="parallel")
    free = diamond().with_problem(period)
    assert cheap_lower_bound(free) == pytest.approx(2.55, rel=1e-12)
    tied = free.with_problem(Problem(objective=Objective("throughput"), execution="parallel",
                                     constraints=Constraints(colocate=(("b", "c"),))))
    assert cheap_lower_bound(tied) == pytest.approx(4.0, rel=1e-12)
    assert solve(tied, "brute").objective == pytest.approx(4.0, rel=1e-9)


def test_period_bound_adds_unavoidable_communication_of_a_serial_device() -> None:
    """Both devices with ``comm_overlap: false``, b and c colocated. The class computes 4 s; it
    receives a's output (0.1 s) or computes a (1 s): 0.1; b's output goes to d, sent (0.1 s) or d
    computed there (0.1 s): 0.1; c's reader d is already counted: 0. Bound 4.2 s. Brute: b, c, d
    on q compute 4.1 s, receive a once (0.1 s) and send d's output to the sink p (0.001 s): 4.201 s."""
    from dataclasses import replace

    inst = diamond()
    s = inst.system
    serial = System([replace(d, comm_overlap=False) for d in s.devices], list(s.links.values()), s.source, s.sink)
    tied = Instance("serial", inst.graph, serial, Problem(objective=Objective("throughput"), execution="parallel",
                                                          constraints=Constraints(colocate=(("b", "c"),))))
    assert cheap_lower_bound(tied) == pytest.approx(4.2, rel=1e-12)
    assert solve(tied, "brute").objective == pytest.approx(4.201, rel=1e-9)


@pytest.mark.parametrize("seed", range(60))
def test_cheap_lower_bound_is_below_the_optimum_with_features(seed: int) -> None:
    """Colocation classes, send-once and non-overlapped devices: still below brute's optimum."""
    from tests.feature_instances import feature_instance

    inst = feature_instance(seed)
    ref = solve(inst, "brute")
    if ref.status != Status.OPTIMAL:
        return
    assert ref.objective is not None
    assert cheap_lower_bound(inst) <= ref.objective * (1 + 1e-9) + 1e-12


def test_heft_zero_length_layers_do_not_overlap() -> None:
    """Zero-FLOP slices sharing a start with real layers must not break the insertion policy."""
    from formulation.model import Device, Graph, Instance, Layer, ModelInput, Problem, System
    from solvers.registry import solve as solve_by_name

    g = Graph(
        "z",
        [ModelInput("x", 100.0)],
        [
            Layer("s0", "slice", ("x",), 0.0, 10.0),
            Layer("s1", "slice", ("x",), 0.0, 10.0),
            Layer("a", "conv", ("s0",), 1e9, 10.0),
            Layer("b", "conv", ("s1",), 1e9, 10.0),
        ],
    )
    inst = Instance("z", g, System([Device("d0", 1e9)], [], "d0", "d0"), Problem(execution="parallel"))
    res = solve_by_name(inst, "heft")
    assert res.status.value == "feasible", res.message
    assert res.objective == 2.0  # a and b, 1 s each, one after the other on the only device
