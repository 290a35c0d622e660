"""Network states (docs/instance-format.md §10, docs/networks.md "Network states").

* The worked example of docs/networks.md (instances/examples/robust-three-states.yaml): per-state
  latencies, the expected, worst and CVaR optima, by hand; every exact engine finds them.
* Chance-constrained deadlines on the same example, where the deadline holds in 2 of 3 states.
* Loading: every error names the field; files without states keep their meaning.
* The exact engines (brute, highs, scip, cpsat) agree with brute on random tiny instances with 2-4
  states for expected, worst and CVaR: a fast subset here, the 200+ per measure under ``slow``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import instance_to_data, load_instance, load_instance_data
from formulation.model import Instance
from formulation.scenarios import (
    Override,
    Scenario,
    ScenarioSet,
    cvar,
    parse_measure,
    robust_value,
    state_instances,
)
from solvers.milp.random_instances import random_instance
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "instances" / "examples" / "robust-three-states.yaml"
EXACT = ("brute", "highs", "scip", "cpsat", "pyomo:highs")

# Hand-computed (docs/networks.md): features 0.2 GFLOP, head 0.5 GFLOP; phone 1 GFLOP/s, cloud
# 100 GFLOP/s; image 300 kB, features' output 100 kB; bandwidth 10, 1 and 0.2 MB/s in the states
# good (p 0.7), usual (0.2), bad (0.1). Placements name the devices of (features, head).
LATENCY = {
    ("phone", "phone"): (0.7, 0.7, 0.7),  # 0.2 + 0.5
    ("phone", "cloud"): (0.215, 0.305, 0.705),  # 0.2 + 0.1 MB / bw + 0.005
    ("cloud", "cloud"): (0.037, 0.307, 1.507),  # 0.3 MB / bw + 0.002 + 0.005
    ("cloud", "phone"): (0.542, 0.902, 2.502),  # 0.3 MB / bw + 0.002 + 0.1 MB / bw + 0.5
}
P = np.array([0.7, 0.2, 0.1])
#: measure -> (optimal placement, optimal value), by hand.
OPTIMA = {
    "expected": (("cloud", "cloud"), 0.7 * 0.037 + 0.2 * 0.307 + 0.1 * 1.507),  # 0.238
    "worst": (("phone", "phone"), 0.7),
    # CVaR_0.8: the worst 20 % of the mass, bad (0.1) and usual (0.1 of its 0.2): (0.705 + 0.305) / 2
    "cvar:0.8": (("phone", "cloud"), (0.1 * 0.705 + 0.1 * 0.305) / 0.2),  # 0.505
}


def with_robust(inst: Instance, measure: str, level: float | None = None, deadline: float | None = None) -> Instance:
    sc = inst.problem.scenarios
    assert sc is not None
    m, alpha = parse_measure(measure)
    sc = dataclasses.replace(sc, measure=m, alpha=alpha, deadline_probability=level)
    problem = inst.problem
    if deadline is not None:
        cons = dataclasses.replace(problem.constraints, deadline_s=deadline)
        problem = dataclasses.replace(problem, constraints=cons)
    return inst.with_problem(dataclasses.replace(problem, scenarios=sc))


def example() -> Instance:
    return load_instance(EXAMPLE)


def test_per_state_latencies_by_hand() -> None:
    inst = example()
    for placement, lat in LATENCY.items():
        ev = evaluate(inst, {"features": placement[0], "head": placement[1]})
        got = [s["latency_s"] for s in ev.scenarios["states"]]
        assert got == pytest.approx(lat, rel=1e-12)
        assert ev.objective == pytest.approx(float(P @ lat), rel=1e-12)
        assert ev.scenarios["worst"] == pytest.approx(max(lat), rel=1e-12)
        # the top-level metrics are the nominal system's: the file's 8 Mbit/s, the state "usual"
        assert ev.latency_s == pytest.approx(lat[1], rel=1e-12)


@pytest.mark.parametrize("measure", sorted(OPTIMA))
@pytest.mark.parametrize("solver", EXACT)
def test_worked_example_optima(measure: str, solver: str) -> None:
    inst = with_robust(example(), measure)
    placement, value = OPTIMA[measure]
    res = solve(inst, solver)
    assert res.status == Status.OPTIMAL, res.message
    assert res.objective == pytest.approx(value, rel=1e-9)
    assert (res.placement["features"], res.placement["head"]) == placement
    assert res.objective is not None and res.bound <= res.objective + 1e-12


def test_cvar_by_hand() -> None:
    f = np.array([LATENCY[p] for p in LATENCY])
    got = cvar(f, P, 0.8)
    # phone/cloud: eta = 0.305 gives 0.305 + 5 * 0.1 * 0.4 = 0.505; cloud/cloud: eta = 0.307 gives 0.907
    assert got == pytest.approx([0.7, 0.505, 0.907, 0.5 * (0.902 + 2.502)], rel=1e-12)
    assert cvar(f, P, 0.0) == pytest.approx(f @ P, rel=1e-12)  # CVaR_0 is the expectation
    assert cvar(f, P, 0.95) == pytest.approx(f.max(axis=1), rel=1e-12)  # beyond 1 - p_min: the worst
    sc = ScenarioSet((Scenario("a", 0.5), Scenario("b", 0.5)), "cvar", 0.5)
    assert robust_value(np.array([[1.0, math.inf]]), sc)[0] == math.inf


def test_chance_constrained_deadline_two_of_three_states() -> None:
    # Deadline 0.4 s: phone/cloud (0.215, 0.305, 0.705) and cloud/cloud (0.037, 0.307, 1.507) meet it
    # in good and usual (probability 0.9), phone/phone (0.7) in none.
    inst = example()
    every = with_robust(inst, "expected", None, 0.4)
    chance = with_robust(inst, "expected", 0.9, 0.4)
    strict = with_robust(inst, "expected", 0.95, 0.4)
    worst = with_robust(inst, "worst", 0.9, 0.4)
    ev = evaluate(chance, {"features": "cloud", "head": "cloud"})
    assert ev.feasible and ev.scenarios["deadline_met_probability"] == pytest.approx(0.9)
    assert [s["deadline_met"] for s in ev.scenarios["states"]] == [True, True, False]
    bad = evaluate(strict, {"features": "cloud", "head": "cloud"})
    assert [v.kind for v in bad.violations] == ["deadline"] and "0.9" in bad.violations[0].message
    assert not evaluate(every, {"features": "cloud", "head": "cloud"}).feasible
    for name in EXACT:
        assert solve(every, name).status == Status.INFEASIBLE, name
        assert solve(strict, name).status == Status.INFEASIBLE, name
        res = solve(chance, name)
        assert res.status == Status.OPTIMAL and res.objective == pytest.approx(0.238, rel=1e-9), name
        res = solve(worst, name)  # worst case among the placements that meet it: phone/cloud
        assert res.status == Status.OPTIMAL and res.objective == pytest.approx(0.705, rel=1e-9), name
        assert res.placement == {"features": "phone", "head": "cloud"}


def test_solvers_without_states_refuse_them() -> None:
    inst = example()
    for name in ("mincut", "shortest-path", "scan", "dp", "heft", "local-search", "local", "offload"):
        with pytest.raises(UnsupportedProblem, match="network states"):
            get_solver(name).solve(inst)
    assert get_solver("highs").capabilities.scenarios and not get_solver("mincut").capabilities.scenarios


def test_export_round_trip_and_old_files_unchanged() -> None:
    inst = example()
    again = load_instance_data(instance_to_data(inst))
    assert again.problem.scenarios == inst.problem.scenarios
    for path in sorted((ROOT / "instances" / "examples").glob("*.yaml")):
        if path != EXAMPLE:
            assert load_instance(path).problem.scenarios is None, path


def _file(**changes: object) -> dict[str, object]:
    import yaml

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"scenarios": [{"name": "a", "probability": 0.5}, {"name": "b", "probability": 0.4}]},
         "scenarios", "sum to 1"),
        ({"scenarios": [{"name": "a", "probability": 1, "set": {"links.phone-tv.bandwidth": 1}}]},
         'scenarios[0].set["links.phone-tv.bandwidth"]', "names no link"),
        ({"scenarios": [{"name": "a", "probability": 1, "set": {"devices.phone.memory": 1}}]},
         'scenarios[0].set["devices.phone.memory"]', "compute"),
        ({"scenarios": [{"name": "a", "probability": 1, "set": {"links.phone-cloud.bandwidth": "0 Mbit/s"}}]},
         'scenarios[0].set["links.phone-cloud.bandwidth"]', "greater than 0"),
        ({"scenarios": [{"name": "a", "probability": 0.5}, {"name": "a", "probability": 0.5}]},
         "scenarios[1].name", "not used before"),
        ({"scenarios": [{"name": "a", "probability": 0}, {"name": "b", "probability": 1}]},
         "scenarios[0].probability", "> 0"),
        ({"problem__robust": "cvar:1"}, "problem.robust", "cvar:ALPHA"),
        ({"problem__deadline_probability": 0.9}, "problem.deadline_probability", "deadline"),
        ({"problem__execution": "parallel"}, "problem.execution", "sequential"),
        ({"scenarios": None, "problem__robust": "worst"}, "problem.robust", "scenarios"),
        ({"scenarios": []}, "scenarios", "non-empty"),
    ],
)
def test_load_errors_name_the_field(changes: dict[str, object], path: str, words: str) -> None:
    with pytest.raises(InstanceError) as info:
        load_instance_data(_file(**changes), file="x.yaml")
    text = str(info.value)
    assert path in text and words in text and "x.yaml" in text


# -- random instances -------------------------------------------------------------------------------

MEASURES = ("expected", "worst", "cvar:0.5", "cvar:0.8", "cvar:0.3")
LINK_FIELDS = ("bandwidth", "latency", "tx_power", "rx_power", "price")
DEVICE_FIELDS = ("compute", "power_active", "power_idle", "price")


def random_states(seed: int, measure: str) -> Instance:
    """A random tiny sequential instance with 2-4 random states (figures scaled by 0.1x .. 10x)."""
    from formulation.scenarios import OVERRIDABLE

    inst = random_instance(seed, execution="sequential")
    rng = np.random.default_rng(seed + 7)
    s = inst.system
    n_states = int(rng.integers(2, 5))
    p = rng.dirichlet(np.ones(n_states))
    p = np.round(p, 3)
    p[-1] = 1.0 - p[:-1].sum()
    if (p <= 0).any():
        p = np.full(n_states, 1.0 / n_states)
    states = []
    for i in range(n_states):
        overrides = []
        for _ in range(int(rng.integers(0, 4))):
            if s.links and rng.random() < 0.6:
                ch = list(s.links)[int(rng.integers(0, len(s.links)))]
                name = str(rng.choice(LINK_FIELDS))
                base = getattr(s.links[ch], OVERRIDABLE["links"][name][0])
                target: tuple[object, ...] = (ch,)
                section = "links"
                path = f"links.{ch[0]}->{ch[1]}.{name}"
            else:
                dev = s.device_ids[int(rng.integers(0, s.k))]
                name = str(rng.choice(DEVICE_FIELDS))
                base = getattr(s.devices[s.device_index[dev]], OVERRIDABLE["devices"][name][0])
                target, section, path = (dev,), "devices", f"devices.{dev}.{name}"
            if not (base and math.isfinite(base)):  # a figure the instance does not use stays unused
                continue
            value = float(base) * float(rng.uniform(0.1, 10.0))
            overrides.append(Override(path, section, target, name, value))
        states.append(Scenario(f"s{i}", float(p[i]), tuple(overrides)))
    m, alpha = parse_measure(measure)
    level = None
    if inst.problem.constraints.deadline_s is not None and rng.random() < 0.6:
        subset = rng.random(n_states) < 0.6
        level = float(p[subset].sum()) if subset.any() else float(rng.uniform(0.2, 0.9))
    sc = ScenarioSet(tuple(states), m, alpha, level)
    return inst.with_problem(dataclasses.replace(inst.problem, scenarios=sc))


#: Every exact engine whose capabilities take states (pyomo:NAME with the Pyomo solver installed here).
ENGINES = ("highs", "cpsat", "scip", "pyomo:highs")


def agree(seed: int, measure: str, solvers: tuple[str, ...] = ENGINES) -> None:
    inst = random_states(seed, measure)
    ref = solve(inst, "brute")
    assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
    for name in solvers:
        res = solve(inst, name, SolverOptions(time_limit_s=60))
        where = f"seed {seed}, {measure}, {name}: {res.message}"
        assert res.status == ref.status, f"{where}; brute {ref.status}, {name} {res.status}"
        if ref.status == Status.OPTIMAL:
            assert res.objective is not None and ref.objective is not None
            tol = float(res.extra.get("scaling_error", 0.0))
            assert abs(res.objective - ref.objective) <= 1e-6 * abs(ref.objective) + 1e-12 + 2 * tol, where
            assert res.bound <= ref.objective + 1e-9 * abs(ref.objective) + 1e-12, where


SEEDS = st.integers(min_value=0, max_value=10**9)


@pytest.mark.parametrize("measure", ["expected", "worst", "cvar:0.8"])
@settings(max_examples=8, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_exact_engines_equal_brute_fast(seed: int, measure: str) -> None:
    agree(seed, measure)


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["expected", "worst", "cvar:0.5", "cvar:0.8"])
@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(seed=SEEDS)
def test_exact_engines_equal_brute(seed: int, measure: str) -> None:
    agree(seed, measure)


def test_the_worked_example_of_docs_networks_md() -> None:
    """Every row of the table in docs/networks.md equals the evaluator's per-state latencies and measures."""
    text = (ROOT / "docs" / "networks.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| phone, ") or line.startswith("| cloud, ")]
    assert len(rows) == 4
    inst = example()
    for row in rows:
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
        a, b = (x.strip() for x in cells[0].split(","))
        numbers = [float(x) for x in cells[2:8]]
        lat = LATENCY[(a, b)]
        assert numbers[:3] == pytest.approx(lat, rel=1e-12)
        ev = evaluate(inst, {"features": a, "head": b})
        assert numbers[3] == pytest.approx(ev.objective, rel=1e-9)
        assert numbers[4] == pytest.approx(max(lat), rel=1e-12)
        assert numbers[5] == pytest.approx(cvar(np.array([lat]), P, 0.8)[0], rel=1e-9)


