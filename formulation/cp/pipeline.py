"""Pipeline stages in the CP-SAT model (``constraints.pipeline``, :mod:`formulation.evaluator.pipeline`).

Source: Tarnawski et al., "Efficient Algorithms for Device Placement of DNN Graph Operators",
NeurIPS 2020, Section 4 (stages are differences of a chain of down-sets, one per device). With
``K`` the devices that may hold a layer, an integer stage index ``σ[d] in [0, K-1]`` per device and
``p[v] in [0, K-1]`` per layer::

    p[v] = σ[d]                         if x[v, d]
    p[v] >= p[u]                        every edge u -> v
    p[v] >= p[u] + 1                    if x[u, d] and not x[v, d]  (every edge u -> v, device d)

so ``σ(dev(u)) + 1 <= σ(dev(v))`` on every edge between two devices: the quotient graph is
acyclic (and numbering the used devices along a pipeline satisfies the rows). The same rows as the
MILP's (:mod:`formulation.milp.constraints.pipeline`), with enforcement literals for the big-M terms.
"""

from __future__ import annotations

from ortools.sat.python import cp_model

from formulation.cp.placement import PlacementVars
from formulation.model import Instance


def add_pipeline(model: cp_model.CpModel, inst: Instance, pv: PlacementVars) -> None:
    """Add ``σ``, ``p`` and the rows above when ``constraints.pipeline`` is set and two devices can
    hold layers."""
    if not inst.problem.constraints.pipeline:
        return
    g = inst.graph
    devs = sorted({d for (_v, d) in pv.x})
    K = len(devs)
    if K < 2 or not g.edges:
        return
    sigma = {d: model.new_int_var(0, K - 1, f"pipe_stage[{inst.system.device_ids[d]}]") for d in devs}
    p = [model.new_int_var(0, K - 1, f"pipe_pos[{g.layer_ids[v]}]") for v in range(g.n)]
    for (v, d), lit in pv.x.items():
        model.add(p[v] == sigma[d]).only_enforce_if(lit)
    for u, v in g.edges:
        model.add(p[v] >= p[u])
        for d in devs:
            xu = pv.x.get((u, d))
            if xu is None:
                continue
            xv = pv.x.get((v, d))
            lits = [xu] if xv is None else [xu, xv.Not()]
            model.add(p[v] >= p[u] + 1).only_enforce_if(lits)
