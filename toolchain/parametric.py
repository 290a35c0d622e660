"""Exact parametric analysis: where the optimal placement changes as one figure of an instance varies.

For a fixed placement the objectives latency (sequential), energy and cost are *linear* in a
transform ``t`` of several parameters (spec section 5):

============================  ==========  ==========================================================
parameter                     ``t``       why
============================  ==========  ==========================================================
``links.*.bandwidth``         ``1/x``     each transfer takes ``latency + bytes / bandwidth``
``links.*.latency``           ``x``       added once per transfer
``links.*.tx_power|rx_power`` ``x``       radio energy ``power * occupied time``
``links.*.price``             ``x``       ``price * bytes``
``devices.*.compute``         ``1/x``     ``t(v, d) = flops / compute`` (no roofline on the device)
``devices.*.power_*``         ``x``       ``power * time``
``devices.*.price``           ``x``       ``price * busy seconds``
============================  ==========  ==========================================================

so the optimal value ``z(t) = min_P (a_P + b_P t)`` is the lower envelope of one line per
feasible placement: concave and piecewise linear. Its breakpoints are found exactly by the
envelope search of Eisner and Severance ("Mathematical techniques for efficient record segmentation
in large shared databases", J. ACM 23(4), 1976), with an exact solver as the oracle:

1. solve at both ends ``t_lo``, ``t_hi``; each optimal placement's line is computed by the evaluator
   at ``t_lo`` and ``t_hi``;
2. for two pieces L (optimal at ``lo``) and R (optimal at ``hi``) with different lines, solve at
   their intersection ``t*``; if the optimum there lies below both lines by more than
   :data:`VALUE_RTOL` (relative) its placement M is a new piece, and the search recurses on
   ``[lo, t*]`` (L, M) and ``[t*, hi]`` (M, R); otherwise ``t*`` is a breakpoint.

Since ``z`` is concave, two lines that are optimal at ``lo`` and ``hi`` and meet at a point where
nothing is better bound ``z`` from below on ``[lo, hi]`` and equal it: the envelope is proven by
the solver's optimality at the probe points (each probe's status, objective and bound are kept as
the certificate). Lines equal within :data:`VALUE_RTOL` count as one piece; of several placements
with the same line that the oracle returned, the one with the smallest device-index vector is
reported (the oracles are deterministic, so the same input gives the same table).

Refused (:class:`ParametricError`, exit code 2), because ``z`` is then not a lower envelope of
lines: throughput (a maximum), parallel execution (a makespan, a maximum over paths), a deadline or
energy budget the parameter moves (feasibility changes along the range), device memory, memory
bandwidth and compute of a device with a memory-bandwidth roofline, and the problem's own limits.
Every line is also checked at the middle of the range of ``t``; a placement whose objective is not
linear there stops the analysis with the same error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formulation.evaluator import batch_metrics
from formulation.model import Instance
from solvers.options import SolverOptions
from toolchain.sweep import Param, SweepError, apply, parse_param, to_si

#: Two objective values closer than this (relative) are equal: pieces, breakpoints and ties.
VALUE_RTOL = 1e-9
#: Absolute floor of the tolerance (objectives of exactly 0).
VALUE_ATOL = 1e-15
#: Most oracle solves one analysis may make (the envelope has at most this many pieces).
MAX_PROBES = 500

#: (section, field) -> transform: ``inverse`` (t = 1/x) or ``identity`` (t = x).
TRANSFORMS: dict[tuple[str, str], str] = {
    ("links", "bandwidth"): "inverse",
    ("links", "latency"): "identity",
    ("links", "tx_power"): "identity",
    ("links", "rx_power"): "identity",
    ("links", "price"): "identity",
    ("devices", "compute"): "inverse",
    ("devices", "power_active"): "identity",
    ("devices", "power_idle"): "identity",
    ("devices", "price"): "identity",
}

#: Metrics each parameter moves (the others stay constant along the range).
MOVES: dict[tuple[str, str], frozenset[str]] = {
    ("links", "bandwidth"): frozenset({"latency", "energy"}),
    ("links", "latency"): frozenset({"latency", "energy"}),
    ("links", "tx_power"): frozenset({"energy"}),
    ("links", "rx_power"): frozenset({"energy"}),
    ("links", "price"): frozenset({"cost"}),
    ("devices", "compute"): frozenset({"latency", "energy", "cost"}),
    ("devices", "power_active"): frozenset({"energy"}),
    ("devices", "power_idle"): frozenset({"energy"}),
    ("devices", "price"): frozenset({"cost"}),
}

#: The SI unit of each field kind, as written in the JSON output.
SI_UNITS: dict[str, str] = {
    "byte_rate": "B/s",
    "time": "s",
    "power": "W",
    "usd_per_byte": "USD/B",
    "flop_rate": "FLOP/s",
    "usd_rate": "USD/s",
}


class ParametricError(SweepError):
    """The objective is not piecewise linear in the parameter (bad input: exit code 2)."""


class OracleError(RuntimeError):
    """A probe that the oracle did not prove optimal (time limit, error): no certificate (exit code 1)."""


class _Infeasible(Exception):
    """The oracle proved the probe infeasible (then every value is: feasibility does not move)."""


@dataclass(frozen=True)
class Probe:
    """One oracle solve at ``t`` (the certificate of the pieces found there)."""

    t: float
    value: float
    """The parameter in SI units."""
    key: tuple[int, ...]
    placement: dict[str, str]
    status: str
    objective: float
    bound: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "t": self.t,
            "value": self.value,
            "placement": self.placement,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "method": self.method,
        }


@dataclass(frozen=True)
class Line:
    """``objective = intercept + slope * t`` of one placement."""

    key: tuple[int, ...]
    intercept: float
    slope: float

    def at(self, t: float) -> float:
        """The objective at ``t``."""
        return self.intercept + self.slope * t


@dataclass
class Interval:
    """A range of the parameter (SI, ascending) on which one placement is optimal."""

    lo: float
    hi: float
    placement: dict[str, str]
    cut: str
    line: Line
    objective_lo: float
    objective_hi: float
    probes: list[Probe]
    """Probes whose optimum is this placement (its optimality certificate)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "from": self.lo,
            "to": self.hi,
            "placement": self.placement,
            "cut": self.cut,
            "objective_from": self.objective_lo,
            "objective_to": self.objective_hi,
            "line": {"intercept": self.line.intercept, "slope": self.line.slope},
            "certificate": [p.to_dict() for p in self.probes],
        }


