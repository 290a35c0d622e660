"""Quantity parsing and display (formulation.units)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formulation.errors import InstanceError
from formulation.units import KINDS, format_quantity, parse_quantity

CASES = [
    # time
    ("30 ms", "time", 0.03),
    ("2 s", "time", 2.0),
    ("150 us", "time", 150e-6),
    ("150 µs", "time", 150e-6),
    ("40 ns", "time", 40e-9),
    ("1 min", "time", 60.0),
    ("0.3 ms", "time", 0.0003),
    # bytes: decimal vs binary prefixes, bits
    ("1 B", "bytes", 1.0),
    ("600 kB", "bytes", 600_000.0),
    ("1 KiB", "bytes", 1024.0),
    ("2 MB", "bytes", 2e6),
    ("256 MiB", "bytes", 256 * 2**20),
    ("2 GiB", "bytes", 2 * 1024**3),
    ("1 GB", "bytes", 1e9),
    ("1 TB", "bytes", 1e12),
    ("1 TiB", "bytes", 2.0**40),
    ("8 bit", "bytes", 1.0),
    ("1 kbit", "bytes", 125.0),
    ("512 Mbit", "bytes", 64e6),
    ("1 Gbit", "bytes", 1.25e8),
    # work and compute rate
    ("1.2 GFLOP", "flops", 1.2e9),
    ("1 MFLOP", "flops", 1e6),
    ("3 kFLOP", "flops", 3e3),
    ("2 TFLOP", "flops", 2e12),
    ("6 GFLOP/s", "flop_rate", 6e9),
    ("3 TFLOP/s", "flop_rate", 3e12),
    ("20 GFLOPS", "flop_rate", 2e10),
    # data rates: bit vs byte
    ("5.85 Mbit/s", "byte_rate", 731_250.0),
    ("100 Mbit/s", "byte_rate", 12.5e6),
    ("8 bit/s", "byte_rate", 1.0),
    ("1 kbit/s", "byte_rate", 125.0),
    ("1 Gbit/s", "byte_rate", 1.25e8),
    ("100 Mbps", "byte_rate", 12.5e6),
    ("1 kbps", "byte_rate", 125.0),
    ("8 bps", "byte_rate", 1.0),
    ("1 Gbps", "byte_rate", 1.25e8),
    ("3 GB/s", "byte_rate", 3e9),
    ("1 kB/s", "byte_rate", 1e3),
    ("1 KiB/s", "byte_rate", 1024.0),
    ("1 MiB/s", "byte_rate", 2.0**20),
    ("600 GB/s", "byte_rate", 6e11),
    # power, energy
    ("4 W", "power", 4.0),
    ("600 mW", "power", 0.6),
    ("1.5 J", "energy", 1.5),
    ("300 mJ", "energy", 0.3),
    # money
    ("0.01 USD", "usd", 0.01),
    ("3.06 USD/h", "usd_rate", 3.06 / 3600),
    ("0.5 USD/s", "usd_rate", 0.5),
    ("0.09 USD/GB", "usd_per_byte", 0.09 / 1e9),
    ("0.05 USD/GB", "usd_per_byte", 5e-11),
    ("1 USD/B", "usd_per_byte", 1.0),
    ("1 USD/MB", "usd_per_byte", 1e-6),
    # bare numbers are already SI; numeric strings (YAML keeps 1e9 as a string) too
    (731250, "byte_rate", 731_250.0),
    (0.04, "time", 0.04),
    ("1e9", "flops", 1e9),
    ("  2.5e-3  ", "time", 2.5e-3),
    ("600kB", "bytes", 600_000.0),
    (0, "flops", 0.0),
    ("-1 kB", "bytes", -1000.0),  # the sign is the loader's business
]


@pytest.mark.parametrize(("value", "kind", "expected"), CASES, ids=[f"{v}-{k}" for v, k, _ in CASES])
def test_parse(value: object, kind: str, expected: float) -> None:
    got = parse_quantity(value, kind, file="f.yaml", path="x")  # type: ignore[arg-type]
    assert got == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_exact_where_it_matters() -> None:
    # These are the figures the examples' expected results are computed from.
    assert parse_quantity("5.85 Mbit/s", "byte_rate") == 731250.0
    assert parse_quantity("3.06 USD/h", "usd_rate") == 3.06 / 3600
    assert parse_quantity("0.09 USD/GB", "usd_per_byte") == 0.09e-9
    assert parse_quantity("40 ms", "time") == 0.04
    assert parse_quantity("2 GiB", "bytes") == 2 * 1024**3


def test_kib_is_not_kb() -> None:
    assert parse_quantity("1 KiB", "bytes") == 1024.0
    assert parse_quantity("1 kB", "bytes") == 1000.0


BAD = [
    ("5 GFLOP/s", "byte_rate", "'GFLOP/s' measures a compute rate"),
    ("6 GB/s", "flop_rate", "'GB/s' measures a data rate"),
    ("2 GFLOPs", "flop_rate", "measures an amount of work"),
    ("1 s", "bytes", "measures a time"),
    ("40 jiffies", "time", "unknown unit 'jiffies'"),
    ("3 KB", "bytes", "did you mean 'kB'"),
    ("5 Kbps", "byte_rate", "did you mean 'kbps'"),
    ("lots", "flops", 'written "<number> <unit>"'),
    ("", "flops", 'written "<number> <unit>"'),
    ("nan", "time", 'written "<number> <unit>"'),
    ("2 * 3 s", "time", "write one number, then the unit"),
    ("1 USD/1000 B", "usd_per_byte", "write one number, then the unit"),
    (True, "bytes", "not a boolean"),
    (False, "time", "not a boolean"),
    (math.nan, "time", "a finite number"),
    (math.inf, "bytes", "a finite number"),
    ("1e400 B", "bytes", "a finite number"),
    (None, "time", "a time (seconds)"),
    ([1], "time", "a time (seconds)"),
    ("5 s", "number", "a plain number takes no unit"),
]


@pytest.mark.parametrize(("value", "kind", "fragment"), BAD, ids=[f"{v}-{k}" for v, k, _ in BAD])
def test_bad(value: object, kind: str, fragment: str) -> None:
    with pytest.raises(InstanceError) as info:
        parse_quantity(value, kind, file="inst.yaml", path="system.devices[0].compute")  # type: ignore[arg-type]
    msg = str(info.value)
    assert msg.startswith("inst.yaml: system.devices[0].compute: got ")
    assert fragment in msg
    assert repr(value)[:20] in msg


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown quantity kind"):
        parse_quantity(1, "volts")  # type: ignore[arg-type]


def test_format_examples() -> None:
    assert format_quantity(731250, "byte_rate") == "731.2 kB/s"
    assert format_quantity(0.04, "time") == "40 ms"
    assert format_quantity(0, "time") == "0 s"
    assert format_quantity(6e9, "flop_rate") == "6 GFLOP/s"
    assert format_quantity(3.06 / 3600, "usd_rate") == "3.06 USD/h"
    assert format_quantity(9e-11, "usd_per_byte") == "0.09 USD/GB"
    assert format_quantity(0.6, "power") == "600 mW"
    assert format_quantity(math.inf, "bytes") == "inf B"


@given(
    kind=st.sampled_from([k for k in KINDS if k != "number"]),
    value=st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False),
)
def test_format_reads_back(kind: str, value: float) -> None:
    text = format_quantity(value, kind, digits=12)  # type: ignore[arg-type]
    assert parse_quantity(text, kind) == pytest.approx(value, rel=1e-9)  # type: ignore[arg-type]
