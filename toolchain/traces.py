"""Network traces: reading ``time, bandwidth[, latency][, load:<device>...]`` CSV files, and the
seeded generators of the traces shipped in ``instances/traces/``.

CSV format
    A header row names the columns; ``time`` and ``bandwidth`` are required, ``latency`` and
    ``load:<device>`` optional, in any order. Without a header (the first row is numbers) the
    columns are ``time, bandwidth[, latency]`` in the default units. A unit may follow a name in brackets: ``time [s]``,
    ``bandwidth [Mbit/s]``, ``latency [ms]`` (these are the defaults); units are parsed by the
    instance-file parser. ``load:<device>`` is the fraction of the device's compute taken by other
    work, in ``[0, 1)``: the device runs at ``compute * (1 - load)``. Times must increase
    strictly; row ``i`` holds from ``time[i]`` until ``time[i+1]`` (the last row for the median
    step). Lines starting with ``#`` are comments.

Generators (:func:`synthetic`)
    A log-normal first-order autoregressive process per time step ``dt``:
    ``log B[i] = m + phi (log B[i-1] - m) + s sqrt(1 - phi^2) e[i]``, ``e`` standard normal, so the
    stationary median of ``B`` is ``exp(m)`` and its coefficient of variation
    ``sqrt(exp(s^2) - 1)``. Each preset in :data:`PRESETS` sets the median or mean to a published
    figure (cited there and in instances/traces/README.md), and the finished sample is rescaled so
    that its own median or mean equals that figure exactly; the variability ``s`` and the
    correlation ``phi`` are estimates stated as such.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from formulation.errors import InstanceError
from formulation.units import parse_quantity


class TraceError(ValueError):
    """A trace file that cannot be used (the message names file, line, column, value, expectation)."""


@dataclass
class Trace:
    """A network trace in SI units (seconds, bytes per second)."""

    name: str
    time: np.ndarray
    bandwidth: np.ndarray
    latency: np.ndarray | None = None
    load: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.time.size)

    @property
    def durations(self) -> np.ndarray:
        """Seconds each row holds (the last row: the median step)."""
        if self.time.size == 1:
            return np.ones(1)
        step = np.diff(self.time)
        return np.append(step, np.median(step))


_DEFAULT_UNITS = {"time": "s", "bandwidth": "Mbit/s", "latency": "ms"}
_KINDS = {"time": "time", "bandwidth": "byte_rate", "latency": "time"}


def _header(path: Path, cells: list[str]) -> list[tuple[str, str | None]]:
    """(column name, unit) per header cell."""
    out: list[tuple[str, str | None]] = []
    for j, raw in enumerate(cells):
        text = raw.strip()
        name, unit = text, None
        if "[" in text and text.endswith("]"):
            name, _, rest = text.partition("[")
            name, unit = name.strip(), rest[:-1].strip()
        if name not in _DEFAULT_UNITS and not name.startswith("load:"):
            raise TraceError(
                f"{path}: line 1, column {j + 1}: unknown column {text!r}; expected time, bandwidth, latency "
                "or load:<device> (a unit may follow in brackets, e.g. 'bandwidth [Mbit/s]')"
            )
        if name.startswith("load:") and unit is not None:
            raise TraceError(f"{path}: line 1, column {j + 1}: {name} is a fraction in [0, 1) and takes no unit")
        out.append((name, unit))
    names = [n for n, _ in out]
    for req in ("time", "bandwidth"):
        if req not in names:
            raise TraceError(
                f"{path}: line 1: no {req!r} column (header {','.join(cells)!r}); expected time, bandwidth"
            )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TraceError(f"{path}: line 1: column {dup[0]!r} appears twice")
    return out


def read_trace(path: str | Path, devices: tuple[str, ...] | None = None) -> Trace:
    """Read a trace CSV (module docstring).

    Parameters
    ----------
    path : path
    devices : tuple of str, optional
        Device ids ``load:<device>`` columns may name (checked when given).

    Raises
    ------
    TraceError
        For anything that makes the file unusable, naming line, column, value and expectation.
    """
    from formulation.yamlio import read_text

    p = Path(path)
    try:  # regular files only, within the input size limit, UTF-8
        text = read_text(p)
    except InstanceError as exc:
        raise TraceError(exc.message()) from None
    rows = [
        (i + 1, r)
        for i, r in enumerate(csv.reader(text.splitlines()))
        if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")
    ]
    if not rows:
        raise TraceError(f"{p}: empty; expected a header 'time,bandwidth[,latency]' and at least one row")
    head_line, head = rows[0]
    if all(_is_number(c) for c in head):  # no header: time, bandwidth[, latency] in the default units
        if len(head) not in (2, 3):
            raise TraceError(
                f"{p}: line {head_line}: {len(head)} values and no header; expected time, bandwidth[, latency] "
                "(s, Mbit/s, ms) or a header row naming the columns"
            )
        rows.insert(0, (0, ["time", "bandwidth", "latency"][: len(head)]))
        head_line, head = rows[0]
    cols = _header(p, head)
    if devices is not None:
        for name, _ in cols:
            if name.startswith("load:") and name[5:] not in devices:
                raise TraceError(f"{p}: line {head_line}: {name!r} names no device (devices: {', '.join(devices)})")
    if len(rows) < 2:
        raise TraceError(f"{p}: holds a header but no data row")
    data: dict[str, list[float]] = {n: [] for n, _ in cols}
    for line, r in rows[1:]:
        if len(r) != len(cols):
            raise TraceError(f"{p}: line {line}: {len(r)} values, expected {len(cols)} (one per header column)")
        for (name, unit), cell in zip(cols, r, strict=True):
            data[name].append(_value(p, line, name, unit, cell))
    t = np.asarray(data["time"])
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise TraceError(
            f"{p}: line {rows[i + 1][0]}: time {rows[i + 1][1][[n for n, _ in cols].index('time')].strip()!r} "
            "does not increase; expected strictly increasing times"
        )
    return Trace(
        p.stem,
        t,
        np.asarray(data["bandwidth"]),
        np.asarray(data["latency"]) if "latency" in data else None,
        {n[5:]: np.asarray(v) for n, v in data.items() if n.startswith("load:")},
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _value(path: Path, line: int, name: str, unit: str | None, cell: str) -> float:
    text = cell.strip()
    where = f"{path}: line {line}, column {name!r}"
    try:
        x = float(text)
    except ValueError:
        raise TraceError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(x):
        raise TraceError(f"{where}: {text!r}; expected a finite number")
    if name.startswith("load:"):
        if not 0 <= x < 1:
            raise TraceError(f"{where}: {text!r}; expected a load fraction in [0, 1)")
        return x
    try:
        si = parse_quantity(f"{x!r} {unit or _DEFAULT_UNITS[name]}", _KINDS[name], file=str(path), path=name)  # type: ignore[arg-type]
    except InstanceError as exc:
        raise TraceError(f"{where}: unit {unit!r}: {exc.message()}") from None
    if name == "bandwidth" and si <= 0:
        raise TraceError(f"{where}: {text!r}; expected a positive bandwidth")
    if name == "latency" and si < 0:
        raise TraceError(f"{where}: {text!r}; expected a latency >= 0")
    return si


@dataclass(frozen=True)
class Preset:
    """A synthetic trace's figures: a published centre, estimated variability."""

    name: str
    centre_mbit_s: float
    centre_is_median: bool
    source: str
    cv: float
    """Coefficient of variation of the stationary log-normal (estimate)."""
    phi: float
    """Lag-one autocorrelation of ``log B`` per step (estimate)."""
    latency_ms: float
    latency_source: str


