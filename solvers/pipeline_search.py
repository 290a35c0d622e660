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
* *skipped units*: the search never adds a unit it skipped, nor any of its descendants, so once
  the least time of those exceeds what the remaining devices can hold (the band), no deeper set
  can be kept and the branch ends;
* *dominance*: a state ``(L, I)`` no better than ``(L - e_c, I)`` (one device fewer) is not expanded;
* *meeting in the middle*: the first half of the stages grows down-sets from the empty set, the
  second half up-sets from the whole graph, and the two tables are joined on the split ideal, so
  neither direction reaches the crowded middle levels.
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


def dp_lower_bound(U: Units) -> float:
    """A lower bound on every pipeline's largest stage value: the costliest unit at its least time,
    and the least times of all units over the devices' capacities ``sum_c K_c ρ_c`` (the band at
    the start)."""
    m, rho = class_ratios(U)
    if not m:
        return 0.0
    capacity = sum(len(c.devices) * r for c, r in zip(U.classes, rho, strict=True))
    return max(max(m), sum(m) / capacity if capacity > 0 else math.inf)


def chain_order(U: Units) -> tuple[list[int], list[list[int]]]:
    """Predecessor masks and successor lists of the units' topological order as a chain: its
    down-sets are the prefixes (a linearisation, as in PipeDream)."""
    preds = [0] + [1 << (x - 1) for x in range(1, U.count)]
    succs = [[x + 1] for x in range(U.count - 1)] + [[]]
    return preds, succs


Order = tuple[list[int], list[list[int]]]
Levels = dict[tuple[int, ...], dict[int, tuple[float, int, int]]]


def reverse_order(order: Order) -> Order:
    """The precedence of the reversed graph: its down-sets are the up-sets of ``order``."""
    preds, succs = order
    N = len(preds)
    rpreds = [0] * N
    rsuccs: list[list[int]] = [[] for _ in range(N)]
    for x in range(N):
        for y in succs[x]:
            rpreds[x] |= 1 << y
            rsuccs[y].append(x)
    return rpreds, rsuccs


def search(
    U: Units,
    T: float,
    max_stages: int,
    deadline: float,
    order: Order | None = None,
) -> Plan | None:
    """The least-bottleneck pipeline with every stage value ``<= T``, or ``None`` (module docstring).

    Bidirectional: the first stages grow down-sets from the empty set, the last ones up-sets from
    the whole graph, one stage at a time on the side whose next stage looks cheaper, until the
    two sides together reach ``m`` (most stages) stages; they meet at the ideal where the pipeline
    is split, so neither side enters the crowded middle levels. ``order`` replaces the units'
    precedence (``(preds, succs)``) for the enumeration only, e.g. :func:`chain_order`; transfers
    always follow the real tensors.
    """
    N = U.count
    full = (1 << N) - 1
    fwd_order = order if order is not None else (U.preds, U.succs)
    counts = [len(c.devices) for c in U.classes]
    max_stages = min(max_stages, sum(counts))
    if max_stages < 1:
        return None
    sweeps = [_Sweep(U, T, max_stages, deadline, fwd_order, False),
              _Sweep(U, T, max_stages, deadline, reverse_order(fwd_order), True)]
    while sweeps[0].depth + sweeps[1].depth < max_stages:
        # Advance the side whose next stage looks cheaper: frontier states times the search nodes
        # per state of its previous advance.
        min(sweeps, key=lambda sw: (sw.estimate(), sw.backward)).advance()
    fwd, bwd = sweeps[0].levels, sweeps[1].levels
    best, arg = math.inf, None
    for Lf, states in fwd.items():
        for Lb, bstates in bwd.items():
            if sum(Lf) + sum(Lb) > max_stages or any(a + b > k for a, b, k in zip(Lf, Lb, counts, strict=True)):
                continue
            if not states or not bstates:
                continue
            for ideal, (v, _, _) in states.items():
                other = bstates.get(full & ~ideal)
                if other is None:
                    continue
                val = v if v >= other[0] else other[0]
                if val < best:
                    best, arg = val, (Lf, ideal, Lb, full & ~ideal)
    if arg is None:
        return None
    Lf, ideal, Lb, up = arg
    head_stages = _walk(fwd, Lf, ideal)[::-1]
    return Plan(best, head_stages + _walk(bwd, Lb, up))


