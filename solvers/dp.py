"""``dp``: pipeline stages over K heterogeneous devices by dynamic programming.

Source: PipeEdge (Hu et al., "PipeEdge: Pipeline Parallelism for Large-Scale Model Inference on
Heterogeneous Edge Devices", Euromicro DSD 2022) and EdgeShard (Zhang, Cao, Shen and Cui,
"EdgeShard: Efficient LLM Inference via Collaborative Edge Computing", IEEE Internet of Things
Journal 2024): a DP over the layers of a chain and the set of devices already used, each device
holding one contiguous *stage*.

Problem solved: partition the layers, in topological order, into stages ``[i, j)``, each on a
distinct device, minimising

* the period (``throughput``): the largest busy time of a device or a link direction, or
* an additive objective (sequential latency, energy in sequential mode, cost, weighted sums of
  these with weights >= 0; parallel latency where it equals the sequential one),

subject to memory (a stage's parameters plus its peak working set, or its parameters only under
``memory: params``), ``allowed``, ``private``, ``max_devices`` (number of stages) and ``colocate``
(no stage boundary inside a class). The optional device features (``comm_overlap: false``,
``send_once``) are refused: a device's busy time would then include sending its stage's output,
whose time depends on the *next* stage's device, so a stage's value is no longer known when the DP
closes it (the state would have to carry the partial busy time, a continuous quantity). Devices are used in

* **free order** (default): any sequence of distinct devices, by a DP over subsets: states
  ``(used set S, last device, layers done)``, ``O(2^K K n^2)`` time and ``O(2^K K n)`` memory,
  refused above :data:`FREE_ORDER_MAX_WORK` (up to ``K = 9`` at 1,000 layers, 14 at 100); or
* **a given order** (``raw={"order": "file"}`` for the file's device order, or a list of device
  ids): the stages follow that order, skipping devices at will; states ``(last device, layers
  done)``, ``O(K^2 n^2)`` time (times ``max_devices`` when that constraint is active).

Exactness (the answer is reported optimal) needs every feasible placement of the instance to
be such a stage partition, and the DP's value to be the evaluator's value, which holds when (see
:func:`exactness_problem`): the graph is a chain; each device's layers must form an interval
(``contiguous: true``, or one device, or ``max_devices: 1``); the order is free; and, for the
period, no link direction carries two different transfers: model inputs are read by the first
layer only, and with a sink the last layer is the only model output (the remaining case, first
stage on the sink and last stage on the source, both using ``source -> sink``, is solved by a
second DP run whose first stage is on the sink). In every other case (a DAG, a given order, no
``contiguous``) ``dp`` is a heuristic: it must be asked with a raw ``order`` or
``raw={"heuristic": true}`` and reports a feasible placement with a cheap lower bound.

A version-2 instance of one generation request (docs/instance-format.md §9.10) is solved on its
one-pass view (:mod:`solvers.generation_view`): the ``G`` decode steps summed in closed form.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from formulation.model import Instance, IntArray
from formulation.numerics import check_float_range
from solvers.additive import (
    ADDITIVE_METRICS,
    EXACT_OPTIONS,
    check_overflow,
    equivalent_view,
    not_additive_reason,
    static_infeasibility,
)
from solvers.base import RawSolution, Solver
from solvers.bounds import cheap_lower_bound
from solvers.dp_tables import StageTables, first_input_occupancy
from solvers.generation_view import generation_view
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: Largest ``2^K K n^2 / 2`` (element operations of the free-order DP) accepted.
FREE_ORDER_MAX_WORK = 4e9
#: Largest ``2^K K (n + 1)`` (DP table cells) accepted in free order.
FREE_ORDER_MAX_CELLS = 4e7

Combine = Callable[[Any, Any], Any]


def objective_mode(inst: Instance) -> tuple[str | None, str]:
    """``("bottleneck" | "additive", "")`` or ``(None, why not)`` for the sequential view of ``inst``."""
    terms = {m: w for m, w in inst.problem.objective.terms().items() if w}
    if set(terms) == {"throughput"} and terms["throughput"] > 0:
        return "bottleneck", ""
    why = not_additive_reason(inst)
    if why is None:
        return "additive", ""
    if "throughput" in terms:
        why = "the period mixed with other metrics (a maximum plus a sum)"
    return None, why


def intervals_guaranteed(inst: Instance) -> bool:
    """On a chain, every feasible placement gives each device an interval of layers."""
    c = inst.problem.constraints
    return inst.k <= 1 or inst.n <= 1 or c.contiguous or (c.max_devices is not None and c.max_devices <= 1)


def exactness_problem(inst: Instance, bottleneck: bool) -> str | None:
    """Why the free-order DP would not be exact for ``inst`` (``None`` when it is)."""
    g, s = inst.graph, inst.system
    if not g.is_chain:
        return "a DAG (stages along one topological order are only some of its placements)"
    if not intervals_guaranteed(inst):
        return "placements in which a device runs several intervals of the chain (set contiguous: true)"
    if bottleneck:
        if s.sink_index is not None and g.outputs != (g.n - 1,):
            return "model outputs other than the last layer with a sink (their link time may add to another)"
        if any(c != 0 for t in range(g.n, g.n + g.m) for c in g.consumers[t]):
            return "model inputs read by layers other than the first (their link time may add to another)"
    return None


def free_order_size(n: int, k: int) -> tuple[float, float]:
    """(element operations, table cells) of the free-order DP."""
    return 2.0**k * k * n * (n + 1) / 2, 2.0**k * k * (n + 1)


class DynamicProgramming(Solver):
    """Pipeline stages on distinct devices by DP (PipeEdge/EdgeShard): period or additive objective."""

    name = "dp"
    exact = True
    capabilities = Capabilities(
        metrics=frozenset({*ADDITIVE_METRICS, "throughput"}),
        executions=frozenset({"sequential"}),
        constraints=frozenset(
            {"memory", "memory_params", "allowed", "private", "contiguous", "max_devices", "colocate"}
        ),
        note="exact on chains with contiguous stages in free order; else a heuristic on request (raw)",
    )
    supported_options = EXACT_OPTIONS | {"raw"}
    description = "pipeline stages by DP over layers and device subsets (PipeEdge/EdgeShard); chains"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Capabilities on the sequential view, the objective, raw options, and the exactness rules."""
        inst = generation_view(inst, self.name)  # one generation request: its one-pass view (§9.10)
        seq = equivalent_view(inst)
        super().check(seq, options)
        mode, why = objective_mode(seq)
        if mode is None:
            raise UnsupportedProblem(f"solver 'dp' cannot solve instance {inst.name!r}: it does not support {why}")
        check_float_range(seq, self.name)
        check_overflow(seq, self.name)
        unknown = set(options.raw) - {"order", "heuristic"}
        if unknown:
            raise UnsupportedProblem(
                f"solver 'dp' has no raw option(s) {sorted(unknown)}; it takes 'order', 'heuristic'"
            )
        order = self._order(inst, options)
        if order is None:
            work, cells = free_order_size(inst.n, inst.k)
            if work > FREE_ORDER_MAX_WORK or cells > FREE_ORDER_MAX_CELLS:
                raise UnsupportedProblem(
                    f"solver 'dp' refuses {inst.name!r}: the free-order DP over {inst.k} devices and {inst.n} layers "
                    f"needs ~{work:.2g} operations (limit {FREE_ORDER_MAX_WORK:.2g}); pass raw={{'order': 'file'}} "
                    "for stages in the file's device order (a heuristic)"
                )
        problem = exactness_problem(seq, mode == "bottleneck")
        if problem and order is None and not options.raw.get("heuristic"):
            raise UnsupportedProblem(
                f"solver 'dp' cannot solve instance {inst.name!r} exactly: it does not support {problem}; "
                "pass raw={'heuristic': true} (or a raw 'order') for the best stage partition as a heuristic"
            )

    @staticmethod
    def _order(inst: Instance, options: SolverOptions) -> IntArray | None:
        """Device indices of a given order, or ``None`` for free order."""
        order = options.raw.get("order", "free")
        if order == "free":
            return None
        if order == "file":
            return np.arange(inst.k, dtype=np.int64)
        if isinstance(order, str) or not isinstance(order, Sequence):
            raise UnsupportedProblem(
                f"solver 'dp': raw order must be 'free', 'file' or a list of device ids, got {order!r}"
            )
        bad = [d for d in order if d not in inst.system.device_index]
        if bad or len(set(order)) != len(order):
            raise UnsupportedProblem(
                f"solver 'dp': raw order {list(order)!r} must list distinct devices of {list(inst.system.device_ids)}"
            )
        return np.array([inst.system.device_index[d] for d in order], dtype=np.int64)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        inst = generation_view(inst, self.name)
        seq = equivalent_view(inst)
        mode, _ = objective_mode(seq)
        bottleneck = mode == "bottleneck"
        order = self._order(inst, options)
        exact = order is None and exactness_problem(seq, bottleneck) is None
        why = static_infeasibility(seq)
        c = inst.problem.constraints
        if not why and c.max_devices is not None and c.max_devices < 1:
            why = "max_devices < 1 leaves no device to run layers"
        if why:
            return RawSolution(Termination.INFEASIBLE if exact else Termination.COMPLETED, message=why)
        devices = np.arange(inst.k, dtype=np.int64) if order is None else order
        tables = StageTables(seq, bottleneck, devices)
        build = time.perf_counter() - t0
        deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
        comb: Combine = np.maximum if bottleneck else np.add
        max_stages = min(c.max_devices, tables.K) if c.max_devices is not None else tables.K
        try:
            if order is None:
                value, stages = _free_order(tables, comb, max_stages, deadline, seq)
            else:
                value, stages = _given_order(tables, comb, max_stages if c.max_devices is not None else 0, deadline)
        except TimeoutError:
            return RawSolution(Termination.TIME_LIMIT, build_time_s=build, message="the DP did not finish")
        solve = time.perf_counter() - t0 - build
        extra = {
            "order": "free" if order is None else [inst.system.device_ids[d] for d in devices],
            "objective_mode": mode,
        }
        if not math.isfinite(value):
            term = Termination.INFEASIBLE if exact else Termination.COMPLETED
            return RawSolution(
                term,
                build_time_s=build,
                solve_time_s=solve,
                extra=extra,
                message="no stage partition satisfies the constraints",
            )
        P = np.empty(inst.n, dtype=np.int64)
        for i, j, d in stages:
            P[i:j] = devices[d]
        extra["stages"] = [
            (seq.graph.layer_ids[i], seq.graph.layer_ids[j - 1], inst.system.device_ids[devices[d]])
            for i, j, d in stages
        ]
        if bottleneck and order is not None:
            value = max(value, _corner_occupancy(seq, [devices[d] for _, _, d in stages]))
        # The DP's value is the evaluator's value of its placement on chains, under the period's conditions.
        value_exact = seq.graph.is_chain and (not bottleneck or _period_value_exact(seq))
        return RawSolution(
            Termination.OPTIMAL if exact else Termination.COMPLETED,
            placement=P,
            solver_objective=value if value_exact else None,
            bound=-math.inf if exact else cheap_lower_bound(inst),
            build_time_s=build,
            solve_time_s=solve,
            extra=extra,
        )


