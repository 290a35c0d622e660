"""The metrics of docs/instance-format.md §5 as float linear forms, the objective, deadline and energy budgets.

Metrics are :class:`formulation.cp.scaling.FloatForm` objects in base units (s, J, USD) over the
placement/shipping literals and, where a schedule or a max is involved, tick variables (parallel
latency ``L``, period ``P``, parallel idle times). Sequential latency and sequential energy are
linear in the literals with the cost model's own float coefficients, so they carry no tick
rounding at all. The objective and the constraints are scaled to integers by
:func:`formulation.cp.scaling.integerize`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ortools.sat.python import cp_model

from formulation.cp.placement import PlacementVars
from formulation.cp.scaling import FloatForm, IntegerForm, add_upper_bound, integerize
from formulation.cp.sending import recv_items, send_items
from formulation.cp.tables import TimeTables
from formulation.cp.timing import Idle
from formulation.model import Instance


def ticks_form(var: cp_model.IntVar, tables: TimeTables, error_s: float, ub: int) -> FloatForm:
    """A tick variable (at most ``ub``) in seconds: ``var / ticks_per_s`` with the given model error.

    For the makespan and the period, which never under-estimate (ticks are rounded up).
    """
    form = FloatForm(model_error=error_s)
    form.add_terms([var], [1.0 / tables.ticks_per_s], ub=ub)
    return form


def sequential_latency_form(inst: Instance, pv: PlacementVars, tables: TimeTables) -> FloatForm:
    """``L = sum_(v,d) t(v, d) x[v, d] + sum_(t,a,b) (latency[a, b] + bytes[t] / bw[a, b]) send[t, a, b]``.

    Sequential latency as in Neurosurgeon (Kang et al., ASPLOS 2017) and DADS (Hu et al., IEEE
    INFOCOM 2019): every computation and every transfer one after another.
    """
    form = FloatForm()
    for (v, d), lit in pv.x.items():
        form.add_terms([lit], [inst.time[v, d]])
    for (t, a, b), sent in pv.send.items():
        form.add_terms([sent], [tables.dur_s[t, a, b]])
    return form


def busy_form(model: cp_model.CpModel, inst: Instance, pv: PlacementVars, tables: TimeTables, d: int) -> FloatForm:
    """``compute[d] + sending[d] + receiving[d]`` in seconds (occupied channel times; each tensor sent
    once on a ``send_once`` device)."""
    form = FloatForm()
    for (v, dd), lit in pv.x.items():
        if dd == d:
            form.add_terms([lit], [inst.time[v, d]])

    def occ(t: int, a: int, b: int) -> float:
        return float(tables.occ_s[t, a, b])

    for comm, c in send_items(model, inst, pv, d, occ) + recv_items(pv, d, occ):
        form.add_terms([comm], [c])
    return form


def energy_form(
    model: cp_model.CpModel,
    inst: Instance,
    pv: PlacementVars,
    tables: TimeTables,
    d: int,
    idle: Idle | None,
    seq_latency: FloatForm | None,
) -> FloatForm:
    """Energy of device d (J per inference), docs/instance-format.md §5.6.

    ``E[d] = p_active[d] sum_v t(v, d) x[v, d] + sum_(t,b) tx[d, b] occ[t, d, b] send[t, d, b]
    (each tensor once, at its largest value, on a send_once device)
    + sum_(t,a) rx[a, d] occ[t, a, d] send[t, a, d] + p_idle[d] max(0, L - busy[d])``: the
    active/idle and radio split of Neurosurgeon's energy model (Kang et al., ASPLOS 2017) with the
    format's idle time (docs/instance-format.md §5.6). In sequential mode ``L`` is the sum of every
    computation and transfer, which
    is at least ``busy[d]`` (a device's sends and receives are distinct transfers), so the max is
    linear: ``p_idle[d] (L - busy[d])`` (pass ``seq_latency``). In parallel mode the idle time is a
    tick variable (pass ``idle``).
    """
    s = inst.system
    form = FloatForm()
    lits = [(lit, v) for (v, dd), lit in pv.x.items() if dd == d]
    form.add_terms([lit for lit, _ in lits], [s.power_active[d] * inst.time[v, d] for _, v in lits])

    def tx(t: int, a: int, b: int) -> float:
        return float(s.tx_power[a, b] * tables.occ_s[t, a, b])

    def rx(t: int, a: int, b: int) -> float:
        return float(s.rx_power[a, b] * tables.occ_s[t, a, b])

    for comm, c in send_items(model, inst, pv, d, tx) + recv_items(pv, d, rx):
        form.add_terms([comm], [c])
    p_idle = float(s.power_idle[d])
    if p_idle and seq_latency is not None:
        form = form.plus(seq_latency, p_idle).plus(busy_form(model, inst, pv, tables, d), -p_idle)
    elif p_idle and idle is not None:
        form.add_terms([idle.var], [p_idle / tables.ticks_per_s], ub=idle.ub)
        # L is rounded up and busy time down: the idle time is over-estimated by at most both
        # errors and never under-estimated (an energy budget needs no margin).
        form.model_error += p_idle * (tables.err_latency_par + tables.err_busy(d))
    return form


def cost_form(inst: Instance, pv: PlacementVars) -> FloatForm:
    """``sum price[d] t(v, d) x[v, d] + sum price[a, b] bytes[t] send[t, a, b]`` (USD, docs/instance-format.md §5.7)."""
    s, g = inst.system, inst.graph
    form = FloatForm()
    for (v, d), lit in pv.x.items():
        form.add_terms([lit], [s.price[d] * inst.time[v, d]])
    for (t, a, b), sent in pv.send.items():
        form.add_terms([sent], [s.link_price[a, b] * g.tensor_bytes[t]])
    return form


def objective_form(inst: Instance, metrics: Mapping[str, FloatForm]) -> FloatForm:
    """``sum_metric weight * metric`` (docs/instance-format.md §5.8; a plain objective has weight 1)."""
    total = FloatForm()
    for name, w in inst.problem.objective.terms().items():
        if w:
            total = total.plus(metrics[name], w)
    return total


def add_objective(model: cp_model.CpModel, form: FloatForm) -> IntegerForm:
    """Minimise the integer image of ``form``; returns it (its ``error`` is the scaling error)."""
    obj = integerize(form)
    model.minimize(obj.expr)
    return obj


def add_deadline(model: cp_model.CpModel, inst: Instance, latency: FloatForm) -> None:
    """``L <= deadline`` (docs/instance-format.md §4.4), imposed with the rounding margin of
    :func:`formulation.cp.scaling.add_upper_bound`."""
    deadline = inst.problem.constraints.deadline_s
    if deadline is not None:
        add_upper_bound(model, latency, deadline)


def add_energy_budgets(model: cp_model.CpModel, inst: Instance, energy: Mapping[int, FloatForm]) -> None:
    """``E[d] <= budget[d]`` for every budgeted device (docs/instance-format.md §4.4, whether or not d is in
    ``energy_scope``), with the rounding margin and the evaluator's absolute tolerance."""
    s = inst.system
    for dev, budget in inst.problem.constraints.energy_budget_j.items():
        add_upper_bound(model, energy[s.device_index[dev]], budget, atol=1e-15)
