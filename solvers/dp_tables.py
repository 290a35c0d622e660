"""Stage and boundary tables of the pipeline DP (:mod:`solvers.dp`).

A *stage* is an interval ``[i, j)`` of layers (in the topological order) on one device, every
device holding at most one stage. A stage never ends inside a colocation class (between its first
and last layer in the topological order), so each class lies in one stage; its memory is its
parameters plus its peak working set (parameters only under ``memory: params``). The DP needs,
for every start ``i``, the value of a stage on each device for every end ``j``
(:meth:`StageTables.stage`), and for every boundary ``i`` between stages the cost of handing over
from device ``p`` to device ``d`` (:meth:`StageTables.boundary`).

Two objectives:

* ``additive`` (sequential latency, energy in sequential mode, cost, weighted sums of these):
  stage value = layer terms of :mod:`solvers.additive` (plus sending each model output to the sink)
  plus each model input sent once to the stage's device when a layer of the stage reads it; the
  boundary value on a chain is the transfer of layer ``i-1``'s output from ``p`` to ``d`` (0 when
  ``d`` is the sink and that layer a model output, already sent): exact, because a device holds one
  stage only.
* ``bottleneck`` (the period): stage value = the largest of the stage's compute time, the
  occupancy of ``source -> d`` by the inputs it reads and of ``d -> sink`` by its outputs;
  boundary value = occupancy of ``p -> d`` by the handed-over tensor. Each quantity is exact; the
  period is their maximum as long as no link direction carries two of them, which
  :func:`solvers.dp.exactness_problem` guarantees for exact answers (or the DP corrects).

On a DAG (heuristic mode) the boundary carries every tensor produced before ``i`` and read at or
after ``i`` as if it went from ``p`` to ``d``: a surrogate, since a tensor may skip stages.
"""

from __future__ import annotations

import math

import numpy as np

from formulation.costs import peak_term_bytes
from formulation.model import FloatArray, Instance, IntArray
from solvers.additive import AdditiveCosts, additive_costs, chain_costs


