"""``shard-dp``: pipeline stages of a chain, each on one device or a tensor-parallel group, by DP.

Alpa's two levels (Zheng et al., "Alpa: Automating Inter- and Intra-Operator Parallelism for
Distributed Deep Learning", OSDI 2022, §5): an inter-operator DP cuts the chain into *stages*
(contiguous runs of layers) and gives each stage a submesh; the intra-operator choice (here: one
device or a ring group of ``g`` devices, :mod:`formulation.sharding`) is made exactly for every
stage and submesh the DP considers. Devices are heterogeneous, so a submesh is a *set* of devices
(as in the subset DP of PipeEdge and EdgeShard, :mod:`solvers.dp`), not a count.

Space searched (exact for it, ``constraints.pipeline: true``): a chain ``0 -> ... -> n-1``
(:func:`formulation.sharding.chain_problem`) cut into stages ``[i, j)``; each stage runs on one
option ``B`` (every layer of the stage allows ``B``: a group only when each layer declares
``shardable`` with ``max_degree >= |B|``); the options of different stages are disjoint. These are
exactly the placements the sharded evaluator calls pipelines (§5.14: used options pairwise
disjoint, quotient graph acyclic, which on a chain means each option holds one contiguous run).

Value of a stage (§5.14 restricted to a pipeline), with ``A`` the previous stage's option:

* sequential latency (additive): ``sum_{v in [i,j)} span(v, B)`` + the model inputs' transfers to
  ``B`` + the transfers of layer ``i-1``'s tensor from ``A`` to ``B`` (+ the output's transfer to
  the sink after the last stage); the latency is the sum over stages;
* period (bottleneck): the largest of each member's ``sum (t(v, d) / g + T_coll)``, each ring
  channel's summed occupancy (plus, for the first stage, the model input's transfers), the boundary
  transfers' occupancies from ``A`` and, after the last stage, the sink transfer's; the period is
  the maximum over stages. Every channel carries the traffic of one stage or boundary only — which
  holds when model inputs are read by the first layer only and the sink is none or the source
  (otherwise the input and the returned output could share the channel source -> sink; such
  instances are refused, and ``shard-brute`` or ``shard-milp`` solve them);
* memory: each member holds ``sum param_bytes / g + max peak_term`` of the stage (same for every
  member), at most the smallest memory of the option.

DP: ``V[j][(U, B)]`` = best value of the first ``j`` layers cut into stages on disjoint options whose
union is ``U``, the last one ``B``. ``V[j][(U ∪ B, B)] = min over i, (U, A) of combine(V[i][(U, A)],
boundary(A, B, i), stage(B, i, j))`` with ``B ∩ U = ∅``; the answer is the least ``V[n][·]``.
Each stage vector ``stage(B, i, ·)`` is computed once per ``(B, i)`` from prefix sums (numpy over
``j``), so the work is ``O(n · Σ_{(U, A)} |{B : B ∩ U = ∅}| · n)``: with every subset of ``K``
devices an option, ``O(n² 4^K)`` (refused above :data:`MAX_WORK`); with groups of at most ``G``
devices, far less. Memory ``O(n · |{(U, B)}|)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from formulation.evaluator.sharded import SHARDED_CONSTRAINTS
from formulation.model import FloatArray, Instance
from formulation.sharding import (
    Option,
    Send,
    chain_problem,
    collective,
    member_compute,
    options,
    param_share,
    peak_term,
    sends,
    span,
)
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination
from solvers.sharding import ShardedRaw, ShardingSolver

#: Largest estimated ``n² · (states × options)`` accepted.
MAX_WORK = 2e9

Key = tuple[int, Option]


def _mask(o: Option) -> int:
    return sum(1 << d for d in o)


class _Tables:
    """Per option, per layer: the terms of a stage, as prefix sums over layers."""

    def __init__(self, inst: Instance, bottleneck: bool) -> None:
        g, s = inst.graph, inst.system
        n = g.n
        self.inst, self.n, self.bottleneck = inst, n, bottleneck
        per_layer = [set(options(inst, v)) for v in range(n)]
        self.opts: list[Option] = sorted(set().union(*per_layer), key=lambda o: (len(o), o))
        self.valid = {o: np.array([o in per_layer[v] for v in range(n)]) for o in self.opts}
        # per-layer terms; a stage's totals are summed forward from its first layer (a difference of
        # running totals loses a small layer after a huge one: (1e19 + 1.5) - 1e19 = 0)
        self.rows: dict[Option, dict[object, FloatArray]] = {}
        self.peak: dict[Option, FloatArray] = {}
        self.cap: dict[Option, float] = {}
        for o in self.opts:
            rows: dict[object, FloatArray] = {}
            lat = np.zeros(n)
            par = np.zeros(n)
            pk = np.zeros(n)
            for v in range(n):
                if not self.valid[o][v]:
                    continue
                par[v] = param_share(inst, v, o)
                pk[v] = peak_term(inst, v, o)
                moves = [m for t in g.layer_inputs[v] if t >= n
                         for m in sends(inst, [s.source_index], o, float(g.tensor_bytes[t]))]
                lat[v] = span(inst, v, o) + sum(m.duration_s for m in moves)
                if not math.isfinite(lat[v]):  # an input cannot reach o, or a ring channel is missing
                    self.valid[o][v] = False
                    lat[v] = 0.0
                    continue
                if bottleneck:
                    coll = collective(inst, v, o)
                    for d, t in zip(o, member_compute(inst, v, o), strict=True):
                        rows.setdefault(("dev", d), np.zeros(n))[v] += t + coll.time_s
                    for ch, occ in zip(coll.channels, coll.occupied_s, strict=True):
                        rows.setdefault(("ch", ch), np.zeros(n))[v] += occ
                    for m in moves:
                        rows.setdefault(("ch", (m.src, m.dst)), np.zeros(n))[v] += m.occupied_s
            if not bottleneck:
                rows["lat"] = lat
            rows["par"] = par
            self.rows[o] = {key: np.asarray(arr, dtype=float) for key, arr in rows.items()}
            self.peak[o] = pk
            mem = inst.system.memory
            self.cap[o] = float(min(mem[d] for d in o)) if inst.problem.constraints.memory else math.inf
        self._stage: dict[tuple[Option, int], FloatArray] = {}

    def stage(self, o: Option, i: int) -> FloatArray:
        """Values of stages ``[i, j)`` on ``o`` for ``j = i+1 .. n`` (``inf`` where not allowed)."""
        key = (o, i)
        if key in self._stage:
            return self._stage[key]
        n = self.n
        valid = self.valid[o][i:]
        stop = int(np.argmin(valid)) if not valid.all() else valid.size  # layers i .. i+stop-1 allow o
        terms = self.rows[o]
        js = np.arange(i + 1, n + 1)
        vals = np.full(js.size, math.inf)
        if stop:
            jj = js[:stop]
            parts = [np.cumsum(c[i:i + stop]) for k_, c in terms.items() if k_ != "par"]
            value = np.max(parts, axis=0) if self.bottleneck else np.sum(parts, axis=0)
            mem = np.cumsum(terms["par"][i:i + stop]) + np.maximum.accumulate(self.peak[o][i:i + stop])
            value = np.where(mem <= self.cap[o] * (1 + 1e-9), value, math.inf)
            if jj[-1] == n:
                value[-1] = self._combine(value[-1], self._sink(o))
            vals[:stop] = value
        self._stage[key] = vals
        return vals

    def _combine(self, a: float, b: float) -> float:
        return max(a, b) if self.bottleneck else a + b

    def _sink(self, o: Option) -> float:
        inst = self.inst
        s, g = inst.system, inst.graph
        if s.sink_index is None or not g.is_output[self.n - 1]:
            return 0.0
        moves = sends(inst, o, [s.sink_index], float(g.output_bytes[self.n - 1]))
        return self._moves_value(moves)

    def _moves_value(self, moves: list[Send]) -> float:
        if any(not math.isfinite(m.duration_s) for m in moves):
            return math.inf
        if self.bottleneck:
            return max((m.occupied_s for m in moves), default=0.0)
        return float(sum(m.duration_s for m in moves))

    def boundary(self, a: Option, b: Option, i: int) -> float:
        """Layer ``i-1``'s tensor from ``a`` to ``b`` (its reader ``i`` runs on ``b``)."""
        return self._moves_value(sends(self.inst, a, b, float(self.inst.graph.output_bytes[i - 1])))