@dataclass
class Breakpoints:
    """The exact envelope over a parameter range (see the module docstring)."""

    instance: str
    param: Param
    transform: str
    si_unit: str
    lo: float
    hi: float
    solver: str
    intervals: list[Interval] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    message: str = ""

    @property
    def breakpoints(self) -> list[float]:
        """Parameter values (SI, ascending) where the optimal placement changes."""
        return [iv.lo for iv in self.intervals[1:]]

    def t_of(self, x: float) -> float:
        """The transform of a parameter value."""
        return 1.0 / x if self.transform == "inverse" else x

    def placement_at(self, x: float) -> dict[str, str] | None:
        """The decision table's placement for parameter value ``x`` (SI); ends extend outwards."""
        if not self.intervals:
            return None
        for iv in self.intervals:
            if x <= iv.hi:
                return iv.placement
        return self.intervals[-1].placement

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``breakpoints`` in the field's SI unit)."""
        return {
            "instance": self.instance,
            "param": self.param.path,
            "unit": self.si_unit,
            "transform": "t = 1/x" if self.transform == "inverse" else "t = x",
            "range": [self.lo, self.hi],
            "solver": self.solver,
            "solves": len(self.probes),
            "breakpoints": self.breakpoints,
            "intervals": [iv.to_dict() for iv in self.intervals],
            "message": self.message,
        }

    def policy(self) -> dict[str, Any]:
        """The runtime decision table (Neurosurgeon's): interval -> placement."""
        return {
            "instance": self.instance,
            "param": self.param.path,
            "unit": self.si_unit,
            "table": [{"from": iv.lo, "to": iv.hi, "placement": iv.placement} for iv in self.intervals],
        }


