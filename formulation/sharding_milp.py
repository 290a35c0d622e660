"""The MILP of tensor parallelism as a decision on a chain (docs/instance-format.md §5.14).

A layer's device choice becomes a choice among *options* (:func:`formulation.sharding.options`):
each whole device and each admissible group. On a chain ``0 -> 1 -> ... -> n-1``
(:func:`formulation.sharding.chain_problem`) every cost of §5.14 is a sum of terms of one layer's
option or of two consecutive layers' options, so the model is exact with

* ``x[v, o]`` binary: layer ``v`` runs on option ``o``; ``sum_o x[v, o] = 1``;
* ``y[v, o', o] >= 0``: layer ``v - 1`` on ``o'`` and ``v`` on ``o``, as a flow between consecutive
  layers: ``sum_o y[v, o', o] = x[v-1, o']`` and ``sum_o' y[v, o', o] = x[v, o]`` (the
  transportation polytope of two assignment rows, whose vertices for integral ``x`` are the products
  ``x[v-1, o'] x[v, o]``; a pair whose transfer has no channel has no column);
* sequential latency ``L = sum x[v, o] (span(v, o) + in(v, o)) + sum y[v, o', o] move(v, o', o)``,
  ``span`` the slowest member plus the collective, ``in`` the model inputs' transfers and, for the
  last layer, the output's transfer to the sink, ``move`` the transfers of layer ``v - 1``'s tensor
  to ``o`` (and to the sink when it is an output) from the best holder in ``o'``;
* period ``P >= sum x[v, o] (t(v, d) / |o| + T_coll(v, o))`` over options holding ``d``, for each
  device ``d``, and ``P >= `` the same sums of occupied times (collectives' ring channels, input,
  boundary and sink transfers) for each channel;
* memory, for each device ``d`` with a finite limit: ``sum x[v, o] param_bytes(v) / |o| + m_d <=
  memory(d)`` with ``m_d >= peak_term(v, o) x[v, o]`` for each option holding ``d`` (§5.9's
  ``sum params + max working set``, the max linearised from below, exact since ``m_d`` only
  appears in these rows).

Options no optimal solution uses are left out before building (exact, given an upper bound ``U`` on
the optimum, e.g. the value of a feasible placement): every term above is non-negative, so an option
or a pair whose own latency terms exceed ``U`` (sequential latency), or whose own term on one
device or channel exceeds ``U`` (period), cannot be in a solution of value at most ``U``. Besides
the size, this keeps the rows free of figures far beyond the answer's scale (a transfer over a
nearly dead channel), which the solver's absolute tolerances would otherwise let swamp the rest.

Size: ``sum_v |O_v|`` binaries and ``sum_v |O_{v-1}| |O_v|`` flows; ``|O_v| = K + sum_{g=2}^{G}
C(K, g)`` for a shardable layer of ``max_degree`` ``G`` on ``K`` devices (15 for ``K = G = 4``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from formulation.milp.model import LinearModel
from formulation.model import Instance
from formulation.sharding import (
    Option,
    Send,
    collective,
    member_compute,
    options,
    param_share,
    peak_term,
    sends,
    span,
)

Terms = dict[int, float]


@dataclass
class ShardMilp:
    """The model and how to read a solution back."""

    lp: LinearModel
    x: list[list[tuple[Option, int]]]
    """Per layer, ``(option, column)``."""
    metric_col: int


def _moves(inst: Instance, v: int, holders: Option, o: Option, with_reader: bool) -> list[Send]:
    """Transfers of layer ``v``'s tensor from ``holders`` to ``o`` (when read there) and the sink."""
    g, s = inst.graph, inst.system
    need = set(o) if with_reader else set()
    if s.sink_index is not None and g.is_output[v]:
        need.add(s.sink_index)
    return sends(inst, holders, need, float(g.tensor_bytes[v]))


def _input_moves(inst: Instance, v: int, o: Option) -> list[Send]:
    """Transfers of the model inputs layer ``v`` reads, from the source to ``o``."""
    g, s = inst.graph, inst.system
    out: list[Send] = []
    for t in g.layer_inputs[v]:
        if t >= g.n:
            out += sends(inst, [s.source_index], o, float(g.tensor_bytes[t]))
    return out


