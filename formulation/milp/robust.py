"""Network states in the MILP (docs/instance-format.md §10): one copy of the metrics per state, one
placement, and the robust objective over the copies.

For each state ``s`` (an ordinary instance, :func:`formulation.scenarios.state_instances`) the
metric builders of :func:`formulation.milp.build.add_metrics` run again on a *state context*: the
same model, placement columns ``x`` and shipping columns ``z``, with the state's compute times and
the transfer times of its links, and column and row blocks prefixed ``stateI.``. With ``f_s`` the
state's weighted objective ``sum_m w[m] metric_s[m]`` and ``p_s`` its probability:

* ``expected``::

      minimise  sum_s p_s f_s

* ``worst`` (an epigraph column ``z``, rows ``robust_epigraph``)::

      minimise  z      s.t.  z >= f_s   for every state s

* ``cvar:a``, the linearisation of Rockafellar and Uryasev ("Optimization of conditional
  value-at-risk", Journal of Risk 2(3), 2000), with ``eta`` and excess columns ``u_s >= 0``
  (rows ``cvar_excess``)::

      minimise  eta + 1 / (1 - a) sum_s p_s u_s      s.t.  u_s >= f_s - eta

  At the optimum ``u_s = max(0, f_s - eta)`` and ``eta`` is a value-at-risk, so the objective is the
  CVaR of ``f`` (:func:`formulation.scenarios.cvar`); every ``f_s >= 0``, so ``eta >= 0`` loses
  nothing.

Energy budgets are imposed in every state. The deadline is imposed in every state, or, with
``deadline_probability: q``, as a chance constraint over the discrete states with a binary
``y_s`` per state (1: the deadline must hold in ``s``; rows ``deadline_chance`` and
``deadline_level``)::

      latency_s <= deadline + M_s (1 - y_s)        sum_s p_s y_s >= q - tol

with ``M_s = max(0, UB_s - deadline)``, ``UB_s`` the sequential latency of the slowest choices of
state ``s`` (every layer on its slowest allowed device plus every possible transfer), an upper
bound on ``latency_s`` from the instance's own figures; ``tol`` is
:data:`formulation.scenarios.PROBABILITY_TOL`, the evaluator's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from formulation.milp.constraints.budgets import add_deadline, add_energy_budgets
from formulation.milp.context import MilpContext
from formulation.milp.model import INF, LinearModel
from formulation.model import Instance
from formulation.numerics import unit_scales
from formulation.scenarios import PROBABILITY_TOL, state_instances

#: Unit tag of each metric column (for the scaling of the robust columns).
METRIC_UNITS = {"latency": "time", "throughput": "time", "energy": "energy", "cost": "cost"}


class _StateModel:
    """The model seen by the builders of one state: every block name gets the state's prefix, so the
    same builders add a second, third, ... copy of their columns and rows."""

    def __init__(self, model: LinearModel, tag: str) -> None:
        self._model = model
        self._tag = tag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def add_vars(self, block: str, labels: Sequence[str], *args: Any, **kwargs: Any) -> npt.NDArray[np.int64]:
        return self._model.add_vars(f"{self._tag}.{block}", labels, *args, **kwargs)

    def add_var(self, name: str, *args: Any, **kwargs: Any) -> int:
        return int(self.add_vars(name, [""], *args, **kwargs)[0])

    def add_rows(self, block: str, *args: Any, **kwargs: Any) -> npt.NDArray[np.int64]:
        return self._model.add_rows(f"{self._tag}.{block}", *args, **kwargs)

    def add_term_rows(self, block: str, *args: Any, **kwargs: Any) -> npt.NDArray[np.int64]:
        return self._model.add_term_rows(f"{self._tag}.{block}", *args, **kwargs)

    def add_row(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._model.add_row(f"{self._tag}.{name}", *args, **kwargs)


def state_context(ctx: MilpContext, state: Instance, i: int) -> MilpContext:
    """A context over ``ctx``'s model and placement/shipping columns with state ``i``'s figures."""
    tr = ctx.transfers
    s = state.system
    occ = tr.bytes / s.bandwidth[tr.src, tr.dst] if len(tr) else np.zeros(0)
    dur = s.link_latency[tr.src, tr.dst] + occ if len(tr) else np.zeros(0)
    return MilpContext(
        inst=state,
        model=cast(LinearModel, _StateModel(ctx.model, f"state{i}")),
        layer_names=ctx.layer_names,
        device_names=ctx.device_names,
        tensor_names=ctx.tensor_names,
        x=ctx.x,
        allowed=ctx.allowed,
        transfers=dataclasses.replace(tr, occupied_s=occ, duration_s=dur),
        pair_mode=ctx.pair_mode,
        pairs=ctx.pairs,
    )


def latency_upper_bound(sctx: MilpContext) -> float:
    """``UB_s``: every layer on its slowest allowed device plus every possible transfer (seconds)."""
    t = np.where(sctx.allowed, sctx.inst.time, 0.0)
    return float(t.max(axis=1).sum() + sctx.transfers.duration_s.sum())


def _unit(ctx: MilpContext, weights: Mapping[str, float]) -> str:
    """The unit of the weighted objective: that of its largest term at the instance's unit scales."""
    if not weights:
        return "1"
    scales = unit_scales(ctx.inst)
    return METRIC_UNITS[max(weights, key=lambda m: weights[m] * scales[METRIC_UNITS[m]])]


