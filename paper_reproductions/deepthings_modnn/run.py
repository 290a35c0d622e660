"""Reproduction: speedups of spatial partitioning over 2-6 equal edge devices (DeepThings, MoDNN).

Published (see expected.json for the sources and tolerances):

* DeepThings (Zhao, Barijough and Gerstlauer, IEEE TCAD 37(11), 2018): Fused Tile Partitioning
  of the first 16 layers of YOLOv2 on Raspberry Pi 3 devices, "scalable CNN inference speedups of
  1.7x-3.5x on 2-6 edge devices" (abstract; Sec. VI);
* MoDNN (Mao et al., DATE 2017): VGG-16 on LG Nexus 5 phones over WiFi, one-dimensional (row)
  partition of each convolution (BODP), "accelerate the DNN computation by 2.17-4.28x" with 2 to
  4 worker nodes (abstract; Sec. 5).

Ours. The layers of :mod:`.models` are split by :func:`formulation.granularity.split_spatial`,
parts are placed on the ``k`` devices by longest-processing-time first (a static stand-in for
DeepThings' work stealing), slices and gathers on the gateway ``d0``, and the evaluator measures
the parallel latency of one inference (with the insertion schedule of
:mod:`formulation.granularity.placement`) and the pipelined period; ``heft`` is also run on each
split and its placement kept when the evaluator accepts it and it is faster. The speedup is the
single-device value over the split's. Two variants per device count:

* ``paper``: the paper's own split -- DeepThings: fused ``g x g`` tiles (best grid of 2..5;
  5x5 is its default ``-n 5 -m 5 -l 16``); MoDNN: ``k`` row bands per layer gathered and
  re-scattered by the group owner (BODP);
* ``best``: the fastest of a menu of splits -- ``k`` fused bands, fused grids 2x2..5x5,
  layer-by-layer bands through the gateway, and layer-by-layer bands exchanging halos.

Run ``python -m paper_reproductions.deepthings_modnn.run`` (``--fast``: the subset the tests
run; ``--sensitivity``: a link-bandwidth sweep; ``--json``). Exit status 1 when a published end
point is missed by more than its tolerance.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from formulation.evaluator import evaluate
from formulation.granularity import insertion_schedule, natural_placement, split_spatial
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Problem, System
from paper_reproductions.deepthings_modnn.models import vgg16, yolov2

HERE = Path(__file__).parent
Mode = Literal["fused", "layerwise", "exchange"]
Split = tuple[tuple[int, int], Mode]


@dataclass(frozen=True)
class Setup:
    """Hardware assumptions (stated in README.md): effective compute and WiFi of each device."""

    compute_flops_per_s: float
    bandwidth_bits_per_s: float
    latency_s: float = 0.002


#: Raspberry Pi 3 running darknet with NNPACK (~6 GFLOP/s effective), 802.11n WiFi (~40 Mbit/s).
PI3 = Setup(6e9, 40e6)
#: Nexus 5 running a mobile framework (~3 GFLOP/s effective), WiFi Direct (~80 Mbit/s).
NEXUS5 = Setup(3e9, 80e6)

STACK = "YOLOv2 layers 0-15"
CONVS = "VGG-16 convolutions"


def system(k: int, setup: Setup) -> System:
    """``k`` equal devices ``d0..d{k-1}``, every pair linked both ways; ``d0`` is the gateway."""
    devs = [Device(f"d{i}", setup.compute_flops_per_s, tier="edge") for i in range(k)]
    bw = setup.bandwidth_bits_per_s / 8
    links = [Link(f"d{a}", f"d{b}", bw, setup.latency_s) for a in range(k) for b in range(k) if a != b]
    return System(devs, links, "d0", "d0")


def instance(name: str, layers: list[Layer], input_bytes: float, k: int, setup: Setup) -> Instance:
    """The model on ``k`` devices, parallel latency."""
    g = Graph(name, [ModelInput("image", input_bytes)], layers)
    return Instance(name, g, system(k, setup), Problem(execution="parallel"))


@dataclass
class Row:
    """One measured configuration and its speedups over one device.

    ``speedup``: latency, best valid placement found (natural or heft); ``natural_speedup``: the
    natural placement's; ``bound_speedup``: what no placement of this split can exceed (proven
    lower bound on the makespan); ``throughput_speedup``: pipelined period, natural placement.
    """

    study: str
    scope: str
    variant: str
    devices: int
    split: str
    latency_s: float
    speedup: float
    natural_speedup: float
    bound_speedup: float
    throughput_speedup: float
    flops_overhead: float
    bytes_moved: float
    placement_by: str


def measure(
    study: str, scope: str, variant: str, layers: list[Layer], input_bytes: float, k: int, setup: Setup,
    first: str, last: str, split: Split,
) -> Row:
    """Split ``first..last`` over ``k`` devices and compare with one device."""
    from solvers.bounds import parallel_latency_lower_bound
    from solvers.registry import solve
    from solvers.result import Status

    base_inst = instance(study, layers, input_bytes, 1, setup)
    base = evaluate(base_inst, {v: "d0" for v in base_inst.graph.layer_ids})
    b = base.latency_parallel_s
    if k == 1:
        return Row(study, scope, variant, 1, "none", b, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, "one device")
    (rows, cols), mode = split
    t = split_spatial(instance(study, layers, input_bytes, k, setup), first, last, rows=rows, cols=cols, mode=mode)
    pl = natural_placement(t, [f"d{i}" for i in range(k)], home="d0", assign="balanced")
    ev = evaluate(t.instance, pl, insertion_schedule(t.instance, pl))
    best, by = ev.latency_parallel_s, "natural"
    res = solve(t.instance, "heft")
    # Only a placement and schedule the evaluator accepted count.
    if res.status in (Status.FEASIBLE, Status.OPTIMAL) and res.objective is not None and res.objective < best:
        best, by = res.objective, "heft"
    lower = parallel_latency_lower_bound(t.instance)
    extra = sum(lay.flops for lay in t.instance.graph.layers) / sum(lay.flops for lay in layers) - 1
    return Row(
        study, scope, variant, k, f"{rows}x{cols} {mode}", best, b / best, b / ev.latency_parallel_s,
        b / lower if lower > 0 else float("inf"), base.period_s / ev.period_s, extra,
        sum(ev.link_bytes.values()), by,
    )


def fastest(
    study: str, scope: str, variant: str, layers: list[Layer], input_bytes: float, k: int, setup: Setup,
    first: str, last: str, splits: list[Split],
) -> Row:
    """The split of ``splits`` with the largest latency speedup."""
    rows = [measure(study, scope, variant, layers, input_bytes, k, setup, first, last, s) for s in splits]
    return max(rows, key=lambda r: r.speedup)


def menu(k: int, grids: list[int]) -> list[Split]:
    """The splits the ``best`` variant chooses from."""
    fused: list[Split] = [((g, g), "fused") for g in grids]
    return [((k, 1), "fused"), *fused, ((k, 1), "layerwise"), ((k, 1), "exchange")]


def deepthings(ks: list[int], setup: Setup = PI3, grids: list[int] | None = None, whole: bool = True) -> list[Row]:
    """DeepThings: YOLOv2 layers 0-15 over ``k`` devices; ``whole`` adds the rest on the gateway."""
    grids = grids or [2, 3, 4, 5]
    out = []
    scopes = [(False, STACK), (True, "whole YOLOv2, rest on d0")] if whole else [(False, STACK)]
    for with_tail, scope in scopes:
        layers, nbytes = yolov2(with_tail)
        args = ("deepthings", scope)
        for k in ks:
            if not with_tail:
                fused: list[Split] = [((g, g), "fused") for g in grids]
                out.append(fastest(*args, "paper", layers, nbytes, k, setup, "conv0", "conv15", fused))
            out.append(fastest(*args, "best", layers, nbytes, k, setup, "conv0", "conv15", menu(k, grids)))
    return out


def modnn(ks: list[int], setup: Setup = NEXUS5, whole: bool = True) -> list[Row]:
    """MoDNN: VGG-16's convolutional part over ``k`` devices; ``whole`` adds the FC layers on ``d0``."""
    out = []
    scopes = [(False, CONVS), (True, "whole VGG-16, FC on d0")] if whole else [(False, CONVS)]
    for with_fc, scope in scopes:
        layers, nbytes = vgg16(with_fc)
        for k in ks:
            if not with_fc:
                bodp: list[Split] = [((k, 1), "layerwise")]
                out.append(fastest("modnn", scope, "paper", layers, nbytes, k, setup, "conv1_1", "pool5", bodp))
            out.append(fastest("modnn", scope, "best", layers, nbytes, k, setup, "conv1_1", "pool5", menu(k, [2, 3])))
    return out