#: The shipped traces (instances/traces/README.md gives the same figures and sources).
PRESETS: dict[str, Preset] = {
    "3g": Preset(
        "3g", 1.1, False, "Kang et al., Neurosurgeon, ASPLOS 2017: 3G uplink 1.1 Mbit/s", 0.5, 0.9,
        100.0, "dnnpart network catalogue (toolchain/catalog/networks.yaml), an estimate",
    ),
    "lte": Preset(
        "lte", 6.0, True,
        "Huang et al., A Close Examination of Performance and Power Characteristics of 4G LTE Networks, "
        "MobiSys 2012: median LTE uplink 6 Mbit/s",
        0.6, 0.9, 40.0, "dnnpart network catalogue, an estimate",
    ),
    "wifi": Preset(
        "wifi", 18.88, False, "Kang et al., Neurosurgeon, ASPLOS 2017: Wi-Fi uplink 18.88 Mbit/s", 0.3, 0.95,
        5.0, "dnnpart network catalogue, an estimate",
    ),
    "5g": Preset(
        "5g", 31.27, False,
        "Cellsmart survey of 2,536 network engineers' speed tests in 51 countries (March-May 2022), reported "
        "by Capacity Media: global average 5G upload 31.27 Mbit/s",
        0.6, 0.9, 10.0, "dnnpart network catalogue, an estimate",
    ),
}  # fmt: skip


