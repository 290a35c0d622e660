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
    rate (ties: the first in the file). A version-2 workload without ``device``: each request on the
    fastest device reachable from its source (:func:`_offload_requests`).
    """

    name = "offload"
    capabilities = Capabilities(
        features=frozenset(DEVICE_FEATURES), workload=frozenset({"none", "schedule", "share", "routing"})
    )
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
        if inst.workload is not None and dev is None:
            return _offload_requests(inst)
        d = inst.system.device_index[dev] if dev is not None else int(np.argmax(inst.system.compute))
        return RawSolution(
            Termination.COMPLETED,
            placement=np.full(inst.n, d, dtype=np.int64),
            message=f"all layers on {inst.system.device_ids[d]!r}",
        )


def _offload_requests(inst: Instance) -> RawSolution:
    """Version 2: each request's layers on the fastest device its source reaches (and that reaches
    its sink, if any) over the routes of §9.4; ties go to the first in the file. Where no other device
    qualifies, the request stays on its source. The bound is
    :func:`solvers.heft_workload.workload_lower_bound`."""
    wl = inst.workload
    assert wl is not None
    s = inst.system
    order = sorted(range(s.k), key=lambda d: (-float(s.compute[d]), d))
    P = np.empty(inst.n, dtype=np.int64)
    chosen = []
    for req in wl.requests:
        d = next(
            (
                d
                for d in order
                if wl.route(req.source, d) is not None and (req.sink is None or wl.route(d, req.sink) is not None)
            ),
            req.source,
        )
        P[list(req.layers)] = d
        chosen.append(f"{req.id} on {s.device_ids[d]!r}")
    from solvers.heft_workload import workload_lower_bound

    return RawSolution(
        Termination.COMPLETED, placement=P, bound=workload_lower_bound(inst), message="; ".join(chosen)
    )
