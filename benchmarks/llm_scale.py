"""Benchmark: LLaMA-2-70B decoding pipelined over 8 heterogeneous edge devices, block and operator granularity.

Run: ``python benchmarks/llm_scale.py [--block-limit 60] [--op-limit 300] [--op-dp]`` from the
repository root.

Instance: ``instances/zoo/llama2_70b_decode--llm-edge-8--pipeline.yaml``: the analytic LLaMA-2-70B
(``toolchain/models/llm.py``: fp16 weights, grouped-query attention, one decode step after 1,024
cached positions, the KV cache resident with its attention layers) on two RTX 3090 servers, two
Jetson AGX Orin, two Jetson Orin NX, a Xavier NX and a TX2 (224 GiB in all; the model needs 138 GB)
on Gigabit Ethernet, every device's memory enforced; objective ``throughput`` (the period of one
decode step: tokens/s = 1 / period) with ``constraints.pipeline`` (one stage per device, stages
ordered along the edges). Targets: at block granularity (82 nodes) optimal or within 2 % in
<= 60 s; at operator granularity (17,363 nodes, per-head attention; toolchain/models/llm_ops.py) a
placement and a bound within 10 % in <= 300 s.

Solvers. Block: ``pipeline-dp`` (down-set DP; a chain's down-sets are its prefixes), ``cpsat``,
``auto`` and ``dp`` (PipeEdge/EdgeShard's DP, which takes ``contiguous`` rather than ``pipeline``:
on a chain the two admit the same placements). Operators: the block optimum with every operator
on its block's device (judged by the evaluator on the operator graph), ``pipeline-dp`` with the
operator time limit (``--op-dp``; see benchmarks/README.md), and :func:`interval_refinement` of the
block optimum's pipeline. Bounds: each engine's own, the cheap bound of :mod:`solvers.bounds`, and
:func:`solvers.lp_bound.fractional_period_bound` (also part of the cheap bound now).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from formulation.evaluator import evaluate  # noqa: E402
from formulation.loader import load_instance, load_instance_data  # noqa: E402
from formulation.model import Instance  # noqa: E402
from solvers.bounds import cheap_lower_bound  # noqa: E402
from solvers.lp_bound import fractional_period_bound  # noqa: E402
from solvers.options import SolverOptions  # noqa: E402
from solvers.registry import solve  # noqa: E402
from solvers.result import compute_gap  # noqa: E402

ZOO = ROOT / "instances" / "zoo"
BLOCK_FILE = ZOO / "llama2_70b_decode--llm-edge-8--pipeline.yaml"


def cut_positions(inst: Instance, slack: float = 2.0) -> np.ndarray:
    """Positions ``p`` of the file order (a topological order) where a stage may end: those where the
    bytes of the tensors produced before ``p`` and read at or after it are at most ``slack`` times
    the least such amount (between two decoder blocks: one activation), so that no cut separates,
    say, the K/V projections from the heads that read the whole cache. ``n`` is always allowed."""
    g = inst.graph
    n = g.n
    last = np.full(n, -1)
    for v in range(n):
        for u in g.preds[v]:
            last[u] = max(last[u], v)
    diff = np.zeros(n + 1)
    for u in range(n):
        if last[u] > u:
            diff[u + 1] += g.output_bytes[u]
            diff[last[u] + 1] -= g.output_bytes[u]
    crossing = np.cumsum(diff)[1:n]  # crossing[p - 1]: bytes across a cut before position p
    ok = np.flatnonzero(crossing <= slack * crossing[crossing > 0].min()) + 1
    return np.append(ok, n)


def interval_refinement(inst: Instance, devices: list[int], lo: float, hi: float, steps: int = 50) -> np.ndarray | None:
    """A pipeline over ``devices`` in that order, refining a coarse one (Bokhari's chains-on-chains
    partitioning with a fixed device order, IEEE TC 1988, by bisection): the least threshold ``T`` in
    ``[lo, hi]`` for which filling the stages greedily along the file order (each stage takes layers
    while its compute time stays ``<= T`` and its weights fit its device's memory, ending at a
    :func:`cut_positions` position) places every layer. Intervals of a topological order satisfy the
    pipeline constraint; the evaluator judges the result (transfers, working memory). ``None`` when
    even ``hi`` fails."""
    t, w, cuts = inst.time, inst.graph.param_bytes, cut_positions(inst)
    n = inst.n
    cap = np.where(np.isfinite(inst.system.memory), inst.system.memory * (1 - 1e-3), math.inf)

    def fill(T: float) -> np.ndarray | None:
        P, start = np.empty(n, dtype=np.int64), 0
        for d in devices:
            ct, cm = np.cumsum(t[start:, d]), np.cumsum(w[start:])
            end = start + min(int(np.searchsorted(ct, T, "right")), int(np.searchsorted(cm, cap[d], "right")))
            ok = cuts[(cuts > start) & (cuts <= end)]
            if ok.size:
                P[start:ok[-1]] = d
                start = int(ok[-1])
            if start == n:
                return P
        return None

    best = fill(hi)
    if best is None:
        return None
    for _ in range(steps):
        mid = (lo + hi) / 2
        P = fill(mid)
        if P is None:
            lo = mid
        else:
            hi, best = mid, P
    return best


def operator_instance() -> Instance:
    """The block instance's system and problem with the operator graph of the same model."""
    from toolchain.models.llm import LLAMA2_70B, decoder_model

    raw = yaml.safe_load(BLOCK_FILE.read_text())
    system = yaml.safe_load((ZOO / raw["system"]["file"]).read_text())
    data = {"dnnpart": 1, "name": "llama2_70b_decode-op--llm-edge-8--pipeline",
            "model": decoder_model(LLAMA2_70B, "decode", context=1024, granularity="op"),
            "system": system, "problem": raw["problem"]}
    return load_instance_data(data)


