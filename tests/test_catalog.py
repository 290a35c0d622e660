"""Device and network catalogues (every number sourced and parseable) and the scenario builder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from formulation.loader import load_instance_data
from formulation.units import parse_quantity
from toolchain import catalog
from toolchain.cli import app
from toolchain.scenario import build_system, expand_devices

DEVICE_KINDS = {"compute": "flop_rate", "memory_bandwidth": "byte_rate", "memory": "bytes",
                "power_active": "power", "power_idle": "power", "price": "usd_rate"}
NETWORK_KINDS = {"bandwidth": "byte_rate", "latency": "time", "tx_power": "power", "rx_power": "power"}
TINY_MODEL = {"inputs": [{"id": "x", "bytes": 1000}],
              "layers": [{"id": "a", "op": "conv2d", "inputs": ["x"], "flops": 1e9, "output_bytes": 500}]}


def test_every_catalogue_number_has_a_source() -> None:
    assert catalog.unsourced() == []


def test_catalogues_cover_the_issue_list() -> None:
    assert {"rpi3b", "rpi4", "rpi5", "jetson-nano", "jetson-tx2", "xavier-nx", "agx-orin", "phone", "nuc",
            "edge-gpu", "v100", "a100", "h100"} <= set(catalog.devices())
    assert {"nbiot", "3g", "lte", "wifi", "5g", "wifi6", "ethernet-1g", "ethernet-10g"} <= set(catalog.networks())


@pytest.mark.parametrize("name", sorted(catalog.devices()))
def test_device_figures_parse_in_their_units(name: str) -> None:
    entry = catalog.device(name)
    assert entry["tier"] in ("end", "edge", "cloud", "other")
    for field, kind in DEVICE_KINDS.items():
        value = parse_quantity(entry[field]["value"], kind)  # type: ignore[arg-type]
        assert value >= 0 and (value > 0 or field == "price"), (name, field)
    active = parse_quantity(entry["power_active"]["value"], "power")
    assert active > parse_quantity(entry["power_idle"]["value"], "power")


@pytest.mark.parametrize("name", sorted(catalog.networks()))
def test_network_figures_parse_in_their_units(name: str) -> None:
    entry = catalog.network(name)
    assert parse_quantity(entry["bandwidth"]["value"], "byte_rate") > 0
    for field, kind in NETWORK_KINDS.items():
        assert parse_quantity(entry[field]["value"], kind) >= 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("net", "rate_mbps", "alpha_u", "alpha_d", "beta"),
    [
        ("lte", 5.85, 438.39, 51.97, 1288.04),
        ("wifi", 18.88, 283.17, 137.01, 132.86),
        ("3g", 1.1, 868.98, 122.12, 817.88),
    ],
)
def test_radio_power_follows_huang_et_al(
    net: str, rate_mbps: float, alpha_u: float, alpha_d: float, beta: float
) -> None:
    # P = alpha * rate + beta (mW), Huang et al. MobiSys 2012, Table 4; e.g. LTE tx 438.39*5.85 + 1288.04 = 3852.6 mW
    entry = catalog.network(net)
    assert parse_quantity(entry["bandwidth"]["value"], "byte_rate") == pytest.approx(rate_mbps * 1e6 / 8)
    tx = parse_quantity(entry["tx_power"]["value"], "power")
    rx = parse_quantity(entry["rx_power"]["value"], "power")
    assert tx == pytest.approx((alpha_u * rate_mbps + beta) / 1e3, abs=1e-3)
    assert rx == pytest.approx((alpha_d * rate_mbps + beta) / 1e3, abs=1e-3)


def test_two_tier_system_loads_with_catalogue_figures() -> None:
    system = build_system(["phone", "cloud"], "lte")
    inst = load_instance_data({"dnnpart": 1, "name": "t", "model": TINY_MODEL, "system": system})
    s = inst.system
    assert s.device_ids == ("phone", "cloud") and (s.source, s.sink) == ("phone", "phone")
    assert list(s.compute) == [20e9, 7.85e12]  # "cloud" is an alias of v100
    assert s.bandwidth[0, 1] == s.bandwidth[1, 0] == 5.85e6 / 8  # 731250 B/s both ways
    assert s.link_latency[0, 1] == pytest.approx(0.040)
    assert s.link_price[0, 1] == pytest.approx(0.09e-9)  # 0.09 USD/GB on the link touching the cloud
    assert s.price[1] == pytest.approx(3.06 / 3600)
    assert list(s.trusted) == [True, False]


def test_three_tier_chain_and_cluster_mesh() -> None:
    three = build_system(["rpi4", "nuc", "v100"], ["wifi", "wan"])
    assert [(lk["from"], lk["to"], lk["bandwidth"]) for lk in three["links"]] == [
        ("rpi4", "nuc", "18.88 Mbit/s"), ("nuc", "v100", "100 Mbit/s")]
    assert "price" not in three["links"][0] and three["links"][1]["price"] == "0.09 USD/GB"
    cluster = build_system(["rpi3b:4"], "wifi")
    assert [d["id"] for d in cluster["devices"]] == ["rpi3b-1", "rpi3b-2", "rpi3b-3", "rpi3b-4"]
    assert len(cluster["links"]) == 6  # all 4*3/2 pairs
    star = build_system(["phone", "nuc", "v100"], "wifi", topology="star", sink=None)
    assert [(lk["from"], lk["to"]) for lk in star["links"]] == [("phone", "nuc"), ("phone", "v100")]
    assert "sink" not in star


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"devices": ["phone", "bogus"], "networks": "lte"}, catalog.CatalogError, "unknown device 'bogus'"),
        ({"devices": ["phone", "cloud"], "networks": "carrier-pigeon"}, catalog.CatalogError, "unknown network"),
        ({"devices": ["phone", "nuc", "v100"], "networks": ["wifi", "wan", "lte"]}, ValueError, "3 networks given"),
        ({"devices": ["rpi3b:zero"], "networks": "wifi"}, ValueError, "positive integer"),
        ({"devices": ["phone", "phone"], "networks": "wifi"}, ValueError, "listed twice"),
        ({"devices": ["phone", "cloud"], "networks": "lte", "sink": "edge"}, ValueError, "sink 'edge'"),
    ],
)
def test_scenario_errors_name_the_problem(kwargs: dict, error: type, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=message):
        build_system(**kwargs)


def test_expand_devices_keeps_alias_ids() -> None:
    assert expand_devices(["cloud", "orin:2"]) == [("cloud", "v100"), ("orin-1", "agx-orin"), ("orin-2", "agx-orin")]


runner = CliRunner()


def test_cli_scenario_writes_a_system_file(tmp_path: Path) -> None:
    out = tmp_path / "sys.yaml"
    res = runner.invoke(app, ["scenario", "--devices", "phone,cloud", "--network", "lte", "-o", str(out)])
    assert res.exit_code == 0, res.output
    system = yaml.safe_load(out.read_text())
    inst = load_instance_data({"dnnpart": 1, "name": "t", "model": TINY_MODEL, "system": system})
    assert inst.system.device_ids == ("phone", "cloud")
    assert "Neurosurgeon" not in out.read_text() and "toolchain/catalog" in out.read_text()


def test_cli_scenario_bad_name_exits_2() -> None:
    res = runner.invoke(app, ["scenario", "--devices", "phone,toaster", "--network", "lte"])
    assert res.exit_code == 2
    assert "unknown device 'toaster'" in res.output and "Traceback" not in res.output
