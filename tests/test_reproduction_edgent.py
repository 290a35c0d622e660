"""Reproduction of Edgent (Li, Zhou, Chen, MECOMM 2018 / TWC 2020): the fast subset gives the values
recorded in its expected.json with no problem, and two of its selections are checked by hand with the
roofline of docs/instance-format.md §5.1 (the full run is in the slow suite and in ``make reproduce``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paper_reproductions import common
from paper_reproductions.edgent2019 import run as edgent

RPI3B = (5.8e9, 2.5e9)  # catalogue: effective FLOP/s and memory bandwidth B/s
NUC = (108e9, 35.8e9)


def _doc(fast: bool) -> dict[str, Any]:
    folder = Path(edgent.__file__).parent
    return common.results(folder.name, edgent.run(fast), common.load_expected(folder), fast, 0.0)


def _path_time(layers: list[str], device: tuple[float, float]) -> float:
    """Sum over the layers of max(flops / compute, (params + output + input bytes) / bandwidth)."""
    data = edgent.model_data()
    size = {i["id"]: float(i["bytes"]) for i in data["inputs"]}
    size.update({lay["id"]: float(lay["output_bytes"]) for lay in data["layers"]})
    by_id = {lay["id"]: lay for lay in data["layers"]}
    total = 0.0
    for v in layers:
        lay = by_id[v]
        moved = float(lay.get("param_bytes", 0)) + size[v] + sum(size[i] for i in lay["inputs"])
        total += max(float(lay["flops"]) / device[0], moved / device[1])
    return total


def test_edgent2019_fast() -> None:
    doc = _doc(fast=True)
    assert doc["problems"] == []
    numbers = {row["id"]: row for row in doc["numbers"]}
    for trend in ("accuracy_vs_deadline", "exit_vs_bandwidth", "offloading_vs_bandwidth"):
        assert numbers[trend]["verdict"] == "reproduced"
    exits = [doc["values"][f"bw20.deadline{d}ms.exit"] for d in (30, 50, 80, 100)]
    assert exits == ["none", 1, 4, 5]


def test_selections_by_hand() -> None:
    # 50 ms at 20 Mbit/s: exit 1 (conv1, relu1, pool1 and its branch) on the Raspberry Pi alone
    exit1 = ["conv1", "relu1", "pool1", "b1_conv", "b1_pool", "b1_fc"]
    best = edgent.ours(20, 0.05)
    assert best is not None and best["exit"] == 1 and best["offloaded"] == 0.0
    assert best["latency_s"] == pytest.approx(_path_time(exit1, RPI3B), rel=1e-9)
    assert best["latency_s"] == pytest.approx(0.0346846, rel=1e-5)
    # 100 ms: the whole AlexNet on the edge box; the 8-bit image goes up, the 4 kB result comes back
    alexnet = [lay["id"] for lay in edgent.model_data()["layers"] if not lay["id"].startswith("b")]
    up, down = 3 * 224 * 224 * 8 / 20e6, 4000 * 8 / 20e6
    best = edgent.ours(20, 0.1)
    assert best is not None and best["exit"] == 5 and best["offloaded"] == 1.0
    assert best["latency_s"] == pytest.approx(up + _path_time(alexnet, NUC) + down, rel=1e-9)
    # the device alone cannot run the full AlexNet within 100 ms
    assert _path_time(alexnet, RPI3B) > 0.1


def test_edgent_search_is_never_better_than_the_exact_selection() -> None:
    # 70 ms at 20 Mbit/s: one cut reaches exit 2; running exit 3's classifier back on the device reaches exit 3
    search = edgent.edgent_search(20, 0.07)
    exact = edgent.ours(20, 0.07)
    assert search is not None and exact is not None
    assert (search["exit"], exact["exit"]) == (2, 3)
    assert exact["on_device"] == "not one cut"


@pytest.mark.slow
def test_edgent2019_full() -> None:
    assert _doc(fast=False)["problems"] == []
