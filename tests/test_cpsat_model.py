"""CP-SAT on small instances with hand-computed optima (the arithmetic is in each docstring).

Devices ``A`` (source and sink) and ``B`` compute at 1 GFLOP/s unless stated; the link A <-> B has
1 MB/s and no latency, so 1e5 bytes take 0.1 s.
"""

from __future__ import annotations

import math

import pytest

from formulation.evaluator import evaluate
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
from solvers.options import SolverOptions
from solvers.registry import get_solver
from solvers.result import Status

OPTS = SolverOptions(time_limit_s=30, seed=0)


def _system(
    b_compute: float = 1e9,
    a_power: tuple[float, float] = (0.0, 0.0),
    radio: tuple[float, float] = (0.0, 0.0),
    a_memory: float = math.inf,
    sink: str | None = "A",
) -> System:
    devices = [
        Device("A", 1e9, power_active_w=a_power[0], power_idle_w=a_power[1], memory_bytes=a_memory, trusted=True),
        Device("B", b_compute),
    ]
    tx, rx = radio
    links = [Link("A", "B", 1e6, 0.0, tx, rx), Link("B", "A", 1e6, 0.0, tx, rx)]
    return System(devices, links, "A", sink)


def _fork() -> Graph:
    """x (1e5 B) -> s (1 GFLOP) -> p, q (2 GFLOP each) -> j (1 GFLOP, 10 B out); outputs 1e5 B."""
    layers = [
        Layer("s", "conv", ("x",), 1e9, 1e5),
        Layer("p", "conv", ("s",), 2e9, 1e5),
        Layer("q", "conv", ("s",), 2e9, 1e5),
        Layer("j", "add", ("p", "q"), 1e9, 10.0),
    ]
    return Graph("fork", [ModelInput("x", 1e5)], layers)


def _solve(inst: Instance):  # type: ignore[no-untyped-def]
    res = get_solver("cpsat").solve(inst, OPTS)
    assert res.status == Status.OPTIMAL, res.message
    # The evaluator's value is within the worst-case scaling error of the model's own value.
    assert abs(res.solver_objective - res.objective) <= res.extra["scaling_error"] + 1e-9
    return res


def test_parallel_latency_runs_branches_concurrently() -> None:
    """All on A: 1 + 2 + 2 + 1 = 6 s. Best: s, p on A and q, j on B. s ends at 1 and reaches B at
    1.1; q runs 1.1-3.1 on B while p runs 1-3 on A; p's output reaches B at 3.1; j runs 3.1-4.1
    and its 10 B reach the sink A at 4.1 + 1e-5 = 4.10001 s. (With j on A instead, q's output
    arrives at 3.2 and L = 4.2 s; with s on B, x costs 0.1 s first and L >= 4.2 s.)"""
    inst = Instance("fork", _fork(), _system(), Problem(Objective("latency"), "parallel"))
    res = _solve(inst)
    assert res.objective == pytest.approx(4.10001, rel=1e-12)
    assert get_solver("brute").solve(inst).objective == pytest.approx(4.10001, rel=1e-12)
    assert res.placement["p"] != res.placement["q"]
    ev = evaluate(inst, res.placement, res.schedule)
    assert ev.feasible and ev.latency_parallel_s == pytest.approx(4.10001, rel=1e-12)
    assert res.schedule["j"] == pytest.approx(3.1, rel=1e-12)


def test_sequential_latency_ships_a_tensor_once_per_device() -> None:
    """s on A, p, q, j on B (forced): s's output is read by p and q on B but sent once (0.1 s); j's
    10 B go back to the sink A (1e-5 s): L = 1 + 0.1 + 2 + 2 + 1 + 0.00001 = 6.10001 s
    (6.20001 s if s were sent once per consumer)."""
    cons = Constraints(allowed={"s": ("A",), "p": ("B",), "q": ("B",), "j": ("B",)})
    inst = Instance("fork", _fork(), _system(), Problem(Objective("latency"), "sequential", None, cons))
    res = _solve(inst)
    assert res.objective == pytest.approx(6.10001, rel=1e-12)


def test_throughput_is_the_bottleneck() -> None:
    """Chain x -> a (1 GFLOP, 1e5 B out) -> b (1 GFLOP), no sink. Both on A: P = 2 s; a on A and
    b on B: P = max(1, 1, link 0.1) = 1 s, the optimum (each device holds at least one layer)."""
    layers = [Layer("a", "conv", ("x",), 1e9, 1e5), Layer("b", "conv", ("a",), 1e9, 1e3)]
    inst = Instance(
        "pipe",
        Graph("chain", [ModelInput("x", 1e5)], layers),
        _system(sink=None),
        Problem(Objective("throughput"), "parallel"),
    )
    res = _solve(inst)
    assert res.objective == pytest.approx(1.0, rel=1e-12)
    assert res.metrics is not None and res.metrics.throughput_per_s == pytest.approx(1.0)


