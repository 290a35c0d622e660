"""Evaluate a placement and a configuration of an instance with variants or exits
(docs/instance-format.md §11).

The numbers come from :func:`formulation.choices.choice_batch` (each path judged by the cost model
of §5, combined once there); this module adds the readable parts: transfers of the deployment,
violation messages and the ``choices`` report of §11.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from formulation.choices import choice_batch, choices_of, config_dict, configure, parse_config
from formulation.evaluator.evaluate import Evaluation, Violation, evaluate
from formulation.model import Instance, IntArray


def evaluate_choices(inst: Instance, P: IntArray, given: Mapping[str, Any] | None) -> Evaluation:
    """Every metric of placement ``P`` (full graph) under the configuration ``given`` (§11.4).

    Raises
    ------
    ValueError
        When ``given`` names an unknown layer, variant or exit.
    """
    ch = choices_of(inst)
    assert ch is not None
    cfg = parse_config(inst, given)
    conf = configure(inst, cfg)
    cb = choice_batch(inst, conf, P[None, :])
    dep = evaluate(conf.deployment, P[conf.deployed])
    paths = [evaluate(p.instance, P[p.layers]) for p in conf.paths]
    s = inst.system
    dev = s.device_ids
    violations = [v for v in dep.violations if cb.violations.get(v.kind, np.zeros(1, bool))[0]]
    c = inst.problem.constraints
    if cb.violations.get("deadline", np.zeros(1, bool))[0]:
        violations += [
            Violation(
                "deadline",
                f"latency {ev.latency_s:.6g} s of the path to {p.exit or 'the outputs'!s} "
                f"exceeds the deadline {c.deadline_s:.6g} s",
            )
            for p, ev in zip(conf.paths, paths, strict=True)
            if c.deadline_s is not None and not ev.latency_s <= c.deadline_s * (1 + 1e-9)
        ]
    if cb.violations.get("energy_budget", np.zeros(1, bool))[0]:
        violations += [
            Violation(
                "energy_budget",
                f"device {d!r} uses {cb.energy[0, s.device_index[d]]:.6g} J (expected); budget {b:.6g} J",
            )
            for d, b in c.energy_budget_j.items()
            if not cb.energy[0, s.device_index[d]] <= b * (1 + 1e-9) + 1e-15
        ]
    if cb.violations.get("accuracy", np.zeros(1, bool))[0]:
        violations.append(
            Violation("accuracy", f"accuracy {conf.accuracy:.6g} is below min_accuracy {ch.min_accuracy:.6g}")
        )
    channels = [(s.device_index[a], s.device_index[b]) for (a, b) in s.links]
    L = float(cb.latency[0])
    report = {
        "mode": ch.mode,
        **config_dict(inst, cfg),
        "accuracy": conf.accuracy,
        "min_accuracy": ch.min_accuracy,
        "objective": "accuracy" if ch.maximise_accuracy else str(inst.problem.objective),
        "deployed": list(conf.deployment.graph.layer_ids),
        "paths": [
            {
                "exit": p.exit,
                "weight": p.weight,
                "layers": list(p.instance.graph.layer_ids),
                "latency_s": ev.latency_s,
                "energy_total_j": ev.energy_total_j,
                "cost_usd": ev.cost_usd,
            }
            for p, ev in zip(conf.paths, paths, strict=True)
        ],
    }
    period = float(cb.period[0])
    return Evaluation(
        placement=inst.placement_dict(P),
        schedule={},
        latency_s=L,
        latency_sequential_s=L,
        latency_parallel_s=float(
            sum(p.weight * ev.latency_parallel_s for p, ev in zip(conf.paths, paths, strict=True))
        ),
        period_s=period,
        throughput_per_s=(1.0 / period) if period > 0 else float("inf"),
        compute_time_s={d: float(cb.compute_time[0, j]) for j, d in enumerate(dev)},
        busy_s={d: float(cb.busy[0, j]) for j, d in enumerate(dev)},
        energy_j={d: float(cb.energy[0, j]) for j, d in enumerate(dev)},
        energy_total_j=float(cb.energy_total[0]),
        cost_usd=float(cb.cost[0]),
        memory_bytes=dict(dep.memory_bytes),
        link_bytes={f"{dev[a]}->{dev[b]}": float(cb.link_bytes[0, a, b]) for a, b in channels},
        link_busy_s={f"{dev[a]}->{dev[b]}": float(cb.link_busy[0, a, b]) for a, b in channels},
        transfers=dep.transfers,
        objective=float(cb.objective[0]),
        violations=tuple(violations),
        choices=report,
    )
