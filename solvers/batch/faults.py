"""Deliberately faulty solvers that exercise the batch runner's failure handling.

They are never registered by default; tests and the benchmark register them at run time with
:func:`solvers.registry.register`, and the batch resolves them in workers by ``module:Class``.
Each returns the ``local`` placement when it returns at all.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time

import numpy as np

from formulation.model import Instance
from solvers.base import RawSolution, Solver
from solvers.options import SolverOptions
from solvers.result import Termination

_OPTIONS = frozenset({"time_limit_s", "seed", "raw"})


def _local(inst: Instance, message: str = "") -> RawSolution:
    placement = np.full(inst.n, inst.system.source_index, dtype=np.int64)
    return RawSolution(Termination.COMPLETED, placement=placement, message=message)


class SlowSolver(Solver):
    """Sleeps ``raw["delay_s"]`` seconds (default 0.2), then returns the local placement."""

    name = "fault-slow"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        time.sleep(float(options.raw.get("delay_s", 0.2)))
        return _local(inst, f"slept, seed {options.seed}")


class CountingSolver(Solver):
    """Appends one line (pid and seed) to the file ``raw["record"]`` per solve, sleeps ``raw["delay_s"]``.

    Counting the lines counts the solves, whichever process ran them (one ``O_APPEND`` write each).
    """

    name = "fault-count"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        fd = os.open(str(options.raw["record"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getppid()} {options.seed}\n".encode())
        finally:
            os.close(fd)
        time.sleep(float(options.raw.get("delay_s", 0.0)))
        return _local(inst, f"counted, seed {options.seed}")


class CrashSolver(Solver):
    """Kills its own process with SIGSEGV, as a native library bug would."""

    name = "fault-crash"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        faulthandler.disable()  # pytest enables it; the deliberate crash needs no stack dump
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)  # pragma: no cover - the signal ends the process first
        return _local(inst)  # pragma: no cover


class HangSolver(Solver):
    """Ignores its time limit and sleeps for an hour."""

    name = "fault-hang"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        time.sleep(3600)
        return _local(inst)  # pragma: no cover


class MemoryHogSolver(Solver):
    """Allocates ``raw["bytes"]`` (default 64 GiB) and touches it."""

    name = "fault-memory"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        block = np.ones(int(options.raw.get("bytes", 64 << 30)) // 8)
        return _local(inst, f"allocated {block.nbytes} bytes")


class RaisingSolver(Solver):
    """Raises inside the backend (``Solver.solve`` turns it into a Result with status ``error``)."""

    name = "fault-raise"
    supported_options = _OPTIONS

    def _solve(self, inst: Instance, options: SolverOptions) -> RawSolution:
        raise RuntimeError("deliberate failure inside the backend")


FAULTY = {c.name: c for c in (SlowSolver, CountingSolver, CrashSolver, HangSolver, MemoryHogSolver, RaisingSolver)}
"""Registry name -> class of every faulty solver."""


def register_faulty() -> list[str]:
    """Register every faulty solver; their names (undo with :func:`unregister_faulty`)."""
    from solvers.registry import register

    for name, cls in FAULTY.items():
        register(name, cls)
    return list(FAULTY)


def unregister_faulty() -> None:
    """Remove the registrations made by :func:`register_faulty`."""
    from solvers.registry import unregister

    for name in FAULTY:
        unregister(name)
