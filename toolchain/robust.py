"""Reports on a placement chosen over network states (docs/networks.md, "Network states").

:func:`state_report` gives, for every state of an instance with ``scenarios``, the chosen
placement's metrics there and its *regret*: how much worse it is than that state's own optimum,
which an exact solver computes on the state alone (the instance with the state's overrides, the
same objective and constraints). ``dnnpart solve`` prints the report and puts it in its JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from formulation.evaluator import evaluate
from formulation.model import Instance
from formulation.scenarios import state_instances


def state_report(
    inst: Instance,
    placement: Mapping[str, str],
    *,
    solver: str = "auto",
    time_limit_s: float | None = None,
    schedule: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The robust measure of ``placement`` and, per state, its metrics, the state's optimum and the regret.

    Parameters
    ----------
    inst : Instance
        An instance with ``scenarios``.
    placement : mapping
        ``{layer: device}``.
    solver : str
        The exact solver of each state's own optimum (default ``auto``).
    time_limit_s : float, optional
        Limit of each of those solves.
    schedule : mapping, optional
        The placement's schedule (a version-2 ``schedule`` workload: one per state, keys ``[STATE]KEY``).

    Returns
    -------
    dict
        ``robust``, ``objective``, ``expected``, ``worst``, ``deadline_met_probability`` and
        ``states``: one entry per state with ``name``, ``probability``, ``objective``, ``latency_s``,
        ``energy_total_j``, ``cost_usd``, ``period_s``, ``deadline_met``, ``optimum`` (the state's
        own proven optimum; None when the state alone is infeasible or not proven within the limit),
        ``optimum_status``, ``optimal_placement``, ``regret`` (``objective - optimum``) and
        ``regret_relative`` (over the optimum; None when it is 0).
    """
    from formulation.errors import InstanceError
    from solvers.options import SolverError, SolverOptions
    from solvers.registry import solve
    from solvers.result import Status

    ev = evaluate(inst, placement, schedule or None)
    report = {k: v for k, v in ev.scenarios.items() if k != "states"}
    states = []
    for entry, st in zip(ev.scenarios["states"], state_instances(inst), strict=True):
        try:
            res = solve(st, solver, SolverOptions(time_limit_s=time_limit_s))
        except (SolverError, InstanceError) as exc:  # e.g. a state out of an engine's numeric range
            states.append({**{k: v for k, v in entry.items() if k != "violations"}, **_unknown(f"refused: {exc}")})
            continue
        best = res.objective if res.status == Status.OPTIMAL else None
        regret = None if best is None else entry["objective"] - best
        rel = None if regret is None or best is None or best <= 0 or not math.isfinite(best) else regret / best
        states.append(
            {
                **{k: v for k, v in entry.items() if k != "violations"},
                "optimum": best,
                "optimum_status": res.status.value,
                "optimum_method": res.method,
                "optimal_placement": dict(res.placement) if best is not None else None,
                "regret": regret,
                "regret_relative": rel,
            }
        )
    report["states"] = states
    return report


def _unknown(status: str) -> dict[str, Any]:
    """The optimum fields of a state whose own optimum could not be computed."""
    return {
        "optimum": None,
        "optimum_status": status,
        "optimum_method": None,
        "optimal_placement": None,
        "regret": None,
        "regret_relative": None,
    }
