"""Baselines of the literature: run everything locally, or offload everything to one device.

These are the reference points of Neurosurgeon (Kang et al., ASPLOS 2017) and DADS (Hu et al.,
INFOCOM 2019): "local" keeps every layer on the device that holds the input, "offload" ships the
input and runs every layer on one remote device. Neither claims optimality; their ``bound`` is
``-inf``.
"""

from __future__ import annotations

import numpy as np

from formulation.model import DEVICE_FEATURES, Instance
from solvers.base import RawSolution, Solver
from solvers.options import Capabilities, SolverOptions, UnsupportedProblem
from solvers.result import Termination


class LocalBaseline(Solver):
    """Every layer on the source device (the "mobile only" baseline)."""

    name = "local"
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES), workload=frozenset({"none", "schedule", "share", "routing", "generation"})
    )
    supported_options = frozenset({"time_limit_s", "seed"})
    description = "baseline: every layer on the source device"

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        P = np.full(inst.n, inst.system.source_index, dtype=np.int64)
        if inst.workload is not None:  # version 2: each request on its own source
            wl = inst.workload
            P = np.array([wl.requests[int(r)].source for r in wl.request_of_layer], dtype=np.int64)
        return RawSolution(Termination.COMPLETED, placement=P, method=self.name)


class OffloadBaseline(Solver):
    """Every layer on one device, the input shipped there (the "cloud only" baseline).

    ``raw={"device": ID}`` chooses the device; by default the device with the highest compute
    rate (ties: the first in the file).
    """

    name = "offload"
    capabilities = Capabilities(features=frozenset(DEVICE_FEATURES))
    supported_options = frozenset({"time_limit_s", "seed", "raw"})
    description = "baseline: every layer on one device (default: the fastest)"

    def check(self, inst: Instance, options: SolverOptions) -> None:
        super().check(inst, options)
        unknown = set(options.raw) - {"device"}
        if unknown:
            raise UnsupportedProblem(
                f"solver 'offload' has no raw option(s) {sorted(unknown)}; it takes 'device'"
            )
        dev = options.raw.get("device")
        if dev is not None and dev not in inst.system.device_index:
            raise UnsupportedProblem(
                f"solver 'offload': device {dev!r} is not in the system ({', '.join(inst.system.device_ids)})"
            )

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        dev = options.raw.get("device")
        d = inst.system.device_index[dev] if dev is not None else int(np.argmax(inst.system.compute))
        return RawSolution(
            Termination.COMPLETED,
            placement=np.full(inst.n, d, dtype=np.int64),
            message=f"all layers on {inst.system.device_ids[d]!r}",
        )
