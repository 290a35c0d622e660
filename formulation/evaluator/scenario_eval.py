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
from formulation.scenarios import chance_met, deadline_level, nominal_instance, robust_value, state_instances

if TYPE_CHECKING:
    from formulation.evaluator.evaluate import Evaluation

#: Violation kinds that depend on the state (reported once per state); the others are static.
STATE_KINDS = ("deadline", "energy_budget", "link")


def evaluate_states(
    inst: Instance, P: npt.NDArray[np.int64], schedule: Mapping[str, float] | None
) -> Evaluation:
    """The placement judged over the states.

    The top-level metrics are those of the nominal system (the file's figures, no override); the
    objective is the robust measure of the per-state objectives; the violations are the static
    ones, energy budgets and missing links in any state, and the deadline by the rule of
    ``problem.deadline_probability``. ``scenarios`` holds every state's metrics.
    """
    from formulation.evaluator.evaluate import Violation, evaluate

    sc = inst.problem.scenarios
    assert sc is not None
    base = evaluate(nominal_instance(inst), P, schedule)
    per = [evaluate(st, P, schedule) for st in state_instances(inst)]
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
        "deadline_met_probability": met if inst.problem.constraints.deadline_s is not None else None,
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
            }
            for st, ev, good in zip(sc.states, per, ok[0], strict=True)
        ],
    }
    return dataclasses.replace(base, objective=objective, violations=tuple(violations), scenarios=report)
