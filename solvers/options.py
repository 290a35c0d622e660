"""Typed solver options, and the capability declarations checked before any model is built."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from formulation.model import CONSTRAINT_KINDS, EXECUTIONS, OBJECTIVES, Instance


class SolverError(Exception):
    """Base of the errors a solver raises before solving (shown to users without a traceback)."""


class OptionNotSupported(SolverError):
    """The solver cannot honour an option that was set."""


class UnsupportedProblem(SolverError):
    """The instance falls outside the solver's declared capabilities."""


class InvalidOption(SolverError, ValueError):
    """An option value out of its range (a ``ValueError`` too, as it always was)."""


MAX_SEED = 2**31 - 1
"""Largest random seed: HiGHS and CP-SAT take a signed 32-bit integer."""


@dataclass(frozen=True)
class SolverOptions:
    """Options common to every backend. ``None`` means "not set" (the backend's default).

    Attributes
    ----------
    time_limit_s : float, optional
        Wall-clock limit for the solve.
    gap : float, optional
        Relative gap at which an exact solver may stop (``compute_gap`` semantics).
    threads : int, optional
        Worker threads.
    seed : int, optional
        Random seed (heuristics, CP-SAT).
    verbose : bool
        Echo the solver log while solving (it is always captured).
    warm_start : mapping, optional
        A ``{layer: device}`` placement to start from, where the backend supports it.
    raw : mapping
        Backend-specific options passed through unchanged (each backend documents its keys).
    """

    time_limit_s: float | None = None
    gap: float | None = None
    threads: int | None = None
    seed: int | None = None
    verbose: bool = False
    warm_start: Mapping[str, str] | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.time_limit_s is not None and not (self.time_limit_s > 0 and math.isfinite(self.time_limit_s)):
            raise InvalidOption(f"time_limit_s must be a positive number of seconds, got {self.time_limit_s!r}")
        if self.gap is not None and not (0 <= self.gap < 1):
            raise InvalidOption(f"gap must be in [0, 1), got {self.gap!r}")
        if self.threads is not None and self.threads < 1:
            raise InvalidOption(f"threads must be >= 1, got {self.threads!r}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:  # engines take a 32-bit seed
            raise InvalidOption(f"seed must be an integer in 0..{MAX_SEED}, got {self.seed!r}")

    def requested(self) -> set[str]:
        """Names of the options that are set (``verbose`` is always honoured and never listed)."""
        out = set()
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "verbose":
                continue
            if f.name == "raw":
                if v:
                    out.add("raw")
            elif v is not None:
                out.add(f.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the options that are set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name == "raw" and not v) or (f.name == "verbose" and not v):
                continue
            out[f.name] = dict(v) if isinstance(v, Mapping) else v
        return out


ALL_OBJECTIVES = frozenset((*OBJECTIVES, "weighted"))
ALL_EXECUTIONS = frozenset(EXECUTIONS)
ALL_CONSTRAINTS = frozenset(CONSTRAINT_KINDS)


@dataclass(frozen=True)
class Capabilities:
    """What a solver can solve. Checked by :meth:`check` before any model is built.

    Attributes
    ----------
    objectives : frozenset
        Objective kinds (latency, throughput, energy, cost, weighted).
    metrics : frozenset
        Metrics a ``weighted`` objective may combine.
    executions : frozenset
        Latency modes (sequential, parallel).
    constraints : frozenset
        Constraint kinds the solver enforces (only *active* constraints of an instance count).
    chain_only : bool
        Only graphs that are a single chain of layers.
    max_devices, max_layers : int, optional
        Size limits.
    needs_execution_for_energy : str, optional
        Some algorithms handle energy only in one latency mode (e.g. min-cut: sequential).
    """

    objectives: frozenset[str] = ALL_OBJECTIVES
    metrics: frozenset[str] = frozenset(OBJECTIVES)
    executions: frozenset[str] = ALL_EXECUTIONS
    constraints: frozenset[str] = ALL_CONSTRAINTS
    chain_only: bool = False
    max_devices: int | None = None
    max_layers: int | None = None
    features: frozenset[str] = frozenset()
    """Optional model features (``formulation.model.DEVICE_FEATURES``) the solver handles."""
    workload: frozenset[str] = frozenset()
    """Version-2 workloads (docs/instance-format.md §9) the solver handles: the contention models
    (``none``, ``schedule``, ``share``), ``routing`` (routes other than direct channels) and
    ``generation`` (generation requests, §9.10). Empty: it refuses every version-2 instance."""
    scenarios: bool = False
    """Network states with a robust measure (docs/instance-format.md §10) are solved exactly; False:
    every instance with ``scenarios`` is refused."""
    splits: bool = False
    """A layer stack marked ``split: proportional`` (docs/granularity.md) is solved as a row split;
    False: such instances are refused (their optimum is over row splits, not whole layers)."""
    sharding: bool = False
    """Layers that declare ``shardable`` (docs/instance-format.md §2.6) may run on groups of devices
    and the solver searches those options; False: such instances are refused (their optimum may
    shard a layer, which a whole-layer search would not see)."""
    choices: bool = False
    """Layer variants, early exits and accuracy (docs/instance-format.md §11) are solved exactly: the
    solver chooses the configuration with the placement; False: such instances are refused."""
    note: str = ""

    def reasons(self, inst: Instance) -> list[str]:
        """Why the instance is out of scope (empty when it is supported)."""
        p = inst.problem
        out = []
        if p.objective.kind not in self.objectives:
            out.append(f"objective {p.objective.kind!r} (supported: {sorted(self.objectives)})")
        if p.objective.kind == "weighted":
            bad = sorted(m for m, w in p.objective.weights.items() if w and m not in self.metrics)
            if bad:
                out.append(f"weighted metrics {bad} (supported: {sorted(self.metrics)})")
        if p.execution not in self.executions and _uses_latency(inst):
            out.append(f"execution {p.execution!r} (supported: {sorted(self.executions)})")
        extra = sorted(inst.active_constraints - self.constraints)
        if extra:
            out.append(f"constraints {extra} (supported: {sorted(self.constraints)})")
        if self.chain_only and not inst.graph.is_chain:
            out.append("a DAG with branches (only chains are supported)")
        if self.max_devices is not None and inst.k > self.max_devices:
            out.append(f"{inst.k} devices (at most {self.max_devices})")
        unsupported = sorted(inst.system.features - self.features)
        if unsupported:
            out.append(f"device features {unsupported}")
        if self.max_layers is not None and inst.n > self.max_layers:
            out.append(f"{inst.n} layers (at most {self.max_layers})")
        if inst.problem.scenarios is not None and not self.scenarios:
            by = "brute and cpsat-v2" if inst.workload is not None else "brute, highs, scip and cpsat"
            out.append(f"network states (scenarios; solved by {by})")
        if not self.splits:
            from formulation.granularity.proportional import marked_stack  # lazy: keeps startup light

            if marked_stack(inst) is not None:
                out.append("a layer stack marked 'split: proportional' (solved by proportional)")
        if not self.sharding and any(lay.shardable is not None for lay in inst.graph.layers):
            out.append("shardable layers (tensor parallelism; solved by shard-brute, shard-milp and shard-dp)")
        if inst.problem.choices is not None and not self.choices:
            out.append(
                "layer variants, exits or accuracy (docs/instance-format.md §11; solved by brute, highs and cpsat)"
            )
        wl = inst.workload
        if wl is not None:
            have = sorted(self.workload - {"routing", "generation"})
            if not have:
                out.append("version-2 workloads (format version 1 only)")
            elif wl.contention not in self.workload:
                out.append(f"version-2 contention {wl.contention!r} (supported: {have})")
            if wl.routing != "direct" and "routing" not in self.workload:
                out.append(f"version-2 routing {wl.routing!r} (only direct channels)")
            if wl.generation and "generation" not in self.workload:
                out.append("generation requests (tokens: prompt and decode steps; solved by brute, cpsat-v2, "
                           "highs, scip, local and local-search; one request alone also by shortest-path and dp)")
        return out

    def supports(self, inst: Instance) -> bool:
        """True when :meth:`reasons` is empty."""
        return not self.reasons(inst)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for display."""
        return {
            "objectives": sorted(self.objectives),
            "executions": sorted(self.executions),
            "constraints": sorted(self.constraints),
            "graph": "chain" if self.chain_only else "dag",
            "max_devices": self.max_devices,
            "max_layers": self.max_layers,
            "features": sorted(self.features),
            "workload": sorted(self.workload),
            "scenarios": self.scenarios,
            "choices": self.choices,
        }


def _uses_latency(inst: Instance) -> bool:
    """The latency mode matters: latency or energy in the objective, or a deadline/energy budget."""
    p = inst.problem
    terms = p.objective.terms()
    return bool(
        terms.get("latency")
        or terms.get("energy")
        or p.constraints.deadline_s is not None
        or p.constraints.energy_budget_j
    )
