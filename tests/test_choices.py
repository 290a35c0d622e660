"""Model choices with accuracy (docs/instance-format.md §11): layer variants, exits, accuracy.

The worked examples of §11.6 are loaded from the page and checked against the hand-computed numbers
stated there; every exact engine that solves choices (``highs``, ``scip``, ``cpsat``) must agree with
``brute`` on 200 random tiny instances of the three kinds (variants only, a chosen exit, exits with
probabilities) in the default suite, and on 800 more marked slow.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import dnnpart
from formulation.choices import choices_from_json, configurations, count_configurations
from formulation.errors import InstanceError
from formulation.evaluator import evaluate
from formulation.loader import load_instance, load_instance_data
from solvers.options import UnsupportedProblem
from tests.choices_random import random_choice_data, random_choice_instance

ROOT = Path(__file__).resolve().parent.parent
EXACT = ("highs", "scip", "cpsat")


def _examples() -> list[dict[str, Any]]:
    text = (ROOT / "docs" / "instance-format.md").read_text(encoding="utf-8")
    body = text[text.index("### 11.6 Worked examples") :]
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", body, re.S)]


def _solve_all(inst: Any) -> list[Any]:
    return [dnnpart.solve(inst, solver=s) for s in ("brute", *EXACT)]


# -- worked examples -------------------------------------------------------------------------------


def test_worked_example_variants_minimum_accuracy() -> None:
    data = _examples()[0]
    inst = load_instance_data(data)
    ev = evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"variants": {"a": "int8"}})
    assert ev.latency_s == pytest.approx(0.1 + 0.51 + 0.08 + 0.011, rel=1e-12)
    assert ev.choices["accuracy"] == pytest.approx(0.79)
    assert ev.feasible
    base = evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"variants": {"b": "int8"}})
    assert base.latency_s == pytest.approx(0.761) and base.choices["accuracy"] == pytest.approx(0.78)
    too_low = evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"variants": {"a": "int8", "b": "int8"}})
    assert [v.kind for v in too_low.violations] == ["accuracy"]
    phone = evaluate(inst, {"a": "phone", "b": "phone"}, choices={"variants": {"b": "int8"}})
    assert phone.memory_bytes["phone"] == pytest.approx(4e6 + 4e6 + 1.5e6)
    assert [v.kind for v in phone.violations] == ["memory"]
    for res in _solve_all(inst):
        assert res.status.value == "optimal", res.message
        assert res.objective == pytest.approx(0.701, rel=1e-9)
        assert res.metrics.choices["variants"] == {"a": "int8", "b": "base"}
        assert res.placement == {"a": "phone", "b": "cloud"}
    acc = copy.deepcopy(data)
    acc["problem"] = {"objective": "accuracy", "constraints": {"deadline": "750 ms"}}
    for res in _solve_all(load_instance_data(acc)):
        assert res.objective == pytest.approx(1 - 0.79, rel=1e-9), res.solver
        assert res.metrics.choices["accuracy"] == pytest.approx(0.79)
        assert res.metrics.latency_s == pytest.approx(0.701)


@pytest.mark.parametrize(
    ("deadline", "exit_name", "objective", "latency"), [(0.6, "final", 0.25, 0.564), (0.5, "early", 0.40, 0.11)]
)
def test_worked_example_exit_chosen_under_a_deadline(
    deadline: float, exit_name: str, objective: float, latency: float
) -> None:
    data = _examples()[1]
    data["problem"]["constraints"]["deadline"] = deadline
    inst = load_instance_data(data)
    edge = evaluate(inst, dict.fromkeys(("m0", "b0", "m1", "m2"), "edge"), choices={"exit": "final"})
    assert edge.latency_s == pytest.approx(0.674)
    for res in _solve_all(inst):
        assert res.status.value == "optimal", res.message
        assert res.objective == pytest.approx(objective, rel=1e-9), res.solver
        assert res.metrics.choices["exit"] == exit_name
        assert res.metrics.latency_s == pytest.approx(latency, rel=1e-9)


def test_worked_example_exits_with_probabilities() -> None:
    data = _examples()[1]
    data["model"]["exits"][0]["probability"] = 0.6
    data["model"]["exits"][1]["probability"] = 0.4
    data["problem"] = {"objective": "latency"}
    inst = load_instance_data(data)
    phone = evaluate(inst, dict.fromkeys(("m0", "b0", "m1", "m2"), "phone"))
    assert phone.latency_s == pytest.approx(0.6 * 0.11 + 0.4 * 0.71)
    assert [p["latency_s"] for p in phone.choices["paths"]] == pytest.approx([0.11, 0.71])
    edge = evaluate(inst, dict.fromkeys(("m0", "b0", "m1", "m2"), "edge"))
    assert edge.latency_s == pytest.approx(0.6 * 0.615 + 0.4 * 0.675)
    for res in _solve_all(inst):
        assert res.status.value == "optimal", res.message
        assert res.objective == pytest.approx(0.6 * 0.11 + 0.4 * 0.574, rel=1e-9), res.solver
        assert res.placement == {"m0": "phone", "b0": "phone", "m1": "edge", "m2": "edge"}
        assert res.metrics.choices["accuracy"] == pytest.approx(0.66)


# -- exact engines against brute force --------------------------------------------------------------


def _agree(seed: int) -> None:
    inst = random_choice_instance(seed)
    ref = dnnpart.solve(inst, solver="brute")
    assert ref.status.value in ("optimal", "infeasible")
    for name in EXACT:
        res = dnnpart.solve(inst, solver=name)
        assert res.status == ref.status, f"seed {seed} {name}: {res.status} vs {ref.status}: {res.message}"
        if ref.objective is not None and math.isfinite(ref.objective):
            assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-12), f"seed {seed} {name}"
            assert res.bound <= ref.objective * (1 + 1e-6) + 1e-12


def test_every_exact_solver_of_choices_is_checked() -> None:
    from solvers.registry import names, solver_info

    declared = {n for n in names() if solver_info(n).exact and solver_info(n).capabilities.choices}
    assert declared == {"brute", *EXACT}


@pytest.mark.parametrize("seed", range(200))
def test_exact_engines_agree_with_brute(seed: int) -> None:
    _agree(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(200, 1000))
def test_exact_engines_agree_with_brute_more(seed: int) -> None:
    _agree(seed)


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_a_deadline_equal_to_the_optimum_still_admits_it(seed: int) -> None:
    # The deadline set to the slowest path of brute force's optimum: the engines' rounding (CP-SAT's
    # integer scaling, HiGHS's tolerances) must not cut the optimum off.
    data = random_choice_data(seed)
    ref = dnnpart.solve(load_instance_data(data), solver="brute")
    if ref.status.value != "optimal":
        data = random_choice_data(seed + 1)
        ref = dnnpart.solve(load_instance_data(data), solver="brute")
    assert ref.status.value == "optimal" and ref.metrics is not None
    data["problem"]["constraints"]["deadline"] = max(p["latency_s"] for p in ref.metrics.choices["paths"])
    inst = load_instance_data(data)
    best = dnnpart.solve(inst, solver="brute")
    assert best.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-15)
    for name in EXACT:
        res = dnnpart.solve(inst, solver=name)
        assert res.status.value == "optimal", f"{name}: {res.message}"
        assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-12), name


def test_random_instances_cover_every_kind() -> None:
    modes = {random_choice_instance(s).problem.choices.mode for s in range(6)}  # type: ignore[union-attr]
    assert modes == {"variants", "choose", "expected"}
    objectives = {str(random_choice_data(s)["problem"]["objective"]) for s in range(40)}
    assert {"latency", "energy", "cost", "accuracy"} <= objectives


# -- semantics ---------------------------------------------------------------------------------------


def test_configurations_are_counted_and_enumerated() -> None:
    inst = load_instance_data(_examples()[0])
    assert count_configurations(inst) == 2 * 3 == len(list(configurations(inst)))
    exits = load_instance_data(_examples()[1])
    assert count_configurations(exits) == 2 == len(list(configurations(exits)))


def test_default_configuration_is_the_base_and_the_last_exit() -> None:
    inst = load_instance_data(_examples()[1])
    ev = evaluate(inst, dict.fromkeys(("m0", "b0", "m1", "m2"), "phone"))
    assert ev.choices["exit"] == "final" and ev.latency_s == pytest.approx(0.7)
    assert ev.choices["deployed"] == ["m0", "m1", "m2"]
    assert ev.objective == pytest.approx(0.25)


def test_layers_that_do_not_run_cost_nothing() -> None:
    inst = load_instance_data(_examples()[1])
    a = evaluate(inst, {"m0": "phone", "b0": "phone", "m1": "phone", "m2": "phone"}, choices={"exit": "early"})
    b = evaluate(inst, {"m0": "phone", "b0": "phone", "m1": "edge", "m2": "edge"}, choices={"exit": "early"})
    assert a.latency_s == b.latency_s == pytest.approx(0.11)
    assert b.memory_bytes["edge"] == 0.0


def test_bad_configurations_are_named() -> None:
    inst = load_instance_data(_examples()[0])
    with pytest.raises(ValueError, match="'int2' is not a variant of 'a'"):
        evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"variants": {"a": "int2"}})
    with pytest.raises(ValueError, match="no exit to choose"):
        evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"exit": "early"})


def test_result_json_carries_the_configuration() -> None:
    inst = load_instance_data(_examples()[0])
    res = dnnpart.solve(inst, solver="brute")
    data = res.to_dict()
    given = choices_from_json(data)
    assert given == {"variants": {"a": "int8", "b": "base"}, "exit": None}
    again = evaluate(inst, res.placement, choices=given)
    assert again.objective == res.objective
    assert evaluate(inst, res.placement).objective == pytest.approx(0.801)  # the base configuration


def test_cli_evaluates_a_result_with_its_configuration(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from toolchain.cli import app

    src = tmp_path / "variants.yaml"
    src.write_text(yaml.safe_dump(_examples()[0]), encoding="utf-8")
    runner = CliRunner()
    solved = runner.invoke(app, ["solve", str(src), "--solver", "brute", "--json"], catch_exceptions=False)
    assert solved.exit_code == 0, solved.output
    result = tmp_path / "result.json"
    result.write_text(solved.stdout, encoding="utf-8")
    out = runner.invoke(app, ["evaluate", str(src), "--placement", str(result), "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    ev = json.loads(out.stdout)
    assert ev["metrics"]["latency_s"] == pytest.approx(0.701)  # int8 `a` on the phone: not the base's 0.801
    assert ev["metrics"]["choices"]["variants"] == {"a": "int8", "b": "base"}


def test_cli_shows_the_configuration(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolchain.cli import app

    src = tmp_path / "variants.yaml"
    src.write_text(yaml.safe_dump(_examples()[0]), encoding="utf-8")
    out = CliRunner().invoke(app, ["solve", str(src), "--solver", "highs"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "configuration (variants): variants a int8, b base  accuracy 0.79 (min 0.78)" in out.stdout
    data = _examples()[1]
    data["model"]["exits"][0]["probability"] = 0.6
    data["model"]["exits"][1]["probability"] = 0.4
    data["problem"] = {"objective": "latency"}
    src.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = CliRunner().invoke(app, ["solve", str(src), "--solver", "brute"], catch_exceptions=False)
    assert "configuration (expected): variants -  accuracy 0.66" in out.stdout
    assert "0.574 s" in out.stdout  # the second path's latency (§11.6)


def test_files_without_choices_are_unchanged() -> None:
    inst = load_instance(ROOT / "instances" / "examples" / "alexnet-lte-latency.yaml")
    assert inst.problem.choices is None
    assert "choices" not in evaluate(inst, [0] * inst.n).to_dict()


# -- refusals and load errors -------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["local-search", "scan", "heft"])
def test_other_solvers_refuse_choices(solver: str) -> None:
    inst = load_instance_data(_examples()[0])
    with pytest.raises(UnsupportedProblem, match="variants, exits or accuracy"):
        dnnpart.solve(inst, solver=solver)


def test_exact_engines_refuse_the_throughput_objective_with_choices() -> None:
    data = _examples()[0]
    data["problem"]["objective"] = "throughput"
    inst = load_instance_data(data)
    for name in EXACT:
        with pytest.raises(UnsupportedProblem, match="throughput objective with variants"):
            dnnpart.solve(inst, solver=name)
    res = dnnpart.solve(inst, solver="brute")
    # period of `a` int8 on the phone, `b` int4 in the cloud: the link's 0.5 s dominates
    assert res.status.value == "optimal" and res.objective == pytest.approx(0.5)


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(InstanceError) as info:
        load_instance_data(data)
    return str(info.value)


def test_load_errors_name_the_field() -> None:
    ex = _examples()[1]
    bad = copy.deepcopy(ex)
    bad["model"]["exits"][0]["probability"] = 0.5
    assert "model.exits" in _error(bad) and "a probability for every exit or for none" in _error(bad)
    bad = copy.deepcopy(ex)
    bad["model"]["exits"][0]["probability"] = 0.5
    bad["model"]["exits"][1]["probability"] = 0.4
    assert "probabilities that sum to 1" in _error(bad)
    bad = copy.deepcopy(ex)
    bad["model"]["exits"][0]["layer"] = "m1"
    assert "one exit per model output" in _error(bad)
    bad = copy.deepcopy(ex)
    bad["model"]["exits"][0]["accuracy"] = 1.5
    assert "model.exits[0].accuracy" in _error(bad) and "[0, 1]" in _error(bad)
    bad = copy.deepcopy(ex)
    bad["problem"]["execution"] = "parallel"
    assert "problem.execution" in _error(bad) and "sequential" in _error(bad)
    var = _examples()[0]
    bad = copy.deepcopy(var)
    bad["model"]["layers"][0]["variants"][0]["name"] = "base"
    assert "model.layers[0].variants[0].name" in _error(bad)
    bad = copy.deepcopy(var)
    bad["problem"]["constraints"]["min_accuracy"] = 2
    assert "problem.constraints.min_accuracy" in _error(bad)
    bad = copy.deepcopy(var)
    bad["model"]["layers"][1]["variants"][0]["flops"] = "-1 GFLOP"
    assert "model.layers[1].variants[0].flops" in _error(bad)


def test_variant_figures_default_to_the_layer() -> None:
    data = _examples()[0]
    data["model"]["layers"][0]["variants"] = [{"name": "pruned", "flops": "1 GFLOP"}]
    inst = load_instance_data(data)
    v = inst.problem.choices.variants["a"][0]  # type: ignore[union-attr]
    assert (v.flops, v.param_bytes, v.workspace_bytes, v.accuracy_delta) == (1e9, 4e6, 0.0, 0.0)
    assert np.isclose(
        evaluate(inst, {"a": "phone", "b": "cloud"}, choices={"variants": {"a": "pruned"}}).latency_s, 0.701
    )
