"""Partition and schedule figures that stay readable from 5 layers to 10,000.

:func:`plot_partition` draws small graphs layer by layer (a layered DAG layout in which an edge that
skips a level is an arc, so skip connections stay visible) and large ones as **blocks**: maximal runs
of consecutive layers (topological order) on one device, with every edge between blocks drawn (arcs
for those that skip blocks) and the bytes of every transfer. When even the blocks are too many, the
topological order is cut into equal buckets, each a bar of its devices' shares. Every figure fits in
:data:`MAX_WIDTH_IN` x :data:`MAX_HEIGHT_IN` inches (1920 x 1080 px at the 120 dpi of saved
figures) and states the metrics of the placement and its **bottleneck**: the device or link direction
with the most busy time per inference, which sets the period (docs/instance-format.md §5).

:func:`plot_gantt` draws one row per device that runs a layer and per link direction that carries a
tensor; a label is written inside its bar only where it fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from formulation.units import format_quantity
from toolchain.bottleneck import bottleneck
from toolchain.plots import CUT_COLOUR, PALETTE, _figure, _save, device_colours

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from formulation.evaluator import Evaluation
    from formulation.model import Instance

#: Largest figure, in inches (at 120 dpi: 1920 x 1080 pixels).
MAX_WIDTH_IN, MAX_HEIGHT_IN = 16.0, 9.0
#: ``auto`` draws layers one by one up to this many layers (and :data:`MAX_LAYER_DEPTH` levels).
MAX_LAYERS_DRAWN = 60
MAX_LAYER_DEPTH = 40
#: Most blocks drawn; beyond, the topological order is cut into this many buckets.
MAX_BLOCKS = 24
#: Gantt charts with more bars than this draw each row as one collection (no per-bar labels).
MAX_GANTT_BARS = 400

View = Literal["auto", "layers", "blocks"]


def _bytes(n: float) -> str:
    return format_quantity(n, "bytes", digits=3)


def _time(t: float) -> str:
    return format_quantity(t, "time", digits=3)


def metrics_line(inst: Instance, ev: Evaluation) -> str:
    """One line of the placement's figures: latency, period, energy, cost, bottleneck, feasibility."""
    parts = [f"latency {_time(ev.latency_s)} ({inst.problem.execution})", f"period {_time(ev.period_s)}"]
    parts.append(f"energy {format_quantity(ev.energy_total_j, 'energy', digits=3)}")
    if ev.cost_usd:
        parts.append(f"cost {ev.cost_usd:.3g} USD")
    name, busy = bottleneck(ev)
    parts.append(f"bottleneck {name} (busy {_time(busy)})")
    if not ev.feasible:
        parts.append(f"INFEASIBLE: {', '.join(sorted({v.kind for v in ev.violations}))}")
    return " · ".join(parts)


# ----------------------------------------------------------------------------------------------------
# Partition
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Consecutive layers (topological indices ``first .. last``) and their devices' layer counts."""

    first: int
    last: int
    devices: dict[str, int]

    @property
    def device(self) -> str | None:
        """The one device of the block, or None for a mixed bucket."""
        return next(iter(self.devices)) if len(self.devices) == 1 else None


def blocks(inst: Instance, placement: Mapping[str, str], max_blocks: int = MAX_BLOCKS) -> list[Block]:
    """Maximal runs of consecutive layers on one device; equal buckets when there are more than ``max_blocks``."""
    ids = inst.graph.layer_ids
    runs: list[Block] = []
    for i, v in enumerate(ids):
        d = placement[v]
        if runs and runs[-1].device == d:
            runs[-1] = Block(runs[-1].first, i, {d: i - runs[-1].first + 1})
        else:
            runs.append(Block(i, i, {d: 1}))
    if len(runs) <= max_blocks:
        return runs
    edges = np.linspace(0, len(ids), max_blocks + 1).round().astype(int)
    out = []
    for a, b in pairwise(edges):
        counts: dict[str, int] = {}
        for v in ids[a:b]:
            counts[placement[v]] = counts.get(placement[v], 0) + 1
        out.append(Block(int(a), int(b) - 1, counts))
    return out


