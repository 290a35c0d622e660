"""Options no optimal placement uses, found by a forest relaxation and an incumbent (same optimum).

For an objective that is a sum over layers and transfers (sequential mode: latency, energy, cost
and their non-negative weighted sums, :mod:`solvers.additive`), dropping transfer terms gives a
lower bound, since every term is non-negative. Keeping, for every tensor, the transfer to one of
its consumers only (the *kept* edge ``t -> c(t)``; the transfer to the sink of a model output is a
layer term, and is not counted again when the kept consumer sits on the sink) leaves every layer
with at most one outgoing edge: an in-forest, on which the relaxed problem is solved exactly by
dynamic programming (min-sum message passing on a tree, Pearl 1988; as for tree-structured
assignment costs in Bokhari, IEEE Trans. Software Eng. 7(6), 1981). Its *min-marginals*

    LB(v, d) = min { relaxed objective of P : P(v) = d }  <=  min { objective of P : P(v) = d }

come from one pass up and one pass down the forest. An incumbent ``UB`` (the best feasible
placement among the relaxation's own optimum and the single-device placements, judged by the
evaluator) then proves that no placement with ``P(v) = d`` is optimal whenever

    LB(v, d) > UB (1 + 1e-9)

(the margin covers rounding of the sums). Such options are removed through ``allowed``, so every
engine built on :func:`formulation.milp.build_milp` solves a smaller model with the same optimum,
and the incumbent becomes its warm start. Constraints (memory, deadlines, budgets, ...) are ignored
by the relaxation, which keeps it a relaxation; the incumbent is checked against all of them. On the
ResNet-like 2,000-layer, 8-device benchmark model this removes most options (``benchmarks/milp.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from formulation.evaluator import batch_metrics, evaluate
from formulation.model import FloatArray, Instance, IntArray
from solvers.additive import additive_costs, not_additive_reason

#: Relative margin of the pruning test (rounding of sums of at most a few thousand terms).
MARGIN = 1e-9


@dataclass(frozen=True)
class ForestBound:
    """The forest relaxation's min-marginals ``lb[v, d]`` and an optimal relaxed placement.

    ``lb`` is ``inf`` where the option is forbidden or no relaxed placement with it is finite.
    """

    lb: FloatArray
    placement: IntArray
    value: float


def forest_bound(inst: Instance) -> ForestBound | None:
    """Min-marginals of the forest relaxation (see the module docstring).

    None when the objective is not a sum over layers and transfers: parallel mode, a period, a
    negative weight, network scenarios, or device features (``send_once`` counts a tensor once for
    several destinations, so the per-transfer terms would overstate it).
    """
    if inst.problem.execution != "sequential" or not_additive_reason(inst) is not None:
        return None
    if getattr(inst.problem, "scenarios", None) is not None:  # judged over several network states
        return None
    if inst.system.features:  # send_once / comm_not_overlapped: not the additive cost model
        return None
    ac = additive_costs(inst)
    g, s = inst.graph, inst.system
    n, k = g.n, s.k
    unary = ac.node.copy()
    sink = s.sink_index
    parent = np.full(n, -1, dtype=np.int64)
    edge: dict[int, FloatArray] = {}  # u -> (k, k) cost of the kept transfer from d(u) to d(parent[u])
    for t in range(n + g.m):
        cons = g.consumers[t]
        out_to_sink = t < n and sink is not None and bool(g.is_output[t])
        if t >= n:
            if cons:  # model input: from the source to the first consumer, a layer term there
                unary[cons[0]] += ac.tensor_cost(t)[s.source_index]
            continue
        cost = ac.tensor_cost(t) if cons or out_to_sink else None
        if out_to_sink:
            assert cost is not None and sink is not None
            unary[t] += cost[:, sink]
        if cons:
            assert cost is not None
            e = cost.copy()
            if out_to_sink:
                e[:, sink] = 0.0  # sent to the sink anyway: paid once, in the layer term
            parent[t] = cons[0]
            edge[t] = e
    children: list[list[int]] = [[] for _ in range(n)]
    for u in range(n):
        if parent[u] >= 0:
            children[int(parent[u])].append(u)
    # Up: up[v] = unary[v] + sum of the children's messages (children have smaller indices).
    up = unary.copy()
    msg = np.full((n, k), math.inf)
    arg = np.zeros((n, k), dtype=np.int64)  # best d(u) for each d(parent[u])
    for v in range(n):
        for u in children[v]:
            up[v] = up[v] + msg[u]
        p = int(parent[v])
        if p >= 0:
            tot = up[v][:, None] + edge[v]  # (d(v), d(p))
            arg[v] = np.argmin(tot, axis=0)
            msg[v] = tot[arg[v], np.arange(k)]
    # Down: out[v] = best cost of everything outside v's subtree given d(v) (roots: 0).
    out = np.zeros((n, k))
    for v in range(n - 1, -1, -1):
        kids = children[v]
        if not kids:
            continue
        # up[v] without one child's message, by prefix and suffix sums (no subtraction of inf)
        pre = [unary[v].copy()]
        for u in kids:
            pre.append(pre[-1] + msg[u])
        suf = np.zeros(k)
        for i in range(len(kids) - 1, -1, -1):
            u = kids[i]
            rest = pre[i] + suf + out[v]  # over d(v)
            out[u] = np.min(edge[u] + rest[None, :], axis=1)
            suf = suf + msg[u]
    roots = np.flatnonzero(parent < 0)
    comp_min = np.min(up[roots], axis=1)
    if not np.isfinite(comp_min).all():
        return None
    total = float(comp_min.sum())
    root_of = np.empty(n, dtype=np.int64)
    for v in range(n - 1, -1, -1):
        root_of[v] = v if parent[v] < 0 else root_of[int(parent[v])]
    rank = {int(r): i for i, r in enumerate(roots)}
    other = total - comp_min[[rank[int(r)] for r in root_of]]
    with np.errstate(invalid="ignore"):
        lb = up + out + other[:, None]
    lb = np.where(np.isnan(lb), math.inf, lb)
    P = np.zeros(n, dtype=np.int64)
    for v in range(n - 1, -1, -1):
        p = int(parent[v])
        P[v] = int(np.argmin(up[v])) if p < 0 else int(arg[v][P[p]])
    return ForestBound(lb, P, total)


def incumbent(inst: Instance, candidates: list[IntArray]) -> tuple[IntArray, float] | None:
    """The best feasible placement among ``candidates`` and every single-device placement."""
    single = np.repeat(np.arange(inst.k, dtype=np.int64)[:, None], inst.n, axis=1)
    P = np.vstack([*(np.asarray(c, dtype=np.int64)[None, :] for c in candidates), single])
    bm = batch_metrics(inst, P, parallel=False)
    obj = np.where(bm.feasible(), bm.objective(), math.inf)
    i = int(np.argmin(obj))
    if not math.isfinite(obj[i]):
        return None
    ev = evaluate(inst, P[i])  # the judge confirms the incumbent the pruning relies on
    if not (ev.feasible and math.isfinite(ev.objective)):
        return None
    return P[i], max(float(obj[i]), float(ev.objective))


@dataclass(frozen=True)
class Reduction:
    """The instance with the proven-useless options removed, the incumbent, and what was removed."""

    instance: Instance
    start: IntArray | None
    upper_bound: float
    removed: int
    relaxed_bound: float


def reduce_options(inst: Instance, keep: IntArray | None = None) -> Reduction:
    """Remove the options that the forest bound and the incumbent prove useless (module docstring).

    ``keep`` (a placement, e.g. a user's warm start) keeps its options whatever their bound.
    Instances whose objective is not additive in sequential mode come back unchanged.
    """
    fb = forest_bound(inst)
    if fb is None:
        return Reduction(inst, None, math.inf, 0, -math.inf)
    cands = [fb.placement] + ([keep] if keep is not None else [])
    best = incumbent(inst, cands)
    if best is None:
        return Reduction(inst, None, math.inf, 0, fb.value)
    P, ub = best
    useless = fb.lb > ub + MARGIN * abs(ub)
    useless[np.arange(inst.n), P] = False
    if keep is not None:
        useless[np.arange(inst.n), np.asarray(keep, dtype=np.int64)] = False
    mask = inst.placement_mask
    gone = useless & mask
    removed = int(gone.sum())
    if not removed:
        return Reduction(inst, P, ub, 0, fb.value)
    g, s = inst.graph, inst.system
    allowed = dict(inst.problem.constraints.allowed)
    left = mask & ~useless
    for v in np.flatnonzero(gone.any(axis=1)):
        allowed[g.layer_ids[v]] = tuple(s.device_ids[d] for d in np.flatnonzero(left[v]))
    cons = replace(inst.problem.constraints, allowed=allowed)
    return Reduction(inst.with_problem(replace(inst.problem, constraints=cons)), P, ub, removed, fb.value)
