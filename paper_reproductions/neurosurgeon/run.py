"""Reproduction: Neurosurgeon's best partition points for latency and phone energy (Kang et al., ASPLOS 2017).

Published (expected.json): over 8 DNNs, 3 wireless networks and a mobile CPU and GPU, Neurosurgeon
improves end-to-end latency over cloud-only processing (the status quo) by 3.1x on average and up
to 40.7x, and reduces mobile energy by 59.5% on average and up to 94.7% (abstract).

Ours: AlexNet and VGG-16 from the instance zoo on the zoo's phone + cloud GPU systems over 3G,
LTE and Wi-Fi (catalogue figures: a 20 GFLOP/s phone, a V100, the Neurosurgeon/DADS bandwidths
1.1 / 5.85 / 18.88 Mbit/s, radio powers of Huang et al., MobiSys 2012). For each network and
objective (sequential latency; energy of the phone) the best single-cut placement -- Neurosurgeon's
problem, ``contiguous: true`` -- is found by ``auto`` (which picks ``scan``, exact), and the best
placement with any number of cuts by ``auto`` on the plain problem (``shortest-path``, exact).
Cloud-only and phone-only are evaluated by the evaluator. The input is sent as the float32 tensor
(602,112 B) as everywhere in dnnpart; a variant sends it as 8-bit pixels (150,528 B), the raw image.

Run ``python -m paper_reproductions.neurosurgeon.run`` (``--fast``: the subset the tests run,
without the phone-speed sensitivity).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.model import Instance
from paper_reproductions.common import Outcome, Table, exit_with, main
from solvers.registry import solve
from solvers.result import Status

HERE = Path(__file__).resolve().parent
ZOO = HERE.parents[1] / "instances" / "zoo"
MODELS = ("alexnet", "vgg16")
NETWORKS = ("3g", "lte", "wifi")
OBJECTIVES = ("latency", "energy")
#: One 224 x 224 RGB image as 8-bit pixels: what a phone uploads when it sends the raw image.
UINT8_INPUT_BYTES = 3 * 224 * 224
PHONE, CLOUD = "phone", "v100"


def instance(model: str, network: str, objective: str, contiguous: bool = True, input_bytes: float | None = None,
             phone_speed: float = 1.0) -> Instance:
    """A zoo model on the zoo's phone-cloud system over ``network``, phone energy in scope.

    ``input_bytes`` replaces the model input's size; ``phone_speed`` scales the phone's compute
    and memory bandwidth (a faster or slower phone, for the sensitivity study).
    """
    m = yaml.safe_load((ZOO / "models" / f"{model}.yaml").read_text())
    if input_bytes is not None:
        m["inputs"][0]["bytes"] = input_bytes
    s = yaml.safe_load((ZOO / "systems" / f"phone-cloud-{network}.yaml").read_text())
    if phone_speed != 1.0:
        dev = s["devices"][0]
        assert dev["id"] == PHONE
        dev["compute"] = f"{20 * phone_speed:g} GFLOP/s"  # catalogue phone: 20 GFLOP/s, 18 GB/s
        dev["memory_bandwidth"] = f"{18 * phone_speed:g} GB/s"
    data = {
        "dnnpart": 1, "name": f"{model}--phone-cloud-{network}--{objective}", "model": m, "system": s,
        "problem": {"objective": objective, "energy_scope": [PHONE], "constraints": {"contiguous": contiguous}},
    }
    return load_instance_data(data, file=f"neurosurgeon:{model}/{network}/{objective}")


def cut_of(inst: Instance, placement: dict[str, str]) -> str:
    """Where the phone hands over: ``phone only``, ``cloud only``, ``after LAYER``, or several cuts."""
    on_phone = [placement[v] == PHONE for v in inst.graph.layer_ids]
    if all(on_phone):
        return "phone only"
    if not any(on_phone):
        return "cloud only"
    k = on_phone.index(False)
    if any(on_phone[k:]):
        return "several cuts"
    return f"after {inst.graph.layer_ids[k - 1]}"


@dataclass
class Case:
    """One (model, network, objective) of the study; objective values in s or J."""

    model: str
    network: str
    objective: str
    encoding: str
    cut: str
    best: float
    method: str
    free_best: float
    cloud_only: float
    phone_only: float
    solve_s: float

    @property
    def gain(self) -> float:
        """Latency: cloud-only / best (x). Energy: 1 - best / cloud-only (a fraction)."""
        return self.gain_over(self.cloud_only)

    def gain_over(self, baseline: float) -> float:
        """Latency: baseline / best (x). Energy: 1 - best / baseline (a fraction)."""
        if self.objective == "latency":
            return baseline / self.best
        return 1 - self.best / baseline


def case(model: str, network: str, objective: str, encoding: str = "float32", phone_speed: float = 1.0) -> Case:
    """Solve one case: single cut (exact), any cuts (exact), and the two single-device placements."""
    nbytes = UINT8_INPUT_BYTES if encoding == "uint8" else None
    inst = instance(model, network, objective, True, nbytes, phone_speed)
    res = solve(inst, "auto")
    free = solve(instance(model, network, objective, False, nbytes, phone_speed), "auto")
    for r in (res, free):
        if r.status != Status.OPTIMAL or r.objective is None:
            raise RuntimeError(f"{inst.name}: {r.solver} ended {r.status.value}: {r.message}")
    assert res.objective is not None and free.objective is not None
    ids = inst.graph.layer_ids
    cloud = evaluate(inst, {v: CLOUD for v in ids}).objective
    local = evaluate(inst, {v: PHONE for v in ids}).objective
    return Case(model, network, objective, encoding, cut_of(inst, res.placement), res.objective,
                res.method or res.solver, free.objective, cloud, local, res.wall_time_s + free.wall_time_s)


def study(encoding: str, phone_speed: float = 1.0) -> list[Case]:
    """Every model, network and objective."""
    return [case(m, n, o, encoding, phone_speed) for m in MODELS for n in NETWORKS for o in OBJECTIVES]


def summary(cases: list[Case]) -> dict[str, float]:
    """Averages and maxima of the gains over cloud-only, as Neurosurgeon reports them."""
    lat = [c.gain for c in cases if c.objective == "latency"]
    energy = [100 * c.gain for c in cases if c.objective == "energy"]
    return {
        "latency_speedup_vs_cloud_mean": statistics.mean(lat),
        "latency_speedup_vs_cloud_geomean": statistics.geometric_mean(lat),
        "latency_speedup_vs_cloud_max": max(lat),
        "energy_reduction_vs_cloud_mean": statistics.mean(energy),
        "energy_reduction_vs_cloud_max": max(energy),
        "latency_speedup_vs_phone_mean": statistics.mean(
            c.phone_only / c.best for c in cases if c.objective == "latency"),
    }


def cases_table(cases: list[Case], title: str) -> Table:
    """Best split per network and objective, with the single-device placements."""
    rows: list[list[Any]] = []
    for c in cases:
        unit = "s" if c.objective == "latency" else "J"
        gains = [c.gain_over(b) for b in (c.cloud_only, c.phone_only)]
        shown = [f"{g:.3g}x" if c.objective == "latency" else f"{100 * g:.1f}%" for g in gains]
        rows.append([c.model, c.network, f"{c.objective} ({unit})", c.cut, c.best, c.cloud_only, c.phone_only, *shown,
                     "yes" if c.free_best >= c.best * (1 - 1e-9) else f"no ({c.free_best:.4g})", c.method])
    cols = ["model", "network", "objective", "best split", "best", "cloud only", "phone only", "gain vs cloud",
            "gain vs phone", "single cut optimal", "solver"]
    note = ("gain: latency speedup (baseline / best) or phone-energy reduction (1 - best / baseline). "
            "'single cut optimal': the exact optimum with any number of cuts (shortest-path) equals the best "
            "single cut (scan).")
    return Table(title, cols, rows, note)


def run(fast: bool) -> Outcome:
    """The study; ``fast`` leaves out the phone-speed sensitivity."""
    base, raw = study("float32"), study("uint8")
    numbers: dict[str, float | int | str | None] = {}
    numbers.update(summary(base))
    numbers.update({f"uint8.{k}": v for k, v in summary(raw).items()})
    numbers["intermediate_splits"] = sum(c.cut.startswith("after") for c in base + raw)
    numbers["multi_cut_better"] = sum(c.free_best < c.best * (1 - 1e-9) for c in base + raw)
    tables = [cases_table(base, "Best split per network, float32 input (602,112 B)"),
              cases_table(raw, "Best split per network, 8-bit input (150,528 B)")]
    if not fast:
        rows = []
        for speed in (0.25, 0.5, 1.0, 2.0, 4.0):
            for enc in ("float32", "uint8"):
                cs = base if (speed, enc) == (1.0, "float32") else raw if speed == 1.0 else study(enc, speed)
                s = summary(cs)
                inter = sorted({f"{c.model}/{c.network}/{c.objective}: {c.cut}"
                                for c in cs if c.cut.startswith("after")})
                rows.append([f"{20 * speed:g}", enc, s["latency_speedup_vs_cloud_mean"],
                             s["energy_reduction_vs_cloud_mean"], "; ".join(inter) or "none"])
        tables.append(Table(
            "Sensitivity to the phone's speed (compute and memory bandwidth scaled together)",
            ["phone GFLOP/s", "input", "mean latency speedup vs cloud", "mean energy reduction vs cloud (%)",
             "intermediate splits"], rows,
            "The paper's mobile platform (Jetson TK1: a 4-core Cortex-A15 CPU and a 192-core Kepler GPU) spans "
            "roughly the lower half of this range for its CPU and the upper half for its GPU."))
    notes = [
        "Averages are over the 6 (model, network) pairs of this study; the paper's averages are over 8 DNNs "
        "(image, speech and text), 3 networks and a mobile CPU and GPU, measured on a Jetson TK1 and a server "
        "with a Tesla K40. The per-network split tables have no published counterpart here and are not judged.",
        "Every best split is exact: scan (single cut, Neurosurgeon's problem) and shortest-path (any cuts) "
        "are exact methods, and every value is the evaluator's.",
    ]
    return Outcome(numbers, tables, notes)


if __name__ == "__main__":
    exit_with(main("neurosurgeon", HERE, run, sys.argv[1:], (__doc__ or "").split("\n")[0]))