def synthetic(preset: str | Preset, steps: int, *, dt: float = 1.0, seed: int = 0) -> Trace:
    """A trace of ``steps`` rows ``dt`` seconds apart from a preset (module docstring).

    Latency is the preset's figure plus the transmission-independent jitter of a half-normal with
    a tenth of it as scale (an estimate).
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    s = math.sqrt(math.log(1 + p.cv**2))
    m = math.log(p.centre_mbit_s) - (0.0 if p.centre_is_median else s * s / 2)
    x = np.empty(steps)
    x[0] = m + s * rng.standard_normal()
    noise = s * math.sqrt(1 - p.phi**2) * rng.standard_normal(steps)
    for i in range(1, steps):
        x[i] = m + p.phi * (x[i - 1] - m) + noise[i]
    bw = np.exp(x)
    # a finite, correlated sample drifts from the stationary centre: rescale it to the published figure
    bw *= p.centre_mbit_s / (float(np.median(bw)) if p.centre_is_median else float(np.mean(bw)))
    bw *= 125_000.0
    lat = (p.latency_ms + np.abs(rng.normal(0, p.latency_ms / 10, steps))) / 1000.0
    return Trace(p.name, np.arange(steps) * dt, bw, lat)


def write_trace(trace: Trace, path: str | Path, header: str = "") -> None:
    """Write ``time [s], bandwidth [Mbit/s][, latency [ms]]`` with optional ``#`` comment lines."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []
    cols = ["time [s]", "bandwidth [Mbit/s]"] + (["latency [ms]"] if trace.latency is not None else [])
    lines.append(",".join(cols))
    for i in range(len(trace)):
        row = [f"{trace.time[i]:g}", f"{trace.bandwidth[i] / 125_000.0:.4f}"]
        if trace.latency is not None:
            row.append(f"{trace.latency[i] * 1000.0:.2f}")
        lines.append(",".join(row))
    Path(path).write_text("\n".join(lines) + "\n")


def main() -> None:
    """Regenerate instances/traces/*.csv (``python -m toolchain.traces``)."""
    out = Path(__file__).resolve().parent.parent / "instances" / "traces"
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, p) in enumerate(PRESETS.items()):
        tr = synthetic(p, 300, dt=1.0, seed=19 + i)
        centre = "median" if p.centre_is_median else "mean"
        write_trace(
            tr,
            out / f"{name}.csv",
            f"synthetic {name} uplink trace: python -m toolchain.traces (seed {19 + i}), 300 s at 1 s steps\n"
            f"log-normal AR(1): {centre} {p.centre_mbit_s} Mbit/s ({p.source}); "
            f"cv {p.cv}, lag-one correlation {p.phi} (estimates)",
        )


if __name__ == "__main__":
    main()
