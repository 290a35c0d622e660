"""Mutation test of the reproduction checks: every published value in every ``expected.json`` is judged.

For each ``paper_reproductions/<name>/expected.json`` (the real files, legacy ``studies`` included)
and each published value in it, the value is edited (scaled by 1.5, or shifted by 1; a word
replaced) and the stored ``results.json`` is judged again against the edited file, as ``--rejudge``
does: the judgement must report a problem naming that number. The same holds when one of our
stored values moves (scaled by 1.5): a move beyond its tolerance is a problem, never a quiet
"differs". Pure re-judging, no solver runs: a second or two in all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paper_reproductions import common, report

HERE = Path(report.__file__).resolve().parent
FOLDERS = sorted(p.parent for p in HERE.glob("*/expected.json"))


def _spec(raw: dict[str, Any]) -> dict[str, Any]:
    """The convention's form of an expected.json (legacy ``studies`` converted)."""
    return raw if "numbers" in raw else report.legacy_expected(raw)


def _judge(folder: Path, raw: dict[str, Any], values: dict[str, Any] | None = None) -> list[str]:
    doc = json.loads((folder / "results.json").read_text())
    if values is not None:
        doc["values"] = values
    problems: list[str] = common.rejudge(doc, _spec(raw))["problems"]
    return problems


def _published(raw: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """(number id, path to its published value in the raw document) for every published value."""
    if "numbers" in raw:
        for key, spec in raw["numbers"].items():
            if spec.get("published") is not None:
                yield key, ["numbers", key, "published"]
        return
    for study, exp in raw["studies"].items():
        for i, k in enumerate(exp["devices"]):
            yield f"{study}.{exp.get('metric', 'speedup')}_{k}", ["studies", study, "speedup_range", i]


def _edits(value: Any) -> list[Any]:
    """A published value scaled by 1.5 and shifted by 1 (an interval: both ends); a word replaced."""
    if isinstance(value, str):
        return [value + " (edited)"]
    if isinstance(value, list):
        return [[1.5 * float(v) for v in value], [float(v) + 1.0 for v in value]]
    return [1.5 * float(value), float(value) + 1.0]


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _get(doc: dict[str, Any], path: list[Any]) -> Any:
    node: Any = doc
    for step in path:
        node = node[step]
    return node


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_stored_results_judge_clean(folder: Path) -> None:
    """The stored results agree with their expected.json (the baseline the edits must disturb), and
    every judged number records ours, its verdict and its standing."""
    raw = json.loads((folder / "expected.json").read_text())
    assert _judge(folder, raw) == []
    judged = list(_published(raw))
    assert judged, f"{folder.name}: no published value to judge"
    for key, _ in judged:
        spec = _spec(raw)["numbers"][key]
        assert {"ours", "verdict", "standing"} <= set(spec), f"{folder.name}/{key} records no ours/verdict/standing"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_editing_any_published_value_is_a_problem(folder: Path) -> None:
    raw = json.loads((folder / "expected.json").read_text())
    missed = []
    count = 0
    for key, path in _published(raw):
        for edited in _edits(_get(raw, path)):
            mutant = copy.deepcopy(raw)
            _set(mutant, path, edited)
            count += 1
            if not any(p.startswith(f"{key}:") for p in _judge(folder, mutant)):
                missed.append(f"{key} published {_get(raw, path)!r} -> {edited!r}")
    assert count >= 2
    assert missed == [], f"{folder.name}: edits the judgement did not notice: {missed}"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_a_move_of_ours_is_a_problem(folder: Path) -> None:
    """Each judged value of ours, scaled by 1.5 (a word: replaced), is reported as a problem."""
    raw = json.loads((folder / "expected.json").read_text())
    values = json.loads((folder / "results.json").read_text())["values"]
    missed = []
    for key, _ in _published(raw):
        moved = dict(values)
        ours = values[key]
        moved[key] = ours + " (moved)" if isinstance(ours, str) else 1.5 * float(ours)
        if not any(p.startswith(f"{key}:") for p in _judge(folder, raw, moved)):
            missed.append(key)
    assert missed == [], f"{folder.name}: moves of ours the judgement did not notice: {missed}"
