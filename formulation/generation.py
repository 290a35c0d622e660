"""Generation requests (docs/instance-format.md §9.10): a prefill of ``P`` prompt tokens, then ``G``
decode steps, each a pass of the request's model, costed in closed form of ``P``, ``G`` and the step.

A layer's costs in a pass over ``T`` new tokens attending to ``S`` positions are affine in ``T``,
``S`` and ``T·S`` (its ``tokens`` figures, :class:`LayerTokens`); a model input's bytes are affine in
``T`` (:class:`InputTokens`). The prefill is ``T = S = P``; decode step ``j = 1..G`` is ``T = 1``,
``S = P + j``, so every figure of step ``j`` is ``a + b·(j - 1)`` with ``a`` its value at step 1 and
``b`` its growth per step. Summed over the ``G`` steps (an arithmetic series, :func:`sum_affine`;
under the roofline of §5.1 the larger of two such series at every step, :func:`sum_max_affine`),
a whole generation is one ordinary request whose layer times, tensor bytes and fixed link delays
are these sums (the latter ``G + 1`` times one pass's): :func:`phase_tables` gives them for the
whole generation (``total``) and for its prefill alone (``prefill``, the time to first token).
Every version-2 cost expression then applies unchanged (:mod:`formulation.evaluator.contention`).

Memory (§9.10): the key/value cache of a layer, ``kv_bytes_per_position`` per position held,
resides with it and is largest at the last step (``P + G`` positions); the working set counted is
the largest of any pass (the prefill's or the last step's: every figure grows with the step).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from formulation.costs import working_set_bytes

if TYPE_CHECKING:
    from formulation.model import FloatArray, Graph, Instance

Phase = Literal["total", "prefill"]

#: The keys of a layer's ``tokens`` mapping, in file order (all FLOP or bytes, default 0).
LAYER_TOKEN_KEYS = (
    "flops",
    "flops_per_token",
    "flops_per_position",
    "flops_per_token_position",
    "output_bytes",
    "output_bytes_per_token",
    "output_bytes_per_position",
    "output_bytes_per_token_position",
    "kv_bytes_per_position",
)
#: The keys of a model input's ``tokens`` mapping (bytes, default 0).
INPUT_TOKEN_KEYS = ("bytes", "bytes_per_token")


@dataclass(frozen=True)
class LayerTokens:
    """A layer's costs in a pass over ``T`` new tokens attending to ``S`` positions (SI units).

    ``flops(T, S) = flops + flops_per_token·T + flops_per_position·S + flops_per_token_position·T·S``;
    ``output_bytes(T, S) = output_bytes + output_bytes_per_token·T + output_bytes_per_position·S +
    output_bytes_per_token_position·T·S``;
    the key/value cache it holds after the pass is ``kv_bytes_per_position·S``.
    """

    flops: float = 0.0
    flops_per_token: float = 0.0
    flops_per_position: float = 0.0
    flops_per_token_position: float = 0.0
    output_bytes: float = 0.0
    output_bytes_per_token: float = 0.0
    output_bytes_per_position: float = 0.0
    output_bytes_per_token_position: float = 0.0
    kv_bytes_per_position: float = 0.0

    def pass_flops(self, T: float, S: float) -> float:
        """FLOP of one pass."""
        per_token = self.flops_per_token + self.flops_per_token_position * S
        return self.flops + per_token * T + self.flops_per_position * S

    def pass_output_bytes(self, T: float, S: float) -> float:
        """Output bytes of one pass."""
        per_token = self.output_bytes_per_token + self.output_bytes_per_token_position * S
        return self.output_bytes + per_token * T + self.output_bytes_per_position * S


@dataclass(frozen=True)
class InputTokens:
    """A model input's bytes in a pass over ``T`` new tokens: ``bytes + bytes_per_token·T``."""

    bytes: float = 0.0
    bytes_per_token: float = 0.0


TokenCosts = LayerTokens | InputTokens


# -- closed forms ------------------------------------------------------------------------------------


def sum_affine(a: FloatArray | float, b: FloatArray | float, n: FloatArray | float) -> FloatArray:
    """``sum_{i=0}^{n-1} (a + b·i) = n·a + b·n(n-1)/2`` (elementwise)."""
    n_ = np.asarray(n, dtype=float)
    return np.asarray(n_ * a + b * n_ * (n_ - 1) / 2)


