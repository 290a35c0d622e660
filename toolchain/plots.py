"""Figures: the partition on the DAG, the Gantt chart of a parallel schedule, sweeps, Pareto fronts,
and performance profiles.

Every function builds a :class:`matplotlib.figure.Figure` on the Agg canvas directly (no pyplot,
no global state, safe in workers and threads), returns it, and writes it to ``path`` when one is
given (the format follows the suffix: .png, .pdf, .svg). In a notebook the returned figure
displays itself (:class:`PlotFigure`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from formulation.units import format_quantity

if TYPE_CHECKING:
    from formulation.evaluator import Evaluation
    from formulation.model import Instance
    from solvers.compare import PerformanceProfile
    from toolchain.sweep import SweepResult

#: Colours of devices, in system order (colour-blind-safe qualitative palette, Okabe and Ito 2008).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CUT_COLOUR = "#D55E00"


def device_colours(inst: Instance) -> dict[str, str]:
    """Device id -> colour, stable across every figure of an instance."""
    return {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(inst.system.device_ids)}


class PlotFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter whatever the backend (no pyplot needed)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _figure(width: float, height: float) -> Figure:
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _bytes(n: float) -> str:
    return format_quantity(n, "bytes", digits=3)


# ----------------------------------------------------------------------------------------------------
# Partition on the DAG
# ----------------------------------------------------------------------------------------------------


def _layout(inst: Instance) -> dict[str, tuple[float, float]]:
    """Longest-path layering (the first step of Sugiyama, Tagawa and Toda, IEEE Trans. SMC 1981).

    x is a node's depth (model inputs at 0, a layer one more than its deepest input), y spreads the
    nodes of one depth evenly; no crossing reduction (the graphs drawn are small or nearly chains).
    """
    g = inst.graph
    depth: dict[str, int] = {t: 0 for t in g.input_ids}
    for i, lay in enumerate(g.layers):
        depth[lay.id] = 1 + max((depth[g.tensor_ids[t]] for t in g.layer_inputs[i]), default=0)
    by_level: dict[int, list[str]] = {}
    for node, d in depth.items():
        by_level.setdefault(d, []).append(node)
    pos = {}
    for d, nodes in by_level.items():
        for j, node in enumerate(nodes):
            pos[node] = (float(d), (len(nodes) - 1) / 2.0 - j)
    return pos


def plot_partition(
    inst: Instance,
    placement: Mapping[str, str],
    *,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """The DAG with layers coloured by device and every transfer (cut edge) marked with its bytes.

    Model inputs are grey squares (they live on the source); when the system has a sink, a sink
    node shows the outputs returned to it. Edges between devices are drawn dashed in red and
    labelled with the bytes sent; each tensor is labelled once per receiving device, as it is
    sent once (docs/instance-format.md §5.2).

    Parameters
    ----------
    inst : Instance
    placement : mapping
        ``{layer id: device id}`` (e.g. ``Result.placement``).
    title : str, optional
    path : str or Path, optional
        Where to write the figure.
    """
    g, s = inst.graph, inst.system
    pos = _layout(inst)
    colours = device_colours(inst)
    depth_max = max(x for x, _ in pos.values()) if pos else 0
    sink = s.sink
    if sink is not None:
        pos["__sink__"] = (depth_max + 1.0, 0.0)
    height = max(3.0, 1.0 + 0.9 * (max((abs(y) for _, y in pos.values()), default=0) * 2 + 1))
    fig = _figure(max(6.0, 1.0 + 0.85 * (depth_max + 2)), height)
    ax = fig.add_subplot()
    where = {**{t: s.source for t in g.input_ids}, **dict(placement)}
    labelled: set[tuple[str, str]] = set()
    edges = [(g.tensor_ids[t], lay.id) for i, lay in enumerate(g.layers) for t in g.layer_inputs[i]]
    if sink is not None:
        edges += [(g.layer_ids[o], "__sink__") for o in g.outputs]
    for u, v in edges:
        (x0, y0), (x1, y1) = pos[u], pos[v]
        dst = str(sink) if v == "__sink__" else where[v]
        cut = where[u] != dst
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": CUT_COLOUR if cut else "#777777",
                "lw": 2.2 if cut else 1.0,
                "ls": "--" if cut else "-",
                "shrinkA": 11,
                "shrinkB": 11,
            },
        )
        if cut and (u, dst) not in labelled:
            labelled.add((u, dst))
            nbytes = g.tensor_bytes[g.tensor_index[u]]
            ax.text(
                (x0 + x1) / 2,
                (y0 + y1) / 2 + 0.12,
                _bytes(nbytes),
                color=CUT_COLOUR,
                fontsize=8,
                ha="center",
                va="bottom",
                fontweight="bold",
            )
    for t in g.input_ids:
        x, y = pos[t]
        ax.scatter([x], [y], s=260, marker="s", color="#BBBBBB", edgecolor=colours[s.source], linewidth=2, zorder=3)
        ax.text(x, y - 0.28, t, ha="center", va="top", fontsize=8)
    for lay in g.layer_ids:
        x, y = pos[lay]
        ax.scatter([x], [y], s=300, color=colours[placement[lay]], edgecolor="black", linewidth=0.6, zorder=3)
        ax.text(x, y - 0.28, lay, ha="center", va="top", fontsize=8, rotation=30 if g.is_chain else 0)
    if sink is not None:
        x, y = pos["__sink__"]
        ax.scatter([x], [y], s=300, marker="D", color="white", edgecolor=colours[sink], linewidth=2, zorder=3)
        ax.text(x, y - 0.28, f"sink ({sink})", ha="center", va="top", fontsize=8)
    for d in s.device_ids:
        ax.scatter([], [], s=120, color=colours[d], edgecolor="black", label=d)
    ax.plot([], [], color=CUT_COLOUR, ls="--", lw=2.2, label="transfer (bytes)")
    ax.legend(loc="upper left", fontsize=8, frameon=False, ncol=min(4, s.k + 1), bbox_to_anchor=(0, 1.12))
    ax.set_axis_off()
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.6)
    ax.set_xlim(-0.6, max(x for x, _ in pos.values()) + 0.6)
    ax.set_title(title or f"{inst.name}: partition", fontsize=10, loc="left", pad=22)
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# Gantt chart
# ----------------------------------------------------------------------------------------------------


def _lanes(bars: list[tuple[float, float]]) -> list[int]:
    """Greedy lane per bar so that bars in one lane do not overlap (transfers run concurrently)."""
    ends: list[float] = []
    out = []
    for start, end in bars:
        for i, e in enumerate(ends):
            if start >= e - 1e-15:
                ends[i] = end
                out.append(i)
                break
        else:
            ends.append(end)
            out.append(len(ends) - 1)
    return out


@dataclass(frozen=True)
class _Bar:
    start: float
    occupied: float
    end: float | None  # arrival of a transfer (None for a layer)
    label: str
    colour: str

    @property
    def stop(self) -> float:
        return self.end if self.end is not None else self.start + self.occupied


def plot_gantt(inst: Instance, ev: Evaluation, *, title: str | None = None, path: str | Path | None = None) -> Figure:
    """Gantt chart of the parallel schedule of an evaluation: a row per device and per busy link direction.

    Layers are bars from their start (``ev.schedule``) for ``t(v, d)``; each transfer is a hatched
    bar over its occupied time ``bytes / bandwidth`` followed by a thin line for the link latency up
    to its arrival. Transfers on one link may overlap (docs/instance-format.md §5.4: they proceed concurrently),
    so a link row splits into lanes. The makespan (parallel latency) is a vertical line.

    Parameters
    ----------
    inst : Instance
    ev : Evaluation
        From :func:`formulation.evaluator.evaluate` (or ``Result.metrics``).
    title : str, optional
    path : str or Path, optional
    """
    g, s = inst.graph, inst.system
    colours = device_colours(inst)
    rows: list[tuple[str, list[_Bar]]] = []
    for d in s.device_ids:
        j = s.device_index[d]
        bars = [
            _Bar(ev.schedule[v], float(inst.time[i, j]), None, v, colours[d])
            for i, v in enumerate(g.layer_ids)
            if ev.placement[v] == d
        ]
        rows.append((d, sorted(bars, key=lambda b: b.start)))
    by_link: dict[str, list[_Bar]] = {}
    for t in ev.transfers:
        bar = _Bar(t.start_s, t.occupied_s, t.end_s, t.tensor, colours[t.src])
        by_link.setdefault(f"{t.src}->{t.dst}", []).append(bar)
    rows += [(name, sorted(bars, key=lambda b: b.start)) for name, bars in by_link.items()]
    lanes = [_lanes([(b.start, b.stop) for b in bars]) for _, bars in rows]
    heights = [max(ln, default=0) + 1 for ln in lanes]
    fig = _figure(9.0, max(2.5, 0.9 + 0.45 * sum(heights)))
    ax = fig.add_subplot()
    y, ticks = 0.0, []
    span = max([ev.latency_parallel_s] + [b.stop for _, bars in rows for b in bars])
    for (name, bars), lane, h in zip(rows, lanes, heights, strict=True):
        ticks.append((y + (h - 1) / 2, name))
        for b, k in zip(bars, lane, strict=True):
            yy = y + k
            hatch = None if b.end is None else "//"
            width = max(b.occupied, span * 2e-3)  # keep instantaneous layers visible
            ax.barh(yy, width, left=b.start, height=0.7, color=b.colour, edgecolor="black", lw=0.5, hatch=hatch)
            if b.end is not None and b.end > b.start + b.occupied:
                ax.plot([b.start + b.occupied, b.end], [yy, yy], color="black", lw=1)
                ax.plot([b.end], [yy], marker="|", color="black")
            if b.occupied > span * 0.04:
                mid = b.start + b.occupied / 2
                ax.text(mid, yy, b.label, ha="center", va="center", fontsize=7, color="white", clip_on=True)
        y += h + 0.4
    lat = ev.latency_parallel_s
    ax.axvline(lat, color=CUT_COLOUR, ls="--", lw=1.2)
    ax.text(lat, -0.7, f" L = {format_quantity(lat, 'time')}", color=CUT_COLOUR, fontsize=8, va="center")
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks])
    ax.invert_yaxis()
    ax.set_xlabel("time [s]")
    ax.set_xlim(0, span * 1.05 if span > 0 else 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"{inst.name}: parallel schedule (devices and links)", fontsize=10, loc="left")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# Sweeps
# ----------------------------------------------------------------------------------------------------

_METRIC_LABELS = {
    "latency_s": "latency [s]",
    "energy_total_j": "energy [J]",
    "period_s": "period [s]",
    "cost_usd": "cost [USD]",
    "objective": "objective",
    "bytes_moved": "bytes moved [B]",
}


def plot_sweep(
    sweep: SweepResult,
    metrics: Sequence[str] = ("latency_s", "energy_total_j"),
    *,
    breakpoints: Sequence[float] = (),
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Metrics of the optimal placement versus the swept value, with the optimal cut annotated.

    Consecutive values with the same placement form a band (alternating shades) labelled with the
    cut in words (:func:`toolchain.sweep.describe_cut`); a change of band is where the optimal cut
    moves. Points without a solution are left out.

    Parameters
    ----------
    sweep : SweepResult
        From :func:`toolchain.sweep.run_sweep`.
    metrics : sequence of str
        Columns of :meth:`SweepResult.table` to plot, one panel each.
    breakpoints : sequence of float
        Exact breakpoints (:mod:`toolchain.parametric`) in the sweep's unit: drawn as solid lines,
        and the bands then change there instead of half-way between samples.
    """
    table = sweep.table()
    cuts = sweep.cuts()
    x = np.asarray(sweep.values, dtype=float)
    fig = _figure(8.0, 1.2 + 2.3 * len(metrics))
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    bands = _bands(x, cuts, sweep.log)
    if breakpoints and len(bands) == len(breakpoints) + 1:
        edges = [bands[0][0], *breakpoints, bands[-1][1]]
        bands = [(edges[j], edges[j + 1], b[2]) for j, b in enumerate(bands)]
    for k, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
        y = table[metric].to_numpy(dtype=float) if metric in table else np.full(len(x), np.nan)
        for j, (lo, hi, cut) in enumerate(bands):
            ax.axvspan(lo, hi, color="#000000" if j % 2 else "#0072B2", alpha=0.06 if j % 2 else 0.1, lw=0)
            if k == 0:
                ax.text(
                    math.sqrt(lo * hi) if sweep.log else (lo + hi) / 2,
                    1.02,
                    cut,
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=0 if len(bands) <= 3 else 20,
                    wrap=True,
                )
        ax.plot(x, y, marker="o", color=PALETTE[k % len(PALETTE)], lw=1.6)
        ax.set_ylabel(_METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
        if sweep.log:
            ax.set_xscale("log")
    for lo, _, _ in bands[1:]:
        for ax in axes:
            ax.axvline(lo, color=CUT_COLOUR, ls=":", lw=1)
    for b in breakpoints:
        for ax in axes:
            ax.axvline(b, color=CUT_COLOUR, ls="-", lw=1.2)
    axes[-1].set_xlabel(sweep.label)
    name = sweep.instances[0].name if sweep.instances else ""
    fig.suptitle(title or f"{name}: sweep of {sweep.param.path} (bands: optimal cut)", fontsize=10)
    return _save(fig, path)


def _bands(x: np.ndarray, cuts: list[str], log: bool) -> list[tuple[float, float, str]]:
    """Runs of equal cut labels as (low, high, label), split half-way (geometric on a log axis)."""
    if len(x) == 0:
        return []

    def mid(a: float, b: float) -> float:
        return math.sqrt(a * b) if log and a > 0 and b > 0 else (a + b) / 2

    order = np.argsort(x)
    xs, cs = x[order], [cuts[i] for i in order]
    edges = [xs[0]] + [mid(xs[i], xs[i + 1]) for i in range(len(xs) - 1)] + [xs[-1]]
    out: list[tuple[float, float, str]] = []
    for i, c in enumerate(cs):
        if out and out[-1][2] == c:
            out[-1] = (out[-1][0], edges[i + 1], c)
        else:
            out.append((edges[i], edges[i + 1], c))
    return out


# ----------------------------------------------------------------------------------------------------
# Pareto fronts
# ----------------------------------------------------------------------------------------------------


def pareto_mask(points: Sequence[Mapping[str, Any]], x: str, y: str) -> list[bool]:
    """True for points not dominated in (x, y), both minimised (ties: the first is kept)."""
    vals = [(float(p[x]), float(p[y])) for p in points]
    out = []
    for i, (a, b) in enumerate(vals):
        dominated = any(
            (c <= a and d <= b and (c < a or d < b)) or (j < i and (c, d) == (a, b))
            for j, (c, d) in enumerate(vals)
            if j != i
        )
        out.append(not dominated)
    return out


def plot_pareto(
    points: Sequence[Mapping[str, Any]],
    x: str = "latency_s",
    y: str = "energy_total_j",
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A Pareto front of two minimised metrics: every point, the non-dominated ones joined by a staircase.

    Parameters
    ----------
    points : sequence of mapping
        Metric dicts, e.g. ``Evaluation.to_dict()`` or rows of a results table.
    x, y : str
        Keys of the two metrics (default latency and energy).
    labels : sequence of str, optional
        One per point, written beside the non-dominated ones.
    """
    if not points:
        raise ValueError("plot_pareto needs at least one point")
    front = pareto_mask(points, x, y)
    xs = np.array([float(p[x]) for p in points])
    ys = np.array([float(p[y]) for p in points])
    fig = _figure(6.5, 4.5)
    ax = fig.add_subplot()
    dom = ~np.array(front)
    ax.scatter(xs[dom], ys[dom], color="#999999", s=25, label="dominated")
    order = np.argsort(xs[~dom])
    fx, fy = xs[~dom][order], ys[~dom][order]
    ax.step(fx, fy, where="post", color=PALETTE[0], lw=1.5)
    ax.scatter(fx, fy, color=PALETTE[1], edgecolor="black", s=45, zorder=3, label="Pareto-optimal")
    if labels is not None:
        for i in np.flatnonzero(front):
            ax.annotate(labels[int(i)], (xs[i], ys[i]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.set_xlabel(_METRIC_LABELS.get(x, x))
    ax.set_ylabel(_METRIC_LABELS.get(y, y))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    default = f"Pareto front: {_METRIC_LABELS.get(x, x)} against {_METRIC_LABELS.get(y, y)}"
    ax.set_title(title or default, fontsize=10, loc="left")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# Performance profiles
# ----------------------------------------------------------------------------------------------------


def plot_performance_profile(
    profile: PerformanceProfile, *, title: str | None = None, path: str | Path | None = None
) -> Figure:
    """Dolan–Moré performance profile: ``rho_s(tau)`` against ``tau`` (log2 axis), a step line per solver.

    See :mod:`solvers.compare` for the definition (Dolan and Moré, Math. Programming 2002).
    """
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot()
    taus = profile.taus
    top = float(taus[-1]) * 2 if len(taus) and taus[-1] > 1 else 2.0
    styles = ("-", "--", "-.", ":")
    for k, (name, rho) in enumerate(profile.rho.items()):
        ax.step(
            np.append(taus, top),
            np.append(rho, rho[-1] if len(rho) else 0),
            where="post",
            color=PALETTE[k % len(PALETTE)],
            ls=styles[k % len(styles)],
            lw=1.8,
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlim(1, top)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau (within this factor of the best)")
    ax.set_ylabel(f"fraction of instances ({profile.measure})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        title or f"performance profile ({profile.measure}), {len(profile.ratios)} instances",
        fontsize=10,
        loc="left",
    )
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------
# A solution at once
# ----------------------------------------------------------------------------------------------------


def plot_solution(inst: Instance, ev: Evaluation, path: str | Path) -> list[Path]:
    """The partition on the DAG at ``path``; in parallel mode also the Gantt chart at ``<stem>-gantt<suffix>``.

    This is what ``dnnpart solve --plot PATH`` writes.

    Parameters
    ----------
    inst : Instance
    ev : Evaluation
        ``Result.metrics`` of a solve (or any evaluation).
    path : str or Path

    Returns
    -------
    list of Path
        The files written.
    """
    p = Path(path)
    plot_partition(inst, ev.placement, path=p)
    written = [p]
    if inst.problem.execution == "parallel":
        gantt = p.with_name(f"{p.stem}-gantt{p.suffix}")
        plot_gantt(inst, ev, path=gantt)
        written.append(gantt)
    return written
