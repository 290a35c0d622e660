"""Every file in instances/invalid fails to load with exactly the error listed in expected.yaml."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from formulation.errors import InstanceError, InstanceErrors
from formulation.loader import load_instance

INVALID = Path(__file__).resolve().parent.parent / "instances" / "invalid"
EXPECTED: dict[str, str] = yaml.safe_load((INVALID / "expected.yaml").read_text())


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the instance's own directory may then contain file: targets (see ref-outside.yaml).
    monkeypatch.chdir(tmp_path)


def test_every_invalid_file_is_listed() -> None:
    on_disk = {p.name for p in INVALID.iterdir() if p.is_file() and p.name != "expected.yaml"}
    assert on_disk == set(EXPECTED)
    assert len(EXPECTED) >= 35
    assert any(n.endswith(".json") for n in EXPECTED)


def test_the_base_they_edit_is_valid() -> None:
    assert load_instance(INVALID / "parts" / "valid-base.yaml").graph.n == 2
    assert load_instance(INVALID / "parts" / "bundle.yaml").system.k == 2


@pytest.mark.parametrize(("name", "fragment"), sorted(EXPECTED.items()), ids=sorted(EXPECTED))
def test_invalid_file(name: str, fragment: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InstanceError) as info:
        load_instance(INVALID / name)
    assert time.perf_counter() - start < 2.0, "a bad file must fail fast"
    err = info.value
    # Exactly the intended problem: one error, not a list.
    assert not isinstance(err, InstanceErrors), str(err)
    assert fragment in str(err)
    assert "\n" not in str(err)


def test_allow_outside_lets_the_escaping_reference_load() -> None:
    inst = load_instance(INVALID / "ref-outside.yaml", allow_outside=True)
    assert inst.graph.name == "alexnet"
