"""Figures of version-2 workloads (docs/instance-format.md §9): one Gantt row per request.

Each request gets a row and a colour; its layers are solid bars (labelled with the device), its hops
hatched bars over their occupied time. Under ``schedule`` the bars are the joint schedule's (so rows
show where requests wait for each other); under ``none`` and ``share`` they are the request's
sequential run from its release, each piece stretched by the request's share of that device or
channel (``share``), which is how its latency is defined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from formulation.evaluator import Evaluation
from formulation.evaluator.jobshop import hop_key
from formulation.model import Instance

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD")


def request_colours(inst: Instance) -> dict[str, str]:
    """A colour per request, in file order (the palette repeats after ten)."""
    assert inst.workload is not None
    return {r.id: PALETTE[i % len(PALETTE)] for i, r in enumerate(inst.workload.requests)}


def request_bars(inst: Instance, ev: Evaluation) -> dict[str, list[tuple[float, float, str, bool]]]:
    """``{request: [(start, duration, label, is_transfer), ...]}`` as drawn by :func:`plot_workload_gantt`."""
    wl = inst.workload
    assert wl is not None
    g, s = inst.graph, inst.system
    info = ev.workload["requests"]
    routes = ev.workload["routes"]
    out: dict[str, list[tuple[float, float, str, bool]]] = {r.id: [] for r in wl.requests}
    scheduled = wl.contention == "schedule"
    for r in wl.requests:
        shares: dict[str, float] = info[r.id].get("shares", {})
        t = r.release_s
        for v in r.layers:
            lay = g.layer_ids[v]
            dev = ev.placement[lay]
            for tr in routes:
                if tr["request"] != r.id or tr["dst"] != dev or g.tensor_index[tr["tensor"]] not in g.layer_inputs[v]:
                    continue
                for h, (a, b) in enumerate(zip(tr["route"], tr["route"][1:], strict=False)):
                    i, j = s.device_index[a], s.device_index[b]
                    occ = g.tensor_bytes[g.tensor_index[tr["tensor"]]] / s.bandwidth[i, j]
                    start = ev.schedule.get(hop_key(tr["tensor"], dev, h), t) if scheduled else t
                    dur = occ / shares.get(f"{a}->{b}", 1.0)
                    out[r.id].append((start, dur, f"{a}->{b}", True))
                    t = start + dur + s.link_latency[i, j]
            dur = float(inst.time[v, s.device_index[dev]]) / (1.0 if scheduled else shares.get(dev, 1.0))
            start = ev.schedule.get(lay, t) if scheduled else t
            out[r.id].append((start, dur, f"{lay.split('/', 1)[1]}@{dev}", False))
            t = start + dur
    return out


def plot_workload_gantt(inst: Instance, ev: Evaluation, *, path: str | Path | None = None) -> Figure:
    """One row per request, coloured per request (docs/instance-format.md §9.8)."""
    bars = request_bars(inst, ev)
    colours = request_colours(inst)
    fig = Figure(figsize=(10.0, max(2.5, 1.2 + 0.5 * len(bars))))
    ax = fig.add_subplot()
    for y, (rid, items) in enumerate(bars.items()):
        for start, dur, label, hop in items:
            ax.broken_barh([(start, dur)], (y - 0.35, 0.7), facecolors=colours[rid],
                           hatch="//" if hop else None, edgecolor="white" if not hop else "black", lw=0.3)
            if len(items) <= 24:
                ax.text(start + dur / 2, y, label, ha="center", va="center", fontsize=6, clip_on=True)
        lat = ev.workload["requests"][rid]["completion_s"]
        ax.plot([lat, lat], [y - 0.45, y + 0.45], color="black", lw=1.2)
    ax.set_yticks(range(len(bars)), list(bars), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time [s]")
    wl = inst.workload
    assert wl is not None
    ax.set_title(f"{inst.name}: {len(bars)} requests, contention {wl.contention}, aggregate {wl.aggregate} "
                 f"= {ev.latency_s:.4g} s", fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def figure_data(inst: Instance, ev: Evaluation) -> dict[str, Any]:
    """The numbers behind the figure (for tests and tables)."""
    return {"colours": request_colours(inst), "bars": request_bars(inst, ev)}
