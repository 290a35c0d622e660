"""Placement constraints (docs/instance-format.md §4.4) that do not depend on time: memory, contiguity,
max_devices, and the static part of ``private``.

``allowed`` and the per-layer part of ``private`` are enforced by construction (no variable exists
for a forbidden pair, see :mod:`formulation.cp.placement`); deadline and energy budgets depend on
the latency and live in :mod:`formulation.cp.objective`.
"""

from __future__ import annotations

import itertools

import numpy as np
from ortools.sat.python import cp_model

from formulation.costs import peak_term_bytes
from formulation.cp.placement import Lit, PlacementVars
from formulation.cp.scaling import ByteUnit
from formulation.cp.tables import Masks
from formulation.evaluator.batch import _private_static_violation
from formulation.model import Instance


def add_private_static(model: cp_model.CpModel, inst: Instance) -> None:
    """A private model input on an untrusted source, or a private output bound for an untrusted sink,
    makes every placement infeasible (docs/instance-format.md §5.10, ``private``): add the empty clause."""
    if inst.problem.constraints.private and _private_static_violation(inst):
        model.add_bool_or([False])


def add_max_devices(model: cp_model.CpModel, inst: Instance, pv: PlacementVars) -> None:
    """``u[d] >= x[v, d]`` and ``sum_d u[d] <= max_devices``.

    The facility-opening constraints of the strong uncapacitated facility location formulation
    (Cornuejols, Nemhauser and Wolsey, in *Discrete Location Theory*, Wiley 1990): a device counts
    as used as soon as one layer runs on it.
    """
    limit = inst.problem.constraints.max_devices
    if limit is None or limit >= inst.k:
        return
    used = []
    for d in range(inst.k):
        on_d = [lit for (_v, dd), lit in pv.x.items() if dd == d]
        if not on_d:
            continue
        u = model.new_bool_var(f"used[{inst.system.device_ids[d]}]")
        for lit in on_d:
            model.add_implication(lit, u)
        used.append(u)
    model.add(sum(used) <= limit)


def add_contiguity(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, masks: Masks) -> None:
    """Each device's layer set is convex in the DAG (no path leaves it and comes back).

    With ``below[w, d]`` ("a strict ancestor of w runs on d") and ``above[w, d]`` ("a strict
    descendant of w runs on d"), both bounded below by their recursive definitions
    ``below[w, d] >= x[u, d]``, ``below[w, d] >= below[u, d]`` for every edge ``u -> w`` (and
    symmetrically for ``above``), convexity is ``below[w, d] + above[w, d] - x[w, d] <= 1``.
    This is the contiguity constraint of Tarnawski et al., "Efficient Algorithms for Device
    Placement of DNN Graph Operators", NeurIPS 2020, written with ancestor/descendant indicators;
    it matches :func:`formulation.evaluator.convex_sets`.
    """
    if not inst.problem.constraints.contiguous:
        return
    g = inst.graph
    for d in range(inst.k):
        if masks.place[:, d].sum() < 2:
            continue
        below = [model.new_bool_var(f"below[{v},{d}]") for v in range(g.n)]
        above = [model.new_bool_var(f"above[{v},{d}]") for v in range(g.n)]
        for w in range(g.n):
            for u in g.preds[w]:
                if (u, d) in pv.x:
                    model.add_implication(pv.x[u, d], below[w])
                model.add_implication(below[u], below[w])
                if (w, d) in pv.x:
                    model.add_implication(pv.x[w, d], above[u])
                model.add_implication(above[w], above[u])
        for w in range(g.n):
            inside = pv.x.get((w, d), False)
            model.add_bool_or([below[w].Not(), above[w].Not(), inside])


