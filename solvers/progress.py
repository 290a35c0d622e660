"""Live progress of a solve: incumbent and bound as the engine finds them, for a one-line display.

A caller that wants progress installs a listener with :func:`listening`; engines that have a
callback report through :func:`report` only while one is installed, so a solve without a listener
pays nothing. HiGHS reports through its MIP logging and improving-solution callbacks
(:func:`watch_highs`), CP-SAT through a solution callback (:func:`cpsat_callback`); both report
values in SI units (the engines' scaled objective is mapped back by the caller's ``to_si``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    """One report: the best objective found (``None`` before the first), the best bound, seconds."""

    incumbent: float | None
    bound: float | None
    elapsed_s: float


Listener = Callable[[Progress], None]

_lock = threading.Lock()
_listener: Listener | None = None


@contextmanager
def listening(fn: Listener) -> Iterator[None]:
    """Send the progress reports of the solves run in this block to ``fn`` (from any thread)."""
    global _listener
    with _lock:
        previous, _listener = _listener, fn
    try:
        yield
    finally:
        with _lock:
            _listener = previous


def active() -> bool:
    """Whether a listener is installed (engines skip their callbacks otherwise)."""
    return _listener is not None


def report(incumbent: float | None, bound: float | None, elapsed_s: float) -> None:
    """Pass one report to the listener, if any; a failing listener never disturbs the solve."""
    fn = _listener
    if fn is None:
        return
    with contextlib.suppress(Exception):  # a display problem must not abort the engine's callback
        fn(Progress(incumbent, bound, elapsed_s))


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if abs(v) < 1e300 else None  # HiGHS reports an absent incumbent or bound as +-inf (kHighsInf)


def watch_highs(h: Any, to_si: Callable[[float], float]) -> Callable[[], None]:
    """Subscribe progress reports to a ``highspy.Highs`` run while a listener is active.

    Returns the function that unsubscribes (call it after ``run``). HiGHS fires the MIP logging
    callback with each progress line it writes (seconds apart) and the improving-solution one with
    each new incumbent: cheap, unlike its per-node interrupt callback.
    """
    if not active():
        return lambda: None

    def on_event(e: Any) -> None:
        out = e.data_out
        inc, bnd = _finite(out.mip_primal_bound), _finite(out.mip_dual_bound)
        report(None if inc is None else to_si(inc), None if bnd is None else to_si(bnd), float(out.running_time))

    events = [h.cbMipLogging, h.cbMipImprovingSolution]
    for ev in events:
        ev.subscribe(on_event)

    def stop() -> None:
        for ev in events:
            ev.unsubscribe(on_event)

    return stop


def cpsat_callback(to_si: Callable[[float], float]) -> Any:
    """A CP-SAT solution callback reporting each new solution, or ``None`` without a listener."""
    if not active():
        return None
    from ortools.sat.python import cp_model

    class _Report(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            report(to_si(self.objective_value), to_si(self.best_objective_bound), self.wall_time)

    return _Report()
