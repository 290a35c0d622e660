"""The parameters an instance was built with, as result columns.

A batch over ``alexnet-wifi12``, ``alexnet-wifi18``... varies a link's bandwidth, a sweep varies one
parameter; the results should say so in a column, not only in a file name. Every sweepable field
(:data:`toolchain.sweep.FIELDS`, the sweep's own path grammar: ``links.<from>-><to>.<field>``,
``devices.<id>.<field>``, ``problem.deadline``, ``problem.energy_budget.<id>``) is read from the
loaded instance in SI units; :func:`with_parameters` adds a ``param.<path>`` column for each one
that differs between the instances of a results table, and an ``option.<key>`` column for each
solver option that differs between its option sets (the batch grid).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formulation.model import Instance
from toolchain.sweep import FIELDS

if TYPE_CHECKING:
    import pandas as pd

#: Prefix of the instance-parameter columns and of the solver-option columns.
PARAM_PREFIX, OPTION_PREFIX = "param.", "option."


def instance_parameters(inst: Instance) -> dict[str, float]:
    """Every sweepable field of ``inst`` in SI units, keyed by its sweep path (finite values only)."""
    out: dict[str, float] = {}
    s = inst.system
    for dev in s.devices:
        for name, f in FIELDS["devices"].items():
            out[f"devices.{dev.id}.{name}"] = getattr(dev, f.attr)
    for (a, b), link in s.links.items():
        for name, f in FIELDS["links"].items():
            out[f"links.{a}->{b}.{name}"] = getattr(link, f.attr)
    c = inst.problem.constraints
    if c.deadline_s is not None:
        out["problem.deadline"] = c.deadline_s
    for dev_id, budget in c.energy_budget_j.items():
        out[f"problem.energy_budget.{dev_id}"] = budget
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and math.isfinite(v)}


def _parameters_of_file(file: Any, ihash: Any) -> dict[str, float] | None:
    """The parameters of the instance in ``file`` when it still has content hash ``ihash``."""
    from formulation.loader import load_instance
    from solvers.batch.grid import instance_hash

    if not isinstance(file, str) or not file or not Path(file).is_file():
        return None
    try:
        inst = load_instance(file)
    except Exception:  # a file changed or removed since the batch: its row just has no parameters
        return None
    return instance_parameters(inst) if instance_hash(inst) == ihash else None


def _varying(table: dict[Any, dict[str, Any]]) -> list[str]:
    """Keys whose value differs between the entries of ``table`` (a key missing in one counts)."""
    keys = sorted({k for row in table.values() for k in row})
    return [k for k in keys if len({json.dumps(row.get(k), sort_keys=True) for row in table.values()}) > 1]


def with_parameters(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``param.<path>`` column per instance parameter and an ``option.<key>`` column per
    solver option that varies between its rows (the instance files are read where they still hold
    the instance that was solved; other rows get no value)."""
    if df.empty:
        return df
    out = df.copy()
    params: dict[Any, dict[str, Any]] = {}
    if {"instance_hash", "instance_file"} <= set(df.columns):
        for ihash, g in df.groupby("instance_hash", sort=False):
            found = None
            for file in dict.fromkeys(g["instance_file"]):
                found = _parameters_of_file(file, ihash)
                if found is not None:
                    break
            if found is not None:
                params[ihash] = found
        for key in _varying(params):
            out[PARAM_PREFIX + key] = [params.get(h, {}).get(key, math.nan) for h in df["instance_hash"]]
    if "options" in df.columns:
        sets: dict[Any, dict[str, Any]] = {}
        for text in dict.fromkeys(df["options"]):
            try:
                parsed = json.loads(text) if isinstance(text, str) else {}
            except ValueError:
                parsed = {}
            sets[text] = parsed if isinstance(parsed, dict) else {}
        for key in _varying(sets):
            out[OPTION_PREFIX + key] = [sets.get(t, {}).get(key) for t in df["options"]]
    out.attrs = dict(df.attrs)
    return out