def check_linear(inst: Instance, param: Param) -> str:
    """The transform of ``param`` for ``inst``, or :class:`ParametricError` saying why it has none."""
    where = f"--exact with --param {param.path!r}"
    tr = TRANSFORMS.get((param.section, param.name))
    if tr is None:
        raise ParametricError(
            f"{where}: the optimum is not piecewise linear in {param.name} (it changes which placements "
            f"are feasible or enters through a maximum); linear parameters: "
            + ", ".join(f"{s}.*.{f}" for s, f in TRANSFORMS)
        )
    p = inst.problem
    terms = {m for m, w in p.objective.terms().items() if w}
    if "throughput" in terms:
        raise ParametricError(f"{where}: the throughput objective is a period, a maximum of linear terms, not linear")
    moved = MOVES[(param.section, param.name)]
    if p.execution == "parallel" and terms & {"latency", "energy"} and moved & {"latency", "energy"}:
        raise ParametricError(
            f"{where}: in parallel execution the latency is a makespan, a maximum over paths, not linear"
        )
    c = p.constraints
    if c.deadline_s is not None and "latency" in moved:
        raise ParametricError(f"{where}: the deadline makes feasibility depend on {param.name}; remove it or sweep")
    if c.energy_budget_j and "energy" in moved:
        raise ParametricError(f"{where}: energy budgets make feasibility depend on {param.name}; remove them or sweep")
    if param.section == "devices" and param.name == "compute":
        dev = inst.system.devices[inst.system.device_index[param.target[0]]]
        if dev.memory_bandwidth_bytes_per_s is not None:
            raise ParametricError(
                f"{where}: device {dev.id!r} has a memory bandwidth (roofline: a maximum), not linear in 1/compute"
            )
    return tr


