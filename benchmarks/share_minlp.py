"""Sizes the exact ``share`` MINLP (``scip-share``, solvers/scip_share.py) solves, next to ``tang``.

Run: ``.venv/bin/python benchmarks/share_minlp.py`` (``--users 2,4,8 --model alexnet --limit 60``).
For N users of one zoo model (``rpi3b`` devices around an ``edge-gpu`` server over Wi-Fi, ``share``):

* Tang et al.'s setting (one server, ``max``): ``tang`` (polynomial, exact) and ``scip-share`` side
  by side — the same optimum, and the time ratio;
* three tiers (the server linked to a ``v100`` cloud by WAN, shortest routes through the server),
  ``max`` and ``sum``: outside ``tang``'s setting, ``scip-share`` alone (status, gap at the limit).

Numbers are recorded in docs/algorithms.md (the ``share`` MINLP section).
"""

from __future__ import annotations

import argparse
import time
from typing import Literal

from formulation.loader import load_instance_data
from solvers.options import SolverOptions
from solvers.registry import solve
from toolchain.scenario import build_workload


def _row(users: int, model: str, setting: str, aggregate: Literal["sum", "max"], limit: float) -> str:
    cloud = "v100" if setting == "3-tier" else None
    # one server: Tang et al.'s setting (each user on its own device and the server), which tang solves
    inst = load_instance_data(build_workload(users, [model], "rpi3b", "edge-gpu", "wifi", cloud=cloud,
                                             aggregate=aggregate, own_device=cloud is None))
    t0 = time.perf_counter()
    res = solve(inst, "scip-share", SolverOptions(time_limit_s=limit))
    t_minlp = time.perf_counter() - t0
    tang = "–"
    if cloud is None and aggregate == "max":
        t0 = time.perf_counter()
        ref = solve(inst, "tang")
        t_tang = time.perf_counter() - t0
        same = "same" if abs((res.objective or 0) - (ref.objective or 0)) <= 1e-6 * (ref.objective or 1) else "differs"
        tang = f"{t_tang:.2f} s ({same}, ratio {t_minlp / t_tang:.0f})"
    obj = f"{res.objective * 1e3:.3f} ms" if res.objective is not None else "–"
    return (f"| {users} | {setting} | {aggregate} | {inst.n} | {inst.k} | {res.status.value} | {obj} | "
            f"{res.gap:.2g} | {t_minlp:.1f} | {tang} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="2,4,8")
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--limit", type=float, default=60.0)
    args = parser.parse_args()
    print("| users | setting | aggregate | layers | devices | status | objective | gap | scip-share s | tang |")
    print("|---:|---|---|---:|---:|---|---:|---:|---:|---|")
    for n in (int(x) for x in args.users.split(",")):
        print(_row(n, args.model, "one server", "max", args.limit), flush=True)
        for agg in ("max", "sum"):
            print(_row(n, args.model, "3-tier", agg, args.limit), flush=True)


if __name__ == "__main__":
    main()
