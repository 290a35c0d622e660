"""Predicted (the evaluator's) versus measured times of a run, as JSON and as Gantt charts.

Measured quantities, per timed inference (the warm-up inferences are left out), on the one
monotonic clock of the host, relative to the inference's start ``t0`` (the common start time the
driver sets, or the source worker's actual start if its command came later):

* **latency**: when the last model output is on the sink (its layer's end there, or the release
  of the message carrying it), or the last sequential step's end, minus ``t0``;
* **layer time**: end minus start of the layer's segment (compute, plus the slow-down sleep); its
  **span** runs from the end of the device's previous layer instead (the worker's bookkeeping
  between layers included): in an all-local run the spans add up to the latency, and their medians
  are the host's layer times as the runtime executes them;
* **transfer time**: release at the receiver minus the end of the producing layer (``t0`` for a
  model input): serialisation, queueing, the emulated link and delivery;
* **period** (``stream``): the mean spacing of successive completions after the warm-up,
  ``(c_last - c_first) / (count - 1)``; throughput is its inverse.

Each has its median and 95th percentile over the timed inferences and its relative error
``(measured median - predicted) / predicted``.
"""

from __future__ import annotations

import math
import os
import platform
from typing import Any

import numpy as np

from formulation.evaluator import evaluate
from formulation.model import Instance
from toolchain.runtime.driver import RunTraces
from toolchain.runtime.partition import Plan


def _stats(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"median": math.nan, "p95": math.nan}
    return {"median": float(np.median(xs)), "p95": float(np.percentile(xs, 95))}


def rel_error(measured: float, predicted: float) -> float:
    """``(measured - predicted) / predicted`` (nan when the prediction is 0)."""
    return (measured - predicted) / predicted if predicted > 0 else math.nan


def _completion(plan: Plan, traces: dict[str, dict[str, Any]], inf: int) -> float:
    """Time the last model output of inference ``inf`` is where it must be."""
    ends = {(r[0], r[1]): r[3] for tr in traces.values() for r in tr["layers"]}
    rel = {(r[0], r[1], tr["device"]): r[7] for tr in traces.values() for r in tr["recvs"]}
    done = -math.inf
    for o in plan.outputs:
        lay = plan.producer[o]
        dev = plan.placement.get(lay, plan.source)
        if plan.sink is None or dev == plan.sink:
            done = max(done, ends[(inf, lay)])
        else:
            done = max(done, rel[(inf, lay, plan.sink)])
    steps = [r[2] for tr in traces.values() for r in tr["steps"] if r[0] == inf]
    return max([done, *steps])


def inference_events(plan: Plan, traces: dict[str, dict[str, Any]], inf: int, t0: float) -> dict[str, Any]:
    """Layer and transfer intervals of one inference, relative to ``t0`` (for the Gantt chart)."""
    ends: dict[str, float] = {}
    layers = []
    for tr in traces.values():
        prev: float | None = None
        for r in sorted((r for r in tr["layers"] if r[0] == inf), key=lambda r: r[2]):
            span = r[3] - (r[2] if prev is None else prev)
            layers.append({"layer": r[1], "device": tr["device"], "start": r[2] - t0, "end": r[3] - t0, "span": span})
            ends[r[1]] = r[3] - t0
            prev = r[3]
    transfers = []
    for tr in traces.values():
        for r in tr["recvs"]:
            if r[0] == inf:
                transfers.append({"tensor": r[1], "src": r[2], "dst": tr["device"],
                                  "start": ends.get(r[1], 0.0), "end": r[7] - t0, "bytes": r[5]})
    return {"layers": layers, "transfers": transfers}