def _period_value_exact(inst: Instance) -> bool:
    """The period conditions of :func:`exactness_problem` hold (whatever the interval rule)."""
    g, s = inst.graph, inst.system
    if s.sink_index is not None and g.outputs != (g.n - 1,):
        return False
    return all(c == 0 for t in range(g.n, g.n + g.m) for c in g.consumers[t])


def _corner_occupancy(inst: Instance, devs: list[int]) -> float:
    """Occupancy of ``source -> sink`` when the first stage is on the sink and the last on the source."""
    s = inst.system
    src, sink = s.source_index, s.sink_index
    if sink is None or sink == src or devs[0] != sink or devs[-1] != src:
        return 0.0
    return first_input_occupancy(inst, sink) + float(inst.graph.output_bytes[-1] / s.bandwidth[src, sink])


Stages = list[tuple[int, int, int]]


def _free_order(
    tab: StageTables, comb: Combine, max_stages: int, deadline: float, inst: Instance
) -> tuple[float, Stages]:
    """Best stage partition over distinct devices in any order (DP over device subsets)."""
    s = inst.system
    src, sink = s.source_index, s.sink_index
    corner = (
        tab.bottleneck
        and sink is not None
        and sink != src
        and _period_value_exact(inst)
        and first_input_occupancy(inst, sink) > 0
    )
    if not corner:
        return _subset_dp(tab, comb, max_stages, deadline, np.ones(tab.K, dtype=bool), None)
    assert sink is not None
    # source -> sink carries the inputs when the first stage is on the sink, and the final output
    # when the last stage is on the source: run once with the first stage elsewhere, once on the sink.
    away = np.ones(tab.K, dtype=bool)
    away[sink] = False
    both = _corner_occupancy(inst, [sink, src])
    a = _subset_dp(tab, comb, max_stages, deadline, away, None)
    b = _subset_dp(tab, comb, max_stages, deadline, ~away, (src, both))
    return a if a[0] <= b[0] else b


