"""Tensor messages between workers over localhost TCP, with the instance's links emulated by the sender.

Wire format. Every frame is ``kind`` (1 byte), ``message id`` (8 bytes), ``length`` (8 bytes) and
``length`` bytes: a ``H`` frame opens a message with its JSON header (names, dtypes, shapes,
payload size, emulated times), ``C`` frames carry its payload in chunks of :data:`CHUNK` bytes.
Tensors travel as their raw bytes (any dtype, made contiguous); other values are pickled.

Link emulation (docs/runtime.md). When a message is queued at time ``t_ready`` on the channel
``a -> b`` of bandwidth ``B`` and latency ``l``, the sender fixes its start ``s`` (``t_ready``
when transfers are independent, as in the latency modes of the cost model; ``max(t_ready, end
of the previous message)`` when the channel is shared, as in the throughput mode) and its arrival
``s + l + n / B`` for ``n`` payload bytes. One sender thread per channel writes the chunks of all
open messages, the ``k``-th byte of a message no earlier than ``s + k / B`` (it sleeps until
then: bandwidth pacing), and the receiver releases the message at its arrival time (propagation
latency), or when its last byte came if that is later. Times are ``time.monotonic()``, one clock
for all processes of a host.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import math
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CHUNK = 16384
"""Payload bytes per chunk frame: at 10 Mbit/s one chunk is 13 ms of link time."""
_FRAME = struct.Struct("!cQQ")


class TransportError(RuntimeError):
    """A peer closed its connection, or a wait ran past its timeout."""


@dataclass
class Frame:
    """An encoded message: JSON-ready ``meta`` and the ``payload`` bytes."""

    meta: dict[str, Any]
    payload: bytes


def describe_values(values: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The header of :func:`encode_values` and the payload size, without copying any tensor."""
    import torch

    entries: list[list[Any]] = []
    for name, v in values.items():
        if isinstance(v, torch.Tensor):
            size = int(v.numel()) * v.element_size()
            entries.append([name, "t", str(v.dtype).removeprefix("torch."), list(v.shape), size])
        else:
            entries.append([name, "p", "", [], len(_pickled(v))])
    return {"values": entries}, sum(int(e[4]) for e in entries)


def _pickled(v: Any) -> bytes:
    buf = io.BytesIO()
    pickle.dump(v, buf)
    return buf.getvalue()


