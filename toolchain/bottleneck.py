"""The bottleneck of a placement: the resource whose busy time per inference sets the period."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from formulation.evaluator import Evaluation


def bottleneck(ev: Evaluation) -> tuple[str, float]:
    """The device or link direction with the most busy time per inference, and that time.

    The period is the largest busy time over devices (compute, plus communication where it does not
    overlap) and link directions (bytes / bandwidth) (docs/instance-format.md §5), so this resource
    limits the throughput. Links are named ``link SRC->DST``; ties go to devices, then file order.
    """
    busy = {**ev.busy_s, **{f"link {k}": v for k, v in ev.link_busy_s.items()}}
    name = max(busy, key=lambda k: busy[k])
    return name, busy[name]
