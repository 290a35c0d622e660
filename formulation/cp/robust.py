"""Network states in the CP-SAT model (docs/instance-format.md §10): one copy of the metric forms per
state over the shared placement literals, and the robust objective over the copies.

For each state ``s`` (an ordinary instance, :func:`formulation.scenarios.state_instances`) the
metric forms of :mod:`formulation.cp.objective` are built again with the state's figures and its own
tick tables; the placement and shipping literals are shared. With ``f_s`` the state's objective
form and ``p_s`` its probability:

* ``expected``: minimise ``sum_s p_s f_s`` (a float form, scaled like any objective);
* ``worst``: minimise ``q z`` with ``f_s <= q z`` for every state;
* ``cvar:a``: minimise ``q eta + 1 / (1 - a) sum_s p_s q u_s`` with ``f_s <= q eta + q u_s``, the
  linearisation of Rockafellar and Uryasev ("Optimization of conditional value-at-risk", Journal
  of Risk 2(3), 2000); ``eta, u_s >= 0`` integers.

``z``, ``eta`` and ``u_s`` count a grid step ``q``, a power of ten about ``1e-9`` of the largest
possible ``f_s``. Every ``f_s <= ...`` row is imposed with :func:`formulation.cp.scaling.add_upper_bound`
(coefficients rounded up), so the grid values never under-estimate the true ones; at the optimum
they over-estimate by at most ``q`` (``worst``) or ``q + (q + c) / (1 - a)`` (``cvar``) plus the
rows' rounding ``c``, which is added to the objective's worst-case error: the reported bound stays
proven.

The deadline holds in every state (:func:`formulation.cp.objective.add_deadline` per state), or,
with ``deadline_probability: q``, only where a boolean ``y_s`` is true (the state's deadline rows
carry ``y_s`` as enforcement literal) and ``sum_s round(1e12 p_s) y_s >= ceil(1e12 (q - tol))``, the
probabilities in units of 1e-12 (``tol`` is :data:`formulation.scenarios.PROBABILITY_TOL`, the
evaluator's). Energy budgets hold in every state.
"""

from __future__ import annotations

import dataclasses
import math

from ortools.sat.python import cp_model

from formulation.cp.objective import (
    add_deadline,
    add_energy_budgets,
    add_objective,
    cost_form,
    energy_form,
    objective_form,
    sequential_latency_form,
    ticks_form,
)
from formulation.cp.placement import PlacementVars
from formulation.cp.scaling import (
    FloatForm,
    IntegerForm,
    add_upper_bound,
    integerize,
    power_of_ten_scale,
    ticks_max_for,
)
from formulation.cp.tables import Masks, TimeTables, build_time_tables
from formulation.cp.timing import add_period
from formulation.model import Instance
from formulation.scenarios import PROBABILITY_TOL, state_instances

#: Resolution of the chance constraint's probabilities (units per 1).
PROBABILITY_UNITS = 1e12
#: Grid steps over the largest possible state objective (the resolution of z, eta and u_s).
GRID_STEPS = 1e9


def _state_objective(
    model: cp_model.CpModel, st: Instance, pv: PlacementVars, tables: TimeTables, chance: cp_model.IntVar | None
) -> FloatForm:
    """State ``st``'s objective form, with its energy budgets and deadline (enforced by ``chance``)."""
    from formulation.cp.build import _energy_devices

    terms = {m: w for m, w in st.problem.objective.terms().items() if w}
    metrics: dict[str, FloatForm] = {}
    seq = sequential_latency_form(st, pv, tables) if st.problem.execution == "sequential" else None
    if seq is not None:
        metrics["latency"] = seq
    if "throughput" in terms:
        cap = tables.cap(None)
        period = add_period(model, st, pv, tables, cap)
        metrics["throughput"] = ticks_form(period.var, tables, tables.err_period, cap)
    energy = {d: energy_form(model, st, pv, tables, d, None, seq) for d in _energy_devices(st)}
    if "energy" in terms:
        total = FloatForm()
        for d in range(st.k):
            if st.scope_mask[d]:
                total = total.plus(energy[d])
        metrics["energy"] = total
    if "cost" in terms:
        metrics["cost"] = cost_form(st, pv)
    add_energy_budgets(model, st, energy)
    if st.problem.constraints.deadline_s is not None and seq is not None:
        first = len(model.proto.constraints)
        add_deadline(model, st, seq)
        if chance is not None:
            rows = model.proto.constraints
            for j in range(first, len(rows)):
                rows[j].enforcement_literal.append(chance.index)
    return objective_form(st, metrics)


