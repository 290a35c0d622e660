"""docs/instance-format.md documents every key of the instance schema, and its numbers are right.

* Every property name, enumerated value and constant of the JSON Schema (``dnnpart schema``) is
  written as code somewhere in the reference.
* Each schema section has its own table in the matching section of the reference, with one row per
  key; the row states the key's base unit (where the table has a unit column), its default and
  whether it is required, as the schema says.
* Every "docs/instance-format.md §N" cited anywhere in the repository names a section that exists.
* The worked example of §5.13 loads from the page and the evaluator gives the table's values.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "instance-format.md"

#: Schema definition -> the section of the reference that documents its keys.
SECTION_OF = {
    "InstanceFile": "1.1",
    "FileRef": "1.2",
    "ModelSpec": "2",
    "ModelInputSpec": "2.1",
    "LayerSpec": "2.2",
    "SystemSpec": "3",
    "DeviceSpec": "3.1",
    "LinkSpec": "3.2",
    "ProblemSpec": "4",
    "ConstraintsSpec": "4.4",
    "ScenarioSpec": "10.1",
    "VariantSpec": "11.1",
    "ExitSpec": "11.2",
}

#: ``x-unit`` kind -> the base unit the reference writes in a table's unit column.
UNIT_LABEL = {
    "time": "s",
    "bytes": "B",
    "flops": "FLOP",
    "flop_rate": "FLOP/s",
    "byte_rate": "B/s",
    "power": "W",
    "energy": "J",
    "usd": "USD",
    "usd_rate": "USD/s",
    "usd_per_byte": "USD/B",
}

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.M)
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")


def _text() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """``{"5.6": body}``: the text under each numbered heading, up to the next heading."""
    heads = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for i, h in enumerate(heads):
        m = _NUMBER.match(h.group(2))
        if m:
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            out[m.group(1)] = text[h.end() : end]
    return out


def table_rows(body: str) -> tuple[list[str], dict[str, list[str]]]:
    """The first table of ``body``: its lower-cased header cells and ``{key: cells}`` for rows whose
    first cell starts with a code span (the key is that cell without backticks)."""
    header: list[str] = []
    rows: dict[str, list[str]] = {}
    for line in body.splitlines():
        if not line.startswith("|"):
            if header and rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        if cells[0].startswith("`"):
            rows[cells[0].replace("`", "")] = cells
    return header, rows


def _walk(node: Any, names: set[str], values: set[str]) -> None:
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            names.add(key)
            _walk(sub, names, values)
        for key in ("enum", "const"):
            got = node.get(key)
            for v in got if isinstance(got, list) else [got]:
                if isinstance(v, str):
                    values.add(v)
        for key, sub in node.items():
            if key != "properties":
                _walk(sub, names, values)
    elif isinstance(node, list):
        for sub in node:
            _walk(sub, names, values)


def schema_words(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(every property name, every string enum/const value) of the schema, recursively."""
    names: set[str] = set()
    values: set[str] = set()
    _walk(schema, names, values)
    return names, values


def undocumented(schema: dict[str, Any], text: str) -> list[str]:
    """Schema names and values that the reference never writes as code (`` `name` ``)."""
    code = set(re.findall(r"`([^`\n]+)`", text))
    words = {w for span in code for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}
    names, values = schema_words(schema)
    missing = [f"key {n!r}" for n in sorted(names) if n not in code and n not in words]
    missing += [f"value {v!r}" for v in sorted(values) if v not in code and v not in words]
    return missing


def test_schema_has_the_expected_shape() -> None:
    # Guards the walk itself: it must see keys at every depth, enumerations and constants.
    names, values = schema_words(json_schema())
    assert {"dnnpart", "bandwidth", "workspace_bytes", "energy_budget", "weighted", "file"} <= names
    assert {"end", "parallel", "params", "throughput"} <= values
    assert set(SECTION_OF) - {"InstanceFile"} <= set(json_schema()["$defs"])


def test_every_schema_key_and_value_is_documented() -> None:
    assert undocumented(json_schema(), _text()) == []


def test_a_missing_key_is_detected() -> None:
    text = _text()
    assert "`send_once`" in text
    assert undocumented(json_schema(), text.replace("send_once", "xx")) == ["key 'send_once'"]


