"""One worker per device: runs its segments, sends and receives tensors, records a trace.

A worker listens on ``127.0.0.1`` (port chosen by the system), connects to every other worker
(a full mesh: tensors go over the instance's links, sequential tokens may go anywhere), pins its
torch threads (``torch.set_num_threads``) and, where the system allows, its CPU set
(``os.sched_setaffinity``), and runs inferences on command:

* ``sequential``: one step at a time across all workers, in the plan's global topological order;
  a step is the source sending the model inputs, or one layer and then its transfers, each
  waited for (the cost model's sequential latency: every compute and transfer time added up).
  A token passes the turn to the next step's worker.
* ``parallel``: each worker runs its layers in the evaluator's schedule order as soon as their
  inputs have arrived; transfers run concurrently (one inference at a time).
* ``stream``: as ``parallel`` but inference after inference without waiting; the links are
  shared by successive transfers (the cost model's period).

A slow-down factor ``F`` emulates a weaker device: after a layer computed in ``c`` seconds the
worker sleeps ``(F - 1) c`` (paid in sleeps of at least a millisecond, and always before a tensor
leaves the layer, so that wake-up delays do not accumulate).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.runtime.partition import Plan, load_part
from toolchain.runtime.transport import Channel, Inbox, Received, reader

OUTPUT_KEY = "__outputs__"


@dataclass
class WorkerConfig:
    """What a worker needs; picklable (sent to a spawned process or a Ray actor)."""

    device: str
    export_dir: str
    plan: dict[str, Any]
    links: dict[str, tuple[float, float]]
    """Destination device -> (bandwidth bytes/s, latency s) of the emulated link."""
    mode: str = "parallel"
    threads: int = 1
    cpus: list[int] | None = None
    slowdown: float = 1.0
    timeout: float = 60.0
    inputs: list[Any] = field(default_factory=list)
    """Flattened model inputs (the source only)."""
    driver_pid: int = 0
    """The driver's process id: a worker process whose driver is gone exits."""


