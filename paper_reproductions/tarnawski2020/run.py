"""Reproduction: max-load (throughput) optima of the MSR layer graphs (Tarnawski et al., NeurIPS 2020).

The paper places DNN graphs on k identical accelerators with a memory limit plus l CPUs and
minimises the max-load (time per sample of a pipeline); its artifact (github.com/msr-fiddle/
dnn-partitioning) holds the workloads and human-expert splits. Here every inference layer graph
of ``throughput-inputs/LayerGraphs`` (BERT-24, GNMT, ResNet-50, Inception-v3; 6 accelerators,
1 CPU) is imported with ``dnnpart import msr`` (the MSR model exactly, docs/msr.md) and solved

* non-contiguous and contiguous (each device's layers convex, the MSR IP's ``contig`` mode),
* by two independent exact engines, CP-SAT and the MILP (HiGHS), each under a
  :data:`TIME_LIMIT_S` limit; a proven gap of 0 (``compute_gap``) or the best bound and gap;

and the human-expert splits are evaluated under the same model. Checks: two proven optima agree,
no solution lies below another engine's bound, every expert split is feasible and no better than
the proven optimum. ``--fast`` (the tests' subset): BERT-24 contiguous only, HiGHS under 10 s,
and the expert splits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from formulation.evaluator import evaluate
from paper_reproductions.common import Outcome, Table, exit_with, main
from paper_reproductions.tarnawski2020.workloads import (
    Solved,
    best_of,
    cross_check,
    data_dir,
    expert_placement,
    msr_instance,
    quotient_is_acyclic,
    run_engine,
    workload_path,
)
from solvers.result import compute_gap

HERE = Path(__file__).resolve().parent
WORKLOADS = ("bert24", "gnmt", "resnet50", "inceptionv3")
ENGINES = ("cpsat", "highs")
#: Time limit of each engine on each instance (s), as the acceptance asks.
TIME_LIMIT_S = 300.0
FAST_HIGHS_LIMIT_S = 5.0


def solve_mode(name: str, contiguous: bool, engines: tuple[str, ...], limits: dict[str, float]) -> tuple[
        list[Solved], Any]:
    """Both engines on one workload and mode; returns the runs and the instance."""
    inst = msr_instance(workload_path("throughput", "LayerGraphs", f"{name}_inference"), contiguous=contiguous)
    return [run_engine(inst, e, limits[e]) for e in engines], inst


def run(fast: bool) -> Outcome:
    """Solve the layer graphs (``fast``: BERT-24 contiguous) and evaluate the expert splits."""
    numbers: dict[str, float | int | str | None] = {}
    problems: list[str] = []
    rows: list[list[Any]] = []
    expert_rows: list[list[Any]] = []
    limits = {e: TIME_LIMIT_S for e in ENGINES}
    if fast:
        limits["highs"] = FAST_HIGHS_LIMIT_S
    plan = [("bert24", True)] if fast else [(w, c) for w in WORKLOADS for c in (False, True)]
    solved: dict[tuple[str, bool], tuple[list[Solved], Any]] = {}
    for name, contiguous in plan:
        runs, inst = solve_mode(name, contiguous, ENGINES, limits)
        problems += cross_check(runs, f"{name} {'contig' if contiguous else 'noncontig'}")
        solved[(name, contiguous)] = (runs, inst)
    optimum: dict[tuple[str, bool], float] = {}
    bounds: dict[tuple[str, bool], float] = {}
    for (name, contiguous), (runs, inst) in solved.items():
        mode = "contig" if contiguous else "noncontig"
        best, bound = best_of(runs)
        note = ""
        other = solved.get((name, True))
        if not contiguous and other is not None:
            # A contiguous placement is also a non-contiguous one: the better of the two is a solution.
            alt, _ = best_of(other[0])
            if alt is not None and (best is None or alt < best):
                best, note = alt, " (the contiguous optimum)"
        proven = [r.solver for r in runs if r.proven]
        if best is not None:
            optimum[(name, contiguous)] = best
            numbers[f"{name}.{mode}.max_load_ms"] = best
        if bound is not None:
            bounds[(name, contiguous)] = bound
        gap = None if best is None or bound is None else compute_gap(best / 1e3, bound / 1e3)
        numbers[f"{name}.{mode}.gap"] = 0.0 if proven else gap
        numbers[f"{name}.{mode}.engines_proving_optimum"] = len(proven)
        for r in runs:
            numbers[f"{name}.{mode}.{r.solver}_time_s"] = round(r.wall_s, 1)
        winner = min((r for r in runs if r.period_ms is not None), key=lambda r: r.period_ms or 0.0)
        pipeline = quotient_is_acyclic(inst, winner.placement) if winner.placement else None
        rows.append([name, inst.n, mode, f"{best:.6g}{note}" if best is not None else None, bound,
                     0.0 if proven else gap, ", ".join(proven) or "none", *(r.cell() for r in runs), pipeline])
    for name in WORKLOADS:
        path = data_dir() / "human-experts" / f"{name}_inference_expert.json"
        inst = msr_instance(workload_path("throughput", "LayerGraphs", f"{name}_inference"))
        ev = evaluate(inst, expert_placement(inst, path))
        period = 1e3 * ev.period_s
        numbers[f"{name}.expert.max_load_ms"] = period
        if not ev.feasible:
            problems.append(f"{name}: the human-expert split violates {[v.kind for v in ev.violations]}")
        used = sorted({d for d in ev.placement.values()})
        cells: list[Any] = [name, period, ev.feasible, len(used)]
        for contiguous in (False, True):
            opt = optimum.get((name, contiguous))
            cells.append(None if opt is None else period / opt)
            if opt is not None:
                numbers[f"{name}.expert_over_{'contig' if contiguous else 'noncontig'}_best"] = period / opt
        lower = bounds.get((name, False))
        if lower is not None and period < lower * (1 - 1e-9):
            problems.append(f"{name}: the expert split ({period:.6g} ms) is below the proven bound {lower:.6g} ms")
        expert_rows.append(cells)
    for name in WORKLOADS:
        a, b = optimum.get((name, False)), optimum.get((name, True))
        if a is not None and b is not None:
            numbers[f"{name}.contig_over_noncontig"] = b / a
    tables = [
        Table("Max-load optima of the MSR inference layer graphs (6 accelerators, 1 CPU)",
              ["workload", "nodes", "splits", "best max-load (ms)", "best bound (ms)", "gap", "proven by",
               *(f"{e}" for e in ENGINES), "pipeline order"],
              rows, f"Each engine under a {limits['cpsat']:g} s (CP-SAT) / {limits['highs']:g} s (HiGHS) limit on "
              "2 shared cores; 'optimal' is a proven gap of 0. 'pipeline order': the best placement's devices can be "
              "ordered so that every edge goes forward (a chain of down-sets, the solution space of the MSR DP)."),
        Table("Human-expert splits under the MSR model", ["workload", "max-load (ms)", "feasible", "devices used",
                                                         "/ best non-contiguous", "/ best contiguous"],
              expert_rows),
    ]
    notes = [
        "Workloads: throughput-inputs/LayerGraphs/*_inference.json of the paper's artifact; every time is in "
        "milliseconds as in the files (cpuLatency, fpgaLatency and cost are added together by the MSR tools).",
        "The MSR model is reproduced exactly (tests/test_msr_import.py checks the period of every placement of a "
        "handmade file and of 200 random BERT-24 placements against the MSR formula).",
        "The released IP (throughput-ip/ip.py) stops at a 1% MIP gap or 20 minutes (Gurobi); its DP "
        "(throughput-dp/dp.cpp) enumerates down-sets and optimises over chains of them (contiguous splits whose "
        "devices form a pipeline).",
    ]
    return Outcome(numbers, tables, notes, problems)


if __name__ == "__main__":
    exit_with(main("tarnawski2020", HERE, run, sys.argv[1:],
                   "Max-load optima of the MSR layer graphs (Tarnawski et al., NeurIPS 2020)"))
