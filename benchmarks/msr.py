"""Benchmark: the MSR workloads — import, evaluation, and the exact engines' options.

Run: ``python benchmarks/msr.py [--limit SECONDS] [--quick]``. Prints two tables:

1. import (``dnnpart import msr`` data, then the loader) and one vectorised evaluation of 1,000
   random placements for every throughput input, with the evaluation's time per placement;
2. the engines on BERT-24 inference (non-contiguous and contiguous) under a time limit: HiGHS with
   the default edge-pair model and with the send-once model (``raw pairs``), each with and without
   explicit symmetry breaking (``raw symmetry``), and CP-SAT with and without it; time to a proven
   optimum (or the gap at the limit), and the ratio to the fastest configuration.

``--quick`` keeps the first table and one engine row per configuration at a 10 s limit.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # paper_reproductions is not installed

from formulation.evaluator import batch_metrics
from formulation.loader import load_instance_data
from paper_reproductions.tarnawski2020.workloads import data_dir, msr_instance, workload_path
from solvers.options import SolverOptions
from solvers.registry import solve
from toolchain.importers.msr import msr_instance_data, read_msr

CONFIGS = [
    ("highs", {}),
    ("highs", {"symmetry": True}),
    ("highs", {"pairs": False}),
    ("highs", {"pairs": False, "symmetry": True}),
    ("cpsat", {}),
    ("cpsat", {"symmetry": True}),
]


def import_table() -> None:
    print("| workload | nodes | import + load s | evaluate 1000 placements s | us per placement |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted(glob.glob(str(data_dir() / "throughput-inputs" / "*" / "*.json"))):
        t0 = time.perf_counter()
        inst = load_instance_data(msr_instance_data(read_msr(path)))
        t1 = time.perf_counter()
        P = np.random.default_rng(0).integers(0, inst.k, size=(1000, inst.n))
        _ = batch_metrics(inst, P, parallel=False).period
        t2 = time.perf_counter()
        name = f"{Path(path).parent.name[:5]}/{Path(path).stem}"
        print(f"| {name} | {inst.n} | {t1 - t0:.2f} | {t2 - t1:.2f} | {1e6 * (t2 - t1) / 1000:.0f} |")


def engine_table(limit: float, configs: list[tuple[str, dict[str, bool]]]) -> None:
    print("\n| instance | engine | raw | status | max-load ms | gap | seconds | ratio to fastest |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for contiguous in (False, True):
        inst = msr_instance(workload_path("throughput", "LayerGraphs", "bert24_inference"), contiguous=contiguous)
        rows = []
        for solver, raw in configs:
            opts = SolverOptions(time_limit_s=limit, seed=0 if solver == "cpsat" else None, raw=raw)
            res = solve(inst, solver, opts)
            rows.append((solver, raw, res))
        fastest = min(r.wall_time_s for *_, r in rows if r.status.value == "optimal") if any(
            r.status.value == "optimal" for *_, r in rows) else None
        for solver, raw, res in rows:
            ratio = "-" if fastest is None or res.status.value != "optimal" else f"{res.wall_time_s / fastest:.1f}"
            ms = "-" if res.objective is None else f"{1e3 * res.objective:.5f}"
            gap = "-" if res.gap is None else f"{100 * res.gap:.2f}%"
            label = "bert24 contiguous" if contiguous else "bert24"
            print(f"| {label} | {solver} | {raw or '{}'} | {res.status.value} | {ms} | {gap} | "
                  f"{res.wall_time_s:.1f} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=float, default=60.0, help="time limit per engine run (s)")
    ap.add_argument("--quick", action="store_true", help="10 s limit")
    args = ap.parse_args()
    import_table()
    engine_table(10.0 if args.quick else args.limit, CONFIGS)


if __name__ == "__main__":
    main()
