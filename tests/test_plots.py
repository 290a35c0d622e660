"""Every plot type renders to a non-trivial PNG (size, several colours, the device colours) with the right content."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from formulation.evaluator import evaluate
from formulation.loader import load_instance
from toolchain.plots import (
    CUT_COLOUR,
    PALETTE,
    pareto_mask,
    plot_gantt,
    plot_pareto,
    plot_partition,
    plot_performance_profile,
    plot_sweep,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"

#: stem on the camera, the branches on edge and cloud, the rest on the edge.
MIXED = {"stem": "camera", "left": "edge", "right": "cloud", "merge": "edge", "head": "edge"}


def colours(path: Path) -> set[tuple[int, int, int]]:
    img = matplotlib.image.imread(path)
    assert img.shape[0] >= 250 and img.shape[1] >= 400, img.shape
    px = (img[..., :3] * 255).round().astype(int).reshape(-1, 3)
    return {tuple(p) for p in np.unique(px, axis=0)}


def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def assert_non_trivial(path: Path, must_have: list[str]) -> None:
    assert path.stat().st_size > 10_000
    found = colours(path)
    assert len(found) >= 20  # text, axes, antialiasing and several fills
    for c in must_have:
        assert rgb(c) in found, f"{c} missing from {path.name}"


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    return load_instance(EXAMPLES / "tiny-dag-three-tier.yaml")


def test_partition(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fig = plot_partition(tiny, MIXED, path=tmp_path / "p.png")
    # cut edges: stem's 800 kB output to edge and (separately) to cloud, right's 200 kB to edge,
    # head's 4 kB output back to the camera (the sink); the frame stays on the camera
    cut_labels = sorted(t.get_text() for t in fig.axes[0].texts if t.get_color() == CUT_COLOUR)
    assert cut_labels == ["200 kB", "4 kB", "800 kB", "800 kB"]
    assert_non_trivial(tmp_path / "p.png", [PALETTE[0], PALETTE[1], PALETTE[2], CUT_COLOUR])


def test_partition_of_alexnet_cut_after_pool5(tmp_path: Path) -> None:
    inst = load_instance(EXAMPLES / "alexnet-lte-latency.yaml")
    placement = {
        v: "phone" if i <= inst.graph.layer_index["pool5"] else "cloud" for i, v in enumerate(inst.graph.layer_ids)
    }
    fig = plot_partition(inst, placement, path=tmp_path / "a.png")
    # pool5's output is 36864 B; fc8's 4000 B return to the phone
    assert sorted(t.get_text() for t in fig.axes[0].texts if t.get_color() == CUT_COLOUR) == ["36.9 kB", "4 kB"]
    assert_non_trivial(tmp_path / "a.png", [PALETTE[0], PALETTE[1]])


def test_gantt_rows_and_bars(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ev = evaluate(tiny, MIXED)
    fig = plot_gantt(tiny, ev, path=tmp_path / "g.png")
    ax = fig.axes[0]
    rows = {t.get_text() for t in ax.get_yticklabels()}
    assert rows == {"camera", "edge", "cloud"} | {f"{t.src}->{t.dst}" for t in ev.transfers}
    bars = ax.patches
    assert len(bars) == tiny.n + len(ev.transfers)
    # each layer's bar starts at its scheduled start and lasts t(v, d)
    starts = sorted(round(b.get_x(), 12) for b in bars if b.get_hatch() is None)
    assert starts == sorted(round(ev.schedule[v], 12) for v in tiny.graph.layer_ids)
    # left on the edge: 1.2 GFLOP at 200 GFLOP/s = 6 ms
    left = [b for b in bars if b.get_hatch() is None and abs(b.get_x() - ev.schedule["left"]) < 1e-12]
    assert any(b.get_width() == pytest.approx(0.006) for b in left)
    assert_non_trivial(tmp_path / "g.png", [PALETTE[0], PALETTE[1], PALETTE[2]])


def test_sweep_plot_marks_where_the_cut_moves(tmp_path: Path) -> None:
    from tests.test_sweep import offload_choice
    from toolchain.sweep import run_sweep

    sw = run_sweep(offload_choice(), "links.m-c.bandwidth", [1.0, 4.0, 16.0, 64.0], log=True, solver="brute")
    fig = plot_sweep(sw, path=tmp_path / "s.png")
    top = fig.axes[0]
    assert {t.get_text() for t in top.texts} == {"all on m", "all on c"}
    # one dotted line per panel where the cut changes, half-way (geometric) between 4 and 16
    dotted = [ln for ln in top.get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_xdata()[0] == pytest.approx(8.0)
    assert top.get_lines()[0].get_ydata().tolist() == pytest.approx([1.0, 1.0, 0.5015, 0.126125])
    assert_non_trivial(tmp_path / "s.png", [PALETTE[0], PALETTE[1]])


def test_pareto(tmp_path: Path) -> None:
    pts = [{"latency_s": x, "energy_total_j": y} for x, y in [(1, 5), (2, 3), (3, 3.5), (4, 1), (2.5, 2.9)]]
    # (3, 3.5) is dominated by (2, 3) and by (2.5, 2.9); the rest trade latency for energy
    assert pareto_mask(pts, "latency_s", "energy_total_j") == [True, True, False, True, True]
    fig = plot_pareto(pts, labels=list("abcde"), path=tmp_path / "f.png")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["a", "b", "d", "e"]
    assert_non_trivial(tmp_path / "f.png", [PALETTE[0], PALETTE[1]])
    with pytest.raises(ValueError):
        plot_pareto([])


def test_performance_profile(tmp_path: Path) -> None:
    from solvers.compare import performance_profile
    from tests.test_compare import _row

    df = pd.DataFrame(
        [
            _row("A", "s1", "optimal", 10.0, 10.0, 1.0),
            _row("A", "s2", "optimal", 10.0, 10.0, 4.0),
            _row("B", "s1", "optimal", 5.0, 5.0, 2.0),
            _row("B", "s2", "error", None, -math.inf, 0.0),
        ]
    )
    fig = plot_performance_profile(performance_profile(df), path=tmp_path / "pp.png")
    lines = {ln.get_label(): ln.get_ydata() for ln in fig.axes[0].get_lines()}
    # s1 is best on both (rho = 1 from tau = 1); s2 solves A within 4x and fails B (rho ends at 0.5)
    assert lines["s1"].tolist() == [1.0, 1.0, 1.0] and lines["s2"].tolist() == [0.0, 0.5, 0.5]
    assert_non_trivial(tmp_path / "pp.png", [PALETTE[0], PALETTE[1]])


def test_solve_plot_option_writes_partition_and_gantt(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolchain.cli import app

    res = CliRunner().invoke(
        app, ["solve", str(EXAMPLES / "tiny-dag-three-tier.yaml"), "-s", "brute", "--plot", str(tmp_path / "s.png")]
    )
    assert res.exit_code == 0, res.output
    # the instance runs in parallel mode, so the Gantt chart comes too
    assert_non_trivial(tmp_path / "s.png", [PALETTE[1]])  # the optimum runs everything on the edge
    assert_non_trivial(tmp_path / "s-gantt.png", [PALETTE[1]])


# ----------------------------------------------------------------------------------------------------
# Figures that scale (toolchain/plots_partition.py)
# ----------------------------------------------------------------------------------------------------


def _edges(fig):  # type: ignore[no-untyped-def]
    """gid -> annotation of every drawn edge."""
    return {t.get_gid(): t for t in fig.axes[0].texts if (t.get_gid() or "").startswith("edge:")}


def _labels(fig) -> set[str]:  # type: ignore[no-untyped-def]
    return {t.get_gid()[len("label:") :] for t in fig.axes[0].texts if (t.get_gid() or "").startswith("label:")}


def _within_cap(path: Path) -> tuple[int, int]:
    from toolchain.plots_partition import MAX_HEIGHT_IN, MAX_WIDTH_IN

    h, w = matplotlib.image.imread(path).shape[:2]
    assert w <= MAX_WIDTH_IN * 120 and h <= MAX_HEIGHT_IN * 120, (w, h)
    return w, h


def _cut_bytes(fig) -> float:  # type: ignore[no-untyped-def]
    from formulation.units import parse_quantity

    return sum(parse_quantity(t.get_text(), "bytes") for t in fig.axes[0].texts if t.get_color() == CUT_COLOUR)


def test_layer_view_draws_every_edge_and_skip_edges_as_arcs(tmp_path: Path) -> None:
    from formulation import generators
    from toolchain.plots import _layout

    sys3 = generators.system(3)
    inst = generators.instance(generators.resnet_like(30), sys3)
    placement = {v: sys3.device_ids[(k // 7) % 3] for k, v in enumerate(inst.graph.layer_ids)}
    fig = plot_partition(inst, placement, path=tmp_path / "r.png")
    g = inst.graph
    expected = {f"edge:{g.tensor_ids[t]}->{lay.id}" for i, lay in enumerate(g.layers) for t in g.layer_inputs[i]}
    expected |= {f"edge:{g.layer_ids[o]}->__sink__" for o in g.outputs}
    edges = _edges(fig)
    assert set(edges) == expected
    depth = {k: x for k, (x, _) in _layout(inst).items()}
    pairs = {gid: gid[len("edge:") :].split("->") for gid in expected if "__sink__" not in gid}
    skips = {gid for gid, (u, v) in pairs.items() if depth[v] - depth[u] > 1}
    assert len(skips) >= 3  # the residual connections of resnet_like
    for gid, ann in edges.items():
        rad = ann.arrow_patch.get_connectionstyle().rad
        assert (rad != 0) == (gid in skips), gid
    assert _labels(fig) == set(g.layer_ids) | set(g.input_ids) | {"__sink__"}
    # every tensor crossing devices is labelled once per receiving device: the bytes add up to the links'
    ev = evaluate(inst, placement)
    assert _cut_bytes(fig) == pytest.approx(sum(ev.link_bytes.values()), rel=2e-3)
    _within_cap(tmp_path / "r.png")


def test_resnet50_is_drawn_as_blocks_within_the_size_cap(tmp_path: Path) -> None:
    inst = load_instance(Path(__file__).resolve().parents[1] / "instances/zoo/resnet50--phone-cloud-lte--latency.yaml")
    ids = inst.graph.layer_ids
    cut = ids.index("layer3.2.conv1")
    placement = {v: "phone" if k < cut else "v100" for k, v in enumerate(ids)}
    fig = plot_partition(inst, placement, path=tmp_path / "r50.png")
    w, h = _within_cap(tmp_path / "r50.png")
    assert w >= 600 and h >= 300 and w / h < 4  # no longer a 17,256 x 360 strip
    assert set(_edges(fig)) == {"edge:x->block:0", "edge:block:0->block:1", "edge:block:1->__sink__"}
    assert _labels(fig) == {"block:0", "block:1", "inputs", "__sink__"}
    texts = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}
    assert texts["label:block:0"] == f"conv1\n… {ids[cut - 1]}\n({cut} layers)"
    ev = evaluate(inst, placement)
    assert _cut_bytes(fig) == pytest.approx(sum(ev.link_bytes.values()), rel=2e-3)
    title = fig.axes[0].get_title(loc="left")
    assert "bottleneck link phone->v100" in title and "latency " in title
    # the whole network layer by layer is still available on request, within the cap
    plot_partition(inst, placement, ev=ev, view="layers", path=tmp_path / "r50-layers.png")
    _within_cap(tmp_path / "r50-layers.png")


def test_ten_thousand_layers_stay_readable(tmp_path: Path) -> None:
    from formulation import generators
    from toolchain.plots_partition import MAX_BLOCKS, blocks

    sys3 = generators.system(3)
    inst = generators.instance(generators.resnet_like(10_000), sys3)
    ids = inst.graph.layer_ids
    runs = {v: sys3.device_ids[(k // 1500) % 3] for k, v in enumerate(ids)}
    fig = plot_partition(inst, runs, path=tmp_path / "runs.png")
    _within_cap(tmp_path / "runs.png")
    n_blocks = len(blocks(inst, runs))
    assert n_blocks == -(-inst.n // 1500)
    assert _labels(fig) == {f"block:{k}" for k in range(n_blocks)} | {"inputs", "__sink__"}
    assert len([g for g in _edges(fig) if g.startswith("edge:block")]) >= n_blocks - 1
    assert _cut_bytes(fig) == pytest.approx(sum(evaluate(inst, runs).link_bytes.values()), rel=2e-3)
    rng = np.random.default_rng(1)
    scattered = {v: sys3.device_ids[int(rng.integers(3))] for v in ids}
    bl = blocks(inst, scattered)
    assert len(bl) == MAX_BLOCKS and sum(sum(b.devices.values()) for b in bl) == inst.n
    fig = plot_partition(inst, scattered, path=tmp_path / "scattered.png")
    _within_cap(tmp_path / "scattered.png")
    assert _labels(fig) == {f"block:{k}" for k in range(MAX_BLOCKS)} | {"inputs", "__sink__"}


def test_bottleneck_is_the_period_and_named_on_the_figure(tmp_path: Path) -> None:
    from solvers.registry import solve
    from toolchain.plots_partition import bottleneck

    inst = load_instance(EXAMPLES / "tiny-dag-three-tier-throughput.yaml")
    res = solve(inst, "brute")
    assert res.metrics is not None
    # the period is 48 ms: 600 kB over the 100 Mbit/s camera -> edge link
    assert bottleneck(res.metrics) == ("link camera->edge", pytest.approx(0.048))
    assert res.metrics.period_s == pytest.approx(0.048)
    fig = plot_partition(inst, res.placement, ev=res.metrics)
    assert "bottleneck link camera->edge (busy 48 ms)" in fig.axes[0].get_title(loc="left")


def test_gantt_shows_only_used_devices_and_labels_that_fit(tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from solvers.registry import solve

    res = solve(tiny, "brute")  # everything on the edge
    assert res.metrics is not None and set(res.placement.values()) == {"edge"}
    fig = plot_gantt(tiny, res.metrics, path=tmp_path / "g.png")
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert rows[0] == "edge" and sorted(rows[1:]) == ["camera->edge", "edge->camera"]  # no camera, no cloud
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    bars = [b.get_window_extent(renderer) for b in ax.patches]
    labels = [t for t in ax.texts if (t.get_gid() or "").startswith("label:")]
    assert {t.get_text() for t in labels} >= {"left", "right", "frame"}
    for t in labels:  # each label lies inside one bar
        box = t.get_window_extent(renderer)
        assert any(b.x0 <= box.x0 and box.x1 <= b.x1 for b in bars), t.get_text()
    assert "merge" not in {t.get_text() for t in labels}  # 1 MFLOP: a sliver, no room for a label
    assert "bottleneck link camera->edge" in ax.get_title(loc="left")


def test_plot_pareto_takes_the_pareto_json(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from toolchain.cli import app

    out = tmp_path / "front.json"
    res = CliRunner().invoke(
        app,
        [
            "pareto",
            str(EXAMPLES / "alexnet-lte-phone-energy.yaml"),
            "--objectives",
            "latency,energy",
            "--points",
            "3",
            "--out",
            str(out),
            "--plot",
            str(tmp_path / "front.png"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert_non_trivial(tmp_path / "front.png", [PALETTE[0], PALETTE[1]])
    front = json.loads(out.read_text())
    fig = plot_pareto(front)  # the whole JSON: keys from its objectives
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("latency [s]", "energy [J]")
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    expected = [(p["metrics"]["latency_s"], p["metrics"]["energy_total_j"]) for p in front["points"]]
    assert np.allclose(sorted(map(tuple, offsets.tolist())), sorted(expected), rtol=1e-12)
    assert plot_pareto(front["points"], "latency_s", "energy_total_j").axes[0].get_xlabel() == "latency [s]"
    # a front of energy and cost takes those keys; a point with a null value is left out
    other = {
        "objectives": ["energy", "cost"],
        "points": [
            {"metrics": {"energy_total_j": 1.0, "cost_usd": 2.0}},
            {"metrics": {"energy_total_j": 2.0, "cost_usd": 1.0}},
            {"metrics": {"energy_total_j": None, "cost_usd": 0.5}},
        ],
    }
    ax = plot_pareto(other).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("energy [J]", "cost [USD]")
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2


def test_solve_names_the_bottleneck() -> None:
    from typer.testing import CliRunner

    from toolchain.cli import app

    res = CliRunner().invoke(app, ["solve", str(EXAMPLES / "tiny-dag-three-tier-throughput.yaml"), "-s", "brute"])
    assert res.exit_code == 0, res.output
    # the period, 48 ms, is 600 kB over the 100 Mbit/s camera -> edge link
    assert "bottleneck: link camera->edge, busy 48 ms per inference (sets the period)" in res.output


def test_gantt_of_two_thousand_layers_stays_within_the_cap(tmp_path: Path) -> None:
    from formulation import generators
    from formulation.model import Problem

    sys3 = generators.system(3)
    inst = generators.instance(generators.resnet_like(2000), sys3, Problem(execution="parallel"))
    placement = {v: sys3.device_ids[(k // 150) % 2] for k, v in enumerate(inst.graph.layer_ids)}  # d2 unused
    ev = evaluate(inst, placement)
    fig = plot_gantt(inst, ev, path=tmp_path / "g.png")
    _within_cap(tmp_path / "g.png")
    rows = {t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert rows == {"d0", "d1"} | {f"{t.src}->{t.dst}" for t in ev.transfers}
    # one collection per lane instead of 2,000 patches; every layer and transfer is drawn
    drawn = sum(len(c.get_paths()) for c in fig.axes[0].collections)
    assert drawn == inst.n + len(ev.transfers)
