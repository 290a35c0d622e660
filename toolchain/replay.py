"""Trace replay: a stream of inferences under a changing network, for several placement policies.

Model (docs/networks.md)
    Row ``i`` of the trace (:mod:`toolchain.traces`) sets, from ``time[i]`` on, the bandwidth
    (and latency, if given) of the link ``a-b`` both ways, and the compute of each device with a
    ``load:<device>`` column to ``compute * (1 - load)``. Inferences arrive at each row's time, or
    ``rate`` per second; each one runs entirely under the state of its row and is evaluated by
    the evaluator (latency, energy, the problem's objective; a deadline miss when its latency,
    switch included, exceeds the deadline).
Policies
    ``static`` keeps the optimum of the instance as written (or a given placement) throughout;
    ``oracle`` uses each row's exact optimum (``auto``), so without switching costs it is never
    worse than any other policy on any step; where a deadline or energy budget cannot hold in a
    state (or in the file's own state, for ``static``), the optimum without them is used and the
    misses are counted; ``table`` looks the row's bandwidth up in a decision
    table (:meth:`toolchain.parametric.Breakpoints.policy`), from a file or computed exactly over
    the trace's bandwidth range with the instance's other figures, as Neurosurgeon's runtime does.
Switch cost (``weights``)
    When a policy changes placement, every layer that moves sends its parameters from its old
    device ``a`` to its new device ``b`` before the next inference runs: per pair ``(a, b)``,
    ``latency + bytes / bandwidth`` of the link at that moment (through the source device where no
    direct link exists), charged to that inference's latency, and the radio energy
    ``tx_power * bytes / bandwidth`` on ``a`` and ``rx_power * bytes / bandwidth`` on ``b``
    (devices in the energy scope) to its energy. The first placement is deployed in advance.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from formulation.evaluator import batch_metrics
from formulation.model import Instance
from toolchain.sweep import Param, SweepError, apply, parse_param
from toolchain.traces import Trace

POLICIES = ("static", "oracle", "table")


class ReplayError(SweepError):
    """A policy, link or table that does not fit the instance or trace (bad input, exit code 2)."""


@dataclass
class PolicyRun:
    """One policy over the stream: arrays with one entry per inference."""

    name: str
    placement_ids: np.ndarray
    latency: np.ndarray
    """Seconds, switch delay included."""
    energy: np.ndarray
    """Joules, switch radio energy included."""
    steady: np.ndarray
    """The problem's objective of the placement in that state, without switching."""
    switch_s: np.ndarray
    miss: np.ndarray

    @property
    def switches(self) -> int:
        """Placement changes over the stream."""
        return int(np.count_nonzero(np.diff(self.placement_ids)))

    def summary(self) -> dict[str, float | int]:
        """Mean, p95 and p99 latency, mean and total energy, deadline misses, switches."""
        return {
            "inferences": int(self.latency.size),
            "latency_mean_s": float(np.mean(self.latency)),
            "latency_p95_s": float(np.percentile(self.latency, 95)),
            "latency_p99_s": float(np.percentile(self.latency, 99)),
            "energy_mean_j": float(np.mean(self.energy)),
            "energy_total_j": float(np.sum(self.energy)),
            "objective_mean": float(np.mean(self.steady)),
            "deadline_misses": int(np.count_nonzero(self.miss)),
            "switches": self.switches,
            "switch_time_s": float(np.sum(self.switch_s)),
        }


