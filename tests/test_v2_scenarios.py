"""Network states in version-2 files (docs/instance-format.md §10.5): the worked examples by hand,
loading, errors, the export round trip, routes per state and the command line.

The base of the examples (two phones, an edge, states cool and hot, placements A-D of a request) is
described in :mod:`solvers.testing_scenarios`, which builds it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import instance_to_data, load_instance_data
from formulation.scenarios import state_instances
from formulation.schema_v2 import SCHEMA_V2_FILE, json_schema_v2
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, solve
from solvers.result import Status
from solvers.testing_scenarios import NET, phones, placement


def _optimum(data: dict[str, Any], value: float, place: dict[str, str] | None) -> None:
    """Brute force and every exact solver that takes the instance find ``value`` (at ``place``)."""
    inst = load_instance_data(data)
    for name in ("brute", "cpsat-v2"):
        res = solve(inst, name)
        assert res.status == Status.OPTIMAL, (name, res.message)
        assert res.objective == pytest.approx(value, rel=1e-9, abs=1e-12), name
        if place is not None:
            assert res.placement == place, name


# -- V1-V3: `none`, the measures ----------------------------------------------------------------


def test_v1_none_expected_each_request_its_own_best() -> None:
    """0.8 c + 0.2 h per request: A 1.4, B 0.821, C 1.051, D 2.63; both B: 1.642."""
    data = phones("none", "expected")
    ev = evaluate(load_instance_data(data), placement("B", "B"))
    rep = ev.scenarios
    assert [s["objective"] for s in rep["states"]] == pytest.approx([1.282, 3.082], abs=1e-12)
    assert [s["request_latency_s"]["u1"] for s in rep["states"]] == pytest.approx([0.641, 1.541], abs=1e-12)
    assert ev.objective == pytest.approx(1.642, abs=1e-12) and rep["worst"] == pytest.approx(3.082, abs=1e-12)
    _optimum(data, 1.642, placement("B", "B"))


def test_v2_none_worst_everything_on_the_edge() -> None:
    """Hot sums at least 2 x 1.051, only C, C reaches it: 2.102 in both states."""
    data = phones("none", "worst")
    ev = evaluate(load_instance_data(data), placement("C", "C"))
    assert [s["objective"] for s in ev.scenarios["states"]] == pytest.approx([2.102, 2.102], abs=1e-12)
    _optimum(data, 2.102, placement("C", "C"))


def test_v3_none_cvar_half() -> None:
    """CVaR_0.5 = (0.2 h + 0.3 c) / 0.5 = 0.4 h + 0.6 c when hot is the worse state: B 1.001 per request."""
    data = phones("none", "cvar:0.5")
    ev = evaluate(load_instance_data(data), placement("B", "C"))
    assert ev.objective == pytest.approx(0.4 * 2.592 + 0.6 * 1.692, abs=1e-12)  # 2.052
    _optimum(data, 2.002, placement("B", "B"))


# -- V4-V6: `schedule`, a schedule per state, deadlines --------------------------------------------


def test_v4_schedule_expected_a_schedule_per_state() -> None:
    """Both B: the b's meet on the edge, one waits 0.04 s: cool 0.641 + 0.681, hot 1.541 + 1.581."""
    data = phones("schedule", "expected")
    inst = load_instance_data(data)
    ev = evaluate(inst, placement("B", "B"))
    assert [s["objective"] for s in ev.scenarios["states"]] == pytest.approx([1.322, 3.122], abs=1e-12)
    assert ev.objective == pytest.approx(0.8 * 1.322 + 0.2 * 3.122, abs=1e-12)  # 1.682
    assert ev.schedule["[cool]u2/b"] == pytest.approx(0.64) and ev.schedule["[hot]u2/b"] == pytest.approx(1.54)
    again = evaluate(inst, placement("B", "B"), ev.schedule)  # the per-state schedule given back
    assert again.feasible and again.objective == pytest.approx(ev.objective, abs=1e-12)
    # one schedule for every state breaks the slower one: the cool starts are too early when hot
    cool = {k[len("[cool]"):]: v for k, v in ev.schedule.items() if k.startswith("[cool]")}
    bad = evaluate(inst, placement("B", "B"), cool)
    assert any(v.kind == "schedule" and "'hot'" in v.message for v in bad.violations)
    _optimum(data, 1.682, placement("B", "B"))


def test_v5_schedule_worst() -> None:
    """C, C: uploads end at 1 s; the edge runs one request's a and b, then the other's: 1.051 + 1.101."""
    data = phones("schedule", "worst")
    ev = evaluate(load_instance_data(data), placement("C", "C"))
    assert [s["objective"] for s in ev.scenarios["states"]] == pytest.approx([2.152, 2.152], abs=1e-12)
    _optimum(data, 2.152, placement("C", "C"))


