"""Properties of the version-2 cost model and brute force on random tiny instances (hypothesis).

* brute force equals the least evaluator objective over every placement (``none``, ``share``), and
  under ``schedule`` its placement and schedule, re-evaluated, give its objective, never above the
  default schedule of any placement;
* the joint-schedule search equals a plain enumeration of every task order;
* the ``share`` fractions are optimal against random fractions;
* a one-request, direct-routing, ``none`` workload evaluates exactly as the version-1 instance it is.
"""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.evaluator.contention import share_latencies
from formulation.evaluator.jobshop import completions, optimal_schedule
from formulation.evaluator.workload_eval import workload_metrics
from formulation.loader import load_instance_data
from formulation.model import Instance, Problem
from formulation.routing import direct_routes
from formulation.workload import RequestSpec, lower
from solvers.brute import count_placements, enumerate_placements
from solvers.registry import solve
from solvers.result import Status
from tests.strategies import instances
from tests.strategies_v2 import v2_data

FAST = settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _best_by_evaluator(inst: Instance) -> float:
    best = math.inf
    for P in enumerate_placements(inst, 0, count_placements(inst)):
        ev = evaluate(inst, P)
        if ev.feasible and ev.objective < best:
            best = ev.objective
    return best


def _check_brute(data: dict) -> None:  # type: ignore[type-arg]
    inst = load_instance_data(data)
    res = solve(inst, "brute")
    assert res.status in (Status.OPTIMAL, Status.INFEASIBLE), res.message
    ref = _best_by_evaluator(inst)
    if inst.workload is not None and inst.workload.contention == "schedule":
        if res.status == Status.INFEASIBLE:
            assert math.isinf(ref)  # no default schedule is feasible either
            return
        ev = evaluate(inst, res.placement, res.schedule)
        assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-9, abs=1e-12)
        assert res.objective <= ref * (1 + 1e-9) + 1e-12
        return
    if res.status == Status.INFEASIBLE:
        assert math.isinf(ref)
    else:
        assert res.objective == pytest.approx(ref, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("contention", ["none", "share", "schedule"])
@FAST
@given(data=st.data())
def test_brute_against_the_evaluator(contention: str, data: st.DataObject) -> None:
    _check_brute(data.draw(v2_data(contention)))


@pytest.mark.slow
@pytest.mark.parametrize("contention", ["none", "share", "schedule"])
@SLOW
@given(data=st.data())
def test_brute_against_the_evaluator_many(contention: str, data: st.DataObject) -> None:
    _check_brute(data.draw(v2_data(contention)))


def _naive_best(tasks, value) -> float:  # type: ignore[no-untyped-def]
    """Every permutation that respects precedence, each task at its earliest start (append rule)."""
    best = math.inf
    n = tasks.size
    for order in permutations(range(n)):
        pos = {t: i for i, t in enumerate(order)}
        if any(pos[p] > pos[i] for i in range(n) for p, _ in tasks.preds[i]):
            continue
        end = [0.0] * n
        start = np.zeros(n)
        free: dict[int, float] = {}
        for i in order:
            st0 = max([tasks.release[i], free.get(tasks.resource[i], 0.0), *(end[p] + d for p, d in tasks.preds[i])])
            start[i], end[i] = st0, st0 + tasks.dur[i]
            free[tasks.resource[i]] = end[i]
        best = min(best, value(completions(tasks, start)))
    return best


@FAST
@given(data=st.data())
def test_schedule_search_equals_enumeration(data: st.DataObject) -> None:
    inst = load_instance_data(data.draw(v2_data("schedule", max_total_layers=4)))
    total = count_placements(inst)
    if total == 0:  # allowed and private leave no placement
        return
    P = enumerate_placements(inst, 0, total)[data.draw(st.integers(0, total - 1))]
    wm = workload_metrics(inst, P)
    if wm.static.get("link") or wm.tasks.size > 8:
        return
    rel = np.array([r.release_s for r in inst.workload.requests])  # type: ignore[union-attr]

    def value(C: np.ndarray) -> float:
        return wm.objective(C - rel)

    found = optimal_schedule(wm.tasks, value)
    ref = _naive_best(wm.tasks, value)
    assert found is not None
    assert found[0] == pytest.approx(ref, rel=1e-12, abs=1e-15)


@FAST
@given(data=st.data())
def test_share_fractions_beat_random_fractions(data: st.DataObject) -> None:
    drawn = data.draw(v2_data("share"))
    for r in drawn["workload"]:  # deadlines constrain the fractions; random ones ignore them
        r.pop("deadline", None)
    inst = load_instance_data(drawn)
    wl = inst.workload
    assert wl is not None
    total = count_placements(inst)
    if total == 0:  # allowed and private leave no placement
        return
    P = enumerate_placements(inst, 0, total)[data.draw(st.integers(0, total - 1))]
    ld = workload_metrics(inst, P).loads
    sh = share_latencies(ld, wl)
    R, k = ld.comp.shape
    W = np.concatenate([ld.comp, ld.chan.reshape(R, k * k)], axis=1)
    S = np.concatenate([sh.device, sh.channel.reshape(R, k * k)], axis=1)
    assert (S.sum(axis=0) <= 1 + 1e-9).all()
    w = np.array([r.weight for r in wl.requests])

    def agg(L: np.ndarray) -> float:
        return float((w * L).sum() if wl.aggregate == "sum" else (w * L).max())

    best = agg(sh.latency)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    for _ in range(50):
        Z = np.where(W > 0, rng.random(W.shape) + 1e-3, 0.0)
        Z = Z / np.maximum(Z.sum(axis=0, keepdims=True), 1e-300)
        L = ld.fixed + np.divide(W, Z, out=np.zeros_like(W), where=W > 0).sum(axis=1)
        assert best <= agg(L) * (1 + 1e-7) + 1e-12


def as_workload(inst: Instance) -> Instance:
    """The version-1 instance as one request of its model over direct channels, contention none."""
    s = inst.system
    spec = RequestSpec("r", "m", s.source_index, s.sink_index)
    graph, wl = lower(inst.name, {"m": inst.graph}, [spec], "sum", "none", "direct", direct_routes(s))
    c = inst.problem.constraints
    allowed = {f"r/{k}": v for k, v in c.allowed.items()}
    priv = tuple(f"r/{t}" for t in c.private)
    from dataclasses import replace

    cons = replace(c, allowed=allowed, private=priv, deadline_s=None, energy_budget_j={})
    problem = Problem(inst.problem.objective, "sequential", inst.problem.energy_scope, cons)
    return Instance(inst.name, graph, s, problem, workload=wl)


@FAST
@given(inst=instances(), data=st.data())
def test_version_1_is_the_one_request_case(inst: Instance, data: st.DataObject) -> None:
    c = inst.problem.constraints
    if inst.system.features or c.contiguous or c.pipeline or c.colocate or c.max_devices is not None:
        return
    one = inst.with_problem(Problem(inst.problem.objective, "sequential", inst.problem.energy_scope, c))
    one = one.with_problem(
        Problem(one.problem.objective, "sequential", one.problem.energy_scope,
                type(c)(memory=c.memory, allowed=c.allowed, private=c.private, memory_model=c.memory_model))
    )
    two = as_workload(one)
    P = data.draw(st.lists(st.integers(0, inst.k - 1), min_size=inst.n, max_size=inst.n))
    P2 = [P[inst.graph.layer_index[v.split("/", 1)[1]]] for v in two.graph.layer_ids]
    e1, e2 = evaluate(one, P), evaluate(two, P2)
    for name in ("latency_s", "period_s", "energy_total_j", "cost_usd", "objective"):
        a, b = getattr(e1, name), getattr(e2, name)
        assert (math.isinf(a) and math.isinf(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-15), name
    assert {d: pytest.approx(v, rel=1e-12) for d, v in e1.memory_bytes.items()} == e2.memory_bytes
    assert {v.kind for v in e1.violations} == {v.kind for v in e2.violations}


@FAST
@given(data=st.data())
def test_export_loads_back_equal(data: st.DataObject) -> None:
    """instance_to_data of a version-2 instance loads back with the same requests, routes and metrics."""
    from formulation.loader import instance_to_data

    contention = data.draw(st.sampled_from(["none", "share", "schedule"]))
    inst = load_instance_data(data.draw(v2_data(contention)))
    back = load_instance_data(instance_to_data(inst))
    assert back.workload is not None and inst.workload is not None
    assert back.graph.layer_ids == inst.graph.layer_ids
    assert back.workload.requests == inst.workload.requests
    assert dict(back.workload.routes) == dict(inst.workload.routes)
    assert back.workload.weight_key == inst.workload.weight_key
    total = count_placements(inst)
    if total == 0:
        return
    P = enumerate_placements(inst, 0, total)[data.draw(st.integers(0, total - 1))]
    a, b = evaluate(inst, P), evaluate(back, P)
    assert a.objective == b.objective or (math.isinf(a.objective) and math.isinf(b.objective))
    assert [v.message for v in a.violations] == [v.message for v in b.violations]
