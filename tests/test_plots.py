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
