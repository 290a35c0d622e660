"""A lower bound on the period by fractional placement (a linear program, solved with HiGHS).

Relaxation. Layer ``v`` may be split in fractions over its allowed devices (``placement_mask``:
``allowed``, ``private``); minimise ``T`` subject to::

    x[v, d] >= 0                                  for every allowed (v, d), else x[v, d] = 0
    sum_d x[v, d] = 1                             for every layer v
    sum_v x[v, d] t(v, d) <= T                    for every device d            (load)
    sum_v x[v, d] param_bytes(v) <= memory(d)     for every device d with finite memory,
                                                  when constraints.memory is on (weights)

Why it is a lower bound. Every placement is such an ``x`` (0/1). Its period is the largest busy
time of any device or link direction (docs/instance-format.md §5; :mod:`formulation.evaluator`),
and a device's busy time is its compute time ``sum_{v on d} t(v, d)`` plus, where communication
does not overlap compute, its sending and receiving time; transfer times are ``>= 0`` (bytes and
per-byte times are non-negative), so the period is at least every device's compute time. This is
the only reason the LP may ignore communication. A device's memory use under either memory model
(``params``, or ``peak``: weights plus the peak working set) is at least its weights. The other
constraints (``colocate``, ``contiguous``, ``pipeline``, ``max_devices``) only shrink the feasible
set, so leaving them out keeps the bound valid. Hence the LP optimum is ``<=`` the period of every
feasible placement.

Size. Layers with the same time row, weights and allowed set are one class ``c`` with ``n_c``
members (``sum_d x[c, d] = n_c``): the LP over classes has the same optimum (average the members'
fractions), so it stays small on repeated blocks.

Certificate. The value returned is not HiGHS's objective but a dual bound recomputed here: for any
``w >= 0`` with ``sum_d w_d = 1`` and ``mu >= 0``, weak duality gives ``T* >= sum_c n_c min_d (w_d
t(c, d) + mu_d param_bytes(c)) - sum_d mu_d memory(d)``. ``w`` and ``mu`` are taken from HiGHS's
row duals, so the bound equals the LP optimum up to rounding, and solver tolerances can only make
it weaker, never invalid.
"""

from __future__ import annotations

import math

import numpy as np

from formulation.model import Instance
from solvers.milp.highs_direct import _new_highs

#: Most LP columns (layer classes times allowed devices) for which the bound is computed as part of
#: the cheap bounds (:func:`solvers.bounds.metric_lower_bound`); callers may pass their own limit.
MAX_COLUMNS = 50_000


def fractional_period_bound(inst: Instance, max_columns: int | None = None) -> float:
    """The fractional-placement lower bound on the period (module docstring); ``-inf`` when a
    layer has no allowed device or the LP has more than ``max_columns`` columns; the equal-weight
    certificate (total least time over ``k``) when HiGHS does not reach an optimum."""
    import highspy

    g, s, k = inst.graph, inst.system, inst.k
    t = np.asarray(inst.time, dtype=float)
    mask = np.asarray(inst.placement_mask, dtype=bool)
    if g.n == 0:
        return 0.0
    if not mask.any(axis=1).all() or not np.isfinite(np.where(mask, t, 0.0)).all():
        return -math.inf
    key = np.column_stack([np.where(mask, t, 0.0), g.param_bytes[:, None], mask.astype(float)])
    classes, counts = np.unique(key, axis=0, return_counts=True)
    ct, cp, cm = classes[:, :k], classes[:, k], classes[:, k + 1 :] > 0
    cols = np.argwhere(cm)  # (class, device) per column, row-major
    if max_columns is not None and len(cols) > max_columns:
        return -math.inf
    memory = s.memory if inst.problem.constraints.memory else np.full(k, math.inf)
    mem_rows = [d for d in range(k) if math.isfinite(float(memory[d])) and (cp[cm[:, d]] > 0).any()]
    # Times in units of the average least load, memory rows in units of each device's memory:
    # both near 1, so HiGHS's absolute tolerances are relative ones.
    scale = float(np.where(mask, t, math.inf).min(axis=1).sum()) / k or 1.0
    n_t = len(cols)
    h = _new_highs()
    h.setOptionValue("dual_feasibility_tolerance", 1e-10)
    h.setOptionValue("primal_feasibility_tolerance", 1e-10)
    inf = highspy.kHighsInf
    h.addVars(n_t + 1, np.zeros(n_t + 1), np.full(n_t + 1, inf))
    h.changeColCost(n_t, 1.0)
    col_of = {(int(c), int(d)): i for i, (c, d) in enumerate(cols)}

    def row(lo: float, hi: float, idx: list[int], vals: list[float]) -> None:
        h.addRow(lo, hi, len(idx), np.array(idx, dtype=np.int32), np.array(vals, dtype=float))

    # Columns are the shares z[c, d] = x[c, d] / n_c (rows sum_d z[c, d] = 1), so that a dual
    # tolerance on one class's reduced costs is not multiplied by its member count.
    for c in range(len(counts)):
        idx = [col_of[c, int(d)] for d in np.flatnonzero(cm[c])]
        row(1.0, 1.0, idx, [1.0] * len(idx))
    for d in range(k):
        cs = np.flatnonzero(cm[:, d]).tolist()
        row(-inf, 0.0, [col_of[c, d] for c in cs] + [n_t],
            [float(counts[c] * ct[c, d]) / scale for c in cs] + [-1.0])
    for d in mem_rows:
        cs = np.flatnonzero(cm[:, d]).tolist()
        row(-inf, 1.0, [col_of[c, d] for c in cs], [float(counts[c] * cp[c]) / float(memory[d]) for c in cs])
    h.run()
    # Any w >= 0 and mu >= 0 certify a bound: equal weights without memory prices first (the total
    # least time over k, the value when every dual is 0, e.g. when nothing takes time, and what is
    # left when HiGHS reports no optimum); then the duals, under both sign conventions, the larger
    # bound kept.
    best = _dual_value(ct, cp, cm, counts, np.full(k, 1.0 / k), np.zeros(k), memory)
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return best
    duals = np.asarray(h.getSolution().row_dual, dtype=float)
    nc = len(counts)
    load_duals, mem_duals = duals[nc : nc + k], duals[nc + k :]
    for sign in (-1.0, 1.0):
        w = np.maximum(sign * load_duals, 0.0)
        if w.sum() <= 0:
            continue
        w = w / w.sum()
        mu = np.zeros(k)
        mu[mem_rows] = np.maximum(sign * mem_duals, 0.0) / np.asarray(memory[mem_rows], dtype=float) * scale
        best = max(best, _dual_value(ct, cp, cm, counts, w, mu, memory))
    return best


def _dual_value(ct: np.ndarray, cp: np.ndarray, cm: np.ndarray, counts: np.ndarray, w: np.ndarray,
                mu: np.ndarray, memory: np.ndarray) -> float:
    """``sum_c n_c min_d (w_d t(c, d) + mu_d p(c)) - sum_d mu_d memory(d)`` over allowed ``(c, d)``
    (weak duality: a lower bound on the LP optimum for every ``w >= 0`` summing to 1, ``mu >= 0``)."""
    per = np.where(cm, ct * w[None, :] + cp[:, None] * mu[None, :], math.inf).min(axis=1)
    used = mu > 0
    return float((counts * per).sum() - (mu[used] * np.asarray(memory, dtype=float)[used]).sum())
