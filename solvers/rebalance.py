"""Re-placing the layers of a few devices at a time: a large-neighbourhood search for the period.

Source: the neighbourhood is the one of *multi-exchange* and *ejection-chain* local search for
min-max partitioning (Ahuja, Orlin and Sharma, "Very large-scale neighborhood search",
Mathematical Programming 91, 2000; Frangioni, Necciari and Scutellà, "A multi-exchange
neighborhood for minimum makespan parallel machine scheduling problems", J. Combinatorial
Optimization 8, 2004), searched exactly by a small mixed-integer program, as in large-neighbourhood
search (Shaw, CP 1998): free the layers of the busiest device and of one or two others, keep every
other layer where it is, and re-place the freed layers on the freed devices so as to minimise the
largest busy time among them.

The program, for freed devices ``D'`` and the layers ``U`` they hold (``on_d(w)`` is ``x[w, d]``
for ``w`` in ``U`` and the constant ``[P(w) = d]`` otherwise)::

    x[v, d] in {0, 1}, sum_{d in D'} x[v, d] = 1       v in U, d in D' allowed for v
    x[v, d] = x[w, d]                                  v, w in one colocate class
    s[u, d] >= on_d(u) - on_d(r)                       every reader r of u (u's tensor leaves d)
    r[u, d] >= on_d(r) - on_d(u)                       every reader r of u (it enters d)
    sum_v t(v, d) x[v, d] + sum_u send(u, d) s[u, d] + sum_u recv(u, d) r[u, d] <= M
                                                       d in D' (send and receive only where
                                                       communication does not overlap compute)
    sum_v param_bytes(v) x[v, d] <= memory(d)          when constraints.memory is on
    minimise M

with ``send``, ``recv`` the least occupancy of a tensor out of and into ``d``
(:func:`solvers.unit_load._device_terms`), each tensor counted once per device as on ``send_once``
devices. The program is a model of the freed devices only: the other devices' transfers may
change too, sends to several devices cost more without ``send_once``, and links, model inputs and
the sink are left out. So nothing it returns is trusted: the evaluator judges every candidate,
and a move is kept only when the period falls or stays while the busy times, sorted from the
largest, fall lexicographically (which rules out cycles). The current placement is the program's
starting solution, so a sub-solve cut short by its time limit still returns one at least as good
in its own terms. A group whose program found nothing is not solved again until its layers, or the
devices of their neighbours, change (the program would be the same).

A heuristic for the period objective where the layers of a device need not be convex
(``contiguous`` and ``pipeline`` off): it never proves anything, and the exact engines use it to
improve the start they are given (docs/algorithms.md).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from formulation.evaluator import batch_metrics
from formulation.model import Instance, IntArray
from solvers.unit_load import _device_terms

#: Time limit of one sub-program (seconds).
SUB_LIMIT_S = 1.0
#: Weight of the freed devices' total busy time next to the largest (a tie-break: among re-placements
#: with the same largest busy time, the one with the least communication leaves the most room).
TIE_WEIGHT = 1e-3
#: Relative improvement below which a candidate counts as equal.
REL_TOL = 1e-12


def applies(inst: Instance) -> str | None:
    """Why the search does not apply (None when it does)."""
    c = inst.problem.constraints
    if inst.workload is not None or inst.problem.choices is not None:
        return "a version-2 workload or model choices"
    if inst.problem.objective.terms() != {"throughput": 1.0}:
        return "the objective is not the period alone"
    if inst.problem.scenarios is not None:
        return "network states"
    if c.contiguous or c.pipeline:
        return "contiguous or pipeline stages (the program has no convexity rows)"
    if inst.k < 2:
        return "one device"
    return None


def _key(busy: np.ndarray, period: float) -> np.ndarray:
    return np.concatenate([[period], -np.sort(-busy)])


def _better(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` lexicographically smaller than ``b`` beyond the relative tolerance."""
    scale = max(abs(float(b[0])), 1e-300)
    for x, y in zip(a, b, strict=True):
        if x < y - REL_TOL * scale:
            return True
        if x > y + REL_TOL * scale:
            return False
    return False


def _judge(inst: Instance, P: IntArray) -> np.ndarray | None:
    """The comparison key of ``P`` (None when the evaluator finds it infeasible)."""
    bm = batch_metrics(inst, P[None, :])
    if not bool(bm.feasible()[0]):
        return None
    return _key(np.asarray(bm.busy[0], dtype=float), float(bm.period[0]))


