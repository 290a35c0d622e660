"""``auto``: choose the fastest exact method whose capabilities match the problem.

The candidates are tried in order; the first registered, available, exact solver whose declared
capabilities cover the instance is used, and the Result records which one and why.
"""

from __future__ import annotations

import time

from formulation.model import Instance
from solvers.base import RawSolution, Solver
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Result

#: (solver name, why it is preferred) in order of preference: polynomial special cases first,
#: then the general exact engines, then enumeration for tiny cases.
CANDIDATES: list[tuple[str, str]] = [
    ("shortest-path", "chain with an objective additive over layers and transfers: shortest path, O(n k^2)"),
    ("mincut", "DAG on two devices with an objective additive over layers and transfers: minimum cut"),
    ("scan", "chain on two devices whose feasible placements have one cut at most: every cut scanned, O(n^2)"),
    ("dp", "chain with contiguous stages on distinct devices: DP over layers and device subsets"),
    ("highs", "general problem: MILP with HiGHS"),
    ("cpsat", "general problem: CP-SAT"),
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


def candidates(inst: Instance) -> list[tuple[str, str]]:
    """:data:`CANDIDATES` in the order for ``inst``: ``cpsat`` before ``highs`` where
    :func:`prefers_cpsat` says so."""
    if not prefers_cpsat(inst):
        return CANDIDATES
    out = [c for c in CANDIDATES if c[0] != "cpsat"]
    at = next((i for i, (name, _) in enumerate(out) if name == "highs"), len(out))
    return [*out[:at], ("cpsat", CPSAT_FIRST), *out[at:]]


class AutoSolver(Solver):
    """The default solver: dispatch to the fastest exact method that covers the instance."""

    name = "auto"
    exact = True
    supported_options = frozenset({"time_limit_s", "gap", "threads", "seed", "warm_start", "raw"})
    description = "picks the fastest exact method whose capabilities match the problem"

    def choose(self, inst: Instance, options: SolverOptions) -> tuple[Solver, str]:
        """The solver to use and the reason.

        Raises
        ------
        UnsupportedProblem
            When no registered exact solver covers the instance.
        """
        from solvers.registry import get_solver, names

        registered = set(names())
        refused = []
        for name, why in candidates(inst):
            if name not in registered:
                continue
            try:
                solver = get_solver(name)
                solver.check(inst, options)
            except Exception as exc:
                refused.append(f"{name}: {exc}")
                continue
            return solver, why
        raise UnsupportedProblem(f"no exact solver covers instance {inst.name!r}:\n  " + "\n  ".join(refused))

    def check(self, inst: Instance, options: SolverOptions) -> None:
        self.choose(inst, options)

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:  # pragma: no cover
        raise NotImplementedError("AutoSolver.solve dispatches to the chosen solver")

    def solve(self, inst: Instance, options: SolverOptions | None = None) -> Result:
        """Choose a method, solve with it, and record the choice."""
        options = options or SolverOptions()
        t0 = time.perf_counter()
        solver, why = self.choose(inst, options)
        res = solver.solve(inst, options)
        res.method = solver.name
        res.solver = self.name
        res.message = (f"auto chose {solver.name!r}: {why}. " + res.message).strip()
        res.wall_time_s = time.perf_counter() - t0
        return res
