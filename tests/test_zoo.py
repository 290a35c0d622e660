"""The instance zoo: regenerable, versioned, checked against published totals, and solvable.

Solving: the ``branchy`` instances (9 layers) are solved with the default solver in the fast
suite and checked against exhaustive enumeration; every other instance is solved in the slow
suite (``-m slow``), where the exact engines (min-cut, MILP, CP-SAT) take over.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from formulation.evaluator import evaluate
from formulation.loader import load_instance
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Status
from toolchain.importers.common import totals
from toolchain.models import MODELS
from toolchain.zoo import GENERATOR_VERSION, HEADER, INSTANCES, SCENARIOS, ZOO_DIR, instance_files, instance_name

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FILES = instance_files()
FAST = [f for f in FILES if f.name.startswith("branchy--")]
SLOW = [f for f in FILES if f not in FAST]


@cache
def _model(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load((ZOO_DIR / "models" / f"{name}.yaml").read_text(), Loader=_Loader)
    return data


def test_zoo_holds_every_instance_of_the_generator_and_the_required_models() -> None:
    assert [f.stem for f in FILES] == sorted(instance_name(m, s, v) for m, s, v, _ in INSTANCES)
    required = {"alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2", "googlenet", "tiny_yolov2", "nin",
                "bert_base", "gpt2", "vit_b16", "llama7b_prefill"}
    assert required <= {m for m, _, _, _ in INSTANCES}
    settings = {s for _, s, _, _ in INSTANCES}
    assert {"phone-cloud-lte", "rpi4-nuc-v100", "rpi3b-cluster-wifi", "llm-edge"} <= settings


def test_every_zoo_file_names_the_generator_version() -> None:
    files = FILES + sorted((ZOO_DIR / "models").glob("*.yaml")) + sorted((ZOO_DIR / "systems").glob("*.yaml"))
    for f in files:
        assert f.read_text().splitlines()[0] == f"# {HEADER}", f
    for f in FILES:
        assert f"Zoo generator version {GENERATOR_VERSION}." in yaml.safe_load(f.read_text())["description"]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_zoo_instance_validates(path: Path) -> None:
    inst = load_instance(path)
    model, scenario, _ = path.stem.split("--")
    assert inst.n == len(_model(model)["layers"])
    assert inst.k == len(yaml.safe_load((ZOO_DIR / "systems" / f"{scenario}.yaml").read_text())["devices"])
    assert scenario in SCENARIOS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_model_matches_published_totals(name: str) -> None:
    ref = MODELS[name].reference
    t = totals(_model(name))
    assert t["mac_conv_linear"] / 1e9 == pytest.approx(ref.gmac, rel=ref.rel_tol)
    assert t["params"] / 1e6 == pytest.approx(ref.params, rel=ref.rel_tol)


def test_published_acceptance_figures() -> None:
    # The figures, checked on the committed files: GMAC = FLOP/2 of conv/linear layers.
    for name, gmac, params_m in [("vgg16", 15.47, 138.36), ("alexnet", 0.714, 61.10), ("resnet50", 4.1, 25.6)]:
        t = totals(_model(name))
        assert t["mac_conv_linear"] / 1e9 == pytest.approx(gmac, rel=0.01)
        assert t["params"] / 1e6 == pytest.approx(params_m, rel=0.01)


@pytest.mark.parametrize("name", sorted(n for n, m in MODELS.items() if m.kind == "torch"))
def test_conv_and_pool_layers_carry_their_geometry(name: str) -> None:
    for lay in _model(name)["layers"]:
        if lay["op"].startswith(("conv", "max_pool", "avg_pool")):
            attrs = lay["attrs"]
            assert {"kernel", "stride", "padding", "shape_in", "shape_out"} <= set(attrs), (name, lay["id"])
            nd = len(attrs["kernel"])
            assert len(attrs["stride"]) == len(attrs["padding"]) == nd


def _check_solution(inst: Any, res: Any) -> None:
    assert res.status in (Status.OPTIMAL, Status.FEASIBLE), res.message
    ev = evaluate(inst, res.placement, res.schedule or None)
    assert ev.feasible
    assert math.isfinite(res.objective) and res.objective == pytest.approx(ev.objective, rel=1e-9)


@pytest.mark.parametrize("path", FAST, ids=[f.stem for f in FAST])
def test_small_zoo_instance_solves_with_the_default_solver(path: Path) -> None:
    inst = load_instance(path)
    res = solve(inst)
    _check_solution(inst, res)
    assert res.status == Status.OPTIMAL
    assert res.objective == pytest.approx(solve(inst, "brute").objective, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("path", SLOW, ids=[f.stem for f in SLOW])
def test_large_zoo_instance_solves_with_the_default_solver(path: Path) -> None:
    inst = load_instance(path)
    _check_solution(inst, solve(inst, options=SolverOptions(time_limit_s=120)))


@pytest.mark.slow
@pytest.mark.torch
def test_zoo_regenerates_identically(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from toolchain.zoo import generate

    written = generate(tmp_path)
    assert len(written) == len(FILES) + len(list((ZOO_DIR / "models").glob("*.yaml"))) + len(
        list((ZOO_DIR / "systems").glob("*.yaml")))
    for new in written:
        old = ZOO_DIR / new.relative_to(tmp_path)
        assert new.read_text() == old.read_text(), f"{old} differs from a fresh generation"
