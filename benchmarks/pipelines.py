"""Benchmark: pipelines on the MSR workloads, ``pipeline-dp`` next to the artifact's own DP.

Run: ``python benchmarks/pipelines.py [--limit SECONDS] [--quick]`` from the repository root.

Workloads: ``instances/third_party/msr-dnn-partitioning/throughput-inputs`` (Tarnawski et al.,
NeurIPS 2020), imported by ``toolchain.importers.msr`` (the MSR max-load model, exactly).

1. Layer graphs (6 accelerators, 1 CPU, as in the files), ``pipeline: true``: our time, optimum,
   bound and gap next to the artifact DP's optimum and time.
2. The same graphs without contiguity (the general problem): ``pipeline-dp`` as a heuristic
   (``raw heuristic``), its pipeline's max-load and the cheap lower bound of the general problem,
   next to the best known non-contiguous solution (paper_reproductions/tarnawski2020).
3. Operator graphs (BERT L-3, L-6, L-12, ResNet-50) on k = 2, 4, 8, 16 accelerators and no CPU,
   ``pipeline: true``.
4. ``--exact``: the same operator graphs with ``contiguous: true`` (convex stages, the problem of
   paper_reproductions/archer2024) solved by an exact engine (``--engine``, default ``cpsat``),
   which starts from pipeline-dp's pipeline and reports the larger of its own bound and Archer et
   al.'s (ICML 2024) bounds (solvers/archer_bounds.py: combinatorial and bottleneck-block columns);
   ``bound / best known`` divides by the better of our solution and the artifact DP's optimum, with
   the geometric mean per k. Then the layer graphs without contiguity (``--exact-limit``, default
   300 s) with the same engine. ``--raw`` passes the engine's raw options (JSON), e.g.
   ``'{"symmetry": true}'`` for the symmetry-breaking rule of interchangeable devices.
5. ``--cuts``: the operator graphs with ``pipeline: true`` solved by CP-SAT and HiGHS with and
   without the stage-order rows of interchangeable devices (raw ``pipeline_cuts``,
   formulation/stage_order.py), each with its defaults otherwise (Archer bounds, pipeline-dp
   start), ``--cuts-limit`` seconds (default 30) per run: status, bound, bound / optimum (the
   artifact DP's pipeline optimum is the optimum of these instances), seconds, model size.

Reference values: the artifact's ``throughput-dp/dp.cpp`` (github.com/msr-fiddle/dnn-partitioning,
commit b207b6ad27a1407d321f1e028cea96d7f2c90e3e, built with ``g++ -O3``) run on the same files on
this 2-core machine by ``paper_reproductions/tarnawski2020/artifact/run_artifact_dp.sh``; its
optimum and wall time are read from ``logs/summary.tsv`` there (the command of each row is in that
file). ``ratio`` is our time over the artifact's.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from formulation.loader import load_instance_data  # noqa: E402
from formulation.model import Instance  # noqa: E402
from solvers.options import SolverOptions  # noqa: E402
from solvers.registry import solve  # noqa: E402
from solvers.result import Result  # noqa: E402
from toolchain.importers.msr import msr_instance_data, read_msr  # noqa: E402

DATA = ROOT / "instances" / "third_party" / "msr-dnn-partitioning" / "throughput-inputs"
SUMMARY = ROOT / "paper_reproductions" / "tarnawski2020" / "artifact" / "logs" / "summary.tsv"
LAYER_GRAPHS = ["bert24", "gnmt", "resnet50", "inceptionv3"]
OPERATOR_GRAPHS = ["bert_l-3", "bert_l-6", "bert_l-12", "resnet50"]
#: Best known non-contiguous max-load (ms) and how it stands (benchmarks/README.md, "pipelines", the
#: exact engines on the layer graphs without contiguity).
NON_CONTIGUOUS_BEST = {
    "bert24": ("17.71471875", "proven"),
    "gnmt": ("31.6873", "gap 0.07%"),
    "resnet50": ("33.2351", "gap 0.38%"),
    "inceptionv3": ("51.1618", "gap 0.29%"),
}


def artifact_rows() -> dict[str, tuple[str, str]]:
    """case -> (artifact optimum in ms or 'none', wall seconds) from the artifact run's summary."""
    with SUMMARY.open() as f:
        return {row["case"]: (row["result"], row["wall_s"]) for row in csv.DictReader(f, delimiter="\t")}


