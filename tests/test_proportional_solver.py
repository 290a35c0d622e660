"""The registered solver ``proportional`` (CoEdge row split), against hand-computed values and the direct path."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from formulation.granularity.proportional import marked_stack
from formulation.model import Device, Graph, Instance, Layer, Link, Problem, System
from solvers.options import OptionNotSupported, SolverOptions, UnsupportedProblem
from solvers.proportional import Proportional, proportional_split, split_evaluation
from solvers.registry import get_solver, names, solve, solver_info
from solvers.result import Result, Status
from solvers.testing import CASES, applies, case, judge
from tests.test_granularity_channel import one_conv
from tests.test_granularity_spatial import stack_instance

SPLIT_CASE = "split-conv-rows-latency"


def marked(inst: Instance, layers: tuple[str, ...], system: System | None = None, name: str = "") -> Instance:
    """``inst`` with ``layers`` marked ``split: proportional`` (parallel latency, optionally another system)."""
    lays = [replace(v, attrs={**v.attrs, "split": "proportional"}) if v.id in layers else v for v in inst.graph.layers]
    g = Graph(inst.graph.name, list(inst.graph.inputs), lays)
    return Instance(name or inst.name, g, system or inst.system, Problem(execution="parallel"))


def three_devices(speed: float, memory: float = math.inf) -> System:
    """a (speed), b (speed / 2), c (2 speed, ``memory`` bytes); a <-> b at 1 MB/s, a <-> c at 0.5 MB/s."""
    links = [("a", "b", 1e6), ("b", "a", 1e6), ("a", "c", 5e5), ("c", "a", 5e5)]
    devices = [Device("a", speed), Device("b", speed / 2), Device("c", speed * 2, memory_bytes=memory)]
    return System(devices, [Link(u, v, bw) for u, v, bw in links], "a", "a")


def test_registered_with_capabilities() -> None:
    assert "proportional" in names()
    info = solver_info("proportional")
    assert info.available and not info.exact
    assert info.capabilities.objectives == {"latency"} and info.capabilities.executions == {"parallel"}
    assert info.capabilities.splits and info.capabilities.constraints == {"memory"}


def test_hand_computed_split() -> None:
    """The conformance case (solvers/testing.py): one 3x3 conv on 10x10 rows, two devices."""
    inst = case(SPLIT_CASE).build()
    res = solve(inst, "proportional")
    assert res.status == Status.FEASIBLE and res.message == ""
    # d1 takes the last 3 rows: it receives input rows 6..9 (4 rows, 4 s), computes 3 * 1.8 = 5.4 s
    # and returns 3 rows (3 s): 12.4 s; d0 computes 7 * 1.8 = 12.6 s. Makespan 12.6 s.
    assert res.objective == pytest.approx(12.6) and res.metrics is not None
    assert res.metrics.latency_parallel_s == pytest.approx(12.6)
    view = res.extra["granularity"]
    assert view["rows"] == {"d0": 7, "d1": 3} and view["row_bounds"] == [0, 7, 10] and view["stack"] == ["c", "c"]
    assert view["placement"] == {"c": ["d0", "d1"]}
    # the file's own layer id, on the device holding the largest share (7 of 10 rows)
    assert res.placement == {"c": "d0"} and res.schedule == {}
    assert view["node_placement"] == {"c#in0": "d0", "c#in1": "d0", "c#p0": "d0", "c#p1": "d1", "c#out": "d0"}
    # d1's part starts once its 4 input rows (160 B at 40 B/s) arrived; the gather once both parts are back
    assert view["node_schedule"]["c#p1"] == pytest.approx(4.0) and view["node_schedule"]["c#out"] == pytest.approx(12.6)
    # The model over-estimates (both halo rows, 3.8 h + 2 = 13.4 s at h = 3), so it bounds nothing: no bound.
    assert res.extra["model_makespan_s"] == pytest.approx(13.4)
    assert res.bound == -math.inf and res.gap == math.inf
    payload = json.loads(json.dumps(res.to_dict()))
    assert payload["bound"] is None and payload["extra"]["granularity"]["rows"] == {"d0": 7, "d1": 3}


def test_conformance_case_runs_only_for_the_split_solver() -> None:
    split_case = case(SPLIT_CASE)
    assert judge(get_solver("proportional"), split_case) == []
    inst = split_case.build()
    for name in names():
        if name != "proportional" and solver_info(name).available:
            assert not applies(get_solver(name), inst), name
    # and it refuses every other case, before building anything
    assert [c.name for c in CASES if applies(Proportional(), c.build())] == [SPLIT_CASE]


def test_refusals_are_clear() -> None:
    with pytest.raises(UnsupportedProblem, match=r"needs a layer stack marked 'split: proportional'"):
        Proportional().solve(case("diamond-parallel-latency").build())
    with pytest.raises(UnsupportedProblem, match=r"execution 'sequential'"):
        Proportional().solve(case("diamond-sequential-latency").build())
    with pytest.raises(UnsupportedProblem, match=r"does not support a layer stack marked 'split: proportional' "
                                                r"\(solved by proportional\)"):
        get_solver("brute").solve(case(SPLIT_CASE).build())
    # a marked range that is not a chain: c1 and c3 marked, c2 between them left out, a branch read c1
    inst = marked(stack_instance(), ("c1", "c3"))
    extra = Layer("side", "relu", ("c1",), 1.0, 4.0)
    g = Graph("branch", list(inst.graph.inputs), [*inst.graph.layers, extra])
    branch = Instance("branch", g, inst.system, inst.problem)
    with pytest.raises(UnsupportedProblem, match=r"the marked stack c1\.\.c3"):
        Proportional().solve(branch)
    with pytest.raises(OptionNotSupported, match=r"option\(s\) \[.seed.\]"):
        Proportional().solve(case(SPLIT_CASE).build(), SolverOptions(seed=1))


def test_marked_stack_reads_the_layer_attrs() -> None:
    assert marked_stack(stack_instance()) is None
    assert marked_stack(marked(stack_instance(), ("c1", "c2", "c3"))) == ("c1", "c3")
    assert marked_stack(marked(stack_instance(), ("c2",))) == ("c2", "c2")


SIZES = [(speed, mem, stack) for speed in (1e6, 1e7) for mem in (math.inf, 3000.0, 1500.0)
         for stack in (("c1", "c2", "c3"), ("c1", "c2"), ("c3",))]


@pytest.mark.parametrize(("speed", "memory", "stack"), SIZES)
def test_equal_to_the_direct_path(speed: float, memory: float, stack: tuple[str, ...]) -> None:
    """The registered solver reports exactly what ``proportional_split`` builds and the evaluator says of it."""
    inst = marked(stack_instance(), stack, three_devices(speed, memory), name="stack3")
    plan = proportional_split(inst, stack[0], stack[-1])
    res = solve(inst, "proportional")
    assert res.status == Status.FEASIBLE
    view = res.extra["granularity"]
    assert view["rows"] == plan.rows and view["row_bounds"] == list(plan.row_bounds)
    assert view["node_placement"] == plan.placement
    assert res.objective == pytest.approx(plan.evaluation.latency_parallel_s, rel=1e-12)
    assert res.extra["model_makespan_s"] == pytest.approx(plan.model_makespan_s, rel=1e-12)
    ev = split_evaluation(inst, res)
    assert ev is not None and ev.objective == pytest.approx(res.objective, rel=1e-12)
    assert set(res.placement) == set(inst.graph.layer_ids)


def test_equal_to_the_direct_path_on_the_granularity_case() -> None:
    """tests/test_granularity_channel.py's one-conv case, marked: rows 7/3, exact 12.6 s, model 13.4 s."""
    inst = marked(one_conv(), ("c",))
    plan = proportional_split(one_conv(), "c")
    res = solve(inst, "proportional")
    assert res.extra["granularity"]["rows"] == plan.rows == {"d0": 7, "d1": 3}
    assert res.objective == pytest.approx(plan.evaluation.latency_parallel_s) == pytest.approx(12.6)


def test_the_judge_rebuilds_the_split_and_catches_a_wrong_one() -> None:
    """A result whose reported rows are not those its node placement was judged on is caught."""

    class Shifted(Proportional):
        name = "shifted"

        def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
            res = super().solve(inst, options)
            res.extra["granularity"]["row_bounds"] = [0, 6, 10]  # d1 would compute 4 rows, not 3
            return res

    problems = judge(Shifted(), case(SPLIT_CASE))
    # rows [6, 10) on d1 need input rows 5..9: 5 rows arrive at 5 s, after the reported start 4 s; from
    # that start its 4 rows take 7.2 s and 4 s back: 4 + 7.2 + 4 = 15.2 s > the gather's start 12.6 s
    assert len(problems) == 1 and "the evaluator finds the placement infeasible" in problems[0]
    assert "input 'c#in1' arrives at 5 s" in problems[0] and "input 'c#p1' arrives at 15.2 s" in problems[0]
