"""Comparing solvers from a results table: objective against the best proven bound, and performance profiles.

Performance profiles follow Dolan and Moré, "Benchmarking optimization software with performance
profiles", Mathematical Programming 91(2), 2002: for problem ``p`` and solver ``s`` with measure
``t[p, s]`` (time, or objective), the ratio ``r[p, s] = t[p, s] / min_s' t[p, s']`` (``inf`` when
``s`` failed on ``p``), and ``rho_s(tau) = |{p : r[p, s] <= tau}| / |P|``: the fraction of problems
that ``s`` solves within a factor ``tau`` of the best. ``rho_s(1)`` is how often ``s`` is the best;
``rho_s(inf)`` how often it succeeds at all.

Here a *problem* is an instance (its content hash) and a *solver* a configuration: the solver name,
plus its options when one solver ran with several option sets. Runs of one configuration with
several seeds are summarised by their median (time, objective); the configuration succeeds on a
problem only if every seed does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from solvers.result import compute_gap

if TYPE_CHECKING:
    import pandas as pd

def natural_key(text: object) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the digit runs of ``text`` by value: wifi12 < wifi18 < wifi142."""
    parts = re.split(r"(\d+)", str(text))
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def natural_order(values: pd.Series) -> pd.Series:
    """``natural_key`` rank of each value, usable as a pandas ``sort_values`` key."""
    ranks = {v: i for i, v in enumerate(sorted(set(values), key=natural_key))}
    return values.map(ranks)


#: Relative tolerance within which an objective counts as reaching the best one.
RTOL = 1e-6

#: Smallest time used in time ratios (a solver reporting 0 s would make every other ratio infinite).
MIN_TIME_S = 1e-6

SOLVED = ("optimal", "feasible")


def config_labels(df: pd.DataFrame) -> pd.Series:
    """One label per row: the solver name, plus its options when that solver ran with several."""
    n_sets = df.groupby("solver")["options"].nunique()

    def label(solver: str, options: str) -> str:
        if n_sets[solver] <= 1:
            return solver
        opts = json.loads(options)
        return solver + " " + ",".join(f"{k}={v}" for k, v in sorted(opts.items())) if opts else solver

    return df.apply(lambda r: label(r["solver"], r["options"]), axis=1)


