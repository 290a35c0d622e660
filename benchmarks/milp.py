"""MILP benchmark: model build (ours, direct hand-over, Pyomo) against HiGHS solve time, gap in 60 s.

Families: chains (Neurosurgeon/JointDNN shape), ResNet-like DAGs and transformer-like DAGs from
:mod:`formulation.generators`, at 100 / 500 / 2,000 layers on 2 / 4 / 8 devices
(:func:`formulation.generators.system`, seed 1), sequential latency, no memory limits. For every
row:

* ``build``: the backend-neutral model (:func:`formulation.milp.build_milp`);
* ``direct``: scaling and ``highspy.Highs.passModel``; ``pyomo``: scaling, the Pyomo model and
  its hand-over to HiGHS through Pyomo's interface (a run with a 1 ms limit), i.e. what the Pyomo
  path costs before HiGHS works -- the ratio ``pyomo / solve`` is the measurement behind making
  the direct path HiGHS's default;
* ``solve``: HiGHS through the direct path, 60 s limit, the status and gap it reached;
* on 2 devices, the exact special-case algorithms that apply (scan, shortest-path, DP, min-cut):
  the fastest one's time, the ratio MILP / special, and whether the optima agree.

A second table is the acceptance case: a 200-layer layered DAG on 4 devices with finite device
memories (sequential latency, memory constraint), several seeds, to be proved optimal in < 60 s.
``--variants`` adds the comparison of the edge-pair model (default) with the send-once model.
``--reduction`` adds, at 2,000 layers on 4 and 8 devices, the ``highs`` and ``scip`` solvers with
and without the removal of options proven useless (:mod:`solvers.milp.bound_reduction`, on by
default; ``raw={"reduce": false}`` is the model as built before it): columns, options removed,
seconds, status and gap.

Run: ``.venv/bin/python benchmarks/milp.py [--time-limit 60] [--sizes 100,500,2000]
[--devices 2,4,8] [--no-pyomo] [--variants] [--reduction] [--skip-grid] [--skip-acceptance]``.
Results go in ``benchmarks/README.md`` (section "milp"). Never used in tests.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from formulation import generators as gen
from formulation.milp import build_milp
from formulation.model import Constraints, Graph, Instance, Problem
from solvers.milp.backend import RunSettings
from solvers.milp.highs_direct import HighsDirect
from solvers.milp.pyomo_backend import PyomoBackend
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, names
from solvers.result import Status

FAMILIES: dict[str, Callable[..., Graph]] = {
    "chain": gen.chain,
    "resnet": gen.resnet_like,
    "transformer": gen.transformer_like,
}
SPECIAL = ("scan", "shortest-path", "dp", "mincut")
R = TypeVar("R")


def timed(fn: Callable[..., R], *args: Any, **kwargs: Any) -> tuple[R, float]:
    """``fn(*args, **kwargs)`` and the seconds it took."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def special_case(inst: Instance) -> tuple[str, float, float] | None:
    """Fastest applicable exact special-case algorithm: (name, seconds, objective)."""
    best: tuple[str, float, float] | None = None
    for name in SPECIAL:
        if name not in names():
            continue
        s = get_solver(name)
        try:
            s.check(inst, SolverOptions())
        except UnsupportedProblem:
            continue
        res, sec = timed(s.solve, inst)
        if res.status == Status.OPTIMAL and res.objective is not None and (best is None or sec < best[1]):
            best = (name, sec, float(res.objective))
    return best


def fmt_gap(g: float) -> str:
    if math.isinf(g):
        return "inf"
    return "0" if g < 1e-9 else f"{100 * g:.3g}%"


def grid(sizes: list[int], devices: list[int], limit: float, pyomo: bool) -> None:
    print(
        "| family | layers | devices | columns | rows | build s | direct s | pyomo s | solve s | status "
        "| gap | pyomo / solve | special | special s | MILP / special | same optimum |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|")
    for fam, make in FAMILIES.items():
        for n in sizes:
            g = make(n, seed=1)
            for k in devices:
                inst = gen.instance(g, gen.system(k, seed=1))
                ctx, tb = timed(build_milp, inst)
                backend, td = timed(HighsDirect, ctx)
                tp = math.nan
                if pyomo:
                    # Pyomo model, then its HiGHS interface with a 1 ms limit: the hand-over cost.
                    pb, tp = timed(PyomoBackend, ctx, "highs")
                    _, th = timed(pb.run, RunSettings(time_limit_s=1e-3))
                    tp += th
                run, ts = timed(backend.run, RunSettings(time_limit_s=limit))
                st = ctx.model.stats()
                gap = run.gap if run.values is not None else math.inf
                sp = special_case(inst) if k == 2 else None
                cols = [
                    fam,
                    str(g.n),
                    str(k),
                    f"{st['columns']:,}",
                    f"{st['rows']:,}",
                    f"{tb:.2f}",
                    f"{td:.2f}",
                    "-" if math.isnan(tp) else f"{tp:.2f}",
                    f"{ts:.2f}",
                    run.native_status,
                    fmt_gap(gap),
                    "-" if math.isnan(tp) else f"{tp / ts:.2f}",
                ]
                if sp:
                    same = run.objective is not None and math.isclose(run.objective, sp[2], rel_tol=1e-6)
                    cols += [sp[0], f"{sp[1]:.3f}", f"{(tb + td + ts) / sp[1]:.0f}", "yes" if same else "NO"]
                else:
                    cols += ["-", "-", "-", "-"]
                print("| " + " | ".join(cols) + " |", flush=True)


