"""paper_reproductions/edgeshard: the fast subset (LLaMA-2 7B and 13B) judged against expected.json, with
hand checks of the baselines (a memory-bound decode on one device is its bytes over its bandwidth)."""

from __future__ import annotations

from typing import Any

import pytest

from paper_reproductions import common
from paper_reproductions.edgeshard import run as edgeshard


def _doc() -> dict[str, Any]:
    return common.results("edgeshard", edgeshard.run(True), common.load_expected(edgeshard.HERE), True, 0.0)


def test_edgeshard_fast_subset() -> None:
    doc = _doc()
    assert doc["problems"] == []
    nums = {r["id"]: r["ours"] for r in doc["numbers"]}
    verdicts = {r["id"]: r["verdict"] for r in doc["numbers"]}
    assert verdicts["latency_reduction_max"] == "reproduced"  # 52 % vs "up to 50 %"
    assert verdicts["throughput_gain_max"] == "differs"  # 7.2x vs 2x: the why in expected.json
    # The 13B model (26 GB in fp16) does not fit the 24 GiB RTX 3090: no cloud-only baseline.
    assert nums["llama-2-13b.cloud_period_s"] is None and nums["llama-2-7b.cloud_period_s"] is not None
    # Pipelining can only help, and EdgeShard's latency is at most the best baseline's.
    for m in ("llama-2-7b", "llama-2-13b"):
        assert nums[f"{m}.edgeshard_period_s"] <= nums[f"{m}.edgeshard_latency_s"]
        assert nums[f"{m}.edgeshard_latency_s"] <= nums[f"{m}.single_latency_s"]


def test_single_board_decode_is_its_bytes_over_its_bandwidth() -> None:
    inst = edgeshard.instance("llama-2-7b", "throughput")
    g = inst.graph
    moved = float((g.param_bytes + g.output_bytes + g.input_bytes_of_layer).sum())
    # Every block is memory-bound on the AGX Orin (143 GB/s effective): period = bytes moved / bandwidth.
    assert edgeshard.whole_on(inst, "agx-orin-1") == pytest.approx(moved / 143e9, rel=1e-3)
