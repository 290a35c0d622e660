"""Network states in ``cpsat-v2`` (docs/instance-format.md §9, §10): one copy of the time model per
state over the shared placement, and the robust objective over the copies.

The placement literals ``x``, the transfer literals ``y`` and memory are built once by
:class:`solvers.cpsat_workload._Builder`; for every state ``s`` (an ordinary version-2 instance,
:func:`formulation.scenarios.state_instances`, with its own figures and, under ``shortest``
routing, its own routes) the latency model of ``none`` or ``schedule`` is built again
(``_Builder._latencies``): under ``schedule`` each state has its own start times, so the
placement is shared and the order of the tasks is chosen per state. With ``A_s`` the state's
aggregate in time units (``sum_r w_r L_rs``, or ``top_s >= w_r L_rs`` for ``max``):

* ``expected``: minimise ``sum_s P_s A_s``;
* ``worst``: minimise ``z`` with ``z >= A_s`` for every state;
* ``cvar:a``: minimise ``Q eta + sum_s P_s u_s`` with ``u_s >= A_s - eta``, ``u_s, eta >= 0``: the
  linearisation of Rockafellar and Uryasev ("Optimization of conditional value-at-risk", Journal
  of Risk 2(3), 2000), multiplied by ``D (1 - a)``.

The probabilities are exact integers: ``P_s = p_s D`` and ``Q = (1 - a) D`` with ``D`` the least
common denominator of the probabilities and of ``1 - a`` written as fractions (at most
:data:`MAX_DENOMINATOR`; other instances are refused), so the model's objective is the robust measure
times ``D`` (``expected``), 1 (``worst``) or ``Q`` (``cvar``) exactly, up to the time rounding of
:mod:`solvers.cpsat_workload`. Every measure is non-decreasing and moves by at most ``c`` when every
``A_s`` moves by at most ``c``, so that module's bound correction (one unit per zero-length task and
request weight) and tolerance keep their meaning.

Request deadlines hold in every state (state ``s`` relaxed by its own zero-length units), or, with
``deadline_probability: q``, only where a boolean ``h_s`` is true, with ``sum_s round(1e12 p_s) h_s >=
ceil(1e12 (q - tol))`` as in :mod:`formulation.cp.robust` (``tol`` the evaluator's). A state's
deadlines are met when every request meets its own (the chance constraint is joint over requests).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from formulation.model import Instance
from formulation.scenarios import PROBABILITY_TOL, ScenarioSet, state_instances, state_key
from solvers.base import RawSolution
from solvers.result import Termination

if TYPE_CHECKING:
    from solvers.cpsat_workload import _Builder

#: Largest common denominator of the probabilities (and of ``1 - ALPHA``) the model takes.
MAX_DENOMINATOR = 10**6
#: Largest ``D x sum of request weights``: keeps every objective coefficient times the horizon
#: (4e9 units) well inside CP-SAT's 64-bit integers.
MAX_SCALED_WEIGHT = 10**9
#: Resolution of the chance constraint's probabilities (units per 1), as in formulation/cp/robust.py.
PROBABILITY_UNITS = 1e12


def probability_scale(sc: ScenarioSet) -> tuple[int, list[int], int] | None:
    """``(D, [P_s], Q)``: the probabilities and ``1 - ALPHA`` as integers over one denominator ``D``.

    ``None`` when some value is not a fraction of denominator at most :data:`MAX_DENOMINATOR`
    (within 1e-12), or the common denominator is larger.
    """
    values = [float(p) for p in sc.probabilities] + [1.0 - sc.alpha]
    fracs = [Fraction(v).limit_denominator(MAX_DENOMINATOR) for v in values]
    if any(abs(float(f) - v) > 1e-12 * max(1.0, abs(v)) for f, v in zip(fracs, values, strict=True)):
        return None
    D = math.lcm(*(f.denominator for f in fracs))
    if D > MAX_DENOMINATOR:
        return None
    ints = [int(f * D) for f in fracs]
    return D, ints[:-1], ints[-1]


def refusals(inst: Instance) -> list[str]:
    """Why ``cpsat-v2`` refuses an instance with network states (empty: it takes it)."""
    sc = inst.problem.scenarios
    assert sc is not None and inst.workload is not None
    scale = probability_scale(sc)
    if scale is None:
        return [f"state probabilities (and 1 - ALPHA) that are not fractions of one denominator <= {MAX_DENOMINATOR}"]
    weights = sum(int(r.weight) for r in inst.workload.requests)
    if scale[0] * max(weights, 1) > MAX_SCALED_WEIGHT:
        return [f"a probability denominator ({scale[0]}) times the request weights ({weights}) "
                f"above {MAX_SCALED_WEIGHT}"]
    return []


class StateModel:
    """The per-state copies and the robust objective, added to a builder's model (module docstring)."""

    def __init__(self, b: _Builder, q: Any, one: Any) -> None:
        from ortools.sat.python import cp_model

        inst = b.inst
        wl, sc = inst.workload, inst.problem.scenarios
        assert wl is not None and sc is not None
        scale = probability_scale(sc)
        assert scale is not None, "checked by refusals()"
        D, P, Q = scale
        m = b.model
        self.b = b
        self.sc = sc
        self.states = state_instances(inst)
        self.timings: list[tuple[list[Any], dict[tuple[int, int, int, int], Any]]] = []
        w = [int(r.weight) for r in wl.requests]
        top = max(sum(w), 1) * b.H
        chance = sc.deadline_probability is not None
        aggs: list[Any] = []
        held: list[Any] = []
        self.zero_sized = 0  # the most zero-length tasks of one state
        for i, st in enumerate(self.states):
            before = b.zero_sized
            L = b._latencies(m, q, one, st)
            self.zero_sized = max(self.zero_sized, b.zero_sized - before)
            if b.scheduled:  # the state's own start times, for re-timing its order
                self.timings.append((list(b.start), dict(b.hop_start)))
            h = m.new_bool_var(f"deadlines_held_{i}") if chance else None
            for r, req in enumerate(wl.requests):
                if req.deadline_s is not None:
                    # this state's zero-length tasks were given one unit each: allow for them (§9.5)
                    limit = math.ceil(req.deadline_s * (1 + 1e-9) / b.unit) + (b.zero_sized - before)
                    ct = m.add(L[r] <= limit)
                    if h is not None:
                        ct.only_enforce_if(h)
            if h is not None:
                held.append(h)
            if wl.aggregate == "sum":
                aggs.append(cp_model.LinearExpr.weighted_sum(L, w))
            else:
                agg = m.new_int_var(0, top, f"top_{i}")
                for wi, Li in zip(w, L, strict=True):
                    m.add(agg >= wi * Li)
                aggs.append(agg)
        if held:
            assert sc.deadline_probability is not None
            units = [round(float(p) * PROBABILITY_UNITS) for p in sc.probabilities]
            need = math.ceil((sc.deadline_probability - PROBABILITY_TOL) * PROBABILITY_UNITS)
            m.add(cp_model.LinearExpr.weighted_sum(held, units) >= need)
        if sc.measure == "expected":
            m.minimize(cp_model.LinearExpr.weighted_sum(aggs, P))
            self.divisor = D
        elif sc.measure == "worst":
            z = m.new_int_var(0, top, "robust_worst")
            for agg in aggs:
                m.add(z >= agg)
            m.minimize(z)
            self.divisor = 1
        else:
            eta = m.new_int_var(0, top, "cvar_eta")
            us = [m.new_int_var(0, top, f"cvar_u_{i}") for i in range(len(aggs))]
            for u, agg in zip(us, aggs, strict=True):
                m.add(u >= agg - eta)
            m.minimize(cp_model.LinearExpr.weighted_sum([eta, *us], [Q, *P]))
            self.divisor = Q

    def solution(self, solver: Any, optimal: bool, P: Any, build: float, solve_t: float) -> RawSolution:
        """The placement, each state's re-timed schedule under ``[STATE]`` keys, and the proven bound."""
        b, inst = self.b, self.b.inst
        assert inst.workload is not None
        schedule: dict[str, float] | None = None
        if b.scheduled:
            schedule = {}
            for st, state, (start, hop_start) in zip(self.states, self.sc.states, self.timings, strict=True):
                b.start, b.hop_start = start, hop_start
                schedule.update({state_key(state.name, k): v for k, v in b.retime(P, solver, st).items()})
        weights = float(sum(r.weight for r in inst.workload.requests))
        # zero-length tasks lengthen each state's aggregate by at most their units times the weights;
        # every measure moves by at most the largest such lengthening
        bound = (solver.best_objective_bound / self.divisor - self.zero_sized * weights) * b.unit
        tasks = inst.n + len(b.y) * inst.k
        return RawSolution(
            Termination.OPTIMAL if optimal else Termination.TIME_LIMIT,
            placement=P,
            schedule=schedule,
            bound=bound,
            # re-timing with the true durations moves each state's completions by at most every task's rounding
            objective_atol=tasks * b.unit * weights,
            build_time_s=build,
            solve_time_s=solve_t,
            extra={"unit_s": b.unit, "branches": solver.num_branches, "states": len(self.states),
                   "probability_denominator": self.divisor if self.sc.measure != "worst" else 1},
        )
