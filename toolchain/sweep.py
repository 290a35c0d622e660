"""Parameter sweeps: change one figure of an instance over a range of values and re-solve at each.

Parameter paths (see docs/workflow.md)::

    links.<from>-<to>.<field>    bandwidth | latency | tx_power | rx_power | price
    links.<from>-><to>.<field>   the same, one direction only
    devices.<id>.<field>         compute | memory_bandwidth | memory | power_active | power_idle | price
    problem.deadline
    problem.energy_budget.<id>

``links.a-b`` changes the channel a->b and, when it exists, b->a (an instance file's link is
bidirectional by default, and a sweep of "the phone-cloud bandwidth" means both ways);
``links.a->b`` changes a->b alone. Device ids may contain ``-``: the split that names two existing
devices is used.

Values are given in the field's *sweep unit* (table :data:`FIELDS`, e.g. Mbit/s for bandwidth), or
in any unit of the same dimension passed as ``unit``; they are converted to SI with the
instance-file parser, so ``"5.85 Mbit/s"`` here means exactly what it means in a file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from formulation.errors import InstanceError
from formulation.model import Device, Instance, Link, System
from formulation.units import Kind, parse_quantity

if TYPE_CHECKING:
    import pandas as pd

    from solvers.options import SolverOptions
    from solvers.result import Result


@dataclass(frozen=True)
class Field:
    """A sweepable field: its model attribute, unit kind and default sweep unit."""

    attr: str
    kind: Kind
    unit: str


#: section -> field name -> Field.
FIELDS: dict[str, dict[str, Field]] = {
    "links": {
        "bandwidth": Field("bandwidth_bytes_per_s", "byte_rate", "Mbit/s"),
        "latency": Field("latency_s", "time", "ms"),
        "tx_power": Field("tx_power_w", "power", "W"),
        "rx_power": Field("rx_power_w", "power", "W"),
        "price": Field("price_usd_per_byte", "usd_per_byte", "USD/GB"),
    },
    "devices": {
        "compute": Field("compute_flops_per_s", "flop_rate", "GFLOP/s"),
        "memory_bandwidth": Field("memory_bandwidth_bytes_per_s", "byte_rate", "GB/s"),
        "memory": Field("memory_bytes", "bytes", "GiB"),
        "power_active": Field("power_active_w", "power", "W"),
        "power_idle": Field("power_idle_w", "power", "W"),
        "price": Field("price_usd_per_s", "usd_rate", "USD/h"),
    },
    "problem": {
        "deadline": Field("deadline_s", "time", "ms"),
        "energy_budget": Field("energy_budget_j", "energy", "J"),
    },
}


class SweepError(ValueError):
    """A parameter path or value list that does not fit the instance (message names what and why)."""


@dataclass(frozen=True)
class Param:
    """A resolved parameter path.

    Attributes
    ----------
    path : str
        As written by the user.
    section : str
        ``links``, ``devices`` or ``problem``.
    target : tuple of str
        Channels ``(src, dst)`` for links (one or two), ``(device,)`` for devices and energy
        budgets, ``()`` for the deadline.
    field : Field
    name : str
        The field name (``bandwidth``, ...).
    """

    path: str
    section: str
    target: tuple[Any, ...]
    field: Field
    name: str


def _known(options: Any) -> str:
    return ", ".join(sorted(options))


def parse_param(inst: Instance, path: str) -> Param:
    """Resolve a parameter path against an instance.

    Raises
    ------
    SweepError
        Naming the part of the path that does not fit and what would.
    """
    parts = path.split(".")
    section = parts[0]
    if section not in FIELDS or len(parts) < 2:
        raise SweepError(
            f"--param {path!r}: expected links.<from>-<to>.<field>, devices.<id>.<field>, "
            "problem.deadline or problem.energy_budget.<id>"
        )
    s = inst.system
    if section == "problem":
        name = parts[1]
        if name == "deadline" and len(parts) == 2:
            return Param(path, section, (), FIELDS[section][name], name)
        if name == "energy_budget" and len(parts) >= 3:
            dev = ".".join(parts[2:])
            if dev not in s.device_index:
                raise SweepError(f"--param {path!r}: no device {dev!r} (devices: {_known(s.device_ids)})")
            return Param(path, section, (dev,), FIELDS[section][name], name)
        raise SweepError(f"--param {path!r}: problem parameters are problem.deadline and problem.energy_budget.<id>")
    if len(parts) < 3:
        raise SweepError(f"--param {path!r}: expected {section}.<id>.<field>")
    name, middle = parts[-1], ".".join(parts[1:-1])
    if name not in FIELDS[section]:
        raise SweepError(
            f"--param {path!r}: {section} have no sweepable field {name!r} (one of {_known(FIELDS[section])})"
        )
    field = FIELDS[section][name]
    if section == "devices":
        if middle not in s.device_index:
            raise SweepError(f"--param {path!r}: no device {middle!r} (devices: {_known(s.device_ids)})")
        return Param(path, section, (middle,), field, name)
    return Param(path, section, _channels(inst, path, middle), field, name)


def _channels(inst: Instance, path: str, middle: str) -> tuple[tuple[str, str], ...]:
    s = inst.system
    if "->" in middle:
        a, _, b = middle.partition("->")
        if (a, b) not in s.links:
            raise SweepError(f"--param {path!r}: no link {a}->{b} (links: {_known(f'{x}->{y}' for x, y in s.links)})")
        return ((a, b),)
    splits = [(middle[:i], middle[i + 1 :]) for i, ch in enumerate(middle) if ch == "-"]
    found = [(a, b) for a, b in splits if (a, b) in s.links or (b, a) in s.links]
    if len(found) != 1:
        why = "matches several device pairs" if found else "names no link"
        raise SweepError(f"--param {path!r}: {middle!r} {why} (links: {_known(f'{x}-{y}' for x, y in s.links)})")
    a, b = found[0]
    return tuple(ch for ch in ((a, b), (b, a)) if ch in s.links)


def parse_values(spec: str, points: int = 12) -> tuple[list[float], bool]:
    """Values from ``"a:b:log"``, ``"a:b:lin"`` (or ``"a:b"``) with ``points`` values, or ``"v1,v2,..."``.

    Returns
    -------
    values : list of float
        In the order given (log and linear ranges include both ends).
    log : bool
        True for a ``log`` range (plots then use a log axis).

    Raises
    ------
    SweepError
    """
    text = spec.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "lin")):
                raise SweepError(f"--values {spec!r}: expected START:STOP[:log|:lin] or a comma list")
            a, b = float(parts[0]), float(parts[1])
            log = len(parts) == 3 and parts[2] == "log"
            if points < 2:
                raise SweepError(f"--points {points}: a range needs at least 2 points")
            if log:
                if a <= 0 or b <= 0:
                    raise SweepError(f"--values {spec!r}: a log range needs positive ends")
                return [float(x) for x in np.geomspace(a, b, points)], True
            return [float(x) for x in np.linspace(a, b, points)], False
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SweepError(f"--values {spec!r}: expected numbers, as START:STOP[:log|:lin] or v1,v2,...") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise SweepError(f"--values {spec!r}: expected at least one finite number")
    return vals, False


def to_si(param: Param, value: float, unit: str | None = None) -> float:
    """A value in ``unit`` (default the field's sweep unit) converted to SI by the file parser.

    Raises
    ------
    InstanceError
        For a unit of the wrong dimension (the message names ``--unit``).
    """
    u = unit or param.field.unit
    return parse_quantity(f"{value!r} {u}", param.field.kind, file="--unit", path=param.path)


def apply(inst: Instance, param: Param, si_value: float) -> Instance:
    """A new instance with the parameter set to ``si_value`` (SI); ``inst`` is unchanged.

    Raises
    ------
    SweepError
        For a negative value, or a zero where the cost model divides by the field.
    """
    if inst.workload is not None:  # its routes and requests would be lost
        raise SweepError(f"instance {inst.name!r} is a version-2 workload (docs/instance-format.md §9); "
                         "sweeps do not support it yet")
    if si_value < 0 or (si_value == 0 and param.name in ("bandwidth", "compute", "memory_bandwidth")):
        raise SweepError(f"--param {param.path!r}: value {si_value:g} (SI) is out of range for {param.name}")
    s, p = inst.system, inst.problem
    if param.section == "problem":
        c = p.constraints
        if param.name == "deadline":
            c = dataclasses.replace(c, deadline_s=si_value)
        else:
            c = dataclasses.replace(c, energy_budget_j={**c.energy_budget_j, param.target[0]: si_value})
        return inst.with_problem(dataclasses.replace(p, constraints=c))
    devices: list[Device] = list(s.devices)
    links: list[Link] = list(s.links.values())
    change: dict[str, Any] = {param.field.attr: si_value}
    if param.section == "devices":
        i = s.device_index[param.target[0]]
        devices[i] = dataclasses.replace(devices[i], **change)
    else:
        links = [dataclasses.replace(lk, **change) if (lk.src, lk.dst) in param.target else lk for lk in links]
    system = System(devices, links, s.source, s.sink)
    return Instance(inst.name, inst.graph, system, p, inst.description, inst.latency_table, inst.source_path)


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`.

    Attributes
    ----------
    param : Param
    unit : str
        Unit of :attr:`values`.
    values : list of float
        The swept values, in ``unit``.
    log : bool
        The values form a log range.
    instances : list of Instance
        One per value.
    results : list of Result
        One per value (every status possible, including infeasible).
    """

    param: Param
    unit: str
    values: list[float]
    log: bool
    instances: list[Instance]
    results: list[Result]

    @property
    def label(self) -> str:
        """Axis label: the path and its unit."""
        return f"{self.param.path} [{self.unit}]"

    def cuts(self) -> list[str]:
        """The placement of each point in words (:func:`describe_cut`), '-' where none was found."""
        return [
            describe_cut(i, r.placement) if r.has_solution else "-"
            for i, r in zip(self.instances, self.results, strict=True)
        ]

    def table(self) -> pd.DataFrame:
        """One row per value: value (in :attr:`unit`), the same value in SI as ``param.<path>`` (the
        column name batch results use), status, objective, every scalar metric and the cut."""
        import pandas as pd

        rows = []
        for v, r, cut in zip(self.values, self.results, self.cuts(), strict=True):
            row: dict[str, Any] = {"value": v, f"param.{self.param.path}": to_si(self.param, v, self.unit)}
            row.update(status=r.status.value, objective=r.objective, cut=cut)
            if r.metrics is not None:
                m = r.metrics
                row.update(
                    latency_s=m.latency_s,
                    period_s=m.period_s,
                    energy_total_j=m.energy_total_j,
                    cost_usd=m.cost_usd,
                    bytes_moved=sum(m.link_bytes.values()),
                )
            rows.append(row)
        return pd.DataFrame(rows)


def describe_cut(inst: Instance, placement: dict[str, str]) -> str:
    """A placement in words: runs of consecutive layers (topological order) per device.

    E.g. ``phone conv1..pool5 | cloud fc6..fc8``; with more than four runs only the layer count per
    device is given.
    """
    from toolchain.cli.common import segments

    segs = segments(inst, placement)
    if len(segs) == 1:
        return f"all on {segs[0][0]}"
    if len(segs) > 4:
        counts: dict[str, int] = {}
        for dev, lays in segs:
            counts[dev] = counts.get(dev, 0) + len(lays)
        return ", ".join(f"{d}: {n} layers" for d, n in counts.items())
    return " | ".join(f"{d} {ls[0]}" + (f"..{ls[-1]}" if len(ls) > 1 else "") for d, ls in segs)


def run_sweep(
    inst: Instance,
    path: str,
    values: list[float],
    *,
    unit: str | None = None,
    log: bool = False,
    solver: str = "auto",
    options: SolverOptions | None = None,
) -> SweepResult:
    """Re-solve ``inst`` for each value of the parameter at ``path``.

    Parameters
    ----------
    inst : Instance
    path : str
        Parameter path (module docstring).
    values : list of float
        Values in ``unit`` (default: the field's sweep unit, :data:`FIELDS`).
    unit : str, optional
        Any unit of the field's dimension, e.g. ``"kbit/s"``.
    log : bool
        Mark the values as a log range (for plotting).
    solver : str
        Registry name.
    options : SolverOptions, optional

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError, InstanceError
        Before anything is solved, for a bad path, unit or value.
    SolverError
        When the solver does not support the instance.
    """
    from solvers.registry import get_solver

    param = parse_param(inst, path)
    variants = [apply(inst, param, to_si(param, v, unit)) for v in values]
    engine = get_solver(solver)
    results = [engine.solve(v, options) for v in variants]
    return SweepResult(param, unit or param.field.unit, list(values), log, variants, results)


__all__ = [
    "FIELDS",
    "InstanceError",
    "Param",
    "SweepError",
    "SweepResult",
    "apply",
    "describe_cut",
    "parse_param",
    "parse_values",
    "run_sweep",
    "to_si",
]