def test_v6_deadline_in_a_share_of_the_states() -> None:
    """u1 within 0.7 s: B meets it when cool only (0.641, 1.541); with probability 0.8 the optimum
    stays 1.682; required in every state (or with probability 0.9) nothing meets it (hot: >= 1.051)."""
    chance = phones("schedule", "expected", deadline_probability=0.8)
    chance["workload"][0]["deadline"] = "700 ms"
    inst = load_instance_data(chance)
    ev = evaluate(inst, placement("B", "B"))
    assert ev.feasible and ev.scenarios["deadline_met_probability"] == pytest.approx(0.8)
    assert [s["deadline_met"] for s in ev.scenarios["states"]] == [True, False]
    _optimum(chance, 1.682, placement("B", "B"))
    for level in (None, 0.9):
        strict = copy.deepcopy(chance)
        if level is None:
            del strict["problem"]["deadline_probability"]
        else:
            strict["problem"]["deadline_probability"] = level
        for name in ("brute", "cpsat-v2"):
            assert solve(load_instance_data(strict), name).status == Status.INFEASIBLE, (name, level)


def test_share_per_state() -> None:
    """Under share both B's split the edge (s = 1/2 each, max): every request 0.641 + 0.04 when cool."""
    data = phones("share", "worst", aggregate="max")
    ev = evaluate(load_instance_data(data), placement("B", "B"))
    assert [s["objective"] for s in ev.scenarios["states"]] == pytest.approx([0.681, 1.581], abs=1e-12)
    assert ev.objective == pytest.approx(1.581, abs=1e-12)


# -- R1: shortest routes per state ---------------------------------------------------------------


def routed(keep: bool = False) -> dict[str, Any]:
    """phone - e1 - cloud and phone - e2 - cloud, 1,000,000 B/s; latencies 10/20 ms via e1, 20/20 via e2;
    state jam: phone-e1 at 50 ms."""
    link = {"bandwidth": 1e6}
    return {
        "dnnpart": 2,
        "name": "two-relays",
        "models": {"net": copy.deepcopy(NET)},
        "system": {
            "devices": [{"id": "phone", "compute": 1e10}, {"id": "e1", "compute": 1e9}, {"id": "e2", "compute": 1e9},
                        {"id": "cloud", "compute": 1e12}],
            "links": [
                {"from": "phone", "to": "e1", "latency": "10 ms", **link},
                {"from": "phone", "to": "e2", "latency": "20 ms", **link},
                {"from": "e1", "to": "cloud", "latency": "20 ms", **link},
                {"from": "e2", "to": "cloud", "latency": "20 ms", **link},
            ],
            "routing": {"routes": {"phone->cloud": ["phone", "e1", "cloud"], "cloud->phone": ["cloud", "e1", "phone"]}}
            if keep else "shortest",
        },
        "workload": [{"id": "r", "model": "net", "source": "phone", "sink": "phone"}],
        "scenarios": [{"name": "usual", "probability": 0.5},
                      {"name": "jam", "probability": 0.5, "set": {"links.phone-e1.latency": "50 ms"}}],
    }


def test_r1_shortest_routes_are_computed_per_state() -> None:
    """a on the phone, b in the cloud: usual via e1 0.1 + 1.03 + 0.004 + 0.032 = 1.166; jam via e2
    0.1 + 1.04 + 0.004 + 0.042 = 1.186 (kept via e1 it would be 1.246)."""
    place = {"r/a": "phone", "r/b": "cloud"}
    inst = load_instance_data(routed())
    usual, jam = state_instances(inst)
    ids = inst.system.device_ids
    assert [ids[b] for _, b in usual.workload.routes[(0, 3)]] == ["e1", "cloud"]  # type: ignore[union-attr]
    assert [ids[b] for _, b in jam.workload.routes[(0, 3)]] == ["e2", "cloud"]  # type: ignore[union-attr]
    ev = evaluate(inst, place)
    assert [s["objective"] for s in ev.scenarios["states"]] == pytest.approx([1.166, 1.186], abs=1e-12)
    kept = evaluate(load_instance_data(routed(keep=True)), place)
    assert [s["objective"] for s in kept.scenarios["states"]] == pytest.approx([1.166, 1.246], abs=1e-12)


# -- loading, errors, schema, export ---------------------------------------------------------------


