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

With ``cuts`` (:func:`add_stage_order`), the valid inequalities of :mod:`formulation.stage_order`
for each class ``d_1, ..., d_m`` of interchangeable devices (sources and validity there)::

    AllDifferent(σ)                          (a pipeline order numbers the K devices 0..K-1)
    σ[d_i] + 1 <= σ[d_{i+1}]                 (stage order; Kaibel and Pfetsch, Math. Prog. 114(1), 2008)
    used[d_{i+1}] => used[d_i]               (used devices first; Méndez-Díaz and Zabala, DAM 154(5), 2006)
    AtMostOne(x[v, d_1..d_j], x[u, d_{j+1}..d_m])   every edge u -> v, 1 <= j < m   (down-set rows;
                                             Christofides, Alvarez-Valdés and Tamarit, EJOR 29(3), 1987)

with ``used[d] = OR_v x[v, d]`` (both directions). Hints are renamed by
:func:`formulation.stage_order.stage_canonical_placement` (same value).
"""

from __future__ import annotations

import itertools

from ortools.sat.python import cp_model

from formulation.cp.placement import PlacementVars
from formulation.model import Instance
from formulation.stage_order import downset_rows, stage_classes


def add_pipeline(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, cuts: bool = False) -> None:
    """Add ``σ``, ``p`` and the rows above when ``constraints.pipeline`` is set and two devices can
    hold layers (``cuts``: also :func:`add_stage_order`)."""
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
    if cuts:
        add_stage_order(model, inst, pv, sigma)


def add_stage_order(
    model: cp_model.CpModel, inst: Instance, pv: PlacementVars, sigma: dict[int, cp_model.IntVar]
) -> list[list[int]]:
    """The stage-order constraints of the module docstring; return the classes."""
    classes = [[d for d in cls if d in sigma] for cls in stage_classes(inst)]
    classes = [cls for cls in classes if len(cls) > 1]
    if not classes:
        return classes
    model.add_all_different(list(sigma.values()))
    for cls in classes:
        used = []
        for d in cls:
            lits = [lit for (_v, dd), lit in pv.x.items() if dd == d]
            u = model.new_bool_var(f"pipe_used[{inst.system.device_ids[d]}]")
            for lit in lits:
                model.add_implication(lit, u)
            model.add_bool_or([*lits, u.Not()])
            used.append(u)
        for (a, b), (ua, ub) in zip(itertools.pairwise(cls), itertools.pairwise(used), strict=True):
            model.add(sigma[b] >= sigma[a] + 1)
            model.add_implication(ub, ua)
        for _u, _v, _j, pairs in downset_rows(inst, cls):
            lits = [pv.x[w, d] for w, d in pairs if (w, d) in pv.x]
            if len(lits) > 1:
                model.add_at_most_one(lits)
    return classes
