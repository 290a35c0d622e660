"""Start one worker per device, run the inferences, collect the traces (``dnnpart run``).

Executors:

* ``processes``: a local process per worker (``multiprocessing``'s ``forkserver`` context, preloaded
  with torch, else ``spawn``),
  commands and traces over queues, tensors over localhost TCP between the workers. The driver
  polls every worker's exit status while it waits: a worker that dies ends the run with
  :class:`WorkerFailure` (exit 1), and every child is terminated and joined in a ``finally``.
* ``ray``: a Ray actor per worker (a local Ray started for the run listens on 127.0.0.1 only);
  a dead actor ends the run the same way.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formulation.errors import EngineFailure
from formulation.model import Instance
from toolchain.runtime.partition import Plan
from toolchain.runtime.worker import WorkerConfig

START_DELAY = 0.1
"""Seconds between the driver's command and the common start time ``t0`` of an inference."""


class WorkerFailure(EngineFailure):
    """A worker died or failed during a run (exit 1)."""


@dataclass
class RunTraces:
    """What a run measured: per inference, each device's trace; and the start times ``t0``."""

    mode: str
    traces: list[dict[str, dict[str, Any]]]
    t0: list[float]
    warmup: int
    outputs: dict[str, Any]


def link_table(inst: Instance, device: str) -> dict[str, tuple[float, float]]:
    """Destination -> (bandwidth, latency) of the emulated links leaving ``device``: the file's figures."""
    out = {}
    for (a, b), lk in inst.system.links.items():
        if a == device:
            out[b] = (lk.bandwidth_bytes_per_s, lk.latency_s)
    return out


class _Processes:
    def __init__(self, cfgs: Sequence[WorkerConfig], timeout: float) -> None:
        import multiprocessing as mp

        from toolchain.runtime.worker import process_main

        # forkserver: workers fork from a server that imported torch once (fast start-up after
        # the first run of a driver process); spawn where the platform lacks it.
        if "forkserver" in mp.get_all_start_methods():
            fs = mp.get_context("forkserver")
            fs.set_forkserver_preload(["torch", "toolchain.runtime.worker"])
            self.ctx: Any = fs
        else:
            self.ctx = mp.get_context("spawn")
        self.timeout = timeout
        self.replies: Any = self.ctx.Queue()
        self.cmds = {c.device: self.ctx.Queue() for c in cfgs}
        self.procs = {
            c.device: self.ctx.Process(target=process_main, args=(c, self.replies, self.cmds[c.device]),
                                       name=f"dnnpart-worker-{c.device}", daemon=True)
            for c in cfgs
        }
        self.phase = "start-up"
        for p in self.procs.values():
            p.start()

    def pids(self) -> dict[str, int | None]:
        return {d: p.pid for d, p in self.procs.items()}

    def send(self, device: str, cmd: tuple[Any, ...]) -> None:
        self.cmds[device].put(cmd)

    def wait(self, kind: str, devices: Sequence[str], timeout: float) -> dict[str, Any]:
        got: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(devices):
            try:
                dev, k, payload = self.replies.get(timeout=0.1)
            except queue.Empty:
                self._check_dead()
                if time.monotonic() > deadline:
                    raise WorkerFailure(
                        f"no {kind} from the workers within {timeout:g} s during {self.phase}"
                    ) from None
                continue
            if k == "error":
                # A peer's death often shows first as a broken connection elsewhere: blame the dead.
                grace = time.monotonic() + 1.0
                while time.monotonic() < grace:
                    self._check_dead(dev)
                    time.sleep(0.05)
                raise WorkerFailure(f"the worker of device {dev!r} failed during {self.phase}: {payload}")
            if k == kind:
                got[dev] = payload
        return got

    def _check_dead(self, besides: str | None = None) -> None:
        """Raise for the first worker (other than ``besides``) that has ended."""
        for d, p in self.procs.items():
            if d != besides and p.exitcode is not None:
                raise WorkerFailure(
                    f"the worker of device {d!r} (pid {p.pid}) ended with exit status {p.exitcode} "
                    f"during {self.phase}; the run was stopped and every worker ended"
                ) from None

    def close(self) -> None:
        for d, p in self.procs.items():
            if p.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    self.cmds[d].put(("stop",))
        deadline = time.monotonic() + 2.0
        for p in self.procs.values():
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs.values():
            if p.is_alive():
                p.terminate()
                p.join(2.0)
            if p.is_alive():
                p.kill()
                p.join(2.0)
        for q in [self.replies, *self.cmds.values()]:
            q.close()
            q.cancel_join_thread()


