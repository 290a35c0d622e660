"""A live one-line progress display on stderr for ``dnnpart solve``: incumbent, bound, gap, time.

Shown for solves that last longer than :data:`DELAY_S`, when stderr is a terminal (and neither
``--json`` nor ``--verbose`` is given) or when ``--progress`` asks for it. The engines report
through :mod:`solvers.progress` (HiGHS and CP-SAT callbacks, values in SI units); a solver without
a callback still shows the elapsed time. The line is redrawn at most every :data:`REFRESH_S` by a
thread of its own, so the engines' callbacks only store the latest values.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from solvers import progress
from solvers.result import compute_gap

#: Seconds before the line first appears (short solves stay silent).
DELAY_S = 1.0
#: Seconds between redraws.
REFRESH_S = 0.25


def wanted(flag: bool | None, *, as_json: bool, verbose: bool, stream: TextIO | None = None) -> bool:
    """``--progress``/``--no-progress`` when given; otherwise on for a terminal without --json/-v."""
    if flag is not None:
        return flag
    s = stream if stream is not None else sys.stderr
    return not as_json and not verbose and bool(getattr(s, "isatty", lambda: False)())


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def line(p: progress.Progress | None, elapsed_s: float) -> str:
    """The progress line: ``incumbent 0.2987  bound 0.25  gap 16.3%  12.0 s``."""
    inc = p.incumbent if p is not None else None
    bnd = p.bound if p is not None else None
    gap = compute_gap(inc, bnd) if inc is not None and bnd is not None else None
    shown_gap = "-" if gap is None else ("inf" if gap == float("inf") else f"{gap:.2%}")
    return f"incumbent {_num(inc)}  bound {_num(bnd)}  gap {shown_gap}  {elapsed_s:.1f} s"


@contextmanager
def live_line(enabled: bool, stream: TextIO | None = None) -> Iterator[None]:
    """Redraw the progress line on ``stream`` (stderr) while the block runs; erase it at the end."""
    if not enabled:
        yield
        return
    out = stream if stream is not None else sys.stderr
    latest: list[progress.Progress | None] = [None]
    done = threading.Event()
    t0 = time.perf_counter()
    drawn = [0]

    def keep(p: progress.Progress) -> None:
        latest[0] = p

    def draw() -> None:
        if done.wait(DELAY_S):
            return
        while True:
            text = line(latest[0], time.perf_counter() - t0)
            out.write("\r" + text.ljust(drawn[0]))
            out.flush()
            drawn[0] = max(drawn[0], len(text))
            if done.wait(REFRESH_S):
                return

    painter = threading.Thread(target=draw, name="dnnpart-progress", daemon=True)
    painter.start()
    try:
        with progress.listening(keep):
            yield
    finally:
        done.set()
        painter.join()
        if drawn[0]:  # leave the last state on its own line
            out.write("\r" + line(latest[0], time.perf_counter() - t0).ljust(drawn[0]) + "\n")
            out.flush()
