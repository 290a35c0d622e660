"""A parallel portfolio of the general exact engines (``highs``, ``cpsat``, ``scip``) for ``auto``.

Each engine solves the same instance in its own process; the first proof (optimal or infeasible)
wins and the others are stopped. When no engine proves its answer within the time limit, the best
placement found is kept and its bound is the largest bound any engine proved: every engine's bound
is a lower bound on the same optimum, so the largest is one too, and the gap comes from the one
gap function (:func:`solvers.result.compute_gap`). Portfolios of differently-built solvers
running side by side are a classic way to use several cores on hard combinatorial problems
(Gomes and Selman, "Algorithm portfolios", Artificial Intelligence 126, 2001).

``result.extra["portfolio"]`` lists every engine with its status, objective, bound and seconds
(``stopped`` for an engine ended by another's proof; its bound is then unknown). Each engine gets
``max(1, cpu_count // engines)`` threads unless the options set a number. ``benchmarks/engines.py``
measures whether the portfolio pays on a given machine.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import time
from dataclasses import replace
from typing import Any

from formulation.model import Instance
from solvers.options import SolverOptions
from solvers.result import Result, Status, compute_gap

#: The engines a portfolio may run, among the applicable ones.
ENGINES = ("highs", "cpsat", "scip")
#: Seconds given to a process to start and to report after its time limit before it is ended.
GRACE_S = 30.0
#: Gap below which a combined bound proves the best placement optimal (as in :mod:`solvers.base`).
PROOF_GAP = 1e-6


def _solve_one(name: str, inst: Instance, options: SolverOptions, out: Any) -> None:
    """Child process: solve with engine ``name`` and put ``(name, result or error text)`` on ``out``."""
    try:
        from solvers.registry import get_solver

        res = get_solver(name).solve(inst, options)
        res.log = ""  # logs can be megabytes; the parent keeps statuses and bounds
        out.put((name, res))
    except BaseException as exc:
        out.put((name, f"{type(exc).__name__}: {exc}"))


def _context() -> Any:
    """``fork`` where the platform has it (no re-import per engine), else ``spawn``."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def proven(res: Result) -> bool:
    """The result is a proof: optimal, or infeasible."""
    return res.status in (Status.OPTIMAL, Status.INFEASIBLE)


def run_portfolio(
    inst: Instance, names: list[str], options: SolverOptions
) -> tuple[Result | None, list[dict[str, Any]]]:
    """Solve ``inst`` with the engines ``names`` in parallel processes (see the module docstring).

    Returns the chosen result (``None`` when every engine failed without a result) and one row per
    engine for ``result.extra["portfolio"]``.
    """
    threads = options.threads or max(1, (os.cpu_count() or 1) // max(1, len(names)))
    opts = replace(options, threads=threads)
    ctx = _context()
    out = ctx.Queue()
    t0 = time.perf_counter()
    procs = {n: ctx.Process(target=_solve_one, args=(n, inst, opts, out), daemon=True) for n in names}
    for p in procs.values():
        p.start()
    results: dict[str, Result] = {}
    rows: dict[str, dict[str, Any]] = {}
    deadline = math.inf if options.time_limit_s is None else t0 + options.time_limit_s + GRACE_S
    winner: str | None = None
    try:
        while len(rows) < len(names):
            wait = max(0.0, deadline - time.perf_counter()) if math.isfinite(deadline) else None
            try:
                name, got = out.get(timeout=wait)
            except queue.Empty:
                break
            sec = time.perf_counter() - t0
            if isinstance(got, Result):
                results[name] = got
                rows[name] = {
                    "solver": name,
                    "status": got.status.value,
                    "objective": got.objective,
                    "bound": got.bound,
                    "gap": got.gap,
                    "seconds": sec,
                }
                if proven(got):
                    winner = name
                    break
            else:
                rows[name] = {"solver": name, "status": "error", "message": got, "seconds": sec}
    finally:
        for n, p in procs.items():
            if p.is_alive():
                p.terminate()
                if n not in rows:
                    why = f"stopped after {winner!r}'s proof" if winner else "stopped at the time limit"
                    rows[n] = {"solver": n, "status": "stopped", "message": why, "bound": None}
        for p in procs.values():
            p.join(timeout=5)
        out.close()
    table = [rows[n] for n in names if n in rows]
    if winner is not None:
        return results[winner], table
    return _combine(results), table


def _combine(results: dict[str, Result]) -> Result | None:
    """The best placement found by any engine, with the largest bound any engine proved."""
    with_sol = [r for r in results.values() if r.has_solution and r.objective is not None]
    if not with_sol:
        clean = [r for r in results.values() if r.status != Status.ERROR]
        return clean[0] if clean else next(iter(results.values()), None)
    best = min(with_sol, key=lambda r: (r.objective, r.gap))
    bounds = [r.bound for r in results.values() if r.status != Status.ERROR and math.isfinite(r.bound)]
    bound = max(bounds, default=best.bound)
    assert best.objective is not None
    bound = min(bound, best.objective)
    gap = compute_gap(best.objective, bound)
    if gap < best.gap:
        best.bound, best.gap = bound, gap
        if best.status == Status.FEASIBLE and gap <= PROOF_GAP:
            best.status = Status.OPTIMAL
            best.message = (best.message + " " if best.message else "") + "optimality proven by another engine's bound"
    return best
