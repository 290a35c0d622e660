"""Scenario builder: a system section (devices, links, source, sink) from the catalogues.

``build_system(["phone", "v100"], "lte")`` is the two-tier setting of Neurosurgeon (Kang et al.,
ASPLOS 2017) and DADS (Hu et al., INFOCOM 2019); ``["rpi4", "nuc", "v100"]`` with
``["wifi", "wan"]`` the end-edge-cloud hierarchy of Teerapittayanon et al. (ICDCS 2017);
``["rpi3b:4"]`` with ``"wifi"`` a device cluster as in MoDNN (Mao et al., DATE 2017) and
DeepThings (Zhao et al., TCAD 2018).

Rules (documented in ``docs/toolchain.md``):

* a device written ``NAME:COUNT`` stands for COUNT copies with ids ``NAME-1 .. NAME-COUNT``;
* topology ``chain`` links consecutive devices (the tiers of a hierarchy), ``star`` links the
  first device to every other, ``full`` links every pair; ``auto`` is ``full`` when all devices
  are copies of one catalogue entry (a cluster) and ``chain`` otherwise;
* ``networks`` is one name for every link or one per link, in link order;
* the source (model inputs) and, unless told otherwise, the sink (results) are the first device;
* devices of tier ``end`` and ``edge`` are trusted (they belong to the user), ``cloud`` is not;
* a link touching a cloud device is charged the catalogue's cloud egress price per byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations, pairwise
from typing import Any, Literal

from toolchain import catalog

Topology = Literal["auto", "chain", "star", "full"]


def expand_devices(devices: Sequence[str]) -> list[tuple[str, str]]:
    """``["phone", "rpi3b:2"]`` -> ``[("phone", "phone"), ("rpi3b-1", "rpi3b"), ("rpi3b-2", "rpi3b")]``.

    Pairs are (device id, catalogue id); an alias keeps its own name as the id (``cloud`` -> v100).

    Raises
    ------
    catalog.CatalogError
        For an unknown device.
    ValueError
        For a malformed count.
    """
    out: list[tuple[str, str]] = []
    for spec in devices:
        name, _, count = spec.strip().partition(":")
        catalog.device(name)
        key = catalog.resolve_device(name)
        if not count:
            out.append((name, key))
            continue
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"device {spec!r}: the count after ':' must be a positive integer")
        out.extend((f"{name}-{i}", key) for i in range(1, int(count) + 1))
    ids = [i for i, _ in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"devices {dup} are listed twice; write NAME:COUNT for copies")
    return out


def _pairs(ids: list[str], topology: str) -> list[tuple[str, str]]:
    if topology == "chain":
        return list(pairwise(ids))
    if topology == "star":
        return [(ids[0], d) for d in ids[1:]]
    if topology == "full":
        return list(combinations(ids, 2))
    raise ValueError(f"topology must be auto, chain, star or full, got {topology!r}")


def build_system(
    devices: Sequence[str],
    networks: str | Sequence[str],
    *,
    topology: Topology = "auto",
    source: str | None = None,
    sink: str | Literal["source"] | None = "source",
    trusted: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A spec-form system section built from catalogue entries.

    Parameters
    ----------
    devices : sequence of str
        Catalogue device names, ``NAME:COUNT`` for copies.
    networks : str or sequence of str
        Catalogue network for every link, or one per link in link order.
    topology : {"auto", "chain", "star", "full"}
        Which pairs are linked (see the module notes).
    source : str, optional
        Device id holding the model inputs (default: the first device).
    sink : str, None or "source"
        Device id receiving the outputs; ``"source"`` (default) means the source, None no sink.
    trusted : sequence of str, optional
        Device ids that may hold private tensors (default: tiers end and edge).

    Returns
    -------
    dict
        ``{devices, links, source, sink}`` with catalogue unit strings.

    Raises
    ------
    catalog.CatalogError, ValueError
        Unknown names, a wrong number of networks, or an unknown source/sink.
    """
    expanded = expand_devices(devices)
    if not expanded:
        raise ValueError("a system needs at least one device")
    ids = [i for i, _ in expanded]
    kinds = {name for _, name in expanded}
    if topology == "auto":
        topology = "full" if len(kinds) == 1 and len(ids) > 1 else "chain"
    pairs = _pairs(ids, topology)
    nets = [networks] * len(pairs) if isinstance(networks, str) else list(networks)
    if len(nets) == 1 and len(pairs) > 1:
        nets = nets * len(pairs)
    if len(nets) != len(pairs):
        raise ValueError(f"{len(nets)} networks given for {len(pairs)} links ({topology} topology): {pairs}")
    tier = {i: catalog.device(name)["tier"] for i, name in expanded}
    trust = set(trusted) if trusted is not None else {i for i in ids if tier[i] in ("end", "edge")}
    unknown = sorted(trust - set(ids))
    if unknown:
        raise ValueError(f"trusted devices {unknown} are not in the system {ids}")
    egress = catalog.cloud_egress_price()
    links = [
        catalog.link_entry(net, a, b, egress if "cloud" in (tier[a], tier[b]) else None)
        for (a, b), net in zip(pairs, nets, strict=True)
    ]
    src = source or ids[0]
    snk = src if sink == "source" else sink
    for role, dev in (("source", src), ("sink", snk)):
        if dev is not None and dev not in ids:
            raise ValueError(f"{role} {dev!r} is not a device of the system {ids}")
    system: dict[str, Any] = {
        "devices": [catalog.device_entry(name, i, i in trust) for i, name in expanded],
        "links": links,
        "source": src,
    }
    if snk is not None:
        system["sink"] = snk
    return system


