"""MILP formulations of the partitioning problem (every objective, constraint and latency mode).

One concern per module, each stating its inequalities and sources:

* :mod:`.placement` -- ``x[v, d]`` and assignment rows;
* :mod:`.shipping` -- send-once-per-receiving-device transfer variables;
* :mod:`.latency_seq` -- sequential latency; :mod:`.schedule` -- parallel latency (disjunctive);
* :mod:`.throughput` -- the period (min-max); :mod:`.energy` -- energy with the idle term;
* :mod:`.cost`; :mod:`.objective` -- weighted sums;
* :mod:`.constraints` -- memory, deadline, energy budget, allowed, private, contiguous, max devices;
* :mod:`.model` -- the backend-neutral matrix; :mod:`.lpwriter` -- LP text; :mod:`.build`.
"""

from formulation.milp.build import build_milp, objective_weights
from formulation.milp.context import MilpContext, Transfers
from formulation.milp.model import LinearModel

__all__ = ["LinearModel", "MilpContext", "Transfers", "build_milp", "objective_weights"]
