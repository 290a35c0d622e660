"""A lower bound on the period that sees how the heaviest layers pack onto the devices.

The fractional-placement bound of :mod:`solvers.lp_bound` spreads every layer in fractions, so on
a graph whose work sits in a few heavy layers it is the average load, however badly those layers
fit onto ``k`` devices (eleven 10-15 ms layers on five accelerators: one of them holds three). This
relaxation keeps the ``H`` heaviest *units* (single layers and ``colocate`` classes) whole and
spreads only the rest: a mixed-integer program, solved by HiGHS, whose dual bound counts. It is
the classical bound of scheduling on parallel machines with the small jobs made divisible
(Dell'Amico and Martello, "Optimal scheduling of tasks on identical parallel processors", ORSA J.
Computing 7(2), 1995, Section 2; the same "large items integral, small items fractional" split is
the relaxation behind the approximation scheme of Hochbaum and Shmoys, J. ACM 34(1), 1987), here
with unrelated times, forbidden devices, memory and ``max_devices``::

    x[C, d] in {0, 1}        unit C (heavy) on device d; 0 where a member may not run on d
    y[c, d] >= 0             share of light class c on device d; 0 where c may not run on d
    sum_d x[C, d] = 1        for every heavy unit C
    sum_d y[c, d] = 1        for every light class c (n_c layers with the same time row,
                             weights and allowed set)
    sum_C t(C, d) x[C, d] + sum_c n_c t(c, d) y[c, d] <= T             (load, every device d)
    sum_C p(C) x[C, d] + sum_c n_c p(c) y[c, d] <= memory(d)           (weights, when
                                                                       constraints.memory is on)
    x[C, d] <= u_d, y[c, d] <= u_d, sum_d u_d <= m, u_d in {0, 1}      (only with max_devices m)

Why it is a lower bound. Every feasible placement is such an ``(x, y, u)`` (0/1 shares, ``u_d`` =
device used) with ``T`` its largest compute time; its period is at least that, since a device's
busy time is its compute time plus non-negative transfer times, and a device's memory under either
memory model is at least its weights (the argument of :mod:`solvers.lp_bound`). ``colocate``,
``contiguous``, ``pipeline`` and the links only shrink the feasible set. So ``T* <= period`` of
every feasible placement, and HiGHS's dual bound is ``<= T*``.

Symmetry. Devices with the same time column, allowed set and memory are interchangeable in this
program (it sees no links). With the heavy units in a fixed order ``C_0, C_1, ...`` and such a
class's devices ``d_0, d_1, ...``, ``x[C_a, d_j] = 0`` for ``j > a``: relabel the class's devices
by the first heavy unit each holds; the device of ``C_a`` is then among the first ``a + 1``.

A relative :data:`SAFETY` margin comes off the dual bound for HiGHS's tolerances (the rows are
scaled so that ``T`` is about 1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from formulation.model import Instance
from solvers.archer_bounds import _units

#: Relative margin taken off the MIP dual bound (feasibility tolerances of 1e-9 on rows near 1).
SAFETY = 1e-6
#: Heavy-unit counts tried in turn while time is left (each run keeps the best bound so far).
HEAVY_STEPS = (8, 16, 24, 32, 48)


@dataclass
class PackingBound:
    """The bound (seconds, ``-inf`` where not computed), the heavy units of the best run, and
    whether that run finished (its bound is then the relaxation's optimum)."""

    value: float = -math.inf
    heavy: int = 0
    finished: bool = False
    seconds: float = 0.0


def _device_classes(inst: Instance, memory: np.ndarray) -> list[list[int]]:
    groups: dict[bytes, list[int]] = {}
    for d in range(inst.k):
        key = inst.time[:, d].tobytes() + inst.placement_mask[:, d].tobytes() + np.float64(memory[d]).tobytes()
        groups.setdefault(key, []).append(d)
    return list(groups.values())


def packing_bound_for(inst: Instance, heavy: int, time_limit_s: float) -> tuple[float, bool]:
    """The relaxation of the module docstring with the ``heavy`` heaviest units whole: (HiGHS's
    dual bound less the margin, in seconds, or ``-inf``; whether HiGHS proved its optimum)."""
    import highspy

    from solvers.milp.highs_direct import _new_highs

    g, k = inst.graph, inst.k
    t = np.asarray(inst.time, dtype=float)
    mask = np.asarray(inst.placement_mask, dtype=bool)
    if g.n == 0:
        return 0.0, True
    if not mask.any(axis=1).all() or not np.isfinite(np.where(mask, t, 0.0)).all():
        return -math.inf, True
    tmin = np.where(mask, t, math.inf).min(axis=1)
    scale = float(tmin.sum()) / k
    if not scale > 0:
        return 0.0, True
    memory = np.asarray(inst.system.memory, dtype=float) if inst.problem.constraints.memory else np.full(k, math.inf)
    pb = np.asarray(g.param_bytes, dtype=float)
    units = _units(inst)
    weight = [float(tmin[u].sum()) for u in units]
    order = sorted(range(len(units)), key=lambda i: (-weight[i], units[i][0]))
    heavy_units = [units[i] for i in order[:heavy]]
    light = sorted(v for i in order[heavy:] for v in units[i])
    # light layers in classes (same time row, weights and allowed set), as in solvers.lp_bound
    if light:
        key = np.column_stack([np.where(mask[light], t[light], 0.0), pb[light, None], mask[light].astype(float)])
        classes, counts = np.unique(key, axis=0, return_counts=True)
    else:
        classes, counts = np.zeros((0, 2 * k + 1)), np.zeros(0, dtype=int)
    ct, cp, cm = classes[:, :k], classes[:, k], classes[:, k + 1 :] > 0
    m = inst.problem.constraints.max_devices
    limit_devices = m is not None and m < int(mask.any(axis=0).sum())

    h = _new_highs()
    h.setOptionValue("time_limit", max(0.05, time_limit_s))
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    inf = highspy.kHighsInf
    lower: list[float] = []
    upper: list[float] = []
    integral: list[int] = []

    def col(lo: float, hi: float, is_int: bool) -> int:
        lower.append(lo)
        upper.append(hi)
        if is_int:
            integral.append(len(lower) - 1)
        return len(lower) - 1

    T = col(0.0, inf, False)
    rank_in_class: dict[int, int] = {}
    for members in _device_classes(inst, memory):
        for j, d in enumerate(members):
            rank_in_class[d] = j
    x: dict[tuple[int, int], int] = {}
    for a, unit in enumerate(heavy_units):
        for d in range(k):
            if mask[unit, d].all() and rank_in_class[d] <= a:
                x[a, d] = col(0.0, 1.0, True)
    y = {(c, d): col(0.0, 1.0, False) for c in range(len(counts)) for d in np.flatnonzero(cm[c]).tolist()}
    u = {d: col(0.0, 1.0, True) for d in range(k)} if limit_devices else {}
    h.addVars(len(lower), np.array(lower), np.array(upper))
    h.changeColCost(T, 1.0)
    if integral:
        h.changeColsIntegrality(
            len(integral), np.array(integral, dtype=np.int32), np.full(len(integral), highspy.HighsVarType.kInteger)
        )

    def row(lo: float, hi: float, idx: list[int], vals: list[float]) -> None:
        h.addRow(lo, hi, len(idx), np.array(idx, dtype=np.int32), np.array(vals, dtype=float))

    for a in range(len(heavy_units)):
        idx = [x[a, d] for d in range(k) if (a, d) in x]
        if not idx:
            return -math.inf, True  # a unit no device may hold whole: no bound from this program
        row(1.0, 1.0, idx, [1.0] * len(idx))
    for c in range(len(counts)):
        idx = [y[c, d] for d in np.flatnonzero(cm[c]).tolist()]
        row(1.0, 1.0, idx, [1.0] * len(idx))
    for d in range(k):
        hx = [(a, x[a, d]) for a in range(len(heavy_units)) if (a, d) in x]
        ly = [(c, y[c, d]) for c in range(len(counts)) if (c, d) in y]
        idx = [i for _, i in hx] + [i for _, i in ly] + [T]
        vals = [float(t[heavy_units[a], d].sum()) / scale for a, _ in hx]
        vals += [float(counts[c] * ct[c, d]) / scale for c, _ in ly] + [-1.0]
        row(-inf, 0.0, idx, vals)
        if math.isfinite(float(memory[d])) and memory[d] > 0:
            mvals = [float(pb[heavy_units[a]].sum()) / memory[d] for a, _ in hx]
            mvals += [float(counts[c] * cp[c]) / memory[d] for c, _ in ly]
            if any(v > 0 for v in mvals):
                row(-inf, 1.0, idx[:-1], mvals)
        if u:
            for i in idx[:-1]:
                row(-inf, 0.0, [i, u[d]], [1.0, -1.0])
    if u and m is not None:
        row(-inf, float(m), list(u.values()), [1.0] * len(u))
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        # the instance has no feasible placement; the engines say so themselves (a bound of
        # +inf next to their answer would only confuse the gap)
        return -math.inf, True
    dual = float(h.getInfo().mip_dual_bound)
    if not math.isfinite(dual):
        return -math.inf, False
    return max(0.0, dual * scale * (1 - SAFETY)), status == highspy.HighsModelStatus.kOptimal


def packing_bound(inst: Instance, time_limit_s: float) -> PackingBound:
    """The best of :func:`packing_bound_for` over :data:`HEAVY_STEPS` (more heavy units: a
    tighter and slower program) within ``time_limit_s``; a step stops the sequence when it does
    not finish or when it already holds every unit whole."""
    t0 = time.perf_counter()
    out = PackingBound()
    n_units = len(_units(inst))
    for i, heavy in enumerate(HEAVY_STEPS):
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.05:
            break
        share = left if i == len(HEAVY_STEPS) - 1 else left / 2
        value, finished = packing_bound_for(inst, min(heavy, n_units), share)
        if value > out.value:
            out.value, out.heavy, out.finished = value, min(heavy, n_units), finished
        if not finished or heavy >= n_units or math.isinf(value):
            break
    out.seconds = time.perf_counter() - t0
    return out