def _arrow(ax: Axes, p0: tuple[float, float], p1: tuple[float, float], cut: bool, rad: float, gid: str) -> None:
    ann = ax.annotate(
        "",
        xy=p1,
        xytext=p0,
        arrowprops={
            "arrowstyle": "-|>",
            "color": CUT_COLOUR if cut else "#777777",
            "lw": 2.0 if cut else 0.9,
            "ls": "--" if cut else "-",
            "shrinkA": 9,
            "shrinkB": 9,
            "connectionstyle": f"arc3,rad={rad}",
        },
    )
    ann.set_gid(gid)


def _arc_mid(p0: tuple[float, float], p1: tuple[float, float], rad: float) -> tuple[float, float]:
    """Midpoint of matplotlib's ``arc3`` curve (a quadratic Bezier whose control point is offset by rad)."""
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    return (x0 + 2 * cx + x1) / 4, (y0 + 2 * cy + y1) / 4


def _graph_edges(inst: Instance) -> list[tuple[str, str]]:
    """(tensor id, consumer) for every layer input, plus (output layer, ``__sink__``) when there is a sink."""
    g = inst.graph
    edges = [(g.tensor_ids[t], lay.id) for i, lay in enumerate(g.layers) for t in g.layer_inputs[i]]
    if inst.system.sink is not None:
        edges += [(g.layer_ids[o], "__sink__") for o in g.outputs]
    return edges


def _layer_positions(inst: Instance) -> dict[str, tuple[float, float]]:
    from toolchain.plots import _layout

    pos = _layout(inst)
    if inst.system.sink is not None:
        pos["__sink__"] = (max((x for x, _ in pos.values()), default=0.0) + 1.0, 0.0)
    return pos


def plot_partition(
    inst: Instance,
    placement: Mapping[str, str],
    *,
    ev: Evaluation | None = None,
    view: View = "auto",
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """The partition on the DAG: layers (or blocks of layers) coloured by device, every transfer with its bytes.

    Cut edges are dashed red and labelled with the bytes sent, each tensor once per receiving device
    (it is sent once, docs/instance-format.md §5.2); an edge that skips a level (or a block) is an arc.
    The title line gives the placement's metrics and its bottleneck (:func:`metrics_line`).

    Parameters
    ----------
    inst : Instance
    placement : mapping
        ``{layer id: device id}`` (e.g. ``Result.placement``).
    ev : Evaluation, optional
        The placement's evaluation (computed when not given).
    view : {"auto", "layers", "blocks"}
        ``auto`` draws layers up to :data:`MAX_LAYERS_DRAWN` layers and :data:`MAX_LAYER_DEPTH` levels,
        blocks beyond.
    title : str, optional
    path : str or Path, optional
        Where to write the figure.
    """
    from formulation.evaluator import evaluate

    ev = ev if ev is not None else evaluate(inst, placement)
    pos = _layer_positions(inst)
    depth = max((x for x, _ in pos.values()), default=0.0)
    if view == "layers" or (view == "auto" and inst.n <= MAX_LAYERS_DRAWN and depth <= MAX_LAYER_DEPTH):
        fig = _draw_layers(inst, placement, pos)
    else:
        fig = _draw_blocks(inst, placement)
    ax = fig.axes[0]
    head = title or f"{inst.name}: partition"
    ax.set_title(_heading(fig, head, metrics_line(inst, ev)), fontsize=9, loc="left", pad=24)
    return _save(fig, path)


def _heading(fig: Figure, head: str, metrics: str) -> str:
    """The title and the metrics line, wrapped to the figure's width (a 9-point character is ~0.075 in)."""
    chars = max(40, int(fig.get_figwidth() / 0.075))
    lines: list[str] = []
    for part in metrics.split(" · "):  # break between figures, never inside one
        if lines and len(lines[-1]) + 3 + len(part) <= chars:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join([head, *lines])


def _legend(ax: Axes, inst: Instance, extra: str | None = None) -> None:
    colours = device_colours(inst)
    for d in inst.system.device_ids:
        ax.scatter([], [], s=100, color=colours[d], edgecolor="black", label=d)
    ax.plot([], [], color=CUT_COLOUR, ls="--", lw=2.0, label="transfer (bytes)")
    if extra:
        ax.plot([], [], color="none", label=extra)
    ncol = min(6, inst.system.k + 1 + bool(extra))
    ax.legend(loc="lower left", fontsize=8, frameon=False, ncol=ncol, bbox_to_anchor=(0, 1.0))


def _draw_layers(inst: Instance, placement: Mapping[str, str], pos: dict[str, tuple[float, float]]) -> Figure:
    g, s = inst.graph, inst.system
    colours = device_colours(inst)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    span_x, span_y = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    width = min(MAX_WIDTH_IN, max(6.0, 1.0 + 0.85 * span_x))
    height = min(MAX_HEIGHT_IN, max(3.2, 1.6 + 0.9 * span_y))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    inch_per_level = width / span_x
    font = 8 if inch_per_level >= 0.7 else 6
    rotation = 0 if inch_per_level >= 0.9 and not g.is_chain else 35
    where = {**{t: s.source for t in g.input_ids}, **dict(placement)}
    labelled: set[tuple[str, str]] = set()
    for u, v in _graph_edges(inst):
        p0, p1 = pos[u], pos[v]
        dst = str(s.sink) if v == "__sink__" else where[v]
        cut = where[u] != dst
        skips = p1[0] - p0[0] > 1  # passes over a level: an arc, clear of the nodes in between
        rad = -0.25 if skips else 0.0
        _arrow(ax, p0, p1, cut, rad, f"edge:{u}->{v}")
        if cut and (u, dst) not in labelled:
            labelled.add((u, dst))
            mx, my = _arc_mid(p0, p1, rad)
            nbytes = g.tensor_bytes[g.tensor_index[u]]
            ax.text(
                mx,
                my + 0.1,
                _bytes(nbytes),
                color=CUT_COLOUR,
                fontsize=font,
                ha="center",
                va="bottom",
                fontweight="bold",
            )
    size = 300 if font == 8 else 160
    for t in g.input_ids:
        x, y = pos[t]
        ax.scatter([x], [y], s=size, marker="s", color="#BBBBBB", edgecolor=colours[s.source], linewidth=2, zorder=3)
        ax.text(x, y - 0.28, t, ha="center", va="top", fontsize=font, gid=f"label:{t}")
    for lay in g.layer_ids:
        x, y = pos[lay]
        ax.scatter([x], [y], s=size, color=colours[placement[lay]], edgecolor="black", linewidth=0.6, zorder=3)
        ax.text(
            x,
            y - 0.28,
            lay,
            ha="right" if rotation else "center",
            va="top",
            fontsize=font,
            rotation=rotation,
            rotation_mode="anchor",
            gid=f"label:{lay}",
        )
    if s.sink is not None:
        x, y = pos["__sink__"]
        ax.scatter([x], [y], s=size, marker="D", color="white", edgecolor=colours[s.sink], linewidth=2, zorder=3)
        ax.text(x, y - 0.28, f"sink ({s.sink})", ha="center", va="top", fontsize=font, gid="label:__sink__")
    _legend(ax, inst)
    ax.set_axis_off()
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.7)
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    return fig


