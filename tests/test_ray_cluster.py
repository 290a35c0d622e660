"""``dnnpart batch --executor ray --address``: a real cluster, and every way connecting to one fails.

The slow test starts a two-node cluster on this machine with Ray's own command line (``ray start
--head`` and a second ``ray start --address``), both on 127.0.0.1 only, with token authentication
on (as Ray does by default when a token exists); runs a batch without the token (exit 2, one
paragraph, none of Ray's log lines) and with it (every task done, on both nodes); then stops
both nodes by their process groups. The fast tests cover the failures that need no cluster, and
the classification of Ray's output for those that do.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("ray")

from formulation.loader import instance_to_data
from solvers import batch
from solvers.batch.ray_connect import (
    SINGLE_MACHINE_ENV,
    ClusterError,
    auth_environment,
    classify,
    parse_address,
)
from solvers.testing import CASES

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "instances" / "examples"
RAY = str(Path(sys.executable).parent / "ray")

#: ``ray start --address`` for a second node on loopback: Ray's command line, except that it keeps
#: 127.0.0.1 as given (in cluster mode Ray rewrites a loopback address to the machine's network
#: address, where a head bound to loopback does not listen).
NODE = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv[0] = "ray"
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: ``dnnpart`` with the deliberately faulty solvers registered (solvers/batch/faults.py).
CLI = """
import sys
from solvers.batch.faults import register_faulty
from toolchain.cli import app

register_faulty()
app(sys.argv[1:])
"""


def cli(*args: object, env: dict[str, str], timeout: float = 240) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    cmd = [sys.executable, "-c", CLI, *map(str, args)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - t0


def clean_env(home: Path) -> dict[str, str]:
    """This environment without any Ray setting, with ``home`` as HOME (no ~/.ray/auth_token) and TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)  # where a failed connection leaves Ray's output
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- without a cluster ------------------------------------------------------------------------------


