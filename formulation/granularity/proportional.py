"""Proportional workload split (CoEdge): how many output rows of a splittable stack each device gets.

Source: Zeng, Chen, Zhou, Yang and Zhang, "CoEdge: Cooperative DNN Inference With Adaptive
Workload Partitioning Over Heterogeneous Edge Devices", IEEE/ACM ToN 29(2), 2021: each device
computes a share of the rows of a layer's output, sized to its speed and link, with the halo
rows it needs from its neighbours.

The model (a small MILP, :func:`row_model`, solved by the HiGHS engine of the ``highs`` solver;
registered as the solver ``proportional``, :mod:`solvers.proportional`). For one stack
``l = 1..L`` (a layer or a fused chain, as :func:`.spatial.split_spatial` takes) whose input ``X``
lies on ``origin`` and whose output is gathered on ``gather``; for every candidate device ``d``:

* ``h_d`` output rows of the last layer (integer by default), ``y_d = 1`` when ``h_d >= 1``:
  ``sum_d h_d = H_L``, ``y_d <= h_d <= H_L y_d``;
* rows of layer ``l``'s output the device computes, ``r_L = h_d`` and
  ``r_{l-1} = s_l r_l + (dil_l (k_l - 1) + 1 - s_l) y_d`` -- linear in ``h_d`` -- and
  ``compute_d = sum_l t(l, d) r_l / H_l``;
* ``send_d = latency(origin, d) y_d + bytes(X) r_0 / (H_0 bandwidth(origin, d))`` (0 on the
  origin), ``back_d = latency(d, gather) y_d + bytes(L) h_d / (H_L bandwidth(d, gather))``;
* ``T >= send_d + compute_d + back_d`` (transfers run concurrently, as in the format's parallel
  mode); with ``memory`` enforced, ``params + rows of input and output of each layer <= memory(d)``;
* minimise ``T``.

What is approximated, exactly: (1) every band gets the *interior* halo on both sides, whereas
the first and last bands lose the rows that fall into the padding, and a region is never clipped
to the tensor's height -- both only over-estimate rows, so ``T`` is an upper bound on the exact
makespan of the same row split; (2) the memory row ignores anything else placed on the device;
(3) continuous rows (``integer_rows=False``) are rounded by largest remainder afterwards. The
evaluator then judges the real split: :func:`plan_from_shares` builds it with
:func:`.spatial.split_spatial`, places it naturally and evaluates it with an insertion schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from formulation.costs import transfer_seconds
from formulation.evaluator import Evaluation, evaluate
from formulation.granularity.placement import insertion_schedule, natural_placement
from formulation.granularity.provenance import GranularityError, Transformed
from formulation.granularity.spatial import layer_chain, split_spatial, stack_windows
from formulation.milp.model import LinearModel
from formulation.model import Instance

#: The layer attribute that marks a stack for the proportional row split (``attrs: {split:
#: proportional}`` on every layer of the stack); the solver ``proportional`` takes such instances.
SPLIT_ATTR = "split"
PROPORTIONAL = "proportional"


def marked_stack(inst: Instance) -> tuple[str, str] | None:
    """The first and last layer marked ``split: proportional`` (in layer order), or None when none is.

    Whether they form a chain is checked by :func:`.spatial.layer_chain` when the split is built.
    """
    marked = [v.id for v in inst.graph.layers if v.attrs.get(SPLIT_ATTR) == PROPORTIONAL]
    return (marked[0], marked[-1]) if marked else None


@dataclass(frozen=True)
class ProportionalPlan:
    """The row split chosen by the model and its exact evaluation.

    Attributes
    ----------
    rows : dict
        Output rows per device (devices with a non-empty band, in band order).
    row_bounds : tuple of int
        Band boundaries of the last layer's output.
    model_makespan_s, bound_s : float
        The MILP's objective (an upper bound on the exact makespan of this split) and HiGHS's
        lower bound on the model's optimum.
    termination : str
        HiGHS's termination condition.
    transformed, placement, schedule, evaluation
        The split instance, its natural placement, the insertion schedule and the evaluator's
        verdict (``evaluation.latency_parallel_s`` is the exact makespan).
    """

    rows: dict[str, int]
    row_bounds: tuple[int, ...]
    model_makespan_s: float
    bound_s: float
    termination: str
    transformed: Transformed
    placement: dict[str, str]
    schedule: dict[str, float]
    evaluation: Evaluation


def _largest_remainder(values: Mapping[str, float], total: int) -> dict[str, int]:
    floor = {d: math.floor(v + 1e-9) for d, v in values.items()}
    rest = total - sum(floor.values())
    for d in sorted(values, key=lambda d: -(values[d] - floor[d]))[:rest]:
        floor[d] += 1
    return floor


@dataclass(frozen=True)
class RowModel:
    """The CoEdge row-share MILP of one stack as a backend-neutral :class:`LinearModel`.

    Attributes
    ----------
    lp : LinearModel
        Columns ``h(d)`` (rows of the last output), ``y(d)`` (device used) and ``T`` (seconds).
    devices : list of str
        Candidate devices, in the order of ``h`` and ``y``.
    h, y : list of int
        Columns of ``h_d`` and ``y_d``.
    T : int
        Column of the makespan.
    rows_out : int
        ``H_L``, the rows of the stack's output.
    origin, gather : str
        Device holding the input and device collecting the output.
    """

    lp: LinearModel
    devices: list[str]
    h: list[int]
    y: list[int]
    T: int
    rows_out: int
    origin: str
    gather: str


def row_model(
    inst: Instance,
    first: str,
    last: str | None = None,
    *,
    devices: Sequence[str] | None = None,
    origin: str | None = None,
    gather: str | None = None,
    integer_rows: bool = True,
) -> RowModel:
    """Build the row-share model of the module docstring for the stack ``first..last`` of ``inst``.

    Every row is linear in ``(h_d, y_d, T)``: ``r_l = a_l h_d + b_l y_d``, so a band's transfer
    ``latency y_d + bytes r_l / bandwidth`` has coefficient ``transfer_seconds(latency, bytes b_l,
    bandwidth)`` on ``y_d`` and ``transfer_seconds(0, bytes a_l, bandwidth)`` on ``h_d`` (the one
    transfer-time block, evaluated on coefficients).

    Raises
    ------
    GranularityError
        If the stack is not a chain, or no device can receive from ``origin`` and send to ``gather``.
    """
    g, s = inst.graph, inst.system
    chain = layer_chain(inst, first, last)
    wins = stack_windows(inst, chain)
    origin = origin or s.source
    gather = gather or origin
    o, gd = s.device_index[origin], s.device_index[gather]
    cand = [
        d for d in (devices or s.device_ids)
        if (s.device_index[d] == o or s.has_link[o, s.device_index[d]])
        and (s.device_index[d] == gd or s.has_link[s.device_index[d], gd])
    ]
    if not cand:
        raise GranularityError(f"no device can receive from {origin!r} and send to {gather!r}")
    L = len(chain)
    idx = [g.layer_index[v] for v in chain]
    H = [wins[0].in_shape[1]] + [w.out_shape[1] for w in wins]  # H[0] input, H[l] output of layer l
    # r_l = a[l] h + b[l] y, from the last layer back to the input.
    a, b = [0.0] * (L + 1), [0.0] * (L + 1)
    a[L] = 1.0
    for lv in range(L, 0, -1):
        w = wins[lv - 1]
        a[lv - 1] = w.stride[0] * a[lv]
        b[lv - 1] = w.stride[0] * b[lv] + w.dilation[0] * (w.kernel[0] - 1) + 1 - w.stride[0]
    x_id = g.layers[idx[0]].inputs[0]
    row_bytes = [float(g.tensor_bytes[g.tensor_index[x_id]]) / H[0]] + [
        float(g.output_bytes[i]) / H[lv + 1] for lv, i in enumerate(idx)
    ]
    params = float(sum(g.param_bytes[i] for i in idx))

    n = len(cand)
    lp = LinearModel(f"proportional_{first}")
    labels = list(cand)
    hs = [int(c) for c in lp.add_vars("h", labels, 0.0, float(H[L]), integer=integer_rows)]
    ys = [int(c) for c in lp.add_vars("y", labels, 0.0, 1.0, integer=True)]
    T = lp.add_var("T", 0.0, math.inf, unit="time")
    lp.objective[T] = 1.0
    # sum_d h_d = H_L
    lp.add_rows("total", [""], [0] * n, hs, [1.0] * n, float(H[L]), float(H[L]))
    # h_d - H_L y_d <= 0 and h_d - y_d >= 0: a device takes rows exactly when it is used
    lp.add_rows("on", labels, [*range(n), *range(n)], [*hs, *ys], [1.0] * n + [-float(H[L])] * n, ub=0.0)
    lp.add_rows("least", labels, [*range(n), *range(n)], [*hs, *ys], [1.0] * n + [-1.0] * n, lb=0.0)
    # send_d + compute_d + back_d - T <= 0, each term as (coefficient of h_d, coefficient of y_d)
    span_h, span_y = [], []
    for d in cand:
        j = s.device_index[d]
        ch = sum(float(inst.time[i, j]) / H[lv + 1] * a[lv + 1] for lv, i in enumerate(idx))
        cy = sum(float(inst.time[i, j]) / H[lv + 1] * b[lv + 1] for lv, i in enumerate(idx))
        # a band pays the link latency only when the device takes part (y_d = 1)
        if j != o:
            ch += transfer_seconds(0.0, row_bytes[0] * a[0], s.bandwidth[o, j])
            cy += transfer_seconds(s.link_latency[o, j], row_bytes[0] * b[0], s.bandwidth[o, j])
        if j != gd:
            ch += transfer_seconds(0.0, row_bytes[L], s.bandwidth[j, gd])
            cy += transfer_seconds(s.link_latency[j, gd], 0.0, s.bandwidth[j, gd])
        span_h.append(float(ch))
        span_y.append(float(cy))
    lp.add_rows("span", labels, [*range(n), *range(n), *range(n)], [*hs, *ys, *([T] * n)],
                [*span_h, *span_y, *([-1.0] * n)], ub=0.0)
    if inst.problem.constraints.memory:
        # params y_d + bytes of the input and output rows of layer l <= memory(d), for every l
        rows_r: list[int] = []
        rows_c: list[int] = []
        rows_v: list[float] = []
        caps: list[float] = []
        mem_labels: list[str] = []
        for d in cand:
            cap = float(s.memory[s.device_index[d]])
            if not math.isfinite(cap):
                continue
            for lv in range(1, L + 1):
                k = len(caps)
                held_h = row_bytes[lv - 1] * a[lv - 1] + row_bytes[lv] * a[lv]
                held_y = params + row_bytes[lv - 1] * b[lv - 1] + row_bytes[lv] * b[lv]
                rows_r += [k, k]
                rows_c += [hs[cand.index(d)], ys[cand.index(d)]]
                rows_v += [held_h, held_y]
                caps.append(cap)
                mem_labels.append(f"{d}.{lv}")
        if caps:
            lp.add_rows("mem", mem_labels, rows_r, rows_c, rows_v, ub=np.asarray(caps))
    return RowModel(lp, cand, hs, ys, T, int(H[L]), origin, gather)


def plan_from_shares(
    t: Transformed,
    first: str,
    last: str | None,
    model: RowModel,
    share: Mapping[str, float],
    makespan: float,
    bound: float,
    termination: str,
    *,
    base: Mapping[str, str] | None = None,
) -> ProportionalPlan:
    """Round the model's row shares, build the split stack, place it naturally and evaluate it.

    ``share`` maps each candidate device to its (possibly fractional) rows of the last layer, as
    the solved :func:`row_model` gives them; ``makespan``, ``bound`` and ``termination`` are the
    engine's report on that model. The solve itself is :func:`solvers.proportional.proportional_split`
    (formulation never calls an engine).
    """
    whole = _largest_remainder(dict(share), model.rows_out)
    used = {d: r for d, r in whole.items() if r > 0}
    bounds = [0]
    for r in used.values():
        bounds.append(bounds[-1] + r)
    split = split_spatial(t, first, last, row_bounds=bounds, col_bounds=None, name=None)
    placement = natural_placement(split, list(used), base=base, home=model.origin, assign="round_robin")
    for node, orig in split.provenance.origins.items():
        if orig.kind == "gather":
            placement[node] = model.gather
    schedule = insertion_schedule(split.instance, placement)
    ev = evaluate(split.instance, placement, schedule)
    return ProportionalPlan(
        used, tuple(bounds), float(makespan), float(bound), termination, split, placement, schedule, ev,
    )
