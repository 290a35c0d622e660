"""``tang``: exact min–max latency of many users sharing one edge server (polynomial).

The setting of Tang et al., "Joint Multi-User DNN Partitioning and Computational Resource
Allocation for Collaborative Edge Intelligence" (arXiv 2007.09072, 2020): every user offloads part
of its own DNN (a chain) to one edge server whose compute the users share (``contention: share``)
and the largest latency is minimised (``aggregate: max``). In version-2 terms
(docs/instance-format.md §9): a star of links between the server and one device per request, each
request's source (and sink, if any) its own device, and each request's layers allowed (after its
``allowed`` and ``private``) only on its own device and the server (``allowed: [device, server]``,
§9.2) — a layer that may run on another user's device, reached through the server, is outside this
model and the instance is refused (``scip-share``, ``brute``); per request ``L_r = c_r(p) + W_r(p) / s_r``
where ``W_r(p)`` is the server work of placement ``p`` and ``c_r(p)`` everything else (its device's
compute and its own links' transfer times, which no other request uses).

Algorithm (exact; the paper's one cut per user is a special case: every placement of a request on
its own device and the server is considered, and models may be DAGs):

* For a level ``T``, request ``r`` needs the server share
  ``need_r(T) = min over p of W_r(p) / (B_r - c_r(p))`` with ``B_r = min(T / w_r, deadline_r)``.
  By Dinkelbach's optimality condition the minimiser at the optimal ratio ``s*`` minimises
  ``W_r + s* c_r``, so it lies on the lower envelope of the lines ``W_r(p) + s c_r(p)`` over
  ``s`` in ``(0, 1]`` (more than the whole server is infeasible anyway). The envelope's placements are
  found once per distinct request by breakpoint search, each point a shortest path on a chain or a
  minimum cut on a DAG (:mod:`solvers.tang_cut`); ``need_r(T)`` is then a minimum over them.
* ``T`` is feasible iff ``sum_r need_r(T) <= 1`` (the shares of the server), which is monotone in
  ``T``: bisection on ``T`` to float precision. The last infeasible level is the proven bound.

The envelope has at most ``n + 1`` pieces (parametric cuts are nested), found with two cuts each, and
each bisection step costs O(R x pieces): polynomial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from formulation.evaluator import REL_TOL
from formulation.model import Instance
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination
from solvers.tang_cut import Line, RequestCosts, chain_best, cut_best, envelope, request_costs


class Tang(Solver):
    """Many users, one shared edge server, min–max latency under processor sharing (exact)."""

    name = "tang"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency"}),
        constraints=frozenset({"allowed", "private"}),
        chain_only=False,
        workload=frozenset({"share"}),
        note="version 2, share, max: each request on its own device and one shared server",
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
        wl = inst.workload
        assert wl is not None
        srv = next(d for d in range(inst.k) if d not in {q.source for q in wl.requests})
        users: list[_User] = []
        cache: dict[bytes, list[Line]] = {}
        calls = [0]

        def counted(best: Callable[[RequestCosts, float], tuple[int, ...] | None]) -> Any:
            def call(rc: RequestCosts, s: float) -> tuple[int, ...] | None:
                calls[0] += 1
                return best(rc, s)

            return call

        for r, req in enumerate(wl.requests):
            rc = request_costs(inst, r, srv)
            key = b"".join(np.ascontiguousarray(a).tobytes() for a in (rc.t, rc.ok, rc.up, rc.down))
            key += repr((rc.consumers, rc.producer, rc.to_sink)).encode()
            if key not in cache:
                cache[key] = envelope(rc, counted(chain_best if _simple_chain(rc) else cut_best))
            # deadlines with the evaluator's tolerance for float noise (docs/instance-format.md §5.10)
            cap = req.deadline_s * (1 + REL_TOL / 2) if req.deadline_s is not None else math.inf
            users.append(_User(rc, cache[key], req.weight, cap))
        build = time.perf_counter() - t0
        if any(not u.lines for u in users):
            return RawSolution(Termination.INFEASIBLE, build_time_s=build, solve_time_s=time.perf_counter() - t0)
        if not _feasible_in_the_limit(users):
            return RawSolution(Termination.INFEASIBLE, build_time_s=build, solve_time_s=time.perf_counter() - t0)
        # with the whole server, no request beats its best time: a lower bound on the level
        lo = max(u.w * min(W + c for W, c, _ in u.lines) for u in users)
        hi = max(lo, 1e-300)
        while _total_need(users, hi)[0] > 1.0:
            hi *= 2.0
            if not math.isfinite(hi):
                return RawSolution(Termination.INFEASIBLE, build_time_s=build, solve_time_s=time.perf_counter() - t0)
        steps = 0
        while steps < 2000:
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                break
            steps += 1
            if _total_need(users, mid)[0] > 1.0:
                lo = mid
            else:
                hi = mid
        total, placements = _total_need(users, hi)
        P = np.empty(inst.n, dtype=np.int64)
        for u, p in zip(users, placements, strict=True):
            P[list(u.rc.layers)] = [u.rc.devs[d] for d in p]
        n_lines = sum(len(v) for v in cache.values())
        return RawSolution(
            Termination.OPTIMAL,
            placement=P,
            solver_objective=hi,
            bound=lo,
            build_time_s=build,
            solve_time_s=time.perf_counter() - t0,
            log=f"{len(cache)} distinct requests, {n_lines} envelope placements; bisection on the level: "
            f"{steps} steps, T in [{lo!r}, {hi!r}]\n",
            extra={"bisection_steps": steps, "server_share_used": total, "candidates": n_lines,
                   "oracle_calls": calls[0], "distinct_requests": len(cache)},
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
    # the model: each request runs on its own device and the server only (docs/algorithms.md);
    # a device it may also use (after `allowed`/`private`) is outside it, and so outside the proof
    usable = inst.placement_mask & np.isfinite(inst.time)
    names = inst.system.device_ids
    wider = []
    for r in wl.requests:
        extra = sorted({int(d) for v in r.layers for d in np.flatnonzero(usable[v])} - {r.source, srv})
        if extra:
            wider.append(f"{r.id!r} also on {', '.join(names[d] for d in extra)}")
    if wider:
        out.append(
            f"requests may run layers off their own device and the server {names[srv]} ({'; '.join(wider)}): "
            "Tang et al.'s setting needs each request's `allowed` to list only its source and the server; "
            "scip-share or brute solve the instance as it is"
        )
    for r in wl.requests:
        if r.sink is not None and r.sink != r.source:
            out.append(f"request {r.id!r} has a sink other than its source")
        if r.weight <= 0:
            out.append(f"request {r.id!r} has weight {r.weight} (> 0 needed)")
    return out


@dataclass(frozen=True)
class _User:
    rc: RequestCosts
    lines: list[Line]
    w: float
    cap: float

    def need(self, T: float) -> tuple[float, tuple[int, ...]]:
        """Least server share meeting ``L <= B = min(T / w, deadline)`` over the envelope's placements."""
        B = min(T / self.w, self.cap)
        best: float = math.inf
        arg: tuple[int, ...] = ()
        for W, c, p in self.lines:
            s = W / (B - c) if c < B else math.inf
            if W == 0.0:  # no server work: no share needed when the budget is met
                s = 0.0 if c <= B else math.inf
            if s < best:
                best, arg = s, p
        return best, arg