def _subset_dp(
    tab: StageTables,
    comb: Combine,
    max_stages: int,
    deadline: float,
    first_ok: np.ndarray,
    last_fix: tuple[int, float] | None,
) -> tuple[float, Stages]:
    """DP over (used devices S, last device, layers done); ``last_fix=(d, x)`` raises final states on ``d`` to ``x``.

    ``f[S, d, j]`` is the best value of layers ``0 .. j-1`` in stages on the devices of ``S``, the
    last on ``d``; ``start[S, d, j]`` the first layer of that last stage. Seen as ``(a, 2, b)``,
    the subset axis splits into the sets without and with device ``d`` (``S = x 2^(d+1) + y 2^d +
    z``), so every update is an in-place operation on strided views.
    """
    K, n = tab.K, tab.n
    full = 1 << K
    f = np.full((full, K, n + 1), math.inf)
    start = np.zeros((full, K, n + 1), dtype=np.int32)
    pop = np.array([bin(S).count("1") for S in range(full)])
    st = tab.stage(0)
    for first in np.flatnonzero(first_ok).tolist():
        f[1 << first, first, 1:] = st[first]
    for i in range(1, n):
        if time.perf_counter() > deadline:
            raise TimeoutError
        vals = f[:, :, i]
        if not np.isfinite(vals).any():
            continue
        B = tab.boundary(i)
        st = tab.stage(i)
        for d in range(K):
            if not np.isfinite(st[d]).any():
                continue
            gmin = comb(vals, B[None, :, d]).min(axis=1)
            gmin[pop >= max_stages] = math.inf
            shape = (full >> (d + 1), 2, 1 << d)
            without = gmin.reshape(shape)[:, 0, :]
            if not np.isfinite(without).any():
                continue
            new = comb(without[:, :, None], st[d][None, None, :])
            tgt = f[:, d, i + 1 :].reshape(*shape, n - i)[:, 1]
            better = new < tgt
            np.copyto(tgt, new, where=better)
            np.copyto(start[:, d, i + 1 :].reshape(*shape, n - i)[:, 1], i, where=better)
    final = f[:, :, n].copy()
    if last_fix is not None:
        final[:, last_fix[0]] = np.maximum(final[:, last_fix[0]], last_fix[1])
    S, d = (int(x) for x in np.unravel_index(int(np.argmin(final)), final.shape))
    value = float(final[S, d])
    if not math.isfinite(value):
        return value, []
    stages: Stages = []
    j = n
    while j > 0:
        i = int(start[S, d, j])
        stages.append((i, j, d))
        S &= ~(1 << d)
        if i:
            # The previous device is the argmin the forward pass took (same operations, same floats).
            d = int(np.argmin(comb(f[S, :, i], tab.boundary(i)[:, d])))
        j = i
    return value, stages[::-1]


