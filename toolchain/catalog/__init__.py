"""Catalogues of devices and networks (``devices.yaml``, ``networks.yaml``), every number sourced.

Each numeric field is ``{value: "<number> <unit>", source: "..."}``; :func:`device_entry` and
:func:`link_entry` turn catalogue entries into the spec-form ``devices:``/``links:`` items of a
system file (unit strings kept, so the written file shows where numbers came from in readable
units).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CATALOG_DIR = Path(__file__).parent
DEVICE_FIELDS = ("compute", "memory_bandwidth", "memory", "power_active", "power_idle", "price")
NETWORK_FIELDS = ("bandwidth", "latency", "tx_power", "rx_power")


class CatalogError(KeyError):
    """An unknown device or network name (the message lists the known ones)."""

    def __str__(self) -> str:
        return str(self.args[0])


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CATALOG_DIR / name).read_text())
    return data


def devices() -> dict[str, dict[str, Any]]:
    """Device catalogue: id -> entry (``name``, ``tier``, and sourced numeric fields)."""
    return dict(_load("devices.yaml")["devices"])


def networks() -> dict[str, dict[str, Any]]:
    """Network catalogue: id -> entry (``name`` and sourced numeric fields)."""
    return dict(_load("networks.yaml")["networks"])


def cloud_egress_price() -> str:
    """Price per byte sent on a link touching a cloud device, as a unit string."""
    return str(_load("networks.yaml")["cloud_egress_price"]["value"])


def resolve_device(name: str) -> str:
    """The catalogue id of ``name`` (itself, or the entry an alias such as ``cloud`` stands for)."""
    return str(_load("devices.yaml").get("aliases", {}).get(name, name))


def resolve_network(name: str) -> str:
    """The catalogue id of network ``name`` (itself, or the entry an alias such as ``4g`` stands for)."""
    return str(_load("networks.yaml").get("aliases", {}).get(name, name))


def device(name: str) -> dict[str, Any]:
    """One device entry (aliases resolved).

    Raises
    ------
    CatalogError
        If ``name`` is not in the catalogue.
    """
    cat = devices()
    key = resolve_device(name)
    if key not in cat:
        aliases = ", ".join(_load("devices.yaml").get("aliases", {}))
        raise CatalogError(f"unknown device {name!r}; the catalogue has: {', '.join(cat)} (aliases: {aliases})")
    return cat[key]


def network(name: str) -> dict[str, Any]:
    """One network entry.

    Raises
    ------
    CatalogError
        If ``name`` is not in the catalogue.
    """
    cat = networks()
    key = resolve_network(name)
    if key not in cat:
        aliases = ", ".join(_load("networks.yaml").get("aliases", {}))
        raise CatalogError(f"unknown network {name!r}; the catalogue has: {', '.join(cat)} (aliases: {aliases})")
    return cat[key]


def device_entry(name: str, device_id: str | None = None, trusted: bool = False) -> dict[str, Any]:
    """Spec-form ``devices:`` item for catalogue device ``name`` (unit strings as catalogued)."""
    entry = device(name)
    out: dict[str, Any] = {"id": device_id or name, "tier": entry["tier"]}
    for f in DEVICE_FIELDS:
        if f in entry:
            out[f] = entry[f]["value"]
    out["trusted"] = trusted
    return out


def link_entry(name: str, src: str, dst: str, price: str | None = None) -> dict[str, Any]:
    """Spec-form ``links:`` item (bidirectional) for catalogue network ``name`` between two devices."""
    entry = network(name)
    out: dict[str, Any] = {"from": src, "to": dst}
    for f in NETWORK_FIELDS:
        out[f] = entry[f]["value"]
    if price is not None:
        out["price"] = price
    return out


def unsourced() -> list[str]:
    """Paths of numeric catalogue values without a non-empty ``source`` (empty when all are sourced)."""
    missing: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if "value" in node and not str(node.get("source", "")).strip():
                missing.append(path)
            for k, v in node.items():
                if k not in ("value", "source"):
                    walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, int | float) and not isinstance(node, bool):
            missing.append(path)

    walk(_load("devices.yaml"), "devices.yaml")
    walk(_load("networks.yaml"), "networks.yaml")
    return missing
