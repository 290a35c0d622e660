"""Golden LP text of a 3-layer, 2-device instance per objective, and the two hand-over paths compared.

The instance: input ``x`` (200 kB) on ``m``; ``a`` reads ``x``; ``b`` reads ``a``; ``c`` reads
``a`` and ``b`` (so ``a``'s output has two consumers); ``c`` is the output, the sink is ``m``.
Devices ``m`` (1 GFLOP/s, 2 W / 0.5 W, trusted) and ``c`` (10 GFLOP/s, 1 USD per busy second,
8 MB of memory, 30 W / 5 W), one bidirectional link of 1 MB/s, 10 ms, tx 1 W, rx 0.5 W,
1e-9 USD/B. Set ``DNNPART_UPDATE_GOLDEN=1`` to rewrite the files after a deliberate change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from formulation.milp import build_milp
from formulation.milp.lpwriter import lp_text
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.brute import BruteForce
from solvers.milp.export import write_model
from solvers.milp.pyomo_backend import PyomoBackend
from solvers.milp.solver import HighsSolver
from solvers.result import Status

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DNNPART_UPDATE_GOLDEN") == "1"

PROBLEMS = {
    "latency_sequential": Problem(Objective("latency")),
    "latency_parallel": Problem(Objective("latency"), "parallel"),
    "throughput": Problem(Objective("throughput")),
    "energy": Problem(Objective("energy")),
    "energy_parallel": Problem(Objective("energy"), "parallel"),
    "cost": Problem(Objective("cost")),
    "weighted": Problem(Objective("weighted", MappingProxyType({"latency": 1.0, "energy": 0.1, "cost": 10.0}))),
}


def golden_instance(problem: Problem) -> Instance:
    layers = [
        Layer("a", "conv", ("x",), 1e9, output_bytes=1e5, param_bytes=2e6),
        Layer("b", "conv", ("a",), 2e9, output_bytes=5e4, param_bytes=4e6),
        Layer("c", "add", ("a", "b"), 1e8, output_bytes=1e3, param_bytes=3e6),
    ]
    g = Graph("golden", [ModelInput("x", 2e5)], layers)
    devs = [
        Device("m", 1e9, power_active_w=2.0, power_idle_w=0.5, trusted=True),
        Device("c", 1e10, memory_bytes=8e6, power_active_w=30.0, power_idle_w=5.0, price_usd_per_s=1.0),
    ]
    fig = {
        "bandwidth_bytes_per_s": 1e6,
        "latency_s": 0.01,
        "tx_power_w": 1.0,
        "rx_power_w": 0.5,
        "price_usd_per_byte": 1e-9,
    }
    s = System(devs, [Link("m", "c", **fig), Link("c", "m", **fig)], "m", "m")
    return Instance("golden", g, s, problem)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_lp_text_matches_golden(name: str) -> None:
    text = lp_text(build_milp(golden_instance(PROBLEMS[name])).model)
    path = GOLDEN / f"milp_{name}.lp"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing; run with DNNPART_UPDATE_GOLDEN=1 once"
    assert text == path.read_text()


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_golden_lp_solves_to_the_brute_optimum(name: str) -> None:
    import highspy

    inst = golden_instance(PROBLEMS[name])
    ref = BruteForce().solve(inst)
    assert ref.status == Status.OPTIMAL
    res = HighsSolver().solve(inst)
    assert res.objective == pytest.approx(ref.objective, rel=1e-9)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 1e-9)
    h.readModel(str(GOLDEN / f"milp_{name}.lp"))
    h.run()
    assert h.getModelStatus().name == "kOptimal"
    # the LP text is SI: its optimum is the instance's optimum (to the LP text's 12 digits)
    assert h.getInfo().objective_function_value == pytest.approx(ref.objective, rel=1e-9)


def _read(path: Path) -> dict[str, object]:
    """A model file as {column name: bounds/type/cost} and {row name: (bounds, {column: coef})}."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(str(path))
    lp = h.getLp()
    A = lp.a_matrix_
    cols = list(lp.col_names_)
    rows: dict[str, dict[str, float]] = {r: {} for r in lp.row_names_}
    start, index, value = list(A.start_), list(A.index_), list(A.value_)
    for j, name in enumerate(cols):
        for p in range(start[j], start[j + 1]):
            rows[lp.row_names_[index[p]]][name] = value[p]
    return {
        "cols": {n: (lp.col_lower_[j], lp.col_upper_[j], lp.col_cost_[j]) for j, n in enumerate(cols)},
        "rows": {n: (lp.row_lower_[i], lp.row_upper_[i], rows[n]) for i, n in enumerate(lp.row_names_)},
        "integer": {n for j, n in enumerate(cols) if lp.integrality_ and int(lp.integrality_[j]) == 1},
    }


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_pyomo_model_equals_the_direct_matrix(name: str, tmp_path: Path) -> None:
    """The Pyomo path hands the solver exactly the matrix the direct HiGHS path passes."""
    ctx = build_milp(golden_instance(PROBLEMS[name]))
    backend = PyomoBackend(ctx, "highs")
    path = tmp_path / "pyomo.lp"
    backend.write(str(path))
    got = _read(path)
    sc = backend.scaling
    c, _w = backend.objective_scale()
    A = sc.A.tocsr()
    for vname, (lb, ub, cost) in got["cols"].items():  # type: ignore[attr-defined]
        j = int(re.fullmatch(r"v\((\d+)\)", vname).group(1))  # type: ignore[union-attr]
        assert (lb, ub) == pytest.approx((sc.col_lb[j], sc.col_ub[j]), rel=1e-12), vname
        assert cost == pytest.approx(c[j], rel=1e-12, abs=1e-300)
    assert len(got["cols"]) == ctx.model.n_cols  # type: ignore[arg-type]
    assert {int(v[2:-1]) for v in got["integer"]} == set(np.flatnonzero(sc.integer).tolist())  # type: ignore[attr-defined]
    seen = set()
    for rname, (lb, ub, coefs) in got["rows"].items():  # type: ignore[attr-defined]
        m = re.fullmatch(r"c_([elu])_c\((\d+)\)_", rname)
        assert m, rname
        i = int(m.group(2))
        seen.add(i)
        row = A.getrow(i)
        want = {f"v({j})": v for j, v in zip(row.indices, row.data, strict=True)}
        assert set(coefs) == set(want), rname
        for k, v in want.items():
            assert coefs[k] == pytest.approx(v, rel=1e-12), (rname, k)
        if m.group(1) == "e":
            assert lb == ub == pytest.approx(sc.row_lb[i], rel=1e-12, abs=1e-300)
        elif m.group(1) == "l":
            assert lb == pytest.approx(sc.row_lb[i], rel=1e-12, abs=1e-300)
        else:
            assert ub == pytest.approx(sc.row_ub[i], rel=1e-12, abs=1e-300)
    assert seen == set(range(ctx.model.n_rows))


def test_mps_export_solves_to_the_same_optimum(tmp_path: Path) -> None:
    import highspy

    inst = golden_instance(PROBLEMS["weighted"])
    path = write_model(inst, tmp_path / "m.mps")
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(str(path))
    h.run()
    assert h.getInfo().objective_function_value == pytest.approx(HighsSolver().solve(inst).objective, rel=1e-9)
    assert "x(a,m)" in path.read_text()
    with pytest.raises(ValueError, match=r"use \.lp or \.mps"):
        write_model(inst, tmp_path / "m.txt")
