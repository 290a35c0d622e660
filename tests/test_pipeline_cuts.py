"""Stage order of interchangeable devices under ``constraints.pipeline`` (formulation/stage_order.py):
the renaming meets every row family, by hand and from the definition; the MILP and CP-SAT with the
rows keep brute's optimum on random tiny instances, warm-started from a renamed optimum too."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate, pipeline_order
from formulation.milp.build import build_milp
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from formulation.stage_order import downset_rows, stage_canonical_placement, stage_classes
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Status
from tests.feature_instances import feature_instance, with_identical_devices
from tests.test_pipeline_dp import msr_like

SEEDS = st.integers(min_value=0, max_value=10**9)


def chain_on_identical(n: int = 3, k: int = 3) -> Instance:
    """``in -> L0 -> ... -> L{n-1}`` on a CPU source and ``k`` identical accelerators (MSR model)."""
    layers = [Layer(f"L{i}", "op", (f"L{i - 1}",) if i else ("in",), 1e9, 1e5) for i in range(n)]
    g = Graph("chain", [ModelInput("in", 1e3)], layers)
    devs = [Device("cpu", 1e9)] + [Device(f"a{i}", 1e10, comm_overlap=False, send_once=True) for i in range(k)]
    links = [Link(a.id, b.id, 1e6) for a, b in itertools.permutations(devs, 2)]
    c = Constraints(pipeline=True)
    return Instance("chain", g, System(devs, links, "cpu", None), Problem(Objective("throughput"), constraints=c))


def test_renaming_by_hand() -> None:
    """L0 on a3, L1 on a1, L2 on a2 (pipeline order a3, a1, a2): renamed to a1, a2, a3, the same
    period; the original breaks the down-set row of edge L0 -> L1 at j = 1 (L1 on the first device,
    L0 on a later one: 1 + 1 > 1) and the renamed placement meets every row."""
    inst = chain_on_identical()
    assert stage_classes(inst) == [[1, 2, 3]]
    P = np.array([3, 1, 2])
    Q = stage_canonical_placement(inst, P)
    assert Q.tolist() == [1, 2, 3]
    assert evaluate(inst, Q).period_s == pytest.approx(evaluate(inst, P).period_s, rel=1e-12)
    rows = list(downset_rows(inst, [1, 2, 3]))
    assert len(rows) == 2 * 2  # two edges, j = 1, 2

    def worst(R: np.ndarray) -> int:
        return max(sum(int(R[w] == d) for w, d in pairs) for _u, _v, _j, pairs in rows)

    assert worst(P) == 2 and worst(Q) == 1
    # Without the pipeline constraint nothing is added or renamed.
    plain = inst.with_problem(Problem(Objective("throughput")))
    assert stage_classes(plain) == []
    assert stage_canonical_placement(plain, P).tolist() == P.tolist()


def test_milp_rows_by_hand() -> None:
    """The MILP gets 2 order rows, 2 x 3 'used' rows, 2 definitions and 4 down-set rows (3 devices,
    3 layers, 2 edges), and none without ``pipeline_cuts``."""
    inst = chain_on_identical()
    with_cuts = build_milp(inst, pipeline_cuts=True).model.stats()
    without = build_milp(inst).model.stats()
    assert with_cuts["rows"] - without["rows"] == 2 + 6 + 2 + 4
    assert with_cuts["columns"] - without["columns"] == 2


def _meets_rows(inst: Instance, Q: np.ndarray, classes: list[list[int]]) -> bool:
    """From the definition: some numbering ``σ`` of the devices that may hold a layer (a
    permutation) puts every edge forward, increases strictly along each class and puts the used
    devices of a class before its unused ones; and every down-set row holds."""
    devs = np.flatnonzero(inst.placement_mask.any(axis=0)).tolist()
    used = set(Q.tolist())
    for perm in itertools.permutations(range(len(devs))):
        sigma = dict(zip(devs, perm, strict=True))
        if any(sigma[int(Q[u])] > sigma[int(Q[v])] for u, v in inst.graph.edges):
            continue
        if any(
            sigma[a] >= sigma[b] or (b in used and a not in used) for cls in classes for a, b in itertools.pairwise(cls)
        ):
            continue
        break
    else:
        return False
    return all(sum(int(Q[w] == d) for w, d in pairs) <= 1 for cls in classes for *_, pairs in downset_rows(inst, cls))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_renaming_meets_every_row_family(data: st.DataObject) -> None:
    """Any pipeline placement of a random MSR-like DAG on up to 4 identical accelerators, renamed,
    keeps its value and meets the rows (so the rows remove no value)."""
    inst = data.draw(msr_like(max_layers=6, max_acc=4))
    P = np.array(data.draw(st.lists(st.integers(0, inst.k - 1), min_size=inst.n, max_size=inst.n)))
    classes = stage_classes(inst)
    Q = stage_canonical_placement(inst, P, classes)
    if pipeline_order(inst, P) is None:
        assert Q.tolist() == P.tolist()
        return
    a, b = evaluate(inst, P), evaluate(inst, Q)
    assert a.feasible == b.feasible
    assert b.objective == pytest.approx(a.objective, rel=1e-12)
    assert _meets_rows(inst, Q, classes)


def _brute(inst: Instance) -> tuple[float | None, np.ndarray | None]:
    res = solve(inst, "brute")
    assert res.status in (Status.OPTIMAL, Status.INFEASIBLE), res.message
    if res.status != Status.OPTIMAL:
        return None, None
    return res.objective, inst.placement_indices(res.placement)


def _scrambled(inst: Instance, P: np.ndarray) -> dict[str, str]:
    """``P`` with the devices of each class renamed in reverse (same value, usually not canonical)."""
    out = P.copy()
    for cls in stage_classes(inst):
        for a, b in zip(cls, reversed(cls), strict=True):
            out[np.equal(P, a)] = b
    return {inst.graph.layer_ids[v]: inst.system.device_ids[int(d)] for v, d in enumerate(out)}


#: Every exact engine that builds the pipeline rows (the MILP engines share ``build_milp``).
ENGINES = ("highs", "scip", "cpsat")


def _agree(inst: Instance) -> None:
    """Each engine, with and without the stage-order rows, from no start and from a scrambled
    optimum, proves brute's optimum (or infeasibility)."""
    best, P = _brute(inst)
    for name, cuts in itertools.product(ENGINES, (False, True)):
        opts = [SolverOptions(time_limit_s=60, seed=0, raw={"pipeline_cuts": cuts})]
        if P is not None:
            opts.append(replace(opts[0], warm_start=_scrambled(inst, P)))
        for opt in opts:
            res = solve(inst, name, opt)
            if best is None:
                assert res.status == Status.INFEASIBLE, (name, cuts, res.message)
                continue
            assert res.status == Status.OPTIMAL and res.objective is not None, (name, cuts, res.message)
            tol = 2 * float(res.extra.get("scaling_error", 0.0)) + 1e-6 * abs(best) + 1e-9
            assert abs(res.objective - best) <= tol, (name, cuts, res.objective, best)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(msr_like(max_layers=5, max_acc=4).filter(lambda inst: bool(stage_classes(inst))))
def test_engines_with_stage_order_equal_brute_on_the_msr_model(inst: Instance) -> None:
    """Random MSR-like DAGs (up to 5 layers, 4 identical accelerators and a CPU, memory, colocation,
    ``max_devices``): brute's optimum, with and without a renamed optimum as the start."""
    _agree(inst)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=SEEDS, period=st.booleans())
def test_engines_with_stage_order_equal_brute_with_features(seed: int, period: bool) -> None:
    """Every objective and constraint kind of the random feature instances, the devices but the
    first interchangeable, under ``pipeline`` (instances without a class of two such devices that
    may hold layers are skipped by ``assume``)."""
    inst = with_identical_devices(feature_instance(seed, max_layers=5, max_devices=4), seed)
    p = inst.problem
    obj = Objective("throughput") if period else p.objective
    inst = inst.with_problem(Problem(obj, p.execution, p.energy_scope, replace(p.constraints, pipeline=True)))
    assume(bool(stage_classes(inst)))
    _agree(inst)
