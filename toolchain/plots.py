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
    from toolchain.replay import Replay
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


def plot_partition(inst: Instance, placement: Mapping[str, str], **kwargs: Any) -> Figure:
    """The partition on the DAG; see :func:`toolchain.plots_partition.plot_partition`."""
    from toolchain.plots_partition import plot_partition as impl

    return impl(inst, placement, **kwargs)


def plot_gantt(inst: Instance, ev: Evaluation, **kwargs: Any) -> Figure:
    """Gantt chart of a parallel schedule; see :func:`toolchain.plots_partition.plot_gantt`."""
    from toolchain.plots_partition import plot_gantt as impl

    return impl(inst, ev, **kwargs)


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


#: Metric key of each objective name of ``dnnpart pareto`` (``throughput`` is drawn as the period).
PARETO_KEYS = {"latency": "latency_s", "throughput": "period_s", "energy": "energy_total_j", "cost": "cost_usd"}


def pareto_points(
    data: Sequence[Mapping[str, Any]] | Mapping[str, Any], x: str | None, y: str | None
) -> tuple[list[Mapping[str, Any]], str, str]:
    """Metric dicts and the two keys from the input of :func:`plot_pareto`.

    ``data`` is a list of metric dicts, a list of points that each hold ``metrics`` (the ``points``
    of ``dnnpart pareto --json``), or that whole JSON object, whose ``objectives`` give the default
    keys. Points whose value is missing (``null``) are left out.
    """
    if isinstance(data, Mapping):
        objectives = list(data.get("objectives") or [])
        if len(objectives) == 2:
            x = x or PARETO_KEYS.get(objectives[0], objectives[0])
            y = y or PARETO_KEYS.get(objectives[1], objectives[1])
        data = list(data.get("points") or [])
    x, y = x or "latency_s", y or "energy_total_j"
    rows = [p["metrics"] if isinstance(p.get("metrics"), Mapping) else p for p in data]
    return [r for r in rows if r.get(x) is not None and r.get(y) is not None], x, y


def plot_pareto(
    points: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    x: str | None = None,
    y: str | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A Pareto front of two minimised metrics: every point, the non-dominated ones joined by a staircase.

    Parameters
    ----------
    points : sequence of mapping, or mapping
        Metric dicts (``Evaluation.to_dict()``, rows of a results table), the points of
        ``dnnpart pareto --json`` (each with ``metrics``), or that whole JSON object.
    x, y : str, optional
        Keys of the two metrics (default: the front's objectives, else latency and energy).
    labels : sequence of str, optional
        One per point, written beside the non-dominated ones.
    """
    points, x, y = pareto_points(points, x, y)
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
    plot_partition(inst, ev.placement, ev=ev, path=p)
    written = [p]
    if inst.problem.execution == "parallel":
        gantt = p.with_name(f"{p.stem}-gantt{p.suffix}")
        plot_gantt(inst, ev, path=gantt)
        written.append(gantt)
    if inst.workload is not None:  # version 2: a Gantt row and a colour per request
        from toolchain.plots_workload import plot_workload_gantt

        rows = p.with_name(f"{p.stem}-requests{p.suffix}")
        plot_workload_gantt(inst, ev, path=rows)
        written.append(rows)
    return written


# ----------------------------------------------------------------------------------------------------
# Trace replay
# ----------------------------------------------------------------------------------------------------


def plot_replay(rep: Replay, *, title: str | None = None, path: str | Path | None = None) -> Figure:
    """Bandwidth, then each policy's latency and energy per inference, over time.

    Parameters
    ----------
    rep : Replay
        From :func:`toolchain.replay.replay`; switches are marked on the latency panel.
    """
    fig = _figure(8.0, 6.5)
    axes = fig.subplots(3, 1, sharex=True, squeeze=False)[:, 0]
    axes[0].step(rep.times, rep.bandwidth * 8e-6, where="post", color="#000000", lw=1)
    axes[0].set_ylabel("bandwidth [Mbit/s]")
    for k, (name, run) in enumerate(rep.runs.items()):
        colour = PALETTE[k % len(PALETTE)]
        axes[1].plot(rep.times, run.latency, color=colour, lw=1.2, label=name)
        axes[2].plot(rep.times, run.energy, color=colour, lw=1.2, label=name)
        moves = np.flatnonzero(np.diff(run.placement_ids)) + 1
        axes[1].plot(rep.times[moves], run.latency[moves], "|", color=colour, ms=8)
    if rep.deadline_s is not None:
        axes[1].axhline(rep.deadline_s, color=CUT_COLOUR, ls="--", lw=1, label="deadline")
    axes[1].set_ylabel("latency [s]")
    axes[2].set_ylabel("energy [J]")
    axes[1].legend(fontsize=8, loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time [s]")
    default = f"{rep.instance}: replay of {rep.trace} on {rep.link} (ticks: placement changes)"
    fig.suptitle(title or default, fontsize=10)
    return _save(fig, path)
