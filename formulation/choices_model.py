"""The exact linear model of placement plus configuration (docs/instance-format.md §11.5), written once
for both exact engines: :mod:`solvers.choices_milp` hands it to HiGHS, :mod:`solvers.choices_cpsat`
to CP-SAT.

Binaries (``mask`` = the placement mask of ``allowed`` and ``private``):

* ``w[v, j, d]``: layer ``v`` runs variant ``j`` on device ``d``; ``x[v, d] = sum_j w[v, j, d]``;
* ``z[k]``: exit ``k`` is chosen (choose mode);
* ``s[c, t, a, b]``: tensor ``t`` goes from ``a`` to ``b`` in copy ``c`` of the metrics;
* ``u[d]``: device ``d`` runs a layer (only under ``max_devices``).

Rows (Edgent's exit choice, Li et al., IEEE TWC 19(1), 2020; the transfer rows of §5.2):

* ``sum_{j,d} w[v, j, d] = a_v`` with ``a_v = sum_{k : v in S_k} z[k]`` (choose mode, one exit:
  ``sum_k z[k] = 1``) or ``a_v = 1`` (the other modes): a layer runs exactly when its path is chosen;
* ``s[c, t, a, b] >= x[t, a] + x[r, b] - 1`` for every reader ``r`` of ``t`` in copy ``c`` (``x[t,
  a]`` is 1 at the source for a model input); without a channel ``a -> b``: ``x[t, a] + x[r, b] <= 1``;
  an output ``o`` produced on ``a`` goes to the sink exactly when ``x[o, a] = 1``;
* metric forms of each copy ``c`` (the paths of §11.2; one copy gated by ``a_v`` in choose mode):
  ``L_c = sum t(v, j, d) w + sum duration s + sum sink duration x``, compute, send, receive, radio
  energy and cost as in §5.3-§5.7, and ``idle_c(d) >= L_c - compute_c(d) - send_c(d) - recv_c(d)``,
  ``idle >= 0`` (exact: idle only ever appears with a non-negative coefficient in a minimised
  objective or an upper-bounded row);
* expected metrics ``sum_c p_c metric_c`` (linear: the weights are data), ``L_c <= deadline`` for every
  copy, ``sum_c p_c E_c(d) <= budget(d)``;
* accuracy ``A = sum_k z[k] acc_k + sum delta(v, j) w[v, j, d]`` (choose), ``sum_k p_k acc_k + sum
  P(v) delta(v, j) w`` with ``P(v)`` the share of inferences whose exit needs ``v`` (expected), or
  ``acc + sum delta w`` (variants); ``A >= min_accuracy``; ``objective: accuracy`` minimises ``1 - A``;
* memory: ``sum param(v, j) w[v, j, d] + peak[d] <= memory(d)``, ``peak[d] >= working_set(v, j)
  w[v, j, d]`` (§5.9; without ``peak`` under ``memory: params``);
* ``colocate``: ``x[u, d] - x[v, d] + a_v <= 1`` both ways (equal devices when both run);
  ``max_devices``: ``u[d] >= x[v, d]``, ``sum u <= max``.

Every product of a binary and a figure is a coefficient, so the model is exact: no big-M.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from formulation.choices import Config, _sub_instance, choices_of, closure, path_sets
from formulation.costs import working_set_bytes
from formulation.model import FloatArray, Instance, System

#: Instance features this model leaves out (refused by the engines that use it).
UNSUPPORTED = ("throughput", "contiguous", "pipeline", "send_once")


class Lin:
    """A linear form ``const + sum coef * column`` (columns: binaries and auxiliaries)."""

    def __init__(self, const: float = 0.0) -> None:
        self.terms: dict[int, float] = defaultdict(float)
        self.const = const

    def add(self, col: int, coef: float) -> None:
        """Add ``coef * column``."""
        if coef:
            self.terms[col] += coef

    def extend(self, other: Lin, scale: float = 1.0) -> None:
        """Add ``scale * other``."""
        if not scale:
            return
        self.const += scale * other.const
        for c, v in other.terms.items():
            self.terms[c] += scale * v


@dataclass
class ChoiceModel:
    """Columns, rows and objective of the model (see the module docstring)."""

    inst: Instance
    names: list[str] = field(default_factory=list)
    binary: list[bool] = field(default_factory=list)
    unit: list[str] = field(default_factory=list)
    """``1`` for binaries, ``time`` or ``bytes`` for the auxiliaries (CP-SAT scales them)."""
    logic: list[tuple[dict[int, int], float, float]] = field(default_factory=list)
    """Rows over binaries with integer coefficients: ``lb <= sum coef * col <= ub``."""
    lower: list[tuple[int, Lin]] = field(default_factory=list)
    """``aux >= form`` (every auxiliary is also >= 0)."""
    upper: list[tuple[str, Lin, float]] = field(default_factory=list)
    """``(name, form, rhs)``: ``form <= rhs``."""
    objective: Lin = field(default_factory=Lin)
    w: dict[tuple[int, int, int], int] = field(default_factory=dict)
    z: list[int] = field(default_factory=list)
    infeasible: list[str] = field(default_factory=list)

    def col(self, name: str, *, binary: bool = True, unit: str = "1") -> int:
        """A new column."""
        self.names.append(name)
        self.binary.append(binary)
        self.unit.append(unit)
        return len(self.names) - 1

    def decode(self, values: FloatArray) -> tuple[np.ndarray, Config]:
        """Placement (full graph; layers that do not run on their first allowed device) and configuration."""
        g = self.inst.graph
        mask = self.inst.placement_mask
        P = np.array([int(np.argmax(row)) if row.any() else 0 for row in mask], dtype=np.int64)
        variant = [0] * g.n
        for (v, j, d), c in self.w.items():
            if values[c] > 0.5:
                P[v], variant[v] = d, j
        exit_index = None
        if self.z:
            exit_index = int(np.argmax([values[c] for c in self.z]))
        return P, Config(tuple(variant), exit_index)


class _Copy:
    """The metric forms of one copy (path) of the model."""

    def __init__(self, k: int) -> None:
        self.comp = [Lin() for _ in range(k)]
        self.send = [Lin() for _ in range(k)]
        self.recv = [Lin() for _ in range(k)]
        self.radio = [Lin() for _ in range(k)]
        self.L, self.C = Lin(), Lin()

    def transfer_adder(self, s: System) -> Callable[[int, int, int, float], None]:
        """A function adding transfer ``col`` of ``nbytes`` over ``a -> b`` to every form (§5.2-§5.7)."""

        def transfer(col: int, a: int, b: int, nbytes: float) -> None:
            occ = nbytes / float(s.bandwidth[a, b])
            self.L.add(col, float(s.transfer_time(a, b, nbytes)))
            self.send[a].add(col, occ)
            self.recv[b].add(col, occ)
            self.radio[a].add(col, float(s.tx_power[a, b]) * occ)
            self.radio[b].add(col, float(s.rx_power[a, b]) * occ)
            self.C.add(col, float(s.link_price[a, b]) * nbytes)

        return transfer


def unsupported(inst: Instance) -> list[str]:
    """What of the instance the model does not express (the engines refuse it)."""
    c, s = inst.problem.constraints, inst.system
    ch = choices_of(inst)
    out = []
    terms = inst.problem.objective.terms()
    if ch is not None and not ch.maximise_accuracy and terms.get("throughput"):
        out.append("the throughput objective with variants or exits (solved by brute)")
    if c.contiguous:
        out.append("contiguous with variants or exits (solved by brute)")
    if c.pipeline and s.k > 1:
        out.append("pipeline with variants or exits (solved by brute)")
    if s.send_once.any():
        out.append("send_once devices with variants or exits (solved by brute)")
    return out


def variant_times(inst: Instance) -> list[FloatArray]:
    """``times[j][v, d]``: t(v, d) of variant ``j`` (the base where ``v`` has fewer variants), each from
    :attr:`Instance.time` of the configured instance, so roofline and measured times follow §5.1."""
    ch, g = choices_of(inst), inst.graph
    assert ch is not None
    counts = [len(ch.variants.get(v, ())) + 1 for v in g.layer_ids]
    out = []
    for j in range(max(counts)):
        cfg = Config(tuple(j if j < c else 0 for c in counts))
        sub = _sub_instance(inst, cfg, np.ones(g.n, dtype=bool), g.outputs, "#variant")
        order = [sub.graph.layer_index[v] for v in g.layer_ids]
        out.append(np.asarray(sub.time)[order])
    return out


def build_choice_model(inst: Instance) -> ChoiceModel:
    """The model of docs/instance-format.md §11.5 for ``inst``."""
    ch, g, s = choices_of(inst), inst.graph, inst.system
    assert ch is not None
    cons = inst.problem.constraints
    m = ChoiceModel(inst)
    mask = inst.placement_mask
    times = variant_times(inst)
    nvar = [len(ch.variants.get(v, ())) + 1 for v in g.layer_ids]
    lay = g.layer_ids
    for v in range(g.n):
        for j in range(nvar[v]):
            for d in map(int, np.flatnonzero(mask[v])):
                m.w[int(v), j, int(d)] = m.col(f"w[{lay[v]},{j},{s.device_ids[d]}]")
    choose = ch.mode == "choose"
    exits_idx = [g.layer_index[e.layer] for e in ch.exits]
    # activity a_v as a form over z (choose mode) or the constant 1
    act: list[Lin] = []
    if choose:
        m.z = [m.col(f"z[{e.name}]") for e in ch.exits]
        m.logic.append(({c: 1 for c in m.z}, 1, 1))
        sets = [closure(g, e) for e in exits_idx]
        for v in range(g.n):
            av = Lin()
            for kk, S in enumerate(sets):
                if S[v]:
                    av.add(m.z[kk], 1.0)
            act.append(av)
    else:
        act = [Lin(1.0) for _ in range(g.n)]
    for v in range(g.n):
        row = {m.w[v, j, int(d)]: 1 for j in range(nvar[v]) for d in np.flatnonzero(mask[v])}
        for c, coef in act[v].terms.items():
            row[c] = row.get(c, 0) - round(coef)
        if not row and act[v].const:
            m.infeasible.append(f"layer {lay[v]!r} has no allowed device")
        m.logic.append((row, act[v].const, act[v].const))

    def x(v: int, d: int) -> dict[int, int]:
        return {m.w[v, j, d]: 1 for j in range(nvar[v]) if (v, j, d) in m.w}

    # the copies of the metrics: (weight, layer set, outputs)
    if choose:
        copies = [(1.0, np.ones(g.n, dtype=bool), tuple(exits_idx))]
        for k, e in enumerate(exits_idx):
            if inst.private_tensors[e] and s.sink_index is not None and not s.trusted[s.sink_index]:
                m.logic.append(({m.z[k]: 1}, 0, 0))
    else:
        copies = [(w, S, out) for w, S, out in path_sets(inst, None)]
        outs = {o for _w, _S, out in copies for o in out}
        if s.sink_index is not None and not s.trusted[s.sink_index] and any(inst.private_tensors[o] for o in outs):
            m.infeasible.append("a private output must reach the untrusted sink")
    if inst.private_tensors[g.n :].any() and not s.trusted[s.source_index]:
        m.infeasible.append("a private model input exists on the untrusted source")

    k = s.k
    energy_devs = set(np.flatnonzero(inst.scope_mask).tolist()) | {s.device_index[d] for d in cons.energy_budget_j}
    terms = inst.problem.objective.terms() if not ch.maximise_accuracy else {}
    need_energy = bool(terms.get("energy")) or bool(cons.energy_budget_j)
    L_exp, C_exp = Lin(), Lin()
    E_exp = [Lin() for _ in range(k)]
    for ci, (weight, S, outputs) in enumerate(copies):
        cp = _Copy(k)
        comp, send, recv, radio = cp.comp, cp.send, cp.recv, cp.radio
        L, C = cp.L, cp.C
        for v in map(int, np.flatnonzero(S)):
            for j in range(nvar[v]):
                for d in map(int, np.flatnonzero(mask[v])):
                    col = m.w[v, j, int(d)]
                    comp[d].add(col, float(times[j][v, d]))
        for d in range(k):
            L.extend(comp[d])
            C.extend(comp[d], float(s.price[d]))
        transfer = cp.transfer_adder(s)

        for t in range(g.n + g.m):
            readers = [r for r in g.consumers[t] if S[r]]
            if not readers or (t < g.n and not S[t]):
                continue
            srcs = [int(a) for a in np.flatnonzero(mask[t])] if t < g.n else [int(s.source_index)]
            nbytes = float(g.tensor_bytes[t])
            for a in srcs:
                xa = x(t, a) if t < g.n else {}
                for b in range(k):
                    if b == a:
                        continue
                    rs = [r for r in readers if mask[r, b]]
                    if not rs:
                        continue
                    if not s.has_link[a, b]:
                        for r in rs:
                            m.logic.append(({**xa, **x(r, b)}, -np.inf, 1 if xa else 0))
                        continue
                    col = m.col(f"s[{ci},{g.tensor_ids[t]},{s.device_ids[a]},{s.device_ids[b]}]")
                    for r in rs:
                        row = {**xa, **x(r, b)}
                        row[col] = -1
                        m.logic.append((row, -np.inf, 1 if xa else 0))
                    transfer(col, a, b, nbytes)
        sink = s.sink_index
        if sink is not None:
            for o in outputs:
                for a in map(int, np.flatnonzero(mask[o])):
                    if a == sink:
                        continue
                    if not s.has_link[a, sink]:
                        m.logic.append((x(o, int(a)), 0, 0))
                        continue
                    for j in range(nvar[o]):
                        transfer(m.w[o, j, int(a)], int(a), sink, float(g.tensor_bytes[o]))
        if cons.deadline_s is not None:
            m.upper.append((f"deadline[{ci}]", L, float(cons.deadline_s)))
        L_exp.extend(L, weight)
        C_exp.extend(C, weight)
        if need_energy:
            for d in sorted(energy_devs):
                E = Lin()
                E.extend(comp[d], float(s.power_active[d]))
                E.extend(radio[d])
                if s.power_idle[d] > 0:
                    idle = m.col(f"idle[{ci},{s.device_ids[d]}]", binary=False, unit="time")
                    gap = Lin()
                    gap.extend(L)
                    gap.extend(comp[d], -1.0)
                    gap.extend(send[d], -1.0)
                    gap.extend(recv[d], -1.0)
                    m.lower.append((idle, gap))
                    E.add(idle, float(s.power_idle[d]))
                E_exp[d].extend(E, weight)
    for dev, budget in cons.energy_budget_j.items():
        m.upper.append((f"energy_budget[{dev}]", E_exp[s.device_index[dev]], float(budget)))
    # accuracy
    A = Lin()
    share = np.zeros(g.n)
    if choose:
        for kk, ex in enumerate(ch.exits):
            A.add(m.z[kk], ex.accuracy)
        share[:] = 1.0  # w is zero for a layer that does not run
    elif ch.mode == "expected":
        for ex, ei in zip(ch.exits, exits_idx, strict=True):
            A.const += (ex.probability or 0.0) * ex.accuracy
            share += (ex.probability or 0.0) * closure(g, ei)
    else:
        A.const = ch.accuracy
        share[:] = 1.0
    for (v, j, _d), col in m.w.items():
        if j:
            A.add(col, share[v] * ch.variants[lay[v]][j - 1].accuracy_delta)
    if ch.min_accuracy is not None:
        neg = Lin()
        neg.extend(A, -1.0)
        m.upper.append(("min_accuracy", neg, -ch.min_accuracy + 1e-9))
    # memory (§5.9) of the layers that run
    if cons.memory and np.isfinite(s.memory).any():
        peak_ws = working_set_bytes(g)
        for d in map(int, np.flatnonzero(np.isfinite(s.memory))):
            M = Lin()
            pk = m.col(f"peak[{s.device_ids[d]}]", binary=False, unit="bytes") if cons.memory_model == "peak" else -1
            for v in range(g.n):
                for j in range(nvar[v]):
                    wc = m.w.get((v, j, int(d)))
                    if wc is None:
                        continue
                    var = ch.variants[lay[v]][j - 1] if j else None
                    par = var.param_bytes if var else float(g.param_bytes[v])
                    M.add(wc, par)
                    if pk >= 0:
                        ws = (
                            float(peak_ws[v])
                            - float(g.workspace_bytes[v])
                            + (var.workspace_bytes if var else float(g.workspace_bytes[v]))
                        )
                        f = Lin()
                        f.add(wc, ws)
                        m.lower.append((pk, f))
            if pk >= 0:
                M.add(pk, 1.0)
            m.upper.append((f"memory[{s.device_ids[d]}]", M, float(s.memory[d]) * (1 + 1e-9)))
    # colocate and max_devices
    for cls in inst.colocate_classes:
        for u, v in itertools.pairwise(cls):
            for d in range(k):
                for p, q in ((int(u), int(v)), (int(v), int(u))):
                    pair: dict[int, int] = {}
                    for c, coef in x(p, d).items():
                        pair[c] = pair.get(c, 0) + coef
                    for c, coef in x(q, d).items():
                        pair[c] = pair.get(c, 0) - coef
                    for c, coef in act[q].terms.items():
                        pair[c] = pair.get(c, 0) + round(coef)
                    m.logic.append((pair, -np.inf, 1 - act[q].const))
    if cons.max_devices is not None and cons.max_devices < k:
        used = [m.col(f"u[{s.device_ids[d]}]") for d in range(k)]
        for (_v, _j, d), col in m.w.items():
            m.logic.append(({col: 1, used[d]: -1}, -np.inf, 0))
        m.logic.append(({c: 1 for c in used}, -np.inf, cons.max_devices))
    # objective
    if ch.maximise_accuracy:
        m.objective = Lin(1.0)
        m.objective.extend(A, -1.0)
    else:
        obj = Lin()
        obj.extend(L_exp, float(terms.get("latency", 0.0)))
        obj.extend(C_exp, float(terms.get("cost", 0.0)))
        if terms.get("energy"):
            for d in map(int, np.flatnonzero(inst.scope_mask)):
                obj.extend(E_exp[d], float(terms["energy"]))
        m.objective = obj
    return m
