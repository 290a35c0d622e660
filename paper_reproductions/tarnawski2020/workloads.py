"""The MSR workloads as instances, exact solves with two engines, and their cross-checks.

Shared by the Tarnawski et al. (NeurIPS 2020) and Archer et al. (ICML 2024) reproductions. The
workloads are read from the repository's copy, ``instances/third_party/msr-dnn-partitioning`` (override
with the environment variable ``DNNPART_MSR_DATA``) and imported by :mod:`toolchain.importers.msr`,
which reproduces the MSR max-load model exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from formulation.loader import load_instance_data
from formulation.model import Instance
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Status
from toolchain.importers.msr import layer_id, msr_instance_data, read_msr

ROOT = Path(__file__).resolve().parents[2]
#: Relative agreement required between two engines that both prove optimality.
AGREE_RTOL = 1e-6


def data_dir() -> Path:
    """The MSR data folder (``DNNPART_MSR_DATA``, else ``instances/third_party/msr-dnn-partitioning``)."""
    env = os.environ.get("DNNPART_MSR_DATA")
    return Path(env) if env else ROOT / "instances" / "third_party" / "msr-dnn-partitioning"


def workload_path(kind: str, granularity: str, name: str) -> Path:
    """``throughput-inputs/LayerGraphs/bert24_inference.json`` style paths."""
    return data_dir() / f"{kind}-inputs" / granularity / f"{name}.json"


def msr_instance(
    path: Path, *, contiguous: bool = False, fpgas: int | None = None, cpus: int | None = None
) -> Instance:
    """An MSR workload file as an instance (exact max-load model)."""
    data = msr_instance_data(read_msr(path), contiguous=contiguous, fpgas=fpgas, cpus=cpus)
    return load_instance_data(data, file=str(path))


@dataclass
class Solved:
    """One solve: status, period and bound in milliseconds, gap, wall time, placement."""

    solver: str
    status: str
    period_ms: float | None
    bound_ms: float | None
    gap: float | None
    wall_s: float
    placement: dict[str, str] = field(default_factory=dict)

    @property
    def proven(self) -> bool:
        """Status optimal: the solver's base class grants it only at a zero gap (``compute_gap``), up
        to the engine's declared rounding error (CP-SAT's integer scaling, ~1e-9 relative)."""
        return self.status == Status.OPTIMAL.value

    def cell(self) -> str:
        """``optimal 17.71 ms, 53.6 s`` or ``feasible 17.72 ms (bound 15.26, gap 13.9%), 300.1 s``."""
        if self.period_ms is None:
            return f"{self.status}, {self.wall_s:.1f} s"
        if self.proven:
            return f"optimal {self.period_ms:.5g} ms, {self.wall_s:.1f} s"
        bound = "-" if self.bound_ms is None else f"{self.bound_ms:.5g}"
        gap = "-" if self.gap is None else f"{100 * self.gap:.2f}%"
        return f"{self.status} {self.period_ms:.5g} ms (bound {bound}, gap {gap}), {self.wall_s:.1f} s"


#: Raw options of each engine: the MILP with its send-once shipping model, which proved the MSR
#: optima faster than the default edge-pair model (docs/msr.md, "Solving MSR instances").
ENGINE_RAW: dict[str, dict[str, Any]] = {"highs": {"pairs": False}}


def run_engine(inst: Instance, solver: str, time_limit_s: float, warm_start: dict[str, str] | None = None) -> Solved:
    """Solve with ``solver`` under ``time_limit_s`` (CP-SAT with seed 0; raw options of :data:`ENGINE_RAW`;
    ``warm_start``: a placement to start from)."""
    opts = SolverOptions(time_limit_s=time_limit_s, seed=0 if solver == "cpsat" else None,
                         raw=ENGINE_RAW.get(solver, {}), warm_start=warm_start)
    res = solve(inst, solver, opts)
    ms = None if res.objective is None else 1e3 * res.objective
    bound = None if res.bound is None or not np.isfinite(res.bound) else 1e3 * res.bound
    return Solved(solver, res.status.value, ms, bound, res.gap, res.wall_time_s, dict(res.placement or {}))


def cross_check(runs: list[Solved], what: str) -> list[str]:
    """Problems: two proven optima that differ, or a solution below another engine's bound."""
    out = []
    for a in runs:
        for b in runs:
            if a is b or a.period_ms is None:
                continue
            if b.proven and a.proven and abs(a.period_ms - b.period_ms) > AGREE_RTOL * b.period_ms:
                out.append(f"{what}: {a.solver} and {b.solver} prove different optima "
                           f"({a.period_ms:.9g} vs {b.period_ms:.9g} ms)")
            if b.bound_ms is not None and a.period_ms < b.bound_ms * (1 - AGREE_RTOL):
                out.append(f"{what}: {a.solver} found {a.period_ms:.9g} ms below {b.solver}'s bound "
                           f"{b.bound_ms:.9g} ms")
    return sorted(set(out))


def best_of(runs: list[Solved]) -> tuple[float | None, float | None]:
    """(best period, best bound) over the engines, in ms."""
    periods = [r.period_ms for r in runs if r.period_ms is not None]
    bounds = [r.bound_ms for r in runs if r.bound_ms is not None]
    return (min(periods) if periods else None), (max(bounds) if bounds else None)


def expert_placement(inst: Instance, path: Path) -> dict[str, str]:
    """A human-expert split (``{"cpus": [{"nodes": [...]}], "fpgas": [...]}``) as a placement.

    The i-th accelerator list goes to ``acc{i}``, the CPU lists to ``cpu0``, ``cpu1``, ...
    """
    split: dict[str, Any] = json.loads(path.read_text())
    out: dict[str, str] = {}
    for kind, prefix in (("cpus", "cpu"), ("fpgas", "acc")):
        for i, machine in enumerate(split.get(kind, [])):
            for node in machine["nodes"]:
                out[layer_id(int(node))] = f"{prefix}{i}"
    missing = [lay for lay in inst.graph.layer_ids if lay not in out]
    if missing:
        raise ValueError(f"{path}: the split leaves nodes {missing[:5]} unplaced")
    return out


def quotient_is_acyclic(inst: Instance, placement: dict[str, str]) -> bool:
    """Whether the devices of a placement can be ordered so that every edge goes forward (a pipeline
    in the sense of the MSR dynamic program and of Archer et al.: a chain of down-sets)."""
    import networkx as nx

    q = nx.DiGraph()
    q.add_nodes_from(set(placement.values()))
    g = inst.graph
    for u, v in g.edges:
        a, b = placement[g.layer_ids[u]], placement[g.layer_ids[v]]
        if a != b:
            q.add_edge(a, b)
    return bool(nx.is_directed_acyclic_graph(q))
