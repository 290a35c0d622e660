"""Reproduction of Tang et al. (arXiv 2007.09072): the fast subset gives the values recorded in its
expected.json with no problem (the full run is in the slow suite and in ``make reproduce``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from paper_reproductions import common
from paper_reproductions.tang2020 import run as tang2020


def _doc(fast: bool) -> dict:  # type: ignore[type-arg]
    folder = Path(tang2020.__file__).parent
    return common.results(folder.name, tang2020.run(fast), common.load_expected(folder), fast, 0.0)


def test_tang2020_fast() -> None:
    doc = _doc(fast=True)
    assert doc["problems"] == []
    numbers = {row["id"]: row for row in doc["numbers"]}
    assert numbers["iao_optimal"]["verdict"] == "reproduced"
    assert numbers["resnet18.users8.latency_ms"]["ours"] == pytest.approx(547.02063286108, rel=1e-6)
    # more users never lower the optimal min-max latency
    lat = [doc["values"][f"resnet18.users{n}.latency_ms"] for n in (1, 2, 4, 8)]
    assert lat == sorted(lat)


@pytest.mark.slow
def test_tang2020_full() -> None:
    assert _doc(fast=False)["problems"] == []
