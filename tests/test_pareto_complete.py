"""Complete Pareto fronts (``solvers.milp.pareto_complete``) against brute-force non-dominated sets.

By hand: the chain of :mod:`solvers.testing` has the front ccc, mcc, mcm, mmc, mmm (latency s,
cost USD): (0.521, 0.501), (1.341, 0.321), (2.29, 0.27), (3.171, 0.151), (4.0, 0); see
tests/test_milp_pareto.py for the arithmetic. Five points take 2 x 5 solves plus the two of the
end point (least cost first): 12.

The reference (:func:`brute_front`) enumerates every placement with the vectorised evaluator and
keeps the feasible non-dominated value pairs (ties within 1e-9 relative are one point). 60 random
instances (2-3 devices, 4-7 layers, chains and DAGs, some with memory limits, missing links or no
sink), each for latency x energy and latency x cost: 12 in the default suite, all 120 fronts with
``-m slow``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from formulation import generators as gen
from formulation.evaluator import batch_metrics
from formulation.loader import instance_to_data
from formulation.model import Constraints, Instance, Problem
from solvers.brute import count_placements, enumerate_placements
from solvers.milp.pareto import pareto_front
from solvers.milp.pareto_complete import complete_front
from solvers.testing import CASES
from toolchain.cli import app

HAND = [(0.521, 0.501), (1.341, 0.321), (2.29, 0.27), (3.171, 0.151), (4.0, 0.0)]


def brute_front(inst: Instance, objs: tuple[str, str]) -> list[tuple[float, float]]:
    """Feasible non-dominated (f1, f2) pairs by enumeration, sorted by f1."""
    P = enumerate_placements(inst, 0, count_placements(inst))
    bm = batch_metrics(inst, P, parallel=False)
    ok = bm.feasible()
    a, b = bm.metric(objs[0])[ok], bm.metric(objs[1])[ok]

    def le(x: float, y: float) -> bool:
        return bool(x <= y + 1e-9 * max(abs(x), abs(y)))

    out: list[tuple[float, float]] = []
    for i in np.lexsort((b, a)):
        x, y = float(a[i]), float(b[i])
        if not any(le(p, x) and le(q, y) for p, q in out):
            out.append((x, y))
    return out


def random_instance(seed: int) -> Instance:
    k, n = 2 + seed % 2, 4 + seed % 4
    g = gen.chain(n, seed=seed) if seed % 3 else gen.layered_dag(n, width=3, seed=seed)
    sys = gen.system(k, seed=seed, link_prob=0.5 if seed % 5 == 0 else 1.0, sink=seed % 4 != 1, memory=seed % 7 == 0)
    return gen.instance(g, sys, Problem(constraints=Constraints(memory=seed % 7 == 0)), name=f"rand-{seed}")


def _agree(inst: Instance, objs: tuple[str, str]) -> int:
    front = complete_front(inst, objs)
    ref = brute_front(inst, objs)
    got = [(p.values[objs[0]], p.values[objs[1]]) for p in front.points]
    assert len(got) == len(ref), (got, ref)
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-15), (got, ref)
    assert all(p.optimal for p in front.points) and front.message == ""
    assert front.solves == 2 * (len(ref) + 1)
    return len(ref)


SEEDS = list(range(60))
FAST = 6


@pytest.mark.parametrize("objs", [("latency", "energy"), ("latency", "cost")])
@pytest.mark.parametrize("seed", SEEDS[:FAST])
def test_complete_front_equals_brute(seed: int, objs: tuple[str, str]) -> None:
    _agree(random_instance(seed), objs)


@pytest.mark.slow
@pytest.mark.parametrize("objs", [("latency", "energy"), ("latency", "cost")])
@pytest.mark.parametrize("seed", SEEDS[FAST:])
def test_complete_front_equals_brute_slow(seed: int, objs: tuple[str, str]) -> None:
    _agree(random_instance(seed), objs)


def test_complete_front_by_hand() -> None:
    inst = next(c for c in CASES if c.name == "chain-seq-latency").build().with_problem(Problem())
    front = complete_front(inst, ["latency", "cost"])
    got = [x for p in front.points for x in (p.values["latency"], p.values["cost"])]
    assert got == pytest.approx([x for pair in HAND for x in pair], rel=1e-9, abs=1e-12)
    assert front.solves == 12
    assert front.points[1].placement == {"a": "m", "b": "c", "c": "c"}
    # a 2.5 s deadline removes mmc and mmm: three points, 8 solves
    tight = complete_front(inst.with_problem(Problem(constraints=Constraints(deadline_s=2.5))), ["latency", "cost"])
    assert [p.values["latency"] for p in tight.points] == pytest.approx([0.521, 1.341, 2.29])
    assert tight.solves == 8


def test_grid_misses_points_the_complete_front_finds() -> None:
    # 3 devices, 6 layers: a 20-point epsilon grid returns 4 of the 7 non-dominated points
    inst = gen.instance(gen.chain(6, seed=36), gen.system(3, seed=36), Problem())
    objs = ("latency", "energy")
    ref = brute_front(inst, objs)
    grid = pareto_front(inst, objs, 20)
    assert len(ref) == 7 and len(grid.points) == 4
    assert _agree(inst, objs) == 7


def test_cli_complete(tmp_path: Path) -> None:
    inst = next(c for c in CASES if c.name == "chain-seq-latency").build().with_problem(Problem())
    f = tmp_path / "chain.json"
    f.write_text(json.dumps(instance_to_data(inst)))
    r = CliRunner().invoke(app, ["pareto", str(f), "--objectives", "latency,cost", "--complete", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["complete"] is True and data["solves"] == 12
    assert [p["values"]["latency"] for p in data["points"]] == pytest.approx([h[0] for h in HAND])
    text = CliRunner().invoke(app, ["pareto", str(f), "--objectives", "latency,cost", "--complete"])
    assert text.exit_code == 0 and "5 points" in text.output and "12 MILP solves" in text.output
    bad = CliRunner().invoke(app, ["pareto", str(f), "--complete", "--points", "5"])
    assert bad.exit_code == 2 and "--points" in bad.output
