"""The three exact engines side by side (``highs``, ``scip``, ``cpsat``), and ``auto``'s parallel portfolio.

Table 1: every engine with its defaults on the same instances (sequential latency on ResNet-like
and transformer-like DAGs, the 2,000-layer x 8-device ResNet-like model, a 200-layer DAG with
memory limits, parallel latency and throughput on layered DAGs), one time limit: wall time of
``Solver.solve`` (build, start, solve, evaluation), status, objective, bound and gap.

Table 2: ``auto`` trying engines one after another (its default) against ``auto`` with
``raw={"portfolio": true}`` (the applicable general engines in parallel processes, first proof
wins, :mod:`solvers.portfolio`), on instances where no special-case method applies, with the
engine that answered. On a machine with fewer cores than engines the portfolio's processes
share the cores, so this table says whether it pays *here*.

Run: ``.venv/bin/python benchmarks/engines.py [--time-limit 60] [--only NAME,...] [--no-portfolio]``.
Results go in ``benchmarks/README.md`` (section "engines"). Never used in tests.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from formulation import generators as gen
from formulation.model import Constraints, Instance, Objective, Problem
from solvers.options import SolverOptions
from solvers.registry import get_solver
from solvers.result import Result, Status

ENGINES = ("highs", "scip", "cpsat")

INSTANCES: dict[str, Callable[[], Instance]] = {
    "resnet-500x4 seq latency": lambda: gen.instance(gen.resnet_like(500, seed=1), gen.system(4, seed=1)),
    "transformer-500x8 seq latency": lambda: gen.instance(gen.transformer_like(500, seed=1), gen.system(8, seed=1)),
    "resnet-2000x8 seq latency": lambda: gen.instance(gen.resnet_like(2000, seed=1), gen.system(8, seed=1)),
    "dag-200x4 memory seq latency": lambda: gen.instance(
        gen.layered_dag(200, seed=1), gen.system(4, seed=1, memory=True), Problem(constraints=Constraints(memory=True))
    ),
    "dag-30x3 parallel latency": lambda: gen.instance(
        gen.layered_dag(30, seed=1), gen.system(3, seed=1), Problem(Objective("latency"), "parallel")
    ),
    "dag-30x3 parallel energy": lambda: gen.instance(
        gen.layered_dag(30, seed=1), gen.system(3, seed=1), Problem(Objective("energy"), "parallel")
    ),
    "dag-50x4 throughput": lambda: gen.instance(
        gen.layered_dag(50, seed=1), gen.system(4, seed=1), Problem(Objective("throughput"))
    ),
}
#: Instances of table 2 (no special-case method applies to them).
PORTFOLIO = (
    "dag-200x4 memory seq latency",
    "dag-30x3 parallel latency",
    "dag-30x3 parallel energy",
    "dag-50x4 throughput",
)


def fmt_gap(res: Result) -> str:
    if res.status == Status.OPTIMAL:
        return "0"
    return "inf" if math.isinf(res.gap) else f"{100 * res.gap:.3g}%"


def fmt_num(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.6g}"


def engines(names: list[str], limit: float) -> None:
    print("| instance | engine | seconds | status | objective | bound | gap |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name in names:
        inst = INSTANCES[name]()
        for eng in ENGINES:
            res = get_solver(eng).solve(inst, SolverOptions(time_limit_s=limit))
            print(
                f"| {name} | {eng} | {res.wall_time_s:.2f} | {res.status.value} | {fmt_num(res.objective)} | "
                f"{fmt_num(res.bound)} | {fmt_gap(res)} |",
                flush=True,
            )


def portfolio(names: list[str], limit: float) -> None:
    print("\n| instance | auto (one after another) s | status | engine | portfolio s | status | engine | ratio |")
    print("|---|---:|---|---|---:|---|---|---:|")
    auto = get_solver("auto")
    for name in names:
        inst = INSTANCES[name]()
        seq = auto.solve(inst, SolverOptions(time_limit_s=limit))
        par = auto.solve(inst, SolverOptions(time_limit_s=limit, raw={"portfolio": True}))
        print(
            f"| {name} | {seq.wall_time_s:.2f} | {seq.status.value} | {seq.method} | {par.wall_time_s:.2f} | "
            f"{par.status.value} | {par.method} | {par.wall_time_s / max(seq.wall_time_s, 1e-9):.2f} |",
            flush=True,
        )
        for row in par.extra.get("portfolio", []):
            cell = f"{row['solver']}: {row['status']}, bound {fmt_num(row.get('bound'))}"
            print(f"|   {cell} | | | | | | | |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--only", default="", help="comma-separated instance names (default: all)")
    ap.add_argument("--no-portfolio", action="store_true")
    a = ap.parse_args()
    names = [n for n in a.only.split(",") if n] or list(INSTANCES)
    engines(names, a.time_limit)
    if not a.no_portfolio:
        portfolio([n for n in names if n in PORTFOLIO], a.time_limit)


if __name__ == "__main__":
    main()
