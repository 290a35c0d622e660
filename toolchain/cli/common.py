"""Shared pieces of the command line: loading with clean errors, exit codes, printing results."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from formulation.errors import EXIT_BAD_INPUT, EXIT_NO_SOLUTION, EXIT_OK, BadInput
from formulation.model import Instance
from toolchain.cli.guard import describe, report

__all__ = ["EXIT_BAD_INPUT", "EXIT_NO_SOLUTION", "EXIT_OK", "esc"]

# Emoji codes (``:x:``) and console markup (``[red]``) must never rewrite a user's value: every
# value from an input is passed through :func:`esc` where markup is on, and emoji are off.
# Markup is off by default (table cells and plain prints show ids as written); the few lines
# that style text pass ``markup=True`` and escape what they interpolate.
console = Console(soft_wrap=True, emoji=False, markup=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False, markup=False)


def esc(value: object) -> str:
    """``str(value)`` with console markup escaped, for interpolation into a markup string."""
    return escape(str(value))


class UserError(BadInput):
    """A problem with what the user asked for (shown as one paragraph, exit code 2)."""


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``message`` to stderr (no traceback, no markup interpretation) and exit with ``code``."""
    raise report((code, message))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad-input exceptions into a one-paragraph message and their exit code.

    Everything :func:`toolchain.cli.guard.describe` knows as bad input is handled here (the
    catalogue of :mod:`formulation.errors`, solver option errors, files that cannot be read);
    anything else goes on to the app's guard, which reports it as an internal error.
    """
    try:
        yield
    except Exception as exc:
        described = describe(exc, internal=False)
        if described is None:
            raise
        raise report(described, exc) from None


def load(path: str | Path, allow_outside: bool = False) -> Instance:
    """Load an instance file (errors propagate; wrap the call in :func:`user_errors`)."""
    from formulation.loader import load_instance

    return load_instance(Path(path), allow_outside=allow_outside)


def read_json(path: str | Path, what: str) -> Any:
    """Read a JSON file given by the user, with a clear error when it is malformed."""
    from formulation.yamlio import check_tree, read_bytes

    p = Path(path)
    raw = read_bytes(p)  # a regular file within DNNPART_MAX_FILE_BYTES
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: {what} is not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{p}: line {exc.lineno} column {exc.colno}: {what} is not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise UserError(f"{p}: {what} is nested too deeply to be read") from None
    except ValueError as exc:  # an integer literal too long to convert
        raise UserError(f"{p}: {what} holds a number too long to read ({str(exc)[:80]})") from None
    check_tree(data, str(p))
    return data


def jsonable(x: Any) -> Any:
    """Non-finite floats to ``null`` so the output is strict JSON (see :func:`solvers.result.json_number`)."""
    from solvers.result import json_safe

    return json_safe(x)


def dump_json(obj: Any) -> str:
    """Strict JSON text of ``obj``."""
    return json.dumps(jsonable(obj), indent=2, allow_nan=False)


def segments(inst: Instance, placement: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The placement as maximal runs of consecutive layers (topological order) on one device."""
    out: list[tuple[str, list[str]]] = []
    for lay in inst.graph.layer_ids:
        dev = placement[lay]
        if out and out[-1][0] == dev:
            out[-1][1].append(lay)
        else:
            out.append((dev, [lay]))
    return out


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}{(' ' + unit) if unit else ''}"


def print_result(inst: Instance, res: Any) -> None:
    """Human output of a Result: status, the placement as segments, metrics and proof."""
    c = console
    method = f" (method {res.method})" if res.method and res.method != res.solver else ""
    c.print(
        f"[bold]{esc(inst.name)}[/]  solver [cyan]{esc(res.solver)}[/]{esc(method)}  "
        f"status [bold]{res.status.value}[/]  termination {res.termination.value}",
        highlight=False,
        markup=True,
    )
    if res.message:
        c.print(res.message, highlight=False)
    if res.metrics is None:
        return
    c.print(
        f"objective {_fmt(res.objective)}  bound {_fmt(res.bound)}  gap {_fmt(res.gap)}  "
        f"time {res.wall_time_s:.3f} s",
        highlight=False,
    )
    seg = Table(title="placement (layers in topological order)", show_lines=False)
    seg.add_column("device")
    seg.add_column("layers")
    for dev, lays in segments(inst, res.placement):
        shown = lays[0] if len(lays) == 1 else f"{lays[0]} .. {lays[-1]} ({len(lays)} layers)"
        seg.add_row(dev, shown)
    c.print(seg)
    print_metrics(inst, res.metrics)


