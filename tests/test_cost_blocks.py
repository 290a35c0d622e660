"""Cost building blocks written once (issue 16, item 5): their values, and no second copy.

The grep below looks, in every ``.py`` file of ``formulation/`` and ``solvers/``, for the code of
the peak-memory working set -- a line that names both ``workspace_bytes`` and
``input_bytes_of_layer`` joined by ``+`` (``g.workspace_bytes + g.output_bytes +
g.input_bytes_of_layer``, in any order, indexed or not) -- and for the transfer-time expression
written out on the link arrays -- ``link_latency ... + ... / ...bandwidth`` on one line -- and for
the start-time rule written as a loop step -- ``st = max(st, ... finish[t] ...)`` or ``max(st,
ready ...)``, the running maximum of a layer's start over its inputs' arrivals. Their one home is
:mod:`formulation.costs`. Not found by these patterns, and left as they are: the evaluator's
vectorised list schedule over N placements (``np.maximum`` on arrays) and its branch and bound's
inner ``est`` (an ``if arr > t0`` loop kept inline for speed), the insertion schedules of heft and
of split placements (they search idle gaps, a different rule). The files listed in ``PENDING``
still hold a copy and move to the home as their current changes finish (the list may only shrink).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from formulation.costs import peak_term_bytes, transfer_seconds, working_set_bytes
from formulation.evaluator import evaluate
from formulation.model import Constraints, Device, Graph, Instance, Layer, Link, ModelInput, Problem, System

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "formulation" / "costs.py"

#: A line summing the working set's terms: workspace and the inputs' bytes joined by '+'.
WORKING_SET = re.compile(
    r"workspace_bytes\b[^#\n]*\+[^#\n]*\binput_bytes_of_layer|input_bytes_of_layer\b[^#\n]*\+[^#\n]*\bworkspace_bytes"
)
#: The transfer time written on the link arrays: latency plus bytes over bandwidth on one line.
TRANSFER = re.compile(r"link_latency\b[^#\n]*\+[^#\n]*/\s*[\w.]*bandwidth\b")

#: The start-time rule as a loop step: a running start raised to an input's arrival.
START = re.compile(r"\b(st|start|t0)\s*=\s*max\(\s*(st|start|t0)\s*,[^#\n]*(finish\[|ready)")

#: Files that still hold a copy (being changed by their owners now); the list may only shrink.
PENDING: set[str] = set()
#: The start-time rule's other forms, each kept for a stated reason (the list may only shrink).
START_ELSEWHERE = {
    # the lower bound takes the fastest transfer from any allowed device, not the placed one's
    "solvers/bounds.py",
}


def _copies(pattern: re.Pattern[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for folder in ("formulation", "solvers"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            if f == HOME:
                continue
            lines = [i for i, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
            if lines:
                found[f.relative_to(ROOT).as_posix()] = lines
    return found


def test_the_patterns_find_real_copies() -> None:
    """The grep can fail: it finds the forms the copies took, and not the prose that describes them."""
    for text in (
        "peak_v = g.workspace_bytes + g.output_bytes + g.input_bytes_of_layer",
        "peak = float(max(g.workspace_bytes[i] + g.output_bytes[i] + g.input_bytes_of_layer[i] for i in idx))",
        "own = g.param_bytes + g.input_bytes_of_layer + g.workspace_bytes",
    ):
        assert WORKING_SET.search(text), text
    assert not WORKING_SET.search("``work[v] = workspace + output + input bytes`` (docs/instance-format.md)")
    assert TRANSFER.search("dur = s.link_latency[a, b] + nbytes / s.bandwidth[a, b]")
    assert TRANSFER.search("send = s.link_latency[o, j] * m.y[d] + row_bytes[0] * r / s.bandwidth[o, j]")
    assert TRANSFER.search("dur = np.where(s.has_link, s.link_latency + nbytes / s.bandwidth, math.inf)")
    assert not TRANSFER.search("lat = s.link_latency[a, b]  # + bytes / bandwidth, see below")
    assert WORKING_SET.search(HOME.read_text())  # the home holds the one copy


def test_peak_memory_working_set_is_written_once() -> None:
    extra = {f: ls for f, ls in _copies(WORKING_SET).items() if f not in PENDING}
    assert extra == {}, f"the working set is written again outside formulation/costs.py: {extra}"


def test_transfer_time_is_written_once() -> None:
    extra = {f: ls for f, ls in _copies(TRANSFER).items() if f not in PENDING}
    assert extra == {}, f"the transfer time is written again outside formulation/costs.py: {extra}"


def test_start_time_rule_is_written_once() -> None:
    extra = {f: ls for f, ls in _copies(START).items() if f not in START_ELSEWHERE}
    assert extra == {}, f"the start-time rule is written again outside formulation/costs.py: {extra}"


def test_start_pattern_finds_the_forms_copies_took() -> None:
    assert START.search("            st = max(st, (finish[t] if t < g.n else 0) + delay(t, d))")
    assert START.search("            st = max(st, ready_t + s.transfer_time(a, d, float(g.tensor_bytes[t])))")
    assert START.search("            start = max(start, finish[t] + delay)")
    assert not START.search("        L = max(L, finish[o] + delay(o, sink))")  # the makespan, not a start


def test_earliest_start_by_hand() -> None:
    from formulation.costs import earliest_start

    # device free at 2; input 0 (a layer) finished at 1 and takes 1.5 to arrive; input 3 (a model
    # input, n_layers = 3) is ready at 0 and takes 4: the layer starts at max(2, 2.5, 4) = 4
    assert earliest_start(2.0, [0, 3], [1.0, 0.0, 0.0], 3, {0: 1.5, 3: 4.0}.__getitem__) == 4.0
    assert earliest_start(5, [0], [1, 0, 0], 3, lambda t: 2) == 5  # integer ticks: the device is later


def test_pending_list_only_names_files_that_still_hold_a_copy() -> None:
    assert set(_copies(START)) >= START_ELSEWHERE
    still = set(_copies(WORKING_SET)) | set(_copies(TRANSFER))  # PENDING is empty: nothing may remain
    assert still >= PENDING, f"move these out of PENDING, they no longer hold a copy: {sorted(PENDING - still)}"


def _two_layers(memory_model: str = "peak") -> Instance:
    g = Graph(
        "g",
        [ModelInput("x", 1000.0)],
        [
            Layer("a", "op", ("x",), 1e9, 2000.0, param_bytes=5000.0, workspace_bytes=300.0),
            Layer("b", "op", ("a", "x"), 1e9, 400.0, param_bytes=7000.0, workspace_bytes=0.0),
        ],
    )
    s = System([Device("d", 1e9, memory_bytes=1e6)], [], "d", None)
    c = Constraints(memory=True, memory_model=memory_model)  # type: ignore[arg-type]
    return Instance("two", g, s, Problem(constraints=c))


def test_working_set_and_peak_by_hand() -> None:
    inst = _two_layers()
    # a: 300 workspace + 2000 out + 1000 in (x) = 3300; b: 0 + 400 + (2000 + 1000) = 3400
    assert working_set_bytes(inst.graph).tolist() == [3300.0, 3400.0]
    assert peak_term_bytes(inst).tolist() == [3300.0, 3400.0]
    # the evaluator's device memory: params 5000 + 7000 plus the larger working set 3400
    ev = evaluate(inst, {"a": "d", "b": "d"})
    assert ev.memory_bytes["d"] == pytest.approx(15400.0)
    params_only = _two_layers("params")
    assert peak_term_bytes(params_only).tolist() == [0.0, 0.0]
    assert evaluate(params_only, {"a": "d", "b": "d"}).memory_bytes["d"] == pytest.approx(12000.0)


def test_transfer_seconds_by_hand() -> None:
    assert transfer_seconds(0.01, 1e6, 1e6) == pytest.approx(1.01)  # 10 ms + 1 MB at 1 MB/s
    arr = transfer_seconds(np.array([0.0, 0.02]), np.array([5e5, 0.0]), np.array([1e6, 1e7]))
    assert arr.tolist() == pytest.approx([0.5, 0.02])
    s = System([Device("a", 1e9), Device("b", 1e9)], [Link("a", "b", 2e6, 0.005)], "a", None)
    assert s.transfer_time(0, 1, 1e6) == pytest.approx(transfer_seconds(0.005, 1e6, 2e6))  # 0.505 s
    assert math.isclose(s.transfer_time(0, 1, 1e6), 0.505)


@pytest.mark.parametrize(
    ("kind", "weights", "needle"),
    [
        ("speed", {}, "objective kind 'speed'"),
        ("latency", {"energy": 1.0}, "takes no weights"),
        ("weighted", {}, "non-empty"),
        ("weighted", {"latncy": 1.0}, "'latncy' is not a metric"),
        ("weighted", {"latency": "1"}, "expected a number"),
        ("weighted", {"latency": 0.0, "energy": 0.0}, "at least one weight > 0"),
    ],
)
def test_objectives_are_validated_when_built(kind: str, weights: dict[str, object], needle: str) -> None:
    """Built in code (not only from a file), a malformed objective is refused at once."""
    from formulation.model import Objective

    with pytest.raises(ValueError, match=re.escape(needle)):
        Objective(kind, weights)  # type: ignore[arg-type]


def test_negative_weights_are_named_once() -> None:
    from formulation.model import Objective

    obj = Objective("weighted", {"latency": 1.0, "energy": -0.1})  # loads (compatibility); engines refuse it
    assert obj.negative_weights() == {"energy": -0.1}
    assert Objective("energy").negative_weights() == {}


def test_one_random_instance_generator_module() -> None:
    """The generators live in formulation/generators.py; the others only re-export or wrap them."""
    from formulation import generators as gen
    from solvers.milp import random_instances

    assert random_instances.random_instance is gen.random_instance
    for rel in ("solvers/milp/random_instances.py", "tests/strategies.py"):
        text = (ROOT / rel).read_text()
        # no model object is built there: Layer, Device, Link, ModelInput constructors stay in one place
        assert not re.search(r"\b(Layer|Device|Link|ModelInput)\(", text), rel
    a, b = gen.random_instance(7), gen.random_instance(7)
    assert repr(a) == repr(b) and a.problem == b.problem  # deterministic in the seed
    tiny = gen.tiny_instance(gen.RngChooser(3), max_layers=4, max_devices=3)
    assert 1 <= tiny.n <= 4 and 2 <= tiny.k <= 3 and tiny.system.source == "d0"