@dataclass
class Replay:
    """The outcome of :func:`replay`."""

    instance: str
    trace: str
    link: str
    times: np.ndarray
    """Arrival time of each inference, s."""
    bandwidth: np.ndarray
    """Bandwidth seen by each inference, B/s."""
    deadline_s: float | None
    placements: list[dict[str, str]] = field(default_factory=list)
    runs: dict[str, PolicyRun] = field(default_factory=dict)
    solves: int = 0

    def to_dict(self, per_inference: bool = False) -> dict[str, Any]:
        """JSON-ready dict; ``per_inference`` adds every inference's values."""
        out: dict[str, Any] = {
            "instance": self.instance,
            "trace": self.trace,
            "link": self.link,
            "inferences": int(self.times.size),
            "deadline_s": self.deadline_s,
            "oracle_solves": self.solves,
            "policies": {name: run.summary() for name, run in self.runs.items()},
            "placements": self.placements,
        }
        if per_inference:
            out["series"] = {
                "time_s": self.times.tolist(),
                "bandwidth_bytes_per_s": self.bandwidth.tolist(),
                **{
                    name: {
                        "placement": run.placement_ids.tolist(),
                        "latency_s": run.latency.tolist(),
                        "energy_j": run.energy.tolist(),
                        "switch_s": run.switch_s.tolist(),
                    }
                    for name, run in self.runs.items()
                },
            }
        return out


def _link_params(inst: Instance, link: str | None) -> tuple[str, Param, Param]:
    """The link's name and its bandwidth and latency parameters (the only link if none is named)."""
    if link is None:
        pairs = {tuple(sorted(p)) for p in inst.system.links}
        if len(pairs) != 1:
            shown = ", ".join(f"{a}-{b}" for a, b in sorted(pairs))
            raise ReplayError(f"--link: the instance has several links ({shown}); name the one the trace describes")
        a, b = next(iter(pairs))
        link = f"{a}-{b}"
    try:
        return link, parse_param(inst, f"links.{link}.bandwidth"), parse_param(inst, f"links.{link}.latency")
    except SweepError:
        shown = ", ".join(sorted({"-".join(sorted(p)) for p in inst.system.links}))
        raise ReplayError(f"--link {link!r}: expected a link a-b of the instance ({shown})") from None


class _States:
    """The instance under each trace row, built once per row."""

    def __init__(self, inst: Instance, trace: Trace, bw: Param, lat: Param) -> None:
        loads = {d: parse_param(inst, f"devices.{d}.compute") for d in trace.load}
        self.rows: list[Instance] = []
        for i in range(len(trace)):
            v = apply(inst, bw, float(trace.bandwidth[i]))
            if trace.latency is not None:
                v = apply(v, lat, float(trace.latency[i]))
            for d, p in loads.items():
                base = inst.system.compute[inst.system.device_index[d]]
                v = apply(v, p, float(base * (1 - trace.load[d][i])))
            self.rows.append(v)


def _relaxed(inst: Instance) -> Instance:
    """The instance without its deadline and energy budgets (misses are counted, not prevented)."""
    c = dataclasses.replace(inst.problem.constraints, deadline_s=None, energy_budget_j={})
    return inst.with_problem(dataclasses.replace(inst.problem, constraints=c))


def _key(inst: Instance, placement: dict[str, str]) -> tuple[int, ...]:
    dev = inst.system.device_index
    return tuple(dev[placement[lay]] for lay in inst.graph.layer_ids)


def switch_cost(row: Instance, old: tuple[int, ...], new: tuple[int, ...]) -> tuple[float, float]:
    """Seconds and joules to move the weights of the layers whose device changes (module docstring)."""
    s, g = row.system, row.graph
    moved: dict[tuple[int, int], float] = {}
    for v, (a, b) in enumerate(zip(old, new, strict=True)):
        if a != b and g.param_bytes[v] > 0:
            moved[(a, b)] = moved.get((a, b), 0.0) + float(g.param_bytes[v])
    secs = joules = 0.0
    scope = row.scope_mask
    for (a, b), nbytes in moved.items():
        hops = [(a, b)] if s.has_link[a, b] else [(a, s.source_index), (s.source_index, b)]
        for x, y in hops:
            if x == y:
                continue
            if not s.has_link[x, y]:
                return math.inf, math.inf
            occ = nbytes / float(s.bandwidth[x, y])
            secs += float(s.link_latency[x, y]) + occ
            joules += (float(s.tx_power[x, y]) * occ if scope[x] else 0.0) + (
                float(s.rx_power[x, y]) * occ if scope[y] else 0.0
            )
    return secs, joules