def _block_label(inst: Instance, b: Block) -> str:
    ids = inst.graph.layer_ids
    n = b.last - b.first + 1
    if n == 1:
        return ids[b.first]
    return f"{ids[b.first]}\n… {ids[b.last]}\n({n} layers)"


def _draw_blocks(inst: Instance, placement: Mapping[str, str]) -> Figure:
    g, s = inst.graph, inst.system
    colours = device_colours(inst)
    bl = blocks(inst, placement)
    of_layer = np.empty(g.n, dtype=np.int64)
    for k, b in enumerate(bl):
        of_layer[b.first : b.last + 1] = k
    # node positions: inputs at -1, blocks 0..B-1, the sink at B
    sink = s.sink
    node_x: dict[str, float] = {t: -1.0 for t in g.input_ids}
    width = min(MAX_WIDTH_IN, max(7.0, 1.5 + 1.25 * (len(bl) + 2)))
    fig = _figure(width, 4.2)
    ax = fig.add_subplot()
    per_block = width / (len(bl) + 2)
    font = 7 if per_block >= 0.75 else 6
    rotation = 0 if per_block >= 0.9 else 30
    # edges between blocks (or from inputs / to the sink), aggregated; bytes once per (tensor, device)
    agg: dict[tuple[str, str], list[int]] = {}
    for i in range(g.n):
        v_node = f"block:{of_layer[i]}"
        for t in g.layer_inputs[i]:
            u_node = f"block:{of_layer[t]}" if t < g.n else g.tensor_ids[t]
            if u_node != v_node:
                agg.setdefault((u_node, v_node), []).append(t)
    if sink is not None:
        for o in g.outputs:
            agg.setdefault((f"block:{of_layer[o]}", "__sink__"), []).append(o)
    xpos = {**node_x, **{f"block:{k}": float(k) for k in range(len(bl))}, "__sink__": float(len(bl))}
    where_block = {f"block:{k}": b.device for k, b in enumerate(bl)}
    sent: set[tuple[int, str]] = set()
    for (u, v), tensors in agg.items():
        # from the right side of a block to the left side of the next, so the arrowhead shows
        x0 = xpos[u] + (0.28 if u.startswith("block:") else 0.0)
        x1 = xpos[v] - (0.28 if v.startswith("block:") else 0.0)
        src = s.source if u in node_x else where_block[u]
        dst = sink if v == "__sink__" else where_block[v]
        mixed = src is None or dst is None
        cut = not mixed and src != dst
        rad = -min(0.45, 0.12 * (x1 - x0)) if xpos[v] - xpos[u] > 1 else 0.0
        _arrow(ax, (x0, 0.0), (x1, 0.0), cut, rad, f"edge:{u}->{v}")
        if cut:
            assert dst is not None
            new = [t for t in dict.fromkeys(tensors) if (t, dst) not in sent]
            sent.update((t, dst) for t in new)
            if new:
                mx, my = _arc_mid((x0, 0.0), (x1, 0.0), rad)
                nbytes = float(sum(g.tensor_bytes[t] for t in new))
                ax.text(
                    mx,
                    my + 0.06,
                    _bytes(nbytes),
                    color=CUT_COLOUR,
                    fontsize=font,
                    ha="center",
                    va="bottom",
                    fontweight="bold",
                )
    for k, b in enumerate(bl):
        total = sum(b.devices.values())
        bottom = -0.3
        for d in s.device_ids:  # a stacked bar of device shares (one colour for a pure block)
            if d in b.devices:
                h = 0.6 * b.devices[d] / total
                ax.bar(k, h, bottom=bottom, width=0.55, color=colours[d], edgecolor="black", lw=0.5, zorder=3)
                bottom += h
        ax.text(
            k,
            -0.38,
            _block_label(inst, b),
            ha="right" if rotation else "center",
            va="top",
            fontsize=font,
            rotation=rotation,
            rotation_mode="anchor",
            gid=f"label:block:{k}",
        )
    if g.m:
        ax.scatter([-1.0], [0.0], s=200, marker="s", color="#BBBBBB", edgecolor=colours[s.source], lw=2, zorder=3)
    ax.text(
        -1.0,
        -0.38,
        "\n".join(g.input_ids[:3]) + ("\n…" if g.m > 3 else ""),
        ha="center",
        va="top",
        fontsize=font,
        gid="label:inputs",
    )
    if sink is not None:
        ax.scatter([len(bl)], [0.0], s=200, marker="D", color="white", edgecolor=colours[sink], lw=2, zorder=3)
        ax.text(len(bl), -0.38, f"sink\n({sink})", ha="center", va="top", fontsize=font, gid="label:__sink__")
    mixed_note = any(b.device is None for b in bl)
    kind = "equal buckets (device shares; transfers inside a bucket not drawn)" if mixed_note else "blocks"
    kind = kind if mixed_note else "blocks of consecutive layers on one device"
    note = f"{g.n} layers in {len(bl)} {kind}"
    _legend(ax, inst, note)
    ax.set_axis_off()
    ax.set_xlim(-1.6, len(bl) + 0.6)
    ax.set_ylim(-1.6, 0.9)
    return fig


