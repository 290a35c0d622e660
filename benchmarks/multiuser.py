"""Version-2 workloads (docs/instance-format.md §9): many users sharing one edge server.

Run: ``.venv/bin/python benchmarks/multiuser.py`` (``--users 2,4,8,16``). Prints one table: for N
users of ResNet-18 (``rpi3b`` devices around an ``edge-gpu`` server over Wi-Fi and 5G, ``share``,
``max``, each user on its own device and the server), the exact ``tang`` solver next to the
alternative a user would otherwise write by hand —
Tang et al.'s one cut per user applied to every user alike, every cut position scanned and each
placement judged by the evaluator (its optimal shares) — with both latencies and the time ratio.
Target (issue 14): 8 users x ResNet-18 solved exactly in <= 10 s. Numbers are recorded in
``benchmarks/README.md``.

The second acceptance target of the issue (a 3-tier routed system with 4 DNNs under ``schedule``
solved or bounded within 5 % in 60 s) needs an exact engine for the joint schedule at that size;
only brute force (tiny instances) has one today, so it is not measured here.
"""

from __future__ import annotations

import argparse
import time

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from solvers.registry import solve
from toolchain.scenario import build_workload


def symmetric_cuts(inst) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Best latency over "every user cuts at the same topological position", and positions tried."""
    wl = inst.workload
    n_per = len(wl.requests[0].layers)
    edge = next(d for d in range(inst.k) if d not in {r.source for r in wl.requests})
    best = float("inf")
    for cut in range(n_per + 1):
        place = {}
        for r in wl.requests:
            for i, v in enumerate(r.layers):
                place[inst.graph.layer_ids[v]] = inst.system.device_ids[r.source if i < cut else edge]
        ev = evaluate(inst, place)
        if ev.feasible:
            best = min(best, ev.objective)
    return best, n_per + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="2,4,8,16")
    parser.add_argument("--networks", default="wifi,5g")
    args = parser.parse_args()
    print("| users | network | layers | tang s | tang latency | one-cut scan s | one-cut latency | time ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for net in args.networks.split(","):
        for n in (int(x) for x in args.users.split(",")):
            inst = load_instance_data(build_workload(n, ["resnet18"], "rpi3b", "edge-gpu", net, own_device=True))
            t0 = time.perf_counter()
            res = solve(inst, "tang")
            t_tang = time.perf_counter() - t0
            assert res.gap == 0.0, res.message
            t0 = time.perf_counter()
            scan, _ = symmetric_cuts(inst)
            t_scan = time.perf_counter() - t0
            print(f"| {n} | {net} | {inst.n} | {t_tang:.2f} | {res.objective * 1e3:.2f} ms | {t_scan:.2f} | "
                  f"{scan * 1e3:.2f} ms | {t_scan / t_tang:.1f} |")


if __name__ == "__main__":
    main()