def block_of(layer_id: str) -> str:
    """The block-granularity node an operator belongs to."""
    parts = layer_id.split(".")
    if parts[0] == "blocks":
        return ".".join(parts[:2])
    return "head" if parts[0] in ("final_norm", "head") else parts[0]


def row(case: str, method: str, objective: float | None, bound: float, seconds: float, note: str = "") -> list[Any]:
    """A table row: period, tokens/s, bound, gap (the one gap function), time."""
    ok = objective is not None and math.isfinite(objective)
    gap = compute_gap(objective, bound)
    return [case, method, f"{objective * 1e3:.2f}" if ok else "-", f"{1 / objective:.3f}" if ok else "-",  # type: ignore[operator]
            f"{bound * 1e3:.2f}" if math.isfinite(bound) else "-",
            f"{100 * gap:.2f} %" if math.isfinite(gap) else "-", f"{seconds:.1f}", note]


def run_block(limit: float) -> tuple[list[list[Any]], dict[str, str]]:
    """Every block-granularity solver; returns rows and the best placement."""
    inst = load_instance(BLOCK_FILE)
    contiguous = load_instance_data({**yaml.safe_load(BLOCK_FILE.read_text()),
                                     "problem": {"objective": "throughput", "constraints": {"contiguous": True}}},
                                    base_dir=ZOO)
    rows, best = [], None
    t0 = time.perf_counter()
    lp = fractional_period_bound(inst)
    rows.append(row("block (82)", "fractional LP bound", None, lp, time.perf_counter() - t0))
    for name, target in (("pipeline-dp", inst), ("cpsat", inst), ("auto", inst), ("dp", contiguous)):
        t0 = time.perf_counter()
        res = solve(target, name, options=SolverOptions(time_limit_s=limit))
        secs = time.perf_counter() - t0
        note = res.status.value + ("" if name != "auto" else f", chose {res.method}")
        if name == "dp":
            note += " (contiguous)"
        rows.append(row("block (82)", name, res.objective, res.bound, secs, note))
        if res.placement and (best is None or (res.objective or math.inf) < best[0]):
            best = (res.objective or math.inf, dict(res.placement))
    assert best is not None
    return rows, best[1]


def run_op(limit: float, block_placement: dict[str, str], with_dp: bool) -> list[list[Any]]:
    """Operator granularity: the expanded block optimum and pipeline-dp, with the bounds."""
    t0 = time.perf_counter()
    inst = operator_instance()
    load = time.perf_counter() - t0
    case = f"operator ({inst.n:,})"
    t0 = time.perf_counter()
    lp = fractional_period_bound(inst)
    rows = [row(case, "fractional LP bound", None, lp, time.perf_counter() - t0, f"instance built in {load:.1f} s")]
    t0 = time.perf_counter()
    cheap = cheap_lower_bound(inst)
    rows.append(row(case, "cheap bound (solvers.bounds)", None, cheap, time.perf_counter() - t0))
    t0 = time.perf_counter()
    index = {d: i for i, d in enumerate(inst.system.device_ids)}
    P = np.array([index[block_placement[block_of(lay.id)]] for lay in inst.graph.layers])
    ev = evaluate(inst, P)
    rows.append(row(case, "block optimum, operators on their block's device", ev.objective, max(lp, cheap),
                    time.perf_counter() - t0, "feasible" if ev.feasible else "INFEASIBLE"))
    t0 = time.perf_counter()
    order = list(dict.fromkeys(int(d) for d in P))  # the block optimum's stage order
    R = interval_refinement(inst, order, lp, float(ev.objective))
    if R is not None:
        ev2 = evaluate(inst, R)
        rows.append(row(case, "interval refinement in the block optimum's device order", ev2.objective, max(lp, cheap),
                        time.perf_counter() - t0, "feasible" if ev2.feasible else "INFEASIBLE"))
    if with_dp:
        t0 = time.perf_counter()
        res = solve(inst, "pipeline-dp", options=SolverOptions(time_limit_s=limit))
        secs = time.perf_counter() - t0
        rows.append(row(case, "pipeline-dp", res.objective, max(res.bound, lp), secs,
                        f"{res.status.value}; own bound {res.bound * 1e3:.2f} ms" if math.isfinite(res.bound)
                        else res.status.value))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table (Markdown)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--block-limit", type=float, default=60.0)
    ap.add_argument("--op-limit", type=float, default=300.0)
    ap.add_argument("--op-dp", action="store_true",
                    help="also run pipeline-dp on the operator graph for the operator limit (results: README)")
    args = ap.parse_args(argv)
    rows, placement = run_block(args.block_limit)
    rows += run_op(args.op_limit, placement, args.op_dp)
    cols = ["granularity (nodes)", "method", "period ms", "tokens/s", "bound ms", "gap", "seconds", "status"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