def test_export_round_trip_and_schema() -> None:
    data = phones("schedule", "cvar:0.8", deadline_probability=0.8)
    data["workload"][0]["deadline"] = 0.7
    inst = load_instance_data(data)
    out = instance_to_data(inst)
    assert out["problem"]["robust"] == "cvar:0.8" and out["problem"]["deadline_probability"] == 0.8
    assert out["scenarios"][1]["set"] == {"devices.p1.compute": 1e9, "devices.p2.compute": 1e9}
    back = load_instance_data(out)
    assert back.problem.scenarios == inst.problem.scenarios
    assert instance_to_data(back) == out
    schema = json_schema_v2()
    assert "scenarios" in schema["properties"]
    assert {"robust", "deadline_probability"} <= set(schema["$defs"]["ProblemV2Spec"]["properties"])
    committed = json.loads(Path(SCHEMA_V2_FILE).read_text(encoding="utf-8"))
    assert committed["properties"]["scenarios"] == schema["properties"]["scenarios"]


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda d: d["scenarios"][1]["set"].update({"devices.phone9.compute": 1e9}), "scenarios[1].set",
         "a device id"),
        (lambda d: d["scenarios"][1].update({"probability": 0.5}), "scenarios", "sum to 1"),
        (lambda d: d["problem"].update({"robust": "cvar:1.5"}), "problem.robust", "cvar:ALPHA"),
        (lambda d: d["problem"].update({"deadline_probability": 0.9}), "problem.deadline_probability",
         "a deadline in a request"),
        (lambda d: d.pop("scenarios"), "problem.robust", "a top-level 'scenarios' list"),
        (lambda d: d["scenarios"][0].update({"name": "hot"}), "scenarios[1].name", "not used before"),
    ],
)
def test_bad_states_name_the_field(change: Any, path: str, words: str) -> None:
    data = phones("none", "worst")
    change(data)
    with pytest.raises(InstanceError) as info:
        load_instance_data(data)
    assert path in str(info.value) and words in str(info.value)


def test_solvers_without_states_refuse() -> None:
    inst = load_instance_data(phones("share", "expected", aggregate="max"))
    for name in ("tang", "local-search"):
        with pytest.raises(UnsupportedProblem, match=r"network states.*brute and cpsat-v2"):
            get_solver(name).check(inst, SolverOptions())
    thirds = phones("none", "expected")
    thirds["scenarios"] = [{"name": f"s{i}", "probability": p} for i, p in enumerate([0.12345678901, 0.87654321099])]
    with pytest.raises(UnsupportedProblem, match="fractions of one denominator"):
        get_solver("cpsat-v2").check(load_instance_data(thirds), SolverOptions())


def test_command_line_solve_validate_and_exit_2(tmp_path: Path) -> None:
    from toolchain.cli import app

    f = tmp_path / "phones.yaml"
    f.write_text(yaml.safe_dump(phones("none", "worst")), encoding="utf-8")
    runner = CliRunner()
    out = runner.invoke(app, ["solve", str(f), "--solver", "cpsat-v2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["objective"] == pytest.approx(2.102, abs=1e-9)
    states = data["scenarios"]["states"]
    # each state's own optimum: cool 2 x 0.5 (all local), hot 2 x 1.051; regret 1.102 and 0
    assert [s["optimum"] for s in states] == pytest.approx([1.0, 2.102], abs=1e-9)
    assert [s["regret"] for s in states] == pytest.approx([1.102, 0.0], abs=1e-9)
    out = runner.invoke(app, ["validate", str(f)])
    assert out.exit_code == 0 and "2 network states, robust worst" in out.output
    bad = phones("none", "worst")
    bad["scenarios"][1]["set"]["links.p1-p2.bandwidth"] = 1e6
    f.write_text(yaml.safe_dump(bad), encoding="utf-8")
    out = runner.invoke(app, ["validate", str(f)])
    assert out.exit_code == 2 and "scenarios[1].set" in out.output and "Traceback" not in out.output


def test_validate_lists_the_routes_a_state_changes(tmp_path: Path) -> None:
    from toolchain.cli import app

    f = tmp_path / "relays.yaml"
    f.write_text(yaml.safe_dump(routed()), encoding="utf-8")
    out = CliRunner().invoke(app, ["validate", str(f)])
    assert out.exit_code == 0, out.output
    jam = out.output[out.output.index("state jam"):]
    assert "route phone -> cloud: phone -> e2 -> cloud" in jam and "route cloud -> phone: cloud -> e2 -> phone" in jam
    assert "route phone -> cloud: phone -> e1 -> cloud" in out.output[: out.output.index("state jam")]
