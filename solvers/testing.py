"""The shared conformance suite: small cases with hand-derived optima, for every registered solver.

Every case states its arithmetic. ``tests/test_conformance.py`` runs every registered solver on every
case its capabilities allow: exact solvers must find the optimum (status optimal, gap 0, or
infeasible where no placement is feasible); heuristics must return a feasible placement no better
than the optimum with a bound no larger than it, or report that they found none.

Systems used below
------------------
*Two-tier* ``m`` (mobile, 1 GFLOP/s, 2 W active, 0.5 W idle, trusted) and ``c`` (cloud,
10 GFLOP/s, 1 USD per busy second), one bidirectional link of 1 MB/s, 10 ms latency, tx 1 W,
rx 0.5 W, 1e-6 USD/B; source and sink ``m``.

*Chain* ``x`` (100 kB input) -> ``a`` (1 GFLOP, out 20 kB, params 1 MB) -> ``b`` (2 GFLOP, out
50 kB, params 3 MB) -> ``c`` (1 GFLOP, out 1 kB, params 1 MB). Times on m: 1, 2, 1 s; on c: 0.1,
0.2, 0.1 s. Transfer times (bytes / 1e6 + 0.01): x 0.11, a 0.03, b 0.06, c 0.011 s.

Sequential latency of all 8 placements (letters give the device of a, b, c)::

    mmm 4.0      ccc 0.11+0.4+0.011 = 0.521     mcc 1+0.03+0.3+0.011 = 1.341
    mmc 3+0.06+0.1+0.011 = 3.171                cmm 0.11+0.1+0.03+3 = 3.24
    ccm 0.11+0.3+0.06+1 = 1.47                  cmc 0.11+0.1+0.03+2+0.06+0.1+0.011 = 2.411
    mcm 1+0.03+0.2+0.06+1 = 2.29

Cost (cloud busy seconds + 1e-6 USD per byte moved)::

    mmm 0    ccc 0.4+0.101 = 0.501    mcc 0.3+0.021 = 0.321    mmc 0.1+0.051 = 0.151
    cmm 0.1+0.12 = 0.22    ccm 0.3+0.15 = 0.45    cmc 0.2+0.171 = 0.371    mcm 0.2+0.07 = 0.27
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from formulation.model import (
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)
from solvers.base import Solver
from solvers.options import SolverOptions, UnsupportedProblem
from solvers.result import Status

#: Relative tolerance when comparing objectives with the hand-derived optimum.
RTOL = 1e-6


@dataclass(frozen=True)
class Case:
    """One conformance case.

    Attributes
    ----------
    name : str
    build : callable
        Returns the Instance (built lazily so that importing this module is cheap).
    optimum : float or None
        The optimal objective; ``None`` when the instance is infeasible.
    why : str
        The hand derivation of the optimum.
    """

    name: str
    build: Callable[[], Instance]
    optimum: float | None
    why: str


def _two_tier(cloud_memory: float = math.inf) -> System:
    devices = [
        Device("m", 1e9, tier="end", power_active_w=2.0, power_idle_w=0.5, trusted=True),
        Device("c", 1e10, tier="cloud", price_usd_per_s=1.0, memory_bytes=cloud_memory),
    ]
    fig = {
        "bandwidth_bytes_per_s": 1e6,
        "latency_s": 0.01,
        "tx_power_w": 1.0,
        "rx_power_w": 0.5,
        "price_usd_per_byte": 1e-6,
    }
    return System(devices, [Link("m", "c", **fig), Link("c", "m", **fig)], "m", "m")


def _chain() -> Graph:
    return Graph(
        "chain3",
        [ModelInput("x", 1e5)],
        [
            Layer("a", "conv", ("x",), flops=1e9, output_bytes=2e4, param_bytes=1e6),
            Layer("b", "conv", ("a",), flops=2e9, output_bytes=5e4, param_bytes=3e6),
            Layer("c", "linear", ("b",), flops=1e9, output_bytes=1e3, param_bytes=1e6),
        ],
    )


def _diamond_system() -> System:
    devices = [
        Device("p", 1e9, power_active_w=1.0, power_idle_w=0.5, trusted=True),
        Device("q", 1e9),
    ]
    return System(devices, [Link("p", "q", 1e6), Link("q", "p", 1e6)], "p", "p")


def _diamond() -> Graph:
    return Graph(
        "diamond",
        [ModelInput("x", 1e3)],
        [
            Layer("a", "conv", ("x",), flops=1e9, output_bytes=1e5),
            Layer("b", "conv", ("a",), flops=2e9, output_bytes=1e5),
            Layer("c", "conv", ("a",), flops=2e9, output_bytes=1e5),
            Layer("d", "add", ("b", "c"), flops=1e8, output_bytes=1e3),
        ],
    )


def _two_chains_case(constraints: Constraints) -> Callable[[], Instance]:
    """Chains ``a1 -> a2`` (1 s, 3 s) and ``b1 -> b2`` (2 s, 4 s) on two identical 1 GFLOP/s devices
    ``p``, ``q`` whose communication does not overlap compute (``send_once``), 1 MB/s links; every
    tensor 1 kB (1 ms); the input ``x`` is empty; no sink."""
    g = Graph(
        "two-chains",
        [ModelInput("x", 0.0)],
        [
            Layer("a1", "fc", ("x",), flops=1e9, output_bytes=1e3),
            Layer("a2", "fc", ("a1",), flops=3e9, output_bytes=1e3),
            Layer("b1", "fc", ("x",), flops=2e9, output_bytes=1e3),
            Layer("b2", "fc", ("b1",), flops=4e9, output_bytes=1e3),
        ],
    )
    devs = [Device(d, 1e9, comm_overlap=False, send_once=True) for d in ("p", "q")]
    s = System(devs, [Link("p", "q", 1e6), Link("q", "p", 1e6)], "p", None)
    return lambda: Instance("two-chains", g, s, Problem(Objective("throughput"), constraints=constraints))


def _chain_case(problem: Problem, cloud_memory: float = math.inf) -> Callable[[], Instance]:
    return lambda: Instance("chain3", _chain(), _two_tier(cloud_memory), problem)


def _diamond_case(problem: Problem) -> Callable[[], Instance]:
    return lambda: Instance("diamond", _diamond(), _diamond_system(), problem)


SEQ = Problem()
PAR = Problem(execution="parallel")

CASES: list[Case] = [
    Case("chain-seq-latency", _chain_case(SEQ), 0.521, "ccc: 0.11 + 0.1 + 0.2 + 0.1 + 0.011 (table above)"),
    Case(
        "chain-energy-mobile",
        _chain_case(Problem(Objective("energy"), energy_scope=("m",))),
        0.3105,
        "ccc: m computes nothing; sends x (occupied 0.1 s, tx 1 W) = 0.1 J; receives c (0.001 s, "
        "rx 0.5 W) = 0.0005 J; idle 0.5 W * (0.521 - 0.101) = 0.21 J; total 0.3105 J. mcc costs "
        "2 + 0.02 + 0.0005 + 0.5 * 0.32 = 2.1805 J; every other placement computes >= 1 s on m.",
    ),
    Case(
        "chain-cost", _chain_case(Problem(Objective("cost"))), 0.0, "mmm: nothing on the cloud, nothing sent"
    ),
    Case(
        "chain-weighted-latency-cost",
        _chain_case(Problem(Objective("weighted", {"latency": 1.0, "cost": 5.0}))),
        2.946,
        "mcc: 1.341 + 5 * 0.321 = 2.946; ccc 0.521 + 5 * 0.501 = 3.026; mcm 2.29 + 1.35 = 3.64; "
        "the others are larger (tables above)",
    ),
    Case(
        "chain-throughput-memory",
        _chain_case(Problem(Objective("throughput")), cloud_memory=4.5e6),
        1.0,
        "ccc (period 0.4) needs 5 MB params + peak > 4.5 MB on c; mcc: c holds 4 MB + peak "
        "max(50k+20k, 1k+50k) = 4.07 MB, period max(m 1 s, c 0.3 s, links 0.02/0.001 s) = 1 s; "
        "no placement without ccc has a device busy < 1 s",
    ),
    Case(
        "chain-allowed",
        _chain_case(Problem(constraints=Constraints(allowed={"b": ("m",)}))),
        2.411,
        "b on m: mmm 4, cmc 2.411, mmc 3.171, cmm 3.24 -> cmc",
    ),
    Case(
        "chain-allowed-contiguous",
        _chain_case(Problem(constraints=Constraints(allowed={"b": ("m",)}, contiguous=True))),
        3.171,
        "as chain-allowed but cmc splits c's set {a, c} around b: mmc 3.171 is best",
    ),
    Case(
        "chain-private-layer",
        _chain_case(Problem(constraints=Constraints(private=("a",)))),
        3.171,
        "a's output may exist only on trusted m: a and its consumer b on m -> mmm 4 or mmc 3.171",
    ),
    Case(
        "chain-private-input",
        _chain_case(Problem(constraints=Constraints(private=("x",)))),
        1.341,
        "x may not leave m: a on m -> mcc 1.341 (mmm 4, mmc 3.171, mcm 2.29)",
    ),
    Case(
        "chain-max-devices-memory",
        _chain_case(Problem(constraints=Constraints(max_devices=1)), cloud_memory=4.5e6),
        4.0,
        "one device only and ccc does not fit on c: mmm 4.0",
    ),
    Case(
        "chain-cost-energy-budget",
        _chain_case(
            Problem(
                Objective("cost"), energy_scope=("m",), constraints=Constraints(energy_budget_j={"m": 2.5})
            )
        ),
        0.321,
        "E_m <= 2.5 J rules out every placement computing >= 2 s on m (>= 4 J) and mmm; left: ccc "
        "(0.501 USD, 0.3105 J), mcc (0.321 USD, 2.1805 J), ccm (0.45 USD, 2 + 0.1 + 0.025 + "
        "0.5 * (1.47 - 1 - 0.15) = 2.285 J) -> mcc",
    ),
    Case(
        "chain-deadline-infeasible",
        _chain_case(Problem(Objective("energy"), constraints=Constraints(deadline_s=0.5))),
        None,
        "the fastest placement (ccc) takes 0.521 s > 0.5 s",
    ),
    Case(
        "chain-energy-deadline-private",
        _chain_case(
            Problem(
                Objective("energy"),
                energy_scope=("m",),
                constraints=Constraints(deadline_s=1.4, private=("x",)),
            )
        ),
        2.1805,
        "x stays on m, so a runs on m; within 1.4 s only mcc (1.341 s) remains: 2 J compute + "
        "0.02 J sending a + 0.0005 J receiving c + 0.5 W * (1.341 - 1 - 0.021) s idle = 2.1805 J",
    ),
    Case(
        "chain-weighted-colocate",
        _chain_case(
            Problem(
                Objective("weighted", {"latency": 1.0, "cost": 5.0}), constraints=Constraints(colocate=(("a", "c"),))
            )
        ),
        3.026,
        "a and c on one device leaves mmm 4, ccc 0.521 + 5 * 0.501 = 3.026, mcm 2.29 + 5 * 0.27 = "
        "3.64, cmc 2.411 + 5 * 0.371 = 4.266 (tables above); the free optimum mcc (2.946) splits them",
    ),
    Case(
        "chain-throughput-memory-params",
        _chain_case(
            Problem(Objective("throughput"), constraints=Constraints(memory_model="params")), cloud_memory=5.02e6
        ),
        0.4,
        "weights only: ccc holds 1 + 3 + 1 = 5 MB <= 5.02 MB on c, period max(c 0.4 s, x over m->c "
        "0.1 s, c back 0.001 s) = 0.4 s (params + peak would need 5 MB + 120 kB and leave 1 s)",
    ),
    Case(
        "diamond-parallel-latency",
        _diamond_case(PAR),
        3.201,
        "a, b on q and c, d on p: x to q 0.001 s; a [0.001, 1.001]; a to p +0.1 -> c [1.101, 3.101]; "
        "b [1.001, 3.001] + 0.1 -> 3.101; d [3.101, 3.201] on the sink. Lower bound: the critical "
        "path a-b-d is 3.1 s of compute and either the input or a branch must cross the link",
    ),
    Case(
        "diamond-sequential-latency",
        _diamond_case(SEQ),
        5.1,
        "everything on p: 1 + 2 + 2 + 0.1 = 5.1 s; any use of q adds transfers and no speed",
    ),
    Case(
        "diamond-parallel-throughput",
        _diamond_case(Problem(Objective("throughput"), execution="parallel")),
        3.0,
        "5.1 s of compute over two equal devices: the best split of {1, 2, 2, 0.1} s is {a, b} vs "
        "{c, d} (3 s vs 2.1 s), links busy <= 0.2 s; no split has both loads < 3 s",
    ),
    Case(
        "diamond-parallel-energy",
        _diamond_case(Problem(Objective("energy"), execution="parallel", energy_scope=("p",))),
        2.55,
        "everything on q: p computes nothing and only idles (0.5 W) while x (1 kB, 0.001 s) goes "
        "out and d (0.001 s) comes back; L = 0.001 + 5.1 + 0.001 = 5.102 s; E_p = 0.5 * (5.102 - "
        "0.002) = 2.55 J. With no tx/rx power, E_p = 0.5 * compute_p + 0.5 * (L - comm_p) >= "
        "0.5 * (compute on p) + 0.5 * (critical path not on p) and every split ties at 2.55 or is worse",
    ),
    Case(
        "two-chains-throughput-contiguous",
        _two_chains_case(Constraints(contiguous=True)),
        5.002,
        "{a1, b2} on one device and {b1, a2} on the other: 1 + 4 = 2 + 3 = 5 s of compute, each sends one "
        "tensor and receives one (1 ms each); both sets are convex. Every other split has a set of >= 6 s",
    ),
    Case(
        "two-chains-throughput-pipeline",
        _two_chains_case(Constraints(pipeline=True)),
        6.0,
        "the crossing split above (5.002 s) sends a1 from one device to the other and b1 back: not a "
        "pipeline. The pipelines {a1, a2} | {b1, b2} (4 s, 6 s, no transfer) and {a1, a2, b1} | {b2} "
        "(6.001 s, 4.001 s) give 6 s; {a1, b1} | {a2, b2} 7.002 s, one device 10 s",
    ),
]

# Version-2 cases (docs/instance-format.md §9), kept in their own module.
from solvers.testing_v2 import V2_CASES  # noqa: E402

CASES += [Case(*row) for row in V2_CASES]

# Network-state cases (docs/instance-format.md §10), kept in their own module.
from solvers.testing_scenarios import SCENARIO_CASES  # noqa: E402

CASES += [Case(*row) for row in SCENARIO_CASES]

# Tensor-parallel cases (docs/instance-format.md §5.14): only solvers with Capabilities.sharding.
from solvers.testing_sharding import SHARDING_CASES  # noqa: E402

CASES += [Case(*row) for row in SHARDING_CASES]

# Variants and exits (docs/instance-format.md §11): only solvers with Capabilities.choices.
from solvers.testing_choices import CHOICE_CASES  # noqa: E402

CASES += [Case(*row) for row in CHOICE_CASES]


def _split_conv() -> Instance:
    """One 3x3 conv (1 -> 1 channel, stride 1, padding 1) on 10x10, marked ``split: proportional``:
    1800 FLOP, 400 B in and out (40 B per row). Two devices of 100 FLOP/s (1.8 s per output row),
    links of 40 B/s (1 s per row), ``d0`` holds the input and collects the output; parallel latency."""
    conv = Layer(
        "c", "conv2d", ("x",), flops=1800.0, output_bytes=400.0,
        attrs={"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "shape_in": [1, 1, 10, 10],
               "shape_out": [1, 1, 10, 10], "split": "proportional"},
    )
    s = System([Device("d0", 100.0), Device("d1", 100.0)], [Link("d0", "d1", 40.0), Link("d1", "d0", 40.0)], "d0", "d0")
    return Instance("split-conv", Graph("split-conv", [ModelInput("x", 400.0)], [conv]), s, PAR)


# Only solvers that declare ``Capabilities.splits`` take it (the optimum is over row splits).
CASES.append(
    Case(
        "split-conv-rows-latency",
        _split_conv,
        12.6,
        "two row bands, d1 taking h rows as the last band: it receives h + 1 input rows (the row below "
        "is padding; h + 1 s), computes 1.8 h s and returns h s: 3.8 h + 1; d0 computes 1.8 (10 - h) "
        "while sending. h = 2: max(14.4, 8.6) = 14.4; h = 3: max(12.6, 12.4) = 12.6; h = 4: max(10.8, "
        "16.2) = 16.2; d1 first is symmetric, a middle band needs h + 2 rows (one band per device). "
        "Whole layers: 18 s on d0, 10 + 18 + 10 = 38 s on d1",
    )
)


def cases() -> list[Case]:
    """All conformance cases."""
    return list(CASES)


def case(name: str) -> Case:
    """A case by name."""
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(name)


def applies(solver: Solver, inst: Instance, options: SolverOptions | None = None) -> bool:
    """Whether ``solver``'s declared capabilities (and options) take ``inst``: the judge runs only those."""
    try:
        solver.check(inst, options or SolverOptions(time_limit_s=JUDGE_TIME_LIMIT_S))
    except UnsupportedProblem:
        return False
    return True