def _given_order(tab: StageTables, comb: Combine, max_stages: int, deadline: float) -> tuple[float, Stages]:
    """DP over (stages so far, last position in the order, layers done); ``max_stages=0``: no count."""
    K, n = tab.K, tab.n
    C = max(1, max_stages)
    f = np.full((C, K, n + 1), math.inf)
    bi = np.zeros((C, K, n + 1), dtype=np.int32)
    bq = np.full((C, K, n + 1), -1, dtype=np.int16)
    f[0, :, 1:] = tab.stage(0)
    shift = 1 if max_stages else 0
    for i in range(1, n):
        if time.perf_counter() > deadline:
            raise TimeoutError
        vals = f[:, :, i]
        if not np.isfinite(vals).any():
            continue
        B = tab.boundary(i)
        st = tab.stage(i)
        src_c = slice(0, C - shift)
        for r in range(1, K):
            if not np.isfinite(st[r]).any():
                continue
            g = comb(vals[src_c, :r], B[None, :r, r])  # (c, q < r)
            argq = np.argmin(g, axis=1)
            gmin = g[np.arange(g.shape[0]), argq]
            new = comb(gmin[:, None], st[r][None, :])
            tc = slice(shift, C)
            cur = f[tc, r, i + 1 :]
            better = new < cur
            f[tc, r, i + 1 :] = np.where(better, new, cur)
            bi[tc, r, i + 1 :] = np.where(better, i, bi[tc, r, i + 1 :])
            bq[tc, r, i + 1 :] = np.where(better, argq[:, None], bq[tc, r, i + 1 :])
    final = f[:, :, n]
    c, r = (int(x) for x in np.unravel_index(int(np.argmin(final)), final.shape))
    value = float(final[c, r])
    if not math.isfinite(value):
        return value, []
    stages: Stages = []
    j = n
    while j > 0:
        i, q = int(bi[c, r, j]), int(bq[c, r, j])
        stages.append((i, j, r))
        c, r, j = c - shift, q, i
    return value, stages[::-1]