def encode_values(values: dict[str, Any]) -> Frame:
    """Encode named values (tensors as raw bytes, anything else pickled)."""
    import torch

    meta, _ = describe_values(values)
    parts: list[bytes] = []
    for v in values.values():
        if isinstance(v, torch.Tensor):
            t = v.detach().contiguous()
            parts.append(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            parts.append(_pickled(v))
    return Frame(meta, b"".join(parts))


def decode_values(frame: Frame) -> dict[str, Any]:
    """Inverse of :func:`encode_values` (tensors own fresh memory)."""
    import torch

    out: dict[str, Any] = {}
    pos = 0
    buf = bytearray(frame.payload)
    for name, kind, dtype, shape, size in frame.meta["values"]:
        if kind == "t":
            dt = getattr(torch, dtype)
            if size:
                out[name] = torch.frombuffer(buf, dtype=torch.uint8, count=size, offset=pos).view(dt).reshape(shape)
            else:
                out[name] = torch.empty(shape, dtype=dt)
        else:
            out[name] = pickle.loads(bytes(buf[pos : pos + size]))
        pos += size
    return out


def tensor_payload_bytes(frame: Frame) -> int:
    """Bytes of the payload, the ``n`` of the link emulation."""
    return len(frame.payload)


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise TransportError("the peer closed the connection")
        got += k
    return buf


@dataclass(order=True)
class _Open:
    due: float
    mid: int
    start: float = field(compare=False)
    rate: float = field(compare=False)
    values: dict[str, Any] = field(compare=False)
    payload: bytes | None = field(compare=False, default=None)
    sent: int = field(compare=False, default=0)


class Channel:
    """The sending end of ``src -> dst``: one TCP connection, one pacing thread.

    Parameters
    ----------
    sock : socket.socket
        Connected to the destination worker.
    bandwidth, latency : float
        The emulated link (bytes/s, seconds); ``inf`` bandwidth sends at once.
    shared : bool
        Messages take turns on the link (throughput mode) instead of each seeing the whole
        bandwidth (latency modes).
    """

    def __init__(self, sock: socket.socket, bandwidth: float, latency: float, shared: bool) -> None:
        self.sock = sock
        self.bandwidth = bandwidth
        self.latency = latency
        self.shared = shared
        self.free_at = 0.0
        self.failed: BaseException | None = None
        self._heap: list[_Open] = []
        self._cv = threading.Condition()
        self._stop = False
        self._next_id = 1
        self._lock = threading.Lock()  # one frame at a time on the socket
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _write(self, kind: bytes, mid: int, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(_FRAME.pack(kind, mid, len(data)))
            if data:
                self.sock.sendall(data)

    def send(self, header: dict[str, Any], values: dict[str, Any], t_ready: float) -> tuple[float, float, int]:
        """Queue a message; returns its emulated start and arrival times and its payload bytes.

        The header is written at once; the thread encodes the payload (off the caller's thread: the
        copy does not delay the device's next layer) and sends it, paced. The values must not be
        modified afterwards.
        """
        if self.failed is not None:
            raise TransportError(f"sending failed earlier: {self.failed}")
        meta, n = describe_values(values)
        occ = n / self.bandwidth if math.isfinite(self.bandwidth) else 0.0
        with self._cv:
            start = max(t_ready, self.free_at) if self.shared else t_ready
            self.free_at = start + occ
            arrival = start + occ + self.latency
            mid = self._next_id
            self._next_id += 1
            head = {**header, **meta, "size": n, "start": start, "arrival": arrival}
            self._write(b"H", mid, json.dumps(head).encode())
            if n:
                heapq.heappush(self._heap, _Open(start, mid, start, self.bandwidth, values))
            self._cv.notify()
        return start, arrival, n

    def control(self, header: dict[str, Any]) -> None:
        """An unpaced control message (a token), written at once."""
        self._write(b"H", 0, json.dumps({**header, "size": 0, "values": []}).encode())

    def _run(self) -> None:
        try:
            while True:
                with self._cv:
                    while not self._heap and not self._stop:
                        self._cv.wait()
                    if not self._heap:
                        return
                    op = self._heap[0]
                    wait = op.due - time.monotonic()
                    if wait > 0:
                        self._cv.wait(wait)  # a message due earlier may arrive meanwhile
                        continue
                    heapq.heappop(self._heap)
                if op.payload is None:
                    op.payload = encode_values(op.values).payload
                end = min(op.sent + CHUNK, len(op.payload))
                self._write(b"C", op.mid, op.payload[op.sent : end])
                op.sent = end
                if op.sent < len(op.payload):
                    op.due = op.start + op.sent / op.rate if math.isfinite(op.rate) else 0.0
                    with self._cv:
                        heapq.heappush(self._heap, op)
        except OSError as exc:
            self.failed = exc

    def drain(self, timeout: float) -> None:
        """Wait until every queued payload is written."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cv:
                if not self._heap:
                    return
            if time.monotonic() > deadline:
                raise TransportError(f"the link did not drain within {timeout:g} s")
            time.sleep(0.001)

    def close(self) -> None:
        """Stop the thread and close the connection."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Received:
    """A message in the inbox: its header, values and times (recv = last byte, ready = released)."""

    header: dict[str, Any]
    values: dict[str, Any]
    t_recv: float
    t_ready: float


class Inbox:
    """Messages received by one worker, keyed by ``(inference, key)``; filled by reader threads."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], Received] = {}
        self._cv = threading.Condition()
        self.error: str | None = None
        self.on_message: Callable[[Received], None] | None = None

    def put(self, rec: Received) -> None:
        with self._cv:
            self._items[(int(rec.header["inf"]), str(rec.header["key"]))] = rec
            self._cv.notify_all()
        if self.on_message is not None:
            self.on_message(rec)

    def fail(self, message: str) -> None:
        with self._cv:
            self.error = self.error or message
            self._cv.notify_all()

    def get(self, inf: int, key: str, timeout: float) -> Received:
        """Block until the message arrived and its emulated arrival time has passed."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while (inf, key) not in self._items:
                if self.error is not None:
                    raise TransportError(self.error)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"no message {key!r} of inference {inf} within {timeout:g} s")
                self._cv.wait(min(left, 0.5))
            rec = self._items[(inf, key)]
        wait = rec.t_ready - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return rec

    def has(self, inf: int, key: str) -> bool:
        with self._cv:
            return (inf, key) in self._items

    def drop(self, inf: int) -> None:
        """Forget the messages of a finished inference."""
        with self._cv:
            for k in [k for k in self._items if k[0] == inf]:
                del self._items[k]


def reader(sock: socket.socket, inbox: Inbox, peer: str) -> None:
    """Read frames from ``peer`` until it closes; reassemble messages into ``inbox``."""
    open_: dict[int, tuple[dict[str, Any], bytearray, int]] = {}
    try:
        while True:
            kind, mid, length = _FRAME.unpack(_recv_exact(sock, _FRAME.size))
            data = _recv_exact(sock, length) if length else bytearray()
            if kind == b"H":
                head = json.loads(data)
                if head.get("size", 0) == 0:
                    _deliver(inbox, head, bytearray())
                else:
                    open_[mid] = (head, bytearray(int(head["size"])), 0)
            else:
                head, buf, got = open_[mid]
                buf[got : got + length] = data
                got += length
                if got == len(buf):
                    del open_[mid]
                    _deliver(inbox, head, buf)
                else:
                    open_[mid] = (head, buf, got)
    except (OSError, TransportError) as exc:
        if open_ or not isinstance(exc, TransportError):
            inbox.fail(f"connection from {peer} broke: {exc}")
    except Exception as exc:  # a malformed frame: the run cannot go on
        inbox.fail(f"bad message from {peer}: {type(exc).__name__}: {exc}")


def _deliver(inbox: Inbox, head: dict[str, Any], buf: bytearray) -> None:
    values = decode_values(Frame(head, bytes(buf))) if head.get("values") else {}
    now = time.monotonic()
    inbox.put(Received(head, values, now, max(now, float(head.get("arrival", now)))))
