"""The evaluator: the single implementation of the cost model (docs/instance-format.md §5).

Every solver's placement is re-evaluated here; reported objectives are the evaluator's values.
"""

from formulation.evaluator.batch import REL_TOL, BatchMetrics, batch_metrics, convex_sets, transfer_tables
from formulation.evaluator.evaluate import Evaluation, Transfer, Violation, evaluate
from formulation.evaluator.pipeline import pipeline_order, pipeline_sets
from formulation.evaluator.schedule import (
    ScheduleSearchLimit,
    check_schedule,
    list_schedule_many,
    makespan_lower_bound_many,
    makespan_of,
    optimal_makespan,
)

__all__ = [
    "REL_TOL",
    "BatchMetrics",
    "Evaluation",
    "ScheduleSearchLimit",
    "Transfer",
    "Violation",
    "batch_metrics",
    "check_schedule",
    "convex_sets",
    "evaluate",
    "list_schedule_many",
    "makespan_lower_bound_many",
    "makespan_of",
    "optimal_makespan",
    "pipeline_order",
    "pipeline_sets",
    "transfer_tables",
]