def add_states(
    ctx: MilpContext,
    weights: Mapping[str, float],
    metrics: Iterable[str],
    add_metrics: Any,
) -> list[MilpContext]:
    """Add the metric copies of every state, the constraints per state and the robust objective.

    ``add_metrics(sctx, metrics)`` is :func:`formulation.milp.build.add_metrics`; the returned
    state contexts hold each state's metric columns (``metric_cols``, ``energy_cols``).

    Raises
    ------
    ValueError
        When metrics outside the objective are asked for (Pareto sweeps do not take states).
    """
    inst = ctx.inst
    sc = inst.problem.scenarios
    assert sc is not None
    metrics = set(metrics)
    if metrics - set(weights):
        raise ValueError("extra metric columns are not built for instances with network states")
    m = ctx.model
    deadline = inst.problem.constraints.deadline_s
    chance = sc.deadline_probability is not None and deadline is not None
    states: list[MilpContext] = []
    for i, st in enumerate(state_instances(inst)):
        sctx = state_context(ctx, st, i)
        add_metrics(sctx, metrics)
        add_energy_budgets(sctx)
        if not chance:
            add_deadline(sctx)
        states.append(sctx)
    labels = [f"state{i}" for i in range(len(states))]
    f_terms = [[(sctx.metric_cols[k], float(w)) for k, w in weights.items()] for sctx in states]
    p = sc.probabilities
    unit = _unit(ctx, weights)
    m.objective.clear()
    if sc.measure == "expected":
        m.add_objective((col, float(p[i]) * w) for i, terms in enumerate(f_terms) for col, w in terms)
    elif sc.measure == "worst":
        z = m.add_var("robust_worst", 0.0, unit=unit)
        rows = [(lab, [(z, 1.0), *((c, -w) for c, w in t)]) for lab, t in zip(labels, f_terms, strict=True)]
        m.add_term_rows("robust_epigraph", rows, 0.0)
        m.add_objective([(z, 1.0)])
    else:
        eta = m.add_var("cvar_eta", 0.0, unit=unit)
        u = m.add_vars("cvar_u", labels, 0.0, unit=unit)
        rows = [
            (lab, [(int(uc), 1.0), (eta, 1.0), *((c, -w) for c, w in t)])
            for lab, uc, t in zip(labels, u.tolist(), f_terms, strict=True)
        ]
        m.add_term_rows("cvar_excess", rows, 0.0)
        m.add_objective([(eta, 1.0), *((int(uc), float(p[i]) / (1.0 - sc.alpha)) for i, uc in enumerate(u.tolist()))])
    if chance:
        assert deadline is not None and sc.deadline_probability is not None
        y = m.add_vars("deadline_held", labels, 0.0, 1.0, integer=True)
        rows, ubs = [], []
        for lab, yc, sctx in zip(labels, y.tolist(), states, strict=True):
            big = max(0.0, latency_upper_bound(sctx) - deadline)
            rows.append((lab, [(sctx.metric_cols["latency"], 1.0), (int(yc), big)]))
            ubs.append(deadline + big)
        m.add_term_rows("deadline_chance", rows, -INF, np.array(ubs))
        level = sc.deadline_probability - PROBABILITY_TOL
        m.add_row("deadline_level", [(int(yc), float(p[i])) for i, yc in enumerate(y.tolist())], level, INF)
    return states
