"""The one report of an exhaustive search (brute force over placements, any model it enumerates)."""

from __future__ import annotations

from typing import Any

from formulation.model import IntArray
from solvers.base import RawSolution
from solvers.result import Termination


def enumeration_result(
    best_P: IntArray | None,
    best_val: float,
    *,
    total: int,
    timed_out: bool,
    solve_time_s: float,
    what: str = "",
    schedule: Any = None,
    extra: dict[str, Any] | None = None,
) -> RawSolution:
    """The search's answer: its best placement, or infeasible when none was feasible.

    Optimal only when every one of the ``total`` placements was looked at; a search stopped by its
    time limit reports ``TIME_LIMIT`` with what it had. ``what`` extends the log line (e.g. "over 3
    states").
    """
    log = f"enumerated {total} placements{' ' + what if what else ''}{' (time limit hit)' if timed_out else ''}\n"
    if best_P is None:
        term = Termination.TIME_LIMIT if timed_out else Termination.INFEASIBLE
        return RawSolution(term, solve_time_s=solve_time_s, log=log)
    return RawSolution(
        Termination.TIME_LIMIT if timed_out else Termination.OPTIMAL,
        placement=best_P,
        schedule=schedule,
        solver_objective=best_val,
        solve_time_s=solve_time_s,
        log=log,
        extra={"placements": total, **(extra or {})},
    )
