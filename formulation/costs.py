"""Cost building blocks written once, for the evaluator, every model builder and every algorithm.

* **Working set** (docs/instance-format.md §5.9): while layer ``v`` runs its device holds, besides
  the resident parameters, ``workspace(v) + output(v) + bytes of v's inputs`` -- the per-layer term
  of the peak-memory expression ``mem(d) = sum_{v on d} params(v) + max_{v on d} working_set(v)``
  (``memory: peak``; under ``memory: params`` the term is 0).
* **Start time** (parallel mode, §5.6): a layer starts once its device is free and every input
  is on that device: ``start(v) = max(free(d), max_t ready(t) + delay(t, d))`` with ``ready(t)``
  the producer's finish (0 for a model input) and ``delay`` the transfer time (0 on one device)
  -- :func:`earliest_start`.
* **Transfer time** (§5.4): a tensor of ``b`` bytes over link ``a -> c`` takes
  ``latency(a, c) + b / bandwidth(a, c)`` seconds (:func:`transfer_seconds`, for one transfer or
  arrays of them; :meth:`formulation.model.System.transfer_time` applies it to one link).

``tests/test_cost_blocks.py`` fails when an expression of this module is written again elsewhere
in ``formulation/`` or ``solvers/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # formulation.model imports this module (System.transfer_time)
    from formulation.model import FloatArray, Graph, Instance


def working_set_bytes(g: Graph) -> FloatArray:
    """Per layer: ``workspace + output + input bytes`` (§5.9), the transient part of the peak."""
    return np.asarray(g.workspace_bytes + g.output_bytes + g.input_bytes_of_layer, dtype=float)


def peak_term_bytes(inst: Instance) -> FloatArray:
    """Per layer, what it adds to its device's peak beyond its parameters under the instance's memory
    model: the working set under ``peak``, nothing under ``params``."""
    g = inst.graph
    return working_set_bytes(g) if inst.problem.constraints.memory_model == "peak" else np.zeros(g.n)


def transfer_seconds(latency_s: Any, nbytes: Any, bandwidth_bytes_per_s: Any) -> Any:
    """``latency + bytes / bandwidth`` (§5.4): floats, or numpy arrays elementwise (broadcast)."""
    return latency_s + nbytes / bandwidth_bytes_per_s


def earliest_start(
    free_at: float,
    inputs: Sequence[int],
    finish: Any,
    n_layers: int,
    delay: Callable[[int], float],
) -> float:
    """The start-time rule: ``max(free_at, max over inputs t of ready(t) + delay(t))``.

    ``inputs`` are tensor indices (layers ``< n_layers``, then model inputs); ``ready(t)`` is
    ``finish[t]`` for a layer's output and 0 for a model input; ``delay(t)`` the time from ready to
    on the layer's device. Works in seconds or in integer ticks alike.
    """
    start = free_at
    for t in inputs:
        arrival = (finish[t] if t < n_layers else 0) + delay(t)
        if arrival > start:
            start = arrival
    return start
