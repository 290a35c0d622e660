"""Comparison tables and Dolan–Moré performance profiles on a hand-made results table.

Two instances, three solvers::

    instance A: s1 optimal 10 in 1 s; s2 optimal 10 in 4 s; s3 feasible 12 in 0.5 s (no bound)
    instance B: s1 optimal  5 in 2 s; s2 error;             s3 feasible  5 in 0.1 s

Time profile ("solved" = reached the best objective): A: s1 1, s2 4, s3 fails (12 > 10), so
ratios 1, 4, inf; B: s1 2, s2 fails, s3 0.1, so ratios 20, inf, 1.
Objective profile: A: 1, 1, 1.2; B: 1, inf, 1.
Gap of s3 on A to the best proven bound 10: (12 - 10) / 12 = 1/6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from solvers.compare import bound_conflicts, compare_table, config_labels, performance_profile


def _row(inst: str, solver: str, status: str, obj: float | None, bound: float, t: float, **kw: object) -> dict:  # type: ignore[type-arg]
    return {
        "instance_hash": "h" + inst,
        "instance": inst,
        "solver": solver,
        "options": "{}",
        "seed": None,
        "status": status,
        "objective": obj if obj is not None else math.nan,
        "bound": bound,
        "wall_time_s": t,
        **kw,
    }


@pytest.fixture
def df() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("A", "s1", "optimal", 10.0, 10.0, 1.0),
            _row("A", "s2", "optimal", 10.0, 10.0, 4.0),
            _row("A", "s3", "feasible", 12.0, -math.inf, 0.5),
            _row("B", "s1", "optimal", 5.0, 5.0, 2.0),
            _row("B", "s2", "error", None, -math.inf, 0.0),
            _row("B", "s3", "feasible", 5.0, -math.inf, 0.1),
        ]
    )


def test_time_profile_ratios_and_fractions(df: pd.DataFrame) -> None:
    p = performance_profile(df, "time")
    r = p.ratios.loc[["A", "B"], ["s1", "s2", "s3"]].to_numpy()
    np.testing.assert_array_equal(r, [[1.0, 4.0, math.inf], [20.0, math.inf, 1.0]])
    np.testing.assert_array_equal(p.taus, [1.0, 4.0, 20.0])
    np.testing.assert_array_equal(p.rho["s1"], [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(p.rho["s2"], [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(p.rho["s3"], [0.5, 0.5, 0.5])
    assert p.fraction("s1", math.inf) == 1.0 and p.fraction("s2", math.inf) == 0.5


def test_time_profile_counting_only_proven_optima(df: pd.DataFrame) -> None:
    p = performance_profile(df, "time", success="optimal")
    # s3 never proves optimality; on B only s1 does: ratios A 1, 4, inf; B 1, inf, inf
    np.testing.assert_array_equal(p.ratios.loc[["A", "B"], ["s1", "s2", "s3"]].to_numpy(),
                                  [[1.0, 4.0, math.inf], [1.0, math.inf, math.inf]])  # fmt: skip


def test_objective_profile(df: pd.DataFrame) -> None:
    p = performance_profile(df, "objective")
    np.testing.assert_allclose(p.ratios.loc[["A", "B"], ["s1", "s2", "s3"]].to_numpy(), [[1, 1, 1.2], [1, np.inf, 1]])


def test_compare_table_gap_to_best_bound(df: pd.DataFrame) -> None:
    t = compare_table(df).set_index(["instance", "config"])
    assert t.loc[("A", "s3"), "best_bound"] == 10.0
    assert t.loc[("A", "s3"), "gap_to_best_bound"] == pytest.approx(1 / 6)
    assert t.loc[("A", "s3"), "ratio_to_best"] == pytest.approx(1.2)
    assert t.loc[("B", "s3"), "gap_to_best_bound"] == 0.0  # a heuristic hit the proven optimum
    assert t.loc[("B", "s2"), "status"] == "error" and math.isinf(t.loc[("B", "s2"), "gap_to_best_bound"])
    assert list(t.index.get_level_values("config")[:3]) == ["s1", "s2", "s3"]  # sorted by objective


def test_seeds_are_summarised_by_median_and_options_split_configs() -> None:
    rows = [
        _row("A", "h", "feasible", v, -math.inf, t, seed=s) for s, v, t in [(0, 3.0, 1.0), (1, 5.0, 3.0), (2, 4.0, 2.0)]
    ]
    rows += [_row("A", "h", "feasible", 9.0, -math.inf, 1.0, options='{"gap":0.1}')]
    d = pd.DataFrame(rows)
    assert sorted(set(config_labels(d))) == ["h", "h gap=0.1"]
    t = compare_table(d).set_index("config")
    assert t.loc["h", "objective"] == 4.0 and t.loc["h", "time_s"] == 2.0 and t.loc["h", "n_runs"] == 3


def test_bound_conflicts_flag_a_bound_above_an_objective(df: pd.DataFrame) -> None:
    assert bound_conflicts(df).empty
    # s4 claims a lower bound of 10.8 on A, where s1 and s2 hold placements of value 10
    bad = pd.concat([df, pd.DataFrame([_row("A", "s4", "feasible", 11.0, 10.8, 1.0)])])
    conflicts = bound_conflicts(bad)
    assert conflicts["instance"].tolist() == ["A"]
    assert conflicts["best_bound"].tolist() == [10.8] and conflicts["best_objective"].tolist() == [10.0]