def sub_solve(inst: Instance, P: IntArray, group: list[int], time_limit_s: float) -> IntArray | None:
    """The freed layers of ``group`` re-placed by the program of the module docstring (None when
    HiGHS returns no solution)."""
    import highspy

    from solvers.milp.highs_direct import _new_highs

    g = inst.graph
    mask = inst.placement_mask
    U = [v for v in range(g.n) if int(P[v]) in group]
    if not U:
        return None
    x: dict[tuple[int, int], int] = {}
    lower: list[float] = []
    upper: list[float] = []

    def col(lo: float = 0.0, hi: float = 1.0) -> int:
        lower.append(lo)
        upper.append(hi)
        return len(lower) - 1

    for v in U:
        for d in group:
            if mask[v, d]:
                x[v, d] = col()
    M = col(0.0, math.inf)
    in_u = set(U)
    scale = max(float(np.max(inst.time[U][:, group][mask[U][:, group]], initial=0.0)), 1e-30) * len(U)
    rows: list[tuple[list[int], list[float], float, float]] = []
    tie: dict[int, float] = {}

    def on(w: int, d: int) -> tuple[int | None, float]:
        """(column, constant): ``on_d(w)`` is the column's value, or the constant."""
        if w in in_u:
            return x.get((w, d)), 0.0
        return None, float(int(P[w]) == d)

    for v in U:
        cols = [x[v, d] for d in group if (v, d) in x]
        rows.append((cols, [1.0] * len(cols), 1.0, 1.0))
    for cls in inst.colocate_classes:
        members = [int(v) for v in cls if int(v) in in_u]
        for a, b in itertools.pairwise(members):
            for d in group:
                ca, cb = x.get((a, d)), x.get((b, d))
                if ca is not None and cb is not None:
                    rows.append(([ca, cb], [1.0, -1.0], 0.0, 0.0))
    touched = set(U) | {int(u) for v in U for u in g.preds[v]}
    memory = inst.system.memory if inst.problem.constraints.memory else np.full(inst.k, math.inf)
    for d in group:
        load_cols = [x[v, d] for v in U if (v, d) in x]
        load_vals = [float(inst.time[v, d]) / scale for v in U if (v, d) in x]
        if not inst.system.comm_overlap[d]:
            send, recv = _device_terms(inst, d)
            for u in sorted(touched):
                readers = [int(r) for r in g.succs[u]]
                if not readers:
                    continue
                cu, ku = on(u, d)
                for cost, out in ((float(send[u]), True), (float(recv[u]), False)):
                    if not cost > 0 or not math.isfinite(cost):
                        continue
                    ind = col()
                    for r in readers:
                        cr, kr = on(r, d)
                        # out: ind >= on(u) - on(r); in: ind >= on(r) - on(u)
                        (cp, kp), (cm, km) = ((cu, ku), (cr, kr)) if out else ((cr, kr), (cu, ku))
                        cols, vals = [ind], [1.0]
                        if cp is not None:
                            cols.append(cp)
                            vals.append(-1.0)
                        if cm is not None:
                            cols.append(cm)
                            vals.append(1.0)
                        rows.append((cols, vals, kp - km, math.inf))
                    load_cols.append(ind)
                    load_vals.append(cost / scale)
        rows.append(([*load_cols, M], [*load_vals, -1.0], -math.inf, 0.0))
        for c, w in zip(load_cols, load_vals, strict=True):
            tie[c] = tie.get(c, 0.0) + TIE_WEIGHT * w
        if math.isfinite(float(memory[d])):
            mem = [(x[v, d], float(g.param_bytes[v]) / float(memory[d])) for v in U if (v, d) in x]
            mem = [(c, w) for c, w in mem if w > 0]
            if mem:
                rows.append(([c for c, _ in mem], [w for _, w in mem], -math.inf, 1.0))
    h = _new_highs()
    h.setOptionValue("time_limit", max(0.05, time_limit_s))
    n = len(lower)
    h.addVars(n, np.array(lower), np.array(upper))
    h.changeColCost(M, 1.0)
    for c, w in tie.items():
        h.changeColCost(c, w)
    ints = np.array(sorted(x.values()), dtype=np.int32)
    h.changeColsIntegrality(len(ints), ints, np.full(len(ints), highspy.HighsVarType.kInteger))
    for cols, vals, lo, hi in rows:
        h.addRow(lo, hi, len(cols), np.array(cols, dtype=np.int32), np.array(vals, dtype=float))
    start = np.zeros(n)
    for (v, d), c in x.items():
        start[c] = float(int(P[v]) == d)
    sol = highspy.HighsSolution()
    sol.col_value = list(start)
    sol.value_valid = True
    h.setSolution(sol)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible
        return None
    value = np.asarray(h.getSolution().col_value)
    Q = np.array(P, dtype=np.int64, copy=True)
    for v in U:
        choices = [(value[x[v, d]], d) for d in group if (v, d) in x]
        Q[v] = max(choices)[1]
    return Q


