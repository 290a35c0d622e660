"""Random tiny instances for cross-checking exact solvers: kept importable here; the generators live
in :mod:`formulation.generators` (the one random-instance module)."""

from formulation.generators import METRICS, random_graph, random_instance, random_system

__all__ = ["METRICS", "random_graph", "random_instance", "random_system"]
