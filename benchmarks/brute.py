"""Throughput of the vectorised ``brute`` solver: placements evaluated per second.

Run: ``.venv/bin/python benchmarks/brute.py``. Prints a table; numbers are recorded in
``benchmarks/README.md``.
"""

from __future__ import annotations

import time

from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, Objective, Problem, System
from solvers.registry import solve


def chain(n: int, k: int, objective: str = "latency") -> Instance:
    layers = [
        Layer(
            f"l{i}",
            "conv",
            (f"l{i - 1}" if i else "x",),
            flops=1e8 * (1 + i % 3),
            output_bytes=1e3 * (1 + i % 5),
            param_bytes=1e5,
        )
        for i in range(n)
    ]
    devs = [
        Device(f"d{j}", 1e9 * (1 + 4 * j), power_active_w=2.0, power_idle_w=0.3, memory_bytes=1e9)
        for j in range(k)
    ]
    links = [Link(f"d{a}", f"d{b}", 1e6, 0.01, 1.0, 0.5) for a in range(k) for b in range(k) if a != b]
    return Instance(
        f"chain{n}x{k}",
        Graph("c", [ModelInput("x", 5e3)], layers),
        System(devs, links, "d0", "d0"),
        Problem(Objective(objective)),
    )  # type: ignore[arg-type]


def main() -> None:
    rows = []
    for n, k, obj in [
        (12, 2, "latency"),
        (18, 2, "latency"),
        (18, 2, "energy"),
        (11, 3, "throughput"),
        (20, 2, "latency"),
    ]:
        inst = chain(n, k, obj)
        t0 = time.perf_counter()
        res = solve(inst, "brute")
        dt = time.perf_counter() - t0
        count = k**n
        rows.append((inst.name, obj, count, dt, count / dt, res.status.value))
    print(
        f"{'instance':14s} {'objective':10s} {'placements':>11s} {'seconds':>8s} {'placements/s':>13s} status"
    )
    for name, obj, count, dt, rate, status in rows:
        print(f"{name:14s} {obj:10s} {count:11d} {dt:8.2f} {rate:13.0f} {status}")


if __name__ == "__main__":
    main()