def load_table(data: Any, inst: Instance, bw: Param, path: str) -> list[tuple[float, float, tuple[int, ...]]]:
    """A decision table (``sweep --exact --out``) checked against the instance and link."""
    if not isinstance(data, dict) or not isinstance(data.get("table"), list) or not data["table"]:
        raise ReplayError(f"{path}: expected a decision table written by 'dnnpart sweep --exact --out'")
    try:
        param = parse_param(inst, str(data.get("param")))
    except SweepError as exc:
        raise ReplayError(f"{path}: param: {exc}") from None
    if param.name != "bandwidth" or set(param.target) != set(bw.target):
        raise ReplayError(f"{path}: the table is for {data.get('param')!r}, the trace for {bw.path!r}")
    out = []
    for j, row in enumerate(data["table"]):
        pl = row.get("placement") if isinstance(row, dict) else None
        ok = isinstance(pl, dict) and set(pl) == set(inst.graph.layer_ids)
        ok = ok and all(d in inst.system.device_index for d in pl.values())  # type: ignore[union-attr]
        if not ok or not all(isinstance(row.get(x), int | float) for x in ("from", "to")):
            raise ReplayError(
                f"{path}: table[{j}]: expected from, to (B/s) and a placement of every layer on a device "
                "of the instance"
            )
        out.append((float(row["from"]), float(row["to"]), _key(inst, pl)))  # type: ignore[arg-type]
    return sorted(out)


def _lookup(table: list[tuple[float, float, tuple[int, ...]]], x: float) -> tuple[int, ...]:
    for _, hi, key in table:
        if x <= hi:
            return key
    return table[-1][2]


