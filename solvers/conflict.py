"""Explain a proven infeasibility: a minimal set of conflicting constraints and the relaxations that help.

The constraints of an instance are split into groups, one per thing a user can change: the deadline,
each device's energy budget, each device's memory, each layer's ``allowed`` devices, each private
tensor, each colocation group, contiguity and ``max_devices`` (spec section 4). The devices, links
and the graph are the fixed base.

A **deletion filter** (Chinneck and Dravnieks, ORSA J. Computing 3(2), 1991) finds a minimal
conflicting set: starting from every group, a group is dropped when the instance stays infeasible
without it. Families (every ``allowed`` entry, every memory limit, ...) are tried whole first, so an
instance with hundreds of ``allowed`` entries costs a few solves when they play no part. The oracle
is the registry's exact ``auto`` solver on relaxed copies of the instance; a check it cannot decide
within the time limit keeps the group, and the set is then reported as not proven minimal.

For each member of the set, the **smallest relaxation** of that constraint alone (every other
constraint of the instance kept) that restores feasibility is computed where the constraint has a
value:

* deadline: ``deadline >= L*``, where ``L*`` is the optimum of the instance without its deadline
  and with latency as the objective;
* energy budget of device ``d``: ``budget[d] >= E*``, ``E*`` the least energy ``d`` can spend;
* ``max_devices``: the smallest count that is feasible;
* memory of device ``d``: the least memory ``d`` needs, found by bisection to 1 % (each step a
  feasibility solve; the bracket's top is tightened to the memory the found placement uses).

Groups without a value (``allowed``, ``private``, colocation, contiguity) are relaxed by dropping
them; the relaxation is listed when dropping that group alone restores feasibility.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from formulation.model import Instance, Objective, System
from formulation.units import format_quantity
from solvers.options import SolverError, SolverOptions
from solvers.result import Result, Status

#: Time limit of each oracle solve when the caller gives none.
DEFAULT_CHECK_TIME_S = 60.0
#: Relative precision of the memory bisection.
MEMORY_RTOL = 0.01
#: Most oracle solves spent on one explanation.
MAX_SOLVES = 200
#: Wall-clock budget of one explanation when the caller gives none (each check's limit is also
#: capped by what is left of it).
DEFAULT_BUDGET_S = 300.0


@dataclass(frozen=True, order=True)
class Group:
    """One constraint group: ``kind`` and the device, layer, tensor or colocation index it concerns."""

    kind: str
    key: str = ""

    @property
    def name(self) -> str:
        """``deadline``, ``memory[edge]``, ``allowed[conv1]``, ``colocate[0]``..."""
        return f"{self.kind}[{self.key}]" if self.key else self.kind


def groups(inst: Instance) -> list[Group]:
    """Every constraint group of ``inst`` that restricts something, in a fixed order."""
    c, s = inst.problem.constraints, inst.system
    out: list[Group] = []
    if c.deadline_s is not None:
        out.append(Group("deadline"))
    out += [Group("energy_budget", d) for d in c.energy_budget_j]
    if c.memory:
        out += [Group("memory", d.id) for d in s.devices if math.isfinite(d.memory_bytes)]
    if c.max_devices is not None and c.max_devices < s.k:
        out.append(Group("max_devices"))
    if c.contiguous:
        out.append(Group("contiguous"))
    out += [Group("allowed", v) for v in c.allowed]
    out += [Group("private", t) for t in c.private]
    out += [Group("colocate", str(i)) for i, grp in enumerate(c.colocate) if len(set(grp)) > 1]
    return out


def restrict(inst: Instance, keep: Iterable[Group]) -> Instance:
    """A copy of ``inst`` with only the constraint groups in ``keep`` (the graph and links unchanged)."""
    kept = set(keep)
    c, s = inst.problem.constraints, inst.system

    def on(kind: str, key: str = "") -> bool:
        return Group(kind, key) in kept

    cons = dataclasses.replace(
        c,
        deadline_s=c.deadline_s if on("deadline") else None,
        energy_budget_j=MappingProxyType({d: b for d, b in c.energy_budget_j.items() if on("energy_budget", d)}),
        max_devices=c.max_devices if on("max_devices") else None,
        contiguous=c.contiguous and on("contiguous"),
        allowed=MappingProxyType({v: ds for v, ds in c.allowed.items() if on("allowed", v)}),
        private=tuple(t for t in c.private if on("private", t)),
        colocate=tuple(g for i, g in enumerate(c.colocate) if on("colocate", str(i))),
    )
    system = s
    if any(math.isfinite(d.memory_bytes) and not on("memory", d.id) for d in s.devices):
        devices = [d if on("memory", d.id) else dataclasses.replace(d, memory_bytes=math.inf) for d in s.devices]
        system = System(devices, list(s.links.values()), s.source, s.sink)
    problem = dataclasses.replace(inst.problem, constraints=cons)
    return dataclasses.replace(inst, system=system, problem=problem)


class _Oracle:
    """Exact solves of relaxed copies, counted and time-limited."""

    def __init__(self, time_limit_s: float | None, budget_s: float | None = None) -> None:
        self.check_s = time_limit_s or DEFAULT_CHECK_TIME_S
        self.deadline = time.perf_counter() + (budget_s or DEFAULT_BUDGET_S)
        self.solves = 0
        self.undecided = False

    def solve(self, inst: Instance) -> Result | None:
        from solvers.registry import get_solver

        left = self.deadline - time.perf_counter()
        if self.solves >= MAX_SOLVES or left <= 0.01:
            self.undecided = True
            return None
        self.solves += 1
        try:
            res = get_solver("auto").solve(inst, SolverOptions(time_limit_s=min(self.check_s, left)))
        except SolverError:
            self.undecided = True
            return None
        if res.status != Status.INFEASIBLE and not res.has_solution:
            self.undecided = True
        return res

    def infeasible(self, inst: Instance) -> bool:
        """True only when infeasibility is proven."""
        res = self.solve(inst)
        return res is not None and res.status == Status.INFEASIBLE


def deletion_filter(inst: Instance, oracle: _Oracle) -> list[Group] | None:
    """A minimal set of groups that is infeasible on its own; ``None`` when the base alone is infeasible."""
    active = groups(inst)
    if oracle.infeasible(restrict(inst, [])):
        return None
    for kind in dict.fromkeys(g.kind for g in active):
        family = [g for g in active if g.kind == kind]
        if len(family) > 1 and len(family) < len(active):
            trial = [g for g in active if g.kind != kind]
            if oracle.infeasible(restrict(inst, trial)):
                active = trial
    for g in list(active):
        trial = [h for h in active if h != g]
        if oracle.infeasible(restrict(inst, trial)):
            active = trial
    return active


def _optimum(oracle: _Oracle, inst: Instance, objective: Objective, **problem: Any) -> float | None:
    res = oracle.solve(inst.with_problem(dataclasses.replace(inst.problem, objective=objective, **problem)))
    if res is None or res.status != Status.OPTIMAL or res.objective is None:
        return None
    return res.objective


def relaxation(inst: Instance, g: Group, oracle: _Oracle) -> dict[str, Any] | None:
    """The smallest change of group ``g`` alone that makes ``inst`` feasible, or ``None``."""
    others = [h for h in groups(inst) if h != g]
    rest = restrict(inst, others)
    c = inst.problem.constraints
    if g.kind == "deadline":
        value = _optimum(oracle, rest, Objective("latency"))
        return None if value is None else _entry(g, value, "time", f"deadline >= {_q(value, 'time')}")
    if g.kind == "energy_budget":
        value = _optimum(oracle, rest, Objective("energy"), energy_scope=(g.key,))
        text = f"energy_budget[{g.key}] >= {_q(value, 'energy')}" if value is not None else ""
        return None if value is None else _entry(g, value, "energy", text)
    if g.kind == "max_devices":
        assert c.max_devices is not None
        for count in range(c.max_devices + 1, inst.k + 1):
            cons = dataclasses.replace(rest.problem.constraints, max_devices=count)
            res = oracle.solve(rest.with_problem(dataclasses.replace(rest.problem, constraints=cons)))
            if res is not None and res.has_solution:
                return _entry(g, float(count), "number", f"max_devices >= {count}")
        return None
    if g.kind == "memory":
        return _memory_relaxation(inst, rest, g, oracle)
    res = oracle.solve(rest)
    if res is None or not res.has_solution:
        return None
    return {"name": g.name, "kind": g.kind, "value": None, "unit": None, "text": f"drop {g.name}"}


def _memory_relaxation(inst: Instance, rest: Instance, g: Group, oracle: _Oracle) -> dict[str, Any] | None:
    j = inst.system.device_index[g.key]
    res = oracle.solve(rest)
    if res is None or not res.has_solution or res.metrics is None:
        return None
    lo, hi = float(inst.system.memory[j]), res.metrics.memory_bytes[g.key]
    s = inst.system
    while hi - lo > MEMORY_RTOL * hi and oracle.solves < MAX_SOLVES:
        mid = (lo + hi) / 2
        devices = [dataclasses.replace(d, memory_bytes=mid) if d.id == g.key else d for d in rest.system.devices]
        trial = dataclasses.replace(rest, system=System(devices, list(s.links.values()), s.source, s.sink))
        out = oracle.solve(trial)
        if out is not None and out.has_solution and out.metrics is not None:
            hi = min(mid, out.metrics.memory_bytes[g.key])
        elif out is not None and out.status == Status.INFEASIBLE:
            lo = mid
        else:
            break
    return _entry(g, hi, "bytes", f"memory[{g.key}] >= {_q(hi, 'bytes')}")


def _q(value: float | None, kind: str) -> str:
    return format_quantity(value, kind, digits=4) if value is not None else "?"  # type: ignore[arg-type]


def _entry(g: Group, value: float, kind: str, text: str) -> dict[str, Any]:
    unit = {"time": "s", "energy": "J", "bytes": "B", "number": ""}[kind]
    return {"name": g.name, "kind": g.kind, "value": value, "unit": unit, "text": text}


def describe(inst: Instance, g: Group) -> str:
    """The constraint in words with its current value, e.g. ``deadline <= 10 ms``."""
    c, s = inst.problem.constraints, inst.system
    if g.kind == "deadline":
        return f"deadline <= {_q(c.deadline_s, 'time')}"
    if g.kind == "energy_budget":
        return f"energy of {g.key} <= {_q(c.energy_budget_j[g.key], 'energy')}"
    if g.kind == "memory":
        return f"memory of {g.key} <= {_q(float(s.memory[s.device_index[g.key]]), 'bytes')}"
    if g.kind == "max_devices":
        return f"at most {c.max_devices} devices"
    if g.kind == "contiguous":
        return "each device runs a contiguous stage"
    if g.kind == "allowed":
        return f"{g.key} runs on {', '.join(c.allowed[g.key])} only"
    if g.kind == "private":
        return f"tensor {g.key} stays on trusted devices"
    return f"{', '.join(c.colocate[int(g.key)])} on one device"


def explain(inst: Instance, *, time_limit_s: float | None = None, budget_s: float | None = None) -> dict[str, Any]:
    """Why ``inst`` is infeasible: a minimal conflicting set of constraint groups and relaxations.

    Parameters
    ----------
    inst : Instance
        An instance an exact solver proved infeasible.
    time_limit_s : float, optional
        Limit of each oracle solve (default :data:`DEFAULT_CHECK_TIME_S`).
    budget_s : float, optional
        Limit of the whole explanation (default :data:`DEFAULT_BUDGET_S`); checks left undone
        keep their groups and the set is reported as not proven minimal.

    Returns
    -------
    dict
        ``constraints`` (``name``, ``kind``, ``text`` of each member), ``relaxations`` (``name``,
        ``kind``, ``value`` in SI base units or ``None``, ``unit``, ``text``: the smallest change
        of that constraint alone that restores feasibility), ``minimal`` (every check was decided),
        ``summary`` (one line), ``solves`` and ``time_s``.
    """
    t0 = time.perf_counter()
    oracle = _Oracle(time_limit_s, budget_s)
    conflict = deletion_filter(inst, oracle)
    minimal = not oracle.undecided
    if conflict is None:
        return {
            "constraints": [],
            "relaxations": [],
            "minimal": minimal,
            "summary": "infeasible without any constraint: the devices and links cannot run the model "
            "(a layer's inputs cannot reach any device, or outputs cannot reach the sink)",
            "solves": oracle.solves,
            "time_s": time.perf_counter() - t0,
        }
    members = [{"name": g.name, "kind": g.kind, "text": describe(inst, g)} for g in conflict]
    relax = [r for r in (relaxation(inst, g, oracle) for g in conflict) if r is not None]
    summary = " + ".join(m["name"] for m in members) or "?"
    if relax:
        summary += "; needs " + " or ".join(r["text"] for r in relax)
    return {
        "constraints": members,
        "relaxations": relax,
        "minimal": minimal,
        "summary": summary,
        "solves": oracle.solves,
        "time_s": time.perf_counter() - t0,
    }


def attach_conflict(inst: Instance, res: Result, *, time_limit_s: float | None = None) -> None:
    """Set ``res.conflict`` to :func:`explain` when ``res`` proves ``inst`` infeasible.

    Version-2 instances (docs/instance-format.md §9) are left without one: their request deadlines,
    utilisation and shared memory are not among the constraint groups analysed here.
    """
    if res.status == Status.INFEASIBLE and inst.workload is None:
        res.conflict = explain(inst, time_limit_s=time_limit_s)