def compare(inst: Instance, plan: Plan, run: RunTraces, outputs_match: float,
            meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report of a run (see the module docstring)."""
    ev = evaluate(inst, plan.placement)
    g, s = inst.graph, inst.system
    P = inst.placement_indices(plan.placement)
    timed = range(run.warmup, run.warmup + _count(run))
    lat: list[float] = []
    layer_t: dict[str, list[float]] = {}
    span_t: dict[str, list[float]] = {}
    xfer_t: dict[tuple[str, str, str], list[float]] = {}
    xfer_bytes: dict[tuple[str, str, str], int] = {}
    per_inf_events = []
    completions: list[float] = []
    for inf in timed:
        traces = run.traces[0] if run.mode == "stream" else run.traces[inf]
        t0 = run.t0[0] if run.mode == "stream" else run.t0[inf]
        # The inference starts when the source starts: a command that reached it after t0 (a busy
        # host) must not count as latency.
        t0 = max(t0, float(traces[plan.source].get("begin", t0)))
        c = _completion(plan, traces, inf)
        completions.append(c)
        lat.append(c - t0)
        evs = inference_events(plan, traces, inf, t0)
        per_inf_events.append(evs)
        for e in evs["layers"]:
            layer_t.setdefault(e["layer"], []).append(e["end"] - e["start"])
            span_t.setdefault(e["layer"], []).append(e["span"])
        for e in evs["transfers"]:
            key = (e["tensor"], e["src"], e["dst"])
            xfer_t.setdefault(key, []).append(e["end"] - e["start"])
            xfer_bytes[key] = int(e["bytes"])
    pred_lat = ev.latency_sequential_s if run.mode == "sequential" else ev.latency_parallel_s
    out: dict[str, Any] = {
        "mode": run.mode,
        "inferences": len(lat),
        "warmup": run.warmup,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                 "load_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        **(meta or {}),
        "predicted": {"latency_sequential_s": ev.latency_sequential_s, "latency_parallel_s": ev.latency_parallel_s,
                      "period_s": ev.period_s, "throughput_per_s": ev.throughput_per_s},
        "outputs_match": outputs_match,
    }
    if run.mode == "stream":
        n = len(completions)
        period = (completions[-1] - completions[0]) / (n - 1) if n > 1 else math.nan
        gaps = list(np.diff(completions)) if n > 1 else []
        out["throughput"] = {
            "predicted_period_s": ev.period_s, "measured_period_s": period,
            "measured_period_p95_s": _stats([float(x) for x in gaps])["p95"],
            "predicted_per_s": ev.throughput_per_s, "measured_per_s": 1.0 / period if period > 0 else math.nan,
            "rel_error": rel_error(1.0 / period, ev.throughput_per_s) if period > 0 else math.nan,
        }
    st = _stats(lat)
    out["latency"] = {"predicted_s": pred_lat, "measured_median_s": st["median"], "measured_p95_s": st["p95"],
                      "rel_error": rel_error(st["median"], pred_lat), "samples_s": lat}
    rows = []
    for v, lay in enumerate(g.layer_ids):
        pred = float(inst.time[v, P[v]])
        m = _stats(layer_t.get(lay, []))
        rows.append({"layer": lay, "device": plan.placement[lay], "predicted_s": pred,
                     "measured_median_s": m["median"], "measured_p95_s": m["p95"],
                     "rel_error": rel_error(m["median"], pred),
                     "span_median_s": _stats(span_t.get(lay, []))["median"]})
    out["layers"] = rows
    trows = []
    for t in ev.transfers:
        key = (t.tensor, t.src, t.dst)
        m = _stats(xfer_t.get(key, []))
        lk = s.links[(t.src, t.dst)]
        nominal = lk.latency_s + t.bytes / lk.bandwidth_bytes_per_s
        trows.append({"tensor": t.tensor, "src": t.src, "dst": t.dst, "bytes": t.bytes,
                      "wire_bytes": xfer_bytes.get(key), "predicted_s": t.duration_s, "link_s": nominal,
                      "measured_median_s": m["median"], "measured_p95_s": m["p95"],
                      "rel_error": rel_error(m["median"], t.duration_s)})
    out["transfers"] = trows
    if per_inf_events:
        k = int(np.argsort(lat)[len(lat) // 2])
        out["gantt"] = {"inference": int(timed[k]), **per_inf_events[k]}
    return out


def _count(run: RunTraces) -> int:
    if run.mode == "stream":
        inferences = {r[0] for tr in run.traces[0].values() for r in tr["layers"]}
        return len(inferences) - run.warmup
    return len(run.traces) - run.warmup


def plot(inst: Instance, report: dict[str, Any], path: str) -> None:
    """Predicted (top) and measured (bottom, the median inference) Gantt charts in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placement = {r["layer"]: r["device"] for r in report["layers"]}
    ev = evaluate(inst, placement)
    g = inst.graph
    P = inst.placement_indices(placement)
    pred_layers = [{"layer": lay, "device": placement[lay], "start": ev.schedule[lay],
                    "end": ev.schedule[lay] + float(inst.time[v, P[v]])} for v, lay in enumerate(g.layer_ids)]
    pred_xfers = [{"tensor": t.tensor, "src": t.src, "dst": t.dst, "start": t.start_s, "end": t.end_s}
                  for t in ev.transfers]
    if report["mode"] == "sequential":  # the sequential prediction: one step after another
        pred_layers, pred_xfers = _sequential_chart(inst, placement, ev)
    meas = report.get("gantt", {"layers": [], "transfers": []})
    rows = list(inst.system.device_ids) + sorted({f"{t['src']}->{t['dst']}" for t in pred_xfers + meas["transfers"]})
    fig, axes = plt.subplots(2, 1, figsize=(10, 1.2 + 0.45 * len(rows) * 2), sharex=True)
    titles = (f"predicted ({report['mode']}, evaluator)", f"measured (inference {meas.get('inference', '-')})")
    for ax, layers, xfers, title in zip(axes, (pred_layers, meas["layers"]), (pred_xfers, meas["transfers"]),
                                        titles, strict=True):
        for e in layers:
            y = rows.index(e["device"])
            ax.barh(y, e["end"] - e["start"], left=e["start"], color="tab:blue", edgecolor="white", height=0.6)
        for e in xfers:
            y = rows.index(f"{e['src']}->{e['dst']}")
            ax.barh(y, e["end"] - e["start"], left=e["start"], color="tab:orange", edgecolor="white", height=0.6)
        ax.set_yticks(range(len(rows)), rows)
        ax.invert_yaxis()
        ax.set_title(title)
    axes[-1].set_xlabel("time since the inference started (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sequential_chart(inst: Instance, placement: dict[str, str], ev: Any) -> tuple[list[Any], list[Any]]:
    g = inst.graph
    P = inst.placement_indices(placement)
    by_tensor: dict[str, list[Any]] = {}
    for t in ev.transfers:
        by_tensor.setdefault(t.tensor, []).append(t)
    now = 0.0
    layers, xfers = [], []
    for m in g.input_ids if hasattr(g, "input_ids") else g.tensor_ids[g.n:]:
        for t in by_tensor.get(m, []):
            xfers.append({"src": t.src, "dst": t.dst, "start": now, "end": now + t.duration_s})
            now += t.duration_s
    for v, lay in enumerate(g.layer_ids):
        d = float(inst.time[v, P[v]])
        layers.append({"device": placement[lay], "start": now, "end": now + d})
        now += d
        for t in by_tensor.get(lay, []):
            xfers.append({"src": t.src, "dst": t.dst, "start": now, "end": now + t.duration_s})
            now += t.duration_s
    return layers, xfers
