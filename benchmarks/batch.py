"""Batch throughput: Neurosurgeon-class instances solved per minute, and Ray's overhead against the local pool.

The instances are ``instances/examples/alexnet-lte-latency.yaml`` (AlexNet, 18 layers, phone and
cloud over LTE) with the uplink bandwidth varied in memory over 0.5-32 Mbit/s, so that every task
is a distinct instance (distinct content hash) and the optimal cut moves across the range.

Two rows per executor: the default solver (``auto``), and the ``local`` baseline, whose solve is
nearly free, so that its rate shows the batch machinery's own cost per task (pickling the instance,
the worker round trip, evaluating the placement, one SQLite transaction per row). Ray's start-up
is timed separately and left out of its rates.

Run: ``.venv/bin/python benchmarks/batch.py [--n 600] [--jobs 2] [--no-ray]``. Numbers are
recorded in ``benchmarks/README.md``. Never used in tests (no timing assertions anywhere).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from formulation.loader import load_instance
from formulation.model import Instance
from solvers import batch
from toolchain.sweep import apply, parse_param, to_si

ROOT = Path(__file__).resolve().parents[1]


def variants(n: int) -> list[Instance]:
    """``n`` copies of the Neurosurgeon instance with bandwidths spread over 0.5-32 Mbit/s."""
    base = load_instance(ROOT / "instances" / "examples" / "alexnet-lte-latency.yaml")
    param = parse_param(base, "links.phone-cloud.bandwidth")
    return [apply(base, param, to_si(param, float(v))) for v in np.geomspace(0.5, 32.0, n)]


def timed(instances: list[Instance], solver: str, jobs: int, executor: str, folder: Path) -> tuple[float, int, str]:
    """Seconds for the batch, failed rows, and the methods used (``auto`` records its choice)."""
    out = folder / f"{executor}-{solver}.db"
    t0 = time.perf_counter()
    rep = batch.run(instances, [solver], out=out, jobs=jobs, executor=executor)
    seconds = time.perf_counter() - t0
    methods = batch.load_results(out)["method"].value_counts()
    return seconds, rep.n_failed, ", ".join(f"{m} x{n}" for m, n in methods.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=600, help="instances per run")
    ap.add_argument("--jobs", type=int, default=2, help="workers")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    args = ap.parse_args()
    instances = variants(args.n)
    rows: list[tuple[str, str, float, int, float, str]] = []
    ray_start = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        executors = ["local"]
        if not args.no_ray and importlib.util.find_spec("ray") is not None:
            from solvers.batch.ray_executor import start_local_ray

            t0 = time.perf_counter()
            start_local_ray(num_cpus=args.jobs)
            ray_start = time.perf_counter() - t0
            executors.append("ray")
        for executor in executors:
            for solver in ("auto", "local"):
                seconds, failed, methods = timed(instances, solver, args.jobs, executor, folder)
                rows.append((executor, solver, seconds, failed, 60.0 * len(instances) / seconds, methods))
        if ray_start is not None:
            import ray

            ray.shutdown()
    pool = {s: r for e, s, _, _, r, _ in rows if e == "local"}
    print(f"{len(instances)} instances (alexnet-lte-latency, 0.5-32 Mbit/s), {args.jobs} workers")
    print(f"{'executor':8} {'solver':6} {'seconds':>8} {'failed':>6} {'inst/min':>9} {'vs local pool':>13}  method")
    for executor, solver, seconds, failed, rate, methods in rows:
        ratio = rate / pool[solver]
        print(f"{executor:8} {solver:6} {seconds:8.2f} {failed:6d} {rate:9.0f} {ratio:13.2f}  {methods}")
    if ray_start is not None:
        print(f"Ray start-up (not included above): {ray_start:.1f} s")


if __name__ == "__main__":
    main()
