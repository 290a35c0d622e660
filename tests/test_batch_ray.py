"""The same batch through a local Ray cluster gives the same rows as the local process pool.

Ray is started once, by :func:`solvers.batch.ray_executor.start_local_ray` (2 CPUs, no dashboard,
every server on 127.0.0.1), and the checks share it in one test so that a parallel test run
starts one Ray only. CI installs the ``ray`` extra; elsewhere this test skips.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray")

from solvers import batch
from solvers.batch.faults import register_faulty, unregister_faulty
from solvers.batch.ray_executor import start_local_ray
from solvers.testing import CASES

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).resolve().parents[1] / "instances" / "examples"

#: Columns that must be equal whichever executor ran the task.
DETERMINISTIC = [
    "task_key", "instance_hash", "instance", "solver", "options", "seed", "outcome", "status", "termination",
    "method", "objective", "bound", "gap", "placement", "schedule", "feasible", "latency_s", "period_s",
    "energy_total_j", "cost_usd", "bytes_moved",
]  # fmt: skip


def test_ray_batch_equals_local_pool(tmp_path: Path) -> None:
    import ray

    start_local_ray(num_cpus=2)
    try:
        # bound to loopback only
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}

        files = [EXAMPLES / "tiny-dag-three-tier.yaml", EXAMPLES / "tiny-dag-three-tier-throughput.yaml"]
        instances, solvers = [*files, CASES[0].build(), CASES[1].build()], ["brute", "local", "offload"]
        via_ray = batch.run(instances, solvers, out=tmp_path / "ray.db", executor="ray")
        via_pool = batch.run(instances, solvers, out=tmp_path / "pool.db", executor="local", jobs=2)
        assert via_ray.n_run == via_pool.n_run == 12
        a = batch.load_results(tmp_path / "ray.db").sort_values("task_key").reset_index(drop=True)
        b = batch.load_results(tmp_path / "pool.db").sort_values("task_key").reset_index(drop=True)
        failed = [f"{r['solver']}: {r['message']}" for r in a.to_dict("records") if r["outcome"] != "ok"]
        assert not failed, failed
        assert a[DETERMINISTIC].equals(b[DETERMINISTIC])
        # the rows hold the known optima (solvers/testing.py): chain latency 0.521 s, mobile energy 0.3105 J
        brute = a[(a["instance"] == "chain3") & (a["solver"] == "brute")].set_index("objective_kind")
        assert brute.loc["latency", "objective"] == pytest.approx(0.521)
        assert brute.loc["energy", "objective"] == pytest.approx(0.3105)

        # a crash and a hang become rows; the healthy task beside them is unaffected
        register_faulty()
        try:
            batch.run(
                [CASES[0].build()],
                ["fault-crash", "fault-hang", "fault-slow"],
                [{"raw": {"delay_s": 0.05}}],
                out=tmp_path / "f.db",
                executor="ray",
                task_timeout_s=6.0,  # room for a slow task to start on a loaded machine; the hang still ends
            )
        finally:
            unregister_faulty()
        df = batch.load_results(tmp_path / "f.db").set_index("solver")
        assert df.loc["fault-crash", "outcome"] == "crashed"
        assert df.loc["fault-hang", ["outcome", "status"]].tolist() == ["timeout", "time_limit_no_solution"]
        assert df.loc["fault-slow", "objective"] == pytest.approx(4.0)  # mmm of the conformance chain
    finally:
        ray.shutdown()