def print_metrics(inst: Instance, ev: Any) -> None:
    """A table of every metric of an Evaluation."""
    t = Table(title="metrics")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("latency (" + inst.problem.execution + ")", _fmt(ev.latency_s, "s"))
    t.add_row("latency sequential", _fmt(ev.latency_sequential_s, "s"))
    t.add_row("latency parallel", _fmt(ev.latency_parallel_s, "s"))
    t.add_row("period", _fmt(ev.period_s, "s"))
    t.add_row("throughput", _fmt(ev.throughput_per_s, "1/s"))
    t.add_row("energy (scope)", _fmt(ev.energy_total_j, "J"))
    for d, e in ev.energy_j.items():
        t.add_row(f"  energy {d}", _fmt(e, "J"))
    t.add_row("cost", _fmt(ev.cost_usd, "USD"))
    for d, m in ev.memory_bytes.items():
        t.add_row(f"memory {d}", _fmt(m, "B"))
    for ln, b in ev.link_bytes.items():
        if b:
            t.add_row(f"link {ln}", f"{_fmt(b, 'B')}, busy {_fmt(ev.link_busy_s[ln], 's')}")
    console.print(t)
    if getattr(ev, "workload", None):  # version 2: one row per request (docs/instance-format.md §9.8)
        wl = ev.workload
        r = Table(title=f"requests ({wl['contention']}, aggregate {wl['aggregate']}, routing {wl['routing']})")
        for col in ("request", "model", "source", "latency", "alone", "completion", "shares"):
            r.add_column(col, justify="right" if col in ("latency", "alone", "completion") else "left")
        for rid, q in wl["requests"].items():
            shares = ", ".join(f"{k} {v:.3g}" for k, v in q.get("shares", {}).items() if v < 1)
            r.add_row(rid, q["model"], q["source"], _fmt(q["latency_s"], "s"), _fmt(q["latency_alone_s"], "s"),
                      _fmt(q["completion_s"], "s"), shares)
        console.print(r)
    if getattr(ev, "choices", None):  # variants and exits (docs/instance-format.md §11.4)
        print_choices(ev.choices)
    for v in ev.violations:
        console.print(f"[red]violation[/] {esc(v.kind)}: {esc(v.message)}", highlight=False, markup=True)


def print_choices(ch: dict[str, Any]) -> None:
    """The configuration of a result: variants, exit, accuracy and, with several paths, each path."""
    variants = ", ".join(f"{lay} {name}" for lay, name in ch.get("variants", {}).items()) or "-"
    floor = f" (min {ch['min_accuracy']:.6g})" if ch.get("min_accuracy") is not None else ""
    exit_ = f"  exit {ch['exit']}" if ch.get("exit") else ""
    console.print(
        f"configuration ({ch['mode']}): variants {variants}{exit_}  accuracy {ch['accuracy']:.6g}{floor}",
        highlight=False,
        markup=False,
    )
    if len(ch.get("paths", [])) > 1:
        t = Table(title="paths (exits tried in order)")
        for col in ("exit layer", "weight", "latency", "layers"):
            t.add_column(col, justify="right" if col in ("weight", "latency") else "left")
        for p in ch["paths"]:
            t.add_row(str(p["exit"]), f"{p['weight']:.6g}", _fmt(p["latency_s"], "s"), str(len(p["layers"])))
        console.print(t)


def exit_code_of(res: Any) -> int:
    """0 when a solution is held, 1 otherwise (2 is raised earlier for bad input)."""
    return EXIT_OK if res.has_solution else EXIT_NO_SOLUTION


def echo_err(msg: str) -> None:
    """Print a plain line to stderr."""
    print(msg, file=sys.stderr)
