"""Exhaustive enumeration over configurations and placements (docs/instance-format.md §11): the
reference of the exact engines for layer variants and exits.

For every configuration (:func:`formulation.choices.configurations`) every placement of its deployed
layers allowed by ``allowed``/``private`` is judged by :func:`formulation.choices.choice_batch` (the
function the evaluator uses), in chunks; layers the configuration does not run are put on their
first allowed device (they cost nothing). The best feasible objective wins.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from formulation.choices import choice_batch, config_dict, configurations, configure
from formulation.model import Instance, IntArray
from solvers.base import RawSolution
from solvers.enumeration import enumeration_result
from solvers.options import SolverOptions

#: Placements judged at once.
CHUNK = 1 << 13


def filler(inst: Instance) -> IntArray:
    """Per layer, the device a layer that does not run is reported on: its first allowed one."""
    mask = inst.placement_mask
    return np.array([int(np.argmax(row)) if row.any() else 0 for row in mask], dtype=np.int64)


def deployed_placements(inst: Instance, deployed: IntArray, start: int, stop: int) -> IntArray:
    """Placements ``start .. stop-1`` (mixed radix over the deployed layers' allowed devices) of the
    full graph, the other layers on :func:`filler`."""
    mask = inst.placement_mask
    choices = [np.flatnonzero(mask[v]) for v in deployed]
    idx = np.arange(start, stop, dtype=np.int64)
    P = np.repeat(filler(inst)[None, :], idx.size, axis=0)
    for pos in range(len(deployed) - 1, -1, -1):
        r = len(choices[pos])
        P[:, deployed[pos]] = choices[pos][idx % r]
        idx //= r
    return P


def solve_choices(inst: Instance, options: SolverOptions) -> RawSolution:
    """The best feasible configuration and placement (or infeasible when none is feasible)."""
    t0 = time.perf_counter()
    deadline = t0 + options.time_limit_s if options.time_limit_s else math.inf
    counts = inst.placement_mask.sum(axis=1)
    best_val, best_P, best_cfg = math.inf, None, None
    total, n_configs, timed_out = 0, 0, False
    for cfg in configurations(inst):
        if time.perf_counter() > deadline:
            timed_out = True
            break
        conf = configure(inst, cfg)
        n_configs += 1
        size = math.prod(int(counts[v]) for v in conf.deployed)
        total += size
        for start in range(0, size, CHUNK):
            if time.perf_counter() > deadline:
                timed_out = True
                break
            P = deployed_placements(inst, conf.deployed, start, min(size, start + CHUNK))
            cb = choice_batch(inst, conf, P)
            key = np.where(cb.feasible(), cb.objective, np.inf)
            i = int(np.argmin(key))
            if key[i] < best_val:
                best_val, best_P, best_cfg = float(key[i]), P[i].copy(), cfg
        if timed_out:
            break
    raw = enumeration_result(
        best_P,
        best_val,
        total=total,
        timed_out=timed_out,
        solve_time_s=time.perf_counter() - t0,
        what=f"over {n_configs} configurations",
        extra={"configurations": n_configs},
    )
    if best_cfg is None:
        return raw
    return dataclasses.replace(raw, choices=config_dict(inst, best_cfg))
