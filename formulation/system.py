"""The system: devices, directed link channels, source and sink (all figures SI).

Devices are numbered ``0 .. D-1`` in file order (the index conventions of :mod:`formulation.model`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from formulation.arrays import BoolArray, FloatArray, _frozen
from formulation.costs import transfer_seconds

TIERS = ("end", "edge", "cloud", "other")
"""Device tiers an instance may name (docs/instance-format.md §3.1): labels for reports, not costs."""


@dataclass(frozen=True)
class Device:
    """A device that executes layers (all figures SI)."""

    id: str
    compute_flops_per_s: float
    tier: str = "other"
    memory_bandwidth_bytes_per_s: float | None = None
    memory_bytes: float = math.inf
    power_active_w: float = 0.0
    power_idle_w: float = 0.0
    price_usd_per_s: float = 0.0
    trusted: bool = False
    comm_overlap: bool = True
    """Communication overlaps compute. When False the device is busy while it sends or receives, so
    its busy time per inference (which sets the period) is compute + sending + receiving, as for the
    accelerators of Tarnawski et al. (NeurIPS 2020)."""
    send_once: bool = False
    """One transmission reaches every device that needs a tensor (a shared medium, or staging in host
    memory): the device's sending time counts each tensor once, at its longest per-destination time."""


#: Optional device features beyond the base model; solvers declare which they support.
DEVICE_FEATURES = ("comm_not_overlapped", "send_once")


@dataclass(frozen=True)
class Link:
    """One direction of a network link (``src -> dst``), a separate channel."""

    src: str
    dst: str
    bandwidth_bytes_per_s: float
    latency_s: float = 0.0
    tx_power_w: float = 0.0
    rx_power_w: float = 0.0
    price_usd_per_byte: float = 0.0
    overhead_s: float = 0.0
    """Fixed cost of every transfer beyond the link (serialisation, sockets, framework); a delay like
    ``latency_s`` (docs/instance-format.md §3.2)."""
    overhead_bandwidth_bytes_per_s: float = math.inf
    """Rate of the per-byte overhead: each transfer also takes ``bytes / overhead_bandwidth``, counted
    as occupied link time (unlimited: none)."""


class System:
    """Devices, directed link channels, source and sink.

    Parameters
    ----------
    devices : sequence of Device
    links : sequence of Link
        Directed channels; a bidirectional file link is given here as two Links.
    source : str
        Device holding the model inputs at time 0.
    sink : str or None
        Device where model outputs must end up.
    """

    def __init__(
        self, devices: Sequence[Device], links: Sequence[Link], source: str, sink: str | None
    ) -> None:
        self.devices: tuple[Device, ...] = tuple(devices)
        self.device_ids: tuple[str, ...] = tuple(d.id for d in self.devices)
        self.device_index: Mapping[str, int] = MappingProxyType({d: i for i, d in enumerate(self.device_ids)})
        if len(self.device_index) != len(self.devices):
            raise ValueError("duplicate device id")
        self.links: Mapping[tuple[str, str], Link] = MappingProxyType({(lk.src, lk.dst): lk for lk in links})
        self.source = source
        self.sink = sink
        self.source_index = self.device_index[source]
        self.sink_index: int | None = None if sink is None else self.device_index[sink]
        k = len(self.devices)
        has = np.zeros((k, k), dtype=bool)
        bw = np.full((k, k), np.inf)
        lat = np.zeros((k, k))
        tx = np.zeros((k, k))
        rx = np.zeros((k, k))
        price = np.zeros((k, k))
        for (a, b), lk in self.links.items():
            i, j = self.device_index[a], self.device_index[b]
            has[i, j] = True
            # The optional overheads (§3.2) fold into the two figures every transfer time uses:
            # latency + overhead, and bytes / bandwidth + bytes / overhead_bandwidth.
            bw[i, j] = lk.bandwidth_bytes_per_s
            if math.isfinite(lk.overhead_bandwidth_bytes_per_s):
                bw[i, j] = 1.0 / (1.0 / lk.bandwidth_bytes_per_s + 1.0 / lk.overhead_bandwidth_bytes_per_s)
            lat[i, j] = lk.latency_s + lk.overhead_s
            tx[i, j] = lk.tx_power_w
            rx[i, j] = lk.rx_power_w
            price[i, j] = lk.price_usd_per_byte
        self.has_link: BoolArray = _frozen(has, bool)
        """``has_link[a, b]``: a channel ``a -> b`` exists."""
        self.bandwidth: FloatArray = _frozen(bw)
        """Effective bandwidth of each channel (the link's, combined with its overhead bandwidth)."""
        self.link_latency: FloatArray = _frozen(lat)
        """Delay of every transfer on each channel: the link's latency plus its overhead."""
        self.tx_power: FloatArray = _frozen(tx)
        self.rx_power: FloatArray = _frozen(rx)
        self.link_price: FloatArray = _frozen(price)
        self.compute: FloatArray = _frozen([d.compute_flops_per_s for d in self.devices])
        self.memory: FloatArray = _frozen([d.memory_bytes for d in self.devices])
        self.power_active: FloatArray = _frozen([d.power_active_w for d in self.devices])
        self.power_idle: FloatArray = _frozen([d.power_idle_w for d in self.devices])
        self.price: FloatArray = _frozen([d.price_usd_per_s for d in self.devices])
        self.trusted: BoolArray = _frozen([d.trusted for d in self.devices], bool)
        self.comm_overlap: BoolArray = _frozen([d.comm_overlap for d in self.devices], bool)
        self.send_once: BoolArray = _frozen([d.send_once for d in self.devices], bool)

    @property
    def features(self) -> frozenset[str]:
        """Optional device features in use (see ``DEVICE_FEATURES``)."""
        out = set()
        if not self.comm_overlap.all():
            out.add("comm_not_overlapped")
        if self.send_once.any():
            out.add("send_once")
        return frozenset(out)

    @property
    def k(self) -> int:
        """Number of devices."""
        return len(self.devices)

    def transfer_time(self, a: int, b: int, nbytes: float) -> float:
        """Seconds to send ``nbytes`` over ``a -> b``: ``latency + n / bandwidth`` (0 when a == b)."""
        if a == b:
            return 0.0
        if not self.has_link[a, b]:
            return math.inf
        return float(transfer_seconds(self.link_latency[a, b], nbytes, self.bandwidth[a, b]))

    def __repr__(self) -> str:
        return f"System({list(self.device_ids)}, {len(self.links)} channels)"
