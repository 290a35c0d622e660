"""``tang``: exact min–max latency of many users sharing one edge server (polynomial).

The setting of Tang et al., "Joint Multi-User DNN Partitioning and Computational Resource
Allocation for Collaborative Edge Intelligence" (arXiv 2007.09072, 2020): every user offloads part
of its own DNN (a chain) to one edge server whose compute the users share (``contention: share``)
and the largest latency is minimised (``aggregate: max``). In version-2 terms
(docs/instance-format.md §9): a star of links between the server and one device per request, each
request's source (and sink, if any) its own device; per request ``L_r = c_r(p) + W_r(p) / s_r``
where ``W_r(p)`` is the server work of placement ``p`` and ``c_r(p)`` everything else (its device's
compute and its own links' transfer times, which no other request uses).

Algorithm (exact; the paper's one cut per user is a special case, any placement on the user's
device and the server is considered):

* For a level ``T``, request ``r`` needs the server share
  ``need_r(T) = min over p of W_r(p) / (B_r - c_r(p))`` with ``B_r = min(T / w_r, deadline_r)``.
  ``need_r <= s`` iff ``min_p [W_r(p) + s c_r(p)] <= s B_r``, an additive cost over the chain's
  layers and transfers, minimised by a shortest path over (layer, device) in O(n); Dinkelbach's
  iteration ``s <- W(p_s) / (B - c(p_s))`` reaches ``need_r`` in finitely many steps.
* ``T`` is feasible iff ``sum_r need_r(T) <= 1`` (the shares of the server), which is monotone in
  ``T``: bisection on ``T`` to float precision. The last infeasible level is the proven bound.

Each bisection step costs O(R n) shortest paths times the Dinkelbach steps, so the whole is
polynomial (about 100 steps for double precision).
"""

from __future__ import annotations

import math
import time

import numpy as np

from formulation.model import Instance, IntArray
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination


class Tang(Solver):
    """Many users, one shared edge server, min–max latency under processor sharing (exact)."""

    name = "tang"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency"}),
        constraints=frozenset({"allowed", "private"}),
        chain_only=False,
        workload=frozenset({"share"}),
        note="version 2, share, max: each request a chain on its own device and one shared server",
    )
    supported_options = frozenset({"time_limit_s"})
    description = "exact min-max latency of users sharing one edge server (Tang et al. 2020), polynomial"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        why = setting_problems(inst)
        if why:
            raise UnsupportedProblem(f"solver 'tang' cannot solve instance {inst.name!r}: " + "; ".join(why))

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        chains = [_Chain(inst, r) for r in range(len(inst.workload.requests))]  # type: ignore[union-attr]
        lo = max(ch.alone_lower_bound() for ch in chains)  # no request beats its time with the whole server
        hi = max(lo, 1e-300)
        while _total_need(chains, hi)[0] > 1.0:
            hi *= 2.0
            if not math.isfinite(hi):
                return RawSolution(Termination.INFEASIBLE, solve_time_s=time.perf_counter() - t0)
        steps = 0
        while steps < 2000:
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                break
            steps += 1
            if _total_need(chains, mid)[0] > 1.0:
                lo = mid
            else:
                hi = mid
        total, placements = _total_need(chains, hi)
        assert total <= 1.0
        P = np.empty(inst.n, dtype=np.int64)
        for ch, p in zip(chains, placements, strict=True):
            P[list(ch.layers)] = p
        return RawSolution(
            Termination.OPTIMAL,
            placement=P,
            solver_objective=hi,
            bound=lo,
            solve_time_s=time.perf_counter() - t0,
            log=f"bisection on the latency level: {steps} steps, T in [{lo!r}, {hi!r}]\n",
            extra={"bisection_steps": steps, "server_share_used": total},
        )


def setting_problems(inst: Instance) -> list[str]:
    """Why ``inst`` is not Tang et al.'s setting (empty when it is)."""
    wl = inst.workload
    if wl is None:
        return ["it is a version-1 instance (one request)"]
    out = []
    if wl.aggregate != "max":
        out.append(f"aggregate {wl.aggregate!r} (only max)")
    if wl.routing != "direct":
        out.append(f"routing {wl.routing!r} (only direct)")
    if wl.rated:
        out.append("rates (the utilisation constraint)")
    c = inst.problem.constraints
    if c.energy_budget_j or c.max_devices is not None:
        out.append("energy budgets or max_devices")
    if c.memory and np.isfinite(inst.system.memory).any():
        out.append("memory limits (weights shared between requests)")
    sources = [r.source for r in wl.requests]
    if len(set(sources)) != len(sources):
        out.append("two requests with one source device (each user has its own device)")
    servers = [d for d in range(inst.k) if d not in set(sources)]
    if len(servers) != 1:
        out.append(f"{len(servers)} devices that are no request's source (exactly one server)")
        return out
    srv = servers[0]
    for a, b in inst.system.links:
        i, j = inst.system.device_index[a], inst.system.device_index[b]
        if srv not in (i, j):
            out.append(f"a link {a} -> {b} between two user devices (a star around the server)")
            break
    g = inst.graph
    for r in wl.requests:
        if r.sink is not None and r.sink != r.source:
            out.append(f"request {r.id!r} has a sink other than its source")
        if r.weight <= 0:
            out.append(f"request {r.id!r} has weight {r.weight} (> 0 needed)")
        lay = r.layers
        ok_chain = all(g.preds[v] == ((lay[i - 1],) if i else ()) for i, v in enumerate(lay))
        if not ok_chain or r.outputs != (lay[-1],):
            out.append(f"request {r.id!r}: its model is not a chain with its last layer as the only output")
        elif not r.inputs or any(t in g.layer_inputs[v] for t in r.inputs for v in lay[1:]):
            out.append(f"request {r.id!r}: its model inputs must feed the first layer only")
    return out


