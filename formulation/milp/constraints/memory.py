"""Device memory (docs/instance-format.md §5.9): parameters of the device's layers plus its peak working set.

For device ``d`` with capacity ``mem(d)``, ``peak(v) = workspace(v) + output(v) + input bytes(v)``::

    m[d] >= peak(v) x[v, d]                        for every layer v that may run on d   (mem_peak)
    sum_v param(v) x[v, d] + m[d] <= mem(d)                                               (memory)

``m[d]`` (bytes) linearises the max over the device's layers; it is pushed down by the capacity
row alone, so it is exact for feasibility. This is the standard per-device capacity (knapsack)
row of placement MILPs (e.g. Tarnawski et al., NeurIPS 2020, memory constraint of their IP).
Under the weights-only memory model (``constraints.memory: params``) the peak is 0: the rows are
``sum_v param(v) x[v, d] <= mem(d)``, exactly the knapsack row of that IP.
Devices whose every allowed layer fits at once (``sum param + max peak <= mem``) get no rows, and
a layer that alone exceeds ``mem(d)`` never has the column ``x[v, d]``
(:mod:`formulation.milp.constraints.placement_rules`).
"""

from __future__ import annotations

import numpy as np

from formulation.milp.constraints.placement_rules import peak_bytes
from formulation.milp.context import MilpContext


def add_memory(ctx: MilpContext) -> None:
    """Add ``m[d]`` and the rows above for every device whose capacity can be exceeded."""
    inst, m = ctx.inst, ctx.model
    g, s = inst.graph, inst.system
    peak = peak_bytes(inst) if inst.problem.constraints.memory_model == "peak" else np.zeros(g.n)
    devs = []
    for d in range(s.k):
        vs = np.flatnonzero(ctx.allowed[:, d])
        if vs.size and g.param_bytes[vs].sum() + peak[vs].max() > s.memory[d]:
            devs.append(d)
    if not devs:
        return
    with_peak = inst.problem.constraints.memory_model == "peak"
    mcol = m.add_vars("m", [ctx.device_names[d] for d in devs], 0.0, unit="bytes") if with_peak else None
    peak_rows, cap_rows, caps = [], [], []
    for i, d in enumerate(devs):
        vs = np.flatnonzero(ctx.allowed[:, d])
        terms = [(int(ctx.x[v, d]), float(g.param_bytes[v])) for v in vs if g.param_bytes[v] > 0]
        if mcol is not None:
            mc = int(mcol[i])
            for v in vs:
                if peak[v] > 0:
                    label = f"{ctx.device_names[d]},{ctx.layer_names[v]}"
                    peak_rows.append((label, [(mc, 1.0), (int(ctx.x[v, d]), -float(peak[v]))]))
            terms.append((mc, 1.0))
        cap_rows.append((ctx.device_names[d], terms))
        caps.append(float(s.memory[d]))
    m.add_term_rows("mem_peak", peak_rows, 0.0)
    m.add_term_rows("memory", cap_rows, ub=caps)