def build_workload(
    users: int,
    models: Sequence[str],
    user_device: str,
    edge: str,
    network: str,
    *,
    cloud: str | None = None,
    wan: str = "wan",
    aggregate: Literal["sum", "max"] = "max",
    contention: Literal["none", "schedule", "share"] = "share",
    model_dir: Any = None,
    own_device: bool = False,
) -> dict[str, Any]:
    """A version-2 instance (docs/instance-format.md §9): ``users`` devices around one edge server.

    Each user ``u1 .. uN`` has its own ``user_device`` (ids ``DEVICE-1 .. DEVICE-N``), linked to the
    ``edge`` device by ``network`` (a star, as in Tang et al., arXiv 2007.09072); with ``cloud``, the
    edge also links to a cloud device by ``wan`` and routing is ``shortest`` (users reach the cloud
    through the edge). User ``i`` runs ``models[i % len(models)]`` from and back to its device. The
    models are written inline, read from ``model_dir/NAME.yaml`` (the zoo's models by default).
    Memory is not enforced (the multi-user literature assumes the weights fit). With ``own_device``,
    each request's ``allowed`` lists its own device and the servers (the edge, and the cloud if any):
    no user runs layers on another user's device, Tang et al.'s setting (``tang`` solves it with one
    server); without it a layer may also run on another user's device reached through the edge.
    """
    from pathlib import Path

    import yaml

    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    star = build_system([edge, f"{user_device}:{users}"], network, topology="star")
    devices, links = star["devices"], star["links"]
    if cloud is not None:
        up = build_system([edge, cloud], wan, topology="chain")
        devices = [*devices, up["devices"][1]]
        links = [*links, *up["links"]]
    zoo_models = Path(__file__).resolve().parents[1] / "instances" / "zoo" / "models"
    folder = Path(model_dir) if model_dir is not None else zoo_models
    model_data = {}
    for name in dict.fromkeys(models):
        path = folder / f"{name}.yaml"
        if not path.is_file():
            raise ValueError(f"model {name!r}: no file {path.name} among the zoo's models")
        model_data[name] = yaml.safe_load(path.read_text(encoding="utf-8"))
    user_ids = [d["id"] for d in star["devices"][1:]]
    servers = [d["id"] for d in devices if d["id"] not in user_ids]
    workload: list[dict[str, Any]] = [
        {"id": f"u{i + 1}", "model": models[i % len(models)], "source": dev, "sink": dev}
        | ({"allowed": [dev, *servers]} if own_device else {})
        for i, dev in enumerate(user_ids)
    ]
    return {
        "dnnpart": 2,
        "name": "-".join([*dict.fromkeys(models), f"x{users}", edge, *([cloud] if cloud else []), contention,
                          aggregate]),
        "models": model_data,
        "system": {"devices": devices, "links": links, "routing": "shortest" if cloud else "direct"},
        "workload": workload,
        "problem": {
            "objective": "latency",
            "aggregate": aggregate,
            "contention": contention,
            "constraints": {"memory": False},
        },
    }