def rebalance(inst: Instance, P: IntArray, time_limit_s: float, max_group: int = 3) -> tuple[IntArray, int]:
    """The search of the module docstring from ``P`` within ``time_limit_s``: (best placement,
    moves kept). Groups hold the busiest device and one other (least busy first), then two
    others once no pair helps; the search ends when no group of ``max_group`` devices helps."""
    t0 = time.perf_counter()
    P = np.array(P, dtype=np.int64, copy=True)
    key = _judge(inst, P)
    if key is None or applies(inst) is not None:
        return P, 0
    kept = 0
    g = inst.graph
    near = [sorted({v, *map(int, g.preds[v]), *map(int, g.succs[v])}) for v in range(g.n)]
    failed: set[tuple[tuple[int, ...], bytes, bytes]] = set()

    def signature(group: list[int]) -> tuple[tuple[int, ...], bytes, bytes]:
        """What a group's program depends on: its layers and where their neighbours are."""
        U = np.flatnonzero(np.isin(P, group))
        around = sorted({w for v in U.tolist() for w in near[v]})
        return tuple(sorted(group)), U.tobytes(), P[around].tobytes()

    while True:
        bm = batch_metrics(inst, P[None, :])
        dev_busy = np.asarray(bm.busy[0], dtype=float)
        if float(dev_busy.max()) < key[0] * (1 - 1e-12):
            break  # a link direction sets the period: moving layers between devices is blind to it
        moved = False
        # the busiest device first; where no group around it helps, the next busiest (lowering
        # the second largest busy time is a lexicographic step and makes room for the largest)
        for pivot in (int(d) for d in np.argsort(-dev_busy, kind="stable")):
            others = [int(d) for d in np.argsort(dev_busy, kind="stable") if int(d) != pivot]
            for size in range(1, max_group):
                for rest in itertools.combinations(others, size):
                    left = time_limit_s - (time.perf_counter() - t0)
                    if left <= 0.05:
                        return P, kept
                    sig = signature([pivot, *rest])
                    if sig in failed:
                        continue  # the same program, which found nothing better before
                    Q = sub_solve(inst, P, [pivot, *rest], min(SUB_LIMIT_S, left))
                    if Q is None or np.array_equal(Q, P):
                        failed.add(sig)
                        continue
                    k2 = _judge(inst, Q)
                    if k2 is not None and _better(k2, key):
                        P, key, moved = Q, k2, True
                        kept += 1
                        break
                    failed.add(sig)
                if moved:
                    break
            if moved:
                break
        if not moved:
            break
    return P, kept


def start_budget(time_limit_s: float | None, raw: dict[str, object]) -> float:
    """Seconds an exact engine gives the search on its start: ``raw["rebalance_time_s"]``, else
    half of its limit (5 s without one); 0 with ``raw["rebalance"]`` false."""
    if not raw.get("rebalance", True):
        return 0.0
    if "rebalance_time_s" in raw:
        return max(0.0, float(raw["rebalance_time_s"]))  # type: ignore[arg-type]
    return 5.0 if time_limit_s is None else 0.5 * time_limit_s


def improve_start(inst: Instance, P: IntArray, time_limit_s: float) -> tuple[IntArray, int]:
    """:func:`rebalance` where it applies and has time (else ``P`` unchanged, 0 moves)."""
    if time_limit_s <= 0.05 or applies(inst) is not None:
        return np.asarray(P, dtype=np.int64), 0
    return rebalance(inst, P, time_limit_s)
