"""The model of placement plus configuration (docs/instance-format.md §11.5) solved by CP-SAT.

:func:`formulation.choices_model.build_choice_model` writes the rows once; CP-SAT needs integers, so
every float form is multiplied by its own power of ten ``S`` (the largest keeping ``sum |coef| * S``
below :data:`UNITS` plus the right-hand side) and rounded, with every rounding accounted for:

* a row ``form <= rhs`` gets each coefficient rounded *up* (the integer form is never below ``S *
  form``) and ``floor(S * rhs * (1 + 1e-9))``, the evaluator's relative tolerance: the model never
  accepts what the evaluator rejects, and the tolerance absorbs the rounding of every term
  (at most one unit each) for right-hand sides of the sizes the evaluator meets;
* an auxiliary ``aux >= form`` (idle time, peak memory) used with coefficient ``c`` in a form of
  scale ``S`` becomes a fresh integer ``y >= 0`` with ``y >= sum ceil(S c f_i) b_i + ceil(S c f_0)``
  for each of its lower forms: ``y`` is at least ``S c max(0, form)`` and at most one unit per term
  above it at the optimum;
* the objective is rounded to nearest; its worst-case error (half a unit per term, plus the units of
  the auxiliaries) is the result's ``objective_atol`` and is subtracted from the proven bound.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from formulation.choices import config_dict
from formulation.choices_model import ChoiceModel, Lin, build_choice_model
from formulation.cp.params import apply_safe_parameters
from solvers.base import RawSolution
from solvers.options import SolverOptions
from solvers.result import Termination

#: Largest ``sum |integer coefficient|`` of one scaled form (CP-SAT's presolve computes in doubles).
UNITS = 1e13
#: Relative tolerance of the evaluator's checks, granted to every ``form <= rhs`` row.
RTOL = 1e-9


def _scale(form: Lin, m: ChoiceModel, rhs: float = 0.0) -> float:
    """The power of ten that maps ``form`` (auxiliaries expanded) and ``rhs`` to at most :data:`UNITS`."""
    total = abs(form.const) + abs(rhs)
    for c, v in form.terms.items():
        if m.binary[c]:
            total += abs(v)
        else:
            for aux, f in m.lower:
                if aux == c:
                    total += abs(v) * (abs(f.const) + sum(abs(x) for x in f.terms.values()))
    if total <= 0:
        return 1.0
    return float(10.0 ** math.floor(math.log10(UNITS / total)))


class _Emitter:
    """Integer rows of a :class:`ChoiceModel` in a ``CpModel``."""

    def __init__(self, m: ChoiceModel) -> None:
        self.m = m
        self.cp = cp_model.CpModel()
        self.var: dict[int, Any] = {c: self.cp.new_bool_var(m.names[c]) for c in range(len(m.names)) if m.binary[c]}
        self.lowers: dict[int, list[Lin]] = {}
        for aux, f in m.lower:
            self.lowers.setdefault(aux, []).append(f)

    def linear(self, form: Lin, S: float, rounding: str) -> tuple[Any, float, float]:
        """``(expression, constant, error)``: ``S * form`` as integer terms (``up`` or ``nearest``)."""
        rnd = math.ceil if rounding == "up" else round
        terms, err = [], 0.0
        for c, v in form.terms.items():
            if self.m.binary[c]:
                q = int(rnd(v * S))
                err += abs(q - v * S)
                if q:
                    terms.append(q * self.var[c])
            else:
                y, e = self._aux(c, v * S)
                terms.append(y)
                err += e
        const = form.const * S
        return sum(terms), const, err

    def _aux(self, aux: int, coef: float) -> tuple[Any, float]:
        """A fresh integer ``y >= coef * max(0, lower forms of aux)``, rounded up; its error bound."""
        if coef < 0:
            raise ValueError("an auxiliary with a negative coefficient is not a lower envelope")
        forms = self.lowers.get(aux, [])
        hi = sum(max(0.0, coef * f.const) + sum(max(0.0, coef * x) for x in f.terms.values()) for f in forms)
        y = self.cp.new_int_var(0, math.ceil(hi) + len(forms) + 1, f"y{aux}")
        err = 0.0
        for f in forms:
            expr = sum(math.ceil(coef * x) * self.var[c] for c, x in f.terms.items() if self.var.get(c) is not None)
            self.cp.add(y >= expr + math.ceil(coef * f.const))
            err = max(err, float(len(f.terms) + 1))
        return y, err


def solve_choices_cpsat(inst: object, options: SolverOptions) -> RawSolution:
    """Build, solve with CP-SAT, decode."""
    t0 = time.perf_counter()
    m = build_choice_model(inst)  # type: ignore[arg-type]
    if m.infeasible:
        return RawSolution(Termination.INFEASIBLE, message="infeasible before solving: " + "; ".join(m.infeasible))
    em = _Emitter(m)
    cp = em.cp
    for terms, lo, hi in m.logic:
        expr = sum(int(v) * em.var[c] for c, v in terms.items())
        if math.isfinite(lo):
            cp.add(expr >= math.ceil(lo))
        if math.isfinite(hi):
            cp.add(expr <= math.floor(hi))
    for _name, form, rhs in m.upper:
        S = _scale(form, m, rhs)
        expr, const, _err = em.linear(form, S, "up")
        room = (rhs + RTOL * abs(rhs)) * S - const
        cp.add(expr <= math.floor(room))
    S_obj = _scale(m.objective, m)
    obj, obj_const, obj_err = em.linear(m.objective, S_obj, "nearest")
    cp.minimize(obj)
    solver = cp_model.CpSolver()
    apply_safe_parameters(solver)
    if options.time_limit_s is not None:
        solver.parameters.max_time_in_seconds = float(options.time_limit_s)
    if options.seed is not None:
        solver.parameters.random_seed = int(options.seed)
    if options.threads is not None:
        solver.parameters.num_workers = int(options.threads)
    if options.gap is not None:
        solver.parameters.relative_gap_limit = float(options.gap)
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    status = solver.Solve(cp)
    solve = time.perf_counter() - t1
    name = solver.StatusName(status)
    atol = obj_err / S_obj
    extra = {"native_status": name, "scale": S_obj, "scaling_error": atol}
    if name == "INFEASIBLE":
        return RawSolution(Termination.INFEASIBLE, build_time_s=build, solve_time_s=solve, extra=extra)
    if name not in ("OPTIMAL", "FEASIBLE"):
        term = Termination.ERROR if name == "MODEL_INVALID" else Termination.TIME_LIMIT
        return RawSolution(term, build_time_s=build, solve_time_s=solve, extra=extra, message=name)
    values = np.zeros(len(m.names))
    for c, v in em.var.items():
        values[c] = solver.Value(v)
    P, cfg = m.decode(values)
    bound = (solver.BestObjectiveBound() + obj_const) / S_obj - atol
    return RawSolution(
        Termination.OPTIMAL
        if name == "OPTIMAL" and options.gap is None
        else Termination.TIME_LIMIT
        if name != "OPTIMAL"
        else Termination.GAP_LIMIT,
        placement=P,
        solver_objective=(solver.ObjectiveValue() + obj_const) / S_obj,
        bound=bound,
        objective_atol=atol,
        build_time_s=build,
        solve_time_s=solve,
        extra=extra,
        choices=config_dict(m.inst, cfg),
    )