class _Chain:
    """One request: additive costs over (layer, device) for device in {its own, the server}."""

    def __init__(self, inst: Instance, r: int) -> None:
        wl = inst.workload
        assert wl is not None
        req = wl.requests[r]
        s, g = inst.system, inst.graph
        srv = next(d for d in range(inst.k) if d not in {q.source for q in wl.requests})
        self.layers = req.layers
        self.devs = (req.source, srv)
        self.t = np.array([[inst.time[v, d] for d in self.devs] for v in req.layers])
        self.ok = np.array([[inst.placement_mask[v, d] for d in self.devs] for v in req.layers])
        up, down = (req.source, srv), (srv, req.source)

        def move(nbytes: float, a: int, b: int) -> float:
            return s.transfer_time(a, b, nbytes)  # inf without a channel

        # Inputs reach the first layer on the server through the uplink (each input once).
        self.first = np.array([0.0, sum(move(float(g.tensor_bytes[t]), *up) for t in req.inputs)])
        self.edge = [
            np.array([[0.0, move(float(g.output_bytes[v]), *up)], [move(float(g.output_bytes[v]), *down), 0.0]])
            for v in req.layers[:-1]
        ]
        last_b = float(g.output_bytes[req.layers[-1]])
        self.last = np.array([0.0, move(last_b, *down) if req.sink is not None else 0.0])
        self.B_cap = req.deadline_s if req.deadline_s is not None else math.inf
        self.w = req.weight

    def best(self, s: float) -> tuple[float, float, list[int]]:
        """Minimise ``W(p) + s c(p)`` over placements: (W, c, device indices) of the minimiser."""
        n = len(self.layers)
        W = np.array([0.0, 1.0])  # server time counts in W, the rest in c
        cost = np.where(self.ok[0], self.first * s + self.t[0] * np.where(W > 0, 1.0, s), np.inf)
        back: list[IntArray] = []
        for i in range(1, n):
            step = self.edge[i - 1] * s + (self.t[i] * np.where(W > 0, 1.0, s))[None, :]
            tot = cost[:, None] + step
            arg = np.argmin(tot, axis=0)
            back.append(arg)
            cost = np.where(self.ok[i], tot[arg, [0, 1]], np.inf)
        cost = cost + self.last * s
        j = int(np.argmin(cost))
        if not math.isfinite(cost[j]):
            return math.inf, math.inf, []
        path = [j]
        for arg in reversed(back):
            path.append(int(arg[path[-1]]))
        path.reverse()
        Wp = float(sum(self.t[i, 1] for i, d in enumerate(path) if d == 1))
        cp = float(self.first[path[0]] + self.last[path[-1]])
        cp += float(sum(self.t[i, 0] for i, d in enumerate(path) if d == 0))
        cp += float(sum(self.edge[i][path[i], path[i + 1]] for i in range(n - 1)))
        return Wp, cp, path

    def alone_lower_bound(self) -> float:
        """``w * min_p (c(p) + W(p))``: the request's latency with the whole server, a bound on ``T``."""
        Wp, cp, _ = self.best(1.0)
        return self.w * (Wp + cp)

    def need(self, T: float) -> tuple[float, list[int]]:
        """Least server share meeting ``L_r <= B = min(T / w, deadline)``, by Dinkelbach's iteration.

        ``need <= s`` iff ``min_p [W(p) + s c(p)] <= s B``; from ``s = 1`` (the whole server; more is
        infeasible) each step takes the minimiser ``p`` and ``s <- W(p) / (B - c(p))``, which
        decreases strictly until ``s`` is the least ratio.
        """
        B = min(T / self.w, self.B_cap)
        Wp, cp, p = self.best(1e-300)  # s -> 0: least server work, then least other time
        if p and Wp == 0.0 and cp <= B:
            return 0.0, [self.devs[d] for d in p]
        s = 1.0
        Wp, cp, p = self.best(s)
        if not p or Wp + s * cp > s * B:
            return math.inf, []
        for _ in range(10_000):
            ratio = Wp / (B - cp) if cp < B else math.inf
            if ratio >= s:
                break
            s = ratio
            Wn, cn, pn = self.best(s)
            if not pn or Wn + s * cn >= Wp + s * cp:
                break  # p stays a minimiser at s: s is the least ratio
            Wp, cp, p = Wn, cn, pn
        if cp >= B:
            return math.inf, []
        return Wp / (B - cp), [self.devs[d] for d in p]


def _total_need(chains: list[_Chain], T: float) -> tuple[float, list[list[int]]]:
    total, places = 0.0, []
    for ch in chains:
        s, p = ch.need(T)
        total += s
        places.append(p)
        if not math.isfinite(total):
            break
    return total, places