def test_regret_against_each_states_own_optimum() -> None:
    from toolchain.robust import state_report

    rep = state_report(example(), {"features": "cloud", "head": "cloud"})
    assert rep["objective"] == pytest.approx(0.238) and rep["worst"] == pytest.approx(1.507)
    assert [s["optimum"] for s in rep["states"]] == pytest.approx([0.037, 0.305, 0.7])
    assert [s["regret"] for s in rep["states"]] == pytest.approx([0.0, 0.002, 0.807], abs=1e-12)
    assert rep["states"][2]["optimal_placement"] == {"features": "phone", "head": "phone"}
    # a solver that cannot take the states alone leaves the optimum unknown, the metrics still shown
    rep = state_report(example(), {"features": "cloud", "head": "cloud"}, solver="pipeline-dp")
    assert [s["optimum"] for s in rep["states"]] == [None] * 3 and rep["states"][2]["latency_s"] == pytest.approx(1.507)
    assert rep["states"][0]["optimum_status"].startswith("refused: ")


def test_the_format_reference_example_loads() -> None:
    import re

    import yaml

    body = (ROOT / "docs" / "instance-format.md").read_text(encoding="utf-8").split("## 10.")[1]
    block = yaml.safe_load(re.search(r"```yaml\n(.*?)```", body, re.S).group(1))  # type: ignore[union-attr]
    data = _file()
    data["scenarios"] = block["scenarios"]
    data["problem"] = block["problem"]
    inst = load_instance_data(data)
    sc = inst.problem.scenarios
    assert sc is not None and sc.measure == "cvar" and sc.alpha == 0.8 and sc.deadline_probability == 0.9
    bad = state_instances(inst)[2]
    assert bad.system.compute[bad.system.device_index["cloud"]] == 50e9
    assert bad.system.bandwidth[0, 1] == bad.system.bandwidth[1, 0] == 1.6e6 / 8