def test_unreachable_address_exits_2_at_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = tmp_path / "r.db"
    args = ["batch", EXAMPLES / "tiny-dag-three-tier.yaml", "--executor", "ray", "--address", f"127.0.0.1:{port}"]
    done, elapsed = cli(*args, "--out", out, "--no-progress", env=clean_env(tmp_path))
    assert done.returncode == 2, done.stderr
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers there (Connection refused" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3
    assert elapsed < 30 and not out.exists()  # refused before the store was made


def test_a_silent_listener_is_given_up_at_the_connect_timeout(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        args = ["batch", EXAMPLES / "tiny-dag-three-tier.yaml", "--executor", "ray", "--address", f"127.0.0.1:{port}"]
        done, elapsed = cli(*args, "--out", tmp_path / "r.db", "--connect-timeout", "4", env=clean_env(tmp_path))
    assert done.returncode == 2, done.stderr
    text = " ".join(done.stderr.split())
    assert "something accepts connections there, but no Ray cluster answered within 4 s" in text
    assert "Ray's own output is in" in text and "Traceback" not in text
    assert elapsed < 4 + 20  # the limit, plus starting two Python processes


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.5", "10.0.0.5:port", "10.0.0.5:0", "http://x:1/"])
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ClusterError, match="expected HOST:PORT of the cluster's head node"):
        parse_address(address)


def test_addresses_parse() -> None:
    a = parse_address("127.0.0.1:6379")
    assert (a.host, a.port, a.client, a.loopback) == ("127.0.0.1", 6379, False, True)
    b = parse_address("ray://head.example:10001")
    assert (b.host, b.port, b.client, b.loopback) == ("head.example", 10001, True, False)
    assert parse_address("localhost:1").loopback and not parse_address("10.0.0.5:1").loopback


def test_a_token_given_switches_token_mode_on_unless_set() -> None:
    assert auth_environment({"RAY_AUTH_TOKEN": "abc"}) == {"RAY_AUTH_MODE": "token"}
    assert auth_environment({"RAY_AUTH_TOKEN_PATH": "/t"}) == {"RAY_AUTH_MODE": "token"}
    assert auth_environment({"RAY_AUTH_TOKEN": "abc", "RAY_AUTH_MODE": "disabled"}) == {}
    assert auth_environment({}) == {}


# Lines as Ray 2.60 prints them (abridged), for each failure met against a real cluster.
NO_TOKEN = (
    "INFO worker.py:1841 -- Connecting to existing Ray cluster at address: 127.0.0.1:6379...\n"
    "[2026-12-07 04:25:05,242 W 17648 17648] gcs_client.cc:210: Failed to get cluster ID from GCS server: "
    "Unauthenticated: RPC error: InvalidAuthToken: Authentication token is missing or incorrect\n"
)
MISMATCH = (
    "dnnpart-probe error RuntimeError: Version mismatch: The cluster was started with: Ray: 2.41.0 "
    "Python: 3.12.3 This process on node 10.0.0.7 was started with: Ray: 2.60.0 Python: 3.11.9\n"
)


def test_classification_of_each_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addr, log = parse_address("10.0.0.5:6379"), tmp_path / "ray.log"
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert classify(addr, "dnnpart-probe ok 4.0\n", 30, log) is None
    err = classify(addr, NO_TOKEN, 30, log)
    assert err is not None and "requires an authentication token (Ray's token authentication) and none" in str(err)
    assert "`ray get-auth-token`" in str(err) and "export RAY_AUTH_TOKEN=<token>" in str(err) and str(log) in str(err)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    err = classify(addr, NO_TOKEN, 30, log)
    assert err is not None and "refused the authentication token" in str(err)
    err = classify(addr, MISMATCH, 30, log)
    assert err is not None and "version mismatch: the cluster runs Ray 2.41.0 with Python 3.12.3" in str(err)
    assert "pip install 'ray[default]==VERSION'" in str(err)
    err = classify(addr, "dnnpart-probe ok 0.0\n", 30, log)
    assert err is not None and "has no CPU to run tasks on" in str(err)
    err = classify(addr, "[...] Failed to connect to GCS at address 10.0.0.5:6379 within 5 seconds.\n", 12, log)
    assert err is not None and "no Ray cluster answered within 12 s (--connect-timeout)" in str(err)


# -- a real two-node cluster (slow) -----------------------------------------------------------------


class LoopbackCluster:
    """A head and a worker node started with ``ray start``, on 127.0.0.1 only, each in its own process group."""

    def __init__(self, root: Path) -> None:
        self.root, self.home = root, root / "home"
        self.home.mkdir()
        self.port = free_port()
        self.groups: list[int] = []
        self.env = clean_env(self.home)
        self.env[SINGLE_MACHINE_ENV] = "0"  # the head: every server on loopback

    def _start(self, cmd: list[str], env: dict[str, str], name: str) -> None:
        with open(self.root / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.groups.append(proc.pid)  # its servers keep its process group after it returns
            assert proc.wait(timeout=180) == 0, (self.root / f"{name}.log").read_text()[-3000:]

    def start(self) -> None:
        subprocess.run([RAY, "get-auth-token", "--generate"], env=self.env, capture_output=True, timeout=60, check=True)
        small = ["--num-cpus", "1", "--object-store-memory", str(80 * 10**6), "--disable-usage-stats"]
        head = [RAY, "start", "--head", "--port", str(self.port), "--include-dashboard", "false"]
        head += ["--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
        self._start([*head, *small, "--temp-dir", str(self.root / "h")], self.env, "head")
        node_env = {**self.env, "RAY_AUTH_MODE": "token"}  # a joining node does not switch it on by itself
        del node_env[SINGLE_MACHINE_ENV]  # Ray refuses a second node in single-machine mode
        node = [sys.executable, "-c", NODE, "start", "--address", f"127.0.0.1:{self.port}"]
        node += ["--dashboard-agent-listen-port", str(free_port())]
        self._start([*node, *small, "--temp-dir", str(self.root / "n")], node_env, "node")

    @property
    def token(self) -> str:
        return (self.home / ".ray" / "auth_token").read_text().strip()

    def stop(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        time.sleep(3)
        for pgid in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def cluster() -> Iterator[LoopbackCluster]:
    root = Path(tempfile.mkdtemp(prefix="dnnpart-ray-"))  # short: Ray's socket paths must fit 107 bytes
    c = LoopbackCluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_batch_on_a_two_node_cluster_with_token_authentication(cluster: LoopbackCluster, tmp_path: Path) -> None:
    address = f"127.0.0.1:{cluster.port}"
    chain = tmp_path / "chain.yaml"
    chain.write_text(yaml.safe_dump(instance_to_data(CASES[0].build())))
    files = [EXAMPLES / "tiny-dag-three-tier.yaml", chain]
    args = ["batch", *files, "--solvers", "brute,local,offload", "--executor", "ray", "--address", address]
    args += ["--no-progress", "--connect-timeout", "60"]
    user = tmp_path / "user"  # a user without the token: another HOME, no RAY_ variables
    user.mkdir()

    refused, elapsed = cli(*args, "--out", tmp_path / "no-token.db", env=clean_env(user))
    assert refused.returncode == 2, refused.stderr
    text = " ".join(refused.stderr.split())
    assert f"--address {address}: the cluster requires an authentication token" in text
    assert "export RAY_AUTH_TOKEN=<token>" in text
    # one paragraph: none of Ray's retry lines or log lines, no traceback
    assert "Authentication token is missing" not in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 3 and elapsed < 60
    assert not (tmp_path / "no-token.db").exists()

    env = {**clean_env(user), "RAY_AUTH_TOKEN": cluster.token}
    out = tmp_path / "cluster.db"
    done, _ = cli(*args, "--out", out, env=env)
    assert done.returncode == 0, done.stderr
    assert "6 tasks run (0 failed), 0 already done" in done.stdout
    assert done.stderr.strip() == ""  # Ray's log lines stay off the console
    df = batch.load_results(out).set_index(["instance", "solver"])
    # the conformance chain (solvers/testing.py): optimum 0.521 s (ccc), all on the phone 4.0 s
    assert df.loc[("chain3", "brute"), ["status", "objective"]].tolist() == ["optimal", pytest.approx(0.521)]
    assert df.loc[("chain3", "local"), "objective"] == pytest.approx(4.0)
    assert (df["outcome"] == "ok").all()
    same = batch.run(files, ["brute", "local", "offload"], out=tmp_path / "pool.db", jobs=2)
    pool = batch.load_results(same.out).set_index(["instance", "solver"]).sort_index()
    assert same.n_run == 6
    assert df.sort_index()["objective"].tolist() == pytest.approx(pool["objective"].tolist())

    # both nodes work: tasks of 1.5 s, two in flight, one CPU per node, so two run at once, one on each node
    slow = tmp_path / "slow.db"
    args = ["batch", chain, "--solvers", "fault-slow", "--options", '{"raw": {"delay_s": 1.5}}', "--seeds", "0,1,2,3"]
    done, _ = cli(*args, "--executor", "ray", "--address", address, "--out", slow, "--no-progress", env=env)
    assert done.returncode == 0, done.stderr
    rows = batch.load_results(slow)
    assert len(rows) == 4 and rows["objective"].tolist() == [pytest.approx(4.0)] * 4  # mmm
    assert rows["worker_pid"].nunique() == 2
    end = pd.to_datetime(rows["finished_at"]).astype("int64") / 1e9
    spans = sorted(zip(end - rows["task_wall_s"], end, strict=True))
    assert any(b0 < a1 for (_, a1), (b0, _) in itertools.pairwise(spans)), spans  # some two overlapped