class _Ray:
    def __init__(self, cfgs: Sequence[WorkerConfig], timeout: float) -> None:
        import ray

        from toolchain.runtime.worker import Worker

        self.ray = ray
        self.own = not ray.is_initialized()
        if self.own:
            ray.init(include_dashboard=False, num_cpus=max(len(cfgs), os.cpu_count() or 1),
                     log_to_driver=False, _node_ip_address="127.0.0.1")
        actor: Any = ray.remote(num_cpus=0, max_restarts=0)(Worker)
        self.actors: dict[str, Any] = {c.device: actor.remote(c) for c in cfgs}
        self.refs: dict[str, Any] = {}
        self.timeout = timeout
        self.phase = "start-up"

    def pids(self) -> dict[str, int | None]:
        devices = list(self.actors)
        pids = self.ray.get([self.actors[d].get_pid.remote() for d in devices], timeout=self.timeout)
        return dict(zip(devices, pids, strict=True))

    def send(self, device: str, cmd: tuple[Any, ...]) -> None:
        a = self.actors[device]
        if cmd[0] == "connect":
            self.refs[device] = a.connect.remote(cmd[1])
        elif cmd[0] == "run":
            _, mode, inf, t0, keep = cmd
            fn = a.run_sequential if mode == "sequential" else a.run_parallel
            self.refs[device] = fn.remote(inf, t0, keep)
        elif cmd[0] == "stream":
            self.refs[device] = a.run_stream.remote(cmd[1], cmd[2])

    def wait(self, kind: str, devices: Sequence[str], timeout: float) -> dict[str, Any]:
        ray = self.ray
        if kind == "port":
            self.refs = {d: self.actors[d].get_port.remote() for d in devices}
        try:
            vals = ray.get([self.refs[d] for d in devices], timeout=timeout)
        except Exception as exc:
            raise WorkerFailure(f"a worker actor failed during {self.phase}: {type(exc).__name__}: {exc}") from None
        return dict(zip(devices, vals, strict=True))

    def close(self) -> None:
        for a in self.actors.values():
            try:
                a.close.remote()
                self.ray.kill(a)
            except Exception:  # an actor already gone
                pass
        if self.own:
            self.ray.shutdown()


def run_workers(inst: Instance, plan: Plan, export_dir: Path, inputs: list[Any], mode: str,
                inferences: int, warmup: int = 1, executor: str = "processes",
                slowdown: dict[str, float] | None = None, threads: int = 1, timeout: float = 60.0,
                on_start: Any = None) -> RunTraces:
    """Run ``warmup + inferences`` inferences of the exported parts on one worker per device.

    Parameters
    ----------
    mode : {"sequential", "parallel", "stream"}
    slowdown : dict, optional
        Device -> factor ``F >= 1`` (the device sleeps ``(F - 1)`` times its compute).
    threads : int
        torch threads per worker.
    on_start : callable, optional
        Called with ``{device: pid}`` once the workers are connected (tests use it).

    Raises
    ------
    WorkerFailure
        When a worker dies, fails or stops answering.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    devices = [d for d in plan.devices if any(v == d for v in plan.placement.values()) or d in (plan.source, plan.sink)]
    cfgs = []
    for i, d in enumerate(devices):
        pin = [cpus[(i * threads + j) % len(cpus)] for j in range(threads)] if cpus else None
        cfgs.append(WorkerConfig(d, str(export_dir), plan.to_json(), link_table(inst, d), mode, threads, pin,
                                 float((slowdown or {}).get(d, 1.0)), timeout,
                                 inputs if d == plan.source else [], os.getpid()))
    ex: _Processes | _Ray = _Ray(cfgs, timeout) if executor == "ray" else _Processes(cfgs, timeout)
    try:
        book = ex.wait("port", devices, timeout + 60.0)  # spawned workers import torch first
        ex.phase = "connection"
        for d in devices:
            ex.send(d, ("connect", book))
        ex.wait("connected", devices, timeout)
        if on_start is not None:
            on_start(ex.pids())
        total = warmup + inferences
        traces: list[dict[str, dict[str, Any]]] = []
        starts: list[float] = []
        outputs: dict[str, Any] = {}
        if mode == "stream":
            ex.phase = f"the stream of {total} inferences"
            t0 = time.monotonic() + START_DELAY
            for d in devices:
                ex.send(d, ("stream", total, t0))
            got = ex.wait("trace", devices, timeout * total)
            traces, starts = [got], [t0]
            outputs = {k: v for tr in got.values() for k, v in tr["outputs"].items()}
        else:
            for inf in range(total):
                ex.phase = f"inference {inf + 1} of {total}"
                t0 = time.monotonic() + START_DELAY
                for d in devices:
                    ex.send(d, ("run", mode, inf, t0, inf == total - 1))
                got = ex.wait("trace", devices, timeout)
                traces.append(got)
                starts.append(t0)
            outputs = {k: v for tr in traces[-1].values() for k, v in tr["outputs"].items()}
        return RunTraces(mode, traces, starts, warmup, outputs)
    finally:
        ex.close()
