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

import numpy as np

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
    counts = [len(c.devices) for c in U.classes]
    max_stages = min(max_stages, sum(counts))
    if max_stages < 1:
        return None
    fwd_order, bwd_order = _orders(U, order)
    sweeps = [_Sweep(U, T, max_stages, deadline, fwd_order, False),
              _Sweep(U, T, max_stages, deadline, bwd_order, True)]
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
            if time.perf_counter() > deadline:
                raise SearchTimeout
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


def _orders(U: Units, order: Order | None) -> tuple[Order, Order]:
    """The enumeration order (``order``, else the units' own) and its reverse, cached on ``U`` so
    that the per-order tables of :class:`_Sweep` are built once per solve, not once per threshold."""
    key = ("orders", None if order is None else id(order))
    hit = U.cache.get(key)
    if hit is not None and (order is None or hit[0] is order):
        return hit[1]
    fwd = order if order is not None else (U.preds, U.succs)
    out = (fwd, reverse_order(fwd))
    U.cache[key] = (order, out)
    return out


def _topological(order: Order) -> list[int]:
    """The units in reverse topological order of ``order`` (successors first)."""
    preds, succs = order
    indeg = [0] * len(preds)
    for ys in succs:
        for y in ys:
            indeg[y] += 1
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


def mask_bits(mask: int, n: int) -> np.ndarray:
    """The bits ``0 .. n-1`` of ``mask`` as a boolean array (bit ``x`` at index ``x``)."""
    raw = np.frombuffer(mask.to_bytes((n + 7) // 8 or 1, "little"), dtype=np.uint8)
    return np.unpackbits(raw, count=n, bitorder="little").astype(bool)


def _edge_arrays(U: Units, order: Order) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(src, dst, indegree)`` of ``order``'s edges as arrays (cached on ``U`` per order)."""
    key = ("edges", id(order))
    hit = U.cache.get(key)
    if hit is not None and hit[0] is order:
        return hit[1]
    succs = order[1]
    src = np.fromiter((x for x in range(len(succs)) for _ in succs[x]), dtype=np.int64)
    dst = np.fromiter((y for x in range(len(succs)) for y in succs[x]), dtype=np.int64)
    out = (src, dst, np.bincount(dst, minlength=len(succs)).astype(float))
    U.cache[key] = (order, out)
    return out


#: Descendant masks expanded to bits per block (bounds the memory of :func:`_descendant_times`).
DESC_BLOCK = 256
#: Most units for the exact descendant times (``O(N^2)``); above, a longest-path bound (``O(N + E)``).
DESC_EXACT_MAX = 4096


def _descendant_times(U: Units, order: Order, m: np.ndarray, deadline: float) -> list[float]:
    """Least time of each unit with all its descendants in ``order`` (the skip rule of
    :meth:`_Sweep._expand`), cached on ``U`` per order.

    Up to :data:`DESC_EXACT_MAX` units, the descendant masks are integers ORed along a reverse
    topological order (``O(E N / 64)`` word operations) and their weighted sums are taken block by
    block as a 0/1 matrix times ``m`` (``O(N^2)`` multiply-adds in compiled code), the deadline
    checked per block. Above, each value is the heaviest path from the unit instead (``O(N + E)``):
    a path's units are descendants and times are ``>= 0``, so it is a lower bound of the exact
    value, and a lower bound only weakens the skip rule, never drops a set that could be kept.
    """
    key = ("m_desc", id(order))
    hit = U.cache.get(key)
    if hit is not None and hit[0] is order:
        return hit[1]
    N = U.count
    if N > DESC_EXACT_MAX:
        path = [0.0] * N
        for x in _topological(order):
            path[x] = float(m[x]) + max((path[y] for y in order[1][x]), default=0.0)
        U.cache[key] = (order, path)
        return path
    desc = [0] * N
    for x in _topological(order):
        mask = 1 << x
        for y in order[1][x]:
            mask |= desc[y]
        desc[x] = mask
    nbytes = (N + 7) // 8 or 1
    finite = np.where(np.isfinite(m), m, 0.0)
    infinite = (~np.isfinite(m)).astype(float)
    out: list[float] = []
    for lo in range(0, N, DESC_BLOCK):
        if time.perf_counter() > deadline:
            raise SearchTimeout
        block = desc[lo : lo + DESC_BLOCK]
        raw = np.frombuffer(b"".join(d.to_bytes(nbytes, "little") for d in block), dtype=np.uint8)
        bits = np.unpackbits(raw.reshape(len(block), nbytes), axis=1, count=N, bitorder="little")
        # 0 * inf is nan: infinite times (a unit no class may run) are counted apart.
        total = bits @ finite
        out.extend(np.where(bits @ infinite > 0, math.inf, total).tolist())
    U.cache[key] = (order, out)
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
        if "ratios" not in U.cache:
            U.cache["ratios"] = class_ratios(U)
        self.m, self.rho = U.cache["ratios"]
        self.m_arr = np.asarray(self.m, dtype=float)
        self.m_desc = _descendant_times(U, order, self.m_arr, deadline)
        self.edges = _edge_arrays(U, order)

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
        src, dst, indeg = self.edges
        m_arr = self.m_arr
        for I0, (v0, _, _) in sorted(states.items(), key=lambda kv: kv[1][0]):
            # Checked per state too: on large graphs one state's set-up alone is O(N + E).
            if time.perf_counter() > deadline:
                raise SearchTimeout
            if full == I0 or any(levels[Lm].get(I0, (math.inf,))[0] <= v0 for Lm in lower):
                continue
            # md0 and the available units by whole-array operations on I0's bits (O(N + E)),
            # not by N shifts of an N-bit integer (O(N^2 / 64)).
            inside = mask_bits(I0, N)
            md0 = float(m_arr[inside].sum())
            ready = np.bincount(dst, weights=inside[src], minlength=N)
            avail0 = np.flatnonzero(~inside & (ready == indeg)).tolist()

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
