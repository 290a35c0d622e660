"""Reproduction: lower bounds for pipelined DNN inference (Archer et al., ICML 2024).

Archer, Fahrbach, Liu and Prabhu ("Practical Performance Guarantees for Pipelined DNN Inference",
ICML 2024) partition a model graph into k pipeline stages on identical devices, minimising the
running time of the bottleneck stage including communication, and prove lower bounds with MIP
relaxations: across 369 production graphs and k = 16, the geometric mean of (lower bound / best
partition found) rises from 0.4598 (a combinatorial bound) to 0.9452 (their MIP bounds). Their
graphs are not public; here the same question is asked of the public MSR *operator* graphs (BERT
L-3, L-6, L-12 and ResNet-50 inference, 235-783 operators, from the Tarnawski et al. NeurIPS 2020
artifact), under the MSR cost model (``dnnpart import msr``: a stage pays its compute plus each
tensor it receives and each tensor it sends, once), with k = 2, 4, 8, 16 identical accelerators,
no CPU, and contiguous stages:

* best solution found and best proven lower bound over two engines (CP-SAT and the MILP with HiGHS,
  each under :data:`TIME_LIMIT_S`, both started from the best partition found for the previous k),
  and the cheap bound of :func:`solvers.bounds.cheap_lower_bound` (total work / k; the heaviest
  operator or colocation class with the communication it cannot avoid);
* per k, the geometric means of bound / best over the four graphs, set against the paper's k = 16
  figures.

``--fast`` (the tests' subset): BERT L-3 with k = 2, each engine under 10 s.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from paper_reproductions.common import Outcome, Table, exit_with, main
from paper_reproductions.tarnawski2020.workloads import (
    best_of,
    cross_check,
    msr_instance,
    quotient_is_acyclic,
    run_engine,
    workload_path,
)
from solvers.bounds import cheap_lower_bound
from solvers.result import compute_gap

HERE = Path(__file__).resolve().parent
GRAPHS = ("bert_l-3", "bert_l-6", "bert_l-12", "resnet50")
STAGES = (2, 4, 8, 16)
ENGINES = ("cpsat", "highs")
#: Time limit of each engine on each (graph, k) (s).
TIME_LIMIT_S = 60.0
FAST_LIMIT_S = 10.0


def geomean(values: list[float]) -> float | None:
    """Geometric mean (None when empty)."""
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def run(fast: bool) -> Outcome:
    """Best solution and lower bounds for every graph and k (``fast``: BERT L-3, k = 2)."""
    numbers: dict[str, float | int | str | None] = {}
    problems: list[str] = []
    rows: list[list[Any]] = []
    limit = FAST_LIMIT_S if fast else TIME_LIMIT_S
    graphs = ("bert_l-3",) if fast else GRAPHS
    stages = (2,) if fast else STAGES
    ratio_mip: dict[int, list[float]] = {k: [] for k in stages}
    ratio_comb: dict[int, list[float]] = {k: [] for k in stages}
    for name in graphs:
        path = workload_path("throughput", "OperatorGraphs", f"{name}_inference")
        start: dict[str, str] | None = None
        for k in stages:
            inst = msr_instance(path, contiguous=True, fpgas=k, cpus=0)
            # The best partition into fewer stages is one into k stages (some left empty): both engines
            # start from it, so the best found never gets worse as k grows.
            runs = [run_engine(inst, e, limit, warm_start=start) for e in ENGINES]
            problems += cross_check(runs, f"{name} k={k}")
            best, bound = best_of(runs)
            found = [r for r in runs if r.period_ms is not None and r.placement]
            if found:
                start = min(found, key=lambda r: r.period_ms or 0.0).placement
            comb = 1e3 * cheap_lower_bound(inst)
            if best is None:
                problems.append(f"{name} k={k}: no engine found a solution in {limit:g} s")
                continue
            lb = max(comb, bound or 0.0)
            key = f"{name}.k{k}"
            proven = any(r.proven for r in runs)
            numbers[f"{key}.best_ms"] = best
            numbers[f"{key}.lower_bound_ms"] = lb
            # The one gap formula, in seconds (its noise floor is absolute below 1 unit).
            numbers[f"{key}.gap"] = 0.0 if proven else compute_gap(best / 1e3, lb / 1e3)
            ratio_mip[k].append(lb / best)
            ratio_comb[k].append(comb / best)
            rows.append([name, inst.n, k, best, lb, numbers[f"{key}.gap"], comb / best, lb / best,
                         *(r.cell() for r in runs), quotient_is_acyclic(inst, start) if start else None])
    means = []
    for k in stages:
        gm, gc = geomean(ratio_mip[k]), geomean(ratio_comb[k])
        numbers[f"k{k}.geomean_bound_over_best"] = gm
        numbers[f"k{k}.geomean_combinatorial_over_best"] = gc
        means.append([k, len(ratio_mip[k]), gc, gm])
    tables = [
        Table("Best solution and best lower bound, MSR operator graphs, k identical stages (contiguous)",
              ["graph", "operators", "k", "best (ms)", "best bound (ms)", "gap", "cheap bound / best",
               "bound / best", *ENGINES, "pipeline order"],
              rows, f"Each engine under a {limit:g} s limit on 2 shared cores. Best bound: the larger of the engines' "
              "proven bounds and the cheap bound (total work / k; the heaviest operator or colocation class with the "
              "communication it cannot avoid). 'pipeline order': the best partition's stages can be ordered so that "
              "every edge goes forward."),
        Table("Geometric means over the graphs (Archer et al. report 0.4598 and 0.9452 at k = 16 on their graphs)",
              ["k", "graphs", "cheap bound / best", "best bound / best"], means),
    ]
    notes = [
        "Archer et al.'s 369 production graphs (and the 1000 REGAL graphs) are not available here; the MSR operator "
        "graphs are the public operator-level DNN graphs with a bottleneck cost model including communication.",
        "Cost model: the MSR max-load (Tarnawski et al., NeurIPS 2020) with no CPU: a stage's time is its compute "
        "plus the transfer cost of every tensor it sends and receives, each once; Archer et al.'s model may differ "
        "in how communication is counted (see README).",
        "Contiguity here is per-stage convexity; a pipeline additionally orders the stages (every edge forward). "
        "Convexity is the weaker requirement, so our optimum and bounds are lower bounds for the ordered problem.",
    ]
    return Outcome(numbers, tables, notes, problems)


if __name__ == "__main__":
    exit_with(main("archer2024", HERE, run, sys.argv[1:],
                   "Best partitions and lower bounds on the MSR operator graphs (Archer et al., ICML 2024)"))
