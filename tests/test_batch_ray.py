"""The same batch through a local Ray cluster gives the same rows as the local process pool.

Ray is started once per module by :func:`solvers.batch.executors.start_local_ray` (2 CPUs, no
dashboard, every server on 127.0.0.1). CI installs the ``ray`` extra; elsewhere these tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ray")

from solvers import batch
from solvers.batch.executors import start_local_ray
from solvers.batch.faults import register_faulty, unregister_faulty
from solvers.testing import CASES

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"

#: Columns that must be equal whichever executor ran the task.
DETERMINISTIC = [
    "task_key", "instance_hash", "instance", "solver", "options", "seed", "outcome", "status", "termination",
    "method", "objective", "bound", "gap", "placement", "schedule", "feasible", "latency_s", "period_s",
    "energy_total_j", "cost_usd", "bytes_moved",
]  # fmt: skip


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    start_local_ray(num_cpus=2)
    yield
    ray.shutdown()


def _grid() -> tuple[list, list[str]]:  # type: ignore[type-arg]
    files = [EXAMPLES / "tiny-dag-three-tier.yaml", EXAMPLES / "tiny-dag-three-tier-throughput.yaml"]
    return [*files, CASES[0].build(), CASES[1].build()], ["brute", "local", "offload"]


def test_ray_is_bound_to_loopback(local_ray: None) -> None:
    import ray

    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}


def test_ray_rows_equal_local_pool_rows(local_ray: None, tmp_path: Path) -> None:
    instances, solvers = _grid()
    via_ray = batch.run(instances, solvers, out=tmp_path / "ray.db", executor="ray")
    via_pool = batch.run(instances, solvers, out=tmp_path / "pool.db", executor="local", jobs=2)
    assert via_ray.n_run == via_pool.n_run == 12
    a = batch.load_results(tmp_path / "ray.db").sort_values("task_key").reset_index(drop=True)
    b = batch.load_results(tmp_path / "pool.db").sort_values("task_key").reset_index(drop=True)
    assert a[DETERMINISTIC].equals(b[DETERMINISTIC])
    # and the rows hold the known optimum: the chain's sequential latency is 0.521 s (ccc)
    chain = a[(a["instance"] == "chain3") & (a["solver"] == "brute") & (a["objective_kind"] == "latency")]
    assert chain["objective"].tolist() == [pytest.approx(0.521)]


def test_ray_failures_become_rows(local_ray: None, tmp_path: Path) -> None:
    register_faulty()
    try:
        batch.run(
            [CASES[0].build()],
            ["fault-crash", "fault-hang", "fault-slow"],
            [{"raw": {"delay_s": 0.05}}],
            out=tmp_path / "f.db",
            executor="ray",
            task_timeout_s=3.0,
        )
    finally:
        unregister_faulty()
    df = batch.load_results(tmp_path / "f.db").set_index("solver")
    assert df.loc["fault-crash", "outcome"] == "crashed"
    assert df.loc["fault-hang", ["outcome", "status"]].tolist() == ["timeout", "time_limit_no_solution"]
    assert df.loc["fault-slow", "objective"] == pytest.approx(4.0)  # mmm of the conformance chain