def instance(graph: str, name: str, *, pipeline: bool, contiguous: bool, fpgas: int | None = None) -> Instance:
    """An MSR inference workload; ``fpgas`` (with no CPU) overrides the file's counts."""
    w = read_msr(DATA / graph / f"{name}_inference.json")
    data = msr_instance_data(w, contiguous=contiguous, fpgas=fpgas, cpus=0 if fpgas is not None else None)
    if pipeline:
        data["problem"]["constraints"]["pipeline"] = True
    return load_instance_data(data)


def cells(res: Result) -> str:
    """``status | ms | bound ms | gap | seconds``."""
    ms = "-" if res.objective is None else f"{1e3 * res.objective:.9g}"
    bound = "-" if res.bound is None or not math.isfinite(res.bound) else f"{1e3 * res.bound:.6g}"
    gap = "-" if res.gap is None or not math.isfinite(res.gap) else f"{100 * res.gap:.2f}%"
    return f"{res.status.value} | {ms} | {bound} | {gap} | {res.wall_time_s:.2f}"


def ratio(ours: float, theirs: str) -> str:
    try:
        t = float(theirs)
    except ValueError:
        return "-"
    return f"{ours / t:.2g}" if t > 0 else "-"


def agree(res: Result, optimum: str) -> str:
    """Whether our objective equals the artifact's optimum (relative 1e-9)."""
    if res.objective is None or optimum == "none":
        return "-"
    return "yes" if abs(1e3 * res.objective - float(optimum)) <= 1e-9 * float(optimum) else "NO"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=float, default=60.0, help="time limit per run (s)")
    ap.add_argument("--quick", action="store_true", help="layer graphs and BERT L-12 only")
    ap.add_argument("--exact", action="store_true", help="only section 4: exact engines with Archer bounds")
    ap.add_argument("--engine", default="cpsat", help="exact engine of section 4")
    ap.add_argument("--exact-limit", type=float, default=300.0, help="limit of the non-contiguous layer graphs (s)")
    ap.add_argument("--part", choices=["both", "operators", "layers"], default="both", help="parts of section 4")
    ap.add_argument("--raw", default="{}", help="raw options (JSON) of section 4's engine, e.g. '{\"symmetry\": true}'")
    ap.add_argument("--cuts", action="store_true", help="only section 5: stage-order rows on and off")
    ap.add_argument("--cuts-limit", type=float, default=30.0, help="time limit of section 5 (s)")
    ap.add_argument("--graphs", default="bert_l-12,resnet50", help="operator graphs of section 5")
    ap.add_argument("--ks", default="8,16", help="accelerator counts of section 5")
    args = ap.parse_args()
    if args.cuts:
        cuts_section(args)
        return
    if args.exact:
        exact_section(args)
        return
    art = artifact_rows()
    opts = SolverOptions(time_limit_s=args.limit)

    print(
        "| layer graph, pipeline | status | max-load ms | bound ms | gap | ours s | artifact DP ms | artifact s "
        "| ours / artifact time | same optimum |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in LAYER_GRAPHS:
        res = solve(instance("LayerGraphs", name, pipeline=True, contiguous=True), "pipeline-dp", opts)
        opt, secs = art[f"layer_{name}_dp"]
        shown = opt if opt != "none" else "not finished (exit 124)"
        print(f"| {name} | {cells(res)} | {shown} | {secs} | {ratio(res.wall_time_s, secs)} | {agree(res, opt)} |")

    print(
        "\n| layer graph, no contiguity | pipeline-dp (heuristic) status | max-load ms | bound ms | gap | ours s "
        "| best known non-contiguous ms |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    heuristic = SolverOptions(time_limit_s=args.limit, raw={"heuristic": True})
    for name in LAYER_GRAPHS:
        res = solve(instance("LayerGraphs", name, pipeline=False, contiguous=False), "pipeline-dp", heuristic)
        best, how = NON_CONTIGUOUS_BEST[name]
        print(f"| {name} | {cells(res)} | {best} ({how}) |")

    print(
        "\n| operator graph | k | status | max-load ms | bound ms | gap | ours s | artifact DP ms | artifact s "
        "| ours / artifact time | same optimum |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in ["bert_l-12"] if args.quick else OPERATOR_GRAPHS:
        for k in (2, 4, 8, 16):
            res = solve(instance("OperatorGraphs", name, pipeline=True, contiguous=True, fpgas=k), "pipeline-dp", opts)
            opt, secs = art[f"operator_{name}_k{k}_dp"]
            print(
                f"| {name} | {k} | {cells(res)} | {opt} | {secs} | {ratio(res.wall_time_s, secs)} | {agree(res, opt)} |"
            )


def archer_cells(res: Result) -> str:
    """``bound source | Archer combinatorial ms | Archer bottleneck ms | packing ms`` from an
    engine's extra."""
    a = res.extra.get("archer") or {}

    def ms(key: str) -> str:
        v = a.get(key)
        return f"{1e3 * v:.6g}" if isinstance(v, float) and math.isfinite(v) else "-"

    return f"{res.extra.get('bound_source', '-')} | {ms('combinatorial')} | {ms('bottleneck')} | {ms('packing')}"


def exact_section(args: argparse.Namespace) -> None:
    """Section 4 of the module docstring."""
    art = artifact_rows()
    opts = SolverOptions(time_limit_s=args.limit, raw=json.loads(args.raw))
    print(
        f"| operator graph, contiguous | k | {args.engine} status | max-load ms | bound ms | gap | s | bound from "
        "| Archer combinatorial ms | Archer bottleneck ms | packing ms | artifact DP ms | at least as good as DP "
        "| bound / best known |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|")
    ratios: dict[int, list[float]] = {}
    for name in OPERATOR_GRAPHS if args.part != "layers" else []:
        for k in (2, 4, 8, 16):
            res = solve(instance("OperatorGraphs", name, pipeline=False, contiguous=True, fpgas=k), args.engine, opts)
            opt, _ = art[f"operator_{name}_k{k}_dp"]
            ours = math.inf if res.objective is None else 1e3 * res.objective
            best = min(ours, float(opt)) if opt != "none" else ours
            good = "-" if opt == "none" else ("yes" if ours <= float(opt) * (1 + 1e-9) else "NO")
            r = 1e3 * res.bound / best if math.isfinite(res.bound) and math.isfinite(best) else 0.0
            ratios.setdefault(k, []).append(r)
            print(f"| {name} | {k} | {cells(res)} | {archer_cells(res)} | {opt} | {good} | {r:.4f} |")
    for k, rs in ratios.items():
        gm = math.exp(sum(math.log(max(r, 1e-12)) for r in rs) / len(rs))
        print(f"\ngeometric mean of bound / best known, k = {k}: {gm:.4f} ({len(rs)} graphs)")
    print(
        f"\n| layer graph, no contiguity | {args.engine} status | max-load ms | bound ms | gap | s | bound from "
        "| Archer combinatorial ms | Archer bottleneck ms | packing ms |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
    lim = SolverOptions(time_limit_s=args.exact_limit, raw=json.loads(args.raw))
    for name in ["gnmt", "resnet50", "inceptionv3"] if args.part != "operators" else []:
        res = solve(instance("LayerGraphs", name, pipeline=False, contiguous=False), args.engine, lim)
        print(f"| {name} | {cells(res)} | {archer_cells(res)} |")


def cuts_section(args: argparse.Namespace) -> None:
    """Section 5 of the module docstring."""
    art = artifact_rows()
    print(
        "| operator graph, pipeline | k | engine | stage-order rows | status | max-load ms | bound ms | gap | s "
        "| bound / optimum | model size |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|---|")
    for name in args.graphs.split(","):
        for k in (int(x) for x in args.ks.split(",")):
            inst = instance("OperatorGraphs", name, pipeline=True, contiguous=True, fpgas=k)
            opt = float(art[f"operator_{name}_k{k}_dp"][0])
            for engine in ("cpsat", "highs"):
                for cuts in (False, True):
                    opts = SolverOptions(time_limit_s=args.cuts_limit, seed=0, raw={"pipeline_cuts": cuts})
                    res = solve(inst, engine, opts)
                    r = 1e3 * res.bound / opt if math.isfinite(res.bound) else 0.0
                    e = res.extra
                    size = (
                        f"{e.get('variables')} vars, {e.get('constraints')} constraints"
                        if engine == "cpsat"
                        else f"{e.get('model_columns')} cols, {e.get('model_rows')} rows"
                    )
                    print(
                        f"| {name} | {k} | {engine} | {'on' if cuts else 'off'} | {cells(res)} | {r:.4f} | {size} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
