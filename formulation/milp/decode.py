"""From solver values back to the instance: placement, schedule, and the integer point of a placement.

Decoding knows the formulation's index tables (:class:`formulation.milp.context.MilpContext`) and
nothing about solvers: values arrive in SI units.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.schedule import semi_active_starts
from formulation.model import FloatArray, IntArray


class DecodeError(RuntimeError):
    """Solver values that do not describe a placement (a bug or a solver failure)."""


def placement_of(ctx: MilpContext, values: FloatArray) -> IntArray:
    """Device index of every layer: the ``x[v, d]`` closest to 1 (rounding integral values).

    Raises
    ------
    DecodeError
        If some layer has no ``x[v, d] >= 0.5``.
    """
    xv = np.where(ctx.x >= 0, values[np.maximum(ctx.x, 0)], -np.inf)
    P = np.argmax(xv, axis=1).astype(np.int64)
    low = np.flatnonzero(xv[np.arange(P.size), P] < 0.5)
    if low.size:
        names = [ctx.inst.graph.layer_ids[v] for v in low[:5]]
        raise DecodeError(f"the solver's values place no device for layers {names}")
    return P


def schedule_of(
    ctx: MilpContext, P: IntArray, values: FloatArray | None, *, hint: FloatArray | None = None
) -> tuple[dict[str, float], IntArray] | None:
    """Parallel mode: an exactly feasible schedule keeping the solver's device orders, and its order.

    The device orders are the solver's order variables ``o[u, v]`` for layers sharing a device,
    ties broken by its start times (:func:`formulation.milp.schedule.semi_active_starts`). Without
    start-time columns (the latency was not modelled) or values, layers go in the order of
    ``hint`` (start times from elsewhere, e.g. a list schedule), else in index order.
    """
    if not ctx.parallel():
        return None
    g = ctx.inst.graph
    have = ctx.start is not None and values is not None
    if have:
        hint = values[ctx.start]  # type: ignore[index]
    elif hint is None:
        hint = np.arange(g.n, dtype=float)
    before: list[tuple[int, int]] = []
    if have:
        assert values is not None
        for (u, v), col in ctx.order.items():
            if P[u] == P[v]:
                before.append((u, v) if values[col] >= 0.5 else (v, u))
    starts, order = semi_active_starts(ctx.inst, P, hint, before)
    return {v: float(starts[i]) for i, v in enumerate(g.layer_ids)}, order


def integer_point(ctx: MilpContext, P: IntArray, order: IntArray | None) -> dict[int, float]:
    """Values of every integer column for placement ``P`` processed in ``order`` (parallel mode).

    Fixing these and solving the remaining LP gives the formulation's own value of the placement:
    all continuous columns are then determined by ``x`` and the orders, up to slack the LP removes.
    """
    out: dict[int, float] = {}
    for v in range(ctx.inst.n):
        for d in np.flatnonzero(ctx.allowed[v]):
            out[int(ctx.x[v, d])] = 1.0 if P[v] == d else 0.0
    if ctx.order:
        n = ctx.inst.n
        rank = np.empty(n, dtype=np.int64)
        rank[order if order is not None else np.arange(n)] = np.arange(n)
        for (u, v), col in ctx.order.items():
            out[col] = 1.0 if rank[u] < rank[v] else 0.0
    blk = ctx.model.col_blocks.get("u")
    if blk is not None:
        used = set(P.tolist())
        usable = [d for d in range(ctx.inst.k) if ctx.allowed[:, d].any()]
        for i, dev in enumerate(usable):
            out[blk.start + i] = 1.0 if dev in used else 0.0
    return out