# ----------------------------------------------------------------------------------------------------
# Gantt
# ----------------------------------------------------------------------------------------------------


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


def _lanes(bars: list[_Bar]) -> list[int]:
    """Greedy lane per bar so that bars in one lane do not overlap (transfers run concurrently)."""
    ends: list[float] = []
    out = []
    for b in bars:
        for i, e in enumerate(ends):
            if b.start >= e - 1e-15:
                ends[i] = b.stop
                out.append(i)
                break
        else:
            ends.append(b.stop)
            out.append(len(ends) - 1)
    return out


def _rows(inst: Instance, ev: Evaluation) -> list[tuple[str, list[_Bar]]]:
    """A row per device that runs a layer, then per link direction that carries a tensor."""
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
        if bars:
            rows.append((d, sorted(bars, key=lambda b: b.start)))
    by_link: dict[str, list[_Bar]] = {}
    for t in ev.transfers:
        bar = _Bar(t.start_s, t.occupied_s, t.end_s, t.tensor, colours[t.src])
        by_link.setdefault(f"{t.src}->{t.dst}", []).append(bar)
    return rows + [(name, sorted(bars, key=lambda b: b.start)) for name, bars in by_link.items()]


def plot_gantt(inst: Instance, ev: Evaluation, *, title: str | None = None, path: str | Path | None = None) -> Figure:
    """Gantt chart of the parallel schedule: a row per device used and per link direction used.

    Layers are bars from their start (``ev.schedule``) for ``t(v, d)``; each transfer is a hatched
    bar over its occupied time ``bytes / bandwidth`` followed by a thin line for the link latency up
    to its arrival. Transfers on one link may overlap (docs/instance-format.md §5.4), so a link row
    splits into lanes. A bar's label is written inside it only where it fits; the makespan (parallel
    latency) is a vertical line and the title line gives the metrics and the bottleneck.

    Parameters
    ----------
    inst : Instance
    ev : Evaluation
        From :func:`formulation.evaluator.evaluate` (or ``Result.metrics``).
    title : str, optional
    path : str or Path, optional
    """
    rows = _rows(inst, ev)
    lanes = [_lanes(bars) for _, bars in rows]
    heights = [max(ln, default=0) + 1 for ln in lanes]
    n_bars = sum(len(b) for _, b in rows)
    width = 10.0
    fig = _figure(width, min(MAX_HEIGHT_IN, max(2.8, 1.3 + 0.42 * sum(heights))))
    ax = fig.add_subplot()
    span = max([ev.latency_parallel_s] + [b.stop for _, bars in rows for b in bars])
    span = span if span > 0 else 1.0
    plot_w_in = width - 1.8  # axes width, less the row names
    y, ticks = 0.0, []
    for (name, bars), lane, h in zip(rows, lanes, heights, strict=True):
        ticks.append((y + (h - 1) / 2, name))
        if n_bars > MAX_GANTT_BARS:  # one collection per lane: fast at 10,000 layers
            for k in range(h):
                mine = [b for b, ln in zip(bars, lane, strict=True) if ln == k]
                ax.broken_barh(
                    [(b.start, max(b.occupied, span * 1e-3)) for b in mine],
                    (y + k - 0.35, 0.7),
                    facecolors=[b.colour for b in mine],
                    edgecolor="none",  # thousands of outlines would hide the colours
                )
        else:
            for b, k in zip(bars, lane, strict=True):
                _gantt_bar(ax, b, y + k, span, plot_w_in)
        y += h + 0.4
    lat = ev.latency_parallel_s
    ax.axvline(lat, color=CUT_COLOUR, ls="--", lw=1.2)
    ax.text(lat, -0.7, f"L = {format_quantity(lat, 'time')} ", color=CUT_COLOUR, fontsize=8, va="center", ha="right")
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time [s]")
    ax.set_xlim(0, span * 1.05)
    ax.grid(axis="x", alpha=0.3)
    head = title or f"{inst.name}: parallel schedule (devices and links used)"
    ax.set_title(_heading(fig, head, metrics_line(inst, ev)), fontsize=9, loc="left")
    return _save(fig, path)


def _gantt_bar(ax: Axes, b: _Bar, yy: float, span: float, plot_w_in: float) -> None:
    hatch = None if b.end is None else "//"
    width = max(b.occupied, span * 2e-3)  # keep instantaneous layers visible
    ax.barh(yy, width, left=b.start, height=0.7, color=b.colour, edgecolor="black", lw=0.5, hatch=hatch)
    if b.end is not None and b.end > b.start + b.occupied:
        ax.plot([b.start + b.occupied, b.end], [yy, yy], color="black", lw=1)
        ax.plot([b.end], [yy], marker="|", color="black")
    # a 7-point character is about 0.06 inch wide: write the label only where it fits inside the bar
    bar_in = b.occupied / (span * 1.05) * plot_w_in
    if bar_in >= 0.06 * len(b.label) + 0.05:
        ax.text(
            b.start + b.occupied / 2,
            yy,
            b.label,
            ha="center",
            va="center",
            fontsize=7,
            color="white",
            clip_on=True,
            gid=f"label:{b.label}",
        )


__all__ = ["PALETTE", "Block", "blocks", "bottleneck", "metrics_line", "plot_gantt", "plot_partition"]