def add_memory(model: cp_model.CpModel, inst: Instance, pv: PlacementVars) -> ByteUnit | None:
    """``sum_v params[v] x[v, d] + peak[d] <= memory[d]`` with ``peak[d] >= work[v] x[v, d]``.

    ``work[v] = workspace + output + input bytes`` (docs/instance-format.md §5.9; 0 under the
    weights-only model ``memory: params``). The peak is a max over
    the device's layers, modelled by one integer per device bounded below by each present layer;
    the capacity constraint itself is that of the placement IP of Tarnawski et al. (NeurIPS 2020),
    extended by the peak term of the spec. Bytes are
    rounded up and capacities down (:class:`formulation.cp.scaling.ByteUnit`).

    Returns
    -------
    ByteUnit or None
        The coarsest unit used (each device has its own), or None when no memory constraint can bind.
    """
    if not {"memory", "memory_params"} & inst.active_constraints:
        return None
    g, s = inst.graph, inst.system
    work = peak_term_bytes(inst)
    coarsest = ByteUnit(1.0)
    for d in range(inst.k):
        layers = [v for v in range(g.n) if (v, d) in pv.x]
        if not layers or not np.isfinite(s.memory[d]):
            continue
        # one unit per device, from the layers it may run: a huge layer kept off it (or another
        # device's figures) must not round its small demands and capacity to nothing
        unit = ByteUnit.choose(float(g.param_bytes[layers].sum() + work[layers].max(initial=0.0)))
        coarsest = max(coarsest, unit, key=lambda u: u.unit)
        cap = unit.capacity(float(s.memory[d]))
        params = [unit.demand(float(g.param_bytes[v])) for v in layers]
        works = [unit.demand(float(work[v])) for v in layers]
        if sum(params) + max(works) <= cap:
            continue
        peak = model.new_int_var(0, max(works), f"peak[{s.device_ids[d]}]")
        for v, w in zip(layers, works, strict=True):
            if w:
                model.add(peak >= w).only_enforce_if(pv.x[v, d])
        lits = [pv.x[v, d] for v in layers]
        model.add(cp_model.LinearExpr.weighted_sum(lits, params) + peak <= cap)
    return coarsest


def add_symmetry_breaking(model: cp_model.CpModel, inst: Instance, pv: PlacementVars) -> list[list[int]]:
    """Interchangeable devices are used in the order of the first layer they run (representative rule).

    For each class ``d_1, ..., d_m`` (:func:`formulation.symmetry.interchangeable_classes`) and
    ``seen[v, d] = OR_{u <= v} x[u, d]`` (defined in both directions)::

        x[v, d_j] => seen[v - 1, d_{j-1}]          for every layer v >= 1 and j >= 2
        not x[0, d_j]                              for j >= 2

    the vertex-ordering rule of Méndez-Díaz and Zabala (Discrete Applied Mathematics 154(5), 2006)
    as implications. Every placement has exactly one relabelling that meets it
    (:func:`formulation.symmetry.canonical_placement`); hints are canonicalised before use.
    """
    from formulation.symmetry import interchangeable_classes

    classes = interchangeable_classes(inst)
    for cls in classes:
        for prev_dev, d in itertools.pairwise(cls):
            seen = _seen_before(model, inst, pv, prev_dev)
            for v in range(inst.n):
                if (v, d) not in pv.x:
                    continue
                earlier = seen[v - 1] if v else False
                if isinstance(earlier, bool):
                    if not earlier:
                        model.add(pv.x[v, d] == 0)
                else:
                    model.add_implication(pv.x[v, d], earlier)
    return classes


def _seen_before(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, d: int) -> list[Lit]:
    """``seen[v] = OR_{u <= v} x[u, d]`` for ``v < n - 1``, exact in both directions."""
    seen: list[Lit] = []
    for v in range(inst.n - 1):
        lit: Lit = pv.x.get((v, d), False)
        parts = [p for p in ((seen[-1] if seen else False), lit) if not isinstance(p, bool)]
        if len(parts) <= 1:
            seen.append(parts[0] if parts else False)
            continue
        cur = model.new_bool_var(f"seen[{inst.graph.layer_ids[v]},{inst.system.device_ids[d]}]")
        for part in parts:
            model.add_implication(part, cur)
        model.add_bool_or([*parts, cur.Not()])
        seen.append(cur)
    return seen
