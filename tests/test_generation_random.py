"""Every exact solver that declares generation requests (docs/instance-format.md §9.10) against brute
force on the seeded random tiny instances of tests/random_generation.py.

Default suite: 200 seeds under ``none`` (every objective, rates, memory with the key/value cache,
rooflines, deadlines, relayed routes), each solved by ``brute`` and by every registered exact solver
whose ``workload`` capability has ``generation`` and that accepts the instance (``highs``, ``scip``,
``cpsat-v2``; ``cpsat-v2`` also on the seed's latency twin, since it models the latency alone), and
12 seeds under ``share`` (brute force alone is exact there). The optimum must agree within 1e-6
relative (infeasible with infeasible), the bound must not pass it, and the result's time to first
token, time per output token and total of every generation must be the evaluator's for the reported
placement. The heuristics that declare generations (``local``, ``local-search``) must never beat
brute force. The chain solvers on one generation request: tests/test_generation_chain.py.
``-m slow``: 600 more seeds.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.model import Instance
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.registry import get_solver, names, solve
from solvers.result import Result, Status
from tests.random_generation import random_generation

CHUNK = 25
OPTIONS = SolverOptions(time_limit_s=60)
FIGURES = ("ttft_s", "tpot_s", "total_s")


def _declaring(exact: bool) -> list[str]:
    out = []
    for name in names():
        solver = get_solver(name)
        if name not in ("brute", "auto") and solver.exact == exact and "generation" in solver.capabilities.workload:
            out.append(name)
    return out


EXACT = _declaring(True)
HEURISTICS = _declaring(False)


def _accepts(name: str, inst: Instance) -> bool:
    try:
        get_solver(name).check(inst, OPTIONS)
    except UnsupportedProblem:
        return False
    return True


def _generations(res: Result) -> dict[str, dict[str, Any]]:
    assert res.metrics is not None
    reqs = res.metrics.workload["requests"]
    return {rid: e["generation"] for rid, e in reqs.items() if e.get("generation")}


def _check_figures(inst: Instance, res: Result, where: str) -> None:
    """The result's TTFT, TPOT and total are the evaluator's for its placement (and consistent)."""
    ev = evaluate(inst, res.placement)
    ours, theirs = _generations(res), {rid: e["generation"] for rid, e in ev.workload["requests"].items()
                                       if e.get("generation")}
    assert ours.keys() == theirs.keys() and ours, where
    for rid, g in ours.items():
        for key in FIGURES:
            assert g[key] == pytest.approx(theirs[rid][key], rel=1e-12, abs=1e-15), (where, rid, key)
        if math.isfinite(g["total_s"]):
            assert g["total_s"] == pytest.approx(g["ttft_s"] + g["decode_steps"] * g["tpot_s"], rel=1e-9), where
            assert g["ttft_s"] <= g["total_s"], where


def _agree(inst: Instance, ref: Result, name: str) -> None:
    res = solve(inst, name, OPTIONS)
    where = f"{name} on {inst.name} ({inst.problem.objective.kind})"
    assert res.status != Status.ERROR, (where, res.message)
    if ref.status == Status.INFEASIBLE:
        assert res.status == Status.INFEASIBLE, (where, res.status, res.objective, res.message)
        return
    assert ref.status == Status.OPTIMAL and res.status == Status.OPTIMAL, (where, res.status, res.message)
    assert ref.objective is not None and res.objective is not None
    assert res.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9), where
    assert res.bound <= ref.objective * (1 + 1e-9) + 1e-12, where
    ev = evaluate(inst, res.placement)  # the evaluator is the judge
    assert ev.feasible and ev.objective == pytest.approx(res.objective, rel=1e-12), where
    _check_figures(inst, res, where)


def latency_twin(data: dict[str, Any]) -> dict[str, Any]:
    """The instance with the latency objective, integer weights and no rates (what ``cpsat-v2`` models)."""
    d = copy.deepcopy(data)
    d["name"] += "-latency"
    d["problem"]["objective"] = "latency"
    for r in d["workload"]:
        r.pop("rate", None)
        r["weight"] = math.ceil(r.get("weight", 1))
    return d


def check_seed(seed: int, contention: str) -> int:
    """Brute force against every exact solver (and the heuristics) on the seed; returns how many
    exact solvers ran."""
    data = random_generation(seed, contention)
    ran = 0
    for d in (data, latency_twin(data)):
        inst = load_instance_data(d)
        twin = d is not data
        solvers = [s for s in EXACT if _accepts(s, inst) and not (twin and _accepts(s, load_instance_data(data)))]
        if twin and not solvers:
            break
        ref = solve(inst, "brute")
        assert ref.status in (Status.OPTIMAL, Status.INFEASIBLE), ref.message
        if ref.status == Status.OPTIMAL:
            _check_figures(inst, ref, f"brute on {inst.name}")
            for h in HEURISTICS:
                if _accepts(h, inst):
                    res = solve(inst, h, OPTIONS)
                    assert res.status != Status.ERROR, (h, inst.name, res.message)
                    if res.status in (Status.OPTIMAL, Status.FEASIBLE):
                        assert ref.objective is not None and res.objective is not None
                        assert res.objective >= ref.objective * (1 - 1e-9) - 1e-12, (h, inst.name)
        for s in solvers:
            _agree(inst, ref, s)
            ran += 1
    return ran


def test_the_exact_solvers_are_those_declaring_generations() -> None:
    assert {"highs", "scip", "cpsat-v2"} <= set(EXACT)
    assert {"local", "local-search"} <= set(HEURISTICS)


@pytest.mark.parametrize("chunk", range(200 // CHUNK))
def test_exact_solvers_equal_brute_on_generations(chunk: int) -> None:
    ran = [check_seed(seed, "none") for seed in range(chunk * CHUNK, (chunk + 1) * CHUNK)]
    assert min(ran) >= 1  # every seed is solved by some exact solver besides brute force


def test_exact_solvers_cover_every_objective() -> None:
    kinds = {}
    for seed in range(CHUNK):
        d = random_generation(seed)
        obj = d["problem"]["objective"]
        kinds[obj if isinstance(obj, str) else "weighted"] = seed
    assert set(kinds) == {"latency", "energy", "cost", "throughput", "weighted"}


def test_share_generations_brute_against_the_evaluator() -> None:
    for seed in range(12):
        check_seed(seed, "share")


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(600 // CHUNK))
def test_exact_solvers_equal_brute_on_generations_many(chunk: int) -> None:
    for seed in range(200 + chunk * CHUNK, 200 + (chunk + 1) * CHUNK):
        check_seed(seed, "none")
