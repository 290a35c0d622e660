"""Hostile command lines: output paths, the guard, solver names and seeds, importers of user files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from tests.hostile import ROOT, TINY, assert_paragraph, run, tiny, write


def test_out_folder_refused_before_the_solve(tmp_path: Path) -> None:
    res = run("solve", TINY, "--solver", "brute", "--out", tmp_path)
    assert_paragraph(res, 2, f"--out {tmp_path}: is a folder")
    assert res.stdout == ""  # nothing was solved (the result would have been printed)


def test_out_in_missing_folder_refused_before_the_solve(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "x.json"
    res = run("solve", TINY, "--solver", "brute", "--out", target)
    assert_paragraph(res, 2, f"--out {target}: the folder {target.parent} does not exist")
    assert res.stdout == ""


@pytest.mark.parametrize("name", ["p.xyz", "plot"])
def test_plot_format_refused_before_the_solve(tmp_path: Path, name: str) -> None:
    res = run("solve", TINY, "--solver", "brute", "--plot", tmp_path / name)
    assert_paragraph(res, 2, "--plot", "expected a file name ending in one of", ".png")
    assert res.stdout == "" and list(tmp_path.iterdir()) == []


def test_write_model_suffix_refused_before_the_solve(tmp_path: Path) -> None:
    res = run("solve", TINY, "--write-model", tmp_path / "m.txt")
    assert_paragraph(res, 2, "m.txt: cannot write a model as '.txt'; use .lp or .mps")
    assert res.stdout == ""


def test_out_is_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    res = run("solve", TINY, "--solver", "brute", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert json.loads(out.read_text())["objective"] == pytest.approx(0.066325, rel=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_unwritable_folder_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        locked = Path("/proc/self")  # not writable even for root
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    res = run("solve", TINY, "--solver", "brute", "--out", locked / "x.json")
    assert_paragraph(res, 2, "--out", "cannot write into the folder")


def test_schema_out_checked(tmp_path: Path) -> None:
    assert_paragraph(run("schema", "--out", tmp_path), 2, "is a folder")


def test_internal_error_is_one_paragraph_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import formulation.loader

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(formulation.loader, "load_instance", broken)
    res = run("validate", TINY)
    err = assert_paragraph(res, 1, "internal error (ZeroDivisionError: float division by zero)", "DNNPART_DEBUG=1")
    assert "File " not in err
    debug = run("validate", TINY, env={"DNNPART_DEBUG": "1"})
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr and "in broken" in debug.stderr


def test_recursion_error_anywhere_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import formulation.loader

    def deep(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(formulation.loader, "load_instance", deep)
    assert_paragraph(run("validate", TINY), 2, "nested too deeply", "RecursionError")


def test_seed_beyond_32_bits() -> None:
    res = run("solve", TINY, "--solver", "cpsat", "--seed", "99999999999999999999999")
    assert_paragraph(res, 2, "seed must be an integer in 0..2147483647", "99999999999999999999999")
    assert_paragraph(run("solve", TINY, "--solver", "cpsat", "--seed", "-1"), 2, "got -1")


def test_pyomo_unknown_name_has_no_pyomo_log() -> None:
    res = run("solve", TINY, "--solver", "pyomo:doesnotexist")
    err = assert_paragraph(res, 2, "Pyomo knows no solver named 'doesnotexist'", "--solver-executable")
    assert "WARNING" not in err and "asl" not in err


def test_pyomo_path_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "script.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    for name in (str(script), "script.sh", "./script.sh"):
        res = run("solve", TINY, "--solver", f"pyomo:{name}")
        assert_paragraph(res, 2, f"Pyomo knows no solver named {name!r}")
    assert not marker.exists()
    # The explicit option runs it (as the named solver's executable): the fake solver fails.
    res = run("solve", TINY, "--solver", "pyomo:cbc", "--solver-executable", script)
    assert marker.exists() and res.exit_code == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--solver", "pyomo:highs"], "not one that runs an executable"),
        (["--solver", "brute"], "only for --solver pyomo:NAME"),
        (["--solver", "pyomo:cbc"], "expected an executable file"),
    ],
)
def test_solver_executable_misuse(tmp_path: Path, args: list[str], needle: str) -> None:
    target = tmp_path / "not-executable"
    target.write_text("")
    assert_paragraph(run("solve", TINY, *args, "--solver-executable", target), 2, needle)


def test_referenced_secret_is_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    secret = "SECRET_TOKEN=abcdef0123456789"
    (tmp_path / "secret.txt").write_text(secret + " more secret words\n" * 3)
    (tmp_path / "broken.txt").write_text("a: [1,\n" + secret + "\n")
    (tmp_path / "keys.yaml").write_text(f"token: {secret}\n")
    for ref, needle in [
        ("secret.txt", "a model file: secret.txt should be a mapping with the key 'layers'"),
        ("broken.txt", "broken.txt: line 3, column 1: got (a referenced file's text, not shown)"),
        ("keys.yaml", "its content is not shown"),
        ("keys.yaml#token", "the key 'token' of keys.yaml should be a mapping"),
    ]:
        data = tiny()
        data["model"] = {"file": ref}
        f = write(tmp_path / "inst.yaml", data)
        err = assert_paragraph(run("validate", f.name), 2, needle)
        assert "SECRET" not in err and "abcdef" not in err, err


def test_referenced_model_file_still_loads(tmp_path: Path) -> None:
    data = tiny()
    (tmp_path / "model.yaml").write_text(json.dumps(data["model"]))
    data["model"] = {"file": "model.yaml"}
    f = write(tmp_path / "inst.yaml", data)
    res = run("validate", f)
    assert res.exit_code == 0 and "(5 layers, 3 devices" in res.stdout


def test_msr_huge_numbers_and_counts(tmp_path: Path) -> None:
    src = ROOT / "instances/third_party/msr-dnn-partitioning/latency-inputs/LayerGraphs/gnmt_inference.json"
    base = json.loads(src.read_text())
    many = write(tmp_path / "many.json", {**base, "maxFPGAs": 10_000_000})
    assert_paragraph(run("import", "msr", many), 2, "maxFPGAs, maxCPUs: got 10000000", "at most 1024 devices")
    big = write(tmp_path / "big.json", {**base, "maxSizePerFPGA": int("9" * 400)})
    assert_paragraph(run("import", "msr", big), 2, "maxSizePerFPGA", "an integer of 400 digits", "a finite number")
    node = dict(base["nodes"][0], cpuLatency=int("9" * 400))
    big2 = write(tmp_path / "big2.json", {**base, "nodes": [node, *base["nodes"][1:]]})
    assert_paragraph(run("import", "msr", big2), 2, "nodes[0].cpuLatency")
    assert_paragraph(run("import", "msr", src, "--fpgas", "5000"), 2, "--fpgas 5000", "at most 1024 devices")


def test_onnx_empty_and_cyclic_graphs(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    onnx.save(helper.make_model(helper.make_graph([], "empty", [x], [y])), tmp_path / "empty.onnx")
    nodes = [
        helper.make_node("Relu", ["b"], ["a"], name="n1"),
        helper.make_node("Relu", ["a"], ["b"], name="n2"),
        helper.make_node("Add", ["x", "b"], ["y"], name="n3"),
    ]
    onnx.save(helper.make_model(helper.make_graph(nodes, "cyc", [x], [y])), tmp_path / "cyclic.onnx")
    out = tmp_path / "out.yaml"
    res = run("import", "onnx", tmp_path / "empty.onnx", "-o", out)
    assert_paragraph(res, 2, "empty.onnx: the graph has 0 nodes", "no layer to import")
    res = run("import", "onnx", tmp_path / "cyclic.onnx", "-o", out)
    assert_paragraph(res, 2, "node 0 (n1) reads tensor 'b'", "a cycle")
    untyped = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    relu = helper.make_node("Relu", ["x"], ["y"])
    onnx.save(helper.make_model(helper.make_graph([relu], "untyped", [untyped], [y])), tmp_path / "untyped.onnx")
    res = run("import", "onnx", tmp_path / "untyped.onnx", "-o", out)
    assert_paragraph(res, 2, "untyped.onnx: cannot import this ONNX model (KeyError: 'x')")
    assert not out.exists()


@pytest.mark.parametrize("command", [["import", "onnx"], ["import", "pipedream"], ["import", "msr"]])
def test_importers_refuse_special_files(tmp_path: Path, command: list[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_paragraph(run(*command, fifo), 2, "a regular file, not a FIFO")
    assert_paragraph(run(*command, "/dev/zero"), 2, "a regular file, not a character device")


def test_scenario_device_count_is_bounded() -> None:
    res = run("scenario", "--devices", "phone:99999999999,cloud", "--network", "lte")
    assert_paragraph(res, 2, "100000000000 devices; expected at most 1024")
    ok = run("scenario", "--devices", "phone:3,cloud", "--network", "lte")
    assert ok.exit_code == 0, ok.stderr
    assert [d["id"] for d in yaml.safe_load(ok.stdout)["devices"]] == ["phone-1", "phone-2", "phone-3", "cloud"]


def test_validate_goes_on_after_a_failing_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    res = run("validate", fifo, TINY, "/dev/zero")
    assert res.exit_code == 2
    assert res.stderr.count("error:") == 2 and "Traceback" not in res.stderr
    assert res.stdout.startswith(f"ok {TINY}: tiny-dag-three-tier (5 layers, 3 devices")


def test_plot_draws_ids_with_dollar_signs_as_written(tmp_path: Path) -> None:
    data = tiny()
    renamed = {"stem": "$\\frac{", "left": "a$b$c", "right": "$$", "merge": "[/]", "head": "\\"}
    for lay in data["model"]["layers"]:
        lay["id"] = renamed[lay["id"]]
        lay["inputs"] = [renamed.get(i, i) for i in lay["inputs"]]
    f = write(tmp_path / "dollar.yaml", data)
    plot = tmp_path / "p.png"
    res = run("solve", f, "--solver", "brute", "--plot", plot)
    assert res.exit_code == 0, res.stderr
    assert plot.stat().st_size > 10_000 and (tmp_path / "p-gantt.png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dollar.yaml", "p-gantt.png", "p.png"]


@pytest.mark.parametrize("value", ["nan", "-5", "inf"])
def test_time_limit_out_of_range_in_every_command(value: str) -> None:
    alexnet = ROOT / "instances" / "examples" / "alexnet-lte-latency.yaml"
    commands = [
        ["solve", TINY],
        ["pareto", TINY, "--objectives", "latency,energy"],
        ["sweep", alexnet, "--param", "links.phone-cloud.bandwidth", "--values", "1,2"],
    ]
    for command in commands:
        res = run(*command, "--time-limit", value)
        assert_paragraph(res, 2, "time_limit_s must be a positive number of seconds")


def test_schedule_that_is_not_a_mapping(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert run("solve", TINY, "--solver", "brute", "--out", out).exit_code == 0
    bad = tmp_path / "s.json"
    bad.write_text("[1, 2]")
    res = run("evaluate", TINY, "--placement", out, "--schedule", bad)
    assert_paragraph(res, 2, f"{bad}: schedule: expected a JSON object {{layer id: start seconds}}")
