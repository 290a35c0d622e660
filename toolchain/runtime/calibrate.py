"""Fit the per-transfer overhead of the runtime from measured runs (``dnnpart calibrate-links``).

For every transfer of a run report (sequential and parallel modes; stream transfers queue behind
each other and are left out), the measured median time minus the emulated link time
``latency + bytes / bandwidth`` is the overhead: serialisation, socket and framework costs. It is
fitted as ``overhead + bytes / overhead_bandwidth`` by least absolute deviations with both terms
non-negative (one fit for all links, or one per link direction; the median-like fit keeps a few
transfers delayed by a busy host from setting the overhead), and written into the system as the optional link fields
``overhead`` and ``overhead_bandwidth`` of docs/instance-format.md §3.2, which the cost model adds
to every transfer's time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from formulation.errors import BadInput

ALL = "*"
"""Key of the fit shared by every link."""


@dataclass(frozen=True)
class OverheadFit:
    """``overhead_s + bytes * per_byte_s`` fitted to ``samples`` transfers (residual: RMS seconds)."""

    overhead_s: float
    per_byte_s: float
    samples: int
    rms_s: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready figures (``overhead_bandwidth`` in bytes/s, null when unlimited)."""
        return {"overhead_s": self.overhead_s, "per_byte_s": self.per_byte_s,
                "overhead_bandwidth_bytes_per_s": 1.0 / self.per_byte_s if self.per_byte_s > 0 else math.inf,
                "samples": self.samples, "rms_s": self.rms_s}


def _lad2(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y ~ a + b x`` with ``a, b >= 0`` minimising the sum of absolute deviations.

    An optimum of this linear programme lies on a line through two data points, or through one
    point with ``b = 0`` or ``a = 0``, or at the origin: every such candidate is tried (a few
    hundred points at most, so the quadratic number of pairs is cheap).
    """
    cands = [(0.0, 0.0)]
    cands += [(float(v), 0.0) for v in y]
    cands += [(0.0, float(v / u)) for u, v in zip(x, y, strict=True) if u > 0]
    i, j = np.triu_indices(len(x), 1)
    ok = x[i] != x[j]
    b = (y[j[ok]] - y[i[ok]]) / (x[j[ok]] - x[i[ok]])
    a = y[i[ok]] - b * x[i[ok]]
    cands += list(zip(a.tolist(), b.tolist(), strict=True))
    arr = np.array([c for c in cands if c[0] >= 0 and c[1] >= 0])
    err = np.abs(arr[:, :1] + arr[:, 1:] * x[None, :] - y[None, :]).sum(axis=1)
    k = int(np.argmin(err))
    return float(arr[k, 0]), float(arr[k, 1])


def fit(
    reports: Sequence[dict[str, Any]], per_link: bool = False, names: Sequence[str] | None = None
) -> dict[str, OverheadFit]:
    """Overhead fits from run reports: ``{"*": fit}`` or ``{"a->b": fit}`` per link direction.

    Raises
    ------
    BadInput
        When a report is not a ``dnnpart run`` report or no transfer can be used.
    """
    groups: dict[str, list[tuple[float, float]]] = {}
    for i, rep in enumerate(reports):
        name = names[i] if names else f"report {i}"
        if not isinstance(rep, dict) or not isinstance(rep.get("transfers"), list) or "mode" not in rep:
            raise BadInput(f"{name}: expected the JSON report of `dnnpart run` (with 'mode' and 'transfers')")
        if rep["mode"] == "stream":
            continue
        for t in rep["transfers"]:
            try:
                m, link, nbytes = float(t["measured_median_s"]), float(t["link_s"]), float(t["bytes"])
            except (KeyError, TypeError, ValueError):
                raise BadInput(f"{name}: transfer {t!r} lacks measured_median_s, link_s or bytes") from None
            if not (math.isfinite(m) and math.isfinite(link)):
                continue
            key = f"{t['src']}->{t['dst']}" if per_link else ALL
            groups.setdefault(key, []).append((nbytes, m - link))
    if not groups:
        raise BadInput("no sequential or parallel transfer with a measured time in the given reports")
    out = {}
    for key, rows in groups.items():
        x = np.array([r[0] for r in rows])
        y = np.array([r[1] for r in rows])
        a, b = _lad2(x, y)
        out[key] = OverheadFit(a, b, len(rows), float(np.sqrt(np.mean((a + b * x - y) ** 2))))
    return out


def _fields(f: OverheadFit) -> dict[str, str]:
    fields = {"overhead": f"{f.overhead_s * 1e3:.6g} ms"}
    if f.per_byte_s > 0:
        fields["overhead_bandwidth"] = f"{1.0 / f.per_byte_s / 1e6:.6g} MB/s"
    return fields


def apply_to_file(path: Path, fits: dict[str, OverheadFit]) -> str:
    """The text of ``path`` (a system file, or an instance with an inline system) with calibrated links.

    Comment lines at the top of a YAML file are kept; the rest is rewritten.
    """
    import yaml

    from formulation.yamlio import read_bytes

    text = read_bytes(path).decode("utf-8-sig")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot be read ({type(exc).__name__})") from None
    holder = data if isinstance(data, dict) and "links" in data else (data or {}).get("system")
    if not isinstance(holder, dict) or not isinstance(holder.get("links"), list):
        refers = isinstance(holder, dict) and "file" in holder
        hint = " (it refers to a system file: calibrate that file)" if refers else ""
        raise BadInput(f"{path}: expected a system file with 'links', or an instance with an inline system{hint}")
    for i, lk in enumerate(holder["links"]):
        if not isinstance(lk, dict):
            raise BadInput(f"{path}: links[{i}]: expected a mapping")
        a, b = lk.get("from"), lk.get("to")
        f = fits.get(f"{a}->{b}") or fits.get(f"{b}->{a}") or fits.get(ALL)
        if f is None:
            continue
        lk.pop("overhead_bandwidth", None)
        lk.update(_fields(f))
    if path.suffix == ".json":
        return json.dumps(data, indent=2) + "\n"
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    header.append("# Link overheads fitted by `dnnpart calibrate-links` from measured runs (docs/runtime.md).")
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=float("inf"))
    return "\n".join(header) + "\n" + body