def replay(
    inst: Instance,
    trace: Trace,
    policies: list[str],
    *,
    link: str | None = None,
    switch: str = "none",
    rate: float | None = None,
    deadline_s: float | None = None,
    static_placement: dict[str, str] | None = None,
    table: Any = None,
    table_path: str = "table",
    solver: str = "auto",
) -> Replay:
    """Replay ``trace`` under each policy (module docstring).

    Parameters
    ----------
    policies : list of str
        Among ``static``, ``oracle``, ``table``.
    link : str, optional
        ``a-b``: the link the trace describes (default: the instance's only link).
    switch : str
        ``weights`` (charge moving parameters) or ``none``.
    rate : float, optional
        Inferences per second (default: one at each row's time).
    deadline_s : float, optional
        Overrides the problem's deadline for counting misses.
    static_placement : dict, optional
        The static policy's placement (default: the optimum of the instance as written).
    table : dict, optional
        A decision table (JSON data); default: computed by :func:`toolchain.parametric.exact_breakpoints`.

    Raises
    ------
    ReplayError
        For an unknown policy, link, switch mode, a bad table or placement.
    """
    from solvers.registry import solve

    bad = [p for p in policies if p not in POLICIES]
    if bad or not policies:
        raise ReplayError(f"--policy {','.join(policies)!r}: expected some of {', '.join(POLICIES)}")
    if switch not in ("weights", "none"):
        raise ReplayError(f"--switch-cost {switch!r}: expected weights or none")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ReplayError(f"--rate {rate!r}: expected a positive number of inferences per second")
    name, bw, lat = _link_params(inst, link)
    states = _States(inst, trace, bw, lat)
    if rate is None:
        times, rows = trace.time.copy(), np.arange(len(trace))
    else:
        end = trace.time[-1] + trace.durations[-1]
        times = np.arange(trace.time[0], end, 1.0 / rate)
        rows = np.searchsorted(trace.time, times, side="right") - 1
    deadline = deadline_s if deadline_s is not None else inst.problem.constraints.deadline_s
    out = Replay(inst.name, trace.name, name, times, trace.bandwidth[rows], deadline)
    keys: dict[tuple[int, ...], int] = {}
    per_row: dict[str, list[tuple[int, ...]]] = {}

    def solved(v: Instance) -> tuple[int, ...]:
        res = solve(v, solver)
        out.solves += 1
        if res.status.value == "infeasible":  # the deadline or a budget cannot hold here: best without them
            res = solve(_relaxed(v), solver)
            out.solves += 1
        if not res.has_solution:
            raise ReplayError(f"{v.name}: no placement found under a trace state ({res.status.value}: {res.message})")
        return _key(v, res.placement)

    for pol in policies:
        if pol == "static":
            if static_placement is not None:
                if set(static_placement) != set(inst.graph.layer_ids) or not all(
                    d in inst.system.device_index for d in static_placement.values()
                ):
                    raise ReplayError("static placement: expected every layer of the instance on one of its devices")
                k = _key(inst, static_placement)
            else:
                k = solved(inst)
            per_row[pol] = [k] * len(trace)
        elif pol == "oracle":
            cache: dict[tuple[float, ...], tuple[int, ...]] = {}
            seq = []
            for i, v in enumerate(states.rows):
                lat_i = float(trace.latency[i]) if trace.latency is not None else 0.0
                sk = (float(trace.bandwidth[i]), lat_i, *(float(x[i]) for x in trace.load.values()))
                if sk not in cache:
                    cache[sk] = solved(v)
                seq.append(cache[sk])
            per_row[pol] = seq
        else:
            if table is None:
                from toolchain.parametric import exact_breakpoints

                lo, hi = float(trace.bandwidth.min()), float(trace.bandwidth.max())
                if hi <= lo:
                    hi = lo * (1 + 1e-9)
                # the table ignores deadlines and budgets (they make it inexact); misses are still counted
                bp = exact_breakpoints(_relaxed(inst), bw.path, lo, hi, unit="B/s")
                tab = load_table(bp.policy(), inst, bw, "the computed table")
            else:
                tab = load_table(table, inst, bw, table_path)
            per_row[pol] = [_lookup(tab, float(x)) for x in trace.bandwidth]
    for pol in policies:
        out.runs[pol] = _run(pol, per_row[pol], rows, states, keys, switch, deadline)
    order = sorted(keys, key=keys.__getitem__)
    dev = inst.system.device_ids
    out.placements = [{lay: dev[d] for lay, d in zip(inst.graph.layer_ids, k, strict=True)} for k in order]
    return out


def _run(
    name: str,
    per_row: list[tuple[int, ...]],
    rows: np.ndarray,
    states: _States,
    keys: dict[tuple[int, ...], int],
    switch: str,
    deadline: float | None,
) -> PolicyRun:
    n = rows.size
    ids = np.empty(n, dtype=np.int64)
    lat, ene, steady, sw = np.empty(n), np.empty(n), np.empty(n), np.zeros(n)
    memo: dict[tuple[int, tuple[int, ...]], tuple[float, float, float]] = {}
    prev: tuple[int, ...] | None = None
    for j, r in enumerate(rows):
        key = per_row[int(r)]
        ids[j] = keys.setdefault(key, len(keys))
        if (int(r), key) not in memo:
            v = states.rows[int(r)]
            bm = batch_metrics(v, np.asarray([key]), parallel=v.problem.execution == "parallel")
            L = bm.latency()
            memo[(int(r), key)] = (float(L[0]), float(bm.energy_total(L)[0]), float(bm.objective(L)[0]))
        lat[j], ene[j], steady[j] = memo[(int(r), key)]
        if prev is not None and key != prev and switch == "weights":
            secs, joules = switch_cost(states.rows[int(r)], prev, key)
            sw[j] = secs
            lat[j] += secs
            ene[j] += joules
        prev = key
    miss = lat > deadline * (1 + 1e-9) if deadline is not None else np.zeros(n, dtype=bool)
    return PolicyRun(name, ids, lat, ene, steady, sw, miss)


__all__ = ["POLICIES", "PolicyRun", "Replay", "ReplayError", "load_table", "replay", "switch_cost"]