def test_parallel_energy_idle_term_is_clipped_at_zero() -> None:
    """Energy of A only (active 2 W, idle 1 W; radio tx 1 W, rx 0.5 W); B 10 GFLOP/s.
    Layer s (1 GFLOP, 1e5 B out) reads three model inputs of 1e5 B each.
    On A: E = 2 W x 1 s = 2 J.  On B: the three inputs travel concurrently, 0-0.1 s; s runs
    0.1-0.2 s; its output is back at 0.3 s = L. A sends 3 x 0.1 s and receives 0.1 s, busy 0.4 s >
    L, so idle = max(0, 0.3 - 0.4) = 0 and E = 1 x 0.3 + 0.5 x 0.1 = 0.35 J (0.25 J without the
    max)."""
    graph = Graph(
        "three-in",
        [ModelInput(f"x{i}", 1e5) for i in range(3)],
        [Layer("s", "conv", ("x0", "x1", "x2"), 1e9, 1e5)],
    )
    sys = _system(b_compute=1e10, a_power=(2.0, 1.0), radio=(1.0, 0.5))
    inst = Instance("idle", graph, sys, Problem(Objective("energy"), "parallel", ("A",)))
    res = _solve(inst)
    assert res.placement == {"s": "B"}
    assert res.objective == pytest.approx(0.35, rel=1e-9)


def test_sequential_energy_idle_term() -> None:
    """Same instance, sequential: L = 3 x 0.1 + 0.1 + 0.1 = 0.5 s; A busy 0.4 s, idle 0.1 s:
    E = 0.3 + 0.05 + 1 x 0.1 = 0.45 J (< 2 J on A)."""
    graph = Graph(
        "three-in",
        [ModelInput(f"x{i}", 1e5) for i in range(3)],
        [Layer("s", "conv", ("x0", "x1", "x2"), 1e9, 1e5)],
    )
    sys = _system(b_compute=1e10, a_power=(2.0, 1.0), radio=(1.0, 0.5))
    inst = Instance("idle", graph, sys, Problem(Objective("energy"), "sequential", ("A",)))
    res = _solve(inst)
    assert res.objective == pytest.approx(0.45, rel=1e-9)


def test_deadline_exactly_met_and_missed() -> None:
    """Fork, parallel: the best makespan 4.10001 s meets a deadline of exactly 4.10001 s (energy
    objective with no power: value 0); a deadline of 4.1 s is infeasible."""
    for deadline, status in ((4.10001, Status.OPTIMAL), (4.1, Status.INFEASIBLE)):
        cons = Constraints(deadline_s=deadline)
        inst = Instance("fork", _fork(), _system(), Problem(Objective("energy"), "parallel", None, cons))
        res = get_solver("cpsat").solve(inst, OPTS)
        assert res.status == status, (deadline, res.message)


def test_memory_limit_exactly_full() -> None:
    """Chain a (1 GFLOP, params 1000 B, out 100 B) -> b (1 GFLOP, params 500 B, out 1 B), input x
    50 B, B 10x slower. Both on A need params 1000 + 500 plus the peak max(a: 100 out + 50 in,
    b: 1 out + 100 in) = 150: 1650 B. With A's memory exactly 1650 B that fits (latency 2 s); with
    1649 B, b goes to B (A then needs 1000 + 150): 1 + 100 B at 1 MB/s (1e-4 s) + 10 s on B + 1 B
    back to the sink (1e-6 s) = 11.000101 s (a on B instead: 5e-5 + 10 + 1e-4 + 1 s, worse)."""
    layers = [
        Layer("a", "conv", ("x",), 1e9, 100.0, param_bytes=1000.0),
        Layer("b", "conv", ("a",), 1e9, 1.0, param_bytes=500.0),
    ]
    graph = Graph("chain", [ModelInput("x", 50.0)], layers)
    for mem, expected in ((1650.0, 2.0), (1649.0, 1.0 + 1e-4 + 10.0 + 1e-6)):
        inst = Instance("mem", graph, _system(b_compute=1e8, a_memory=mem), Problem())
        res = _solve(inst)
        assert res.objective == pytest.approx(expected, rel=1e-12), mem


def test_missing_link_forbids_placement() -> None:
    """Without the channel B -> A, a layer on B could never return its output to the sink A:
    the fork stays on A, 6 s sequential."""
    devices = [Device("A", 1e9, trusted=True), Device("B", 1e10)]
    sys = System(devices, [Link("A", "B", 1e6)], "A", "A")
    inst = Instance("oneway", _fork(), sys, Problem(Objective("latency"), "sequential"))
    res = _solve(inst)
    assert set(res.placement.values()) == {"A"}
    assert res.objective == pytest.approx(6.0)


def test_schedule_is_checked_by_the_evaluator() -> None:
    """The returned schedule (float earliest starts of the solver's device orders) passes the
    evaluator's precedence and overlap checks; its makespan is the reported latency."""
    inst = Instance("fork", _fork(), _system(b_compute=3e9), Problem(Objective("latency"), "parallel"))
    res = _solve(inst)
    ev = evaluate(inst, res.placement, res.schedule)
    assert ev.feasible, ev.violations
    assert ev.latency_parallel_s == pytest.approx(res.objective, rel=1e-12)
