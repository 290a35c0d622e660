"""The minimum-cut period bound (solvers/unit_load.py): hand-computed values, validity against brute."""

from __future__ import annotations

import pytest

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.bounds import cheap_lower_bound
from solvers.registry import solve
from solvers.result import Status
from solvers.unit_load import unit_load_bound
from tests.feature_instances import feature_instance


def chain(overlap: bool = False, colocate: tuple[tuple[str, ...], ...] = ()) -> Instance:
    """a -> b -> c -> d, 1 GFLOP each on two 1 GFLOP/s devices q1, q2 whose communication does not
    overlap compute (unless ``overlap``); every tensor 10 MB over 1 MB/s links: 10 s."""
    g = Graph("chain4", [ModelInput("x", 0.0)], [
        Layer("a", "fc", ("x",), 1e9, 1e7), Layer("b", "fc", ("a",), 1e9, 1e7),
        Layer("c", "fc", ("b",), 1e9, 1e7), Layer("d", "fc", ("c",), 1e9, 1e7),
    ])
    devs = [Device("q1", 1e9, comm_overlap=overlap), Device("q2", 1e9, comm_overlap=overlap)]
    s = System(devs, [Link("q1", "q2", 1e6), Link("q2", "q1", 1e6)], "q1", None)
    return Instance("chain4", g, s, Problem(objective=Objective("throughput"), execution="parallel",
                                            constraints=Constraints(colocate=colocate)))


def test_cut_bound_by_hand() -> None:
    """Unit b alone loads 1 + 10 (receive a) + 10 (send b) = 21 s; with a: 2 + 10 = 12; with a, b,
    c: 3 + 10 = 13; all four: 4 s, the least set, so every unit's value is 4 s and the bound is 4 s.
    The simpler bounds give 3 s (b plus the cheaper of a's compute and its receipt, 1 s, and of
    sending b and computing c, 1 s) and 4 / 2 = 2 s. Brute: all on one device, 4 s."""
    inst = chain()
    assert unit_load_bound(inst) == pytest.approx(4.0, rel=1e-9)
    assert unit_load_bound(inst) <= 4.0
    assert cheap_lower_bound(inst) == pytest.approx(4.0, rel=1e-9)
    assert solve(inst, "brute").objective == pytest.approx(4.0, rel=1e-12)


def test_cut_bound_is_skipped_where_communication_overlaps() -> None:
    """Overlapped devices: the device load is compute only; the bound returns its floor."""
    assert unit_load_bound(chain(overlap=True), floor=1.5) == 1.5
    assert cheap_lower_bound(chain(overlap=True)) == pytest.approx(2.0, rel=1e-12)  # 4 s of work / 2


def test_cut_bound_of_a_colocation_class() -> None:
    """Class {a, d}: any set holding both holds b and c too or pays a send and a receipt (>= 20 s):
    4 s. The unit bound never exceeds brute's optimum (4 s)."""
    inst = chain(colocate=(("a", "d"),))
    assert unit_load_bound(inst) == pytest.approx(4.0, rel=1e-9)
    assert solve(inst, "brute").objective == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("seed", range(80))
def test_cut_bound_is_below_brute(seed: int) -> None:
    """Random tiny instances with the model features (comm_overlap, send_once, colocate)."""
    inst = feature_instance(seed)
    if inst.problem.objective.terms().get("throughput", 0.0) == 0.0:
        inst = inst.with_problem(Problem(objective=Objective("throughput"), execution=inst.problem.execution,
                                         energy_scope=inst.problem.energy_scope,
                                         constraints=inst.problem.constraints))
    ref = solve(inst, "brute")
    if ref.status != Status.OPTIMAL:
        return
    assert ref.objective is not None
    assert unit_load_bound(inst) <= ref.objective * (1 + 1e-9) + 1e-12
