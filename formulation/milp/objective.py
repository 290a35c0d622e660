"""The objective: a weighted sum of metric columns (docs/instance-format.md §5.8)::

    minimise  sum_m w[m] metric[m]     m in {latency, throughput (the period), energy, cost}

Each metric column is defined by its own builder in base units (s, s, J, USD); a plain objective is
one term of weight 1. Weights must be non-negative: every metric is modelled exactly only where it
is pushed down (the period and the parallel makespan are bounded below, the idle energy is a max),
which a negative weight would break. This is the weighted-sum scalarisation of multi-objective
optimisation (Zadeh, "Optimality and non-scalar-valued performance criteria", IEEE TAC 8(1),
1963); :mod:`solvers.milp.pareto` uses the epsilon-constraint method on the same columns instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from formulation.milp.context import MilpContext


class NegativeWeight(ValueError):
    """A weighted objective with a negative weight (not modelled exactly; see the module docstring)."""


def check_weights(weights: Mapping[str, float]) -> None:
    """Raise :class:`NegativeWeight` for a negative weight."""
    bad = {k: w for k, w in weights.items() if w < 0}
    if bad:
        raise NegativeWeight(f"negative objective weights {bad} cannot be modelled exactly; use weights >= 0")


def set_objective(ctx: MilpContext, weights: Mapping[str, float]) -> None:
    """Set the model objective to ``sum w * metric`` (metric columns must exist)."""
    check_weights(weights)
    ctx.model.objective.clear()
    ctx.model.add_objective((ctx.metric_cols[name], float(w)) for name, w in weights.items() if w)
