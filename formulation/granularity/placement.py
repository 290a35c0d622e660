"""Placements and schedules for split graphs: the natural placement and an insertion schedule.

Neither computes a cost: the evaluator judges every placement and checks every schedule given
to it (:func:`formulation.evaluator.evaluate` with ``schedule=``).

Why an insertion schedule. The evaluator's default list schedule starts each layer after the
previous one placed on its device (no insertion into idle gaps). A split places zero-FLOP
scatter slices on the device that also computes a part; with balanced parts the upward ranks of
a remote slice and of the local part are nearly equal, and when the local part ranks first the
slice -- and so the remote part -- waits for the whole local part. HEFT's insertion-based policy
(Topcuoglu, Hariri and Wu, IEEE TPDS 13(3), 2002) puts a layer into the earliest idle gap long
enough for it, which lets a zero-length slice go first. Any valid schedule is allowed by the
format's parallel mode (docs/instance-format.md §5.4); :func:`insertion_schedule` is one, checked by the evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from formulation.granularity.provenance import Transformed
from formulation.model import Instance


def natural_placement(
    t: Transformed,
    devices: Sequence[str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    home: str | None = None,
    assign: Literal["round_robin", "balanced"] = "balanced",
) -> dict[str, str]:
    """The placement a split is designed for.

    Parts of each split go to ``devices``; each scatter slice runs on the device holding the
    tensor it slices (so each transfer is exactly one part's region); gathers and every other node
    run where ``base`` puts their (first) original layer, or on ``home``.

    Parameters
    ----------
    devices : sequence of str, optional
        Devices that compute parts (default: all).
    base : mapping, optional
        ``{original layer: device}`` for the nodes that are not parts.
    home : str, optional
        Device of non-part nodes when ``base`` is not given (default: the system's source).
    assign : {"round_robin", "balanced"}
        Part ``p`` to ``devices[p % len(devices)]``, or longest-processing-time first: parts in
        decreasing time, each to the device where it would finish earliest (Graham, SIAM J. Appl.
        Math. 17(2), 1969), which approximates DeepThings' work stealing.
    """
    inst = t.instance
    g, s = inst.graph, inst.system
    devs = list(devices or s.device_ids)
    home = home or s.source
    out: dict[str, str] = {}
    by_split: dict[str, list[str]] = {}
    for node in g.layer_ids:
        o = t.provenance.origins[node]
        if o.kind == "part":
            by_split.setdefault(o.split, []).append(node)
    for nodes in by_split.values():
        parts: dict[int, list[str]] = {}
        for node in nodes:
            parts.setdefault(int(t.provenance.origins[node].part or 0), []).append(node)
        order = sorted(parts)
        if assign == "balanced":
            cols = [s.device_index[d] for d in devs]
            cost = {p: [float(sum(inst.time[g.layer_index[n], j] for n in parts[p])) for j in cols] for p in order}
            load = [0.0] * len(devs)
            for p in sorted(order, key=lambda q: -max(cost[q])):
                j = min(range(len(devs)), key=lambda i: (load[i] + cost[p][i], i))
                load[j] += cost[p][j]
                for n in parts[p]:
                    out[n] = devs[j]
        else:
            for i, p in enumerate(order):
                for n in parts[p]:
                    out[n] = devs[i % len(devs)]
    for node in g.layer_ids:
        if node in out:
            continue
        o = t.provenance.origins[node]
        if o.kind == "scatter":
            src = g.layers[g.layer_index[node]].inputs[0]
            out[node] = out.get(src, s.source)
        else:
            out[node] = base[o.layers[-1]] if base is not None else home
    return out


def insertion_schedule(inst: Instance, placement: Mapping[str, str] | Sequence[int]) -> dict[str, float]:
    """Start times by HEFT's insertion-based list scheduling under a fixed placement.

    Layers are taken by decreasing upward rank (the evaluator's rank, ties by topological index,
    which is a topological order); each starts in the earliest idle gap of its device that begins
    after all its inputs have arrived and is long enough to hold it.
    """
    g, s = inst.graph, inst.system
    P = inst.placement_indices(placement)
    dur = inst.time[np.arange(g.n), P]

    def producer(t: int) -> int:
        return int(P[t]) if t < g.n else s.source_index

    rank = np.zeros(g.n)
    for v in range(g.n - 1, -1, -1):
        best = 0.0
        if g.is_output[v] and s.sink_index is not None:
            best = s.transfer_time(int(P[v]), s.sink_index, float(g.output_bytes[v]))
        for w in g.succs[v]:
            best = max(best, s.transfer_time(int(P[v]), int(P[w]), float(g.output_bytes[v])) + rank[w])
        rank[v] = dur[v] + best
    order = sorted(range(g.n), key=lambda v: (-rank[v], v))
    busy: list[list[tuple[float, float]]] = [[] for _ in range(s.k)]
    finish = np.zeros(g.n)
    starts: dict[str, float] = {}
    for v in order:
        d = int(P[v])
        ready = 0.0
        for t in g.layer_inputs[v]:
            t0 = float(finish[t]) if t < g.n else 0.0
            ready = max(ready, t0 + s.transfer_time(producer(t), d, float(g.tensor_bytes[t])))
        start = ready
        pos = len(busy[d])
        for i, (a, b) in enumerate(busy[d]):
            if start + dur[v] <= a:
                pos = i
                break
            start = max(start, b)
        if not math.isfinite(start):
            start = ready
        busy[d].insert(pos, (start, start + float(dur[v])))
        finish[v] = start + dur[v]
        starts[g.layer_ids[v]] = float(start)
    return starts
