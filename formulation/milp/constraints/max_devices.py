"""At most ``K`` devices execute layers (docs/instance-format.md §4.4, ``max_devices``).

With a usage indicator ``u[d] in {0, 1}`` per device (the facility-opening variables of the
capacitated facility location MILP, Balinski, Naval Research Logistics Quarterly 12(2), 1965)::

    u[d] >= x[v, d]          every allowed pair (v, d)     (use)
    sum_d u[d] <= K                                        (max_devices)

The disaggregated ``use`` rows are the strong form of the linking constraint (Balinski 1965).
"""

from __future__ import annotations

import numpy as np

from formulation.milp.context import MilpContext


def add_max_devices(ctx: MilpContext) -> None:
    """Add ``u`` and the rows above when ``K`` is smaller than the number of usable devices."""
    K = ctx.inst.problem.constraints.max_devices
    usable = [d for d in range(ctx.inst.k) if ctx.allowed[:, d].any()]
    if K is None or len(usable) <= K:
        return
    m = ctx.model
    u = m.add_vars("u", [ctx.device_names[d] for d in usable], 0.0, 1.0, integer=True)
    rows = []
    for uc, d in zip(u.tolist(), usable, strict=True):
        for v in np.flatnonzero(ctx.allowed[:, d]):
            rows.append((f"{ctx.device_names[d]},{ctx.layer_names[v]}", [(uc, 1.0), (int(ctx.x[v, d]), -1.0)]))
    m.add_term_rows("use", rows, 0.0)
    m.add_row("max_devices", [(c, 1.0) for c in u.tolist()], ub=float(K))
