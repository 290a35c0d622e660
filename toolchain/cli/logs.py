"""Solver logs on stderr, once, so that stdout holds only the command's own output.

Engines write their log to the process's standard output at the C level (HiGHS's
``log_to_console``, CP-SAT's ``log_to_stdout``, a Pyomo ``tee``), beside the JSON that
``solve --json`` prints there. :func:`stdout_to_stderr` points file descriptor 1 at a pipe whose
reader copies everything to stderr while the solve runs (the log stays live) and counts it; when
an engine echoed nothing, the captured ``Result.log`` is printed instead, so the log is shown once.

The engines' logs show their *scaled* model (:mod:`solvers.milp.scaling`, :mod:`formulation.cp.scaling`);
:func:`scaled_units_note` says how to read them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from formulation.model import Instance


@dataclass
class Echo:
    """What the engines wrote to standard output while redirected: ``bytes`` copied to stderr."""

    bytes: int = 0


def _flush_c_stdio() -> None:
    """Flush the C library's buffers (an engine's ``printf`` into a pipe is fully buffered)."""
    with contextlib.suppress(OSError, AttributeError):  # no C library to reach: nothing buffered there
        ctypes.CDLL(None).fflush(None)


@contextmanager
def stdout_to_stderr() -> Iterator[Echo]:
    """Send everything written to standard output (Python and C level) to stderr meanwhile."""
    echo = Echo()
    sys.stdout.flush()
    _flush_c_stdio()
    saved = os.dup(1)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.close(write_fd)

    def pump() -> None:
        while chunk := os.read(read_fd, 65536):
            echo.bytes += len(chunk)
            sys.stderr.write(chunk.decode("utf-8", errors="replace"))
            sys.stderr.flush()

    reader = threading.Thread(target=pump, name="dnnpart-log", daemon=True)
    reader.start()
    python_stdout = sys.stdout
    sys.stdout = sys.stderr  # Python-level prints of the engines and their wrappers
    try:
        yield echo
    finally:
        sys.stdout = python_stdout
        _flush_c_stdio()
        os.dup2(saved, 1)  # closes the pipe's last write end: the reader sees its end
        os.close(saved)
        reader.join()
        os.close(read_fd)


def scaled_units_note(inst: Instance, extra: dict[str, Any]) -> str:
    """One paragraph on how the engine's log relates to the reported values (SI units).

    The MILP engines see every continuous column divided by its unit scale
    (:func:`formulation.numerics.unit_scales`, the metrics of the best single-device placement)
    and the objective divided by its largest coefficient; CP-SAT counts integer ticks
    (``ticks_per_s``) and objective units (``objective_scale``).
    """
    from formulation.numerics import unit_scales

    try:
        sc = unit_scales(inst)
        scales = ", ".join(f"{unit} {value:.4g}" for unit, value in sorted(sc.items()) if unit != "1")
    except Exception:  # an instance the scales do not apply to (e.g. no finite placement)
        scales = "not defined for this instance"
    text = (
        "note: the engine's log shows its scaled model, not SI units. MILP engines (highs, scip, pyomo:*): "
        f"columns divided by the unit scales ({scales}) and the objective by its largest coefficient. "
    )
    if "ticks_per_s" in extra:
        text += (
            f"CP-SAT: times in integer ticks ({extra['ticks_per_s']:.6g} per s), the objective multiplied by "
            f"{float(extra.get('objective_scale') or 1):.6g} and rounded to an integer. "
        )
    return text + "The objective, bound and gap reported above are in SI units, judged by the evaluator."
