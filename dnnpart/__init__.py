"""dnnpart: partition deep neural networks across cooperating devices, with proofs.

The public Python API. Everything here is a thin re-export of, or a builder on top of, the modelling
layer (:mod:`formulation`), the solvers (:mod:`solvers`) and the toolchain (:mod:`toolchain`).

>>> import dnnpart
>>> inst = dnnpart.load("instances/examples/alexnet-lte-latency.yaml")
>>> res = dnnpart.solve(inst)
>>> res.status.value, round(res.objective * 1000, 1)
('optimal', 298.7)
"""

from __future__ import annotations

from dnnpart.api import batch, compare, evaluate, from_dict, from_module, from_networkx, load, results, solve
from dnnpart.instance import Instance
from formulation.errors import InstanceError
from formulation.evaluator import Evaluation
from solvers.options import SolverError, SolverOptions
from solvers.result import Result, Status, Termination


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dnnpart")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "Evaluation",
    "Instance",
    "InstanceError",
    "Result",
    "SolverError",
    "SolverOptions",
    "Status",
    "Termination",
    "__version__",
    "batch",
    "compare",
    "evaluate",
    "from_dict",
    "from_module",
    "from_networkx",
    "load",
    "results",
    "solve",
]
