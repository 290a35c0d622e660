"""Evaluate one placement over the network states of an instance (docs/instance-format.md §10).

Each state is evaluated as an ordinary instance (:func:`formulation.scenarios.state_instances`) by
:func:`formulation.evaluator.evaluate`; the robust objective and the feasibility rules over the
states come from :mod:`formulation.scenarios`, the same functions ``brute`` uses on whole batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from formulation.model import Instance
from formulation.scenarios import (
    chance_met,
    deadline_level,
    has_deadline,
    nominal_instance,
    robust_value,
    state_instances,
    state_key,
    state_schedules,
)

if TYPE_CHECKING:
    from formulation.evaluator.evaluate import Evaluation

#: Violation kinds that depend on the state (reported once per state); the others are static.
#: ``utilisation`` and ``schedule`` arise in version-2 workloads (busy times and schedules per state).
STATE_KINDS = ("deadline", "energy_budget", "link", "utilisation", "schedule")


def evaluate_states(
    inst: Instance, P: npt.NDArray[np.int64], schedule: Mapping[str, float] | None
) -> Evaluation:
    """The placement judged over the states.

    The top-level metrics are those of the nominal system (the file's figures, no override); the
    objective is the robust measure of the per-state objectives; the violations are the static
    ones, energy budgets, utilisation, schedules and missing links in any state, and the deadline
    (version 2: every request's) by the rule of ``problem.deadline_probability``. ``scenarios``
    holds every state's metrics. A version-2 ``schedule`` workload has a schedule per state: keys
    ``[STATE]KEY`` (:func:`formulation.scenarios.state_schedules`); the returned ``schedule`` holds
    every state's, so that it can be given back.
    """
    from formulation.evaluator.evaluate import Violation, evaluate

    sc = inst.problem.scenarios
    assert sc is not None
    per_state = state_schedules(schedule, sc.names)
    per = [evaluate(st, P, sch) for st, sch in zip(state_instances(inst), per_state, strict=True)]
    nominal = schedule if schedule is None or per_state[0] is schedule else None
    base = evaluate(nominal_instance(inst), P, nominal)
    joint = inst.workload is not None and inst.problem.execution == "parallel"
    if joint:
        base = dataclasses.replace(
            base, schedule={state_key(st.name, k): v for st, ev in zip(sc.states, per, strict=True)
                            for k, v in ev.schedule.items()}
        )
    f = np.array([[ev.objective for ev in per]])
    ok = np.array([[not any(v.kind == "deadline" for v in ev.violations) for ev in per]])
    objective = float(robust_value(f, sc)[0])
    violations: list[Any] = []
    seen: set[tuple[str, str]] = set()
    for st, ev in zip(sc.states, per, strict=True):
        for v in ev.violations:
            if v.kind == "deadline" and sc.deadline_probability is not None:
                continue
            msg = f"in state {st.name!r}: {v.message}" if v.kind in STATE_KINDS else v.message
            if (v.kind, msg) not in seen:
                seen.add((v.kind, msg))
                violations.append(Violation(v.kind, msg))
    met = float(ok[0].astype(float) @ sc.probabilities)
    if sc.deadline_probability is not None and not chance_met(ok, sc)[0]:
        held = [st.name for st, good in zip(sc.states, ok[0], strict=True) if good]
        violations.append(
            Violation(
                "deadline",
                f"the deadline holds in states {held} of total probability {met:.6g}; "
                f"required {deadline_level(sc):.6g}",
            )
        )
    report = {
        "robust": sc.label(),
        "deadline_probability": sc.deadline_probability,
        "deadline_met_probability": met if has_deadline(inst) else None,
        "objective": objective,
        "expected": float(robust_value(f, dataclasses.replace(sc, measure="expected"))[0]),
        "worst": float(f.max()),
        "states": [
            {
                "name": st.name,
                "probability": st.probability,
                "objective": ev.objective,
                "latency_s": ev.latency_s,
                "period_s": ev.period_s,
                "energy_total_j": ev.energy_total_j,
                "cost_usd": ev.cost_usd,
                "deadline_met": bool(good),
                "feasible": ev.feasible,
                "violations": [{"kind": v.kind, "message": v.message} for v in ev.violations],
                **_requests(ev),
            }
            for st, ev, good in zip(sc.states, per, ok[0], strict=True)
        ],
    }
    return dataclasses.replace(base, objective=objective, violations=tuple(violations), scenarios=report)


def _requests(ev: Evaluation) -> dict[str, Any]:
    """Version 2: ``request_latency_s`` per request in the state (empty for version 1)."""
    if not ev.workload:
        return {}
    return {"request_latency_s": {r: q["latency_s"] for r, q in ev.workload["requests"].items()}}
