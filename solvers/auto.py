"""``auto``: choose the fastest exact method whose capabilities match the problem.

The candidates are tried in order; the first registered, available, exact solver whose declared
capabilities cover the instance is used, and the Result records which one and why.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

from formulation.model import Instance
from solvers.base import RawSolution, Solver
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Result, Status, Termination

#: (solver name, why it is preferred) in order of preference: polynomial special cases first,
#: then the general exact engines, then enumeration for tiny cases.
CANDIDATES: list[tuple[str, str]] = [
    ("shortest-path", "chain with an objective additive over layers and transfers: shortest path, O(n k^2)"),
    ("mincut", "DAG on two devices with an objective additive over layers and transfers: minimum cut"),
    ("scan", "chain on two devices whose feasible placements have one cut at most: every cut scanned, O(n^2)"),
    ("dp", "chain with contiguous stages on distinct devices: DP over layers and device subsets"),
    ("highs", "general problem: MILP with HiGHS"),
    ("cpsat", "general problem: CP-SAT"),
    ("scip", "general problem: MILP with SCIP"),
    ("tang", "users sharing one edge server, min-max latency (version 2): bisection on the level, polynomial"),
    ("scip-share", "version-2 workload under share beyond one edge server: MINLP with SCIP"),
    ("cpsat-v2", "version-2 workload under none or schedule: CP-SAT"),
    ("brute", "tiny instance: exhaustive enumeration"),
]

#: Why CP-SAT goes before the MILP for the problem classes of :func:`prefers_cpsat`.
CPSAT_FIRST = (
    "parallel latency or throughput: CP-SAT (interval scheduling, min-max), faster than the MILP in benchmarks/cpsat.py"
)


def prefers_cpsat(inst: Instance) -> bool:
    """True for the problem classes where CP-SAT beat the MILP (benchmarks/README.md, "cpsat").

    Parallel latency (the objective weighs latency, or a deadline binds the makespan) and pure
    throughput: on DAGs of 20-200 layers on 2-8 devices CP-SAT proved most optima in seconds
    where HiGHS hit the 60 s limit. Other classes keep the MILP first.
    """
    p = inst.problem
    terms = {m for m, w in p.objective.terms().items() if w}
    if terms == {"throughput"}:
        return True
    return p.execution == "parallel" and ("latency" in terms or p.constraints.deadline_s is not None)


#: Version-2 engines tried before the MILP on version-2 workloads (:func:`candidates`).
V2_FIRST = ("tang", "scip-share", "cpsat-v2")


#: Why ``pipeline-dp`` goes before the general engines (:func:`candidates`).
PIPELINE_DP_FIRST = "pipeline stages of a DAG whose period the DP's stage values give exactly: DP over down-sets"


def candidates(inst: Instance) -> list[tuple[str, str]]:
    """:data:`CANDIDATES` in the order for ``inst``: ``cpsat`` before ``highs`` where
    :func:`prefers_cpsat` says so; ``pipeline-dp`` before both on ``pipeline`` instances where its
    answer is always proven (:func:`solvers.pipeline_dp.exactness_problem`); on version-2 workloads
    the engines made for them (``tang``, ``scip-share``, ``cpsat-v2``) before the MILP, which then takes what they
    refuse (energy, cost, utilisation, rates: :mod:`solvers.milp.workload`)."""
    base = CANDIDATES
    if inst.workload is not None:
        own = [c for c in base if c[0] in V2_FIRST]
        rest = [c for c in base if c[0] not in V2_FIRST]
        at = next((i for i, (name, _) in enumerate(rest) if name == "highs"), len(rest))
        return [*rest[:at], *own, *rest[at:]]
    if inst.problem.constraints.pipeline:
        from solvers.pipeline_dp import exactness_problem

        if exactness_problem(inst) is None:
            at = next((i for i, (name, _) in enumerate(base) if name == "highs"), len(base))
            base = [*base[:at], ("pipeline-dp", PIPELINE_DP_FIRST), *base[at:]]
    if not prefers_cpsat(inst):
        return base
    out = [c for c in base if c[0] != "cpsat"]
    at = next((i for i, (name, _) in enumerate(out) if name == "highs"), len(out))
    return [*out[:at], ("cpsat", CPSAT_FIRST), *out[at:]]


class AutoSolver(Solver):
    """The default solver: dispatch to the fastest exact method that covers the instance."""

    name = "auto"
    exact = True
    supported_options = frozenset({"time_limit_s", "gap", "threads", "seed", "warm_start", "raw"})
    description = "picks the fastest exact method whose capabilities match the problem"

    def applicable(self, inst: Instance, options: SolverOptions) -> tuple[list[tuple[Solver, str]], list[str]]:
        """Every registered exact solver that covers ``inst``, in preference order, with the reason;
        and the refusals (``"name: why"``) of the others."""
        refused: list[str] = []
        out = list(self._each_applicable(inst, options, refused))
        return out, refused

    def _each_applicable(
        self, inst: Instance, options: SolverOptions, refused: list[str]
    ) -> Iterator[tuple[Solver, str]]:
        """:meth:`applicable` one candidate at a time, checked only when the previous one is left
        (a check may import a solver library, which costs seconds); refusals go to ``refused``."""
        from solvers.registry import get_solver, names

        options = portfolio_mode(options)[1]
        registered = set(names())
        for name, why in candidates(inst):
            if name not in registered:
                continue
            try:
                solver = get_solver(name)
                solver.check(inst, options)
            except Exception as exc:
                refused.append(f"{name}: {exc}")
                continue
            yield solver, why

    def choose(self, inst: Instance, options: SolverOptions) -> tuple[Solver, str]:
        """The solver to use first and the reason.

        Raises
        ------
        UnsupportedProblem
            When no registered exact solver covers the instance.
        """
        refused: list[str] = []
        for first in self._each_applicable(inst, options, refused):
            return first
        raise UnsupportedProblem(f"no exact solver covers instance {inst.name!r}:\n  " + "\n  ".join(refused))

    def check(self, inst: Instance, options: SolverOptions) -> None:
        self.choose(inst, options)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:  # pragma: no cover
        raise NotImplementedError("AutoSolver.solve dispatches to the chosen solver")

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """Solve with the first applicable method; fall back to the next one when it fails.

        A method is left when its result is an error (a backend failure, an objective the
        evaluator contradicts, a non-finite objective), when it stopped at an internal limit
        (iteration limit, interruption) or claimed optimality it could not prove
        (:func:`leave_reason`). ``result.extra["tried"]`` lists each method left and why; a time
        limit is shared: each fallback gets what the earlier ones left. With ``raw={"portfolio": true}``
        the general exact engines run in parallel instead (:mod:`solvers.portfolio`, :func:`_portfolio`).
        """
        options = options or SolverOptions()
        t0 = time.perf_counter()
        use_portfolio, options = portfolio_mode(options)
        refused: list[str] = []
        tried: list[dict[str, str]] = []
        kept: Result | None = None
        chain: Iterable[tuple[Solver, str]] = self._each_applicable(inst, options, refused)
        if use_portfolio:
            everything = list(chain)
            if not everything:
                raise UnsupportedProblem(f"no exact solver covers instance {inst.name!r}:\n  " + "\n  ".join(refused))
            _note_refusals(refused, tried)
            kept, chain = _portfolio(inst, everything, options, tried)
        for i, (solver, why) in enumerate(chain):
            _note_refusals(refused, tried)
            opts = options
            if options.time_limit_s is not None:
                left = options.time_limit_s - (time.perf_counter() - t0)
                if left <= 0 and i > 0:
                    break
                opts = replace(options, time_limit_s=max(left, 1e-3))
            res = solver.solve(inst, opts)
            reason = leave_reason(res)
            res.method = solver.name
            res.solver = self.name
            res.message = (f"auto chose {solver.name!r}: {why}. " + res.message).strip()
            if kept is None or _better(res, kept):
                kept = res
            if reason is None:
                kept = res
                break
            tried.append({"solver": solver.name, "reason": reason})
        _note_refusals(refused, tried)
        if kept is None:
            raise UnsupportedProblem(f"no exact solver covers instance {inst.name!r}:\n  " + "\n  ".join(refused))
        left_names = [t["solver"] for t in tried if not t["reason"].startswith("refused")]
        if left_names and kept.method not in left_names:
            kept.message += (
                " (after leaving "
                + "; ".join(f"{t['solver']!r}: {t['reason']}" for t in tried if t["solver"] in left_names)
                + ")"
            )
        kept.extra["tried"] = tried
        kept.wall_time_s = time.perf_counter() - t0
        return kept


#: Words of :class:`formulation.numerics.NumericallyUnsafe` messages, to list such refusals as tried.
NUMERIC_REFUSAL = "outside the range"


def _note_refusals(refused: list[str], tried: list[dict[str, str]]) -> None:
    """Move the numeric-range refusals of ``refused`` (``"name: why"``) to ``tried``, once each."""
    for r in refused:
        if NUMERIC_REFUSAL in r:
            name, _, why = r.partition(":")
            entry = {"solver": name, "reason": "refused: " + why.strip()}
            if entry not in tried:
                tried.append(entry)


#: Terminations that mean an engine stopped at one of its own limits, not the user's.
_INTERNAL_LIMITS = frozenset(
    {Termination.ITERATION_LIMIT, Termination.INTERRUPTED, Termination.ERROR, Termination.UNBOUNDED}
)


def leave_reason(res: Result) -> str | None:
    """Why ``auto`` leaves this result for the next method, or ``None`` to keep it."""
    if res.status == Status.ERROR:
        return "error: " + (res.message or res.termination.value)
    if res.status == Status.OPTIMAL and (res.objective is None or not math.isfinite(res.objective)):
        return f"non-finite objective {res.objective!r}"
    if res.termination in _INTERNAL_LIMITS:
        return f"stopped at an internal limit ({res.termination.value})"
    if res.status == Status.FEASIBLE and res.termination == Termination.OPTIMAL:
        return f"claimed optimality it could not prove (gap {res.gap:.3g})"
    if res.status == Status.FEASIBLE and res.termination == Termination.COMPLETED:
        return f"ended without a proof of optimality (gap {res.gap:.3g})"
    return None


def _better(a: Result, b: Result) -> bool:
    """``a`` holds a better answer than ``b`` (a solution beats none; lower objective, then gap)."""
    if a.has_solution != b.has_solution:
        return a.has_solution
    if not a.has_solution:
        return b.status == Status.ERROR and a.status != Status.ERROR
    return (a.objective or math.inf, a.gap) < (b.objective or math.inf, b.gap)


#: Raw option of ``auto``: ``true`` runs the general exact engines as a parallel portfolio
#: (:mod:`solvers.portfolio`), ``"auto"`` does so on machines with at least 4 cores, ``false``
#: (default) tries them one after another.
PORTFOLIO_KEY = "portfolio"


def portfolio_mode(options: SolverOptions) -> tuple[bool, SolverOptions]:
    """Whether ``options`` ask for the portfolio, and the options without that key (the engines
    do not take it).

    Raises
    ------
    UnsupportedProblem
        On a value other than true, false or "auto".
    """
    if PORTFOLIO_KEY not in options.raw:
        return False, options
    value = options.raw[PORTFOLIO_KEY]
    if value not in (True, False, "auto"):
        raise UnsupportedProblem(f"solver 'auto': raw option portfolio={value!r}; expected true, false or \"auto\"")
    raw = {k: v for k, v in options.raw.items() if k != PORTFOLIO_KEY}
    on = value is True or (value == "auto" and (os.cpu_count() or 1) >= 4)
    return on, replace(options, raw=raw)


def _portfolio(
    inst: Instance, chain: list[tuple[Solver, str]], options: SolverOptions, tried: list[dict[str, str]]
) -> tuple[Result | None, list[tuple[Solver, str]]]:
    """Run the applicable general engines in parallel when no special-case method applies.

    Returns the portfolio's result and what is left of ``chain`` to try after it: nothing when the
    result is kept, the methods outside the portfolio (``brute``) otherwise.
    """
    from solvers.portfolio import ENGINES, run_portfolio

    engines = [s.name for s, _ in chain if s.name in ENGINES]
    if not chain or chain[0][0].name not in ENGINES or len(engines) < 2:
        return None, chain
    res, rows = run_portfolio(inst, engines, options)
    if res is None:
        tried.extend({"solver": r["solver"], "reason": r.get("message", r["status"])} for r in rows)
        return None, chain
    winner = res.solver
    res.method = winner
    res.solver = "auto"
    res.message = (
        f"auto ran the portfolio {', '.join(engines)} in parallel; {winner!r} gave the answer. " + res.message
    ).strip()
    res.extra["portfolio"] = rows
    reason = leave_reason(res)
    rest = [] if reason is None else [c for c in chain if c[0].name not in ENGINES]
    if reason is not None:
        tried.append({"solver": "portfolio", "reason": reason})
    return res, rest