def dp_problem(inst: Instance) -> str | None:
    """Why ``shard-dp`` cannot solve ``inst`` exactly (None when it can)."""
    why = chain_problem(inst)
    if why:
        return why
    c, s, g = inst.problem.constraints, inst.system, inst.graph
    if s.k > 1 and not c.pipeline:
        return ("no 'pipeline: true' constraint (the DP searches pipeline stages only; shard-milp searches "
                "every placement)")
    if inst.problem.objective.terms().get("throughput"):
        if any(v != 0 for t in range(g.n, len(g.tensor_ids)) for v in g.consumers[t]):
            return "for the period, model inputs must be read by the first layer only"
        if s.sink_index is not None and s.sink_index != s.source_index:
            return "for the period, the sink must be the source or none"
    return None


def work_estimate(inst: Instance) -> float:
    """``n² × Σ_U (options inside U) × (options outside U)`` over used sets ``U`` (an upper estimate)."""
    masks = {_mask(o) for v in range(inst.n) for o in options(inst, v)}
    k = inst.k
    total = 0
    for u in range(1 << k):
        inside = sum(1 for m in masks if m & u == m)
        outside = sum(1 for m in masks if m & u == 0)
        total += max(inside, 1) * outside
    return float(inst.n) ** 2 * total


def solve_dp(inst: Instance) -> tuple[float, list[Option] | None]:
    """The optimum of the module docstring and its options by layer (None when infeasible)."""
    bottleneck = bool(inst.problem.objective.terms().get("throughput"))
    tab = _Tables(inst, bottleneck)
    n = inst.n
    best: dict[Key, FloatArray] = {}
    back: dict[Key, list[tuple[int, Key | None]]] = {}
    start: Key = (0, ())
    best[start] = np.full(n + 1, math.inf)
    best[start][0] = 0.0
    back[start] = [(-1, None)] * (n + 1)
    by_mask = [(o, _mask(o)) for o in tab.opts]
    for i in range(n):
        for key in [k_ for k_, arr in best.items() if math.isfinite(arr[i])]:
            used, prev = key
            val = float(best[key][i])
            for o, m in by_mask:
                if m & used or not tab.valid[o][i]:
                    continue
                base = val if i == 0 else tab._combine(val, tab.boundary(prev, o, i))
                if not math.isfinite(base):
                    continue
                vec = tab.stage(o, i)
                cand = np.maximum(base, vec) if bottleneck else base + vec
                nk: Key = (used | m, o)
                if nk not in best:
                    best[nk] = np.full(n + 1, math.inf)
                    back[nk] = [(-1, None)] * (n + 1)
                tgt = best[nk]
                for off in np.flatnonzero(cand < tgt[i + 1:]):
                    j = i + 1 + int(off)
                    tgt[j] = cand[off]
                    back[nk][j] = (i, key)
    finals = [(float(arr[n]), k_) for k_, arr in best.items() if k_ != start and math.isfinite(arr[n])]
    if not finals:
        return math.inf, None
    value, key = min(finals, key=lambda x: (x[0], x[1][0], x[1][1]))
    opts: list[Option] = [()] * n
    j = n
    cur: Key | None = key
    while cur is not None and j > 0:
        first, before = back[cur][j]
        for v in range(first, j):
            opts[v] = cur[1]
        j, cur = first, before
    return value, opts


