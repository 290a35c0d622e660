"""Exact breakpoints (``toolchain.parametric``) against a dense brute-force sweep, and by hand.

By hand (``offload_choice`` of tests/test_sweep.py): offloading the 1 GFLOP layer wins when
``0.001 + 1.001e6 / B < 1``, i.e. above ``B = 1.001e6 / 0.999 = 1.002002...e6`` B/s; below it
everything stays on the phone (latency 1 s), above it the latency is ``0.001 + 1.001e6 / B``.

The reference (:func:`dense_breakpoints`) enumerates every placement, takes each one's line in
``t`` from the vectorised evaluator at the range's ends, evaluates all lines at 1e5 values
(geometric in the parameter; linear for ranges starting at 0) and walks the lower envelope; where
the optimal line changes between two samples the breakpoint is the intersection of the two lines.
The exact method must find the same breakpoints to 1e-9 relative, and each interval's placement
must be optimal (``brute``) at its ends and midpoint. 8 cases run by default, the other 18 with
``-m slow`` (26 in all: 13 chains, 13 DAGs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from formulation import generators as gen
from formulation.evaluator import batch_metrics, evaluate
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.brute import count_placements, enumerate_placements
from solvers.registry import solve
from tests.test_sweep import offload_choice
from toolchain.cli import app
from toolchain.parametric import VALUE_ATOL, VALUE_RTOL, ParametricError, exact_breakpoints
from toolchain.sweep import apply, parse_param, to_si

SAMPLES = 100_000


def dense_breakpoints(inst: Instance, path: str, lo: float, hi: float, inverse: bool) -> list[float]:
    """Breakpoints (SI, ascending) of the lower envelope of every feasible placement's line."""
    param = parse_param(inst, path)
    x_lo, x_hi = sorted((to_si(param, lo), to_si(param, hi)))
    t_a, t_b = sorted((1 / x_lo, 1 / x_hi) if inverse else (x_lo, x_hi))

    def x_of(t: float | np.ndarray) -> float | np.ndarray:
        return 1 / t if inverse else t

    P = enumerate_placements(inst, 0, count_placements(inst))
    ends = []
    for t in (t_a, t_b):
        bm = batch_metrics(apply(inst, param, float(x_of(t))), P, parallel=False)
        ends.append((bm.objective(), bm.feasible()))
    ok = ends[0][1]
    f_a, f_b = ends[0][0][ok], ends[1][0][ok]
    slope = (f_b - f_a) / (t_b - t_a)
    icpt = f_a - slope * t_a
    xs = np.geomspace(x_lo, x_hi, SAMPLES) if x_lo > 0 else np.linspace(x_lo, x_hi, SAMPLES)
    ts = np.sort(np.asarray(x_of(xs), dtype=float))
    mins = np.concatenate(
        [(icpt[:, None] + slope[:, None] * ts[None, i : i + 2000]).min(axis=0) for i in range(0, SAMPLES, 2000)]
    )

    def tol(v: float) -> float:
        return VALUE_RTOL * abs(v) + VALUE_ATOL

    def best_at(j: int) -> int:
        """Of the lines optimal at sample j, the one with the smallest slope (optimal just after)."""
        vals = icpt + slope * ts[j]
        tied = np.flatnonzero(vals <= mins[j] + tol(mins[j]))
        return int(tied[np.argmin(slope[tied])])

    out: list[float] = []
    cur, i0 = best_at(0), 0
    while True:
        excess = icpt[cur] + slope[cur] * ts[i0:] - mins[i0:]
        bad = np.flatnonzero(excess > VALUE_RTOL * np.abs(mins[i0:]) + VALUE_ATOL)
        if bad.size == 0:
            break
        j = i0 + int(bad[0])
        new = best_at(j)
        t_star = (icpt[new] - icpt[cur]) / (slope[cur] - slope[new])
        out.append(float(x_of(t_star)))
        cur, i0 = new, j
    return sorted(out)


def _instance(kind: str, n: int, k: int, seed: int, objective: Objective) -> Instance:
    g = gen.chain(n, seed=seed) if kind == "chain" else gen.layered_dag(n, width=3, seed=seed)
    return gen.instance(g, gen.system(k, seed=seed + 100), Problem(objective), name=f"{kind}-{n}-k{k}-s{seed}")