def acceptance(seeds: list[int], limit: float) -> None:
    print(
        "\n| 200-layer DAG, 4 devices, memory | seed | columns | rows | build s | solve s | status | gap |"
        " objective s |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for seed in seeds:
        g = gen.layered_dag(200, seed=seed)
        inst = gen.instance(g, gen.system(4, seed=seed, memory=True), Problem(constraints=Constraints(memory=True)))
        ctx, tb = timed(build_milp, inst)
        backend, td = timed(HighsDirect, ctx)
        run, ts = timed(backend.run, RunSettings(time_limit_s=limit))
        st = ctx.model.stats()
        print(
            f"| layered_dag(200) | {seed} | {st['columns']:,} | {st['rows']:,} | {tb + td:.2f} | {ts:.2f} | "
            f"{run.native_status} | {fmt_gap(run.gap)} | {run.objective:.6g} |",
            flush=True,
        )


def variants(limit: float) -> None:
    print("\n| family | layers | devices | model | columns | rows | solve s | status | gap |")
    print("|---|---:|---:|---|---:|---:|---:|---|---:|")
    for fam in FAMILIES:
        for k in (4, 8):
            g = FAMILIES[fam](500, seed=1)
            inst = gen.instance(g, gen.system(k, seed=1))
            for pairs in (True, False):
                ctx = build_milp(inst, pairs=pairs)
                backend = HighsDirect(ctx)
                run, ts = timed(backend.run, RunSettings(time_limit_s=limit))
                st = ctx.model.stats()
                print(
                    f"| {fam} | {g.n} | {k} | {'edge-pair' if pairs else 'send-once'} | {st['columns']:,} | "
                    f"{st['rows']:,} | {ts:.2f} | {run.native_status} | {fmt_gap(run.gap)} |",
                    flush=True,
                )


def reduction(limit: float, engines: list[str]) -> None:
    print("\n| family | layers | devices | engine | reduce | columns | options removed | seconds | status | gap |")
    print("|---|---:|---:|---|---|---:|---:|---:|---|---:|")
    for fam in FAMILIES:
        for k in (4, 8):
            g = FAMILIES[fam](2000, seed=1)
            inst = gen.instance(g, gen.system(k, seed=1))
            for eng in engines:
                for reduce in (False, True):
                    res = get_solver(eng).solve(inst, SolverOptions(time_limit_s=limit, raw={"reduce": reduce}))
                    gap = 0.0 if res.status == Status.OPTIMAL else res.gap
                    print(
                        f"| {fam} | {g.n} | {k} | {eng} | {'on' if reduce else 'off'} | "
                        f"{res.extra.get('model_columns', 0):,} | {res.extra.get('reduced_options', 0):,} | "
                        f"{res.wall_time_s:.2f} | {res.status.value} | {fmt_gap(gap)} |",
                        flush=True,
                    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--sizes", default="100,500,2000")
    ap.add_argument("--devices", default="2,4,8")
    ap.add_argument("--no-pyomo", action="store_true", help="skip the Pyomo build measurement")
    ap.add_argument("--variants", action="store_true", help="also compare the edge-pair and send-once models")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-acceptance", action="store_true")
    ap.add_argument("--reduction", action="store_true", help="with and without the removal of useless options")
    ap.add_argument("--engines", default="highs,scip", help="engines of the --reduction table")
    a = ap.parse_args()
    import pyomo.environ  # noqa: F401  (import once, outside the timings)

    if not a.skip_grid:
        grid([int(x) for x in a.sizes.split(",")], [int(x) for x in a.devices.split(",")], a.time_limit, not a.no_pyomo)
    if not a.skip_acceptance:
        acceptance([1, 2, 3], a.time_limit)
    if a.reduction:
        reduction(a.time_limit, a.engines.split(","))
    if a.variants:
        variants(a.time_limit)


if __name__ == "__main__":
    main()
