"""Numerical safety of the tolerance-based engines: per-instance unit scales, exact pruning of
astronomically dominated options, and a range check made before any model is built.

HiGHS works with absolute feasibility and optimality tolerances (1e-8 .. 1e-6 on the scaled model)
and CP-SAT with 64-bit integers; both are exact only while the numbers they see stay within a
moderate dynamic range. The cost model, in contrast, is evaluated in IEEE doubles by the evaluator
(and by ``brute`` and the combinatorial algorithms), where a time of 1e300 s is just a large number
and 1e9 FLOP at 1e-300 FLOP/s is ``inf``. This module bridges the two:

* :func:`reference` evaluates the ``k`` single-device placements (the local/offload baselines of
  Neurosurgeon, Kang et al., ASPLOS 2017) and the placement of each layer on its fastest allowed
  device with the evaluator. The best finite objective among them is
  an upper bound ``UB`` on the optimum, and that placement's latency, energy, cost and memory are the
  instance's **unit scales** (:func:`unit_scales`): the magnitude of a good solution, so that the
  engine's tolerances are relative to the answer, not to the largest coefficient.
* :func:`dominated` marks placement options ``(layer v, device d)`` that no optimal placement uses,
  proven by reasoning: a non-finite time of a layer the latency includes (every placement using it
  has a non-finite latency and is no solution); such a time above the deadline; parameters and working set
  above the device's memory; active energy above the device's energy budget; or a lower bound on the
  objective of any placement using the option above ``UB``. The lower bound is
  ``sum_m w_m * lb_m(v, d)`` with ``lb_latency = lb_throughput = t(v, d)`` (latency and period are at
  least one layer's compute time; in parallel mode the latency only counts the outputs and their
  ancestors), ``lb_energy = P_active(d) t(v, d)`` when ``d`` is in the energy
  scope, and ``lb_cost = price(d) t(v, d)``; it is used only when every weight is non-negative.
  :func:`restricted` turns the marks into an ``allowed`` constraint; the optimum is unchanged.
* :func:`check_range` refuses, before anything is built, an instance whose remaining numbers a
  tolerance-based engine cannot represent: a non-finite value, a unit scale outside
  [:data:`SCALE_MIN`, :data:`SCALE_MAX`], or a coefficient more than :data:`SAFE_MAX` times its unit
  scale. The error (:class:`NumericallyUnsafe`, exit code 2) names the field and value; ``auto`` then
  moves on to an engine that computes in floats.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, replace

import numpy as np

from formulation.costs import peak_term_bytes, working_set_bytes
from formulation.errors import InstanceError
from formulation.model import BoolArray, FloatArray, Instance

#: Largest magnitude of any coefficient relative to its unit scale that the engines are given.
SAFE_MAX = 1e6
#: Range of the unit scales themselves (SI values): outside it products of two figures leave the
#: normal range of doubles (underflow to denormals or 0, overflow to inf).
SCALE_MIN, SCALE_MAX = 1e-100, 1e100
#: Relative margin of the dominance test (a pruned option is worse than ``UB`` by more than this).
PRUNE_RTOL = 1e-6
#: Relative tolerance of the evaluator's constraint checks (deadline, budgets, memory).
FEAS_RTOL = 1e-9
#: Words every refusal contains (``auto`` lists such refusals among the engines tried).
REFUSAL_WORDS = "outside the range"
#: What the tolerance-based engines (MILP, CP-SAT) represent safely, as their refusals state it.
SCALED_RANGE = (
    f"each coefficient within {SAFE_MAX:g} times its unit scale, scales within [{SCALE_MIN:g}, {SCALE_MAX:g}]"
)
#: What the combinatorial algorithms (shortest path, min-cut, DP) represent safely: they add exact
#: terms in doubles, and their totals must be the evaluator's.
DOUBLE_RANGE = "exact sums in double precision that the evaluator reproduces"


class NumericallyUnsafe(InstanceError):
    """An instance whose numbers an engine cannot represent safely (exit code 2)."""


@dataclass(frozen=True)
class Reference:
    """The best single-device placement and its metrics (``inf`` where none is finite)."""

    upper_bound: float
    latency: float
    period: float
    energy: float
    cost: float
    memory: float


def reference(inst: Instance) -> Reference:
    """Evaluate the ``k`` single-device placements and the fastest-device one; the best finite
    feasible one (see module doc)."""
    from formulation.evaluator import batch_metrics

    inf = math.inf
    if inst.n == 0 or inst.k == 0:
        return Reference(inf, inf, inf, inf, inf, inf)
    P = np.repeat(np.arange(inst.k, dtype=np.int64)[:, None], inst.n, axis=1)
    with np.errstate(all="ignore"):
        # plus each layer on its fastest allowed device: often far better than any single device
        # (a scale taken from a poor placement would put the optimum below the solver's tolerance)
        fastest = np.where(inst.placement_mask, np.nan_to_num(inst.time, nan=np.inf), np.inf).argmin(axis=1)
        P = np.vstack([P, fastest[None, :].astype(np.int64)])
        bm = batch_metrics(inst, P, parallel=inst.problem.execution == "parallel")
        obj = bm.objective()
        ok = bm.feasible() & np.isfinite(obj)
    if not ok.any():
        return Reference(inf, inf, inf, inf, inf, inf)
    i = int(np.argmin(np.where(ok, obj, inf)))
    with np.errstate(all="ignore"):
        return Reference(
            float(obj[i]),
            float(bm.latency()[i]),
            float(bm.period[i]),
            float(bm.energy_total()[i]),
            float(bm.cost[i]),
            float(bm.memory[i].max(initial=0.0)),
        )


def _positive(x: float) -> bool:
    return x > 0 and math.isfinite(x)


def unit_scales(inst: Instance, ref: Reference | None = None) -> dict[str, float]:
    """Typical magnitude of each unit for ``inst``: the best single-device placement's metrics.

    Where that value is 0 or not finite the largest coefficient of the unit is used instead
    (the same rule for every engine), and 1.0 where nothing sets the unit.
    """
    ref = ref if ref is not None else reference(inst)
    g, s = inst.graph, inst.system
    with np.errstate(all="ignore"):
        t = np.where(inst.placement_mask & np.isfinite(inst.time), inst.time, 0.0)
        terms = {m for m, w in inst.problem.objective.terms().items() if w}
        # the time metric the objective weighs: the period for pure throughput, else the latency
        main = ref.period if terms == {"throughput"} else ref.latency
        tau = main if _positive(main) else float(t.max(initial=0.0))
        tau = tau if _positive(tau) else 1.0
        power = max(
            float(s.power_active.max(initial=0.0)),
            float(s.power_idle.max(initial=0.0)),
            float(s.tx_power.max(initial=0.0)),
            float(s.rx_power.max(initial=0.0)),
        )
        energy = ref.energy if _positive(ref.energy) else tau * power
        cost = ref.cost if _positive(ref.cost) else tau * float(s.price.max(initial=0.0))
        peak = float((working_set_bytes(g) + g.param_bytes).max(initial=0.0))
        nbytes = ref.memory if _positive(ref.memory) else peak
    return {
        "1": 1.0,
        "time": tau,
        "energy": energy if _positive(energy) else 1.0,
        "cost": cost if _positive(cost) else 1.0,
        "bytes": nbytes if _positive(nbytes) else 1.0,
    }


def timed_layers(inst: Instance) -> BoolArray:
    """Layers whose compute time the latency includes: all in sequential mode; in parallel mode
    the model outputs and their ancestors (the makespan ends when the outputs reach the sink)."""
    g = inst.graph
    if inst.problem.execution != "parallel":
        return np.ones(g.n, dtype=bool)
    out = np.zeros(g.n, dtype=bool)
    outs = list(g.outputs)
    if outs:
        out[outs] = True
        out |= g.ancestors[:, outs].any(axis=1)
    return out


def option_lower_bounds(inst: Instance) -> FloatArray:
    """``lb[v, d]``: a lower bound on the objective of every placement running ``v`` on ``d``.

    ``-inf`` everywhere when some weight is negative (no bound is claimed then).
    """
    terms = {m: w for m, w in inst.problem.objective.terms().items() if w}
    if any(w < 0 for w in terms.values()):
        return np.full((inst.n, inst.k), -math.inf)
    s, t = inst.system, inst.time
    lb = np.zeros((inst.n, inst.k))
    timed = timed_layers(inst)[:, None]
    with np.errstate(all="ignore"):
        for m, w in terms.items():
            if m == "latency":
                part = np.where(timed, t, 0.0)
            elif m == "throughput":
                part = t
            elif m == "energy":
                pa = np.where(inst.scope_mask, s.power_active, 0.0)
                part = np.where(pa[None, :] > 0, pa[None, :] * t, 0.0)
            elif m == "cost":
                part = np.where(s.price[None, :] > 0, s.price[None, :] * t, 0.0)
            else:
                continue
            lb = lb + np.where(part > 0, w * part, 0.0)
    return np.where(np.isnan(lb), math.inf, lb)


def dominated(inst: Instance, ref: Reference | None = None) -> BoolArray:
    """``mask[v, d]``: option ``(v, d)`` is used by no optimal placement (module docstring)."""
    ref = ref if ref is not None else reference(inst)
    g, s, c = inst.graph, inst.system, inst.problem.constraints
    t = inst.time
    timed = timed_layers(inst)[:, None]
    out = ~np.isfinite(t) & timed
    with np.errstate(all="ignore"):
        if c.deadline_s is not None:
            out |= timed & (t > c.deadline_s * (1 + FEAS_RTOL))
        if c.memory:
            own = g.param_bytes + peak_term_bytes(inst)
            out |= own[:, None] > s.memory[None, :] * (1 + FEAS_RTOL)
        for dev, budget in c.energy_budget_j.items():
            d = s.device_index[dev]
            if s.power_active[d] > 0:
                out[:, d] |= s.power_active[d] * t[:, d] > budget * (1 + FEAS_RTOL) + 1e-15
        if math.isfinite(ref.upper_bound):
            lb = option_lower_bounds(inst)
            out |= lb > ref.upper_bound * (1 + PRUNE_RTOL) + 1e-300
    return np.asarray(out)


def restricted(inst: Instance, ref: Reference | None = None) -> tuple[Instance, bool]:
    """``inst`` with the :func:`dominated` options forbidden through ``allowed`` (same optimum).

    Returns the instance and whether some layer has no option left, in which case no placement has
    a finite objective and the instance is infeasible.
    """
    mask = dominated(inst, ref)
    keep = inst.placement_mask & ~mask
    if not (mask & inst.placement_mask).any():
        return inst, False
    if not keep.any(axis=1).all():
        return inst, True
    s, g = inst.system, inst.graph
    allowed = dict(inst.problem.constraints.allowed)
    for v in np.flatnonzero((mask & inst.placement_mask).any(axis=1)):
        allowed[g.layer_ids[v]] = tuple(s.device_ids[d] for d in np.flatnonzero(keep[v]))
    cons = replace(inst.problem.constraints, allowed=allowed)
    return inst.with_problem(replace(inst.problem, constraints=cons)), False


def refuse(
    inst: Instance,
    engine: str,
    path: str,
    value: float,
    what: str,
    *,
    represents: str = SCALED_RANGE,
    instead: str = "brute, a combinatorial algorithm or auto",
) -> NumericallyUnsafe:
    """The refusal of ``inst`` by ``engine`` for the field ``path`` of value ``value``.

    ``what`` states the condition the value breaks; ``represents`` what ``engine`` represents safely
    (the tolerance-based engines' unit scales by default, :data:`DOUBLE_RANGE` for the algorithms
    that add in doubles); ``instead`` the solvers that still apply.
    """
    return NumericallyUnsafe(
        inst.source_path or inst.name,
        path,
        value,
        f"a value for which {what}; it is {REFUSAL_WORDS} that {engine} represents safely ({represents}); "
        f"use {instead}",
    )


def check_range(inst: Instance, engine: str, ref: Reference | None = None) -> None:
    """Refuse ``inst`` for ``engine`` when a number the engine would see is out of its safe range.

    ``inst`` should be the :func:`restricted` instance. Checks the unit scales, compute times of
    allowed options, transfer times of every link for the largest tensor, powers, prices, memory.

    Raises
    ------
    NumericallyUnsafe
        Naming the field (e.g. ``system.devices[1].compute``) and its value.
    """
    ref = ref if ref is not None else reference(inst)
    sc = unit_scales(inst, ref)
    g, s, p = inst.graph, inst.system, inst.problem
    terms = {m for m, w in p.objective.terms().items() if w}
    for unit in ("time", "energy", "cost", "bytes"):
        if not SCALE_MIN <= sc[unit] <= SCALE_MAX:
            raise refuse(
                inst, engine, f"(the {unit} scale)", sc[unit], f"the {unit} scale of a good placement is in range"
            )
    tau = sc["time"]
    _check_limits(inst, engine, sc)
    with np.errstate(all="ignore"):
        t = np.where(inst.placement_mask, inst.time, 0.0)
        big = t > SAFE_MAX * tau
        if big.any():
            v, d = (int(x) for x in np.argwhere(big)[0])
            raise refuse(
                inst,
                engine,
                f"system.devices[{d}].compute",
                float(s.compute[d]),
                f"layer {g.layer_ids[v]!r} runs in at most {SAFE_MAX:g} times the time scale {tau:.3g} s "
                f"(it takes {t[v, d]:.3g} s on {s.device_ids[d]!r})",
            )
        top = float(g.tensor_bytes.max(initial=0.0))
        for (a, b), lk in s.links.items():
            dur = lk.latency_s + (top / lk.bandwidth_bytes_per_s if top > 0 else 0.0)
            if not (math.isfinite(dur) and dur <= SAFE_MAX * tau):
                field, val = (
                    ("latency", lk.latency_s)
                    if lk.latency_s > SAFE_MAX * tau
                    else ("bandwidth", lk.bandwidth_bytes_per_s)
                )
                raise refuse(
                    inst,
                    engine,
                    f"system.links[{a}->{b}].{field}",
                    val,
                    f"the link {a}->{b} moves the largest tensor ({top:.3g} B) within {SAFE_MAX:g} times "
                    f"the time scale {tau:.3g} s (it takes {dur:.3g} s)",
                )
        if "energy" in terms or p.constraints.energy_budget_j:
            _check_factor(
                inst,
                engine,
                sc["energy"] / tau,
                {
                    "power_active": s.power_active,
                    "power_idle": s.power_idle,
                },
                "W",
                "energy",
            )
            for (a, b), lk in s.links.items():
                for name, val in (("tx_power", lk.tx_power_w), ("rx_power", lk.rx_power_w)):
                    if not (math.isfinite(val) and val * tau <= SAFE_MAX * sc["energy"]):
                        raise refuse(
                            inst,
                            engine,
                            f"system.links[{a}->{b}].{name}",
                            val,
                            f"the power times the time scale is within {SAFE_MAX:g} times the energy scale",
                        )
        if "cost" in terms:
            _check_factor(inst, engine, sc["cost"] / tau, {"price": s.price}, "USD/s", "cost")
            for (a, b), lk in s.links.items():
                val = lk.price_usd_per_byte
                if not (math.isfinite(val) and val * top <= SAFE_MAX * sc["cost"]):
                    raise refuse(
                        inst,
                        engine,
                        f"system.links[{a}->{b}].price",
                        val,
                        "the price of the largest tensor is within the range of the cost scale",
                    )
        if p.constraints.memory:
            own = g.param_bytes + working_set_bytes(g)
            if not (math.isfinite(float(own.sum())) and float(own.sum()) <= SAFE_MAX * sc["bytes"]):
                v = int(np.argmax(own))
                raise refuse(
                    inst,
                    engine,
                    f"model.layers[{v}]",
                    float(own[v]),
                    f"the bytes of all layers sum to within {SAFE_MAX:g} times the bytes scale",
                )
    for name, w in p.objective.terms().items():
        if w and not (math.isfinite(w) and SCALE_MIN <= abs(w) <= SCALE_MAX):
            raise refuse(inst, engine, f"problem.objective.weights.{name}", w, "the weight is in range")


def _check_limits(inst: Instance, engine: str, sc: dict[str, float]) -> None:
    """The deadline and every energy budget are 0 or at least ``1 / SAFE_MAX`` of their unit scale.

    A smaller limit lies below the engines' absolute tolerances on the scaled rows (a budget of 3 J
    against an energy scale of 5e40 J reads as 0, and a placement using 1.3e9 J then satisfies it
    within the tolerance); no instance is refused for a limit of 0, which a tolerance does not blur.
    """
    c = inst.problem.constraints
    limits = [("constraints.deadline", c.deadline_s, "time", "s")] if c.deadline_s is not None else []
    limits += [(f"constraints.energy_budget.{d}", b, "energy", "J") for d, b in c.energy_budget_j.items()]
    for path, value, unit, symbol in limits:
        if 0 < value < sc[unit] / SAFE_MAX:
            raise refuse(
                inst,
                engine,
                path,
                value,
                f"the limit is at least 1/{SAFE_MAX:g} of the {unit} scale {sc[unit]:.3g} {symbol} (the "
                f"{unit} of a good placement, or the largest coefficient where no placement is feasible)",
            )


def _check_factor(
    inst: Instance, engine: str, per_s: float, fields: dict[str, FloatArray], unit: str, what: str
) -> None:
    """Every per-second figure in ``fields`` is at most ``SAFE_MAX * per_s`` (its unit's scale per s)."""
    for name, arr in fields.items():
        bad = ~np.isfinite(arr) | (arr > SAFE_MAX * per_s)
        if bad.any():
            d = int(np.flatnonzero(bad)[0])
            raise refuse(
                inst,
                engine,
                f"system.devices[{d}].{name}",
                float(arr[d]),
                f"the figure in {unit} is within {SAFE_MAX:g} times the {what} scale per second ({per_s:.3g})",
            )


def prepare(inst: Instance, engine: str) -> tuple[Instance, bool]:
    """The instance a tolerance-based engine solves: :func:`restricted`, then :func:`check_range`.

    Returns the restricted instance and whether it is infeasible (some layer has no option left).

    Raises
    ------
    NumericallyUnsafe
        Before anything is built, when a remaining number is out of the engine's safe range.
    """
    if inst.problem.scenarios is not None:  # network states: checked per state, nothing pruned
        from formulation.scenarios import prepare_states

        return prepare_states(inst, engine)
    hit = _PREPARED.get(inst)
    if hit is None:
        ref = reference(inst)
        out, empty = restricted(inst, ref)
        hit = _PREPARED[inst] = (out, empty, ref)
    out, empty, ref = hit
    if not empty:
        check_range(out, engine, ref)
    return out, empty


#: :func:`prepare`'s engine-independent work per instance (``auto`` checks several engines, and each
#: engine checks before it solves); instances are immutable.
_PREPARED: weakref.WeakKeyDictionary[Instance, tuple[Instance, bool, Reference]] = weakref.WeakKeyDictionary()


#: Message of an instance in which some layer has no option of finite time within its constraints.
NO_FINITE_OPTION = (
    "infeasible before solving: some layer has no device on which it runs in finite time within the "
    "deadline, memory and energy budgets"
)


#: Widest ratio between the per-second rates of an additive objective (latency weight, weighted
#: powers, weighted prices) that the algorithms computing in doubles are given when idle power
#: counts, and between the time figures (compute times, link latencies, link occupancies).
FLOAT_RATE_RANGE = 1e8
FLOAT_TIME_RANGE = 1e12


def check_float_range(inst: Instance, engine: str) -> None:
    """Refuse an additive objective whose exact value the evaluator cannot reproduce in doubles.

    The combinatorial algorithms (shortest path, min-cut, DP) sum exact per-layer and per-transfer
    terms; the evaluator, the judge, computes the idle energy as ``L - busy``, whose rounding error
    ``~ n eps L`` is multiplied by the idle power. When idle power counts and the rates of the
    objective (or the time figures) span more than :data:`FLOAT_RATE_RANGE`
    (:data:`FLOAT_TIME_RANGE`), that error can exceed the comparison tolerance, and a correct
    answer would be judged wrong: such instances are refused (``brute`` and the tolerance-free
    evaluation of ``scan`` still apply), naming the field.

    Raises
    ------
    NumericallyUnsafe
    """
    s, p = inst.system, inst.problem
    terms = p.objective.terms()
    w_en = float(terms.get("energy", 0.0))
    pi = np.where(inst.scope_mask, s.power_idle, 0.0)
    if not (w_en > 0 and (pi > 0).any()):
        return
    rates: list[tuple[float, str, float]] = []
    if terms.get("latency"):
        rates.append((float(terms["latency"]), "problem.objective.weights.latency", float(terms["latency"])))
    if terms.get("cost"):
        rates += [(terms["cost"] * float(x), f"system.devices[{d}].price", float(x)) for d, x in enumerate(s.price)]
    for name, arr in (("power_active", s.power_active), ("power_idle", s.power_idle)):
        rates += [
            (w_en * float(arr[d]), f"system.devices[{d}].{name}", float(arr[d]))
            for d in np.flatnonzero(inst.scope_mask)
        ]
    for (a, b), lk in s.links.items():
        if inst.scope_mask[s.device_index[a]]:
            rates.append((w_en * lk.tx_power_w, f"system.links[{a}->{b}].tx_power", lk.tx_power_w))
        if inst.scope_mask[s.device_index[b]]:
            rates.append((w_en * lk.rx_power_w, f"system.links[{a}->{b}].rx_power", lk.rx_power_w))
    _spread(inst, engine, [r for r in rates if r[0] > 0], FLOAT_RATE_RANGE, "the per-second rates of the objective")
    g = inst.graph
    times: list[tuple[float, str, float]] = []
    with np.errstate(all="ignore"):
        t = np.where(inst.placement_mask & np.isfinite(inst.time), inst.time, 0.0)
        for v, d in np.argwhere(t > 0):
            times.append((float(t[v, d]), f"system.devices[{d}].compute", float(s.compute[d])))
        for (a, b), lk in s.links.items():
            if lk.latency_s > 0:
                times.append((lk.latency_s, f"system.links[{a}->{b}].latency", lk.latency_s))
            occ = g.tensor_bytes[g.tensor_bytes > 0] / lk.bandwidth_bytes_per_s
            for x in occ[np.isfinite(occ) & (occ > 0)]:
                times.append((float(x), f"system.links[{a}->{b}].bandwidth", lk.bandwidth_bytes_per_s))
    _spread(inst, engine, times, FLOAT_TIME_RANGE, "the time figures (compute, latency, occupancy)")


def _spread(inst: Instance, engine: str, items: list[tuple[float, str, float]], limit: float, what: str) -> None:
    """Refuse when the largest of ``items`` exceeds ``limit`` times the smallest (naming the largest)."""
    if len(items) < 2:
        return
    lo = min(items, key=lambda x: x[0])
    hi = max(items, key=lambda x: x[0])
    if hi[0] > limit * lo[0]:
        raise refuse(
            inst,
            engine,
            hi[1],
            hi[2],
            f"{what} span at most {limit:g} (idle energy counts; the largest is {hi[0]:.3g}, the smallest "
            f"{lo[0]:.3g} from {lo[1]} = {lo[2]!r})",
            represents=DOUBLE_RANGE,
            instead="brute or auto",
        )