def _simple_chain(rc: RequestCosts) -> bool:
    """A chain whose model inputs feed its first layer only and whose last layer alone leaves it."""
    n = len(rc.layers)
    for x, users in enumerate(rc.consumers):
        prod = rc.producer[x]
        if prod < 0 and users != (0,):
            return False
        if prod >= 0 and users != ((prod + 1,) if prod + 1 < n else ()):
            return False
        if prod >= 0 and rc.to_sink[x] and prod != n - 1:
            return False
    return True


def _feasible_in_the_limit(users: list[_User]) -> bool:
    """Whether some level ``T`` is feasible: as ``T`` grows, a request with a deadline needs the share
    its deadline demands and one without needs a share tending to 0, which is 0 only where it has a
    placement without server work. Float sums at huge ``T`` cannot tell ``1 + tiny`` from 1, so the
    limit is checked exactly here (the same rule as the evaluator's fractions, formulation/evaluator/
    contention.py)."""
    capped = sum(u.need(math.inf)[0] for u in users if math.isfinite(u.cap))
    positive = any(not math.isfinite(u.cap) and all(W > 0 for W, _, _ in u.lines) for u in users)
    return capped <= 1.0 and not (positive and capped >= 1.0 - 1e-9)


def _total_need(users: list[_User], T: float) -> tuple[float, list[tuple[int, ...]]]:
    total, places = 0.0, []
    for u in users:
        s, p = u.need(T)
        total += s
        places.append(p)
        if not math.isfinite(total):
            break
    return total, places