def build(inst: Instance, upper: float = math.inf) -> ShardMilp:
    """The MILP of the module docstring for a chain instance (objective latency or throughput).

    ``upper``: an upper bound on the optimum; options and pairs that cannot be in a solution of at
    most that value are left out (module docstring).
    """
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    # a little above the bound, so that float rounding never drops the incumbent's own options
    cap = upper * (1.0 + 1e-9) if math.isfinite(upper) else math.inf
    n, k = g.n, s.k
    period = bool(inst.problem.objective.terms().get("throughput"))
    lp = LinearModel(f"shard_{inst.name}")
    lat: Terms = {}
    busy: list[Terms] = [{} for _ in range(k)]
    chan: dict[tuple[int, int], Terms] = {}
    params: list[Terms] = [{} for _ in range(k)]
    peak: list[list[tuple[int, float]]] = [[] for _ in range(k)]

    def add(terms: Terms, col: int, value: float) -> None:
        if value:
            terms[col] = terms.get(col, 0.0) + value

    def add_moves(col: int, moves: list[Send]) -> None:
        for m in moves:
            add(lat, col, m.duration_s)
            add(chan.setdefault((m.src, m.dst), {}), col, m.occupied_s)

    def beyond(latency_s: float, loads: list[float]) -> bool:
        """Whether a column's own terms exceed the bound (module docstring)."""
        if period:
            return any(t > cap for t in loads)
        return latency_s > cap

    xs: list[list[tuple[Option, int]]] = []
    for v in range(n):
        row: list[tuple[Option, int]] = []
        for o in options(inst, v):
            unary = _input_moves(inst, v, o) + (_moves(inst, v, o, o, False) if v == n - 1 else [])
            if any(not math.isfinite(m.duration_s) for m in unary) or not math.isfinite(span(inst, v, o)):
                continue
            coll = collective(inst, v, o)
            own = span(inst, v, o) + sum(m.duration_s for m in unary)
            loads = [t + coll.time_s for t in member_compute(inst, v, o)]
            loads += [m.occupied_s for m in unary] + list(coll.occupied_s)
            if beyond(own, loads):
                continue
            col = int(lp.add_vars(f"x_{v}_{'_'.join(map(str, o))}", [""], 0.0, 1.0, integer=True)[0])
            row.append((o, col))
            add(lat, col, span(inst, v, o))
            add_moves(col, unary)
            for d, t in zip(o, member_compute(inst, v, o), strict=True):
                add(busy[d], col, t + coll.time_s)
                add(params[d], col, param_share(inst, v, o))
                peak[d].append((col, peak_term(inst, v, o)))
            for ch, occ in zip(coll.channels, coll.occupied_s, strict=True):
                add(chan.setdefault(ch, {}), col, occ)
        lp.add_row(f"assign_{v}", [(col, 1.0) for _, col in row], 1.0, 1.0)
        xs.append(row)
    for v in range(1, n):
        out_of: dict[int, list[tuple[int, float]]] = {col: [(col, -1.0)] for _, col in xs[v - 1]}
        into: dict[int, list[tuple[int, float]]] = {col: [(col, -1.0)] for _, col in xs[v]}
        for op, cp in xs[v - 1]:
            for o, cv in xs[v]:
                moves = _moves(inst, v - 1, op, o, True)
                if any(not math.isfinite(m.duration_s) for m in moves):
                    continue
                if beyond(sum(m.duration_s for m in moves), [m.occupied_s for m in moves]):
                    continue
                y = int(lp.add_vars(f"y_{v}_{cp}_{cv}", [""], 0.0, 1.0)[0])
                out_of[cp].append((y, 1.0))
                into[cv].append((y, 1.0))
                add_moves(y, moves)
        for col, terms in out_of.items():
            lp.add_row(f"flow_out_{v}_{col}", terms, 0.0, 0.0)
        for col, terms in into.items():
            lp.add_row(f"flow_in_{v}_{col}", terms, 0.0, 0.0)
    if c.memory:
        for d in range(k):
            if not math.isfinite(s.memory[d]) or not (params[d] or peak[d]):
                continue
            m = lp.add_var(f"peak_{d}", 0.0, math.inf, unit="bytes")
            for col, val in peak[d]:
                if val:
                    lp.add_row(f"peak_{d}_{col}", [(m, 1.0), (col, -val)], lb=0.0)
            lp.add_row(f"memory_{d}", [*params[d].items(), (m, 1.0)], ub=float(s.memory[d]))
    metric = lp.add_var("period" if period else "latency", 0.0, math.inf, unit="time")
    if period:
        for r, row_terms in enumerate([*busy, *chan.values()]):
            if row_terms:
                lp.add_row(f"period_{r}", [*row_terms.items(), (metric, -1.0)], ub=0.0)
    else:
        lp.add_row("latency_def", [*lat.items(), (metric, -1.0)], 0.0, 0.0)
    lp.add_objective([(metric, 1.0)])
    return ShardMilp(lp, xs, metric)


def decode(model: ShardMilp, values: object) -> list[Option]:
    """Options by layer index from column values (the option whose ``x`` is largest)."""
    vals = values  # an array indexed by column
    return [max(row, key=lambda oc: float(vals[oc[1]]))[0] for row in model.x]  # type: ignore[index]
