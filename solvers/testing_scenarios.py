"""Conformance cases with network states (docs/instance-format.md §10) and hand-derived optima.

The instance is ``instances/examples/robust-three-states.yaml`` (docs/networks.md, "Worked
example"): layers ``features`` (0.2 GFLOP, 100 kB out) and ``head`` (0.5 GFLOP) on a 300 kB image, a
phone of 1 GFLOP/s and a cloud of 100 GFLOP/s, the link at 10, 1 and 0.2 MB/s in the states good
(p 0.7), usual (0.2) and bad (0.1). Sequential latency per state (devices of features, head)::

    phone, phone   0.7    0.7    0.7        phone, cloud   0.215  0.305  0.705
    cloud, cloud   0.037  0.307  1.507      cloud, phone   0.542  0.902  2.502
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from formulation.model import Instance
from formulation.scenarios import parse_measure

EXAMPLE = Path(__file__).resolve().parents[1] / "instances" / "examples" / "robust-three-states.yaml"


def _case(measure: str, level: float | None = None, deadline: float | None = None) -> Callable[[], Instance]:
    def build() -> Instance:
        from formulation.loader import load_instance

        inst = load_instance(EXAMPLE)
        p = inst.problem
        assert p.scenarios is not None
        m, alpha = parse_measure(measure)
        sc = dataclasses.replace(p.scenarios, measure=m, alpha=alpha, deadline_probability=level)
        cons = dataclasses.replace(p.constraints, deadline_s=deadline)
        return inst.with_problem(dataclasses.replace(p, constraints=cons, scenarios=sc))

    return build


#: ``(name, build, optimum, why)`` rows of :class:`solvers.testing.Case`.
SCENARIO_CASES: list[tuple[str, Callable[[], Instance], float | None, str]] = [
    ("states-expected", _case("expected"), 0.238, "cloud, cloud: 0.7 * 0.037 + 0.2 * 0.307 + 0.1 * 1.507"),
    ("states-worst", _case("worst"), 0.7, "phone, phone: 0.7 in every state; every split is worse in bad"),
    (
        "states-cvar",
        _case("cvar:0.8"),
        0.505,
        "phone, cloud: the worst 20 % is bad (0.1) and half of usual, (0.1 * 0.705 + 0.1 * 0.305) / 0.2",
    ),
    (
        "states-deadline-every-state",
        _case("expected", None, 0.4),
        None,
        "no placement meets 0.4 s in bad (the best there is 0.7 s)",
    ),
    (
        "states-deadline-chance",
        _case("worst", 0.9, 0.4),
        0.705,
        "0.4 s holds in good and usual (p 0.9) for phone, cloud and cloud, cloud; their worst: 0.705, 1.507",
    ),
]