class _Envelope:
    """The state of one envelope search: oracle, lines and probes."""

    def __init__(
        self, inst: Instance, param: Param, transform: str, t_lo: float, t_hi: float, solver: str, options: Any
    ) -> None:
        from solvers.registry import get_solver

        self.inst, self.param, self.transform = inst, param, transform
        self.t_lo, self.t_hi = t_lo, t_hi
        self.engine = get_solver(solver)
        self.options = options
        self.probes: list[Probe] = []
        self.x_lo, self.x_hi = sorted((self.x_of(t_lo), self.x_of(t_hi)))
        self.lines: dict[tuple[int, ...], Line] = {}
        self._ends = (self.variant(t_lo), self.variant(t_hi), self.variant((t_lo + t_hi) / 2))

    def x_of(self, t: float) -> float:
        """The parameter value (SI) of a transform value."""
        return 1.0 / t if self.transform == "inverse" else t

    t_of = x_of  # the transforms are involutions

    def variant(self, t: float) -> Instance:
        return apply(self.inst, self.param, self.x_of(t))

    def objective(self, inst: Instance, key: tuple[int, ...]) -> float:
        bm = batch_metrics(inst, np.asarray([key]), parallel=inst.problem.execution == "parallel")
        return float(bm.objective()[0])

    def line(self, key: tuple[int, ...]) -> Line:
        """The placement's line from the evaluator at both ends, checked in the middle."""
        if key in self.lines:
            return self.lines[key]
        lo_i, hi_i, mid_i = self._ends
        f0, f1 = self.objective(lo_i, key), self.objective(hi_i, key)
        slope = (f1 - f0) / (self.t_hi - self.t_lo) if self.t_hi > self.t_lo else 0.0
        ln = Line(key, f0 - slope * self.t_lo, slope)
        tm = (self.t_lo + self.t_hi) / 2
        fm = self.objective(mid_i, key)
        if not math.isfinite(fm) or abs(fm - ln.at(tm)) > 1e-7 * max(abs(fm), abs(f0), abs(f1)) + VALUE_ATOL:
            raise ParametricError(
                f"--exact with --param {self.param.path!r}: the objective of a placement is not linear in the "
                f"transform (at {self.x_of(tm):g}: {fm!r}, the line through the ends gives {ln.at(tm)!r})"
            )
        self.lines[key] = ln
        return ln

    def probe(self, t: float) -> Probe:
        """Solve at ``t``; a proven optimum or :class:`ParametricError`."""
        if len(self.probes) >= MAX_PROBES:
            raise OracleError(f"envelope search stopped after {MAX_PROBES} solves")
        inst = self.variant(t)
        res = self.engine.solve(inst, self.options)
        if res.status.value == "infeasible":
            raise _Infeasible
        if res.status.value != "optimal" or res.objective is None:
            raise OracleError(
                f"the oracle {self.engine.name!r} returned {res.status.value} at {self.param.path} = "
                f"{self.x_of(t):g} (SI); the breakpoints need a proven optimum at every probe ({res.message})"
            )
        dev = inst.system.device_index
        key = tuple(dev[res.placement[lay]] for lay in inst.graph.layer_ids)
        pr = Probe(
            t, self.x_of(t), key, dict(res.placement), res.status.value, float(res.objective),
            float(res.bound), res.method or res.solver,
        )  # fmt: skip
        self.probes.append(pr)
        self.line(key)
        return pr

    def tol(self, *vals: float) -> float:
        return VALUE_RTOL * max(abs(v) for v in vals) + VALUE_ATOL

    def same(self, a: Line, b: Line, lo: float, hi: float) -> bool:
        fa, fb, ga, gb = a.at(lo), b.at(lo), a.at(hi), b.at(hi)
        return abs(fa - fb) <= self.tol(fa, fb) and abs(ga - gb) <= self.tol(ga, gb)

    def search(self, left: Line, right: Line, lo: float, hi: float) -> list[tuple[Line, float]]:
        """Pieces on ``[lo, hi]`` as (line, start t); ``left`` optimal at ``lo``, ``right`` at ``hi``."""
        if self.same(left, right, lo, hi):
            return [(min(left, right, key=lambda ln: ln.key), lo)]
        ds = left.slope - right.slope
        t = (right.intercept - left.intercept) / ds if ds != 0 else lo
        t = min(max(t, lo), hi)
        pr = self.probe(t)
        mid = self.lines[pr.key]
        ref = min(left.at(t), right.at(t))
        if mid.at(t) < ref - self.tol(ref, mid.at(t)):
            return self.search(left, mid, lo, t) + self.search(mid, right, t, hi)
        return [(left, lo), (right, t)]


def _merge(pieces: list[tuple[Line, float]], env: _Envelope, t_end: float) -> list[tuple[Line, float, float]]:
    """Drop empty pieces, merge neighbours with the same line: (line, t_start, t_stop)."""
    out: list[tuple[Line, float, float]] = []
    bounds = [p[1] for p in pieces[1:]] + [t_end]
    for (ln, t0), t1 in zip(pieces, bounds, strict=True):
        if t1 - t0 <= 1e-12 * max(abs(t0), abs(t1)) and len(pieces) > 1:
            continue
        if out and env.same(out[-1][0], ln, out[-1][1], t1):
            best = min(out[-1][0], ln, key=lambda x: x.key)
            out[-1] = (best, out[-1][1], t1)
        else:
            out.append((ln, t0, t1))
    return out


