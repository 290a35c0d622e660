"""The down-set DP of :mod:`solvers.pipeline_dp` at one threshold ``T``.

``f[L][I]`` is the least bottleneck (largest stage value) of a pipeline of the down-set ``I`` of
units whose stages use ``L[c]`` devices of class ``c`` (Tarnawski et al., NeurIPS 2020, Section 4,
with device counts per class in place of their accelerator and CPU counts)::

    f[L + e_c][I] = min over down-sets I' ⊂ I of max(f[L][I'], value_c(I \\ I'))

Only stages of value ``<= T`` are enumerated, so the DP answers "the least bottleneck if it is
``<= T``, else none". Down-sets are Python integers (bit ``x`` = unit ``x``) and never listed in
advance: from each state ``I'`` a depth-first search grows ``S = I \\ I'`` one *available* unit at a
time (all its predecessors in ``I' ∪ S``), trying the available units in list order and never one
skipped before, so each down-set above ``I'`` is produced once. Along the search the compute time,
parameters, working set and received bytes of ``S`` only grow, so a branch ends as soon as no class
could hold ``S`` within ``T`` (and memory); the sent bytes are updated per tensor as its last
consumer joins. Further pruning, each exact:

* *band*: the layers after ``I`` need at least ``sum_x m(x)`` of "cheapest time", and a device of
  class ``c`` with value ``<= T`` holds at most ``ρ_c T`` of it (``ρ_c = max_x m(x) / t_c(x)``), so
  a state whose remaining devices cannot hold the rest is dropped;
* *dominance*: a state ``(L, I)`` no better than ``(L - e_c, I)`` (one device fewer) is not expanded;
* *incumbent*: once a complete pipeline of value ``v`` is known, only stages and states below ``v``
  are kept.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import dataclass

from solvers.pipeline_units import Units

#: Relative slack of the band test, so that rounding never drops a state that could fit.
BAND_SLACK = 1e-9


class SearchTimeout(Exception):
    """The deadline passed during a search."""


@dataclass
class Plan:
    """A pipeline: its bottleneck value and its stages in order, each ``(unit bitmask, class index)``."""

    value: float
    stages: list[tuple[int, int]]


def _bump(L: tuple[int, ...], c: int, delta: int) -> tuple[int, ...]:
    """Count vector ``L`` with ``delta`` added to class ``c``."""
    return (*L[:c], L[c] + delta, *L[c + 1 :])


def class_ratios(U: Units) -> tuple[list[float], list[float]]:
    """``m(x)`` (least time of unit ``x`` over the classes allowed to run it) and ``ρ_c``."""
    m = []
    for x in range(U.count):
        ts = [c.time[x] for c in U.classes if c.allowed[x]]
        m.append(min(ts) if ts else math.inf)
    rho = []
    for c in U.classes:
        r = [m[x] / c.time[x] for x in range(U.count) if c.allowed[x] and c.time[x] > 0]
        rho.append(max(r) if r else 1.0)
    return m, rho


def chain_order(U: Units) -> tuple[list[int], list[list[int]]]:
    """Predecessor masks and successor lists of the units' topological order as a chain: its
    down-sets are the prefixes (a linearisation, as in PipeDream)."""
    preds = [0] + [1 << (x - 1) for x in range(1, U.count)]
    succs = [[x + 1] for x in range(U.count - 1)] + [[]]
    return preds, succs


def search(
    U: Units,
    T: float,
    max_stages: int,
    deadline: float,
    order: tuple[list[int], list[list[int]]] | None = None,
) -> Plan | None:
    """The least-bottleneck pipeline with every stage value ``<= T``, or ``None`` (module docstring).

    ``order`` replaces the units' precedence (``(preds, succs)``) for the enumeration only, e.g.
    :func:`chain_order`; transfers always follow the real tensors.
    """
    N, C = U.count, len(U.classes)
    full = (1 << N) - 1
    preds, succs = order if order is not None else (U.preds, U.succs)
    counts = [len(c.devices) for c in U.classes]
    times = [c.time for c in U.classes]
    allowed = [c.allowed for c in U.classes]
    mem = [c.memory * (1 + 1e-9) for c in U.classes]
    overlap = [c.overlap for c in U.classes]
    out_rate = [c.out_rate for c in U.classes]
    in_rate = [c.in_rate for c in U.classes]
    m, rho = class_ratios(U)
    total_m = sum(m)
    upar, upeak = U.params, U.peak
    t_prod, t_cons, t_bytes, out_t, in_t = U.t_prod, U.t_cons, U.t_bytes, U.out_t, U.in_t
    remt = [0] * len(t_prod)
    rcvt = [0] * len(t_prod)
    max_stages = min(max_stages, sum(counts))
    levels_order = sorted(
        (L for L in itertools.product(*(range(k + 1) for k in counts)) if sum(L) <= max_stages),
        key=lambda L: (sum(L), L),
    )
    levels: dict[tuple[int, ...], dict[int, tuple[float, int, int]]] = {L: {} for L in levels_order}
    levels[levels_order[0]][0] = (0.0, -1, -1)
    best = [math.inf]
    best_at: list[tuple[int, ...]] = [levels_order[0]]
    ticks = [0]
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 4 * N + 1000))
    try:
        for L in levels_order:
            states = levels[L]
            used = sum(L)
            if not states or used >= max_stages:
                continue
            usable = [c for c in range(C) if L[c] < counts[c]]
            if not usable:
                continue
            lower = [_bump(L, c, -1) for c in range(C) if L[c] > 0]
            targets = [levels[_bump(L, c, 1)] for c in usable]
            last = used + 1 >= max_stages
            rest_cap = []
            for c in usable:
                left = sum((counts[e] - L[e] - (e == c)) * rho[e] for e in range(C))
                rest_cap.append(0.0 if last else T * left * (1 + BAND_SLACK) + 1e-300)
            for I0, (v0, _, _) in sorted(states.items(), key=lambda kv: kv[1][0]):
                if v0 >= best[0] or full == I0:
                    continue
                if any(levels[Lm].get(I0, (math.inf,))[0] <= v0 for Lm in lower):
                    continue
                cap = min(T, best[0])
                md0 = sum(m[x] for x in range(N) if (I0 >> x) & 1)
                avail0 = [x for x in range(N) if not (I0 >> x) & 1 and not (preds[x] & ~I0)]
                nu = len(usable)

                def rec(
                    J: int,
                    S: int,
                    avail: list[int],
                    comp: list[float],
                    alive: list[bool],
                    params: float,
                    peak: float,
                    send: float,
                    recv: float,
                    md: float,
                    I0: int = I0,
                    v0: float = v0,
                    cap: float = cap,
                    nu: int = nu,
                    L: tuple[int, ...] = L,
                    usable: list[int] = usable,
                    targets: list[dict[int, tuple[float, int, int]]] = targets,
                    rest_cap: list[float] = rest_cap,
                ) -> None:
                    ticks[0] += 1
                    if ticks[0] & 1023 == 0 and time.perf_counter() > deadline:
                        raise SearchTimeout
                    for i, x in enumerate(avail):
                        bit = 1 << x
                        J2, S2 = J | bit, S | bit
                        p2 = params + upar[x]
                        pk2 = peak if peak >= upeak[x] else upeak[x]
                        need = p2 + pk2
                        s2, r2 = send, recv
                        for t in out_t[x]:
                            remt[t] = len(t_cons[t])
                            s2 += t_bytes[t]
                        dec, inc = [], []
                        for t in in_t[x]:
                            if (S2 >> t_prod[t]) & 1:
                                remt[t] -= 1
                                dec.append(t)
                                if remt[t] == 0:
                                    s2 -= t_bytes[t]
                            else:
                                rcvt[t] += 1
                                inc.append(t)
                                if rcvt[t] == 1:
                                    r2 += t_bytes[t]
                        comp2 = [0.0] * nu
                        alive2 = [False] * nu
                        any_alive = False
                        for j in range(nu):
                            c = usable[j]
                            cc = comp[j] + times[c][x]
                            comp2[j] = cc
                            if alive[j] and allowed[c][x] and need <= mem[c]:
                                lo = cc if overlap[c] else cc + in_rate[c] * r2
                                if lo <= cap:
                                    alive2[j] = True
                                    any_alive = True
                        if any_alive:
                            md2 = md + m[x]
                            for j in range(nu):
                                if not alive2[j]:
                                    continue
                                c = usable[j]
                                load = comp2[j] if overlap[c] else comp2[j] + out_rate[c] * s2 + in_rate[c] * r2
                                if load > cap:
                                    continue
                                val = v0 if v0 >= load else load
                                if full == J2:
                                    if val < best[0]:
                                        best[0] = val
                                        best_at[0] = _bump(L, c, 1)
                                        targets[j][J2] = (val, I0, c)
                                    continue
                                if total_m - md2 > rest_cap[j]:
                                    continue
                                cur = targets[j].get(J2)
                                if cur is None or val < cur[0]:
                                    targets[j][J2] = (val, I0, c)
                            newav = avail[i + 1 :] + [y for y in succs[x] if not (preds[y] & ~J2)]
                            rec(J2, S2, newav, comp2, alive2, p2, pk2, s2, r2, md2)
                        for t in dec:
                            remt[t] += 1
                        for t in inc:
                            rcvt[t] -= 1

                rec(I0, 0, avail0, [0.0] * nu, [True] * nu, 0.0, 0.0, 0.0, 0.0, md0)
    finally:
        sys.setrecursionlimit(old_limit)
    if not math.isfinite(best[0]):
        return None
    stages: list[tuple[int, int]] = []
    L, ideal = best_at[0], full
    while ideal:
        _, prev, c = levels[L][ideal]
        stages.append((ideal & ~prev, c))
        L = _bump(L, c, -1)
        ideal = prev
    return Plan(best[0], stages[::-1])
