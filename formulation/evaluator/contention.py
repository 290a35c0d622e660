"""Version-2 cost model, part 1: per-request loads over routes, and processor-sharing fractions.

docs/instance-format.md §9.4–§9.6. For one placement of the combined graph this module computes,
per request, the compute time on each device and the occupied time on each channel (every hop of
every route), the fixed delays, the energy, cost and memory of all requests together; and, for the
``share`` contention model, the fractions of each device and channel given to each request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from formulation.evaluator.batch import REL_TOL
from formulation.generation import Phase, memory_terms, phase_tables
from formulation.model import FloatArray, Instance, IntArray
from formulation.workload import Route, Workload


@dataclass(frozen=True)
class RoutedTransfer:
    """One tensor of request ``request`` sent once from ``src`` to ``dst`` over ``route``."""

    request: int
    tensor: int
    src: int
    dst: int
    bytes: float
    route: Route
    occupied: tuple[float, ...]
    """Per hop: ``bytes / bandwidth`` (the hop's channel is busy this long)."""
    delay: tuple[float, ...]
    """Per hop: the fixed delay (latency plus overhead) after the hop's last byte leaves."""

    @property
    def duration(self) -> float:
        """Store-and-forward time: ``sum over hops of (delay + occupied)``."""
        return math.fsum(self.occupied) + math.fsum(self.delay)


@dataclass(frozen=True)
class Loads:
    """What one placement asks of every device and channel, per request (docs/instance-format.md §9.4).

    ``comp[r, d]`` and ``chan[r, a, b]`` are the seconds request ``r`` keeps device ``d`` and channel
    ``a -> b`` busy when it has them to itself; ``fixed[r]`` the sum of its transfers' fixed delays.
    """

    placement: IntArray
    transfers: tuple[RoutedTransfer, ...]
    missing: tuple[tuple[int, int, int], ...]
    """``(tensor, src, dst)`` of every needed transfer without a route."""
    comp: FloatArray
    chan: FloatArray
    fixed: FloatArray
    link_bytes: FloatArray
    tx_energy: FloatArray
    rx_energy: FloatArray
    cost: float
    memory: FloatArray

    @property
    def alone(self) -> FloatArray:
        """(R,) each request's sequential latency as if alone: compute plus transfer durations."""
        return self.comp.sum(axis=1) + self.chan.sum(axis=(1, 2)) + self.fixed

    @property
    def compute_time(self) -> FloatArray:
        """(k,) compute seconds per device over all requests."""
        return self.comp.sum(axis=0)

    @property
    def link_busy(self) -> FloatArray:
        """(k, k) occupied seconds per channel over all requests."""
        return self.chan.sum(axis=0)


def request_loads(inst: Instance, P: IntArray, phase: Phase = "total") -> Loads:
    """Loads of placement ``P`` (device index per combined layer).

    A generation request (§9.10) counts all its passes (``phase="total"``) or its prefill alone
    (``"prefill"``): layer times and tensor bytes summed over the passes in closed form, each
    transfer's fixed delays paid once per pass (:func:`formulation.generation.phase_tables`).
    """
    wl = inst.workload
    assert wl is not None
    g, s = inst.graph, inst.system
    tab = phase_tables(inst, phase)
    R, k = len(wl.requests), s.k
    comp = np.zeros((R, k))
    chan = np.zeros((R, k, k))
    fixed = np.zeros(R)
    link_bytes = np.zeros((k, k))
    tx = np.zeros(k)
    rx = np.zeros(k)
    t_v = tab.time[np.arange(g.n), P]
    np.add.at(comp, (wl.request_of_layer, P), t_v)
    transfers: list[RoutedTransfer] = []
    missing: list[tuple[int, int, int]] = []
    for t in range(g.n + g.m):
        r = int(wl.request_of_tensor[t])
        req = wl.requests[r]
        a = int(P[t]) if t < g.n else req.source
        dests = {int(P[v]) for v in g.consumers[t]}
        if t < g.n and g.is_output[t] and req.sink is not None:
            dests.add(req.sink)
        nbytes = float(tab.tensor_bytes[t])
        for b in sorted(dests - {a}):
            route = wl.route(a, b)
            if route is None:  # as in version 1 (§5.2): infeasible, and the transfer takes forever
                missing.append((t, a, b))
                fixed[r] = math.inf
                chan[r, a, b] = math.inf  # the period is infinite too, as in version 1 (§5.5)
                continue
            occ = tuple(nbytes / float(s.bandwidth[i, j]) for i, j in route)
            delay = tuple(float(tab.passes[r] * s.link_latency[i, j]) for i, j in route)
            for (i, j), o in zip(route, occ, strict=True):
                chan[r, i, j] += o
                link_bytes[i, j] += nbytes
                # 0 W times an infinite time stays 0 (as in version 1)
                tx[i] += s.tx_power[i, j] * o if s.tx_power[i, j] > 0 else 0.0
                rx[j] += s.rx_power[i, j] * o if s.rx_power[i, j] > 0 else 0.0
            fixed[r] += math.fsum(delay)
            transfers.append(RoutedTransfer(r, t, a, b, nbytes, route, occ, delay))
    cost = float((comp.sum(axis=0) * s.price).sum() + (link_bytes * s.link_price).sum())
    mem = _memory(inst, P) if phase == "total" else np.zeros(k)
    return Loads(P, tuple(transfers), tuple(missing), comp, chan, fixed, link_bytes, tx, rx, cost, mem)


def _memory(inst: Instance, P: IntArray) -> FloatArray:
    """(k,) memory per device (docs/instance-format.md §9.6).

    Parameters once per (model, layer, device), whichever requests run that layer there; the
    key/value cache of generation requests at their last step (§9.10); under the ``peak`` model,
    plus for each request the largest working set of its layers on the device (requests may be in
    flight together, so their activations add up; a generation's over all its passes).
    """
    wl = inst.workload
    assert wl is not None
    g, k = inst.graph, inst.k
    mem = np.zeros(k)
    seen: set[tuple[str, str, int]] = set()
    for v in range(g.n):
        key = (*wl.weight_key[v], int(P[v]))
        if key not in seen:
            seen.add(key)
            mem[int(P[v])] += g.param_bytes[v]
    peak_v, kv = memory_terms(inst)
    np.add.at(mem, P, kv)
    if inst.problem.constraints.memory_model == "params":
        return mem
    peak = np.zeros((len(wl.requests), k))
    np.maximum.at(peak, (wl.request_of_layer, P), peak_v)
    return mem + peak.sum(axis=0)


# -- share: processor sharing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shares:
    """Fractions of each resource per request and the latencies they give (docs/instance-format.md §9.5)."""

    device: FloatArray
    """(R, k) fraction of each device given to each request (0 where it has no work there)."""
    channel: FloatArray
    """(R, k, k) fraction of each channel."""
    latency: FloatArray
    """(R,) per-request latency: ``fixed + sum over resources of work / fraction``."""
    method: str


def share_latencies(loads: Loads, wl: Workload) -> Shares:
    """The fractions that minimise the latency aggregate, and each request's latency under them.

    ``sum``: for each resource ``x``, ``s_rx = sqrt(w_r W_rx) / sum_j sqrt(w_j W_jx)`` (the square-root
    rule; minimises ``sum_r w_r W_rx / s_rx`` subject to ``sum_r s_rx <= 1``, by Cauchy–Schwarz).
    ``max``: :func:`_minmax_shares`.
    """
    R, k = loads.comp.shape
    W = np.concatenate([loads.comp, loads.chan.reshape(R, k * k)], axis=1)  # (R, X)
    # a request that never completes (an infinite layer time, a transfer without a route) keeps an
    # infinite latency and takes no share: the fractions are those of the other requests
    never = ~np.isfinite(W).all(axis=1) | ~np.isfinite(loads.fixed)
    W = np.where(np.isfinite(W) & ~never[:, None], W, 0.0)
    fixed = np.where(never, 0.0, loads.fixed)
    w = np.array([r.weight for r in wl.requests])
    if wl.aggregate == "sum":
        root = np.sqrt(w[:, None] * W)
        tot = root.sum(axis=0)
        S = np.divide(root, tot[None, :], out=np.zeros_like(W), where=tot[None, :] > 0)
        method = "square-root rule"
    else:
        # deadlines with half the tolerance of the deadline check (§5.10): room for float noise
        cap = np.array([math.inf if r.deadline_s is None else r.deadline_s * (1 + REL_TOL / 2) for r in wl.requests])
        S, method = _minmax_shares(W, fixed, w, cap)
        if not method:  # the deadlines cannot all be met: the plain min-max fractions (a violation)
            S, method = _minmax_shares(W, fixed, w, np.full(len(w), math.inf))
    with np.errstate(divide="ignore"):
        per = np.divide(W, S, out=np.zeros_like(W), where=W > 0)
    lat = np.where(never, math.inf, fixed + per.sum(axis=1))
    return Shares(S[:, :k], S[:, k:].reshape(R, k, k), lat, method)


def _minmax_shares(W: FloatArray, fixed: FloatArray, w: FloatArray, cap: FloatArray) -> tuple[FloatArray, str]:
    """Fractions minimising ``max_r w_r L_r``, ``L_r = fixed_r + sum_x W_rx / s_rx``, s.t. ``sum_r s_rx <= 1``
    and ``L_r <= cap_r`` (the request's deadline); the method is ``""`` when no fractions meet the caps.

    A resource used by one request goes to it whole. When every request uses at most one resource
    it shares with others (Tang et al.'s single edge server, arXiv 2007.09072), the optimum is found
    by bisection on the level ``T``: request ``r`` needs ``s_rx >= W_rx / (T / w_r - c_r)`` (``c_r`` its
    fixed delays plus its unshared work) and ``T`` is feasible iff these needs sum to at most 1 on
    every resource — exact to float precision. Otherwise the convex problem (minimise ``T`` subject to
    each request's latency ``<= T / w_r`` and the sums) is solved by SLSQP from that bisection's
    feasible point, to a relative tolerance of about 1e-10.
    """
    R, _X = W.shape
    users = (W > 0).sum(axis=0)
    shared = (users > 1)[None, :] & (W > 0)
    S = np.where(W > 0, 1.0, 0.0)
    if not shared.any():
        return S, "no shared resource"
    c = fixed + np.where(shared, 0.0, W).sum(axis=1)

    def needs(T: float) -> FloatArray | None:
        slack = np.minimum(T / w, cap) - c
        n = np.zeros_like(W)
        for r in range(R):
            mine = shared[r]
            if mine.any():
                if slack[r] <= 0:
                    return None
                # one shared resource: all the slack; several: split by the square-root rule (feasible point)
                root = np.sqrt(W[r, mine])
                n[r, mine] = root * root.sum() / slack[r]
        return n if (n.sum(axis=0) <= 1.0).all() else None

    # As T grows, a request without a deadline needs a share tending to 0 (but positive where it has
    # work), one with a deadline the share its deadline alone demands: the deadlines can be met iff
    # those demands leave room, strictly where a request without a deadline also needs the resource.
    capped = np.isfinite(cap)
    if capped.any():
        slack_inf = np.where(capped, cap - c, np.inf)
        if ((slack_inf <= 0) & shared.any(axis=1)).any():
            return S, ""
        demand = np.where(shared & capped[:, None], W / np.where(np.isfinite(slack_inf), slack_inf, 1.0)[:, None], 0.0)
        free_users = (shared & ~capped[:, None]).any(axis=0)
        total = demand.sum(axis=0)
        if (total > 1.0).any() or (free_users & (total >= 1.0 - 1e-9)).any():  # 1e-9: the deadline tolerance
            return S, ""
    lo = float((w * (c + np.where(shared, W, 0.0).sum(axis=1))).max())
    hi = max(lo, 1e-300) * 2
    while needs(hi) is None:
        hi *= 2
        if not math.isfinite(hi):
            return S, ""
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if needs(mid) is None:
            lo = mid
        else:
            hi = mid
    n = needs(hi)
    assert n is not None
    col = n.sum(axis=0)
    S = np.where(shared, np.divide(n, col[None, :], out=np.zeros_like(n), where=col[None, :] > 0), S)
    if (shared.sum(axis=1) <= 1).all():
        return S, "bisection on the latency level"
    return _slsqp_polish(W, fixed, w, cap, shared, S), "convex solve (SLSQP) from the bisection point"


def _slsqp_polish(
    W: FloatArray, fixed: FloatArray, w: FloatArray, cap: FloatArray, shared: FloatArray, S0: FloatArray
) -> FloatArray:
    idx = np.argwhere(shared)
    x0 = np.array([S0[r, x] for r, x in idx])
    _R, X = W.shape

    def full(z: FloatArray) -> FloatArray:
        S = np.where(W > 0, 1.0, 0.0)
        S[idx[:, 0], idx[:, 1]] = z
        return S

    def lat(z: FloatArray) -> FloatArray:
        S = full(z)
        per = np.divide(W, S, out=np.zeros_like(W), where=W > 0)
        return np.asarray(w * (fixed + per.sum(axis=1)))

    T0 = float(lat(x0).max())
    cols = np.unique(idx[:, 1])
    capped = np.isfinite(cap)
    cons = [
        {"type": "ineq", "fun": lambda y: y[-1] - lat(y[:-1])},
        {"type": "ineq", "fun": lambda y: (cap * w - lat(y[:-1]))[capped] / T0},
        {"type": "ineq", "fun": lambda y: 1.0 - np.bincount(idx[:, 1], weights=y[:-1], minlength=X)[cols]},
    ]
    res = minimize(
        lambda y: y[-1] / T0,
        np.append(x0, T0),
        method="SLSQP",
        bounds=[(1e-12, 1.0)] * len(x0) + [(0.0, None)],
        constraints=cons,
        options={"ftol": 1e-14, "maxiter": 500},
    )
    z = np.clip(res.x[:-1], 1e-12, 1.0)
    col = np.bincount(idx[:, 1], weights=z, minlength=X)
    z = z / np.maximum(col[idx[:, 1]], 1.0)  # never more than the whole resource
    better = lat(z).max() <= T0 and (lat(z)[capped] <= (cap * w)[capped]).all()
    return full(z) if better else S0
