"""Energy per inference, including the idle term tied to the latency (docs/instance-format.md §5.6).

For device ``d``, with ``comp[d] = sum_v t(v, d) x[v, d]`` and the occupied times
``send[d] = sum_{(t, d, b)} occ z`` and ``recv[d] = sum_{(t, a, d)} occ z``::

    E[d] = active(d) comp[d] + sum tx(d, b) occ z + sum rx(a, d) occ z + idle(d) I[d]
    I[d] = max(0, latency - comp[d] - send[d] - recv[d])

This is the active/idle/radio power model of the mobile-offloading literature (e.g. Kang et al.,
Neurosurgeon, ASPLOS 2017, which measures exactly these components on the phone), as fixed by the
spec.

*Sequential* latency is the sum of all compute and transfer times, and each transfer involving
``d`` is counted once in ``send[d] + recv[d]`` while its duration ``latency + occ >= occ`` is in the
latency, so the argument of the max is never negative: ``I[d]`` is substituted by the linear
expression (row ``energy_def``)::

    E[d] = (active(d) - idle(d)) comp[d] + sum (tx - idle(d)) occ z + sum (rx - idle(d)) occ z + idle(d) latency

*Parallel* latency can be shorter than ``comp + send + recv`` (transfers overlap with compute),
so the max is modelled by a column ``I[d] >= 0`` with (row ``idle``)::

    I[d] >= latency - comp[d] - send[d] - recv[d]

which is exact wherever ``E[d]`` is pushed down: in the objective with a non-negative weight, and in
``E[d] <= budget`` rows (a budget is met by some ``I[d]`` iff it is met at ``I[d] = max(0, .)``).
A device with zero idle power needs no ``I[d]``. Negative weights are refused by the solver
(:mod:`solvers.milp`), since they would make the max inexact.

On ``send_once`` devices ``send[d]`` and the tx term count each tensor once, at its largest
per-destination value (:mod:`formulation.milp.sending`); the argument above still holds, since
the sequential latency contains every transfer's duration.

The column ``energy`` (row ``energy_total``) is ``sum_{d in energy_scope} E[d]``.
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext
from formulation.milp.sending import recv_terms, rx_terms, send_terms, tx_terms


def add_device_energy(ctx: MilpContext, devices: list[int]) -> dict[int, int]:
    """Add ``E[d]`` (and ``I[d]`` in parallel mode) for ``devices``; return ``d -> E column``.

    Sending time and radio energy come from :mod:`formulation.milp.sending`, which counts each
    tensor once on ``send_once`` devices.
    """
    inst, m = ctx.inst, ctx.model
    s = inst.system
    devices = sorted(set(devices) - set(ctx.energy_cols))
    if not devices:
        return ctx.energy_cols
    parallel = ctx.parallel()
    L = ctx.metric_cols.get("latency")
    E = m.add_vars("E", [ctx.device_names[d] for d in devices], 0.0, unit="energy")
    defs, idle_rows, idle_devs = [], [], []
    for e_col, d in zip(E.tolist(), devices, strict=True):
        idle = float(s.power_idle[d])
        cols, vals = ctx.compute_terms(d)
        comp = list(zip(cols.tolist(), vals.tolist(), strict=True))
        busy = comp + send_terms(ctx, d) + recv_terms(ctx, d)
        radio = tx_terms(ctx, d) + rx_terms(ctx, d)
        active = float(s.power_active[d])
        terms = [(e_col, 1.0)]
        terms += [(c, -active * v) for c, v in comp] + [(c, -v) for c, v in radio]
        if idle > 0.0 and parallel:
            idle_devs.append(d)
            idle_rows.append((ctx.device_names[d], busy))
        elif idle > 0.0:
            assert L is not None, "sequential energy with idle power needs the latency column"
            terms += [(c, idle * v) for c, v in busy]
            terms.append((L, -idle))
        defs.append((ctx.device_names[d], terms))
    if idle_devs:
        assert L is not None, "parallel energy with idle power needs the latency column"
        I_cols = m.add_vars("I", [ctx.device_names[d] for d in idle_devs], 0.0, unit="time")
        for (_, terms), d in zip(defs, devices, strict=True):
            if d in idle_devs:
                terms.append((int(I_cols[idle_devs.index(d)]), -float(s.power_idle[d])))
        rows = [
            (lab, [(int(ic), 1.0), (L, -1.0), *busy])
            for (lab, busy), ic in zip(idle_rows, I_cols.tolist(), strict=True)
        ]
        m.add_term_rows("idle", rows, 0.0)
    m.add_term_rows("energy_def", defs, 0.0, 0.0)
    for d, c in zip(devices, E.tolist(), strict=True):
        ctx.energy_cols[d] = int(c)
    return ctx.energy_cols


def add_energy_total(ctx: MilpContext) -> int:
    """Add the column ``energy`` = the sum of ``E[d]`` over ``energy_scope``; return it."""
    scope = [int(d) for d in np.flatnonzero(ctx.inst.scope_mask)]
    missing = [d for d in scope if d not in ctx.energy_cols]
    assert not missing, f"E[d] missing for scope devices {missing}; call add_device_energy once first"
    m = ctx.model
    col = m.add_var("energy", 0.0, unit="energy")
    m.add_row("energy_total", [(col, 1.0), *((ctx.energy_cols[d], -1.0) for d in scope)], 0.0, 0.0)
    ctx.metric_cols["energy"] = col
    return col