class Worker:
    """The device's side of a run (used by a process loop or a Ray actor)."""

    def __init__(self, cfg: WorkerConfig) -> None:
        import torch

        self.cfg = cfg
        torch.set_num_threads(max(1, cfg.threads))
        if cfg.cpus and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):  # a CPU set the system refuses: run unpinned
                os.sched_setaffinity(0, set(cfg.cpus))
        self.plan = Plan.from_json(cfg.plan)
        self.segments = load_part(Path(cfg.export_dir), self.plan, cfg.device)
        self.inbox = Inbox()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(cfg.timeout)
        self.port = int(self.listener.getsockname()[1])
        self.channels: dict[str, Channel] = {}
        self.readers: list[threading.Thread] = []
        self.socks: list[socket.socket] = []
        self.recvs: list[list[Any]] = []
        self.inbox.on_message = self._note
        self._owed = 0.0  # slow-down sleep not yet paid (negative: overslept)
        self._outputs = set(self.plan.outputs)

    def get_port(self) -> int:
        """The listening port on 127.0.0.1."""
        return self.port

    def get_pid(self) -> int:
        """The worker's process id."""
        return os.getpid()

    # -- set-up ---------------------------------------------------------------------------------

    def connect(self, book: dict[str, int]) -> None:
        """Connect to every other worker (``book``: device -> port) and accept their connections."""
        others = [d for d in book if d != self.cfg.device]
        acceptor = threading.Thread(target=self._accept, args=(len(others),), daemon=True)
        acceptor.start()
        for d in others:
            s = socket.create_connection(("127.0.0.1", book[d]), timeout=self.cfg.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(None)
            name = self.cfg.device.encode()
            s.sendall(len(name).to_bytes(2, "big") + name)
            bw, lat = self.cfg.links.get(d, (float("inf"), 0.0))
            self.channels[d] = Channel(s, bw, lat, shared=self.cfg.mode == "stream")
        acceptor.join(self.cfg.timeout)
        if len(self.readers) != len(others):
            raise TimeoutError(f"worker {self.cfg.device}: only {len(self.readers)} of {len(others)} peers connected")

    def _accept(self, n: int) -> None:
        for _ in range(n):
            s, _addr = self.listener.accept()
            s.settimeout(self.cfg.timeout)
            size = int.from_bytes(_recv(s, 2), "big")
            peer = _recv(s, size).decode()
            s.settimeout(None)
            self.socks.append(s)
            t = threading.Thread(target=reader, args=(s, self.inbox, peer), daemon=True)
            t.start()
            self.readers.append(t)

    def _note(self, rec: Received) -> None:
        h = rec.header
        if "src" in h:
            self.recvs.append([h["inf"], h["key"], h["src"], h["start"], h["arrival"], h["size"],
                               rec.t_recv, rec.t_ready])

    def close(self) -> None:
        """Close every connection."""
        for ch in self.channels.values():
            ch.close()
        for s in [*self.socks, self.listener]:
            with contextlib.suppress(OSError):
                s.close()

    # -- running --------------------------------------------------------------------------------

    def _send(self, inf: int, key: str, dst: str, values: dict[str, Any], trace: dict[str, Any]) -> float:
        """Encode and queue one message; returns its emulated arrival time."""
        t_ready = time.monotonic()
        start, arrival, n = self.channels[dst].send({"inf": inf, "key": key, "src": self.cfg.device}, values, t_ready)
        trace["sends"].append([inf, key, dst, t_ready, start, arrival, n])
        return arrival

    def _compute(self, inf: int, seg: Any, env: dict[str, Any], trace: dict[str, Any]) -> None:
        import torch

        t0 = time.monotonic()
        with torch.no_grad():
            outs = seg.module(*[env[i] for i in seg.inputs])
        t1 = time.monotonic()
        if self.cfg.slowdown > 1:
            # The sleep owed, (F - 1) x compute, is paid in one go once it reaches a millisecond or
            # before anything leaves this layer; the measured sleep is deducted, so the wake-up delays
            # of many short sleeps do not add up (a late wake-up is credited to the next layers).
            if seg is self.segments[0]:
                # a new inference: a late wake-up of the previous one is not credited to it
                self._owed = 0.0
            self._owed += (self.cfg.slowdown - 1) * (t1 - t0)
            last = seg is self.segments[-1]
            if self._owed >= 1e-3 or last or seg.layer in self.plan.sends or self._holds_output(seg):
                t_s = time.monotonic()
                if self._owed > 0:
                    time.sleep(self._owed)
                self._owed -= time.monotonic() - t_s
        t2 = time.monotonic()
        env.update(zip(seg.outputs, outs, strict=True))
        trace["layers"].append([inf, seg.layer, t0, t2, t1 - t0])

    def _holds_output(self, seg: Any) -> bool:
        return any(o in self._outputs for o in seg.outputs)

    def _gather(self, inf: int, seg: Any, env: dict[str, Any]) -> None:
        plan = self.plan
        for name in seg.inputs:
            if name not in env:
                rec = self.inbox.get(inf, plan.producer[name], self.cfg.timeout)
                env.update(rec.values)

    def _new_trace(self) -> dict[str, Any]:
        return {"device": self.cfg.device, "layers": [], "sends": [], "outputs": {}, "steps": []}

    def _start_inputs(self, inf: int, env: dict[str, Any], trace: dict[str, Any], wait: bool) -> None:
        plan = self.plan
        env.update(zip(plan.user_inputs, self.cfg.inputs, strict=True))
        for dst, names in plan.input_sends.items():
            for u in names:  # each model input is its own tensor in the cost model
                arrival = self._send(inf, u, dst, {u: env[u]}, trace)
                if wait:
                    _sleep_until(arrival)

    def _keep_outputs(self, env: dict[str, Any], trace: dict[str, Any]) -> None:
        for o in self.plan.outputs:
            if o in env:
                trace["outputs"][o] = env[o]

    def run_parallel(self, inf: int, t0: float, keep_outputs: bool) -> dict[str, Any]:
        """One inference, dataflow order; returns the trace."""
        trace = self._new_trace()
        _sleep_until(t0)
        trace["begin"] = time.monotonic()  # later than t0 when the command came late
        self._one(inf, trace)
        self._finish([inf], trace, keep_outputs)
        return trace

    def run_stream(self, n: int, t0: float) -> dict[str, Any]:
        """``n`` inferences back to back; returns the trace of all."""
        trace = self._new_trace()
        _sleep_until(t0)
        trace["begin"] = time.monotonic()  # later than t0 when the command came late
        for inf in range(n):
            self._one(inf, trace)
        self._finish(list(range(n)), trace, True)
        return trace

    def _one(self, inf: int, trace: dict[str, Any]) -> None:
        plan = self.plan
        env: dict[str, Any] = {}
        if self.cfg.device == plan.source:
            self._start_inputs(inf, env, trace, wait=False)
        for seg in self.segments:
            self._gather(inf, seg, env)
            self._compute(inf, seg, env, trace)
            for dst, names in plan.sends.get(seg.layer, {}).items():
                self._send(inf, seg.layer, dst, {o: env[o] for o in names}, trace)
        self._collect(inf, env, trace)

    def _collect(self, inf: int, env: dict[str, Any], trace: dict[str, Any]) -> None:
        """Keep the model outputs held here (the sink, or the producer without a sink)."""
        plan = self.plan
        if plan.sink is None or plan.sink == self.cfg.device:
            trace.setdefault("held", {})[inf] = {o: env[o] for o in plan.outputs if o in env}

    def _finish(self, infs: list[int], trace: dict[str, Any], keep_outputs: bool) -> None:
        """Wait for the outputs sent here and for every link to drain; then forget the inferences."""
        plan = self.plan
        if plan.sink == self.cfg.device:
            held = trace.setdefault("held", {})
            for inf in infs:
                got = held.setdefault(inf, {})
                for o in plan.outputs:
                    if o not in got:
                        rec = self.inbox.get(inf, plan.producer[o], self.cfg.timeout)
                        got.update({k: v for k, v in rec.values.items() if k in plan.outputs})
        for ch in self.channels.values():
            ch.drain(self.cfg.timeout)
        held = trace.pop("held", {})
        if keep_outputs and infs and infs[-1] in held:
            trace["outputs"] = held[infs[-1]]
        for inf in infs:
            self.inbox.drop(inf)
        trace["recvs"] = [r for r in self.recvs if r[0] in set(infs)]
        self.recvs = [r for r in self.recvs if r[0] not in set(infs)]

    def run_sequential(self, inf: int, t0: float, keep_outputs: bool) -> dict[str, Any]:
        """One inference, one step at a time across the workers (token passing)."""
        plan = self.plan
        trace = self._new_trace()
        steps = [plan.source] + [plan.placement[lay] for lay in plan.global_order]
        seg_of = {s.layer: s for s in self.segments}
        env: dict[str, Any] = {}
        _sleep_until(t0)
        trace["begin"] = time.monotonic()  # later than t0 when the command came late
        for s, dev in enumerate(steps):
            if dev != self.cfg.device:
                continue
            if s > 0 and steps[s - 1] != dev:
                self.inbox.get(inf, f"\ttoken{s}", self.cfg.timeout)
            if s == 0:
                self._start_inputs(inf, env, trace, wait=True)
            else:
                seg = seg_of[plan.global_order[s - 1]]
                self._gather(inf, seg, env)
                self._compute(inf, seg, env, trace)
                for dst, names in plan.sends.get(seg.layer, {}).items():
                    _sleep_until(self._send(inf, seg.layer, dst, {o: env[o] for o in names}, trace))
            trace["steps"].append([inf, s, time.monotonic()])
            if s + 1 < len(steps) and steps[s + 1] != dev:
                self.channels[steps[s + 1]].control({"inf": inf, "key": f"\ttoken{s + 1}"})
        self._collect(inf, env, trace)
        self._finish([inf], trace, keep_outputs)
        return trace


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed during the handshake")
        buf += chunk
    return buf


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sleep_until(t: float) -> None:
    wait = t - time.monotonic()
    if wait > 0:
        time.sleep(wait)


def process_main(cfg: WorkerConfig, to_driver: Any, from_driver: Any) -> None:
    """Entry point of a worker process: obey the driver's commands until ``stop``.

    Every reply is ``(device, kind, payload)``; a failure is reported as ``("error", text)``
    before the process exits with status 1.
    """
    worker: Worker | None = None
    try:
        worker = Worker(cfg)
        to_driver.put((cfg.device, "port", worker.port))
        while True:
            try:
                cmd = from_driver.get(timeout=1.0)
            except queue.Empty:
                if cfg.driver_pid and not _alive(cfg.driver_pid):
                    break  # the driver was killed: nobody will stop this worker
                continue
            if cmd[0] == "stop":
                break
            if cmd[0] == "connect":
                worker.connect(cmd[1])
                to_driver.put((cfg.device, "connected", None))
            elif cmd[0] == "run":
                _, mode, inf, t0, keep = cmd
                fn = worker.run_sequential if mode == "sequential" else worker.run_parallel
                to_driver.put((cfg.device, "trace", fn(inf, t0, keep)))
            elif cmd[0] == "stream":
                to_driver.put((cfg.device, "trace", worker.run_stream(cmd[1], cmd[2])))
    except BaseException as exc:  # reported to the driver, which ends the run
        to_driver.put((cfg.device, "error", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None
    finally:
        if worker is not None:
            worker.close()