#: Time limit of every judged solve (the cases are tiny: an exact solver needs well under a second).
JUDGE_TIME_LIMIT_S = 60.0


def judge(solver: Solver, c: Case, options: SolverOptions | None = None) -> list[str]:
    """Solve case ``c`` with ``solver`` and list every way the answer breaks the contract (empty: conforms).

    The contract: no error; an exact solver proves the optimum (status optimal, objective within
    :data:`RTOL` of the case's, gap at most 1e-6, bound not above the objective) or, for a case
    without a feasible placement, reports ``infeasible``; a heuristic returns a feasible placement no
    better than the optimum with a bound not above it, or ``no_solution_found``; and every placement
    returned is re-evaluated by the evaluator, which must find it feasible at the reported objective.
    """
    from formulation.evaluator import evaluate

    inst = c.build()
    res = solver.solve(inst, options or SolverOptions(time_limit_s=JUDGE_TIME_LIMIT_S))
    where = f"{solver.name} on {c.name}"
    if res.status == Status.ERROR:
        return [f"{where}: error: {res.message}"]
    problems: list[str] = []
    obj = res.objective
    if solver.exact:
        if c.optimum is None:
            if res.status != Status.INFEASIBLE:
                problems.append(f"{where}: status {res.status.value}, expected infeasible ({res.message})")
            return problems
        if res.status != Status.OPTIMAL or obj is None:
            return [f"{where}: status {res.status.value}, expected optimal ({res.message})"]
        if not math.isclose(obj, c.optimum, rel_tol=RTOL, abs_tol=1e-9):
            problems.append(f"{where}: objective {obj!r}, expected {c.optimum!r} ({c.why})")
        if not res.gap <= 1e-6:
            problems.append(f"{where}: gap {res.gap!r} at a claimed optimum, expected at most 1e-6")
        if not res.bound <= obj + 1e-9:
            problems.append(f"{where}: bound {res.bound!r} above the objective {obj!r}")
    elif res.status not in (Status.FEASIBLE, Status.NO_SOLUTION_FOUND):
        problems.append(f"{where}: a heuristic reported {res.status.value}; expected feasible or no_solution_found")
    elif res.status == Status.FEASIBLE:
        if c.optimum is None:
            problems.append(f"{where}: a placement for a case without a feasible one")
        elif obj is None or obj < c.optimum * (1 - RTOL) - 1e-9:
            problems.append(f"{where}: objective {obj!r} better than the optimum {c.optimum!r}")
        elif not res.bound <= c.optimum * (1 + RTOL) + 1e-9:
            problems.append(f"{where}: bound {res.bound!r} above the optimum {c.optimum!r}")
    if res.has_solution:  # the evaluator is the judge: the reported objective is the evaluator's value
        from solvers.proportional import split_evaluation

        # a row split is judged on the split instance rebuilt from ``inst`` and the reported rows
        ev = split_evaluation(inst, res)
        if ev is None:  # a sharded result is judged on its groups (docs/instance-format.md §5.14)
            from solvers.sharding import sharded_evaluation

            ev = sharded_evaluation(inst, res)
        if ev is None:  # with variants or exits, the configuration the solver chose (§11.4)
            ch = getattr(res.metrics, "choices", None)
            given = {k: ch[k] for k in ("variants", "exit") if k in ch} if ch else None
            ev = evaluate(inst, res.placement, res.schedule or None, choices=given)
        if not ev.feasible:
            problems.append(f"{where}: the evaluator finds the placement infeasible: {ev.violations}")
        elif obj is None or not math.isclose(obj, ev.objective, rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{where}: reported objective {obj!r}, the evaluator gives {ev.objective!r}")
    return problems


def run_conformance(solver: Solver, selected: list[Case] | None = None) -> dict[str, list[str]]:
    """Judge ``solver`` on every case its capabilities allow; ``{case name: problems}``.

    A third party checks a solver of their own with
    ``assert not any(run_conformance(MySolver()).values())``; a solver that applies to no case
    gets the single entry ``{"(none)": [...]}``.
    """
    chosen = selected if selected is not None else CASES
    out = {c.name: judge(solver, c) for c in chosen if applies(solver, c.build())}
    return out or {"(none)": [f"{solver.name}: its capabilities take none of the {len(CASES)} conformance cases"]}


__all__ = [
    "CASES",
    "JUDGE_TIME_LIMIT_S",
    "RTOL",
    "Case",
    "applies",
    "case",
    "cases",
    "judge",
    "replace",
    "run_conformance",
]
