"""Connecting to a Ray cluster at ``--address``: bounded in time, quiet, and failing with what to do.

Left to itself, ``ray.init(address=...)`` fails in ways a user cannot act on: a cluster that needs
an authentication token (token authentication is on by default for clusters started by Ray 2.60
when a token exists) gets a stream of "Authentication token is missing or incorrect" lines and a
``ConnectionError`` after 20 s or more; an address where nothing answers, or where Ray rewrites a
loopback address to the machine's network address, waits for minutes without a word.

:func:`connect` therefore

1. checks the address (``HOST:PORT``, or ``ray://HOST:PORT`` for Ray Client) and that something
   accepts a TCP connection there within the time limit;
2. switches on token authentication when the user gave a token (``RAY_AUTH_TOKEN`` or
   ``RAY_AUTH_TOKEN_PATH``) without setting ``RAY_AUTH_MODE``: Ray ignores a token given with an
   explicit address unless the mode is set too;
3. keeps a loopback address as given when the cluster listens on loopback only (Ray would rewrite
   ``127.0.0.1`` to the machine's network address, where such a cluster does not answer);
4. connects once in a child process whose output goes to a log file, ended at the time limit, so
   that Ray's own retries and log lines never reach the console, and classifies the outcome
   (token missing or wrong, version mismatch, no answer, no CPU);
5. then connects the batch itself.

Each failure is a :class:`ClusterError`: one paragraph saying what was found and what to do
(exit code 2 on the command line).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solvers.batch.grid import BatchError

#: Default limit on connecting to a cluster, s (``--connect-timeout``).
DEFAULT_CONNECT_TIMEOUT_S = 30.0

#: Ray's switch between its single-machine mode (``0``: every server on loopback) and cluster mode.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

TOKEN_HELP = (
    "pass the cluster's token: on the head node `ray get-auth-token` prints it (Ray keeps it in "
    "~/.ray/auth_token there); `export RAY_AUTH_TOKEN=<token>` (or RAY_AUTH_TOKEN_PATH=<a file holding it>) "
    "before running dnnpart (docs/workflow.md, 'Ray clusters')"
)

#: Ray's words for a missing or wrong token (its client and its server side).
AUTH_FAILURE = (
    r"InvalidAuthToken|Authentication token is missing or incorrect|AuthenticationError|"
    r"no authentication token was found"
)

#: The child that connects once: prints one line ``dnnpart-probe ok CPUS`` or ``dnnpart-probe error TYPE: TEXT``.
PROBE = """
import sys
try:
    import ray
    ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
    cpus = ray.cluster_resources().get("CPU", 0)
    print("dnnpart-probe ok", cpus, flush=True)
    ray.shutdown()
except BaseException as exc:
    text = " ".join(str(exc).split())
    print("dnnpart-probe error", type(exc).__name__ + ":", text, flush=True)
    sys.exit(3)
"""


class ClusterError(BatchError):
    """The Ray cluster at ``--address`` cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Address:
    """A parsed ``--address``."""

    text: str
    host: str
    port: int
    client: bool  # ray://, Ray Client

    @property
    def loopback(self) -> bool:
        """Whether the host is this machine's loopback interface."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """``HOST:PORT`` or ``ray://HOST:PORT``.

    Raises
    ------
    ClusterError
        For anything else.
    """
    client = text.startswith("ray://")
    rest = text[len("ray://") :] if client else text
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ClusterError(
            f"--address {text!r}: expected HOST:PORT of the cluster's head node as `ray start --head` prints it "
            "(e.g. 10.0.0.5:6379), or ray://HOST:PORT for Ray Client; leave --address out to start a local Ray"
        )
    return Address(text, host, int(port), client)


def _tcp_error(host: str, port: int, timeout_s: float) -> str | None:
    """None when something accepts a TCP connection at host:port within the time, else why not."""
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout_s):
            return None
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror as exc:
        return f"the host name does not resolve ({exc.strerror})"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def unreachable(addr: Address, why: str, timeout_s: float) -> ClusterError:
    """The paragraph for an address where no cluster answers."""
    local = (
        " A head started with plain `ray start --head` listens on the machine's network address, which Ray "
        "prints as `ray start --address='IP:PORT'`; use that address."
        if addr.loopback
        else ""
    )
    return ClusterError(
        f"--address {addr.text}: no Ray cluster answers there ({why}; waited at most {timeout_s:g} s, "
        f"--connect-timeout). Check that the cluster runs (`ray status` on its head node), that host and port "
        f"are those `ray start --head` printed, and that no firewall blocks the port.{local} "
        "Leave --address out to run on a local Ray instead."
    )


def _outward_ip() -> str | None:
    """This machine's address on its default route (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        ip = str(s.getsockname()[0])
        return None if ipaddress.ip_address(ip).is_loopback else ip
    return None


