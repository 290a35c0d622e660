"""Coarsening: merges preserve the metrics the docs claim, exactly, for placements respecting them."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulation.evaluator import evaluate
from formulation.granularity import (
    GranularityError,
    apply_granularity,
    cut_points,
    merge_by_module,
    merge_cheap_successors,
    merge_groups,
    merge_to_cut_points,
)
from formulation.granularity.provenance import Transformed
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Problem, System
from tests.strategies import instances, problems

# --------------------------------------------------------------------------------------------------
# Random valid groups
# --------------------------------------------------------------------------------------------------


@st.composite
def dag_instances(draw: st.DrawFn) -> Instance:
    """Random tiny instances whose DAGs have chains and branches (merge opportunities)."""
    base = draw(instances(max_layers=2, max_devices=3))
    n = draw(st.integers(2, 7))
    layers = []
    for v in range(n):
        ins = ["in0"] if v == 0 else [f"L{v - 1}"] if draw(st.integers(0, 3)) else [f"L{draw(st.integers(0, v - 1))}"]
        if v and draw(st.integers(0, 3)) == 0:
            ins.append(draw(st.sampled_from(["in0", *(f"L{u}" for u in range(v))])))
        layers.append(
            Layer(
                f"L{v}", "op", tuple(dict.fromkeys(ins)),
                flops=draw(st.sampled_from([0.0, 1e8, 5e8, 3e9])),
                output_bytes=draw(st.sampled_from([1e3, 1e4, 1e5, 4e5])),
                param_bytes=draw(st.sampled_from([0.0, 1e5, 1e6])),
                workspace_bytes=draw(st.sampled_from([0.0, 1e4, 5e5])),
            )
        )
    g = Graph("g", [ModelInput("in0", draw(st.sampled_from([0.0, 1e4, 2e5])))], layers)
    sys = base.system
    if draw(st.booleans()):  # the optional device features: serial communication, one send per tensor
        devs = [replace(d, comm_overlap=draw(st.booleans()), send_once=draw(st.booleans())) for d in sys.devices]
        sys = System(devs, list(sys.links.values()), sys.source, sys.sink)
    return Instance("rand", g, sys, draw(problems(g, sys)))


@st.composite
def merge_groups_for(draw: st.DrawFn, inst: Instance) -> list[list[str]]:
    """Disjoint convex single-exit groups: an exit plus ancestors all of whose consumers are inside."""
    g = inst.graph
    free = set(range(g.n))
    groups = []
    for v in draw(st.permutations(range(g.n))):
        if v not in free or not draw(st.integers(0, 2)):
            continue
        grp = {v}
        for u in range(v - 1, -1, -1):
            if u in free and not g.is_output[u] and g.succs[u] and set(g.succs[u]) <= grp and draw(st.integers(0, 3)):
                grp.add(u)
        free -= grp
        if len(grp) > 1:
            groups.append([g.layer_ids[i] for i in sorted(grp)])
    return groups


def _expand_schedule(t: Transformed, sched: dict[str, float]) -> dict[str, float]:
    """Members of each merged node back to back in topological order from the node's start."""
    orig = t.original
    out = {}
    for node, o in t.provenance.origins.items():
        start = sched[node]
        for v in o.layers:
            out[v] = start
            start += float(orig.time[orig.graph.layer_index[v], orig.system.device_index[t.original_device[v]]])
    return out


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_merge_preserves_metrics(data: st.DataObject) -> None:
    inst = data.draw(dag_instances())
    if data.draw(st.booleans()):  # measured times on one device for some layers
        table = {"d1": {v: 0.01 * (i + 1) for i, v in enumerate(inst.graph.layer_ids) if i % 2 == 0}}
        inst = Instance(inst.name, inst.graph, inst.system, inst.problem, latency_table=table)
    groups = data.draw(merge_groups_for(inst))
    try:
        t = merge_groups(inst, groups)
    except GranularityError as exc:  # only when allowed/private leave no device for a group
        assert "no device may run" in str(exc)
        return
    coarse = t.instance
    Pc = np.array(data.draw(st.lists(st.integers(0, inst.k - 1), min_size=coarse.n, max_size=coarse.n)))
    pc = coarse.placement_dict(Pc)
    po = t.provenance.expand(pc)
    assert t.provenance.restrict(po) == pc  # an original placement respecting the merge maps back
    a, b = evaluate(inst, po), evaluate(coarse, pc)
    close = dict(rel=1e-9, abs=1e-12)
    assert b.latency_sequential_s == pytest.approx(a.latency_sequential_s, **close)
    assert b.period_s == pytest.approx(a.period_s, **close)
    assert b.cost_usd == pytest.approx(a.cost_usd, **close)
    for d in a.compute_time_s:
        assert b.compute_time_s[d] == pytest.approx(a.compute_time_s[d], **close)
    for ln in a.link_bytes:
        assert b.link_bytes[ln] == pytest.approx(a.link_bytes[ln], **close)
        assert b.link_busy_s[ln] == pytest.approx(a.link_busy_s[ln], **close)
    exact_memory = all(lay.attrs.get("memory_exact", True) for lay in coarse.graph.layers)
    for d in a.memory_bytes:
        assert b.memory_bytes[d] >= a.memory_bytes[d] * (1 - 1e-12)
        if exact_memory:
            assert b.memory_bytes[d] == pytest.approx(a.memory_bytes[d], **close)
    kinds_a = {v.kind for v in a.violations}
    kinds_b = {v.kind for v in b.violations}
    static = {"link", "contiguous", "max_devices"}
    assert kinds_a & static == kinds_b & static
    # An internal private tensor of a group becomes an `allowed` restriction to trusted devices.
    assert bool(kinds_a & {"allowed", "private"}) == bool(kinds_b & {"allowed", "private"})
    if exact_memory:
        assert ("memory" in kinds_a) == ("memory" in kinds_b)
    if inst.problem.execution == "sequential":
        for d in a.energy_j:
            if math.isfinite(a.energy_j[d]):
                assert b.energy_j[d] == pytest.approx(a.energy_j[d], **close)
        assert ("deadline" in kinds_a) == ("deadline" in kinds_b)
        assert ("energy_budget" in kinds_a) == ("energy_budget" in kinds_b)
        if exact_memory and math.isfinite(a.objective):
            assert b.objective == pytest.approx(a.objective, **close)
    # Parallel latency: the coarse list schedule, expanded member by member, is a valid schedule of
    # the original with the same makespan (so the coarse optimum bounds the original optimum).
    if math.isfinite(b.latency_parallel_s):
        object.__setattr__(t, "original_device", po)
        sched = _expand_schedule(t, b.schedule)
        c = evaluate(inst, po, sched)
        assert not [v for v in c.violations if v.kind == "schedule"]
        assert c.latency_parallel_s == pytest.approx(b.latency_parallel_s, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# A residual block, by hand
# --------------------------------------------------------------------------------------------------


def _resnet_like() -> Instance:
    """stem -> [conv1 -> bn1 -> relu1 -> conv2 -> bn2 -> add(stem) -> relu2] -> fc."""
    L = Layer
    layers = [
        L("stem", "conv2d", ("x",), 4e8, 4000.0, 1000.0, attrs={"module": "stem"}),
        L("b.conv1", "conv2d", ("stem",), 1e9, 4000.0, 2000.0, attrs={"module": "layer1.0.conv1"}),
        L("b.bn1", "batch_norm", ("b.conv1",), 1e4, 4000.0, 64.0, attrs={"module": "layer1.0.bn1"}),
        L("b.relu1", "relu", ("b.bn1",), 1e4, 4000.0, attrs={"module": "layer1.0.relu1"}),
        L("b.conv2", "conv2d", ("b.relu1",), 1e9, 4000.0, 2000.0, attrs={"module": "layer1.0.conv2"}),
        L("b.bn2", "BatchNorm2d", ("b.conv2",), 1e4, 4000.0, 64.0, attrs={"module": "layer1.0.bn2"}),
        L("b.add", "add", ("b.bn2", "stem"), 1e4, 4000.0, attrs={"module": "layer1.0.add"}),
        L("b.relu2", "ReLU", ("b.add",), 1e4, 4000.0, attrs={"module": "layer1.0.relu2"}),
        L("fc", "linear", ("b.relu2",), 2e6, 40.0, 8000.0, attrs={"module": "fc"}),
    ]
    g = Graph("res", [ModelInput("x", 1000.0)], layers)
    s = System([Device("p", 1e9), Device("c", 1e10)], [Link("p", "c", 1e5), Link("c", "p", 1e5)], "p", "p")
    return Instance("res", g, s, Problem())


def test_cheap_successors_form_conv_bn_relu_and_add_groups() -> None:
    t = merge_cheap_successors(_resnet_like())
    assert t.instance.graph.layer_ids == ("stem", "b.conv1+b.bn1+b.relu1", "b.conv2..b.relu2", "fc")
    node = t.instance.graph.layers[2]
    # conv2 + bn2 + add + relu2: 1e9 + 3 * 1e4 FLOP; it reads relu1's group and the skip from stem.
    assert node.flops == pytest.approx(1e9 + 3e4)
    assert node.inputs == ("b.conv1+b.bn1+b.relu1", "stem")
    assert node.param_bytes == 2064.0
    assert t.provenance.origins["b.conv2..b.relu2"].layers == ("b.conv2", "b.bn2", "b.add", "b.relu2")
    # Peak of the add: 4000 out + 4000 + 4000 in = 12000; the node's out 4000 + inputs 8000 leave 0 workspace.
    assert node.workspace_bytes == 0.0 and node.attrs["memory_exact"]


def test_block_granularity_by_cut_points_and_by_module() -> None:
    inst = _resnet_like()
    assert cut_points(inst) == ["stem", "b.add", "b.relu2", "fc"]
    t = merge_to_cut_points(inst)
    # A segment inside one module is named after it (attrs.module "layer1.0.*").
    assert t.instance.graph.layer_ids == ("stem", "layer1.0", "b.relu2", "fc")
    assert t.provenance.origins["layer1.0"].layers == tuple(inst.graph.layer_ids[1:7])
    tb = apply_granularity(inst, "block")  # cheap successors first, then cut points
    assert tb.instance.graph.layer_ids == ("stem", "layer1.0", "fc")
    assert tb.provenance.origins["layer1.0"].layers == tuple(inst.graph.layer_ids[1:8])
    tm = merge_by_module(inst, 2)
    assert tm.instance.graph.layer_ids == ("stem", "layer1.0", "fc")
    assert tm.provenance.origins["layer1.0"].layers == tuple(inst.graph.layer_ids[1:8])
    # Sequential latency on one device: the sum of FLOP / compute,
    # (4e8 stem + 2 * 1e9 convs + 5 * 1e4 cheap layers + 2e6 fc) / 1e9 = 2.40205 s.
    one = {"stem": "p", "layer1.0": "p", "fc": "p"}
    assert evaluate(tm.instance, one).latency_sequential_s == pytest.approx(2.40205, rel=1e-12)


def test_merge_rejects_two_exits_and_non_convex_groups() -> None:
    inst = _resnet_like()
    with pytest.raises(GranularityError, match="outputs used outside"):
        merge_groups(inst, [["stem", "b.conv1"]])  # stem feeds conv1 and the add
    with pytest.raises(GranularityError, match="re-enters"):
        merge_groups(inst, [["stem", "b.add"]])


def test_merge_to_chosen_cut_points_on_a_chain() -> None:
    layers = [Layer(f"l{i}", "op", (f"l{i - 1}",) if i else ("x",), 1e6 * (i + 1), 100.0 * (i + 1)) for i in range(6)]
    g = Graph("c", [ModelInput("x", 10.0)], layers)
    s = System([Device("a", 1e9)], [], "a", None)
    t = merge_to_cut_points(Instance("c", g, s), ["l1", "l4"])
    assert t.instance.graph.layer_ids == ("l0+l1", "l2+l3+l4", "l5")
    assert [lay.output_bytes for lay in t.instance.graph.layers] == [200.0, 500.0, 600.0]
    with pytest.raises(GranularityError, match="not cut points"):
        merge_to_cut_points(Instance("c", g, s), ["nope"])