def check(rows: list[Row], expected: dict[str, Any]) -> list[str]:
    """Compare each study's headline rows with the published end points (expected.json).

    The speedup at the fewest and most devices must lie within the relative tolerance of the
    published figures, and it must grow with the number of devices.
    """
    problems = []
    for study, exp in expected["studies"].items():
        lo, hi = exp["speedup_range"]
        tol, metric = exp["tolerance"], exp["metric"]
        series = [(r.devices, float(getattr(r, metric))) for r in rows
                  if r.study == study and r.scope == exp["scope"] and r.variant == exp["variant"]]
        ends = dict(zip(exp["devices"], (lo, hi), strict=True))
        for k, value in series:
            if k in ends and abs(value - ends[k]) > tol * ends[k]:
                problems.append(f"{study} {k} devices: {metric} {value:.2f} vs published {ends[k]} "
                                f"(tolerance {tol:.0%})")
        values = [v for _, v in series]
        if any(b <= a for a, b in itertools.pairwise(values)):
            problems.append(f"{study}: {metric} does not grow with the number of devices: {values}")
    return problems


def table(rows: list[Row], expected: dict[str, Any]) -> str:
    """The comparison table: our speedups next to the published range."""
    head = (f"{'study':<11}{'scope':<26}{'var.':<6}{'k':>2}  {'split':<15}{'by':<8}{'latency s':>10}"
            f"{'speedup':>8}{'natural':>8}{'bound':>7}{'thr.':>7}{'halo':>6}{'MB':>7}  published")
    lines = [head]
    for r in rows:
        exp = expected["studies"][r.study]
        headline = r.scope == exp["scope"] and r.variant == exp["variant"]
        pub = f"{exp['speedup_range'][0]}-{exp['speedup_range'][1]}x" if headline else ""
        lines.append(
            f"{r.study:<11}{r.scope:<26}{r.variant:<6}{r.devices:>2}  {r.split:<15}{r.placement_by:<8}"
            f"{r.latency_s:>10.3f}{r.speedup:>7.2f}x{r.natural_speedup:>7.2f}x{r.bound_speedup:>6.2f}x"
            f"{r.throughput_speedup:>6.2f}x{r.flops_overhead:>6.0%}{r.bytes_moved / 1e6:>7.1f}  {pub}"
        )
    return "\n".join(lines)


