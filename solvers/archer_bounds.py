"""Lower bounds on the period of a partition into stages, after Archer et al. (ICML 2024).

Source: A. Archer, M. Fahrbach, K. Liu, P. Prabhu, "Practical Performance Guarantees for Pipelined
DNN Inference", ICML 2024 (PMLR 235:1655-1671), Section 4 (lower bounds). They bound the
bottleneck stage time of a ``k``-stage partition from below by (a) a *combinatorial* bound, the
larger of the average work and the heaviest single node with its communication, and (b) *MIP
relaxations* of the exact partition MIP that keep the communication of a **guessed bottleneck
block** exact and relax the other blocks. The relaxations below are our own formulations of that
idea for dnnpart's cost model (``comm_overlap: false`` devices pay each tensor they send and each
tensor they receive, the MSR max-load, docs/msr.md), not a transcription of theirs.

Notation: ``m`` the number of devices that can hold a stage (usable devices, at most
``max_devices``), ``t(v, d)`` the compute time, ``t_min(v) = min_d t(v, d)`` over allowed devices,
``W = sum_v t_min(v)``, ``load_d(S)`` the busy-time lower bound of :mod:`solvers.unit_load`
(compute plus each tensor leaving ``S`` once at its fastest channel out of ``d`` plus each tensor
entering ``S`` once at its fastest channel into ``d``; zero communication on overlapping devices).

* **Combinatorial** (their Section 4.1): ``max(W / m, max_C min_d t(C, d))`` over units ``C``
  (single layers and ``colocate`` classes): every stage's busy time is at least its compute, and
  the stage holding ``C`` computes all of it. A unit's own communication is *not* a bound: the
  stage around it may hold its neighbours and pay less (a layer with many inputs alone receives
  them all); :mod:`solvers.unit_load` minimises over those stages.
* **Bottleneck block** (their bottleneck-guessing MIP relaxation, Section 4): fix a unit ``C``; the
  stage ``S`` that holds it (on device ``d``) obeys ``load_d(S) <= T``, and the other stages, one
  per remaining device, each compute at most ``T``, so ``sum_{v not in S} t_min(v) <= (m - 1) T``.
  Hence ``OPT >= min_d min { T : S ⊇ C, load_d(S) <= T, W - t_min(S) <= (m - 1) T }`` for *every*
  unit ``C`` (every unit lies in some stage), and the bound is the largest over the units tried.
  With ``contiguous`` or ``pipeline`` (a pipeline stage ``D_i \\ D_{i-1}`` is convex too), ``S`` is
  convex: ``a_v >= x_v``, ``a_v >= a_u`` and ``b_u >= b_v``, ``b_v >= x_v`` on every edge ``u -> v``
  (``a``: ``v`` or an ancestor in ``S``; ``b``: ``v`` or a descendant in ``S``) and ``x_v >= a_v +
  b_v - 1`` (a layer between two members is a member), the contiguity rows of the MSR IP
  (Tarnawski et al., NeurIPS 2020, Section 5). Send and receive indicators: ``s_u >= x_u - x_r``,
  ``r_u >= x_r - x_u`` for every reader ``r`` of ``u``. ``colocate`` classes are whole (``x``
  equal), forbidden layers out (``x_v = 0`` where ``v`` may not run on ``d``). Memory is relaxed.
  Where devices differ, the rest is also placed *fractionally* on the other devices (the
  fractional-placement relaxation of :mod:`solvers.lp_bound` for what ``S`` leaves): ``y_{v,c} >=
  0`` on the devices of class ``c`` (same time column and allowed set), ``sum_c y_{v,c} = 1 -
  x_v``, ``sum_v t(v, c) y_{v,c} <= (|c| - [d in c]) T``: each other device computes at most
  ``T`` (a CPU ten times slower than the accelerators absorbs a tenth of their work).

Each MIP is solved by HiGHS within a time share; its *dual* bound is what counts (a relaxation's
lower bound is a lower bound of the optimum), so an unfinished solve still gives a valid value.
A relative :data:`SAFETY` margin absorbs the solver's tolerances.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulation.model import FloatArray, Instance, IntArray
from solvers.options import SolverOptions
from solvers.unit_load import _device_terms

#: Relative margin taken off every MIP dual bound (HiGHS runs with integrality and primal
#: feasibility tolerances of 1e-9 on rows scaled so that the bound is about 1).
SAFETY = 1e-6
#: Largest number of layers for which the MIP relaxations are built.
MAX_LAYERS = 5_000


@dataclass
class ArcherBounds:
    """The bounds of the module docstring (seconds) and which unit gave the bottleneck value."""

    combinatorial: float
    bottleneck: float = -math.inf
    packing: float = -math.inf
    packing_heavy: int = 0
    units_tried: int = 0
    units_finished: int = 0
    best_unit: tuple[int, ...] = ()
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> float:
        return max(self.combinatorial, self.bottleneck, self.packing)

    def summary(self) -> dict[str, object]:
        """The figures for ``Result.extra`` (seconds; ``best_unit`` as layer indices)."""
        return {
            "combinatorial": self.combinatorial,
            "bottleneck": self.bottleneck,
            "packing": self.packing,
            "packing_heavy": self.packing_heavy,
            "best": self.best,
            "source": self.source,
            "units_tried": self.units_tried,
            "units_finished": self.units_finished,
            "best_unit": list(self.best_unit),
            "seconds": self.seconds,
        }

    @property
    def source(self) -> str:
        """Which bound is the largest (on ties the first of combinatorial, bottleneck, packing)."""
        named = [("archer-combinatorial", self.combinatorial), ("archer-bottleneck", self.bottleneck)]
        named.append(("packing", self.packing))
        return max(named, key=lambda nv: nv[1])[0]


def applies(inst: Instance) -> str | None:
    """Why the bounds do not apply to ``inst`` (None when they do): the period objective alone."""
    if inst.problem.objective.terms() != {"throughput": 1.0}:
        return "the objective is not the period alone"
    if inst.problem.scenarios is not None:
        return "network states"
    if not inst.placement_mask.any(axis=1).all():
        return "a layer has no allowed device"
    return None


def _units(inst: Instance) -> list[list[int]]:
    in_class = {int(v) for c in inst.colocate_classes for v in c}
    singles = [[v] for v in range(inst.graph.n) if v not in in_class]
    return [sorted(map(int, c)) for c in inst.colocate_classes] + singles


def usable_devices(inst: Instance) -> int:
    """Devices that may hold a stage: those allowed for some layer, at most ``max_devices``."""
    m = inst.problem.constraints.max_devices
    usable = int(inst.placement_mask.any(axis=0).sum())
    return max(1, min(usable, m) if m is not None else usable)


def _load(inst: Instance, members: set[int], d: int, send: FloatArray, recv: FloatArray) -> float:
    g = inst.graph
    total = float(inst.time[sorted(members), d].sum())
    for u in range(g.n):
        readers = g.succs[u]
        if readers:
            inside = [r in members for r in readers]
            if u in members and not all(inside):
                total += float(send[u])
            elif u not in members and any(inside):
                total += float(recv[u])
    return total


def _distinct_devices(inst: Instance) -> dict[int, tuple[FloatArray, FloatArray]]:
    """One representative per group of devices with the same column of figures."""
    seen: set[bytes] = set()
    out: dict[int, tuple[FloatArray, FloatArray]] = {}
    for d in range(inst.system.k):
        send, recv = _device_terms(inst, d)
        key = b"".join(a.tobytes() for a in (inst.time[:, d], inst.placement_mask[:, d], send, recv))
        if key not in seen:
            seen.add(key)
            out[d] = (send, recv)
    return out


def _device_classes(inst: Instance) -> list[tuple[int, list[int]]]:
    """Devices with the same time column and allowed set: (representative, members)."""
    groups: dict[bytes, list[int]] = {}
    for d in range(inst.system.k):
        key = inst.time[:, d].tobytes() + inst.placement_mask[:, d].tobytes()
        groups.setdefault(key, []).append(d)
    return [(members[0], members) for members in groups.values()]


def combinatorial_bound(inst: Instance) -> float:
    """``max(W / m, max_C min_d t(C, d))`` (module docstring; Archer et al., Section 4.1)."""
    mask = inst.placement_mask
    tmin = np.where(mask, inst.time, math.inf).min(axis=1)
    best = float(tmin.sum()) / usable_devices(inst)
    for unit in _units(inst):
        on = np.where(mask[unit].all(axis=0), inst.time[unit].sum(axis=0), math.inf)
        if np.isfinite(on).any():
            best = max(best, float(on.min()))
    return best


class _Rows:
    """Sparse rows ``lo <= sum coef x <= hi`` collected for HiGHS."""

    def __init__(self) -> None:
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.starts: list[int] = []
        self.idx: list[int] = []
        self.val: list[float] = []

    def add(self, cols: list[int], coefs: list[float], lo: float, hi: float) -> None:
        self.starts.append(len(self.idx))
        self.idx.extend(cols)
        self.val.extend(coefs)
        self.lo.append(lo)
        self.hi.append(hi)


def _block_mip(
    inst: Instance,
    unit: list[int],
    d: int,
    send: FloatArray,
    recv: FloatArray,
    convex: bool,
    scale: float,
    floor: float,
    time_limit_s: float,
) -> tuple[float, bool]:
    """The bottleneck-block relaxation for ``unit`` on device ``d``: (dual bound in seconds, finished)."""
    import highspy

    g = inst.graph
    n = g.n
    m = usable_devices(inst)
    mask = inst.placement_mask
    tmin = np.where(mask, inst.time, math.inf).min(axis=1) / scale
    tcol = np.where(mask[:, d], inst.time[:, d], 0.0) / scale
    # columns: x_v (n), s_u (n), r_u (n), a_v, b_v (n each when convex), T
    X, S, R = 0, n, 2 * n
    A, B = 3 * n, 4 * n
    T = 5 * n if convex else 3 * n
    # Fractional share y[v, c] of layer v on the other devices of class c (same time column and
    # allowed set), after the stage on d.
    classes = _device_classes(inst)
    if len(classes) == 1:
        classes = []  # identical devices: the shares add nothing to the row on W (fewer columns)
    Y = T + 1
    ncols = Y + n * len(classes)
    lower = np.zeros(ncols)
    upper = np.ones(ncols)
    upper[T] = math.inf
    for j, (rep, _) in enumerate(classes):
        for v in range(n):
            if not mask[v, rep]:
                upper[Y + j * n + v] = 0.0
    lower[T] = floor / scale
    for v in range(n):
        if not mask[v, d]:
            upper[X + v] = 0.0
    for v in unit:
        lower[X + v] = 1.0
    cost = np.zeros(ncols)
    cost[T] = 1.0
    rows = _Rows()
    # load_d(S) <= T
    cols = [X + v for v in range(n) if tcol[v] > 0]
    coefs = [float(tcol[v]) for v in range(n) if tcol[v] > 0]
    for u in range(n):
        if g.succs[u]:
            if send[u] > 0:
                cols.append(S + u)
                coefs.append(float(send[u]) / scale)
            if recv[u] > 0:
                cols.append(R + u)
                coefs.append(float(recv[u]) / scale)
    rows.add([*cols, T], [*coefs, -1.0], -math.inf, 0.0)
    # W - t_min(S) <= (m - 1) T  <=>  -t_min(S) - (m - 1) T <= -W
    rows.add(
        [X + v for v in range(n)] + [T],
        [-float(tmin[v]) for v in range(n)] + [-(m - 1.0)],
        -math.inf,
        -float(tmin.sum()),
    )
    # sum_c y[v, c] = 1 - x_v: what the stage on d does not hold runs on the other devices
    for v in range(n if classes else 0):
        rows.add([X + v] + [Y + j * n + v for j in range(len(classes))], [1.0] * (1 + len(classes)), 1.0, 1.0)
    # sum_v t(v, c) y[v, c] <= (devices of c other than d) T: each of them computes at most T
    for j, (rep, members) in enumerate(classes):
        others = len(members) - int(d in members)
        tc = np.where(mask[:, rep], inst.time[:, rep], 0.0) / scale
        rows.add(
            [Y + j * n + v for v in range(n)] + [T], [float(tc[v]) for v in range(n)] + [-float(others)], -math.inf, 0.0
        )
    for u in range(n):
        for r in g.succs[u]:
            if send[u] > 0:
                rows.add([S + u, X + u, X + r], [1.0, -1.0, 1.0], 0.0, math.inf)  # s_u >= x_u - x_r
            if recv[u] > 0:
                rows.add([R + u, X + r, X + u], [1.0, -1.0, 1.0], 0.0, math.inf)  # r_u >= x_r - x_u
    for cls in inst.colocate_classes:
        ring = [int(v) for v in cls]
        for a, b in itertools.pairwise(ring):
            rows.add([X + a, X + b], [1.0, -1.0], 0.0, 0.0)
    if convex:
        for v in range(n):
            rows.add([A + v, X + v], [1.0, -1.0], 0.0, math.inf)  # a_v >= x_v
            rows.add([B + v, X + v], [1.0, -1.0], 0.0, math.inf)  # b_v >= x_v
            rows.add([X + v, A + v, B + v], [1.0, -1.0, -1.0], -1.0, math.inf)  # x_v >= a_v + b_v - 1
            for w in g.succs[v]:
                rows.add([A + w, A + v], [1.0, -1.0], 0.0, math.inf)  # a_w >= a_v
                rows.add([B + v, B + w], [1.0, -1.0], 0.0, math.inf)  # b_v >= b_w
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    # No "threads" option: once a process's HiGHS scheduler runs (another engine's solve), a
    # different thread count makes every later run fail at once.
    h.setOptionValue("time_limit", max(0.05, time_limit_s))
    # Tight tolerances keep the accepted points close to integral and feasible: with them the
    # relative SAFETY margin covers what a point within tolerance can take off the bound.
    h.setOptionValue("mip_feasibility_tolerance", 1e-9)
    h.setOptionValue("primal_feasibility_tolerance", 1e-9)
    h.addCols(
        ncols,
        cost,
        lower,
        upper,
        0,
        np.array([], dtype=np.int32),
        np.array([], dtype=np.int32),
        np.array([], dtype=float),
    )
    h.addRows(
        len(rows.lo),
        np.array(rows.lo),
        np.array(rows.hi),
        len(rows.idx),
        np.array(rows.starts, dtype=np.int32),
        np.array(rows.idx, dtype=np.int32),
        np.array(rows.val, dtype=float),
    )
    integral = [X + v for v in range(n)]
    h.changeColsIntegrality(
        len(integral), np.array(integral, dtype=np.int32), np.full(len(integral), highspy.HighsVarType.kInteger)
    )
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kInfeasible:
        return math.inf, True  # no stage holds the unit on d (the unit cannot run there)
    finished = status == highspy.HighsModelStatus.kOptimal
    dual = float(info.mip_dual_bound)
    if not math.isfinite(dual):
        return floor, finished
    return max(floor, dual * scale * (1 - SAFETY)), finished


def archer_bounds(
    inst: Instance, time_limit_s: float = 10.0, max_units: int = 8, packing_share: float = 0.4
) -> ArcherBounds | None:
    """The bounds of the module docstring and the packing bound of :mod:`solvers.packing_bound`
    (None where :func:`applies` says no).

    The packing program gets ``packing_share`` of the time first. The bottleneck-block MIP is then
    solved for up to ``max_units`` units, heaviest first by their own load (ties: the largest
    unit), each within half of the time left (the last within all of it); each unit's value is the
    least over the distinct devices that may hold it.
    """
    if applies(inst) is not None:
        return None
    t0 = time.perf_counter()
    comb = combinatorial_bound(inst)
    out = ArcherBounds(combinatorial=comb)
    if inst.graph.n > MAX_LAYERS or usable_devices(inst) < 2 or time_limit_s <= 0:
        out.seconds = time.perf_counter() - t0
        return out
    if packing_share > 0:
        from solvers.packing_bound import packing_bound

        pack = packing_bound(inst, packing_share * time_limit_s)
        out.packing, out.packing_heavy = pack.value, pack.heavy
    mask = inst.placement_mask
    devices = _distinct_devices(inst)
    convex = bool(inst.problem.constraints.contiguous or inst.problem.constraints.pipeline)
    scored = []
    for unit in _units(inst):
        allowed = [d for d in devices if mask[unit, d].all()]
        if allowed:
            own = min(_load(inst, set(unit), d, *devices[d]) for d in allowed)
            scored.append((own, len(unit), unit, allowed))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    chosen = scored[:max_units]
    scale = max(comb, 1e-30)
    best = -math.inf
    for i, (_, _, unit, allowed) in enumerate(chosen):
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.05:
            break
        # the units come heaviest first, and the first usually gives the bound: half of what is
        # left to each unit but the last
        share = left if i == len(chosen) - 1 else left / 2
        value = math.inf
        finished = True
        for j, d in enumerate(allowed):
            v, fin = _block_mip(inst, unit, d, *devices[d], convex, scale, 0.0, share / (len(allowed) - j))
            value = min(value, v)
            finished = finished and fin
        out.units_tried += 1
        out.units_finished += int(finished)
        if math.isfinite(value) and value > best:
            best, out.best_unit = value, tuple(unit)
    out.bottleneck = best
    out.seconds = time.perf_counter() - t0
    return out


def engine_bound(inst: Instance, time_limit_s: float | None, raw: dict[str, object]) -> ArcherBounds | None:
    """The bounds for an exact engine's run (``raw["archer"]`` false: None).

    The MIP relaxations get ``raw["archer_time_s"]`` seconds (default 25% of the engine's limit,
    at most 20 s; 5 s without a limit), taken from the engine's limit.
    """
    if not raw.get("archer", True) or applies(inst) is not None:
        return None
    if "archer_time_s" in raw:
        budget = float(raw["archer_time_s"])  # type: ignore[arg-type]
    else:
        budget = 5.0 if time_limit_s is None else min(20.0, 0.25 * time_limit_s)
    return archer_bounds(inst, time_limit_s=budget, max_units=4)


def pipeline_start(inst: Instance, time_limit_s: float) -> tuple[IntArray, float] | None:
    """``pipeline-dp``'s best pipeline (as a heuristic where the instance asks for no pipeline) and
    its evaluated period, for an exact engine to start from (None where the DP does not apply or
    finds nothing feasible)."""
    from solvers.registry import get_solver, names
    from solvers.result import Status

    if applies(inst) is not None or "pipeline-dp" not in names():
        return None
    raw = {"heuristic": not inst.problem.constraints.pipeline, "bound": False, "finish": False}
    try:
        res = get_solver("pipeline-dp").solve(inst, SolverOptions(time_limit_s=max(0.1, time_limit_s), raw=raw))
    except Exception:  # an instance the DP refuses just gives no start
        return None
    if res.status not in (Status.OPTIMAL, Status.FEASIBLE) or not res.placement or res.objective is None:
        return None
    return inst.placement_indices(res.placement), float(res.objective)


def combine(own: float, extra: ArcherBounds | None, engine: str) -> tuple[float, str]:
    """The larger of an engine's own proven bound and the Archer bounds, and which one it is."""
    if extra is None or not extra.best > own:
        return own, engine
    return extra.best, extra.source
