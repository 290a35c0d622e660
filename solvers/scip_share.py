"""``scip-share``: version-2 workloads under ``share`` contention, solved exactly as a MINLP by SCIP.

The model (:mod:`solvers.share_minlp`) keeps the placement binary and the processor-sharing
fractions continuous; each request's time on a shared resource is the perspective ``q s >= z^2`` of
its binary work terms, a rotated second-order cone, so the continuous relaxation is convex and SCIP
(Bolusani et al., "The SCIP Optimization Suite 9.0", ZIB report 24-02, 2024) solves the problem to
global optimality by branch and bound with outer approximation; the deadlines of a ``sum``
aggregate, which the evaluator checks at the square-root-rule fractions, are non-convex and SCIP
branches spatially on them. SCIP's dual bound is the proven bound.

SCIP accepts a solution within its feasibility tolerance (1e-9 here, on time units of a
hundredth of the slowest request; a verdict "infeasible" is checked again at looser ones). Every
placement is judged by the evaluator; one that the evaluator refuses (a deadline, memory or
utilisation met only within that tolerance, or deadline demands that leave another request no
share) is cut off by a no-good cut and the model solved again, so the placement returned is feasible
for the evaluator and the bound stays valid (each cut removes only placements the evaluator refuses).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from formulation.evaluator.workload_eval import request_latencies, workload_metrics
from formulation.model import Instance
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination

#: SCIP's feasibility tolerance on the scaled model (time units of 1/100 of the slowest request);
#: tighter ones (1e-10) made SCIP declare feasible tiny instances infeasible.
FEAS_TOL = 1e-9
#: Feasibility tolerances of the first solve and of the solves after an LP failure or a verdict
#: "infeasible" (checked again at a looser tolerance, as the MILP backends do).
RETRIES = (FEAS_TOL, 1e-8, 1e-7)
#: Relative gap at which SCIP stops, as the MILP backends (a proven optimum: the base class allows 1e-6).
DEFAULT_GAP = 1e-7
#: How many placements the evaluator may refuse before the solve gives up (status error).
MAX_CUTS = 50


class ScipShare(Solver):
    """Exact MINLP (SCIP) of version-2 workloads under processor sharing."""

    name = "scip-share"
    exact = True
    capabilities = Capabilities(
        objectives=frozenset({"latency", "cost", "throughput", "energy", "weighted"}),
        metrics=frozenset({"latency", "cost", "throughput", "energy"}),
        constraints=frozenset({"memory", "memory_params", "allowed", "private", "max_devices", "energy_budget"}),
        workload=frozenset({"share", "routing"}),
        note="version 2, share: latency (sum or max), cost, throughput, energy without idle power",
    )
    supported_options = frozenset({"time_limit_s", "threads", "seed", "gap"})
    description = "version-2 share contention as a MINLP solved by SCIP (convex relaxation), exact"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import pyscipopt  # noqa: F401
        except ImportError as exc:  # pragma: no cover - pyscipopt is a dependency
            return False, f"pyscipopt is not installed ({exc})"
        return True, ""

    @classmethod
    def version(cls) -> str:
        import pyscipopt

        return f"SCIP {pyscipopt.Model().version()} (pyscipopt {pyscipopt.__version__})"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        from solvers.share_minlp import share_problems

        why = share_problems(inst)
        if why:
            raise UnsupportedProblem(f"solver 'scip-share' cannot solve instance {inst.name!r}: " + "; ".join(why))

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:

        t0 = time.perf_counter()
        if _private_endpoint(inst):
            return RawSolution(Termination.INFEASIBLE, message="a private input or output on an untrusted endpoint")
        forbidden: list[np.ndarray] = []
        build = 0.0
        log = []
        start = _start(inst)
        while True:
            sm, status, note, tb = _optimize(lambda: _model(inst, forbidden, start), options, t0)
            build += tb
            log.append(note)
            if sm is None:
                return RawSolution(Termination.ERROR, build_time_s=build, log="".join(log), message=status)
            m = sm.m
            scale = sm.obj_scale
            dual = float(m.getDualbound())
            bound = dual * scale if abs(dual) < m.infinity() else -math.inf
            if m.getNSols() == 0:
                term = Termination.INFEASIBLE if status == "infeasible" else _termination(status, options)
                return RawSolution(term, bound=bound if term != Termination.INFEASIBLE else -math.inf,
                                   build_time_s=build, solve_time_s=time.perf_counter() - t0 - build,
                                   log="".join(log), message=f"SCIP status {status}")
            sol = m.getBestSol()
            P = sm.placement(sol)
            wm = workload_metrics(inst, P)
            lat = request_latencies(wm)
            if not wm.violations(lat.latency) and math.isfinite(wm.objective(lat.latency)):
                break
            forbidden.append(P)
            log.append(f"placement refused by the evaluator ({sorted(wm.violations(lat.latency))}); cut off\n")
            if len(forbidden) > MAX_CUTS:
                return RawSolution(Termination.ERROR, build_time_s=build, log="".join(log),
                                   message=f"the evaluator refused {MAX_CUTS} placements SCIP accepted")
        return RawSolution(
            _termination(status, options, m),
            placement=P,
            solver_objective=float(m.getSolObjVal(sol)) * scale,
            bound=bound,
            build_time_s=build,
            solve_time_s=time.perf_counter() - t0 - build,
            log="".join(log),
            method="scip-share (MINLP)",
            extra={"nodes": m.getNNodes(), "no_good_cuts": len(forbidden), "unit_s": sm.unit,
                   "shared_pairs": len(sm.share)},
        )


def _optimize(build: Callable[[], Any], options: SolverOptions, t0: float) -> tuple[Any, str, str, float]:
    """Build and solve the model: ``(model, SCIP status, log note, build seconds)``, the model None
    (and the status why) when SCIP failed.

    SoPlex may stop with "error in LP solver" on a badly scaled node LP, and a tolerance too tight for
    the cones' outer approximation may cut off every placement: after either the model is built again
    and solved with a looser feasibility tolerance and another random seed (:data:`RETRIES`);
    "infeasible" stands only when every tolerance says so."""
    note = ""
    spent = 0.0
    for n, feastol in enumerate(RETRIES):
        tb = time.perf_counter()
        sm = build()
        spent += time.perf_counter() - tb
        m = sm.m
        m.hideOutput(not options.verbose)
        m.setParam("numerics/feastol", feastol)
        m.setParam("limits/gap", float(options.gap) if options.gap is not None else DEFAULT_GAP)
        m.setParam("limits/absgap", 0.0)
        if options.time_limit_s:
            left = options.time_limit_s - (time.perf_counter() - t0)
            m.setParam("limits/time", max(left, 1e-3))
        m.setParam("randomization/randomseedshift", (int(options.seed or 0) + n) % 2**31)
        if options.threads:
            m.setParam("parallel/maxnthreads", int(options.threads))
        try:
            m.optimize()
        except Exception as exc:  # pyscipopt raises a bare Exception on SCIP's error codes
            note += f"SCIP failed at feasibility tolerance {feastol:g} ({exc}); solved again\n"
            continue
        status = m.getStatus()
        if status == "infeasible" and n + 1 < len(RETRIES):
            note += f"infeasible at feasibility tolerance {feastol:g}; checked again\n"
            continue
        return sm, status, note, spent
    return None, f"SCIP failed {len(RETRIES)} times: {note.strip()}", note, spent


def _termination(status: str, options: SolverOptions, m: Any = None) -> Termination:
    """SCIP's status as a termination; ``gaplimit`` at the default gap is a proven optimum (as HiGHS's
    ``kOptimal`` at its relative gap), the base class checking the gap again against the bound."""
    if status == "gaplimit" and (options.gap is None or (m is not None and float(m.getGap()) <= 1e-6)):
        return Termination.OPTIMAL
    return {
        "optimal": Termination.OPTIMAL,
        "infeasible": Termination.INFEASIBLE,
        "timelimit": Termination.TIME_LIMIT,
        "gaplimit": Termination.GAP_LIMIT,
        "userinterrupt": Termination.INTERRUPTED,
        "unbounded": Termination.UNBOUNDED,
    }.get(status, Termination.ERROR)


def _start(inst: Instance) -> tuple[np.ndarray, np.ndarray] | None:
    """The best placement the evaluator accepts among three quick ones — each request on its source,
    each on the fastest device it reaches, HEFT's — with its fractions ``(R, k + k k)``, or None.

    SCIP's first incumbent: without one, on workloads of tens of layers per request SCIP spent most
    of its time in diving heuristics looking for one (4 users of AlexNet: 45 s, with it 8 s)."""
    from solvers.baselines import _offload_requests
    from solvers.heft_workload import solve_workload

    wl = inst.workload
    assert wl is not None
    local = np.array([wl.requests[int(r)].source for r in wl.request_of_layer], dtype=np.int64)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for P in (local, _offload_requests(inst).placement, solve_workload(inst).placement):
        if P is None:
            continue
        P = np.asarray(P, dtype=np.int64)
        wm = workload_metrics(inst, P)
        lat = request_latencies(wm)
        value = wm.value(lat.latency)
        if math.isfinite(value) and lat.shares is not None and (best is None or value < best[0]):
            R = len(wl.requests)
            S = np.concatenate([lat.shares.device, lat.shares.channel.reshape(R, -1)], axis=1)
            best = (value, P, S)
    return None if best is None else (best[1], best[2])


def _model(inst: Instance, forbidden: list[np.ndarray], start: tuple[np.ndarray, np.ndarray] | None) -> Any:
    """The MINLP with the starting solution, unless the evaluator refused that placement before."""
    from solvers.share_minlp import ShareModel

    sm = ShareModel(inst, forbidden)
    if start is not None and not any((start[0] == P).all() for P in forbidden):
        sm.add_start(*start)
    return sm


def _private_endpoint(inst: Instance) -> bool:
    """A private model input on an untrusted source or a private output sent to an untrusted sink
    (§9.7): no placement is feasible."""
    wl = inst.workload
    assert wl is not None
    priv, trusted = inst.private_tensors, inst.system.trusted
    return any(
        (any(priv[t] for t in r.inputs) and not trusted[r.source])
        or (r.sink is not None and not trusted[r.sink] and any(priv[o] for o in r.outputs))
        for r in wl.requests
    )