class ShardDP(ShardingSolver):
    """Pipeline stages of a chain, each on a device or a tensor-parallel group, by DP (Alpa's two levels)."""

    name = "shard-dp"
    description = "pipeline stages on devices or tensor-parallel groups of a chain, by DP (Alpa's two levels)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        objectives=frozenset({"latency", "throughput"}),
        metrics=frozenset({"latency", "throughput"}),
        executions=frozenset({"sequential"}),
        constraints=SHARDED_CONSTRAINTS,
        chain_only=True,
        sharding=True,
        note="chains with pipeline: true; layers may declare shardable (tensor parallelism)",
    )

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Also a chain with ``pipeline: true`` (:func:`dp_problem`) within :data:`MAX_WORK`.

        Raises
        ------
        UnsupportedProblem
        """
        super().check(inst, options)
        why = dp_problem(inst)
        if why is None and work_estimate(inst) > MAX_WORK:
            why = f"an estimated {work_estimate(inst):.3g} DP steps (at most {MAX_WORK:.3g})"
        if why:
            raise UnsupportedProblem(f"solver {self.name!r} cannot solve instance {inst.name!r}: {why}")

    def search(self, inst: Instance, options: SolverOptions) -> ShardedRaw:
        """Run the DP; its value is the optimum over pipelines (bound = value)."""
        value, opts = solve_dp(inst)
        if opts is None:
            return ShardedRaw(Termination.INFEASIBLE)
        stages = sorted({(o, min(v for v in range(inst.n) if opts[v] == o)) for o in opts}, key=lambda x: x[1])
        return ShardedRaw(Termination.OPTIMAL, opts, value, value, extra={"stages": len(stages)})