def exact_breakpoints(
    inst: Instance,
    path: str,
    lo: float,
    hi: float,
    *,
    unit: str | None = None,
    solver: str = "auto",
    options: SolverOptions | None = None,
) -> Breakpoints:
    """The exact optimal placements and breakpoints of ``path`` over ``[lo, hi]`` (module docstring).

    Parameters
    ----------
    inst : Instance
    path : str
        A parameter path of :mod:`toolchain.sweep`.
    lo, hi : float
        The range's ends in ``unit`` (default: the field's sweep unit); their order does not matter.
    solver : str
        An exact solver (the oracle); ``auto`` by default, asked for a zero gap where it accepts one.
    options : SolverOptions, optional

    Raises
    ------
    ParametricError, SweepError, InstanceError
        Before solving, for a parameter in which the optimum is not piecewise linear, a bad path,
        unit or range.
    OracleError
        While solving, when a probe is not proven optimal.
    """
    from solvers.registry import get_solver

    param = parse_param(inst, path)
    transform = check_linear(inst, param)
    x_lo, x_hi = sorted((to_si(param, lo, unit), to_si(param, hi, unit)))
    if x_lo <= 0 and transform == "inverse":
        raise ParametricError(f"--values: {param.name} must be positive over the range, got {x_lo:g} (SI)")
    if not (math.isfinite(x_lo) and math.isfinite(x_hi)):
        raise ParametricError("--values: the range needs finite ends")
    apply(inst, param, x_lo)  # range check of the values
    engine = get_solver(solver)
    if not engine.exact:
        raise ParametricError(f"--solver {solver!r}: the breakpoints need an exact solver as the oracle")
    if options is None:
        options = SolverOptions(gap=0.0) if "gap" in engine.supported_options else SolverOptions()
    t_a, t_b = sorted((1.0 / x_lo, 1.0 / x_hi) if transform == "inverse" else (x_lo, x_hi))
    env = _Envelope(inst, param, transform, t_a, t_b, solver, options)
    env.x_lo, env.x_hi = x_lo, x_hi
    bp = Breakpoints(inst.name, param, transform, SI_UNITS[param.field.kind], x_lo, x_hi, solver)
    try:
        p_lo = env.probe(t_a)
    except _Infeasible:
        bp.message = "infeasible: no placement satisfies the constraints (which the parameter does not move)"
        return bp
    p_hi = env.probe(t_b) if t_b != t_a else p_lo
    pieces = env.search(env.lines[p_lo.key], env.lines[p_hi.key], t_a, t_b)
    merged = _merge(pieces, env, t_b)
    bp.probes = env.probes
    bp.intervals = _intervals(inst, env, merged)
    return bp


def _intervals(inst: Instance, env: _Envelope, merged: list[tuple[Line, float, float]]) -> list[Interval]:
    from toolchain.sweep import describe_cut

    dev = inst.system.device_ids
    out = []
    for ln, t0, t1 in merged:
        placement = {lay: dev[d] for lay, d in zip(inst.graph.layer_ids, ln.key, strict=True)}
        x0, x1 = env.x_of(t0), env.x_of(t1)
        certs = [
            p for p in env.probes
            if t0 - 1e-12 * abs(t0) <= p.t <= t1 + 1e-12 * abs(t1) and env.same(env.lines[p.key], ln, t0, t1)
        ]  # fmt: skip
        iv = Interval(min(x0, x1), max(x0, x1), placement, describe_cut(inst, placement), ln, 0.0, 0.0, certs)
        iv.objective_lo, iv.objective_hi = ln.at(env.t_of(iv.lo)), ln.at(env.t_of(iv.hi))
        out.append(iv)
    out.sort(key=lambda iv: iv.lo)
    if out:  # the range's own ends, not their round trip through the transform
        out[0].lo, out[-1].hi = env.x_lo, env.x_hi
    return out


def parse_range(spec: str) -> tuple[float, float]:
    """The two ends of a ``--values`` range (``A:B``, ``A:B:log``) or of a comma list (its extremes)."""
    from toolchain.sweep import parse_values

    vals, _ = parse_values(spec, 2)
    if len(vals) < 2 or min(vals) == max(vals):
        raise SweepError(f"--values {spec!r}: --exact needs a range of two different values")
    return min(vals), max(vals)


__all__: Sequence[str] = [
    "Breakpoints",
    "Interval",
    "Line",
    "OracleError",
    "ParametricError",
    "Probe",
    "check_linear",
    "exact_breakpoints",
    "parse_range",
]
