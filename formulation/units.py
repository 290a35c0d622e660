"""Quantities with units: ``"5.85 Mbit/s"`` -> ``731250.0`` (bytes per second), and back for display.

A quantity in an instance file is either a bare number, already in the SI base unit of its field,
or a string ``"<number> <unit>"``. Units are parsed by one small :mod:`pint` registry built on first
use, with its own base dimensions (byte, FLOP, USD, second, joule) so that nothing from pint's
large default catalogue (where ``B`` is a bel and ``bps`` is a baud) can leak in.

Decimal prefixes ``k M G T P`` are powers of 1000, binary prefixes ``Ki Mi Gi Ti Pi`` powers of
1024, ``m u n`` (and ``µ``) are 1e-3, 1e-6, 1e-9. One byte is eight bits.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal, get_args

from formulation.errors import InstanceError

if TYPE_CHECKING:  # pint costs a noticeable import time; load it only when a unit string appears
    import pint

Kind = Literal[
    "time",
    "bytes",
    "flops",
    "flop_rate",
    "byte_rate",
    "power",
    "energy",
    "usd",
    "usd_rate",
    "usd_per_byte",
    "number",
]
"""The unit kinds of instance fields; ``number`` is a plain dimensionless number (e.g. a weight)."""

KINDS: tuple[str, ...] = get_args(Kind)


@dataclass(frozen=True)
class _KindInfo:
    base: str  # SI base unit as pint parses it
    dims: str  # the pint dimensionality string it must have
    words: str  # for messages: what the field measures
    examples: str  # for messages: accepted spellings


_KIND_INFO: dict[str, _KindInfo] = {
    "time": _KindInfo("s", "[time]", "a time (seconds)", '0.03, "30 ms", "2 s", "150 us"'),
    "bytes": _KindInfo("B", "[information]", "a size in bytes", '602112, "600 kB", "2 GiB", "512 Mbit"'),
    "flops": _KindInfo("FLOP", "[compute]", "an amount of work in FLOP", '1.4e8, "0.4 GFLOP", "1 MFLOP"'),
    "flop_rate": _KindInfo(
        "FLOP/s", "[compute] / [time]", "a compute rate (FLOP/s)", '6e9, "6 GFLOP/s", "2 TFLOP/s"'
    ),
    "byte_rate": _KindInfo(
        "B/s",
        "[information] / [time]",
        "a data rate (bytes/s)",
        '731250, "5.85 Mbit/s", "3 GB/s", "100 Mbps"',
    ),
    "power": _KindInfo("W", "[energy] / [time]", "a power (watts)", '4, "4 W", "600 mW"'),
    "energy": _KindInfo("J", "[energy]", "an energy (joules)", '1.5, "1.5 J", "300 mJ"'),
    "usd": _KindInfo("USD", "[currency]", "an amount of money (USD)", '0.01, "0.01 USD"'),
    "usd_rate": _KindInfo(
        "USD/s",
        "[currency] / [time]",
        "a price per busy second (USD/s)",
        '0.00085, "3.06 USD/h", "0.01 USD/s"',
    ),
    "usd_per_byte": _KindInfo(
        "USD/B",
        "[currency] / [information]",
        "a price per byte (USD/B)",
        '9e-11, "0.09 USD/GB", "1e-9 USD/B"',
    ),
    "number": _KindInfo("", "", "a plain number", '0.5, 2, "1e-3"'),
}

# The registry's whole vocabulary. Pint also accepts a plural "s" (bits, bytes, seconds).
_DEFINITIONS = (
    "kilo- = 1e3 = k-",
    "mega- = 1e6 = M-",
    "giga- = 1e9 = G-",
    "tera- = 1e12 = T-",
    "peta- = 1e15 = P-",
    "milli- = 1e-3 = m-",
    "micro- = 1e-6 = u- = µ-",
    "nano- = 1e-9 = n-",
    "kibi- = 2**10 = Ki-",
    "mebi- = 2**20 = Mi-",
    "gibi- = 2**30 = Gi-",
    "tebi- = 2**40 = Ti-",
    "pebi- = 2**50 = Pi-",
    "second = [time] = s = sec",
    "minute = 60 * second = min",
    "hour = 3600 * second = h = hr",
    "day = 86400 * second = d",
    "byte = [information] = B",
    "bit = byte / 8",
    "bps = bit / second",
    "FLOP = [compute] = flop",
    # "GFLOPS" is the usual hardware-sheet spelling of GFLOP/s; lower-case "GFLOPs" is a plural count.
    "FLOPS = FLOP / second",
    "USD = [currency] = usd",
    "joule = [energy] = J",
    "watt = joule / second = W",
)

# Spellings offered as "did you mean" suggestions for an unknown unit.
_COMMON: dict[str, tuple[str, ...]] = {
    "time": ("s", "ms", "us", "ns", "min", "h"),
    "bytes": ("B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "bit", "kbit", "Mbit", "Gbit"),
    "flops": ("FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP"),
    "flop_rate": ("FLOP/s", "kFLOP/s", "MFLOP/s", "GFLOP/s", "TFLOP/s", "GFLOPS", "TFLOPS"),
    "byte_rate": (
        *("B/s", "kB/s", "MB/s", "GB/s", "KiB/s", "MiB/s", "GiB/s"),
        *("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "bps", "kbps", "Mbps", "Gbps"),
    ),
    "power": ("W", "mW", "kW"),
    "energy": ("J", "mJ", "kJ"),
    "usd": ("USD",),
    "usd_rate": ("USD/s", "USD/h"),
    "usd_per_byte": ("USD/B", "USD/kB", "USD/MB", "USD/GB", "USD/TB"),
    "number": (),
}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*({_NUMBER})\s*(.*?)\s*$")


@cache
def _registry() -> pint.UnitRegistry:
    import pint

    ureg: pint.UnitRegistry = pint.UnitRegistry(None, cache_folder=None)
    for line in _DEFINITIONS:
        ureg.define(line)
    return ureg


class _UnitError(ValueError):
    """A unit string that could not be used for a kind; the text says why."""


@lru_cache(maxsize=512)
def unit_factor(unit: str, kind: Kind) -> float:
    """The factor that converts one ``unit`` into the SI base unit of ``kind``.

    Parameters
    ----------
    unit : str
        A unit expression such as ``"Mbit/s"`` or ``"USD/h"``.
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    float
        Multiply a magnitude in ``unit`` by this to get the base unit.

    Raises
    ------
    ValueError
        If the unit is unknown or of another dimension than ``kind``.
    """
    import pint

    info = _KIND_INFO[kind]
    ureg = _registry()
    if re.search(r"\d", re.sub(r"(\*\*|\^)\s*[+-]?\d+", "", unit)):
        # Digits outside exponents mean arithmetic ("2 * 3 s", "USD/1000 B"), which files must not use.
        raise _UnitError(f"unreadable unit {unit!r} (write one number, then the unit)")
    try:
        parsed = ureg.parse_units(unit)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError) as exc:
        raise _UnitError(f"unknown unit {unit!r}{_suggest(unit, kind)}") from exc
    except Exception as exc:  # pint's tokenizer raises assorted errors on garbage
        raise _UnitError(f"unreadable unit {unit!r}") from exc
    if kind == "number":
        if not parsed.dimensionless:
            raise _UnitError(f"a plain number takes no unit (got {unit!r})")
        return float(ureg.Quantity(1.0, parsed).to("dimensionless").magnitude)
    dims = str(parsed.dimensionality)
    if dims != info.dims:
        raise _UnitError(f"{unit!r} measures {_describe_dims(dims)}")
    return float(ureg.Quantity(1.0, parsed).to(info.base).magnitude)


def _scale(number: float, factor: float) -> float:
    """``number * factor``, dividing by ``1/factor`` when that is a whole number.

    Dividing by an exact integer rounds once, so ``"0.05 USD/GB"`` gives ``5e-11`` and ``"0.3 ms"``
    gives ``0.0003`` exactly as ``0.05 / 1e9`` and ``0.3 / 1000`` would, where multiplying by the
    inexact ``1e-9`` or ``0.001`` leaves a last-digit error.
    """
    if 0 < abs(factor) < 1:
        inverse = 1.0 / factor
        whole = round(inverse)
        if whole and abs(inverse - whole) <= 1e-9 * abs(whole):
            return number / whole
    return number * factor


def _suggest(unit: str, kind: Kind) -> str:
    import difflib

    common = _COMMON[kind]
    same_letters = [c for c in common if c.lower() == unit.lower()]
    close = same_letters or difflib.get_close_matches(unit, common, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _describe_dims(dims: str) -> str:
    """Say a pint dimensionality in the words of this module, e.g. ``[compute] / [time]`` -> FLOP/s."""
    for info in _KIND_INFO.values():
        if info.dims == dims and info.dims:
            return info.words
    return "no unit" if dims == "dimensionless" else dims


def expected_text(kind: Kind) -> str:
    """What a field of ``kind`` accepts, in words with examples, for error messages."""
    info = _KIND_INFO[kind]
    return f"{info.words} such as {info.examples}"


def parse_quantity(value: Any, kind: Kind, *, file: str = "<dict>", path: str = "") -> float:
    """Convert a file quantity to a float in the SI base unit of ``kind``.

    Parameters
    ----------
    value : int, float or str
        A bare number (already in the base unit) or a string ``"<number> <unit>"``; a numeric
        string without a unit (``"1e9"``, which YAML leaves as a string) is a bare number.
    kind : str
        One of ``time, bytes, flops, flop_rate, byte_rate, power, energy, usd, usd_rate,
        usd_per_byte`` (or ``number`` for a dimensionless value).
    file, path : str
        Where the value is, for the error message.

    Returns
    -------
    float
        The finite value in the base unit (sign not checked: that is the caller's rule).

    Raises
    ------
    InstanceError
        For a boolean, a non-number, NaN, infinity, an unknown unit or a unit of the wrong dimension.

    Examples
    --------
    >>> parse_quantity("5.85 Mbit/s", "byte_rate")
    731250.0
    >>> parse_quantity("2 GiB", "bytes")
    2147483648.0
    """
    if kind not in _KIND_INFO:
        raise ValueError(f"unknown quantity kind {kind!r}; one of {KINDS}")
    if isinstance(value, bool):
        raise InstanceError(file, path, value, expected_text(kind) + " (a number, not a boolean)")
    if isinstance(value, numbers.Real):
        result = float(value)
        if not math.isfinite(result):
            raise InstanceError(file, path, value, expected_text(kind) + " (a finite number)")
        return result
    if not isinstance(value, str):
        raise InstanceError(file, path, value, expected_text(kind))
    match = _QUANTITY_RE.match(value)
    if match is None:
        raise InstanceError(file, path, value, expected_text(kind) + ' (written "<number> <unit>")')
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        result = number
    else:
        try:
            result = _scale(number, unit_factor(unit, kind))
        except _UnitError as exc:
            raise InstanceError(file, path, value, f"{expected_text(kind)}; {exc}") from None
    if not math.isfinite(result):  # "1e400 B" overflows to inf
        raise InstanceError(file, path, value, expected_text(kind) + " (a finite number)")
    return result


# Display units per kind, largest first: (size of the unit in base units, its label).
_DISPLAY: dict[str, tuple[tuple[float, str], ...]] = {
    "time": ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")),
    "bytes": ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1.0, "B")),
    "flops": ((1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP"), (1.0, "FLOP")),
    "flop_rate": ((1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1e6, "MFLOP/s"), (1e3, "kFLOP/s"), (1.0, "FLOP/s")),
    "byte_rate": ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s"), (1.0, "B/s")),
    "power": ((1e3, "kW"), (1.0, "W"), (1e-3, "mW"), (1e-6, "uW")),
    "energy": ((1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")),
    "usd": ((1.0, "USD"),),
    "usd_rate": ((1.0 / 3600.0, "USD/h"),),
    "usd_per_byte": ((1e-9, "USD/GB"),),
    "number": ((1.0, ""),),
}


def format_quantity(value: float, kind: Kind, *, digits: int = 4) -> str:
    """Show a base-unit value with a readable unit, e.g. ``731250, "byte_rate"`` -> ``"731.2 kB/s"``.

    Parameters
    ----------
    value : float
        The value in the SI base unit of ``kind``.
    kind : str
        One of :data:`KINDS`.
    digits : int
        Significant digits.

    Returns
    -------
    str
        ``"<number> <unit>"``, which :func:`parse_quantity` reads back to about ``value``;
        ``"inf"``/``"nan"`` for non-finite values.
    """
    scales = _DISPLAY[kind]
    if not math.isfinite(value):
        return f"{value} {scales[-1][1]}".strip()
    chosen = scales[-1]
    if value == 0:
        chosen = next((sc for sc in scales if sc[0] == 1.0), scales[0])
    for scale in scales if value else ():
        if abs(value) >= scale[0]:
            chosen = scale
            break
    factor, label = chosen
    return f"{value / factor:.{digits}g} {label}".strip()