def _per_config(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (instance, configuration): seeds summarised by their median."""
    import pandas as pd

    d = df.copy()
    d["config"] = config_labels(d)
    d["has_solution"] = d["status"].isin(SOLVED)
    rows = []
    for (ihash, config), g in d.groupby(["instance_hash", "config"], sort=False):
        ok = bool(g["has_solution"].all())
        statuses = sorted(set(g["status"]))
        rows.append(
            {
                "instance_hash": ihash,
                "instance": g["instance"].iloc[0],
                "config": config,
                "status": statuses[0] if len(statuses) == 1 else "/".join(statuses),
                "all_solved": ok,
                "objective": float(g["objective"].median()) if ok else math.nan,
                "bound": float(g["bound"].max()) if g["bound"].notna().any() else -math.inf,
                "time_s": float(g["wall_time_s"].median()),
                "n_runs": len(g),
            }
        )
    return pd.DataFrame(rows)


def best_values(df: pd.DataFrame) -> pd.DataFrame:
    """Per instance: the best objective found and the best proven lower bound (over all rows).

    A bound is taken from every row that is not an error (an ``optimal`` row proves its own
    objective). Returns columns ``instance_hash, instance, best_objective, best_bound``.
    """
    import pandas as pd

    rows = []
    for ihash, g in df.groupby("instance_hash", sort=False):
        sol = g[g["status"].isin(SOLVED)]
        trusted = g[g["status"] != "error"]
        bounds = trusted["bound"].dropna()
        bounds = bounds[np.isfinite(bounds)]
        rows.append(
            {
                "instance_hash": ihash,
                "instance": g["instance"].iloc[0],
                "best_objective": float(sol["objective"].min()) if len(sol) else math.nan,
                "best_bound": float(bounds.max()) if len(bounds) else -math.inf,
            }
        )
    return pd.DataFrame(rows)


def bound_conflicts(df: pd.DataFrame, rtol: float = RTOL) -> pd.DataFrame:
    """Instances where some row's bound exceeds another row's objective: one of them is wrong."""
    b = best_values(df)
    bad = b["best_bound"] > b["best_objective"] + rtol * b["best_objective"].abs().clip(lower=1.0)
    return b[bad.fillna(False)]


def compare_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per instance and configuration: status, objective, its gap to the best proven bound, time.

    ``gap_to_best_bound`` is :func:`solvers.result.compute_gap` of the configuration's objective
    and the best bound any configuration proved for the instance (0 means proven optimal);
    ``ratio_to_best`` is objective / best objective found.

    Parameters
    ----------
    df : DataFrame
        Rows of a results store (:func:`solvers.batch.load_results`).

    Returns
    -------
    DataFrame
        Columns ``instance, config, status, objective, best_bound, gap_to_best_bound,
        ratio_to_best, time_s, n_runs, instance_hash``, sorted by instance then objective; for
        version-2 rows also ``latency_s.ID`` (and ``deadline_met.ID`` for a request with a
        deadline) per request ``ID`` (:mod:`solvers.request_columns`).
    """
    from solvers.request_columns import request_table, wide_columns

    per = _per_config(df)
    best = best_values(df)[["instance_hash", "best_objective", "best_bound"]]
    t = per.merge(best, on="instance_hash", how="left")
    t["gap_to_best_bound"] = [compute_gap(o, b) for o, b in zip(t["objective"], t["best_bound"], strict=True)]
    with np.errstate(divide="ignore", invalid="ignore"):
        t["ratio_to_best"] = np.where(t["objective"] == t["best_objective"], 1.0, t["objective"] / t["best_objective"])
    cols = [
        "instance",
        "config",
        "status",
        "objective",
        "best_bound",
        "gap_to_best_bound",
        "ratio_to_best",
        "time_s",
        "n_runs",
        "instance_hash",
    ]
    wide = wide_columns(request_table(df, config_labels(df)))
    if len(wide):
        t = t.merge(wide, on=["instance_hash", "config"], how="left")
        cols[-1:-1] = [c for c in wide.columns if c not in ("instance_hash", "config")]
    t = t.sort_values("objective", na_position="last", kind="stable")
    t = t.sort_values("instance", key=natural_order, kind="stable")  # wifi12 before wifi142
    return t[cols].reset_index(drop=True)


@dataclass(frozen=True)
class PerformanceProfile:
    """A Dolan–Moré performance profile.

    Attributes
    ----------
    measure : str
        ``time`` or ``objective``.
    ratios : DataFrame
        ``r[p, s]``: problems (instance names) by configurations; ``inf`` where ``s`` failed.
    taus : ndarray
        Breakpoints of the step functions (sorted finite ratios, starting at 1).
    rho : dict
        Configuration -> fraction of problems with ratio <= tau, for each tau.
    """

    measure: str
    ratios: pd.DataFrame
    taus: np.ndarray
    rho: dict[str, np.ndarray]

    def fraction(self, config: str, tau: float) -> float:
        """``rho_config(tau)``; at ``tau = inf`` the fraction of instances solved at all."""
        r = self.ratios[config].to_numpy()
        if not len(r):
            return math.nan
        return float(np.mean(np.isfinite(r) if math.isinf(tau) else r <= tau))


def performance_profile(
    df: pd.DataFrame,
    measure: Literal["time", "objective"] = "time",
    *,
    success: Literal["best", "optimal"] = "best",
    rtol: float = RTOL,
) -> PerformanceProfile:
    """The Dolan–Moré performance profile of every configuration in ``df``.

    Parameters
    ----------
    df : DataFrame
        Rows of a results store.
    measure : {"time", "objective"}
        Compare solve times (``wall_time_s``) or objective values.
    success : {"best", "optimal"}
        For ``measure="time"``, when a run counts as solving a problem: its objective is within
        ``rtol`` of the best objective found by any run (``best``, fair to heuristics that hit the
        optimum without proving it), or its status is ``optimal`` (``optimal``). For
        ``measure="objective"`` every run holding a solution counts.
    rtol : float
        Relative tolerance of ``best``.

    Returns
    -------
    PerformanceProfile
    """
    import pandas as pd

    per = _per_config(df)
    best = best_values(df).set_index("instance_hash")["best_objective"]
    per["best_objective"] = per["instance_hash"].map(best)
    if measure == "time":
        reached = per["objective"] <= per["best_objective"] + rtol * per["best_objective"].abs().clip(lower=1.0)
        ok = per["all_solved"] & (reached if success == "best" else per["status"].eq("optimal"))
        value = per["time_s"].clip(lower=MIN_TIME_S).where(ok, math.inf)
    elif measure == "objective":
        value = per["objective"].where(per["all_solved"], math.inf)
    else:
        raise ValueError(f"measure must be 'time' or 'objective', got {measure!r}")
    per["value"] = value
    table = per.pivot_table(index="instance_hash", columns="config", values="value", aggfunc="first")
    table = table.fillna(math.inf)  # a configuration that did not run an instance failed it
    names = per.drop_duplicates("instance_hash").set_index("instance_hash")["instance"]
    table.index = [names[h] for h in table.index]
    t = table.to_numpy(dtype=float)
    mins = t.min(axis=1, keepdims=True) if t.size else np.zeros((len(t), 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(t == mins, 1.0, t / mins)  # t == mins also covers a best value of 0
    r = np.where(np.isfinite(t) & np.isfinite(mins), r, math.inf)
    ratios = pd.DataFrame(r, index=table.index, columns=list(table.columns))
    finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
    taus = np.unique(np.concatenate([[1.0], finite]))
    rho = {c: np.array([(ratios[c] <= t).mean() for t in taus]) for c in ratios.columns}
    return PerformanceProfile(measure, pd.DataFrame(ratios), taus, rho)
