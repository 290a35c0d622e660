"""Granularity as a graph transformation: coarsen layers into blocks, split layers into parts.

Formulations and solvers stay unchanged: they see a coarser or finer DAG (a new
:class:`formulation.model.Instance`) and the evaluator judges it as any other instance. Every
transformation keeps a :class:`Provenance` back to the original layers so that results are
reported in the user's terms (:meth:`Transformed.report`). See docs/granularity.md.

* :mod:`.coarsen` -- merge cheap successors, modules, segments between cut points;
* :mod:`.spatial` -- row bands / tile grids of conv and pool stacks with exact halos;
* :mod:`.channel` -- output-channel, input-channel and column/row-pair splits;
* :mod:`.proportional` -- CoEdge-style row shares from a small MILP (HiGHS; the solver ``proportional``);
* :mod:`.placement` -- the natural placement of a split and an insertion schedule;
* :mod:`.transform` -- ``--granularity`` and ``--split`` strings.
"""

from formulation.granularity.channel import split_channels
from formulation.granularity.coarsen import (
    CHEAP_OPS,
    cut_points,
    merge_by_module,
    merge_cheap_successors,
    merge_groups,
    merge_to_cut_points,
)
from formulation.granularity.placement import insertion_schedule, natural_placement
from formulation.granularity.provenance import (
    GranularityError,
    Origin,
    PartPlacement,
    Provenance,
    Transformed,
    as_transformed,
)
from formulation.granularity.spatial import Window, even_bounds, split_spatial, stack_regions, window_of
from formulation.granularity.transform import apply_granularity, parse_split, transform

__all__ = [
    "CHEAP_OPS",
    "GranularityError",
    "Origin",
    "PartPlacement",
    "Provenance",
    "Transformed",
    "Window",
    "apply_granularity",
    "as_transformed",
    "cut_points",
    "even_bounds",
    "insertion_schedule",
    "merge_by_module",
    "merge_cheap_successors",
    "merge_groups",
    "merge_to_cut_points",
    "natural_placement",
    "parse_split",
    "split_channels",
    "split_spatial",
    "stack_regions",
    "transform",
    "window_of",
]