def auth_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Settings to add so that a token the user gave is used: ``RAY_AUTH_MODE=token`` when a token is set."""
    if "RAY_AUTH_MODE" in env:
        return {}
    if env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH"):
        return {"RAY_AUTH_MODE": "token"}
    return {}


def classify(addr: Address, output: str, timeout_s: float, log: Path) -> ClusterError | None:
    """The error for the probe's output (None when it connected and found a CPU).

    Parameters
    ----------
    addr : Address
    output : str
        What the probe printed (its last line is ``dnnpart-probe ok CPUS`` or ``dnnpart-probe error ...``,
        or missing when it was ended at the time limit).
    timeout_s : float
        The time limit it ran under.
    log : Path
        Where its whole output was written (named in the message).
    """
    seen = f"Ray's own output is in {log}"
    ok = re.search(r"^dnnpart-probe ok (\S+)", output, re.M)
    if ok:
        if float(ok.group(1)) >= 1:
            return None
        return ClusterError(
            f"--address {addr.text}: the cluster answers but has no CPU to run tasks on; add a worker node "
            f"(`ray start --address={addr.host}:{addr.port}` on another machine) or restart the head with CPUs "
            "(`ray start --head --num-cpus N`)"
        )
    if re.search(AUTH_FAILURE, output):
        if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
            return ClusterError(
                f"--address {addr.text}: the cluster refused the authentication token in RAY_AUTH_TOKEN or "
                f"RAY_AUTH_TOKEN_PATH: it is not this cluster's token. To connect, {TOKEN_HELP}. ({seen}.)"
            )
        return ClusterError(
            f"--address {addr.text}: the cluster requires an authentication token (Ray's token authentication) "
            f"and none was given. To connect, {TOKEN_HELP}. ({seen}.)"
        )
    if "Version mismatch" in output:
        import ray

        theirs = re.search(r"The cluster was started with: Ray: (\S+) Python: (\S+)", " ".join(output.split()))
        cluster = f"Ray {theirs.group(1)} with Python {theirs.group(2)}" if theirs else "another Ray or Python version"
        here = f"Ray {ray.__version__} with Python {sys.version.split()[0]}"
        return ClusterError(
            f"--address {addr.text}: version mismatch: the cluster runs {cluster}, this environment {here}. "
            "Ray connects only the same Ray version and Python minor version: install the cluster's versions here "
            "(e.g. `pip install 'ray[default]==VERSION'` under that Python), or restart the cluster from this "
            f"environment. ({seen}.)"
        )
    err = re.search(r"^dnnpart-probe error (.*)$", output, re.M)
    if err is None:
        return ClusterError(
            f"--address {addr.text}: something accepts connections there, but no Ray cluster answered within "
            f"{timeout_s:g} s (--connect-timeout). Check that HOST:PORT is the head node's address as "
            f"`ray start --head` printed it (default port 6379), not another service; a slow network may need "
            f"a longer --connect-timeout. ({seen}.)"
        )
    return ClusterError(f"--address {addr.text}: cannot connect to the Ray cluster ({err.group(1)[:400]}). ({seen}.)")


def _run_probe(address: str, env: Mapping[str, str], timeout_s: float, log: Path) -> str:
    """Run :data:`PROBE` until it prints its line or the time is up; its whole output goes to ``log``."""
    deadline = time.monotonic() + timeout_s
    out: list[str] = []
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, address],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not sel.select(timeout=left):
                    continue
                chunk = os.read(fd, 1 << 16).decode(errors="replace")  # never blocks on a partial line
                if not chunk:
                    break
                sink.write(chunk)
                out.append(chunk)
                text = "".join(out)
                # an authentication failure is certain at its first line; Ray would retry for 20 s
                if re.search(r"^dnnpart-probe .*\n", text, re.M) or "InvalidAuthToken" in text:
                    break
        finally:
            sel.close()
            with contextlib.suppress(ProcessLookupError):
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
            proc.stdout.close()
    return "".join(out)


def _single_machine(env: dict[str, str]) -> None:
    env[SINGLE_MACHINE_ENV] = "0"


def connect(
    address: str,
    *,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    init_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Connect this process to the Ray cluster at ``address``, within about ``timeout_s`` (twice at worst).

    Parameters
    ----------
    address : str
        ``HOST:PORT`` of the head node (or ``ray://HOST:PORT``).
    timeout_s : float
        Limit on each step (TCP check, then the probe connection).
    init_kwargs : mapping, optional
        Further ``ray.init`` arguments.

    Raises
    ------
    ClusterError
        Bad address, nothing answering, a token required or refused, a version mismatch, no CPU.
    """
    if not (timeout_s > 0 and timeout_s < float("inf")):
        raise ClusterError(f"--connect-timeout {timeout_s!r}: expected a positive, finite number of seconds")
    addr = parse_address(address)
    why = _tcp_error(addr.host, addr.port, timeout_s)
    if why is not None:
        raise unreachable(addr, why, timeout_s)
    extra = auth_environment(os.environ)
    if addr.loopback and not addr.client:
        outward = _outward_ip()
        # Ray rewrites a loopback address to the machine's network address; a cluster that listens on
        # loopback only is not there, and is reached in Ray's single-machine mode instead.
        if outward is None or _tcp_error(outward, addr.port, min(timeout_s, 2.0)) is not None:
            _single_machine(extra)
    fd, name = tempfile.mkstemp(prefix="dnnpart-ray-connect-", suffix=".log")
    os.close(fd)
    log = Path(name)
    output = _run_probe(addr.text, {**os.environ, **extra}, timeout_s, log)
    error = classify(addr, output, timeout_s, log)
    if error is not None:
        raise error
    _init(addr, extra, init_kwargs, log)
    log.unlink(missing_ok=True)


def _init(addr: Address, extra: Mapping[str, str], init_kwargs: Mapping[str, Any] | None, log: Path) -> None:
    """``ray.init`` in this process, with the settings the probe used; Ray's stderr goes to ``log`` meanwhile."""
    os.environ.update(extra)
    import ray
    from ray._private import ray_constants
    from ray._raylet import Config  # type: ignore[attr-defined]

    if extra.get(SINGLE_MACHINE_ENV) == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False
    if "RAY_AUTH_MODE" in extra:
        Config.initialize("")  # Ray read its settings when imported; read the authentication mode again
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    try:
        with _stderr_to(log):
            ray.init(address=addr.text, **{**options, **(init_kwargs or {})})
    except Exception as exc:
        raise ClusterError(
            f"--address {addr.text}: the cluster answered a moment ago but the connection failed "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:400]}; Ray's own output is in {log})"
        ) from None


@contextlib.contextmanager
def _stderr_to(log: Path) -> Iterator[None]:
    """Send file descriptor 2 (where Ray's C++ core logs) to ``log`` for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "a") as f:
            os.dup2(f.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
