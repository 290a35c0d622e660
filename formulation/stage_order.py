"""Stage order of interchangeable devices in a pipeline (``constraints.pipeline``): the valid
inequalities the exact pipeline models add, and the relabelling that makes a placement meet them.

Setting: the pipeline rows of :mod:`formulation.milp.constraints.pipeline` and
:mod:`formulation.cp.pipeline` give each of the ``K`` devices that may hold a layer a stage index
``σ[d] in [0, K-1]`` with ``σ(dev(u)) <= σ(dev(v))`` on every edge ``u -> v`` (``<`` between two
devices). For a class ``d_1, ..., d_m`` of interchangeable devices
(:func:`formulation.symmetry.interchangeable_classes`, restricted to devices that may hold a layer)
the models may add, without losing any value:

* **stage order** (symmetry breaking)::

      σ[d_1] + 1 <= σ[d_2],  ...,  σ[d_{m-1}] + 1 <= σ[d_m]

  the classic ordering of identical machines in parallel-machine models (e.g. the orbitope / the
  ordering constraints of Kaibel and Pfetsch, "Packing and partitioning orbitopes", Mathematical
  Programming 114(1), 2008, here on the machines' positions instead of their contents); where the
  class holds every device the stage indices are fixed, ``σ[d_i] = i - 1``, as the stage numbers of
  identical accelerators in Tarnawski et al.'s pipeline IP (NeurIPS 2020, Section 5);
* **used devices first**: ``used[d_{j+1}] <= used[d_j]`` (``used[d]``: d runs some layer), the
  same argument as the representative rule of :mod:`formulation.symmetry` (Méndez-Díaz and Zabala,
  Discrete Applied Mathematics 154(5), 2006: colours used in order);
* **down-set rows** (the stages ``d_1..d_j`` of a class hold a down-set of the class's layers)::

      sum_{i <= j} x[v, d_i] + sum_{i > j} x[u, d_i] <= 1        every edge u -> v, 1 <= j < m

  ``v`` on an early device of the class and ``u`` on a later one would send an edge backwards.
  These are the disaggregated precedence inequalities of time-indexed scheduling (Christofides,
  Alvarez-Valdés and Tamarit, "Project scheduling with resource constraints: a branch and bound
  approach", European Journal of Operational Research 29(3), 1987), with the class's stages in
  place of time periods; in the LP relaxation they are stronger than the one aggregated row
  ``p[v] >= p[u] + x[u, d] - x[v, d]`` per device.

*Validity* (each placement keeps its value): a pipeline placement has a topological order of its
quotient graph; append the unused devices and let ``σ`` be the positions, a permutation. Renaming
the devices of each class in the order of their ``σ`` (:func:`stage_canonical_placement`; the
devices of a class are interchangeable, so the value and the feasibility are the same) gives a
placement that meets all three families: ``σ`` strictly increases along the class, used devices
come before unused ones, and an edge never goes from a later stage to an earlier one.
Warm starts and hints are renamed this way before the models see them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from formulation.evaluator import pipeline_order
from formulation.model import Instance, IntArray
from formulation.symmetry import interchangeable_classes


def stage_classes(inst: Instance) -> list[list[int]]:
    """Classes (two or more devices, in index order) of interchangeable devices that may hold a
    layer, when ``constraints.pipeline`` is set; empty otherwise."""
    if not inst.problem.constraints.pipeline or not inst.graph.edges:
        return []
    holds = set(np.flatnonzero(inst.placement_mask.any(axis=0)).tolist())
    out = []
    for cls in interchangeable_classes(inst):
        kept = [d for d in cls if d in holds]
        if len(kept) > 1:
            out.append(kept)
    return out


def stage_canonical_placement(inst: Instance, P: IntArray, classes: list[list[int]] | None = None) -> IntArray:
    """The renaming of ``P`` within each class that meets the rows of the module docstring (same
    value, same feasibility); ``P`` itself when it is no pipeline (no row family can hold it)."""
    classes = stage_classes(inst) if classes is None else classes
    src = np.asarray(P, dtype=np.int64)
    if not classes:
        return src.copy()
    order = pipeline_order(inst, src)
    if order is None:
        return src.copy()
    holds = np.flatnonzero(inst.placement_mask.any(axis=0)).tolist()
    full = order + [d for d in holds if d not in set(order)]
    pos = {d: i for i, d in enumerate(full)}
    out = src.copy()
    for cls in classes:
        for new, old in zip(cls, sorted(cls, key=pos.__getitem__), strict=True):
            out[src == old] = new
    return out


def downset_rows(
    inst: Instance, cls: list[int], mask: np.ndarray | None = None
) -> Iterator[tuple[int, int, int, list[tuple[int, int]]]]:
    """The down-set rows of one class: ``(u, v, j, [(layer, device), ...])`` for each edge
    ``u -> v`` and ``1 <= j < m``, the pairs whose ``x`` sum to at most 1 (pairs allowed by ``mask``,
    default the instance's placement mask, only; rows without both layers say nothing and are left
    out)."""
    mask = inst.placement_mask if mask is None else mask
    m = len(cls)
    for u, v in inst.graph.edges:
        for j in range(1, m):
            pairs = [(v, d) for d in cls[:j] if mask[v, d]] + [(u, d) for d in cls[j:] if mask[u, d]]
            if len(pairs) > 1 and any(w == v for w, _ in pairs) and any(w == u for w, _ in pairs):
                yield u, v, j, pairs
