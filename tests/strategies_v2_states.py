"""Hypothesis strategies: random tiny version-2 instances with 2-4 network states (docs/instance-format.md §10)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.strategies_v2 import v2_data

#: Probability vectors of 2, 3 and 4 states (thirds included: not decimal fractions).
PROBABILITIES = [
    [0.5, 0.5],
    [0.7, 0.3],
    [0.9, 0.1],
    [0.7, 0.2, 0.1],
    [0.5, 0.25, 0.25],
    [1 / 3, 1 / 3, 1 / 3],
    [0.4, 0.3, 0.2, 0.1],
    [0.25, 0.25, 0.25, 0.25],
]
MEASURES = {"expected": ["expected"], "worst": ["worst"], "cvar": ["cvar:0.5", "cvar:0.8", "cvar:0.25", "cvar:0.9"]}


@st.composite
def states(draw: st.DrawFn, data: dict[str, Any]) -> list[dict[str, Any]]:
    """2-4 states over the links and devices of ``data``, each setting 0-2 figures."""
    probs = draw(st.sampled_from(PROBABILITIES))
    links = [f"links.{lk['from']}-{lk['to']}" for lk in data["system"]["links"]]
    devices = [f"devices.{d['id']}" for d in data["system"]["devices"]]
    figures = st.one_of(
        st.tuples(st.sampled_from(links), st.just("bandwidth"), st.sampled_from([1e4, 1e5, 1e6, 1e7])),
        st.tuples(st.sampled_from(links), st.just("latency"), st.sampled_from([0.0, 0.005, 0.05])),
        st.tuples(st.sampled_from(devices), st.just("compute"), st.sampled_from([1e8, 1e9, 1e10])),
        st.tuples(st.sampled_from(devices), st.just("power_active"), st.sampled_from([0.5, 5.0])),
    )
    out = []
    for i, p in enumerate(probs):
        sets = draw(st.lists(figures, max_size=2))
        out.append({"name": f"s{i}", "probability": p, "set": {f"{path}.{field}": v for path, field, v in sets}})
    return out


@st.composite
def v2_states_data(
    draw: st.DrawFn, contention: str, measure: str, chance: bool = False, latency_only: bool = False
) -> dict[str, Any]:
    """A tiny version-2 instance (:func:`tests.strategies_v2.v2_data`) with states and ``problem.robust``.

    ``chance``: the first request gets a deadline and the problem a ``deadline_probability``;
    ``latency_only``: objective latency, no rates (what ``cpsat-v2`` solves).
    """
    data = draw(v2_data(contention, rates=False if latency_only else None))
    if latency_only:
        data["problem"]["objective"] = "latency"
    data["scenarios"] = draw(states(data))
    data["problem"]["robust"] = draw(st.sampled_from(MEASURES[measure]))
    if chance:
        data["workload"][0]["deadline"] = draw(st.sampled_from([0.05, 0.2, 1.0]))
        data["problem"]["deadline_probability"] = draw(st.sampled_from([0.5, 0.7, 0.9]))
    return data
