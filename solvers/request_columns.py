"""Per-request figures of version-2 results (docs/instance-format.md §9.8) for results stores and ``compare``.

A results row of a version-2 instance carries, under ``extra["requests"]``, each request's latency
(the evaluator's, §9.5), its deadline and whether the deadline is met: ``latency <= deadline``
within the evaluator's relative tolerance (the same test that reports a ``deadline`` violation).
:func:`request_table` reads them back, one row per (instance, configuration, request); runs of one
configuration with several seeds give the median latency, and the deadline counts as met only
when every seed meets it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from formulation.evaluator.batch import REL_TOL

if TYPE_CHECKING:
    import pandas as pd

#: The key of the per-request figures in a row's ``extra``.
KEY = "requests"

#: Columns of :func:`request_table`.
COLUMNS = ("instance_hash", "instance", "config", "request", "latency_s", "deadline_s", "deadline_met")


def request_summary(workload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Request id -> ``{latency_s, deadline_s, deadline_met}`` from the evaluator's ``workload`` report.

    ``deadline_met`` is ``None`` for a request without a deadline, else ``latency_s <= deadline_s
    * (1 + REL_TOL)`` (an infinite latency never meets it).
    """
    out: dict[str, dict[str, Any]] = {}
    for rid, entry in (workload.get("requests") or {}).items():
        if not isinstance(entry, Mapping) or "latency_s" not in entry:
            continue
        lat = float(entry["latency_s"])
        dl = entry.get("deadline_s")
        met = None if dl is None else bool(math.isfinite(lat) and lat <= float(dl) * (1 + REL_TOL))
        out[str(rid)] = {"latency_s": lat, "deadline_s": None if dl is None else float(dl), "deadline_met": met}
    return out


def _parse(extra: Any) -> dict[str, Any]:
    if not isinstance(extra, str):
        return {}
    try:
        data = json.loads(extra)
    except (ValueError, RecursionError):
        return {}
    got = data.get(KEY) if isinstance(data, dict) else None
    return got if isinstance(got, dict) else {}


def _number(v: Any) -> float:
    if v is None:
        return math.nan
    try:
        return float(v)  # the store writes inf as the text "inf"
    except (TypeError, ValueError):
        return math.nan


def request_table(df: pd.DataFrame, configs: pd.Series) -> pd.DataFrame:
    """One row per (instance, configuration, request) of the rows of ``df`` that carry per-request figures.

    Parameters
    ----------
    df : DataFrame
        Rows of a results store (with its ``extra`` column).
    configs : Series
        The configuration label of each row (:func:`solvers.compare.config_labels`).

    Returns
    -------
    DataFrame
        Columns :data:`COLUMNS`; empty when no row carries per-request figures (version 1).
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    if "extra" in df.columns:
        for (_, r), config in zip(df.iterrows(), configs, strict=True):
            for rid, e in _parse(r["extra"]).items():
                if not isinstance(e, dict):
                    continue
                met = e.get("deadline_met")
                rows.append({
                    "instance_hash": r["instance_hash"], "instance": r["instance"], "config": config, "request": rid,
                    "latency_s": _number(e.get("latency_s")), "deadline_s": _number(e.get("deadline_s")),
                    "deadline_met": None if met is None else bool(met),
                })
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    long = pd.DataFrame(rows)
    out = []
    for (ihash, config, rid), g in long.groupby(["instance_hash", "config", "request"], sort=False):
        mets = [m for m in g["deadline_met"] if m is not None]
        out.append({
            "instance_hash": ihash, "instance": g["instance"].iloc[0], "config": config, "request": rid,
            "latency_s": float(g["latency_s"].median()), "deadline_s": float(g["deadline_s"].iloc[0]),
            "deadline_met": (all(mets) if mets else None),
        })
    return pd.DataFrame(out, columns=list(COLUMNS))


def wide_columns(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`request_table` as one row per (instance, configuration): ``latency_s.ID`` and
    ``deadline_met.ID`` per request ``ID`` (the latter only for requests with a deadline)."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=["instance_hash", "config"])
    lat = table.pivot(index=["instance_hash", "config"], columns="request", values="latency_s")
    lat.columns = [f"latency_s.{c}" for c in lat.columns]
    dl = table[table["deadline_met"].notna()]
    parts = [lat]
    if not dl.empty:
        met = dl.pivot(index=["instance_hash", "config"], columns="request", values="deadline_met")
        met.columns = [f"deadline_met.{c}" for c in met.columns]
        parts.append(met)
    from solvers.compare import natural_key

    wide = pd.concat(parts, axis=1)
    wide = wide[sorted(wide.columns, key=lambda c: (c.startswith("deadline"), natural_key(c.split(".", 1)[1])))]
    return wide.reset_index()
