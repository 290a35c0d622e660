"""Network states: one placement judged over several states of the system (docs/instance-format.md §10).

An instance may declare ``scenarios``: named states, each a probability and a set of overrides of
link and device figures (``links.phone-cloud.bandwidth: 2 Mbit/s``). State ``s`` is the instance
with its overrides applied, built as an ordinary :class:`~formulation.model.Instance`
(:func:`state_instances`), so every cost-model path is reused unchanged. One placement ``x`` is
chosen for all states; with ``f_s(x)`` the objective of ``x`` in state ``s`` and ``p_s`` its
probability, ``problem.robust`` minimises

* ``expected``: ``E[f] = sum_s p_s f_s``;
* ``worst``: ``max_s f_s``;
* ``cvar:ALPHA`` (``0 <= ALPHA < 1``): the conditional value at risk of Rockafellar and Uryasev
  ("Optimization of conditional value-at-risk", Journal of Risk 2(3), 2000; "Conditional
  value-at-risk for general loss distributions", Journal of Banking & Finance 26(7), 2002)::

      CVaR_a(f) = min_eta  eta + 1 / (1 - a) * sum_s p_s max(0, f_s - eta)

  For discrete states the function of ``eta`` is convex and piecewise linear with breakpoints at
  the values ``f_s``, so the minimum is attained at one of them (:func:`cvar`). ``a = 0`` gives
  ``E[f]``; as ``a`` approaches 1 it approaches ``max_s f_s``; in between it is the expectation of
  the worst ``1 - a`` of the probability mass.

Constraints: the static ones (memory, allowed, private, ...) do not depend on the state; energy
budgets must hold in every state; the deadline must hold in every state, or, with
``problem.deadline_probability: q``, in a set of states of total probability at least ``q`` (a
chance constraint over the discrete states, ``sum_s p_s [L_s <= deadline] >= q``, checked with an
absolute tolerance of :data:`PROBABILITY_TOL`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from formulation.model import BoolArray, FloatArray, Instance, IntArray, System
from formulation.units import Kind
from formulation.workload import Workload

#: Absolute tolerance of "probabilities sum to 1" and of the chance constraint's level.
PROBABILITY_TOL = 1e-9
#: Most states an instance may declare (each is a copy of the metric model in the exact engines).
MAX_STATES = 1000

Measure = Literal["expected", "worst", "cvar"]
MEASURES = ("expected", "worst", "cvar")

#: Overridable figures: section -> file field -> (model attribute, unit kind, must be positive).
OVERRIDABLE: dict[str, dict[str, tuple[str, Kind, bool]]] = {
    "links": {
        "bandwidth": ("bandwidth_bytes_per_s", "byte_rate", True),
        "latency": ("latency_s", "time", False),
        "tx_power": ("tx_power_w", "power", False),
        "rx_power": ("rx_power_w", "power", False),
        "price": ("price_usd_per_byte", "usd_per_byte", False),
        "overhead": ("overhead_s", "time", False),
        "overhead_bandwidth": ("overhead_bandwidth_bytes_per_s", "byte_rate", True),
    },
    "devices": {
        "compute": ("compute_flops_per_s", "flop_rate", True),
        "memory_bandwidth": ("memory_bandwidth_bytes_per_s", "byte_rate", True),
        "power_active": ("power_active_w", "power", False),
        "power_idle": ("power_idle_w", "power", False),
        "price": ("price_usd_per_s", "usd_rate", False),
    },
}


@dataclass(frozen=True)
class Override:
    """One figure of one state: ``section`` links or devices, ``target`` the channels ``(src, dst)``
    or the device id, ``field`` the file field name, ``value`` in SI units; ``path`` as written."""

    path: str
    section: str
    target: tuple[Any, ...]
    field: str
    value: float


@dataclass(frozen=True)
class Scenario:
    """A named state with its probability and overrides."""

    name: str
    probability: float
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class ScenarioSet:
    """The states of an instance and how one placement is judged over them (module docstring).

    Attributes
    ----------
    states : tuple of Scenario
    measure : str
        ``expected``, ``worst`` or ``cvar``.
    alpha : float
        The CVaR level (0 for the other measures).
    deadline_probability : float or None
        Level of the deadline's chance constraint; ``None``: the deadline holds in every state.
    """

    states: tuple[Scenario, ...]
    measure: Measure = "expected"
    alpha: float = 0.0
    deadline_probability: float | None = None

    @property
    def probabilities(self) -> FloatArray:
        """``p_s`` in state order."""
        return np.array([s.probability for s in self.states], dtype=float)

    @property
    def names(self) -> tuple[str, ...]:
        """State names in order."""
        return tuple(s.name for s in self.states)

    def label(self) -> str:
        """``expected``, ``worst`` or ``cvar:ALPHA`` as written in files."""
        return f"cvar:{self.alpha:g}" if self.measure == "cvar" else self.measure


def parse_measure(text: str) -> tuple[Measure, float]:
    """``expected | worst | cvar:ALPHA`` to ``(measure, alpha)``.

    Raises
    ------
    ValueError
        With the expected form in words.
    """
    if text in ("expected", "worst"):
        return text, 0.0  # type: ignore[return-value]
    head, sep, tail = text.partition(":")
    if head == "cvar" and sep:
        try:
            alpha = float(tail)
        except ValueError:
            alpha = math.nan
        if 0.0 <= alpha < 1.0:
            return "cvar", alpha
    raise ValueError("expected, worst, or cvar:ALPHA with 0 <= ALPHA < 1 (e.g. cvar:0.9)")


def resolve_target(system: System, path: str) -> tuple[str, tuple[Any, ...], str]:
    """``(section, target, field)`` of an override path, or ValueError saying what is expected.

    ``links.a-b.FIELD`` changes the channel a->b and, when it exists, b->a (a file link is
    bidirectional by default); ``links.a->b.FIELD`` one direction; ``devices.ID.FIELD`` a device.
    Device ids may contain ``-`` or ``.``: the split that names existing devices is used.
    """
    section, _, rest = path.partition(".")
    middle, _, name = rest.rpartition(".")
    if section not in OVERRIDABLE or not middle:
        raise ValueError("links.<from>-<to>.<field>, links.<from>-><to>.<field> or devices.<id>.<field>")
    fields = OVERRIDABLE[section]
    if name not in fields:
        raise ValueError(f"a {section} field that a state may set, one of {', '.join(fields)}")
    if section == "devices":
        if middle not in system.device_index:
            raise ValueError(f"a device id after 'devices.' (one of {', '.join(system.device_ids)})")
        return section, (middle,), name
    if "->" in middle:
        a, _, b = middle.partition("->")
        if (a, b) not in system.links:
            raise ValueError(f"an existing channel (links: {', '.join(f'{x}->{y}' for x, y in system.links)})")
        return section, ((a, b),), name
    splits = [(middle[:i], middle[i + 1 :]) for i, ch in enumerate(middle) if ch == "-"]
    found = [(a, b) for a, b in splits if (a, b) in system.links or (b, a) in system.links]
    if len(found) != 1:
        why = "names two devices of several links" if found else "names no link"
        raise ValueError(f"<from>-<to> naming one link ({middle!r} {why})")
    a, b = found[0]
    return section, tuple(ch for ch in ((a, b), (b, a)) if ch in system.links), name


def apply_overrides(inst: Instance, overrides: Sequence[Override]) -> System:
    """The system of ``inst`` with ``overrides`` applied (a new System; ``inst`` is unchanged)."""
    s = inst.system
    devices = list(s.devices)
    links = dict(s.links)
    for ov in overrides:
        attr = OVERRIDABLE[ov.section][ov.field][0]
        if ov.section == "devices":
            i = s.device_index[ov.target[0]]
            change: dict[str, Any] = {attr: ov.value}
            devices[i] = dataclasses.replace(devices[i], **change)
        else:
            change = {attr: ov.value}
            for ch in ov.target:
                links[ch] = dataclasses.replace(links[ch], **change)
    return System(devices, list(links.values()), s.source, s.sink)


def state_instances(inst: Instance) -> tuple[Instance, ...]:
    """One ordinary instance per state: the overrides applied, no scenarios (every path reused).

    Each is named ``NAME[STATE]`` and keeps the problem's objective and constraints (a state solved
    alone keeps the deadline: its own optimum is the one the regret is measured against). A
    version-2 workload keeps its requests; under ``shortest`` routing its routes are computed again
    from the state's figures (the tie-break among routes of fewest hops is the least fixed delay, which
    a state may change; docs/instance-format.md §10.1), ``direct`` and explicit routes are the file's.
    """
    sc = inst.problem.scenarios
    if sc is None:
        return (inst,)
    problem = dataclasses.replace(inst.problem, scenarios=None)
    out = []
    for st in sc.states:
        system = apply_overrides(inst, st.overrides)
        out.append(
            dataclasses.replace(
                inst, name=f"{inst.name}[{st.name}]", system=system, problem=problem,
                workload=state_workload(inst, system),
            )
        )
    return tuple(out)


def state_workload(inst: Instance, system: System) -> Workload | None:
    """The workload of ``inst`` on ``system`` (a state's): shortest routes computed on its figures."""
    wl = inst.workload
    if wl is None or wl.routing != "shortest":
        return wl
    from formulation.routing import shortest_routes

    return dataclasses.replace(wl, routes=shortest_routes(system))


def has_deadline(inst: Instance) -> bool:
    """A deadline applies: ``problem.constraints.deadline`` (version 1) or some request's (version 2)."""
    if inst.workload is not None:
        return any(r.deadline_s is not None for r in inst.workload.requests)
    return inst.problem.constraints.deadline_s is not None


def state_key(state: str, key: str) -> str:
    """``[STATE]KEY``: a schedule key of one state (a version-2 ``schedule`` keeps a schedule per state)."""
    return f"[{state}]{key}"


def state_schedules(
    schedule: Mapping[str, float] | None, names: Sequence[str]
) -> tuple[Mapping[str, float] | None, ...]:
    """Each state's schedule from one mapping: the keys ``[STATE]KEY`` of that state, prefix removed.

    A schedule without any ``[STATE]`` key is every state's (checked in each); a state without keys
    of its own gets ``None`` (its default schedule).
    """
    if schedule is None:
        return tuple(None for _ in names)
    own: list[dict[str, float]] = [{} for _ in names]
    # longest names first: a state named "a]b" owns "[a]b]x" before a state named "a" could
    order = sorted(range(len(names)), key=lambda i: -len(names[i]))
    tagged = False
    for key, start in schedule.items():
        for i in order:
            head = f"[{names[i]}]"
            if key.startswith(head):
                own[i][key[len(head):]] = start
                tagged = True
                break
    if not tagged:
        return tuple(schedule for _ in names)
    return tuple(o or None for o in own)


def nominal_instance(inst: Instance) -> Instance:
    """The instance without its scenarios (the file's own figures)."""
    if inst.problem.scenarios is None:
        return inst
    return inst.with_problem(dataclasses.replace(inst.problem, scenarios=None))


# -- the robust measures ---------------------------------------------------------------------------


def cvar(values: FloatArray, p: FloatArray, alpha: float) -> FloatArray:
    """CVaR_alpha of each row of ``values`` (N, S) under probabilities ``p`` (S,) (module docstring).

    The Rockafellar–Uryasev function is minimised over the breakpoints ``eta = f_j``; a row with a
    non-finite value gives ``inf``.
    """
    f = np.atleast_2d(np.asarray(values, dtype=float))
    out = np.full(f.shape[0], np.inf)
    with np.errstate(invalid="ignore"):
        for j in range(f.shape[1]):  # eta = f_j, one breakpoint at a time (memory N x S)
            eta = f[:, j : j + 1]
            ru = eta[:, 0] + np.maximum(0.0, f - eta) @ p / (1.0 - alpha)
            out = np.minimum(out, ru)
    return np.where(np.isfinite(f).all(axis=1), out, np.inf)


def robust_value(values: FloatArray, sc: ScenarioSet) -> FloatArray:
    """The robust measure of each row of ``values`` (N, S): expected, worst or CVaR."""
    f = np.atleast_2d(np.asarray(values, dtype=float))
    p = sc.probabilities
    finite = np.isfinite(f).all(axis=1)
    if sc.measure == "worst":
        out = f.max(axis=1)
    elif sc.measure == "cvar":
        out = cvar(f, p, sc.alpha)
    else:
        with np.errstate(invalid="ignore"):
            out = (np.where(finite[:, None], f, 0.0) * p[None, :]).sum(axis=1)
    return np.where(finite, out, np.inf)


def deadline_level(sc: ScenarioSet) -> float:
    """The probability with which the deadline must hold (1 when it must hold in every state)."""
    return 1.0 if sc.deadline_probability is None else sc.deadline_probability


def chance_met(deadline_ok: BoolArray, sc: ScenarioSet) -> BoolArray:
    """(N,) the deadline holds in states of total probability >= the level (``deadline_ok``: (N, S))."""
    ok = np.atleast_2d(deadline_ok)
    if sc.deadline_probability is None:
        return np.asarray(ok.all(axis=1))
    return np.asarray(ok.astype(float) @ sc.probabilities >= sc.deadline_probability - PROBABILITY_TOL)


@dataclass(frozen=True)
class RobustBatch:
    """The robust objective and feasibility of N placements, with the per-state values behind them.

    Attributes
    ----------
    objective : (N,) float
    feasible : (N,) bool
    state_objective : (N, S) float
    deadline_ok : (N, S) bool
    """

    objective: FloatArray
    feasible: BoolArray
    state_objective: FloatArray
    deadline_ok: BoolArray


def robust_batch(inst: Instance, P: IntArray, states: Sequence[Instance] | None = None) -> RobustBatch:
    """Judge N placements (N, n) over the states of ``inst`` with the vectorised cost model."""
    from formulation.evaluator.batch import batch_metrics

    sc = inst.problem.scenarios
    assert sc is not None, "robust_batch needs an instance with scenarios"
    states = state_instances(inst) if states is None else states
    P = np.atleast_2d(P)
    parallel = inst.problem.execution == "parallel"
    objs, dl, other = [], [], np.ones(P.shape[0], dtype=bool)
    for st in states:
        bm = batch_metrics(st, P, parallel=parallel)
        objs.append(bm.objective())
        viol = bm.violations()
        dl.append(~viol.pop("deadline", np.zeros(P.shape[0], dtype=bool)))
        for bad in viol.values():
            other &= ~bad
    f = np.stack(objs, axis=1)
    ok = np.stack(dl, axis=1)
    return RobustBatch(robust_value(f, sc), other & chance_met(ok, sc), f, ok)


def prepare_states(inst: Instance, engine: str) -> tuple[Instance, bool]:
    """The numerical preparation of a tolerance-based engine for an instance with scenarios.

    Dominated options are *not* pruned (the pruning argument of :mod:`formulation.numerics` holds
    for one state, not for a measure over several); the range check is made in every state.
    """
    from formulation.numerics import check_range, reference

    for st in state_instances(inst):
        check_range(st, engine, reference(st))
    return inst, False

