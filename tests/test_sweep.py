"""Parameter sweeps: path syntax, value ranges, units, and the optimal cut moving with bandwidth.

The instance (``offload_choice``): phone ``m`` (1 GFLOP/s, 2 W active, 0.5 W idle) and cloud ``c``
(1 TFLOP/s), a 1 MB input ``x`` and one layer ``a`` (1 GFLOP, 1 kB output); source and sink ``m``;
the link has no latency and 1 W transmit power.

* local: latency 1e9 / 1e9 = 1 s.
* offload: 1e9 / 1e12 = 0.001 s of compute plus (1e6 + 1e3) / B seconds of transfers.

Offloading wins when 0.001 + 1.001e6 / B < 1, i.e. B > 1.002e6 B/s (8.016 Mbit/s). At 16 Mbit/s
(2e6 B/s) the latency is 0.001 + 0.5005 = 0.5015 s; at 64 Mbit/s (8e6 B/s) 0.001 + 0.125125 =
0.126125 s; at 1 and 4 Mbit/s everything stays on the phone (1 s).
"""

from __future__ import annotations

import pytest

from formulation.errors import InstanceError
from formulation.model import Device, Graph, Instance, Layer, Link, ModelInput, System
from toolchain.sweep import SweepError, apply, describe_cut, parse_param, parse_values, run_sweep, to_si


def offload_choice(a: str = "m", b: str = "c") -> Instance:
    devices = [Device(a, 1e9, power_active_w=2.0, power_idle_w=0.5, trusted=True), Device(b, 1e12)]
    links = [Link(a, b, 1e6, tx_power_w=1.0), Link(b, a, 1e6, tx_power_w=1.0)]
    graph = Graph("one", [ModelInput("x", 1e6)], [Layer("a", "conv", ("x",), flops=1e9, output_bytes=1e3)])
    return Instance("offload-choice", graph, System(devices, links, a, a))


def test_bandwidth_sweep_moves_the_optimal_cut() -> None:
    vals, log = parse_values("1,4,16,64")
    sw = run_sweep(offload_choice(), "links.m-c.bandwidth", vals, log=log, solver="brute")
    t = sw.table()
    assert t["status"].tolist() == ["optimal"] * 4
    assert t["latency_s"].tolist() == pytest.approx([1.0, 1.0, 0.5015, 0.126125])
    assert sw.cuts() == ["all on m", "all on m", "all on c", "all on c"]
    # energy at 16 Mbit/s (scope: both devices): m transmits x for 0.5 s at 1 W and idles
    # 0.5015 - 0.5 - 0.0005 = 0.001 s at 0.5 W; c transmits a's output for 0.0005 s at 1 W
    assert t["energy_total_j"][2] == pytest.approx(0.5 + 0.5 * 0.001 + 0.0005)
    assert sw.label == "links.m-c.bandwidth [Mbit/s]"


def test_value_ranges() -> None:
    vals, log = parse_values("0.5:32:log", points=7)
    assert log and vals == pytest.approx([0.5, 1, 2, 4, 8, 16, 32])
    assert parse_values("0:10", points=3) == ([0.0, 5.0, 10.0], False)
    assert parse_values("0:10:lin", points=3) == ([0.0, 5.0, 10.0], False)
    for bad in ("a:b", "1:2:cubic", "0:4:log", "", "1:2:3:4"):
        with pytest.raises(SweepError):
            parse_values(bad)


def test_units_and_directions() -> None:
    inst = offload_choice()
    both = parse_param(inst, "links.m-c.bandwidth")
    one = parse_param(inst, "links.m->c.bandwidth")
    assert both.target == (("m", "c"), ("c", "m")) and one.target == (("m", "c"),)
    # 16 Mbit/s = 2e6 B/s, however it is written
    assert to_si(both, 16) == 2e6 and to_si(both, 16000, "kbit/s") == 2e6 and to_si(both, 2, "MB/s") == 2e6
    changed = apply(inst, one, 2e6)
    assert changed.system.bandwidth.tolist() == [[float("inf"), 2e6], [1e6, float("inf")]]
    assert inst.system.links["m", "c"].bandwidth_bytes_per_s == 1e6  # the original is untouched
    with pytest.raises(InstanceError, match="measures a power"):
        to_si(both, 3, "W")
    dev = parse_param(inst, "devices.c.compute")
    assert apply(inst, dev, to_si(dev, 500)).time[0, 1] == pytest.approx(1e9 / 5e11)  # 500 GFLOP/s
    dl = parse_param(inst, "problem.deadline")
    assert apply(inst, dl, to_si(dl, 250)).problem.constraints.deadline_s == 0.25  # ms


def test_device_ids_with_hyphens_and_bad_paths() -> None:
    inst = offload_choice("edge-1", "cloud-a")
    assert parse_param(inst, "links.edge-1-cloud-a.latency").target == (("edge-1", "cloud-a"), ("cloud-a", "edge-1"))
    for bad, why in [
        ("links.edge-1-moon.bandwidth", "names no link"),
        ("links.edge-1-cloud-a.speed", "no sweepable field 'speed'"),
        ("devices.moon.compute", "no device 'moon'"),
        ("problem.objective", "problem parameters"),
        ("planets.x.y", "expected links"),
    ]:
        with pytest.raises(SweepError, match=why):
            parse_param(inst, bad)


def test_describe_cut() -> None:
    from solvers.testing import CASES

    chain = CASES[0].build()
    assert describe_cut(chain, {"a": "m", "b": "c", "c": "c"}) == "m a | c b..c"
    assert describe_cut(chain, {"a": "c", "b": "c", "c": "c"}) == "all on c"
