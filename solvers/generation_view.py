"""One generation request (docs/instance-format.md §9.10) as a version-1 instance of one pass, for the
chain solvers (``shortest-path``, ``dp``): no unrolling of the ``G`` decode steps.

A generation is costed as one request whose layer times are ``t_pre(v, d) + sum_j t_j(v, d)``, whose
tensors' bytes are ``bytes_pre + sum_j bytes_j`` and whose transfers pay every hop's fixed delay
``G + 1`` times, all in closed form of ``G`` (:func:`formulation.generation.phase_tables`). With a
single request on direct channels that is, term by term, the version-1 cost model (§5) of the
instance :func:`generation_view` builds:

* the layer times as a measured latency table (§3.4), ``t(v, d) = t_total(v, d)``;
* each layer's ``output_bytes`` and each model input's ``bytes`` the generation's summed bytes, so a
  transfer's occupancy ``bytes / bandwidth``, its radio energy and its price are the sums';
* every link's latency (and overhead) times ``G + 1``;
* the key/value cache at the last step added to the layer's ``param_bytes`` (resident, §9.10);
* the request's source, sink and deadline as the system's and the problem's; its weight ``w``
  multiplies the latency term of the objective (``latency = w L`` for one request).

Under ``none`` and ``share`` one request has the same latency (it holds every resource whole).
Without a rate, the throughput metric of §9.3 (the busiest device's compute or channel's occupancy
per generation) is the version-1 period of these figures (§5.5). What is not the same, and refused
(:func:`view_reasons`): several requests, routed (relayed) transfers, rates (the utilisation is then
``rate x busy`` and bounded by 1), a release time with energy counted (the idle term runs from 0 in
version 2), and memory under the ``peak`` model when it can bind (a generation's working set is its
largest pass's, not the one of its summed bytes). ``tests/test_generation_chain.py`` checks that the
view and the instance have the same value and feasibility for every placement of random instances.
The placement's layer order is the combined graph's, so a placement of the view is one of the
instance; the evaluator still judges it on the instance itself.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from formulation.generation import has_generation, memory_terms, phase_tables
from formulation.model import Constraints, Graph, Instance, Objective, Problem, System
from solvers.options import UnsupportedProblem


def view_reasons(inst: Instance) -> list[str]:
    """Why a generation instance has no exact one-pass view (empty: it has one)."""
    wl = inst.workload
    assert wl is not None
    why = []
    if len(wl.requests) != 1:
        why.append(f"{len(wl.requests)} requests (one generation request only)")
    if wl.routing != "direct":
        why.append(f"routing {wl.routing!r} (direct channels only)")
    r = wl.requests[0]
    if r.rate is not None:
        why.append("a rate (a utilisation constraint)")
    p, c = inst.problem, inst.problem.constraints
    terms = p.objective.terms()
    if r.release_s > 0 and (terms.get("energy") or c.energy_budget_j):
        why.append("a release time with energy counted (the idle energy runs from time 0)")
    if _peak_may_bind(inst):
        why.append("memory under the peak model that may bind (the working set is the largest pass's)")
    return why


def _peak_may_bind(inst: Instance) -> bool:
    """Memory under ``peak`` is active and some device may not hold every layer at once (weights,
    caches and the largest working set: §9.10's ``M(d)`` with every layer on ``d``)."""
    c = inst.problem.constraints
    if not c.memory or c.memory_model != "peak":
        return False
    ws, kv = memory_terms(inst)
    whole = float((inst.graph.param_bytes + kv).sum() + ws.max(initial=0.0))
    return bool((whole > inst.system.memory).any())


def generation_view(inst: Instance, solver: str) -> Instance:
    """The one-pass version-1 view of a single-request generation instance (module docstring);
    ``inst`` itself when it has no generation request.

    Raises
    ------
    UnsupportedProblem
        When the view would not be exact (:func:`view_reasons`).
    """
    if not has_generation(inst):
        return inst
    why = view_reasons(inst)
    if why:
        raise UnsupportedProblem(f"solver {solver!r} cannot solve instance {inst.name!r}: " + "; ".join(why))
    wl = inst.workload
    assert wl is not None
    r = wl.requests[0]
    g, s, p = inst.graph, inst.system, inst.problem
    tab = phase_tables(inst)
    _ws, kv = memory_terms(inst)
    layers = [
        replace(lay, output_bytes=float(tab.tensor_bytes[v]), param_bytes=float(lay.param_bytes + kv[v]))
        for v, lay in enumerate(g.layers)
    ]
    inputs = [replace(mi, bytes=float(tab.tensor_bytes[g.n + j])) for j, mi in enumerate(g.inputs)]
    graph = Graph(g.name, inputs, layers, [g.layer_ids[o] for o in g.outputs])
    assert graph.layer_ids == g.layer_ids  # the same topological order: placements carry over
    npass = float(tab.passes[0])
    links = [replace(lk, latency_s=lk.latency_s * npass, overhead_s=lk.overhead_s * npass) for lk in s.links.values()]
    system = System(s.devices, links, s.device_ids[r.source], None if r.sink is None else s.device_ids[r.sink])
    table = MappingProxyType({
        dev: MappingProxyType({lid: float(tab.time[v, d]) for v, lid in enumerate(g.layer_ids)})
        for d, dev in enumerate(s.device_ids)
    })
    terms = p.objective.terms()
    objective = p.objective
    if terms.get("latency") and r.weight != 1.0:
        objective = Objective("weighted", MappingProxyType({**terms, "latency": terms["latency"] * r.weight}))
    constraints: Constraints = replace(p.constraints, deadline_s=r.deadline_s)
    if constraints.memory and constraints.memory_model == "peak":  # it cannot bind (view_reasons)
        constraints = replace(constraints, memory=False)
    problem = Problem(objective, "sequential", p.energy_scope, constraints)
    return Instance(inst.name, graph, system, problem, inst.description, table, inst.source_path)
