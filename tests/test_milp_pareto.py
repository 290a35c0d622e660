"""Pareto fronts by the epsilon-constraint method, and the ``pareto`` / ``solve --write-model`` CLI.

The chain of :mod:`solvers.testing` (``x -> a -> b -> c`` on ``m`` and ``c``) has, per placement
(latency s, cost USD), from the arithmetic in that module's docstring::

    mmm (4.0, 0)   ccc (0.521, 0.501)   mcc (1.341, 0.321)   mmc (3.171, 0.151)
    cmm (3.24, 0.22)   ccm (1.47, 0.45)   cmc (2.411, 0.371)   mcm (2.29, 0.27)

ccm is dominated by mcc, cmc by mcm, cmm by mmc: the front is ccc, mcc, mcm, mmc, mmm.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from formulation.loader import instance_to_data
from formulation.model import Constraints, Instance, Problem
from solvers.milp.pareto import ParetoFront, pareto_front
from solvers.options import UnsupportedProblem
from solvers.testing import CASES
from toolchain.cli import app

FRONT = [(0.521, 0.501), (1.341, 0.321), (2.29, 0.27), (3.171, 0.151), (4.0, 0.0)]
runner = CliRunner()


def chain(problem: Problem | None = None) -> Instance:
    inst = next(c for c in CASES if c.name == "chain-seq-latency").build()
    return inst.with_problem(problem or Problem())


def values(front: ParetoFront, a: str = "latency", b: str = "cost") -> list[float]:
    """The points' two values, flattened (pytest.approx compares flat sequences)."""
    return [x for p in front.points for x in (p.values[a], p.values[b])]


def flat(pairs: list[tuple[float, float]]) -> list[float]:
    return [x for pair in pairs for x in pair]


def test_front_of_latency_and_cost_by_hand() -> None:
    # 20 points put an epsilon in every cost interval [0, 0.151), [0.151, 0.27), [0.27, 0.321),
    # [0.321, 0.501] (spacing 0.501 / 19 = 0.026), so all five non-dominated points appear.
    front = pareto_front(chain(), ["latency", "cost"], 20)
    assert values(front) == pytest.approx(flat(FRONT), rel=1e-9, abs=1e-12)
    assert all(p.optimal for p in front.points)
    assert [p.placement for p in front.points][1] == {"a": "m", "b": "c", "c": "c"}
    # the two ends come from the lexicographic stages, the inner points from an epsilon
    assert front.points[0].epsilon is None and front.points[-1].epsilon is None
    assert all(p.epsilon is not None for p in front.points[1:-1])


def test_few_points_give_a_subset_of_the_front() -> None:
    # 3 points: the two ends and epsilon = 0.2505 (midway), whose best latency is mcm (cost 0.27
    # > 0.2505, excluded) -> mmc (3.171, 0.151).
    front = pareto_front(chain(), ["latency", "cost"], 3)
    assert values(front) == pytest.approx(flat([FRONT[0], FRONT[3], FRONT[4]]), rel=1e-9, abs=1e-12)


def test_constraints_hold_on_every_point() -> None:
    # A 2.5 s deadline removes mmc (3.171) and mmm (4.0): the front keeps ccc, mcc, mcm.
    front = pareto_front(chain(Problem(constraints=Constraints(deadline_s=2.5))), ["latency", "cost"], 20)
    assert values(front) == pytest.approx(flat(FRONT[:3]), rel=1e-9)


def test_no_trade_off_gives_one_point() -> None:
    # Latency and period agree here (ccc is best for both): one point.
    front = pareto_front(chain(), ["latency", "throughput"], 5)
    assert len(front.points) == 1
    assert front.points[0].values["latency"] == pytest.approx(0.521, rel=1e-9)


def test_bad_requests() -> None:
    with pytest.raises(UnsupportedProblem, match="two different metrics"):
        pareto_front(chain(), ["latency"], 5)
    with pytest.raises(UnsupportedProblem, match="two different metrics"):
        pareto_front(chain(), ["latency", "speed"], 5)
    with pytest.raises(UnsupportedProblem, match="at least 2"):
        pareto_front(chain(), ["latency", "cost"], 1)
    with pytest.raises(UnsupportedProblem, match="need a MILP solver"):
        pareto_front(chain(), ["latency", "cost"], 3, solver="brute")


def write_instance(tmp_path: Path) -> Path:
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(instance_to_data(chain())))
    return path


def test_cli_pareto_json(tmp_path: Path) -> None:
    path = write_instance(tmp_path)
    out = tmp_path / "front.json"
    r = runner.invoke(
        app, ["pareto", str(path), "--objectives", "latency,cost", "--points", "20", "--json", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["objectives"] == ["latency", "cost"]
    got = [x for p in data["points"] for x in (p["values"]["latency"], p["values"]["cost"])]
    assert got == pytest.approx(flat(FRONT), rel=1e-9, abs=1e-12)
    assert data["points"][0]["placement"] == {"a": "c", "b": "c", "c": "c"}
    assert data["points"][0]["metrics"]["latency_s"] == pytest.approx(0.521, rel=1e-9)
    assert json.loads(out.read_text()) == data


def test_cli_pareto_table_and_errors(tmp_path: Path) -> None:
    path = write_instance(tmp_path)
    r = runner.invoke(app, ["pareto", str(path), "--objectives", "latency,cost", "--points", "3"])
    assert r.exit_code == 0, r.output
    assert "3 points" in r.stdout and "c: a..c" in r.stdout and "m: a..c" in r.stdout
    bad = runner.invoke(app, ["pareto", str(path), "--objectives", "latency,foo"])
    assert bad.exit_code == 2
    assert "expected two different metrics" in bad.output and "Traceback" not in bad.output
    bad2 = runner.invoke(app, ["pareto", str(path), "--points", "1"])
    assert bad2.exit_code == 2 and "at least 2" in bad2.output


def test_cli_solve_write_model(tmp_path: Path) -> None:
    path = write_instance(tmp_path)
    lp = tmp_path / "model.lp"
    r = runner.invoke(app, ["solve", str(path), "--solver", "highs", "--write-model", str(lp), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["objective"] == pytest.approx(0.521, rel=1e-9)
    text = lp.read_text()
    assert text.startswith("\\ dnnpart MILP") and "assign(a): + x(a,m) + x(a,c) = 1" in text
    bad = runner.invoke(app, ["solve", str(path), "--write-model", str(tmp_path / "model.txt")])
    assert bad.exit_code == 2 and "use .lp or .mps" in bad.output
