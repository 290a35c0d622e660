"""Reproduction: DADS's edge-cloud DNN surgery by minimum cut (Hu, Bao, Wang and Liu, INFOCOM 2019).

Published (expected.json): the Tiny YOLOv2 motivating example -- at 18 Mbit/s the latency-optimal
cut is the input (cloud-only), at 4 Mbit/s after max5 -- and, from the prototype, latency up to
6.45x better than edge-only and 8.08x better than cloud-only (abstract). DADS's light-load
algorithm (DSL) minimises the latency of one frame by a minimum s-t cut of the DAG.

Ours: the zoo's Tiny YOLOv2 (darknet's ``max5`` is our ``pool5``), ResNet-18 and GoogLeNet
(Inception v1) on the catalogue's Raspberry Pi 3B (edge) and V100 (cloud), results returned to
the edge, sequential latency. DSL is our ``mincut`` (exact on DAGs); Neurosurgeon's chain cut is
the best prefix of the topological order on the edge (every one evaluated by the evaluator). The
links are DADS's networks: CAT1 0.13, 3G 1.1, 4G 5.85, Wi-Fi 18.88 Mbit/s (the catalogue's
``nbiot``, ``3g``, ``lte``, ``wifi``); the crossover uses the Wi-Fi link at 18 and 4 Mbit/s. Tiny
YOLOv2 takes the paper's input, 3 x 288 x 288 float32 (995,328 B, about 0.95 MB; the zoo's PyTorch
definition imported at that size), the others the zoo's 224 x 224; in a variant the input is the
8-bit frame (3 bytes a pixel).

Run ``python -m paper_reproductions.dads.run`` (``--fast``: the subset the tests run).
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from formulation.evaluator import batch_metrics, evaluate
from formulation.loader import load_instance_data
from formulation.model import Instance
from paper_reproductions.common import Outcome, Table, exit_with, main
from solvers.registry import solve
from solvers.result import Status
from solvers.scan import single_cut_placements
from toolchain.scenario import build_system

HERE = Path(__file__).resolve().parent
ZOO = HERE.parents[1] / "instances" / "zoo"
EDGE, CLOUD = "rpi3b", "cloud"
#: DADS's network settings (Mbit/s) and the catalogue networks that carry them.
NETWORKS = {"CAT1": ("nbiot", 0.13), "3G": ("3g", 1.1), "4G": ("lte", 5.85), "Wi-Fi": ("wifi", 18.88)}
#: The image side DADS feeds each model: Tiny YOLOv2 at the paper's 3 x 288 x 288 (Sec. II: a
#: float32 input of 995,328 B, about 0.95 MB); the zoo's sizes (224) for the others.
IMAGE = {"tiny_yolov2": 288, "resnet18": 224, "googlenet": 224}


@functools.cache
def model_dict(model: str, image: int) -> str:
    """The model at ``image`` x ``image`` as YAML text: the zoo file at its own size, else the zoo's
    PyTorch definition imported at that size (every layer's FLOPs and tensor sizes follow)."""
    zoo = yaml.safe_load((ZOO / "models" / f"{model}.yaml").read_text())
    if zoo["layers"][0].get("attrs", {}).get("shape_in", [0, 0, image])[-1] == image:
        return yaml.safe_dump(zoo)
    import torch

    from toolchain.importers.pytorch import from_module
    from toolchain.models import cnn

    with torch.device("meta"):
        module, x = getattr(cnn, model)(), torch.zeros(1, 3, image, image)
    return yaml.safe_dump(dict(from_module(module, (x,), "module", name=f"{model}_{image}")))


def instance(model: str, network: str, mbit: float | None = None, encoding: str = "float32",
             image: int | None = None) -> Instance:
    """``model`` on the edge + cloud system over a catalogue ``network`` (bandwidth ``mbit`` if given),
    its input ``image`` pixels square (default :data:`IMAGE`), float32 or one 8-bit RGB frame."""
    side = IMAGE[model] if image is None else image
    m = yaml.safe_load(model_dict(model, side))
    if encoding == "uint8":
        m["inputs"][0]["bytes"] = 3 * side * side
    s = build_system([EDGE, CLOUD], [network])
    if mbit is not None:
        s["links"][0]["bandwidth"] = f"{mbit:.12g} Mbit/s"
    data = {"dnnpart": 1, "name": f"{model}--{EDGE}-{CLOUD}-{network}", "model": m, "system": s,
            "problem": {"objective": "latency"}}
    return load_instance_data(data, file=f"dads:{model}/{network}/{mbit}")


def cut_of(inst: Instance, placement: dict[str, str]) -> str:
    """The cut in words: ``input``, ``edge only``, or ``after X`` (X: the tensors uploaded)."""
    ev = evaluate(inst, placement)
    up = [t.tensor for t in ev.transfers if t.src == EDGE]
    back = [t.tensor for t in ev.transfers if t.src == CLOUD and t.tensor not in {
        inst.graph.layer_ids[o] for o in inst.graph.outputs}]
    if not up:
        return "edge only"
    text = "input" if up == list(inst.graph.input_ids) else "after " + " + ".join(up)
    return text + (f" (returns {' + '.join(back)})" if back else "")


def chain_cut(inst: Instance) -> tuple[float, dict[str, str]]:
    """Neurosurgeon's cut on the topological order: the best prefix on the edge (evaluated)."""
    prefixes = single_cut_placements(inst.n, 2)[: inst.n + 1]  # layers 0..i-1 on device 0 (the edge)
    bm = batch_metrics(inst, prefixes)
    obj = np.where(bm.feasible(), bm.objective(), math.inf)
    i = int(np.argmin(obj))
    return float(obj[i]), inst.placement_dict(prefixes[i])


def dsl(inst: Instance) -> tuple[float, dict[str, str], float]:
    """DADS's DSL: the exact minimum-cut placement, its latency and the solver's wall time."""
    res = solve(inst, "mincut")
    if res.status != Status.OPTIMAL or res.objective is None:
        raise RuntimeError(f"{inst.name}: mincut ended {res.status.value}: {res.message}")
    return res.objective, res.placement, res.wall_time_s


def best_cut(model: str, mbit: float, encoding: str, image: int | None = None) -> str:
    """The latency-optimal cut of ``model`` over the Wi-Fi link at ``mbit``."""
    inst = instance(model, "wifi", mbit, encoding, image)
    return cut_of(inst, dsl(inst)[1])


def switch_bandwidth(model: str, encoding: str, image: int | None = None, lo: float = 0.1, hi: float = 1000.0) -> float:
    """The bandwidth (Mbit/s) above which cloud-only (the input cut) is the best cut.

    Latency is affine in 1/bandwidth for every placement, so the input cut, once best, stays best
    as the bandwidth grows; bisection on a logarithmic scale to 0.1%.
    """
    if best_cut(model, hi, encoding, image) != "input":
        return math.inf
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if best_cut(model, mid, encoding, image) == "input" else (mid, hi)
    return hi


def edge_slowdown(model: str, mbit: float, last: str) -> float:
    """How many times slower the edge must compute for the input cut (cloud-only) to tie with the cut
    after ``last`` over the Wi-Fi link at ``mbit``: ``(cloud only - cut + edge part) / edge part``,
    where the edge part is the edge's compute up to ``last`` (both placements evaluated)."""
    inst = instance(model, "wifi", mbit)
    ids = list(inst.graph.layer_ids)
    k = ids.index(last)
    cut = evaluate(inst, {lay: EDGE if i <= k else CLOUD for i, lay in enumerate(ids)}).objective
    cloud = evaluate(inst, dict.fromkeys(ids, CLOUD)).objective
    edge_part = float(inst.time[: k + 1, inst.system.device_index[EDGE]].sum())
    return (cloud - cut + edge_part) / edge_part


@dataclass
class Row:
    """One model and network: DSL, chain cut, and the single-device placements (seconds)."""

    model: str
    network: str
    encoding: str
    dsl: float
    dsl_cut: str
    chain: float
    chain_cut: str
    edge_only: float
    cloud_only: float
    solve_s: float


def dag_row(model: str, label: str, encoding: str = "float32") -> Row:
    """Solve one model on one of DADS's networks."""
    net, _ = NETWORKS[label]
    inst = instance(model, net, None, encoding)
    value, placement, secs = dsl(inst)
    chain, chain_pl = chain_cut(inst)
    ids = inst.graph.layer_ids
    edge = evaluate(inst, dict.fromkeys(ids, EDGE)).objective
    cloud = evaluate(inst, dict.fromkeys(ids, CLOUD)).objective
    return Row(model, label, encoding, value, cut_of(inst, placement), chain, cut_of(inst, chain_pl), edge, cloud, secs)


def dag_table(rows: list[Row], title: str) -> Table:
    """DSL against the chain cut and the single-device placements."""
    out: list[list[Any]] = [
        [r.model, f"{r.network} ({NETWORKS[r.network][1]:g})", r.dsl_cut, r.dsl, r.chain_cut, r.chain,
         r.chain / r.dsl, r.edge_only, r.cloud_only, f"{r.edge_only / r.dsl:.3g}x", f"{r.cloud_only / r.dsl:.3g}x",
         f"{1e3 * r.solve_s:.1f}"]
        for r in rows
    ]
    cols = ["model", "network (Mbit/s)", "DSL cut (mincut)", "DSL latency (s)", "chain cut (Neurosurgeon)",
            "chain latency (s)", "chain / DSL", "edge only (s)", "cloud only (s)", "speedup vs edge",
            "speedup vs cloud", "mincut time (ms)"]
    return Table(title, cols, out, "Cuts name the tensors uploaded from the edge; 'returns' names tensors sent back "
                 "besides the model output (a later layer runs on the edge again).")


def run(fast: bool) -> Outcome:
    """The crossover, the DAG study, and (full runs) a bandwidth sweep of DAG against chain cuts."""
    numbers: dict[str, float | int | str | None] = {}
    cross: list[list[Any]] = []
    for enc in ("float32", "uint8"):
        for mbit in (18.0, 4.0):
            cut = best_cut("tiny_yolov2", mbit, enc)
            numbers[f"crossover.{enc}.cut_at_{mbit:g}mbit"] = cut
        sw = switch_bandwidth("tiny_yolov2", enc)
        numbers[f"crossover.{enc}.switch_mbit"] = sw
        label = f"{enc}, 3x288x288 ({3 * 288 * 288 * (4 if enc == 'float32' else 1):,} B)"
        cross.append([label, numbers[f"crossover.{enc}.cut_at_18mbit"], numbers[f"crossover.{enc}.cut_at_4mbit"], sw])
    numbers["crossover.edge_slowdown_at_18mbit"] = edge_slowdown("tiny_yolov2", 18.0, "pool5")
    if not fast:
        # The zoo's 416 x 416 input: every compute time and tensor scales with the image area, so the
        # switch bandwidth does not move (shown to explain the earlier figures).
        sw416 = switch_bandwidth("tiny_yolov2", "float32", 416)
        numbers["crossover.float32_416.switch_mbit"] = sw416
        cross.append([f"float32, 3x416x416 ({3 * 416 * 416 * 4:,} B)", best_cut("tiny_yolov2", 18.0, "float32", 416),
                      best_cut("tiny_yolov2", 4.0, "float32", 416), sw416])
    tables = [Table("Tiny YOLOv2 crossover (Raspberry Pi 3B + V100, Wi-Fi link at the given bandwidth)",
                    ["input", "best cut at 18 Mbit/s", "best cut at 4 Mbit/s", "cloud-only best above (Mbit/s)"],
                    cross, "Published: the input at 18 Mbit/s, after max5 (our pool5) at 4 Mbit/s, for the paper's "
                    "3x288x288 float32 input (995,328 B, about 0.95 MB). The crossover does not depend on the image "
                    "size: every compute time and tensor scales with the image area.")]
    models = ("resnet18", "googlenet", "tiny_yolov2")
    labels = ("4G", "Wi-Fi") if fast else tuple(NETWORKS)
    rows = [dag_row(m, lab) for m in (models[:1] if fast else models) for lab in labels]
    tables.append(dag_table(rows, "DAG cut (DSL) against the chain cut, float32 input"))
    if not fast:
        raw = [dag_row(m, lab, "uint8") for m in models for lab in labels]
        tables.append(dag_table(raw, "DAG cut (DSL) against the chain cut, 8-bit input"))
        numbers["max_speedup_vs_edge"] = max(r.edge_only / r.dsl for r in rows)
        numbers["max_speedup_vs_cloud"] = max(r.cloud_only / r.dsl for r in rows)
        fast_links = [r for r in rows if r.network in ("4G", "Wi-Fi")]
        numbers["max_speedup_vs_cloud_4g_wifi"] = max(r.cloud_only / r.dsl for r in fast_links)
        numbers["uint8.max_speedup_vs_edge"] = max(r.edge_only / r.dsl for r in raw)
        numbers["uint8.max_speedup_vs_cloud"] = max(r.cloud_only / r.dsl for r in raw)
        sweep: list[list[Any]] = []
        worst = 1.0
        for m in ("resnet18", "googlenet"):
            ratios = []
            for mbit in np.geomspace(0.1, 1000, 25):
                inst = instance(m, "wifi", float(mbit))
                ratios.append((chain_cut(inst)[0] / dsl(inst)[0], float(mbit)))
            r, at = max(ratios)
            worst = max(worst, r)
            sweep.append([m, r, at])
        numbers["dag_over_chain_sweep_max"] = worst
        tables.append(Table("Largest chain-cut / DSL latency ratio over 0.1-1000 Mbit/s (25 bandwidths)",
                            ["model", "max ratio", "at Mbit/s"], sweep))
    numbers["dag_over_chain_max"] = max(r.chain / r.dsl for r in rows)
    notes = [
        "Edge device: the catalogue Raspberry Pi 3B (5.8 GFLOP/s effective, 2.5 GB/s); cloud: V100. The paper's "
        "prototype hardware and its measured per-layer times are not used; our times come from the roofline "
        "model of docs/instance-format.md §5.1 with catalogue figures.",
        "DSL is exact (minimum cut certified against the evaluator); the chain cut enumerates every prefix of the "
        "topological order and keeps the evaluator's best, as Neurosurgeon does on a DAG.",
    ]
    return Outcome(numbers, tables, notes)


if __name__ == "__main__":
    exit_with(main("dads", HERE, run, sys.argv[1:], (__doc__ or "").split("\n")[0]))
