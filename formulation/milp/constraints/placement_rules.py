"""Constraints that only forbid (layer, device) pairs: ``allowed``, ``private``, missing links, memory.

Each rule is an inequality ``x[v, d] = 0`` for the pairs it forbids; the placement builder imposes
it by not creating the column at all, which is exact and shrinks the model.

* **allowed** (docs/instance-format.md §4.4): ``x[v, d] = 0`` for every device ``d`` not listed for layer ``v``.
* **private**: a private tensor exists on its producer's device and on every device it is sent
  to, i.e. on the devices of all its consumers, so ``x[v, d] = 0`` for untrusted ``d`` whenever
  ``v`` produces or reads a private tensor (:attr:`formulation.model.Instance.private_mask`). A
  private model input on an untrusted source, or a private output that must reach an untrusted
  sink, makes every placement infeasible.
* **links** (docs/instance-format.md §3.2, no implicit routing): a layer reading a model input may run on
  ``d != source`` only if the link ``source -> d`` exists; a model output may run on ``d != sink``
  only if ``d -> sink`` exists. (Links between two layers' devices are handled by the shipping
  rows of :mod:`formulation.milp.shipping`, since both ends are variables.)
* **memory**, pre-filter: a layer whose own ``param_bytes + workspace + output + input bytes``
  (``param_bytes`` alone under ``memory: params``), or the parameters of its colocation class,
  exceed ``memory(d)`` cannot run on ``d`` (the full constraint is in
  :mod:`formulation.milp.constraints.memory`).
* **colocate**: the layers of a class run on one device, so each may only use the devices every
  member may use (the equalities themselves are in :mod:`formulation.milp.constraints.colocate`).

The pairs come from the cost model (docs/instance-format.md §5.2) directly; the reduction of ``private`` to placement
restrictions is the one documented on :class:`formulation.model.Instance`.
"""

from __future__ import annotations

import numpy as np

from formulation.costs import working_set_bytes
from formulation.evaluator import REL_TOL
from formulation.model import BoolArray, Instance


def peak_bytes(inst: Instance) -> np.ndarray:
    """Per-layer working set ``workspace + output + input bytes`` (docs/instance-format.md §5.9)."""
    return working_set_bytes(inst.graph)


def placement_rules(inst: Instance) -> tuple[BoolArray, list[str]]:
    """Pairs ``(v, d)`` that may hold ``x[v, d] = 1``, and reasons for infeasibility found statically.

    Returns
    -------
    mask : (n, k) bool array
    reasons : list of str
        Non-empty when no placement can be feasible (e.g. a layer with no device left).
    """
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    mask = np.ones((g.n, s.k), dtype=bool)
    reasons: list[str] = []
    if c.allowed:
        mask &= inst.allowed_mask
    if c.private:
        mask &= inst.private_mask
        priv = inst.private_tensors
        if priv[g.n :].any() and not s.trusted[s.source_index]:
            reasons.append(f"a private model input exists on the untrusted source {s.source!r}")
        if s.sink_index is not None and not s.trusted[s.sink_index] and any(priv[o] for o in g.outputs):
            reasons.append(f"a private model output must reach the untrusted sink {s.sink!r}")
    src = s.source_index
    for j in range(g.m):
        for v in g.consumers[g.n + j]:
            mask[v] &= s.has_link[src] | (np.arange(s.k) == src)
    if s.sink_index is not None:
        sink = s.sink_index
        for o in g.outputs:
            mask[o] &= s.has_link[:, sink] | (np.arange(s.k) == sink)
    if c.memory:
        need = g.param_bytes + (peak_bytes(inst) if c.memory_model == "peak" else 0.0)
        for cls in inst.colocate_classes:
            # A colocated class shares one device, which holds at least all of its parameters.
            need[cls] = np.maximum(need[cls], g.param_bytes[cls].sum())
        # The evaluator's own tolerance: this comparison is exact, no solver tolerance is involved.
        mask &= need[:, None] <= s.memory[None, :] * (1 + REL_TOL)
    for cls in inst.colocate_classes:
        mask[cls] &= mask[cls].all(axis=0)
    for v in np.flatnonzero(~mask.any(axis=1)).tolist():
        reasons.append(f"layer {g.layer_ids[v]!r} has no device left after allowed/private/link/memory rules")
    return mask, reasons