def _bits(mask: int) -> list[int]:
    """Indices of the set bits of ``mask``."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def _topological(order: Order) -> list[int]:
    """The units in reverse topological order of ``order`` (successors first)."""
    preds, succs = order
    indeg = [len(_bits(p)) for p in preds]
    stack = [x for x in range(len(preds)) if indeg[x] == 0]
    out = []
    while stack:
        x = stack.pop()
        out.append(x)
        for y in succs[x]:
            indeg[y] -= 1
            if indeg[y] == 0:
                stack.append(y)
    return out[::-1]


def _walk(levels: Levels, L: tuple[int, ...], ideal: int) -> list[tuple[int, int]]:
    """Stages from state ``(L, ideal)`` back to the start of its sweep (nearest first)."""
    out = []
    while ideal:
        _, prev, c = levels[L][ideal]
        out.append((ideal & ~prev, c))
        L = _bump(L, c, -1)
        ideal = prev
    return out


class _Sweep:
    """States ``(L, I)``: ``I`` a down-set of ``order`` covered by stages of value ``<= T`` on ``L[c]``
    devices of each class ``c``, with the least bottleneck and its parent; :meth:`advance` adds the
    states one stage further.

    Transfers are counted per tensor whichever way the sets grow: ``cin[t]`` consumers of ``t`` in
    the stage ``S``; ``S`` sends ``t`` when its producer is in ``S`` and some consumer is not, and
    receives it when the producer is outside and some consumer inside. Growing down-sets, the
    received bytes only grow; growing up-sets (``backward``), the sent bytes do: that part prunes.
    """

    def __init__(self, U: Units, T: float, max_stages: int, deadline: float, order: Order, backward: bool) -> None:
        self.U, self.T, self.deadline, self.order, self.backward = U, T, deadline, order, backward
        counts = [len(c.devices) for c in U.classes]
        self.counts = counts
        self.levels_order = sorted(
            (L for L in itertools.product(*(range(k + 1) for k in counts)) if sum(L) <= max_stages),
            key=lambda L: (sum(L), L),
        )
        self.levels: Levels = {L: {} for L in self.levels_order}
        self.levels[self.levels_order[0]][0] = (0.0, -1, -1)
        self.depth = 0
        self.ticks = [0]
        """Search nodes visited (one per down-set produced)."""
        self.per_state = 1.0
        """Search nodes per expanded state in the last :meth:`advance`."""
        self.m, self.rho = class_ratios(U)
        # Least time of each unit with all its descendants in ``order`` (the skip rule of _expand).
        desc = [0] * U.count
        for x in _topological(order):
            mask = 1 << x
            for y in order[1][x]:
                mask |= desc[y]
            desc[x] = mask
        m = self.m
        self.m_desc = [sum(m[y] for y in _bits(mask)) for mask in desc]

    def frontier(self) -> int:
        """Number of states at the current depth (those :meth:`advance` expands)."""
        return sum(len(self.levels[L]) for L in self.levels_order if sum(L) == self.depth)

    def estimate(self) -> float:
        """Expected search nodes of the next :meth:`advance`."""
        return self.frontier() * self.per_state

    def advance(self) -> None:
        """Expand every state at the current depth by one stage."""
        before, states = self.ticks[0], self.frontier()
        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_limit, 4 * self.U.count + 1000))
        try:
            for L in self.levels_order:
                if sum(L) == self.depth and self.levels[L]:
                    self._expand(L)
        finally:
            sys.setrecursionlimit(old_limit)
        self.per_state = (self.ticks[0] - before) / max(1, states)
        self.depth += 1

    def _expand(self, L: tuple[int, ...]) -> None:
        U, T, deadline, backward = self.U, self.T, self.deadline, self.backward
        levels, counts, m, rho = self.levels, self.counts, self.m, self.rho
        N, C = U.count, len(U.classes)
        full = (1 << N) - 1
        preds, succs = self.order
        times = [c.time for c in U.classes]
        allowed = [c.allowed for c in U.classes]
        mem = [c.memory * (1 + 1e-9) for c in U.classes]
        overlap = [c.overlap for c in U.classes]
        out_rate = [c.out_rate for c in U.classes]
        in_rate = [c.in_rate for c in U.classes]
        mono = out_rate if backward else in_rate
        total_m = sum(m)
        upar, upeak = U.params, U.peak
        t_prod, t_bytes, out_t, in_t = U.t_prod, U.t_bytes, U.out_t, U.in_t
        ncons = [len(c) for c in U.t_cons]
        cin = [0] * len(t_prod)
        ticks = self.ticks
        states = levels[L]
        usable = [c for c in range(C) if L[c] < counts[c]]
        if not usable:
            return
        lower = [_bump(L, c, -1) for c in range(C) if L[c] > 0]
        targets = [levels[_bump(L, c, 1)] for c in usable]
        rest_cap = []
        for c in usable:
            left = sum((counts[e] - L[e] - (e == c)) * rho[e] for e in range(C))
            rest_cap.append(T * left * (1 + BAND_SLACK) + 1e-300)
        nu = len(usable)
        m_desc = self.m_desc
        for I0, (v0, _, _) in sorted(states.items(), key=lambda kv: kv[1][0]):
            if full == I0 or any(levels[Lm].get(I0, (math.inf,))[0] <= v0 for Lm in lower):
                continue
            md0 = sum(m[x] for x in range(N) if (I0 >> x) & 1)
            avail0 = [x for x in range(N) if not (I0 >> x) & 1 and not (preds[x] & ~I0)]

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
                ex: float,
                I0: int = I0,
                v0: float = v0,
                usable: list[int] = usable,
                targets: list[dict[int, tuple[float, int, int]]] = targets,
                rest_cap: list[float] = rest_cap,
                nu: int = nu,
            ) -> None:
                ticks[0] += 1
                if ticks[0] & 1023 == 0 and time.perf_counter() > deadline:
                    raise SearchTimeout
                for i, x in enumerate(avail):
                    if i and m_desc[avail[i - 1]] > ex:
                        # avail[:i] and their descendants stay out of every set below: a class
                        # whose remaining devices cannot hold them can keep no deeper set.
                        ex = m_desc[avail[i - 1]]
                        alive = [alive[j] and ex <= rest_cap[j] for j in range(nu)]
                        if not any(alive):
                            break
                    bit = 1 << x
                    J2, S2 = J | bit, S | bit
                    p2 = params + upar[x]
                    pk2 = peak if peak >= upeak[x] else upeak[x]
                    need = p2 + pk2
                    s2, r2 = send, recv
                    for t in out_t[x]:
                        if cin[t]:
                            r2 -= t_bytes[t]
                        if cin[t] < ncons[t]:
                            s2 += t_bytes[t]
                    for t in in_t[x]:
                        cin[t] += 1
                        if (S2 >> t_prod[t]) & 1:
                            if cin[t] == ncons[t]:
                                s2 -= t_bytes[t]
                        elif cin[t] == 1:
                            r2 += t_bytes[t]
                    comp2 = [0.0] * nu
                    alive2 = [False] * nu
                    any_alive = False
                    for j in range(nu):
                        c = usable[j]
                        cc = comp[j] + times[c][x]
                        comp2[j] = cc
                        if alive[j] and allowed[c][x] and need <= mem[c]:
                            lo = cc if overlap[c] else cc + mono[c] * (s2 if backward else r2)
                            if lo <= T:
                                alive2[j] = True
                                any_alive = True
                    if any_alive:
                        md2 = md + m[x]
                        for j in range(nu):
                            if not alive2[j]:
                                continue
                            c = usable[j]
                            load = comp2[j] if overlap[c] else comp2[j] + out_rate[c] * s2 + in_rate[c] * r2
                            if load > T or (full != J2 and total_m - md2 > rest_cap[j]):
                                continue
                            val = v0 if v0 >= load else load
                            cur = targets[j].get(J2)
                            if cur is None or val < cur[0]:
                                targets[j][J2] = (val, I0, c)
                        newav = avail[i + 1 :] + [y for y in succs[x] if not (preds[y] & ~J2)]
                        rec(J2, S2, newav, comp2, alive2, p2, pk2, s2, r2, md2, ex)
                    for t in in_t[x]:
                        cin[t] -= 1

            rec(I0, 0, avail0, [0.0] * nu, [True] * nu, 0.0, 0.0, 0.0, 0.0, md0, 0.0)