LAT, ENE = Objective("latency"), Objective("energy")
WEI = Objective("weighted", {"latency": 1.0, "energy": 0.05})
WCOST = Objective("weighted", {"latency": 1.0, "cost": 10.0})
# (graph, layers, devices, seed, objective, parameter, low, high, transform is 1/x)
CASES = [
    ("chain", 5, 2, 2, LAT, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("dag", 5, 2, 2, ENE, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("chain", 6, 3, 6, WEI, "links.d0-d2.bandwidth", 0.01, 1000, True),
    ("dag", 6, 3, 4, LAT, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("chain", 4, 3, 17, ENE, "links.d0-d1.latency", 0, 500, False),
    ("dag", 5, 3, 42, ENE, "links.d0-d2.tx_power", 0, 20, False),
    ("chain", 6, 2, 30, LAT, "devices.d1.compute", 1, 10000, True),
    ("dag", 6, 3, 11, WCOST, "devices.d2.price", 0, 5000, False),
    # the rest run with -m slow
    ("chain", 7, 2, 12, LAT, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("chain", 6, 3, 15, ENE, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("chain", 7, 3, 14, LAT, "links.d0-d2.bandwidth", 0.01, 1000, True),
    ("chain", 5, 3, 42, WEI, "links.d1-d2.bandwidth", 0.01, 1000, True),
    ("chain", 6, 2, 17, ENE, "links.d0-d1.rx_power", 0, 10, False),
    ("chain", 5, 3, 42, LAT, "links.d0-d1.latency", 0, 500, False),
    ("chain", 6, 3, 18, ENE, "devices.d0.power_active", 0.1, 50, False),
    ("chain", 7, 2, 32, WCOST, "links.d0-d1.price", 0, 10, False),
    ("dag", 7, 2, 21, LAT, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("dag", 6, 3, 22, ENE, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("dag", 7, 3, 23, LAT, "links.d0-d2.bandwidth", 0.01, 1000, True),
    ("dag", 5, 3, 35, WEI, "links.d0-d1.bandwidth", 0.01, 1000, True),
    ("dag", 6, 2, 33, ENE, "links.d0-d1.latency", 0, 500, False),
    ("dag", 6, 3, 26, LAT, "devices.d2.compute", 1, 10000, True),
    ("dag", 5, 3, 45, ENE, "devices.d1.power_idle", 0, 20, False),
    ("dag", 7, 3, 42, WEI, "links.d1-d2.bandwidth", 0.01, 1000, True),
    ("dag", 4, 3, 62, ENE, "devices.d0.power_active", 0.1, 50, False),
    ("chain", 7, 3, 33, WEI, "links.d0-d1.bandwidth", 0.01, 1000, True),
]
FAST = 8


def _check(case: tuple) -> int:
    kind, n, k, seed, obj, path, lo, hi, inverse = case
    inst = _instance(kind, n, k, seed, obj)
    bp = exact_breakpoints(inst, path, lo, hi)
    ref = dense_breakpoints(inst, path, lo, hi, inverse)
    assert len(bp.breakpoints) == len(ref), (bp.breakpoints, ref)
    for a, b in zip(bp.breakpoints, ref, strict=True):
        assert a == pytest.approx(b, rel=1e-9)
    param = parse_param(inst, path)
    for iv in bp.intervals:
        mid = math.sqrt(iv.lo * iv.hi) if iv.lo > 0 else (iv.lo + iv.hi) / 2
        for x in (iv.lo, mid, iv.hi):
            v = apply(inst, param, x)
            best = solve(v, "brute")
            mine = evaluate(v, iv.placement).objective
            assert best.objective is not None
            assert mine <= best.objective * (1 + 1e-9) + 1e-15, (x, mine, best.objective)
    return len(ref)


@pytest.mark.parametrize("case", CASES[:FAST], ids=[f"{c[0]}-{c[3]}-{c[5]}" for c in CASES[:FAST]])
def test_exact_breakpoints_equal_dense_sweep(case: tuple) -> None:
    _check(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES[FAST:], ids=[f"{c[0]}-{c[3]}-{c[5]}" for c in CASES[FAST:]])
def test_exact_breakpoints_equal_dense_sweep_slow(case: tuple) -> None:
    _check(case)


def test_some_cases_have_several_breakpoints() -> None:
    # the suite is not vacuous: the reference finds breakpoints in most fast cases
    counts = [len(dense_breakpoints(_instance(*c[:5]), c[5], c[6], c[7], c[8])) for c in CASES[:FAST]]
    assert min(counts) >= 1 and sum(counts) >= 15, counts


def test_offload_choice_by_hand() -> None:
    bp = exact_breakpoints(offload_choice(), "links.m-c.bandwidth", 1, 64, solver="brute")
    assert bp.breakpoints == pytest.approx([1.001e6 / 0.999], rel=1e-12)
    lo, hi = bp.intervals
    assert lo.placement == {"a": "m"} and hi.placement == {"a": "c"}
    assert lo.objective_lo == pytest.approx(1.0) and lo.line.slope == pytest.approx(0.0, abs=1e-15)
    # latency on the offload piece: 0.001 + 1.001e6 * t with t = 1/B
    assert hi.line.intercept == pytest.approx(0.001) and hi.line.slope == pytest.approx(1.001e6)
    assert hi.objective_hi == pytest.approx(0.001 + 1.001e6 / 8e6)
    assert bp.policy()["table"][0] == {"from": 125000.0, "to": pytest.approx(1.002002e6), "placement": {"a": "m"}}
    # every interval's certificate: a probe that proved its placement optimal
    assert all(iv.probes and iv.probes[0].status == "optimal" for iv in (lo, hi))
    assert bp.placement_at(1e6) == {"a": "m"} and bp.placement_at(1.1e6) == {"a": "c"}


def test_nonlinear_parameters_are_refused() -> None:
    inst = offload_choice()
    with pytest.raises(ParametricError, match="maximum"):
        exact_breakpoints(inst.with_problem(Problem(Objective("throughput"))), "links.m-c.bandwidth", 1, 64)
    with pytest.raises(ParametricError, match="makespan"):
        exact_breakpoints(inst.with_problem(Problem(execution="parallel")), "links.m-c.bandwidth", 1, 64)
    with pytest.raises(ParametricError, match="deadline"):
        exact_breakpoints(
            inst.with_problem(Problem(constraints=Constraints(deadline_s=0.5))), "links.m-c.bandwidth", 1, 64
        )
    with pytest.raises(ParametricError, match="not piecewise linear in memory"):
        exact_breakpoints(inst, "devices.m.memory", 1, 64)
    with pytest.raises(ParametricError, match="not piecewise linear"):
        exact_breakpoints(inst, "problem.deadline", 1, 64)


def test_cli_exact_json_and_policy(tmp_path: Path) -> None:
    from formulation.loader import instance_to_data

    f = tmp_path / "one.json"
    f.write_text(json.dumps(instance_to_data(offload_choice())))
    pol = tmp_path / "policy.json"
    r = CliRunner().invoke(
        app,
        ["sweep", str(f), "--param", "links.m-c.bandwidth", "--values", "1:64", "--exact", "--json", "--out", str(pol)],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["breakpoints"] == pytest.approx([1.002002002e6])
    assert data["unit"] == "B/s" and [iv["cut"] for iv in data["intervals"]] == ["all on m", "all on c"]
    table = json.loads(pol.read_text())["table"]
    assert [row["placement"] for row in table] == [{"a": "m"}, {"a": "c"}]
    bad = CliRunner().invoke(app, ["sweep", str(f), "--param", "devices.m.memory", "--values", "1:4", "--exact"])
    assert bad.exit_code == 2 and "not piecewise linear" in bad.output


def test_plot_marks_exact_breakpoints() -> None:
    from toolchain.plots import plot_sweep
    from toolchain.sweep import run_sweep

    inst = offload_choice()
    bp = exact_breakpoints(inst, "links.m-c.bandwidth", 1, 64, solver="brute")
    mbit = bp.breakpoints[0] / 125_000.0  # 8.016016... Mbit/s
    fig = plot_sweep(run_sweep(inst, "links.m-c.bandwidth", [1, 4, 16, 64], solver="brute"), breakpoints=[mbit])
    xs = [np.asarray(ln.get_xdata(), dtype=float) for ln in fig.axes[0].lines if ln.get_linestyle() == "-"]
    solid = [x[0] for x in xs if x.size == 2]
    assert solid == pytest.approx([mbit]) and mbit == pytest.approx(8.016016016)
    # the bands change at the breakpoint, not half-way between the samples 4 and 16 (8.0 on a log axis)
    band = fig.axes[0].patches[1].get_path().get_extents(fig.axes[0].patches[1].get_patch_transform())
    assert float(band.x0) == pytest.approx(mbit, rel=1e-6)


def test_ties_give_one_deterministic_piece() -> None:
    # two identical clouds: offloading to either has the same line; sweeping the phone's active
    # power (energy objective) gives one breakpoint and one offload piece, the same on every run
    from formulation.model import Device, Graph, Layer, Link, ModelInput, System

    devices = [Device("m", 1e9, power_active_w=2.0, trusted=True), Device("c1", 1e12), Device("c2", 1e12)]
    links = [Link(a, b, 1e6, tx_power_w=1.0) for a, b in (("m", "c1"), ("c1", "m"), ("m", "c2"), ("c2", "m"))]
    graph = Graph("one", [ModelInput("x", 1e6)], [Layer("a", "conv", ("x",), flops=1e9, output_bytes=1e3)])
    inst = Instance("twins", graph, System(devices, links, "m", "m"), Problem(Objective("energy")))
    runs = [exact_breakpoints(inst, "devices.m.power_active", 0, 5, solver=s) for s in ("brute", "brute", "auto")]
    # local: p x 1 s of compute; offload: m sends x for 1 s at 1 W and the cloud sends a's output
    # back for 1 ms at 1 W: 1.001 J, whatever p -> the breakpoint is p = 1.001 W
    for bp in runs:
        assert bp.breakpoints == pytest.approx([1.001], rel=1e-12)
        assert bp.intervals[0].placement == {"a": "m"} and bp.intervals[1].placement["a"] in ("c1", "c2")
    assert runs[0].intervals[1].placement == runs[1].intervals[1].placement


def test_unit_of_the_range() -> None:
    # 1000:64000 kbit/s is 1:64 Mbit/s: the same breakpoint, in B/s
    bp = exact_breakpoints(offload_choice(), "links.m-c.bandwidth", 1000, 64000, unit="kbit/s", solver="brute")
    assert bp.breakpoints == pytest.approx([1.001e6 / 0.999], rel=1e-12)
    assert (bp.lo, bp.hi) == pytest.approx((1.25e5, 8e6))
