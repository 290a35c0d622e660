"""Load the ``scenarios`` of an instance file and the robust fields of its problem (docs/instance-format.md §10).

The states are checked here with the loader's messages (file, field path, value, what was expected)
and attached to the :class:`~formulation.model.Problem` as a
:class:`~formulation.scenarios.ScenarioSet`. A file without ``scenarios``, ``problem.robust`` and
``problem.deadline_probability`` gets ``None``: its meaning is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from formulation.model import Problem, System
from formulation.scenarios import (
    MAX_STATES,
    OVERRIDABLE,
    PROBABILITY_TOL,
    Override,
    Scenario,
    ScenarioSet,
    parse_measure,
    resolve_target,
)
from formulation.schema import ScenarioSpec, validate_section

if TYPE_CHECKING:
    from formulation.loader import _Section


def _uses_latency(problem: Problem) -> bool:
    terms = problem.objective.terms()
    c = problem.constraints
    return bool(terms.get("latency") or terms.get("energy") or c.deadline_s is not None or c.energy_budget_j)


def with_scenarios(
    sec: _Section, problem: Problem, raw: Any, raw_problem: Any, system: System, *, deadlines: bool | None = None
) -> Problem:
    """``problem`` with the file's scenarios attached (unchanged when the file declares none).

    Problems are recorded in ``sec``, with the paths ``scenarios[i]...`` and, for the problem's own
    fields, ``problem.robust``, ``problem.deadline_probability`` and ``problem.execution``.
    ``deadlines`` is given for a version-2 file: whether some request has a deadline (the chance
    constraint applies to those); its ``schedule`` contention keeps a schedule per state, so
    version 1's refusal of ``execution: parallel`` does not apply.
    """
    version2 = deadlines is not None
    if deadlines is None:
        deadlines = problem.constraints.deadline_s is not None
    from formulation.loader import _Section

    given = raw_problem if isinstance(raw_problem, Mapping) else {}
    robust_raw = given.get("robust")
    level_raw = given.get("deadline_probability")
    psec = _Section(sec.file, "problem")
    if raw is None:
        for key, value in (("robust", robust_raw), ("deadline_probability", level_raw)):
            if value is not None:
                psec.error((key,), value, "a top-level 'scenarios' list (the field applies to network states)")
        sec.errors.extend(psec.errors)
        return problem
    if not isinstance(raw, list) or not raw:
        sec.error((), raw, "a non-empty list of states [{name, probability, set}, ...]")
        return problem
    if len(raw) > MAX_STATES:
        sec.error((), f"{len(raw)} states", f"at most {MAX_STATES} states")
        return problem
    states: list[Scenario] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        spec = validate_section(ScenarioSpec, item, file=sec.file, prefix=sec.at(i))
        if spec.name in seen:
            sec.error((i, "name"), spec.name, f"a state name not used before (already scenarios[{seen[spec.name]}])")
        seen.setdefault(spec.name, i)
        p = spec.probability
        if not (0.0 < p <= 1.0):
            sec.error((i, "probability"), p, "a probability > 0 and <= 1")
        overrides = []
        for path, value in spec.set_.items():
            try:
                section, target, name = resolve_target(system, path)
            except ValueError as exc:
                sec.error((i, "set", path), path, str(exc))
                continue
            _attr, kind, positive = OVERRIDABLE[section][name]
            si = sec.quantity((i, "set", path), value, kind, "positive" if positive else "nonneg")
            overrides.append(Override(path, section, target, name, si))
        states.append(Scenario(spec.name, p, tuple(overrides)))
    total = math.fsum(s.probability for s in states)
    if states and abs(total - 1.0) > PROBABILITY_TOL and not sec.errors:
        sec.error((), [s.probability for s in states], f"probabilities that sum to 1 (they sum to {total!r})")
    measure, alpha = "expected", 0.0
    if robust_raw is not None:
        try:
            measure, alpha = parse_measure(str(robust_raw))
        except ValueError as exc:
            psec.error(("robust",), robust_raw, str(exc))
    level = None
    if level_raw is not None:
        if isinstance(level_raw, bool) or not (0.0 < float(level_raw) <= 1.0):
            psec.error(("deadline_probability",), level_raw, "a probability > 0 and <= 1")
        elif not deadlines:
            where = "a request" if version2 else "problem.constraints"
            psec.error(("deadline_probability",), level_raw, f"a deadline in {where} to apply it to")
        else:
            level = float(level_raw)
    if problem.execution == "parallel" and _uses_latency(problem) and not version2:
        psec.error(
            ("execution",),
            problem.execution,
            "sequential with scenarios when latency, energy, a deadline or an energy budget counts "
            "(a parallel schedule per state is not modelled)",
        )
    sec.errors.extend(psec.errors)
    if sec.errors:
        return problem
    sc = ScenarioSet(tuple(states), measure, alpha, level)  # type: ignore[arg-type]
    return dataclasses.replace(problem, scenarios=sc)


def scenarios_data(sc: ScenarioSet) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The file's ``scenarios`` list (SI numbers) and the problem fields of ``sc``."""
    states = [
        {"name": s.name, "probability": s.probability, "set": {ov.path: ov.value for ov in s.overrides}}
        for s in sc.states
    ]
    fields: dict[str, Any] = {"robust": sc.label()}
    if sc.deadline_probability is not None:
        fields["deadline_probability"] = sc.deadline_probability
    return states, fields