def test_the_committed_schema_is_the_one_documented() -> None:
    committed = json.loads((ROOT / "formulation" / "instance.schema.json").read_text(encoding="utf-8"))
    assert undocumented(committed, _text()) == []


def _definitions() -> dict[str, dict[str, Any]]:
    schema = json_schema()
    defs = dict(schema["$defs"])
    defs["InstanceFile"] = {k: schema[k] for k in ("properties", "required")}
    return defs


@pytest.mark.parametrize("definition", sorted(SECTION_OF))
def test_each_section_tabulates_its_keys(definition: str) -> None:
    body = sections(_text())[SECTION_OF[definition]]
    spec = _definitions()[definition]
    props: dict[str, Any] = spec["properties"]
    required = set(spec.get("required", []))
    if definition == "FileRef":  # one key, explained in prose
        assert set(props) == {"file"} and "`file`" in body
        return
    header, rows = table_rows(body)
    assert header, f"§{SECTION_OF[definition]} has no table"
    assert set(rows) == set(props), f"§{SECTION_OF[definition]}: rows {sorted(rows)} vs keys {sorted(props)}"
    for key, prop in props.items():
        cells = dict(zip(header, rows[key], strict=False))
        where = f"§{SECTION_OF[definition]} `{key}`"
        if "required" in cells:
            assert cells["required"] == ("yes" if key in required else "no"), where
        unit = prop.get("x-unit")
        if "unit" in cells and unit in UNIT_LABEL:
            assert cells["unit"] == UNIT_LABEL[unit], f"{where}: unit {cells['unit']!r}, schema {unit!r}"
        default = prop.get("default")
        if "default" in cells and isinstance(default, bool | int | float | str) and key in props:
            shown = '""' if default == "" else json.dumps(default).strip('"')
            assert f"`{shown}`" in cells["default"], f"{where}: default {default!r} not shown"


def test_cited_sections_exist() -> None:
    # Every "instance-format.md §N" in a tracked file, and every anchor into the page, must exist.
    have = set(sections(_text()))
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    cited: dict[str, set[str]] = {}
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".json", ".yaml", ".ipynb", ".txt", ""} or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        text = text.replace("\\u00a7", "§")
        for m in re.finditer(r"instance-format\.md[ ,]*§\s?(\d+(?:\.\d+)*)", text):
            cited.setdefault(m.group(1), set()).add(name)
    assert cited, "no citation found: the scan is broken"
    missing = {sec: sorted(where) for sec, where in cited.items() if sec not in have}
    assert missing == {}


def _worked_example() -> tuple[dict[str, Any], dict[str, str]]:
    body = sections(_text())["5.13"]
    block = re.search(r"```yaml\n(.*?)```", body, re.S)
    assert block is not None
    _, rows = table_rows(body)
    return yaml.safe_load(block.group(1)), {k: v[1] for k, v in rows.items()}


def test_worked_example_matches_the_evaluator() -> None:
    data, table = _worked_example()
    inst = load_instance_data(data)
    ev = evaluate(inst, {"a": "phone", "b": "cloud"})

    def stated(key: str) -> float:
        # the last number of the row, e.g. "... = 0.9505 J" -> 0.9505, "1.301e-4 USD" -> 1.301e-4
        nums = re.findall(r"\d[\d,]*(?:\.\d+)?(?:e-?\d+)?", table[key])
        return float(nums[-1].replace(",", ""))

    assert ev.feasible
    assert ev.latency_sequential_s == pytest.approx(stated("L_seq (§5.3)"), rel=1e-12)
    assert ev.latency_parallel_s == pytest.approx(stated("L_par (§5.4)"), rel=1e-12)
    assert ev.period_s == pytest.approx(stated("P (§5.5)"), rel=1e-12)
    assert ev.energy_j["phone"] == pytest.approx(stated("E(phone) (§5.6)"), rel=1e-12)
    assert ev.energy_j["cloud"] == pytest.approx(stated("E(cloud) (§5.6)"), rel=1e-12)
    assert ev.cost_usd == pytest.approx(stated("C (§5.7)"), rel=1e-12)
    assert ev.memory_bytes["phone"] == pytest.approx(stated("M(phone) (§5.9)") * 1e6, rel=1e-12)
    assert ev.memory_bytes["cloud"] == pytest.approx(stated("M(cloud) (§5.9)") * 1e6, rel=1e-12)
    assert ev.objective == pytest.approx(0.9505, rel=1e-12)
