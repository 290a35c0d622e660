"""CP-SAT against the MILP (HiGHS): time to optimum and gap at the time limit.

Problem classes: parallel latency (the scheduling model: interval variables against the MILP's
disjunctive schedule) and throughput (the bottleneck min-max model), on random layered DAGs
(:func:`formulation.generators.layered_dag`) of 20 / 50 / 100 / 200 layers on 2 / 4 / 8 devices
(:func:`formulation.generators.system`, fully linked, with a sink), seed 1, no constraints.

For every row and engine: the wall time of ``Solver.solve`` (build, hint, solve, evaluation), the
status, and the gap (``compute_gap`` of the evaluator's objective and the engine's proven bound)
when the limit stops it; the ratio ``MILP s / CP-SAT s`` (a lower bound, written ``>x``, when only
CP-SAT proved optimality, an upper bound ``<x`` when only the MILP did); and which engine holds the
better placement. CP-SAT runs with its defaults (2 workers, seed 0, heuristic hint); HiGHS with its
defaults (baseline warm start).

Run: ``.venv/bin/python benchmarks/cpsat.py [--time-limit 60] [--sizes 20,50,100,200]
[--devices 2,4,8] [--objectives latency,throughput]``. Results go in ``benchmarks/README.md``
(section "cpsat"). Never used in tests (no timing assertions anywhere).
"""

from __future__ import annotations

import argparse
import math

from formulation import generators as gen
from formulation.model import Instance, Objective, Problem
from solvers.options import SolverOptions
from solvers.registry import get_solver
from solvers.result import Result, Status

ENGINES = ("cpsat", "highs")


def instance(objective: str, n: int, k: int, seed: int) -> Instance:
    """The benchmark instance: parallel latency, or throughput."""
    problem = Problem(Objective("latency"), "parallel") if objective == "latency" else Problem(Objective("throughput"))
    return gen.instance(gen.layered_dag(n, seed=seed), gen.system(k, seed=seed), problem, name=f"dag{n}-k{k}")


def fmt_gap(res: Result) -> str:
    if res.status == Status.OPTIMAL:
        return "0"
    if math.isinf(res.gap):
        return "inf"
    return f"{100 * res.gap:.3g}%"


def fmt_time(res: Result, limit: float) -> str:
    return f"{res.wall_time_s:.2f}" if res.status == Status.OPTIMAL else f">{limit:g}"


def ratio(cp: Result, milp: Result) -> str:
    """MILP seconds / CP-SAT seconds, bounded when one engine hit the limit."""
    cp_ok, milp_ok = cp.status == Status.OPTIMAL, milp.status == Status.OPTIMAL
    r = milp.wall_time_s / max(cp.wall_time_s, 1e-9)
    if cp_ok and milp_ok:
        return f"{r:.2g}"
    if cp_ok:
        return f">{r:.2g}"
    if milp_ok:
        return f"<{r:.2g}"
    return "-"


def better(cp: Result, milp: Result) -> str:
    """Which engine holds the better placement (within 1e-6 relative: both)."""
    if cp.objective is None and milp.objective is None:
        return "none"
    if milp.objective is None:
        return "CP-SAT"
    if cp.objective is None:
        return "MILP"
    if math.isclose(cp.objective, milp.objective, rel_tol=1e-6, abs_tol=1e-12):
        return "both"
    return "CP-SAT" if cp.objective < milp.objective else "MILP"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--sizes", default="20,50,100,200")
    ap.add_argument("--devices", default="2,4,8")
    ap.add_argument("--objectives", default="latency,throughput")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    devices = [int(x) for x in args.devices.split(",")]
    opts = SolverOptions(time_limit_s=args.time_limit)
    print(
        "| objective | layers | devices | CP-SAT s | CP-SAT gap | MILP s | MILP gap | MILP s / CP-SAT s "
        "| better placement | CP-SAT objective | MILP objective |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for objective in args.objectives.split(","):
        for n in sizes:
            for k in devices:
                inst = instance(objective, n, k, args.seed)
                cp, milp = (get_solver(e).solve(inst, opts) for e in ENGINES)
                label = "parallel latency" if objective == "latency" else objective
                cols = [
                    label,
                    str(n),
                    str(k),
                    fmt_time(cp, args.time_limit),
                    fmt_gap(cp),
                    fmt_time(milp, args.time_limit),
                    fmt_gap(milp),
                    ratio(cp, milp),
                    better(cp, milp),
                    "-" if cp.objective is None else f"{cp.objective:.6g}",
                    "-" if milp.objective is None else f"{milp.objective:.6g}",
                ]
                print("| " + " | ".join(cols) + " |", flush=True)


if __name__ == "__main__":
    main()
