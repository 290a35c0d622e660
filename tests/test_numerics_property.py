"""Extreme magnitudes in every numeric field: every exact solver equals ``brute`` or refuses.

Random tiny instances (tests/strategies.py: 1-4 layers, 2-3 devices, every objective, both
latency modes, constraints) get some of their figures replaced by log-uniform magnitudes from
1e-300 to 1e300: FLOPs, tensor, parameter and workspace bytes, compute, memory bandwidth, memory,
powers, prices, link bandwidth, latency, radio powers and prices, objective weights, deadline and
energy budgets. Every registered exact solver whose capabilities cover the instance must then
either give ``brute``'s answer (the same objective within 1e-6 relative, or infeasible when brute
finds no finite feasible placement) or refuse it with the bad-input error before solving
(``InstanceError`` or ``SolverError``: exit code 2) — never another answer and never a traceback.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.errors import InstanceError
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.base import RawSolution, Solver
from solvers.options import SolverError, SolverOptions
from solvers.registry import get_solver, names, register, unregister
from solvers.result import Status, Termination
from tests.strategies import instances

#: Exact solvers under test (brute is the reference).
EXACT = [n for n in names() if n != "brute" and get_solver(n).exact]

#: Options that keep each solve short on these tiny instances (CP-SAT without heuristic hints).
OPTIONS: dict[str, SolverOptions] = {"cpsat": SolverOptions(time_limit_s=20, raw={"hint": "none"})}


def extreme(draw: st.DrawFn) -> float:
    """A log-uniform magnitude in [1e-300, 1e300]."""
    return float(10.0 ** draw(st.floats(-300.0, 300.0, allow_nan=False)))


@st.composite
def extreme_instances(draw: st.DrawFn, p: float = 0.25) -> Instance:
    """A tiny random instance with each numeric field made extreme with probability ``p``."""
    base = draw(instances(max_layers=4, max_devices=3))

    def f(x: float) -> float:
        return extreme(draw) if draw(st.floats(0.0, 1.0)) < p else x

    g, s, prob = base.graph, base.system, base.problem
    layers = [
        replace(
            lay,
            flops=f(lay.flops),
            output_bytes=f(lay.output_bytes),
            param_bytes=f(lay.param_bytes),
            workspace_bytes=f(lay.workspace_bytes),
        )
        for lay in g.layers
    ]
    inputs = [ModelInput(t.id, f(t.bytes)) for t in g.inputs]
    graph = Graph(g.name, inputs, layers, [g.layer_ids[o] for o in g.outputs])
    devices = [
        replace(
            d,
            compute_flops_per_s=f(d.compute_flops_per_s),
            memory_bandwidth_bytes_per_s=None
            if d.memory_bandwidth_bytes_per_s is None
            else f(d.memory_bandwidth_bytes_per_s),
            memory_bytes=f(d.memory_bytes),
            power_active_w=f(d.power_active_w),
            power_idle_w=f(d.power_idle_w),
            price_usd_per_s=f(d.price_usd_per_s),
        )
        for d in s.devices
    ]
    links = [
        replace(
            lk,
            bandwidth_bytes_per_s=f(lk.bandwidth_bytes_per_s),
            latency_s=f(lk.latency_s),
            tx_power_w=f(lk.tx_power_w),
            rx_power_w=f(lk.rx_power_w),
            price_usd_per_byte=f(lk.price_usd_per_byte),
        )
        for lk in s.links.values()
    ]
    system = System(devices, links, s.source, s.sink)
    c = prob.constraints
    cons = replace(
        c,
        deadline_s=None if c.deadline_s is None else f(c.deadline_s),
        energy_budget_j={d: f(b) for d, b in c.energy_budget_j.items()},
    )
    obj = prob.objective
    if obj.kind == "weighted":
        obj = Objective("weighted", {m: f(w) for m, w in obj.weights.items()})
    return Instance("extreme", graph, system, replace(prob, objective=obj, constraints=cons))


def check_against_brute(inst: Instance) -> list[str]:
    """Every exact solver's disagreement with brute on ``inst`` (empty when all agree or refuse)."""
    ref = get_solver("brute").solve(inst)
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    wrong = []
    for name in EXACT:
        solver = get_solver(name)
        try:
            res = solver.solve(inst, OPTIONS.get(name, SolverOptions(time_limit_s=20)))
        except (InstanceError, SolverError):
            continue  # refused before solving: the exit-2 contract
        if ref.status == Status.INFEASIBLE:
            if res.status != Status.INFEASIBLE:
                wrong.append(
                    f"{name}: {res.status.value} {res.objective!r} where brute finds no solution ({res.message})"
                )
            continue
        assert ref.objective is not None
        # never a wrong answer: an unproven scip result at brute's value is not one (in full parallel
        # test runs scip once claimed optimality with a bound read as 0 on a weighted objective of
        # value 1.0, reported feasible by the gap check; an open defect, see docs/milp.md)
        proven_or_right = res.status == Status.OPTIMAL or (res.status == Status.FEASIBLE and name == "scip")
        if not proven_or_right or not math.isclose(
            float(res.objective if res.objective is not None else math.nan), ref.objective, rel_tol=1e-6, abs_tol=0.0
        ):
            wrong.append(
                f"{name}: {res.status.value} {res.objective!r} where brute proves {ref.objective!r} ({res.message})"
            )
    return wrong


def _settings(n: int) -> Any:
    return settings(
        max_examples=n, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )


@_settings(500)
@given(extreme_instances())
def test_extreme_magnitudes_equal_brute_or_are_refused(inst: Instance) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf in the instance's own tables
        assert check_against_brute(inst) == []


@pytest.mark.slow
@_settings(3000)
@given(extreme_instances(p=0.15))
def test_extreme_magnitudes_many(inst: Instance) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert check_against_brute(inst) == []


class AllOnSource(Solver):
    """A wrong "exact" solver: everything on the source, claimed optimal."""

    name = "all-on-source"
    exact = True

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        return RawSolution(Termination.OPTIMAL, placement=np.full(inst.n, inst.system.source_index, dtype=np.int64))


def test_a_wrong_answer_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A solver that answers another value than brute is reported (the property can fail)."""
    g = Graph("g", [ModelInput("x", 1e3)], [Layer("a", "op", ("x",), 1e9, output_bytes=1.0)])
    s = System([Device("m", 1e9), Device("c", 1e12)], [Link("m", "c", 1e9), Link("c", "m", 1e9)], "m", "m")
    inst = Instance("t", g, s, Problem(Objective("latency"), constraints=Constraints(memory=False)))
    register("all-on-source", AllOnSource)
    try:
        monkeypatch.setitem(globals(), "EXACT", [*EXACT, "all-on-source"])
        wrong = check_against_brute(inst)
    finally:
        unregister("all-on-source")
    assert len(wrong) == 1 and wrong[0].startswith("all-on-source: optimal 1.0 where brute proves")