class StageTables:
    """Per-start stage values and per-boundary hand-over values of an instance.

    Parameters
    ----------
    inst : Instance
        Sequential view of the instance.
    bottleneck : bool
        Period objective (else an additive objective).
    devices : int array
        The devices the DP may use, in the DP's own numbering ``0 .. K-1``.
    """

    def __init__(self, inst: Instance, bottleneck: bool, devices: IntArray) -> None:
        g, s = inst.graph, inst.system
        self.inst, self.bottleneck, self.devices = inst, bottleneck, np.asarray(devices, dtype=np.int64)
        n, dev = g.n, self.devices
        self.n, self.K = n, int(dev.size)
        ac = additive_costs(inst) if not bottleneck else None
        sink = s.sink_index
        with np.errstate(divide="ignore"):
            inv_bw = np.where(s.has_link, 1.0 / s.bandwidth, 0.0)
        # Layers that may not run on a device: allowed/private, or an output that cannot reach the sink.
        forbidden = ~inst.placement_mask[:, dev]
        if sink is not None:
            outs = np.asarray(g.outputs, dtype=np.int64)
            unreachable = ~s.has_link[dev, sink] & (dev != sink)
            forbidden[np.ix_(outs, np.flatnonzero(unreachable))] = True
        self.forbidden = forbidden
        nxt = np.full((n + 1, self.K), n, dtype=np.int64)
        for v in range(n - 1, -1, -1):
            nxt[v] = np.where(forbidden[v], v, nxt[v + 1])
        self.next_bad = nxt
        # Per-layer figures; a stage's totals are running sums from its first layer (see :meth:`stage`).
        self.time = inst.time[:, dev]
        if ac is not None:
            node = ac.node.copy()
            if sink is not None:
                node[outs] += ac.transfer(g.output_bytes[outs])[:, :, sink]
            self.node = np.where(forbidden, 0.0, node[:, dev])
        self.params = g.param_bytes
        c = inst.problem.constraints
        self.peak = peak_term_bytes(inst)
        # A stage may not end inside a colocation class: the class would span two stages.
        self.no_cut = np.zeros(n + 1, dtype=bool)
        for cls in inst.colocate_classes:
            self.no_cut[int(cls.min()) + 1 : int(cls.max()) + 1] = True
        self.memory = s.memory[dev] if c.memory else np.full(self.K, math.inf)
        self.out_bytes = np.where(g.is_output, g.output_bytes, 0.0) if sink is not None else np.zeros(n)
        self.out_rate = inv_bw[dev, sink] if sink is not None else np.zeros(self.K)
        # Model inputs: sorted readers, and the value of sending each to each device.
        src = s.source_index
        self.readers = [np.asarray(sorted(g.consumers[t]), dtype=np.int64) for t in range(n, n + g.m)]
        in_bytes = g.tensor_bytes[n:]
        if bottleneck:
            occ = in_bytes[:, None] * inv_bw[src, dev][None, :]
            self.input_value = np.where(s.has_link[src, dev] | (dev == src), occ, math.inf)
        else:
            assert ac is not None
            self.input_value = ac.transfer(in_bytes)[:, src, :][:, dev]
        self._boundaries(inst, ac, inv_bw)

    def _boundaries(self, inst: Instance, ac: AdditiveCosts | None, inv_bw: FloatArray) -> None:
        g, s, n, dev = inst.graph, inst.system, self.n, self.devices
        if g.is_chain:
            cnt = np.ones(n + 1)
            byt = np.concatenate([[0.0], g.output_bytes])
        else:
            # Tensors produced before i and read at or after i (difference arrays).
            last = np.array([max(c) if c else -1 for c in g.succs], dtype=np.int64)
            has = last >= 0
            d_cnt = np.zeros(n + 2)
            d_byt = np.zeros(n + 2)
            np.add.at(d_cnt, np.flatnonzero(has) + 1, 1.0)
            np.add.at(d_cnt, last[has] + 1, -1.0)
            np.add.at(d_byt, np.flatnonzero(has) + 1, g.output_bytes[has])
            np.add.at(d_byt, last[has] + 1, -g.output_bytes[has])
            cnt, byt = np.cumsum(d_cnt)[: n + 1], np.cumsum(d_byt)[: n + 1]
        self._cross_cnt, self._cross_bytes = cnt, byt
        self._inv_bw = inv_bw[np.ix_(dev, dev)]
        self._has = s.has_link[np.ix_(dev, dev)] | np.eye(self.K, dtype=bool)
        if g.is_chain and ac is not None:
            self._chain_edge: FloatArray | None = chain_costs(ac).edge[:, dev][:, :, dev]
        else:
            self._chain_edge = None
        self._ac = ac

    def boundary(self, i: int) -> FloatArray:
        """``(K, K)`` value of handing over at boundary ``i`` (``1 <= i < n``) from ``p`` to ``d``."""
        if self._chain_edge is not None:
            return self._chain_edge[i - 1]
        cnt, byt = self._cross_cnt[i], self._cross_bytes[i]
        if cnt == 0:
            return np.zeros((self.K, self.K))
        if self.bottleneck:
            out = byt * self._inv_bw
        else:
            ac = self._ac
            assert ac is not None
            dv = self.devices
            out = cnt * ac.link0[np.ix_(dv, dv)] + byt * ac.link_per_byte[np.ix_(dv, dv)]
        return np.where(self._has, out, math.inf)

    def stage(self, i: int) -> FloatArray:
        """``(K, n - i)``: value of the stage ``[i, j)`` on each device for ``j = i+1 .. n`` (inf if infeasible)."""
        n = self.n
        # Running sums from layer i, never differences of prefix sums: in ``(x + y) - x`` a huge term
        # x of an earlier layer (1e19 USD) absorbs a small y of this stage (1.5 USD), and inf - inf is NaN.
        j = np.arange(i + 1, n + 1)
        ok = (j[None, :] <= self.next_bad[i][:, None]) & ~self.no_cut[j][None, :]
        need = np.cumsum(self.params[i:]) + np.maximum.accumulate(self.peak[i:])
        ok &= need[None, :] <= self.memory[:, None] * (1 + 1e-9)
        inputs = np.zeros((n - i, self.K))
        for x, rd in enumerate(self.readers):
            pos = int(np.searchsorted(rd, i))
            if pos < rd.size:
                inputs[rd[pos] - i] += self.input_value[x]
        if self.bottleneck:
            comp = np.cumsum(self.time[i:], axis=0).T
            outs = (np.cumsum(self.out_bytes[i:])[:, None] * self.out_rate[None, :]).T
            # Inputs of one stage share the direction source -> d: their occupancies add up.
            val = np.maximum(np.maximum(comp, outs), np.cumsum(inputs, axis=0).T)
        else:
            val = np.cumsum(self.node[i:], axis=0).T + np.cumsum(inputs, axis=0).T
        return np.where(ok, val, math.inf)


def first_input_occupancy(inst: Instance, device: int) -> float:
    """Occupancy of ``source -> device`` by every model input (all read by the first layer)."""
    g, s = inst.graph, inst.system
    if device == s.source_index:
        return 0.0
    total = float(g.tensor_bytes[g.n :].sum())
    return total / float(s.bandwidth[s.source_index, device]) if total else 0.0
