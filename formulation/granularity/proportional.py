"""Proportional workload split (CoEdge): how many output rows of a splittable stack each device gets.

Source: Zeng, Chen, Zhou, Yang and Zhang, "CoEdge: Cooperative DNN Inference With Adaptive
Workload Partitioning Over Heterogeneous Edge Devices", IEEE/ACM ToN 29(2), 2021: each device
computes a share of the rows of a layer's output, sized to its speed and link, with the halo
rows it needs from its neighbours.

The model (a small MILP solved with HiGHS through Pyomo). For one stack ``l = 1..L`` (a layer or
a fused chain, as :func:`.spatial.split_spatial` takes) whose input ``X`` lies on ``origin`` and
whose output is gathered on ``gather``; for every candidate device ``d``:

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
evaluator then judges the real split: :func:`proportional_split` builds it with
:func:`.spatial.split_spatial`, places it naturally and evaluates it with an insertion schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from formulation.costs import transfer_seconds
from formulation.evaluator import Evaluation, evaluate
from formulation.granularity.placement import insertion_schedule, natural_placement
from formulation.granularity.provenance import GranularityError, Transformed, as_transformed
from formulation.granularity.spatial import layer_chain, split_spatial, stack_windows


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


def proportional_split(
    x: Any,
    first: str,
    last: str | None = None,
    *,
    devices: Sequence[str] | None = None,
    origin: str | None = None,
    gather: str | None = None,
    base: Mapping[str, str] | None = None,
    integer_rows: bool = True,
    time_limit_s: float = 30.0,
) -> ProportionalPlan:
    """Choose each device's rows of the stack ``first..last`` and build the split.

    Parameters
    ----------
    x : Instance or Transformed
    first, last : str
        The stack (see :func:`.spatial.split_spatial`).
    devices : sequence of str, optional
        Candidate devices (default all that can receive from ``origin`` and send to ``gather``).
    origin, gather : str, optional
        Device holding the stack's input and device collecting its output (default: the system's
        source for both).
    base : mapping, optional
        ``{original layer: device}`` for the layers outside the stack (default: all on ``origin``).
    integer_rows : bool
        Integer rows in the model (else continuous, rounded afterwards).
    time_limit_s : float
        HiGHS time limit.

    Raises
    ------
    GranularityError
        If no candidate device exists or HiGHS returns no solution.
    """
    import pyomo.environ as pyo
    from pyomo.contrib.solver.common.factory import SolverFactory

    t = as_transformed(x)
    inst = t.instance
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

    m = pyo.ConcreteModel()
    m.D = pyo.Set(initialize=cand, ordered=True)
    m.h = pyo.Var(m.D, within=pyo.NonNegativeIntegers if integer_rows else pyo.NonNegativeReals, bounds=(0, H[L]))
    m.y = pyo.Var(m.D, within=pyo.Binary)
    m.T = pyo.Var(within=pyo.NonNegativeReals)

    def rows(d: str, lv: int) -> Any:
        return a[lv] * m.h[d] + b[lv] * m.y[d]

    def path(d: str) -> Any:
        j = s.device_index[d]
        comp = sum(float(inst.time[i, j]) / H[lv + 1] * rows(d, lv + 1) for lv, i in enumerate(idx))
        # a band pays the link latency only when the device takes part (y_d = 1)
        send, back = 0.0, 0.0
        if j != o:
            send = transfer_seconds(s.link_latency[o, j] * m.y[d], row_bytes[0] * rows(d, 0), s.bandwidth[o, j])
        if j != gd:
            back = transfer_seconds(s.link_latency[j, gd] * m.y[d], row_bytes[L] * m.h[d], s.bandwidth[j, gd])
        return send + comp + back

    m.total = pyo.Constraint(expr=sum(m.h[d] for d in m.D) == H[L])
    m.on = pyo.Constraint(m.D, rule=lambda m, d: m.h[d] <= H[L] * m.y[d])
    m.least = pyo.Constraint(m.D, rule=lambda m, d: m.h[d] >= m.y[d])
    m.span = pyo.Constraint(m.D, rule=lambda m, d: path(d) <= m.T)
    if inst.problem.constraints.memory:
        m.mem = pyo.ConstraintList()
        for d in cand:
            cap = float(s.memory[s.device_index[d]])
            if math.isfinite(cap):
                for lv in range(1, L + 1):
                    held = row_bytes[lv - 1] * rows(d, lv - 1) + row_bytes[lv] * rows(d, lv)
                    m.mem.add(params * m.y[d] + held <= cap)
    m.obj = pyo.Objective(expr=m.T)
    res = SolverFactory("highs").solve(
        m, time_limit=time_limit_s, load_solutions=False, raise_exception_on_nonoptimal_result=False
    )
    if res.incumbent_objective is None:
        raise GranularityError(f"the proportional split model has no solution ({res.termination_condition})")
    res.solution_loader.load_vars()
    share = {d: float(pyo.value(m.h[d])) for d in cand}
    whole = _largest_remainder(share, H[L])
    used = {d: r for d, r in whole.items() if r > 0}
    bounds = [0]
    for r in used.values():
        bounds.append(bounds[-1] + r)
    split = split_spatial(t, first, last, row_bounds=bounds, col_bounds=None, name=None)
    placement = natural_placement(split, list(used), base=base, home=origin, assign="round_robin")
    for node, orig in split.provenance.origins.items():
        if orig.kind == "gather":
            placement[node] = gather
    schedule = insertion_schedule(split.instance, placement)
    ev = evaluate(split.instance, placement, schedule)
    bound = res.objective_bound
    return ProportionalPlan(
        used, tuple(bounds), float(res.incumbent_objective), float(bound) if bound is not None else -math.inf,
        str(res.termination_condition.name), split, placement, schedule, ev,
    )