def sum_max_affine(
    a1: FloatArray, b1: FloatArray, a2: FloatArray, b2: FloatArray, n: FloatArray | float
) -> FloatArray:
    """``sum_{i=0}^{n-1} max(a1 + b1·i, a2 + b2·i)`` in closed form (elementwise, broadcast).

    The difference ``(a1 - a2) + (b1 - b2)·i`` changes sign at most once, at ``c = (a2 - a1) / (b1 -
    b2)``; the sum is the first series over the indices where it is the larger and the second over
    the rest, two arithmetic series. At the crossing both are equal, so rounding ``c`` either way
    gives the same sum.
    """
    a1, b1, a2, b2, n_ = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (a1, b1, a2, b2, n)))
    da, db = a1 - a2, b1 - b2
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(db != 0, -da / np.where(db != 0, db, 1.0), 0.0)
    # first: how many leading indices 0..split-1 take series 1 (db < 0) or series 2 (db > 0)
    split_dec = np.clip(np.floor(c) + 1, 0, n_)  # db < 0: series 1 while i <= c
    split_inc = np.clip(np.ceil(c), 0, n_)  # db > 0: series 2 while i < c
    split = np.where(db < 0, split_dec, np.where(db > 0, split_inc, n_))  # equal slopes: the larger throughout
    head_is_1 = (db < 0) | ((db == 0) & (da >= 0))
    ha, hb = np.where(head_is_1, a1, a2), np.where(head_is_1, b1, b2)
    ta, tb = np.where(head_is_1, a2, a1), np.where(head_is_1, b2, b1)
    head = sum_affine(ha, hb, split)
    # the tail starts at index `split`: its first value is ta + tb·split
    tail = sum_affine(ta + tb * split, tb, n_ - split)
    return np.asarray(head + tail)


# -- the instance's tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseTable:
    """What one phase of every request asks: layer times, tensor bytes, and link-delay multiplicity.

    ``time[v, d]`` (s) and ``tensor_bytes[t]`` (B) are summed over the phase's passes; a transfer's
    fixed delays are paid ``passes[r]`` times (once per pass of request ``r``).
    """

    time: FloatArray
    tensor_bytes: FloatArray
    passes: FloatArray


@dataclass(frozen=True)
class GenerationTables:
    """Closed-form tables of an instance with generation requests (see the module docstring)."""

    total: PhaseTable
    prefill: PhaseTable
    working_set: FloatArray
    """(n,) the largest working set of any pass (§5.9's per-layer term)."""
    kv_last: FloatArray
    """(n,) key/value cache bytes held at the last step (``kv_bytes_per_position·(P + G)``)."""


_CACHE: weakref.WeakKeyDictionary[Instance, GenerationTables | None] = weakref.WeakKeyDictionary()


def has_generation(inst: Instance) -> bool:
    """Some request of the instance's workload is a generation."""
    wl = inst.workload
    return wl is not None and any(r.generate is not None for r in wl.requests)


def tables(inst: Instance) -> GenerationTables | None:
    """The instance's generation tables (built once), or ``None`` without generation requests."""
    if inst not in _CACHE:
        _CACHE[inst] = _build(inst) if has_generation(inst) else None
    return _CACHE[inst]


def phase_tables(inst: Instance, phase: Phase = "total") -> PhaseTable:
    """Layer times, tensor bytes and passes per request of ``phase``; without generation requests
    (or for a request that is not one) one pass of the combined graph: ``inst.time`` and its bytes."""
    gt = tables(inst)
    if gt is None:
        R = len(inst.workload.requests) if inst.workload is not None else 1
        return PhaseTable(inst.time, inst.graph.tensor_bytes, np.ones(R))
    return gt.total if phase == "total" else gt.prefill


def memory_terms(inst: Instance) -> tuple[FloatArray, FloatArray]:
    """Per layer: the working set counted in the peak (§5.9, §9.10) and the resident KV cache bytes."""
    gt = tables(inst)
    if gt is None:
        return working_set_bytes(inst.graph), np.zeros(inst.n)
    return gt.working_set, gt.kv_last


