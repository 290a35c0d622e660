"""Infeasibility explained: minimal conflicting constraints, the relaxation that restores feasibility,
heuristics that prove nothing, and strict JSON numbers."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import dnnpart
from solvers.conflict import Group, explain, groups, restrict
from solvers.result import Result, Status, Termination, number_from_json
from toolchain.cli import app

# Two layers; phone 10 GFLOP/s, server 1 TFLOP/s, a slow 1 MB/s uplink. The least latency keeps
# both layers on the phone: 0.3 GFLOP / 10 GFLOP/s + 0.18 GFLOP / 10 GFLOP/s = 30 + 18 = 48 ms
# (offloading costs at least 5 ms + 1 MB / 1 MB/s = 1.005 s for the input alone).
DEADLINE_10MS: dict[str, Any] = {
    "dnnpart": 1,
    "name": "deadline-10ms",
    "model": {
        "inputs": [{"id": "x", "bytes": "1 MB"}],
        "layers": [
            {"id": "conv", "op": "conv2d", "inputs": ["x"], "flops": "0.3 GFLOP", "output_bytes": "100 kB"},
            {"id": "fc", "op": "linear", "inputs": ["conv"], "flops": "0.18 GFLOP", "output_bytes": "1 kB"},
        ],
    },
    "system": {
        "devices": [{"id": "phone", "compute": "10 GFLOP/s"}, {"id": "server", "compute": "1 TFLOP/s"}],
        "links": [{"from": "phone", "to": "server", "bandwidth": "1 MB/s", "latency": "5 ms"}],
        "source": "phone",
        "sink": "phone",
    },
    "problem": {"objective": "energy", "constraints": {"deadline": "10 ms"}},
}


def memory_allowed() -> dict[str, Any]:
    """conv holds 50 MB of weights and may run only on the phone, whose memory is 10 MB.

    The phone needs params + peak working set = 50 MB + (1 MB input + 100 kB output) = 51.1 MB.
    A deadline of 2 s is slack (everything on the server: 5 ms + 1 s up, 0.48 ms, 5 ms + 1 ms back).
    """
    d = copy.deepcopy(DEADLINE_10MS)
    d["name"] = "memory-allowed"
    d["model"]["layers"][0]["param_bytes"] = "50 MB"
    d["system"]["devices"][0]["memory"] = "10 MB"
    d["problem"] = {"objective": "latency", "constraints": {"allowed": {"conv": ["phone"]}, "deadline": "2 s"}}
    return d


def test_deadline_conflict_names_the_deadline_and_its_least_value() -> None:
    inst = dnnpart.from_dict(DEADLINE_10MS)
    res = dnnpart.solve(inst)
    assert res.status is Status.INFEASIBLE
    assert res.conflict is not None
    assert [c["name"] for c in res.conflict["constraints"]] == ["deadline"]
    assert res.conflict["constraints"][0]["text"] == "deadline <= 10 ms"
    (relax,) = res.conflict["relaxations"]
    assert relax["name"] == "deadline" and relax["unit"] == "s"
    assert relax["value"] == pytest.approx(0.048, rel=1e-9)
    assert relax["text"] == "deadline >= 48 ms"
    assert res.conflict["minimal"] is True
    # the relaxation is exact: the deadline at the value is feasible, just below it is not
    at = copy.deepcopy(DEADLINE_10MS)
    at["problem"]["constraints"]["deadline"] = relax["value"]
    assert dnnpart.solve(dnnpart.from_dict(at)).status is Status.OPTIMAL
    at["problem"]["constraints"]["deadline"] = relax["value"] * (1 - 1e-6)
    assert dnnpart.solve(dnnpart.from_dict(at), explain=False).status is Status.INFEASIBLE


def test_memory_and_allowed_conflict_names_both_and_not_the_slack_deadline() -> None:
    res = dnnpart.solve(dnnpart.from_dict(memory_allowed()))
    assert res.status is Status.INFEASIBLE and res.conflict is not None
    assert sorted(c["name"] for c in res.conflict["constraints"]) == ["allowed[conv]", "memory[phone]"]
    relax = {r["name"]: r for r in res.conflict["relaxations"]}
    assert set(relax) == {"allowed[conv]", "memory[phone]"}
    assert relax["allowed[conv]"]["value"] is None and relax["allowed[conv]"]["text"] == "drop allowed[conv]"
    # 50 MB weights + 1 MB input + 100 kB output, found by bisection to 1 %
    assert relax["memory[phone]"]["value"] == pytest.approx(51.1e6, rel=0.01)
    assert relax["memory[phone]"]["value"] >= 51.1e6 * (1 - 1e-9)
    assert "memory[phone] + allowed[conv]" in res.conflict["summary"]


def test_groups_and_restrict_cover_every_constraint_kind() -> None:
    d = memory_allowed()
    d["problem"]["constraints"].update(
        {
            "private": ["x"],
            "contiguous": True,
            "max_devices": 1,
            "colocate": [["conv", "fc"]],
            "energy_budget": {"phone": "1 J"},
        }
    )
    inst = dnnpart.from_dict(d)
    names = [g.name for g in groups(inst)]
    assert names == [
        "deadline",
        "energy_budget[phone]",
        "memory[phone]",
        "max_devices",
        "contiguous",
        "allowed[conv]",
        "private[x]",
        "colocate[0]",
    ]
    bare = restrict(inst, [])
    c = bare.problem.constraints
    assert c.deadline_s is None and not c.energy_budget_j and not c.allowed and not c.private
    assert c.max_devices is None and not c.contiguous and not c.colocate
    assert math.isinf(bare.system.memory[0]) and bare.active_constraints == frozenset()
    only = restrict(inst, [Group("memory", "phone")])
    assert only.system.memory[0] == 10e6 and only.problem.constraints.deadline_s is None


def test_structural_infeasibility_blames_no_constraint() -> None:
    d = copy.deepcopy(DEADLINE_10MS)
    # the output must reach the server, but only a server -> phone channel exists and x is on the phone
    d["system"]["sink"] = "server"
    d["system"]["links"] = [{"from": "server", "to": "phone", "bandwidth": "1 MB/s", "bidirectional": False}]
    out = explain(dnnpart.from_dict(d))
    assert out["constraints"] == [] and "without any constraint" in out["summary"]


@pytest.mark.parametrize("solver", ["local-search", "heft", "local", "offload"])
def test_a_heuristic_never_claims_infeasibility(solver: str) -> None:
    d = copy.deepcopy(DEADLINE_10MS)
    d["problem"]["execution"] = "parallel"
    d["problem"]["objective"] = "latency"
    res = dnnpart.solve(dnnpart.from_dict(d), solver)
    assert res.status is Status.NO_SOLUTION_FOUND and res.conflict is None
    assert dnnpart.solve(dnnpart.from_dict(d), "brute", explain=False).status is Status.INFEASIBLE


def test_result_json_is_strict_and_has_no_string_infinities() -> None:
    res = dnnpart.solve(dnnpart.from_dict(DEADLINE_10MS))
    text = json.dumps(res.to_dict())
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert data["bound"] is None and data["gap"] is None and data["objective"] is None
    assert data["conflict"]["relaxations"][0]["value"] == pytest.approx(0.048)

    def strings(x: Any) -> list[str]:
        if isinstance(x, dict):
            return [s for v in x.values() for s in strings(v)]
        if isinstance(x, list):
            return [s for v in x for s in strings(v)]
        return [x] if isinstance(x, str) else []

    assert not [s for s in strings(data) if s.lower().lstrip("+-") in {"inf", "infinity", "nan"}]
    # metrics with an infinite value (a zero period) are null too
    r = Result("i", "s", Status.FEASIBLE, Termination.COMPLETED, objective=1.0, bound=-math.inf, gap=math.inf)
    r.extra = {"scaling_error": math.inf, "nested": [math.nan, 2.0]}
    out = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert out["extra"] == {"scaling_error": None, "nested": [None, 2.0]} and out["bound"] is None


def test_number_from_json_reads_null_and_legacy_strings() -> None:
    assert number_from_json(None, -math.inf) == -math.inf
    assert number_from_json("-inf") == -math.inf and number_from_json("inf") == math.inf
    assert number_from_json(0.5) == 0.5
    with pytest.raises(ValueError):
        number_from_json("fast")


def test_cli_solve_prints_the_conflict_and_writes_it_in_json(tmp_path: Path) -> None:
    f = tmp_path / "deadline.json"
    f.write_text(json.dumps(DEADLINE_10MS))
    runner = CliRunner()
    human = runner.invoke(app, ["solve", str(f)])
    assert human.exit_code == 1
    assert "conflict: deadline; needs deadline >= 48 ms" in human.output
    js = runner.invoke(app, ["solve", str(f), "--json"])
    assert js.exit_code == 1
    data = json.loads(js.stdout)
    assert data["status"] == "infeasible" and data["bound"] is None
    assert data["conflict"]["relaxations"][0]["value"] == pytest.approx(0.048)
    heur = json.loads(runner.invoke(app, ["solve", str(f), "--solver", "local-search", "--json"]).stdout)
    assert heur["status"] == "no_solution_found" and heur["conflict"] is None


def test_old_result_json_with_string_infinities_still_evaluates(tmp_path: Path) -> None:
    old = {"status": "optimal", "bound": "-inf", "gap": "inf", "placement": {"conv": "phone", "fc": "phone"}}
    inst_file = tmp_path / "i.json"
    d = copy.deepcopy(DEADLINE_10MS)
    d["problem"]["constraints"] = {}
    inst_file.write_text(json.dumps(d))
    (tmp_path / "old.json").write_text(json.dumps(old))
    res = CliRunner().invoke(app, ["evaluate", str(inst_file), "--placement", str(tmp_path / "old.json"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["metrics"]["latency_s"] == pytest.approx(0.048)


def test_an_exhausted_budget_keeps_groups_and_says_the_set_is_not_minimal() -> None:
    out = explain(dnnpart.from_dict(memory_allowed()), budget_s=1e-9)
    # no check could run: every group is kept, none is blamed wrongly as minimal
    assert out["minimal"] is False and out["solves"] == 0
    assert [c["name"] for c in out["constraints"]] == ["deadline", "memory[phone]", "allowed[conv]"]


def test_energy_budget_and_max_devices_relaxations_are_tight() -> None:
    d = copy.deepcopy(DEADLINE_10MS)
    d["system"]["devices"][0].update(power_active="5 W", power_idle="0.5 W")
    d["system"]["links"][0]["tx_power"] = "1 W"
    # the phone alone spends 5 W x 48 ms = 0.24 J; offloading costs more than 1 s of radio
    d["problem"] = {"objective": "latency", "constraints": {"energy_budget": {"phone": "0.1 J"}, "max_devices": 1}}
    res = dnnpart.solve(dnnpart.from_dict(d))
    assert res.status is Status.INFEASIBLE and res.conflict is not None
    names = [c["name"] for c in res.conflict["constraints"]]
    assert "energy_budget[phone]" in names
    relax = {r["name"]: r for r in res.conflict["relaxations"]}
    value = relax["energy_budget[phone]"]["value"]
    assert value == pytest.approx(0.24, rel=1e-9)
    for budget, status in ((value * (1 + 1e-9), Status.OPTIMAL), (value * (1 - 1e-6), Status.INFEASIBLE)):
        d["problem"]["constraints"]["energy_budget"] = {"phone": budget}
        assert dnnpart.solve(dnnpart.from_dict(d), explain=False).status is status