def test_command_line_shows_states_regret_and_json() -> None:
    import json

    from typer.testing import CliRunner

    from toolchain.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["validate", str(EXAMPLE)], catch_exceptions=False)
    assert out.exit_code == 0
    assert "3 network states, robust expected" in out.output and "state bad (p = 0.1)" in out.output
    assert "200 kB/s" in out.output
    out = runner.invoke(app, ["solve", str(EXAMPLE), "--solver", "highs", "--json"], catch_exceptions=False)
    assert out.exit_code == 0
    data = json.loads(out.output)
    assert data["objective"] == pytest.approx(0.238)
    assert [s["regret"] for s in data["scenarios"]["states"]] == pytest.approx([0.0, 0.002, 0.807], abs=1e-12)
    assert [s["latency_s"] for s in data["metrics"]["scenarios"]["states"]] == pytest.approx([0.037, 0.307, 1.507])
    out = runner.invoke(app, ["solve", str(EXAMPLE), "--solver", "brute"], catch_exceptions=False)
    assert out.exit_code == 0 and "network states" in out.output and "regret" in out.output
    out = runner.invoke(app, ["solve", str(EXAMPLE), "--solver", "mincut"], catch_exceptions=False)
    assert out.exit_code == 2 and "network states" in out.output
    out = runner.invoke(app, ["pareto", str(EXAMPLE), "--objectives", "latency,energy"], catch_exceptions=False)
    assert out.exit_code == 2 and "network states" in out.output