def _pass_graph(inst: Instance, T: FloatArray, S: FloatArray) -> Graph:
    """The combined graph with the figures of one pass (``T``, ``S`` per combined tensor); the key/value
    cache held after the pass is added to the layer's resident bytes, which the roofline's moved bytes
    count (§5.1: a layer reads its cache every pass)."""
    from formulation.model import Graph

    wl = inst.workload
    assert wl is not None
    g = inst.graph
    layers = []
    for v, lay in enumerate(g.layers):
        tk = wl.tokens_of(v)
        if isinstance(tk, LayerTokens):
            tv, sv = float(T[v]), float(S[v])
            lay = replace(lay, flops=tk.pass_flops(tv, sv), output_bytes=tk.pass_output_bytes(tv, sv),
                          param_bytes=lay.param_bytes + tk.kv_bytes_per_position * sv)
        layers.append(lay)
    inputs = []
    for j, mi in enumerate(g.inputs):
        ti = wl.tokens_of(g.n + j)
        if isinstance(ti, InputTokens):
            mi = replace(mi, bytes=ti.bytes + ti.bytes_per_token * float(T[g.n + j]))
        inputs.append(mi)
    pg = Graph(g.name, inputs, layers, [g.layer_ids[o] for o in g.outputs])
    assert pg.layer_ids == g.layer_ids
    return pg


def _build(inst: Instance) -> GenerationTables:
    from formulation.model import Instance as Inst

    wl = inst.workload
    assert wl is not None
    g, s = inst.graph, inst.system
    rq = wl.request_of_tensor
    gen = np.array([r.generate is not None for r in wl.requests])
    Pr = np.array([float(r.prompt or 0) for r in wl.requests])
    Gr = np.array([float(r.generate or 0) for r in wl.requests])
    P_t, G_t, gen_t = Pr[rq], Gr[rq], gen[rq]
    ones = np.ones(g.n + g.m)
    pre = _pass_graph(inst, np.where(gen_t, P_t, 1.0), np.where(gen_t, P_t, 1.0))
    st1 = _pass_graph(inst, ones, P_t + 1)
    st2 = _pass_graph(inst, ones, P_t + 2)
    last = _pass_graph(inst, ones, P_t + G_t)

    # §5.1 per pass: flops / compute, and on a device with memory bandwidth the larger of that and
    # moved / bandwidth, moved = resident bytes (weights and cache) + output + inputs
    def moved(pg: Graph) -> FloatArray:
        return np.asarray(pg.param_bytes + pg.output_bytes + pg.input_bytes_of_layer)

    t_pre = Inst(inst.name, pre, s, inst.problem).time
    comp = s.compute[None, :]
    f1, df = st1.flops[:, None] / comp, (st2.flops - st1.flops)[:, None] / comp
    Gv = G_t[: g.n, None]
    steps = sum_affine(f1, df, Gv)
    bw = np.array([d.memory_bandwidth_bytes_per_s or math.nan for d in s.devices])
    if np.isfinite(bw).any():
        m1, dm = moved(st1)[:, None] / bw[None, :], (moved(st2) - moved(st1))[:, None] / bw[None, :]
        roof = sum_max_affine(f1, df, m1, dm, Gv)
        steps = np.where(np.isfinite(bw)[None, :], roof, steps)
    gen_v = gen_t[: g.n, None]
    time_total = np.where(gen_v, t_pre + steps, inst.time)
    time_prefill = np.where(gen_v, t_pre, inst.time)
    tb_steps = sum_affine(st1.tensor_bytes, st2.tensor_bytes - st1.tensor_bytes, G_t)
    tb_total = np.where(gen_t, pre.tensor_bytes + tb_steps, g.tensor_bytes)
    tb_prefill = np.where(gen_t, pre.tensor_bytes, g.tensor_bytes)
    passes = np.where(gen, Gr + 1, 1.0)
    ws = np.where(gen_t[: g.n], np.maximum(working_set_bytes(pre), working_set_bytes(last)), working_set_bytes(g))
    kv = np.array([
        tk.kv_bytes_per_position * (P_t[v] + G_t[v]) if isinstance(tk := wl.tokens_of(v), LayerTokens) and gen_t[v]
        else 0.0
        for v in range(g.n)
    ])
    return GenerationTables(
        PhaseTable(_ro(time_total), _ro(tb_total), _ro(passes)),
        PhaseTable(_ro(time_prefill), _ro(tb_prefill), _ro(np.ones(len(wl.requests)))),
        _ro(ws),
        _ro(kv),
    )


def _ro(a: FloatArray) -> FloatArray:
    out = np.array(a, dtype=float)
    out.setflags(write=False)
    return out