def sensitivity(bandwidths_mbit: list[float]) -> list[dict[str, Any]]:
    """Latency speedups (paper and best variants) at 2 and the most devices, per link bandwidth."""
    out = []
    for mbit in bandwidths_mbit:
        rows = deepthings([2, 6], Setup(PI3.compute_flops_per_s, mbit * 1e6), whole=False)
        rows += modnn([2, 4], Setup(NEXUS5.compute_flops_per_s, mbit * 1e6), whole=False)
        out += [{"study": r.study, "mbit_s": mbit, "variant": r.variant, "devices": r.devices,
                 "speedup": r.speedup} for r in rows]
    return out


def run(fast: bool = False) -> list[Row]:
    """The study; ``fast`` keeps the end points (2 and 6 devices; 2 and 4 for MoDNN), headline scopes."""
    if fast:
        return deepthings([1, 2, 6], grids=[2, 3], whole=False) + modnn([1, 2, 4], whole=False)
    return deepthings([1, 2, 3, 4, 5, 6]) + modnn([1, 2, 3, 4])


def main(argv: list[str] | None = None) -> int:
    """Print the table (or JSON) and return 1 when a published end point is missed."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--fast", action="store_true", help="end points and headline scopes only")
    ap.add_argument("--sensitivity", action="store_true", help="also sweep the link bandwidth")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    expected = json.loads((HERE / "expected.json").read_text())
    rows = run(args.fast)
    problems = check(rows, expected)
    sens = sensitivity([10, 20, 40, 80, 160, 320]) if args.sensitivity else []
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "problems": problems, "sensitivity": sens}, indent=2))
    else:
        print(table(rows, expected))
        for s in sens:
            print(f"sensitivity {s['study']:<11}{s['mbit_s']:>6.0f} Mbit/s  {s['variant']:<6}{s['devices']} devices"
                  f"  {s['speedup']:.2f}x")
        for p in problems:
            print("MISS:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
