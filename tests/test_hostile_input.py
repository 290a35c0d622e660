"""Hostile input files: every one ends in exit 2 and one paragraph naming file, field, value, expected.

Each test reproduces one defect class: numbers beyond float range, nesting, size and special files,
console markup in user values, device ids with the channel separator, malformed layer attrs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from formulation.errors import InputLimitError, InstanceError
from formulation.loader import load_instance, load_instance_data
from formulation.yamlio import MAX_DEPTH, MAX_FILE_BYTES, load_json_text
from tests.hostile import ROOT, TINY, assert_paragraph, run, tiny, write


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_integer_beyond_float_range_names_the_field(tmp_path: Path, suffix: str) -> None:
    data = tiny()
    data["model"]["layers"][2]["flops"] = int("9" * 400)
    f = write(tmp_path / f"big{suffix}", data)
    assert_paragraph(
        run("validate", f), 2, f"{f}: model.layers[2].flops", "an integer of 400 digits", "within the range of a float"
    )


def test_5000_digit_json_integer(tmp_path: Path) -> None:
    text = TINY.read_text()
    data = tiny()
    data["model"]["layers"][0]["flops"] = 1
    f = tmp_path / "huge.json"
    f.write_text(write(tmp_path / "x.json", data).read_text().replace('"flops": 1', '"flops": ' + "7" * 5000, 1))
    assert text  # the example itself is untouched
    assert_paragraph(run("validate", f), 2, "model.layers[0].flops", "an integer of 5000 digits")


def test_integer_beyond_float_range_in_memory_data() -> None:
    data = tiny()
    data["system"]["devices"][1]["memory"] = -(10**400)
    with pytest.raises(InputLimitError) as info:
        load_instance_data(data)
    assert info.value.path == "system.devices[1].memory"


def test_json_nested_100000_deep(tmp_path: Path) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    assert_paragraph(run("validate", f), 2, f"{f}: got nesting deeper than {MAX_DEPTH}", "DNNPART_MAX_DEPTH")


def test_nesting_just_over_the_limit_names_the_path() -> None:
    text = '{"a": ' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(InputLimitError, match=f"nesting deeper than {MAX_DEPTH}") as info:
        load_json_text(text, "n.json")
    assert info.value.path == ".".join(["a"] * (MAX_DEPTH + 1))
    ok = '{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH
    assert load_json_text(ok, "n.json") is not None


def test_depth_limit_is_configurable(tmp_path: Path) -> None:
    # The example nests 4 levels (model.layers[i].{...}); a limit of 2 refuses it, the default loads it.
    res = run("validate", TINY, env={"DNNPART_MAX_DEPTH": "2"})
    assert_paragraph(res, 2, "nesting deeper than 2", "DNNPART_MAX_DEPTH")
    assert run("validate", TINY).exit_code == 0


def test_file_size_limit_is_configurable() -> None:
    size = TINY.stat().st_size
    res = run("validate", TINY, env={"DNNPART_MAX_FILE_BYTES": str(size - 1)})
    assert_paragraph(res, 2, f"got a file of {size} bytes", f"at most {size - 1} bytes", "DNNPART_MAX_FILE_BYTES")
    assert run("validate", TINY, env={"DNNPART_MAX_FILE_BYTES": str(size)}).exit_code == 0
    assert MAX_FILE_BYTES == 64 * 2**20


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_bad_limit_setting(value: str) -> None:
    res = run("validate", TINY, env={"DNNPART_MAX_FILE_BYTES": value})
    assert_paragraph(res, 2, f"DNNPART_MAX_FILE_BYTES={value!r}", "expected a positive integer")


def test_dev_zero_is_refused_without_reading() -> None:
    assert_paragraph(run("validate", "/dev/zero"), 2, "/dev/zero", "a regular file, not a character device")


def test_fifo_is_refused_without_opening(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert_paragraph(run("validate", fifo), 2, str(fifo), "a regular file, not a FIFO")


@pytest.mark.parametrize(
    ("field", "value"),
    [("sink", "[/]"), ("source", "[red]tab[/red]let"), ("source", "ph:x:one"), ("sink", "[bold]x")],
)
def test_markup_and_emoji_codes_are_shown_as_written(tmp_path: Path, field: str, value: str) -> None:
    data = tiny()
    data["system"][field] = value
    f = write(tmp_path / "m.yaml", data)
    assert_paragraph(run("validate", f), 2, f"system.{field}: got {value!r}; expected the id of a device")


def test_unit_explanation_with_brackets_survives(tmp_path: Path) -> None:
    data = tiny()
    data["model"]["layers"][0]["flops"] = "6 GFLOP*s"
    f = write(tmp_path / "u.yaml", data)
    assert_paragraph(run("validate", f), 2, "got '6 GFLOP*s'", "'GFLOP*s' measures [compute] * [time]")


def test_markup_in_ids_is_printed_literally_in_results(tmp_path: Path) -> None:
    data = tiny()
    data["name"] = "[red]net[/red] :x:"
    data["model"]["layers"][0]["id"] = "[b]stem"
    for lay in data["model"]["layers"]:
        lay["inputs"] = ["[b]stem" if i == "stem" else i for i in lay["inputs"]]
    f = write(tmp_path / "ok.yaml", data)
    res = run("solve", f, "--solver", "brute")
    assert res.exit_code == 0, res.stderr
    assert "[red]net[/red] :x:" in res.stdout and "[b]stem" in res.stdout
    res = run("validate", f)
    assert res.exit_code == 0 and "ok " in res.stdout and "[red]net[/red] :x:" in res.stdout


def test_device_id_with_channel_separator_is_refused(tmp_path: Path) -> None:
    data = tiny()
    data["system"]["devices"][0]["id"] = "cam->edge"
    f = write(tmp_path / "sep.yaml", data)
    assert_paragraph(run("validate", f), 2, "system.devices[0].id: got 'cam->edge'", "without '->'")


def test_channel_names_are_unique_for_every_valid_id_set() -> None:
    # With '->' banned from device ids, "a->b" splits back into its two ends in one way only.
    inst = load_instance(TINY)
    names = [f"{a}->{b}" for a, b in inst.system.links]
    assert len(set(names)) == len(names) == 6
    for name, (a, b) in zip(names, inst.system.links, strict=True):
        assert tuple(name.split("->")) == (a, b)


@pytest.mark.parametrize(
    ("attrs", "split"),
    [
        ({"shape_in": "x", "shape_out": "x"}, "stem:tiles=2x2"),
        ({"shape_in": ["a", "b", "c"], "shape_out": ["a", "b", "c"]}, "stem:rows=2"),
        ({"shape_in": {"a": 1}, "shape_out": {"a": 1}, "kernel": {"a": 1}}, "stem:channels=2"),
    ],
)
def test_split_on_garbage_attrs(tmp_path: Path, attrs: dict[str, object], split: str) -> None:
    data = tiny()
    data["model"]["layers"][0]["attrs"] = attrs
    f = write(tmp_path / "attrs.yaml", data)
    assert_paragraph(run("solve", f, "--solver", "brute", "--split", split), 2, f"{f}: --split {split!r}", "attrs")


def test_every_bundled_instance_still_loads() -> None:
    """Compatibility: the new limits and id rules refuse no instance the repository ships."""
    loaded = 0
    for path in sorted((ROOT / "instances").rglob("*")):
        if path.suffix not in (".yaml", ".json") or "invalid" in path.parts or "third_party" in path.parts:
            continue
        if not path.read_text().lstrip().startswith(("dnnpart:", '{"dnnpart"', "#")):
            continue
        try:
            load_instance(path)
        except InstanceError as exc:
            if "dnnpart" in exc.path and "format version" in exc.expected:
                continue  # a model or system file, named from instances
            raise
        loaded += 1
    assert loaded >= 30


@pytest.mark.parametrize(("ref", "reason"), [("a\x00b", "embedded null byte"), ("a" * 5000, "File name too long")])
def test_unusable_reference_paths(tmp_path: Path, ref: str, reason: str) -> None:
    data = tiny()
    data["model"] = {"file": ref}
    f = write(tmp_path / "ref.yaml", data)
    err = assert_paragraph(run("validate", f), 2, f"{f}: model.file: got", f"a path the system can look up ({reason})")
    assert len(err) < 400
