"""``mincut``: exact two-device partitioning of a DAG by a minimum s-t cut.

Source: DADS (Hu, Bao, Wang and Liu, "Dynamic Adaptive DNN Surgery for Inference Acceleration on
the Edge", IEEE INFOCOM 2019) and QDMP (Zhang et al., "Towards Real-time Cooperative Deep
Inference over the Cloud and Edge End Devices", ACM IMWUT 2020), which go back to Stone's
two-processor assignment by network flow (IEEE TSE 1977).

Cost model assumed: the objective is a sum of a term per layer and a term per transfer
(:mod:`solvers.additive`: sequential latency, energy in sequential mode, cost, and weighted sums
of these with weights >= 0); ``allowed``/``private`` forbid devices; ``max_devices`` is supported
(with two devices it only leaves the two single-device placements). Device 0 of the system is the
source side of the cut, device 1 the sink side.

Network (``x_v = 1`` when layer ``v`` is on device 1, i.e. on the sink side):

* layer term: arc ``s -> v`` of capacity ``c(v, 1) - m_v`` and ``v -> t`` of ``c(v, 0) - m_v``
  with ``m_v = min(c(v, 0), c(v, 1))`` added to a constant (Stone 1977);
* tensor ``u`` sent once per receiving device, whatever its number of consumers: with one
  receiving end ``e`` (a consumer, or the sink terminal for a model output), arcs ``u -> e`` of
  the cost of ``0 -> 1`` and ``e -> u`` of the cost of ``1 -> 0``; with several ends, auxiliary
  vertices ``y`` and ``z`` (DADS): ``u -> y`` and ``y -> e`` for every end, all of the cost ``w``
  of ``0 -> 1``, and ``z -> u`` and ``e -> z``, all of the cost of ``1 -> 0``. With ``u`` on
  device 0 and some end on device 1, the cut either puts ``y`` on the sink side (paying ``u -> y``
  once) or pays ``y -> e`` for each such end: it takes ``w`` once. With ``u`` on device 1, ``y``
  joins it at no cost. DADS makes the fan-out arcs infinite; the gadget's own cost is equivalent
  and keeps the capacities, hence the integer scale, small. Each direction has its own figures;
* model inputs are produced by the terminal of the ``source`` device; a missing link direction
  is an infinite arc.

Every term is ``>= 0`` (:mod:`solvers.additive`), so the network is valid. Capacities are scaled
to integers (rounded down, which keeps the cut value a valid lower bound), and the cut is
certified: the evaluated objective of the placement must be within :data:`CERT_RTOL` of that
bound, else the cut is recomputed on a scale fitted to the cut found, and only a certified cut is
reported optimal. Infeasibility is proven by reachability of ``t`` from ``s`` along infinite arcs.

Complexity: ``O(n + e)`` vertices and arcs (``e`` = edges of the DAG); OR-Tools push-relabel is
``O(V^2 sqrt(E))`` in the worst case and near-linear on these networks (``benchmarks/exact.py``).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from formulation.model import FloatArray, Instance, IntArray
from formulation.numerics import check_float_range
from solvers.additive import (
    ADDITIVE_METRICS,
    EXACT_OPTIONS,
    AdditiveCosts,
    additive_costs,
    check_overflow,
    equivalent_view,
    not_additive_reason,
    static_infeasibility,
)
from solvers.base import RawSolution, Solver
from solvers.flow import BACKENDS, Backend, min_cut, reachable
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: A cut is reported optimal when its evaluated objective is within this relative distance of the
#: proven lower bound (the integer scaling error).
CERT_RTOL = 1e-9

S_NODE, T_NODE = 0, 1


@dataclass(frozen=True)
class Network:
    """The flow network of an instance; arc capacities are floats (``inf`` for infinite)."""

    num_nodes: int
    layers: int
    tails: IntArray
    heads: IntArray
    caps: FloatArray
    constant: float


def _terminal(device: int) -> int:
    return S_NODE if device == 0 else T_NODE


def build_network(ac: AdditiveCosts) -> Network:
    """The DADS network of an additive two-device objective (see the module docstring)."""
    inst = ac.instance
    g, s = inst.graph, inst.system
    n, T = g.n, g.n + g.m
    c0, c1 = ac.node[:, 0], ac.node[:, 1]
    m = np.minimum(c0, c1)
    vnode = np.arange(n, dtype=np.int64) + 2
    tails = [np.full(n, S_NODE), vnode]
    heads = [vnode, np.full(n, T_NODE)]
    with np.errstate(invalid="ignore"):
        caps = [c1 - m, c0 - m]
    # Receiving ends of every tensor: its consumers, and the sink terminal for a model output.
    end_t = [t for v in range(n) for t in g.layer_inputs[v]]
    end_n = [v + 2 for v in range(n) for _ in g.layer_inputs[v]]
    if s.sink_index is not None:
        end_t += list(g.outputs)
        end_n += [_terminal(s.sink_index)] * len(g.outputs)
    et = np.asarray(end_t, dtype=np.int64)
    en = np.asarray(end_n, dtype=np.int64)
    producer = np.concatenate([vnode, np.full(g.m, _terminal(s.source_index), dtype=np.int64)])
    w = ac.transfer(g.tensor_bytes)  # (T, 2, 2)
    w01, w10 = w[:, 0, 1], w[:, 1, 0]
    count = np.bincount(et, minlength=T)
    single = count[et] == 1
    # One end: a direct arc in each direction.
    tails += [producer[et[single]], en[single]]
    heads += [en[single], producer[et[single]]]
    caps += [w01[et[single]], w10[et[single]]]
    # Several ends: auxiliary y (0 -> 1 paid once) and z (1 -> 0 paid once) per tensor.
    multi = np.flatnonzero(count >= 2)
    aux = np.full(T, -1, dtype=np.int64)
    aux[multi] = n + 2 + 2 * np.arange(multi.size)
    me = ~single
    y_of, z_of = aux[et[me]], aux[et[me]] + 1
    tails += [producer[multi], y_of, aux[multi] + 1, en[me]]
    heads += [aux[multi], en[me], producer[multi], z_of]
    # Fan-out arcs of the gadget need only the gadget's own cost, not infinity: with y on the
    # source side every end on the sink side cuts one, so the cut takes min(w, ends * w) = w.
    caps += [w01[multi], w01[et[me]], w10[multi], w10[et[me]]]
    ta, ha, ca = np.concatenate(tails), np.concatenate(heads), np.concatenate(caps)
    # Arcs into s or out of t are never cut; zero arcs carry nothing.
    keep = (ca > 0) & (ta != T_NODE) & (ha != S_NODE) & (ta != ha)
    ta, ha, ca = ta[keep], ha[keep], ca[keep]
    # Merge parallel arcs so that each capacity is one number (inf stays inf).
    num = n + 2 + 2 * multi.size
    key = ta * num + ha
    uniq, inv = np.unique(key, return_inverse=True)
    merged = np.zeros(uniq.size)
    np.add.at(merged, inv, ca)
    return Network(num, n, uniq // num, uniq % num, merged, float(m.sum()))


def scale_for(backend: Backend, capped: FloatArray, cap_at: float) -> float:
    """Multiplier turning capacities (at most ``cap_at``) into integers that no flow overflows.

    SciPy (int32, Dinic keeps no excess): ``cap_at`` maps to ``2**30``, and the max flow, at most
    the cut found, stays below it. OR-Tools (int64, push-relabel may hold all the capacity out of
    ``s`` as excess): the sum of all capacities stays below ``2**61``, and the largest below
    ``2**52`` so that each product is exact in floating point before rounding down.
    """
    if backend == "scipy":
        return 2.0**30 / cap_at if cap_at > 0 else 1.0
    top, total = float(capped.max(initial=0.0)), float(capped.sum())
    if not top > 0:
        return 1.0
    return min(2.0**52 / top, 2.0**61 / total)


def _cut(net: Network, cap_at: float, backend: Backend) -> tuple[float, IntArray, int]:
    """Min cut with capacities ``min(c, cap_at)`` scaled to integers (see :func:`scale_for`).

    ``cap_at`` must exceed the optimal cut, so that capping changes no minimum cut. Returns the
    proven lower bound on the cut term, the device (0/1) of each layer, and the integer cut value.
    Rounding down keeps every cut's scaled value at or below its true value.
    """
    if not net.tails.size:
        return 0.0, np.zeros(net.layers, dtype=np.int64), 0
    capped = np.minimum(net.caps, cap_at)
    top = float(capped.max())
    if not top > 0:  # every arc free: any cut is minimum
        top = 1.0
    # Scaled relative to the largest arc first, so that neither a denormal nor a 1e300 capacity
    # (nor a sum of them) overflows before the integer scale is applied.
    rel = capped / top
    scale = scale_for(backend, rel, cap_at / top)
    ints = np.floor(rel * scale).astype(np.int64)
    value, side = min_cut(net.num_nodes, net.tails, net.heads, ints, S_NODE, T_NODE, backend)
    return value / scale * top, (~side[2 : 2 + net.layers]).astype(np.int64), value


#: Most cuts computed per solve (one, then refits of the integer scale to the incumbent).
MAX_PASSES = 8


class MinCut(Solver):
    """Exact two-device partitioning of a DAG under an additive objective, by a minimum cut (DADS)."""

    name = "mincut"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency", "energy", "cost", "weighted"}),
        metrics=ADDITIVE_METRICS,
        executions=frozenset({"sequential"}),
        constraints=frozenset({"allowed", "private", "max_devices"}),
        max_devices=2,
        note="objective additive in the placement; parallel mode only where it equals the sequential one",
    )
    supported_options = EXACT_OPTIONS | {"raw"}
    description = "exact min-cut on DAGs with two devices, additive objectives (DADS, INFOCOM 2019)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        """Capabilities on the sequential view of ``inst``; an additive objective; ``raw={"backend": ...}``."""
        seq = equivalent_view(inst)
        super().check(seq, options)
        why = not_additive_reason(seq)
        if why:
            raise UnsupportedProblem(f"solver 'mincut' cannot solve instance {inst.name!r}: it does not support {why}")
        unknown = set(options.raw) - {"backend"}
        if unknown:
            raise UnsupportedProblem(f"solver 'mincut' has no raw option(s) {sorted(unknown)}; it takes 'backend'")
        backend = options.raw.get("backend", "ortools")
        if backend not in BACKENDS:
            raise UnsupportedProblem(f"solver 'mincut': raw backend {backend!r} is not one of {', '.join(BACKENDS)}")
        check_float_range(seq, self.name)
        check_overflow(seq, self.name)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        t0 = time.perf_counter()
        seq = equivalent_view(inst)
        why = static_infeasibility(seq)
        if why:
            return RawSolution(Termination.INFEASIBLE, message=why)
        ac = additive_costs(seq)
        n = inst.n
        max_dev = inst.problem.constraints.max_devices
        if inst.k == 1 or (max_dev is not None and max_dev < inst.k):
            return self._single_device(ac, max_dev)
        backend: Backend = options.raw.get("backend", "ortools")
        net = build_network(ac)
        build = time.perf_counter() - t0
        inf = ~np.isfinite(net.caps)
        if reachable(net.num_nodes, net.tails[inf], net.heads[inf], S_NODE)[T_NODE]:
            return RawSolution(
                Termination.INFEASIBLE,
                message="every placement needs a missing link direction or a forbidden device",
                build_time_s=build,
            )
        singles = [np.full(n, d, dtype=np.int64) for d in range(inst.k)]
        single_values = [ac.value(P1) for P1 in singles]
        best_single = min(single_values)
        finite_total = float(net.caps[~inf].sum())
        if not math.isfinite(finite_total):
            # The finite capacities add up past the largest double: the best single-device
            # placement bounds the optimal cut instead (plus the rounding of its sum), or, with
            # none finite, the largest double does (a cut through a capped infinite arc then has
            # an infinite objective and is not certified).
            single_cut = best_single - net.constant + 1e-9 * best_single
            finite_total = single_cut if math.isfinite(single_cut) else sys.float_info.max / (1 + 2.0**-20)
        cap_at = finite_total * (1 + 2.0**-20) if finite_total > 0 else 1.0
        bound_cut, P, _ = _cut(net, cap_at, backend)
        value = ac.value(P)
        passes = 1
        # the best single-device placement is also an upper bound on the optimum
        for P1, v1 in zip(singles, single_values, strict=True):
            if v1 < value:
                P, value = P1, v1
        while not _certified(value, net.constant + bound_cut) and passes < MAX_PASSES:
            # Refit the scale to the best cut known: arcs dearer than it can never be cut. Each
            # pass resolves the cut on a finer scale while the incumbent improves (capacities may
            # span hundreds of orders of magnitude).
            cut_part = value - net.constant
            cap_at = cut_part * (1 + 2.0**-20) if cut_part > 0 else 1.0
            bound2, P2, _ = _cut(net, cap_at, backend)
            value2 = ac.value(P2)
            bound_cut = max(bound_cut, bound2)
            passes += 1
            if not value2 < value:
                break
            P, value = P2, value2
        lower = net.constant + bound_cut
        if not math.isfinite(value):
            # no finite placement found: a proof only when the cut's lower bound is infinite too
            if not lower < math.inf:
                return RawSolution(
                    Termination.INFEASIBLE,
                    message="every placement has an infinite objective",
                    build_time_s=build,
                )
            return RawSolution(
                Termination.ERROR,
                message=f"the minimum cut found has an infinite objective above the finite bound {lower!r}",
                build_time_s=build,
            )
        ok = _certified(value, lower)
        return RawSolution(
            Termination.OPTIMAL if ok else Termination.COMPLETED,
            placement=P,
            solver_objective=value,
            bound=-math.inf if ok else lower,
            build_time_s=build,
            solve_time_s=time.perf_counter() - t0 - build,
            message="" if ok else f"integer scaling left a relative gap of {(value - lower) / abs(value):.3g}",
            extra={
                "backend": backend,
                "flow_nodes": net.num_nodes,
                "flow_arcs": int(net.tails.size),
                "passes": passes,
                "layers": n,
            },
        )

    def _single_device(self, ac: AdditiveCosts, max_dev: int | None) -> RawSolution:
        """One device, or ``max_devices < k``: the single-device placements are all there is."""
        inst = ac.instance
        if max_dev is not None and max_dev < 1 and inst.n:
            return RawSolution(Termination.INFEASIBLE, message="max_devices < 1 leaves no device to run layers")
        best, best_P = math.inf, None
        for d in range(inst.k):
            P = np.full(inst.n, d, dtype=np.int64)
            val = ac.value(P)
            if val < best:
                best, best_P = val, P
        if best_P is None:
            return RawSolution(Termination.INFEASIBLE, message="no single device can run every layer")
        return RawSolution(Termination.OPTIMAL, placement=best_P, solver_objective=best)


def _certified(value: float, lower: float) -> bool:
    return math.isfinite(value) and value - lower <= CERT_RTOL * abs(value)
