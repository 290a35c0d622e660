"""Speed of the polynomial exact methods, and of the MILP on the same instances when it is registered.

Run: ``.venv/bin/python benchmarks/exact.py`` (``--quick`` for the small sizes only,
``--milp-time-limit S`` to bound each MILP run, ``--no-milp`` to skip it). Prints three tables:

1. ``mincut`` on random layered DAGs and ResNet-like DAGs (:mod:`formulation.generators`) of
   100 / 1,000 / 10,000 / 100,000 layers on two devices, sequential latency;
2. the three max-flow backends on the same networks (:mod:`solvers.flow`);
3. ``dp`` on chains of 100 / 1,000 layers over 2 / 8 / 16 devices, period with contiguous stages:
   free order where the DP over device subsets is accepted, else the file's device order.

``algo s`` is the solver's own time (building its model plus solving); ``wall s`` adds the
evaluator's re-evaluation of the placement done by every solve. Targets (2-core machine):
10,000-layer min-cut <= 1 s and 1,000 x 16 DP <= 2 s of algorithm time. The numbers are recorded
in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from formulation import generators as gen
from formulation.model import Constraints, Graph, Instance, Objective, Problem
from solvers.additive import additive_costs
from solvers.flow import BACKENDS, min_cut
from solvers.mincut import build_network, scale_for
from solvers.options import SolverError, SolverOptions
from solvers.registry import get_solver, names, solver_info

MINCUT_SIZES = (100, 1_000, 10_000, 100_000)
DP_SIZES = ((100, 2), (100, 8), (100, 16), (1_000, 2), (1_000, 8), (1_000, 16))
GRAPHS: dict[str, Callable[[int], Graph]] = {
    "layered": lambda n: gen.layered_dag(n, seed=1),
    "resnet": lambda n: gen.resnet_like(n, seed=1),
}


def milp_available() -> bool:
    """A MILP solver named ``highs`` is registered and can run here."""
    return "highs" in names() and solver_info("highs").available


def run_milp(inst: Instance, limit: float, ours: float | None) -> str:
    """MILP seconds on ``inst`` (with status when not optimal) and ``=`` when its objective equals
    ``ours`` (``!=`` when not: a disagreement between two exact methods), or why it did not run."""
    try:
        res = get_solver("highs").solve(inst, SolverOptions(time_limit_s=limit))
    except SolverError as exc:
        return f"n/a ({str(exc).split(':')[-1].strip()[:40]})"
    if res.status.value != "optimal":
        return f"{res.wall_time_s:.2f} ({res.status.value}, gap {res.gap:.2g})"
    same = ours is not None and res.objective is not None and abs(res.objective - ours) <= 1e-6 * abs(ours)
    return f"{res.wall_time_s:.2f} {'=' if same else '!='}"


def ratio(milp: str, algo: float) -> str:
    try:
        return f"{float(milp.split()[0]) / algo:.3g}x"
    except ValueError:
        return "-"


def warm_up() -> None:
    """Import the flow library and fill caches so that the first row is not charged for them."""
    inst = gen.instance(gen.layered_dag(20, seed=0), gen.system(2, seed=0))
    get_solver("mincut").solve(inst)
    if milp_available():
        get_solver("highs").solve(inst)


def mincut_table(sizes: tuple[int, ...], milp: bool, milp_limit: float, milp_max: int) -> list[Instance]:
    print("\n## mincut: two devices, sequential latency")
    head = f"{'graph':8s} {'layers':>7s} {'flow nodes':>10s} {'arcs':>8s} {'algo s':>7s} {'wall s':>7s} {'status':8s}"
    if milp:
        print("(MILP s: '=' when the MILP's optimum equals min-cut's)")
    print(head + (f" {'MILP s':>26s} {'MILP/algo':>9s}" if milp else ""))
    built = []
    for gname, make in GRAPHS.items():
        for n in sizes:
            inst = gen.instance(make(n), gen.system(2, seed=3), name=f"{gname}-{n}")
            built.append(inst)
            t0 = time.perf_counter()
            res = get_solver("mincut").solve(inst)
            wall = time.perf_counter() - t0
            algo = res.build_time_s + res.solve_time_s
            row = (
                f"{gname:8s} {inst.n:7d} {res.extra['flow_nodes']:10d} {res.extra['flow_arcs']:8d} "
                f"{algo:7.3f} {wall:7.3f} {res.status.value:8s}"
            )
            if milp:
                m = run_milp(inst, milp_limit, res.objective) if inst.n <= milp_max else "skipped (size)"
                row += f" {m:>26s} {ratio(m, algo):>9s}"
            print(row, flush=True)
    return built


def backend_table(insts: list[Instance]) -> None:
    print("\n## max-flow backends on the same networks (seconds of the max-flow call)")
    print(f"{'instance':16s} " + " ".join(f"{b:>10s}" for b in BACKENDS) + "  cut values equal (ortools = networkx)")
    for inst in insts:
        net = build_network(additive_costs(inst))
        cells, values = [], {}
        for backend in BACKENDS:
            if backend == "networkx" and inst.n > 10_000:
                cells.append(f"{'-':>10s}")
                continue
            finite = np.isfinite(net.caps)
            cap_at = float(net.caps[finite].sum()) * (1 + 2.0**-20)
            capped = np.minimum(net.caps, cap_at)
            ints = np.floor(capped * scale_for(backend, capped, cap_at)).astype(np.int64)
            t0 = time.perf_counter()
            value, _ = min_cut(net.num_nodes, net.tails, net.heads, ints, 0, 1, backend)
            cells.append(f"{time.perf_counter() - t0:10.3f}")
            values[backend] = value
        same = "yes" if values.get("networkx", values["ortools"]) == values["ortools"] else "NO"
        print(f"{inst.name:16s} " + " ".join(cells) + f"  {same}", flush=True)


def dp_table(sizes: tuple[tuple[int, int], ...], milp: bool, milp_limit: float) -> None:
    print("\n## dp: chains, period, contiguous stages")
    head = f"{'layers':>6s} {'devices':>7s} {'order':6s} {'algo s':>7s} {'wall s':>7s} {'status':8s} {'period s':>10s}"
    print(head + (f" {'MILP s':>26s} {'MILP/algo':>9s}" if milp else ""))
    dp = get_solver("dp")
    for n, k in sizes:
        prob = Problem(objective=Objective("throughput"), constraints=Constraints(contiguous=True))
        inst = gen.instance(gen.chain(n, seed=1), gen.system(k, seed=3, memory=True), prob, name=f"chain-{n}x{k}")
        options = SolverOptions()
        order = "free"
        try:
            dp.check(inst, options)
        except SolverError:
            options, order = SolverOptions(raw={"order": "file"}), "file"
        t0 = time.perf_counter()
        res = dp.solve(inst, options)
        wall = time.perf_counter() - t0
        algo = res.build_time_s + res.solve_time_s
        row = f"{n:6d} {k:7d} {order:6s} {algo:7.3f} {wall:7.3f} {res.status.value:8s} {res.objective or 0:10.4g}"
        if milp:
            m = run_milp(inst, milp_limit, res.objective if res.status.value == "optimal" else None)
            row += f" {m:>26s} {ratio(m, algo):>9s}"
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 1,000 layers only")
    parser.add_argument("--no-milp", action="store_true", help="skip the MILP column")
    parser.add_argument("--milp-time-limit", type=float, default=60.0, help="seconds per MILP run (default 60)")
    parser.add_argument("--milp-max-layers", type=int, default=10_000, help="largest DAG given to the MILP")
    args = parser.parse_args()
    milp = milp_available() and not args.no_milp
    if not milp and not args.no_milp:
        print("(no MILP solver named 'highs' is registered: the MILP columns are left out)")
    warm_up()
    sizes = tuple(s for s in MINCUT_SIZES if not args.quick or s <= 1_000)
    insts = mincut_table(sizes, milp, args.milp_time_limit, args.milp_max_layers)
    backend_table(insts)
    dp_table(tuple(s for s in DP_SIZES if not args.quick or s[0] <= 100), milp, args.milp_time_limit)


if __name__ == "__main__":
    main()