def _conservative(model: cp_model.CpModel, form: FloatForm) -> float:
    """Impose ``form <= 0`` and return by how much the rounded row may over-estimate ``form``."""
    add_upper_bound(model, form, 0.0)
    return integerize(form, round_up=True).error + form.under


def build_states(
    model: cp_model.CpModel, inst: Instance, masks: Masks, pv: PlacementVars, ticks_max: float | None
) -> tuple[IntegerForm, TimeTables]:
    """Add every state's forms and constraints and the robust objective; return the objective (its
    ``error`` the worst-case error of the module docstring) and the first state's tick tables."""
    from formulation.cp.build import tick_coefficients

    sc = inst.problem.scenarios
    assert sc is not None
    p = sc.probabilities
    chance = sc.deadline_probability is not None and inst.problem.constraints.deadline_s is not None
    forms: list[FloatForm] = []
    held: list[cp_model.IntVar] = []
    tables_all: list[TimeTables] = []
    for i, st in enumerate(state_instances(inst)):
        tables = build_time_tables(st, masks, ticks_max or ticks_max_for(tick_coefficients(st)), None)
        y = model.new_bool_var(f"deadline_held_{i}") if chance else None
        forms.append(_state_objective(model, st, pv, tables, y))
        tables_all.append(tables)
        if y is not None:
            held.append(y)
    if held:
        assert sc.deadline_probability is not None
        units = [round(float(x) * PROBABILITY_UNITS) for x in p]
        need = math.ceil((sc.deadline_probability - PROBABILITY_TOL) * PROBABILITY_UNITS)
        model.add(cp_model.LinearExpr.weighted_sum(held, units) >= need)
    if sc.measure == "expected":
        total = FloatForm()
        for ps, form in zip(p, forms, strict=True):
            total = total.plus(form, float(ps))
        return add_objective(model, total), tables_all[0]
    top = max((f.magnitude() + abs(f.constant) for f in forms), default=0.0)
    q = 1.0 / power_of_ten_scale(top, GRID_STEPS) if top > 0 else 1.0
    zmax = math.ceil(top / q) + 1
    objective = FloatForm()
    if sc.measure == "worst":
        z = model.new_int_var(0, zmax, "robust_worst")
        zf = FloatForm()
        zf.add_terms([z], [q], ub=zmax)
        rows = max(_conservative(model, f.plus(zf, -1.0)) for f in forms)
        objective = objective.plus(zf)
        extra = q + rows
    else:
        eta = model.new_int_var(0, zmax, "cvar_eta")
        objective.add_terms([eta], [q], ub=zmax)
        rows = 0.0
        for i, (ps, f) in enumerate(zip(p, forms, strict=True)):
            u = model.new_int_var(0, zmax, f"cvar_u_{i}")
            bound = FloatForm()
            bound.add_terms([eta, u], [q, q], ub=zmax)
            rows = max(rows, _conservative(model, f.plus(bound, -1.0)))
            objective.add_terms([u], [float(ps) * q / (1.0 - sc.alpha)], ub=zmax)
        extra = q + (q + rows) / (1.0 - sc.alpha)
    obj = add_objective(model, objective)
    return dataclasses.replace(obj, error=obj.error + extra), tables_all[0]
