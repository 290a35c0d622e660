"""Property tests of the evaluator on random tiny instances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import (
    batch_metrics,
    check_schedule,
    evaluate,
    makespan_lower_bound_many,
    optimal_makespan,
    transfer_tables,
)
from formulation.model import Instance, System
from tests.strategies import instances

SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _placement(inst: Instance, data: st.DataObject) -> np.ndarray:
    return np.array(data.draw(st.lists(st.integers(0, inst.k - 1), min_size=inst.n, max_size=inst.n)))


@SETTINGS
@given(instances(), st.data())
def test_parallel_latency_at_most_sequential(inst: Instance, data: st.DataObject) -> None:
    ev = evaluate(inst, _placement(inst, data))
    if np.isfinite(ev.latency_sequential_s):
        assert ev.latency_parallel_s <= ev.latency_sequential_s * (1 + 1e-12) + 1e-12


@SETTINGS
@given(instances(), st.data())
def test_sequential_latency_and_energy_decompose(inst: Instance, data: st.DataObject) -> None:
    ev = evaluate(inst, _placement(inst, data))
    if not np.isfinite(ev.latency_sequential_s):
        return
    s = inst.system
    assert ev.latency_sequential_s == pytest.approx(
        sum(ev.compute_time_s.values()) + sum(t.duration_s for t in ev.transfers), rel=1e-9, abs=1e-12
    )
    L = ev.latency_s
    for d, dev in enumerate(s.devices):
        send = sum(t.occupied_s for t in ev.transfers if t.src == dev.id)
        recv = sum(t.occupied_s for t in ev.transfers if t.dst == dev.id)
        tx = sum(t.occupied_s * s.tx_power[d, s.device_index[t.dst]] for t in ev.transfers if t.src == dev.id)
        rx = sum(t.occupied_s * s.rx_power[s.device_index[t.src], d] for t in ev.transfers if t.dst == dev.id)
        comp = ev.compute_time_s[dev.id]
        expect = dev.power_active_w * comp + tx + rx + dev.power_idle_w * max(0.0, L - comp - send - recv)
        assert ev.energy_j[dev.id] == pytest.approx(expect, rel=1e-9, abs=1e-12)
    scope = inst.problem.energy_scope or s.device_ids
    assert ev.energy_total_j == pytest.approx(sum(ev.energy_j[d] for d in scope), rel=1e-12, abs=1e-15)


@SETTINGS
@given(instances(), st.data())
def test_batch_equals_scalar_and_is_deterministic(inst: Instance, data: st.DataObject) -> None:
    P = np.array([_placement(inst, data) for _ in range(4)])
    bm = batch_metrics(inst, P)
    for r in range(4):
        ev = evaluate(inst, P[r])
        again = evaluate(inst, P[r])
        assert ev == again
        assert bm.objective()[r] == pytest.approx(ev.objective, rel=1e-12) or not np.isfinite(ev.objective)
        assert bool(bm.feasible()[r]) == ev.feasible


@SETTINGS
@given(instances(), st.data())
def test_relabelling_devices_changes_nothing(inst: Instance, data: st.DataObject) -> None:
    s = inst.system
    perm = list(reversed(range(s.k)))
    s2 = System([s.devices[i] for i in perm], list(s.links.values()), s.source, s.sink)
    inst2 = Instance(inst.name, inst.graph, s2, inst.problem)
    pl = inst.placement_dict(_placement(inst, data))
    a, b = evaluate(inst, pl), evaluate(inst2, pl)
    assert a.objective == pytest.approx(b.objective, rel=1e-12) or not np.isfinite(a.objective)
    assert a.energy_j == pytest.approx(b.energy_j) or not np.isfinite(a.latency_s)
    assert {v.kind for v in a.violations} == {v.kind for v in b.violations}


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_layers=6, constraints=False), st.data())
def test_optimal_schedule_between_bounds(inst: Instance, data: st.DataObject) -> None:
    P = _placement(inst, data)
    ev = evaluate(inst, P)
    if not np.isfinite(ev.latency_parallel_s):
        return
    found = optimal_makespan(inst, P)
    assert found is not None
    L, starts = found
    comp = inst.time[np.arange(inst.n)[None, :], P[None, :]]
    lb = makespan_lower_bound_many(inst, P[None, :], comp, transfer_tables(inst, P[None, :]))[0]
    assert lb <= L * (1 + 1e-12) + 1e-12
    assert ev.latency_parallel_s * (1 + 1e-12) + 1e-12 >= L
    chk = check_schedule(inst, P, dict(zip(inst.graph.layer_ids, starts, strict=True)))
    assert chk.problems == ()
    assert chk.makespan == pytest.approx(L, rel=1e-9)
