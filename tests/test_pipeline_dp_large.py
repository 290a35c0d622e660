"""``pipeline-dp`` on large graphs: the time limit holds in the set-up too, and the descendant-time
table of the search's skip rule (exact on small graphs, a longest-path lower bound on large ones)."""

from __future__ import annotations

import itertools
import time

import networkx as nx
import numpy as np
import pytest

from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers import pipeline_search
from solvers.options import SolverOptions
from solvers.pipeline_units import build_units
from solvers.registry import solve
from solvers.result import Status, Termination


def wide_dag(blocks: int, width: int, k: int = 4) -> Instance:
    """``blocks`` blocks of a fork (``width`` parallel layers) and a join, like per-head attention:
    ``blocks * (width + 1)`` layers of 0.1 s each on ``k`` identical devices of 1e10 FLOP/s."""
    layers, prev = [], "x"
    for b in range(blocks):
        heads = [f"b{b}.h{h}" for h in range(width)]
        layers += [Layer(h, "op", (prev,), flops=1e9, output_bytes=1e3) for h in heads]
        prev = f"b{b}.join"
        layers.append(Layer(prev, "op", tuple(heads), flops=1e9, output_bytes=1e3))
    g = Graph("wide", [ModelInput("x", 0.0)], layers)
    devs = [Device(f"d{i}", 1e10) for i in range(k)]
    links = [Link(a.id, b.id, 1e9) for a, b in itertools.permutations(devs, 2)]
    return Instance("wide", g, System(devs, links, "d0", None),
                    Problem(Objective("throughput"), constraints=Constraints(pipeline=True)))


def test_a_large_dag_stops_on_the_time_limit_with_a_valid_bound() -> None:
    """10,000 layers (625 blocks of 15 heads and a join), limit 2 s: the set-up used to be quadratic
    in the units and ran past any limit; now the solve returns soon after the limit, on the limit,
    with the DP's start bound 10,000 x 0.1 s / 4 devices = 250 s (every device equal, so the band
    capacity is one layer time per device)."""
    inst = wide_dag(625, 15)
    assert inst.n == 10_000
    t0 = time.perf_counter()
    res = solve(inst, "pipeline-dp", SolverOptions(time_limit_s=2.0))
    wall = time.perf_counter() - t0
    assert res.termination == Termination.TIME_LIMIT, res.message
    assert res.status in (Status.FEASIBLE, Status.TIME_LIMIT_NO_SOLUTION), res.message
    assert res.bound == pytest.approx(250.0, rel=1e-9)
    if res.objective is not None:
        assert res.objective >= res.bound
    # Generous for a loaded machine: before, the set-up alone took minutes at this size.
    assert wall < 20.0, wall


@pytest.mark.parametrize("seed", range(3))
def test_descendant_times_exact_and_longest_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact table equals the sum of the least times over each unit's descendants (networkx);
    the large-graph table is the heaviest path, never above it, and equal on a chain."""
    rng = np.random.default_rng(seed)
    n = 40
    layers = []
    for v in range(n):
        ins = tuple(f"L{u}" for u in sorted(set(rng.integers(max(0, v - 6), v, size=2).tolist()))) if v else ("x",)
        layers.append(Layer(f"L{v}", "op", ins, flops=float(rng.integers(1, 9)) * 1e9, output_bytes=1e3))
    g = Graph("r", [ModelInput("x", 0.0)], layers)
    devs = [Device("a", 1e10), Device("b", 2e10)]
    links = [Link("a", "b", 1e9), Link("b", "a", 1e9)]
    inst = Instance("r", g, System(devs, links, "a", None),
                    Problem(Objective("throughput"), constraints=Constraints(pipeline=True)))
    U = build_units(inst)
    m = np.array(pipeline_search.class_ratios(U)[0])
    order = (U.preds, U.succs)
    exact = pipeline_search._descendant_times(U, order, m, float("inf"))
    G = nx.DiGraph([(x, y) for x in range(U.count) for y in U.succs[x]])
    G.add_nodes_from(range(U.count))
    for x in range(U.count):
        assert exact[x] == pytest.approx(m[x] + sum(m[y] for y in nx.descendants(G, x)), rel=1e-12)
    monkeypatch.setattr(pipeline_search, "DESC_EXACT_MAX", 0)
    U.cache.clear()
    path = pipeline_search._descendant_times(U, order, m, float("inf"))
    assert all(p <= e * (1 + 1e-12) for p, e in zip(path, exact, strict=True))
    # The heaviest path from unit 0: every unit below 0 is reachable from it and weights are > 0,
    # so the longest path of its descendants' subgraph (edge weight: the head's time) starts at 0.
    H = nx.DiGraph(G.subgraph(nx.descendants(G, 0) | {0}))
    for _, y, data in H.edges(data=True):
        data["w"] = float(m[y])
    assert path[0] == pytest.approx(m[0] + nx.dag_longest_path_length(H, weight="w"), rel=1e-12)
    assert path[0] < exact[0]  # the DAG is not a chain: the bound is strictly weaker here
    chain = pipeline_search.chain_order(U)
    U.cache.clear()
    on_chain = pipeline_search._descendant_times(U, chain, m, float("inf"))
    assert on_chain[0] == pytest.approx(float(m.sum()), rel=1e-12)


def test_deadline_in_the_set_up_raises() -> None:
    """A deadline already past stops the set-up of the large-graph tables."""
    inst = wide_dag(40, 3)
    U = build_units(inst)
    with pytest.raises(pipeline_search.SearchTimeout):
        pipeline_search.search(U, 1e9, 4, deadline=time.perf_counter() - 1.0)
