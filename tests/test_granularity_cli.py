"""``dnnpart solve --split/--granularity`` and ``dnnpart transform``: parsing, exit codes, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from formulation.granularity import GranularityError, parse_split
from formulation.loader import load_instance
from toolchain.cli import app

runner = CliRunner()

# Two 3x3 convolutions with ReLUs on a 1x8x8 image, float32; one device computes 1e6 FLOP/s.
# conv1 1->2: 2 * (2*8*8) * 9 = 2304 FLOP, 512 B out; conv2 2->2: 2 * (2*8*8) * 18 = 4608 FLOP.
INSTANCE = """
dnnpart: 1
name: twoconv
model:
  inputs: [{id: x, bytes: 256}]
  layers:
    - {id: conv1, op: conv2d, inputs: [x], flops: 2304, output_bytes: 512, param_bytes: 72,
       attrs: {kernel: [3, 3], stride: [1, 1], padding: [1, 1], shape_in: [1, 1, 8, 8], shape_out: [1, 2, 8, 8]}}
    - {id: relu1, op: relu, inputs: [conv1], flops: 128, output_bytes: 512}
    - {id: conv2, op: conv2d, inputs: [relu1], flops: 4608, output_bytes: 512, param_bytes: 144,
       attrs: {kernel: [3, 3], stride: [1, 1], padding: [1, 1], shape_in: [1, 2, 8, 8], shape_out: [1, 2, 8, 8]}}
    - {id: relu2, op: relu, inputs: [conv2], flops: 128, output_bytes: 512}
system:
  devices:
    - {id: cam, compute: 1e6}
    - {id: edge, compute: 1e6}
  links:
    - {from: cam, to: edge, bandwidth: 1e9}
  source: cam
  sink: cam
problem: {objective: latency, execution: sequential}
"""


def write(tmp_path: Path) -> Path:
    p = tmp_path / "twoconv.yaml"
    p.write_text(INSTANCE)
    return p


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_parse_split_forms() -> None:
    ids = ["conv1", "relu1", "conv-a", "conv-a-b"]
    s = parse_split("conv1-relu1:tiles=3x2", ids)
    assert (s.first, s.last, s.kind, s.rows, s.cols, s.mode) == ("conv1", "relu1", "spatial", 3, 2, "fused")
    s = parse_split("conv1:rows=4,mode=layerwise", ids)
    assert (s.rows, s.cols, s.mode) == (4, 1, "layerwise")
    s = parse_split("conv-a-b:channels=2,mode=reduce", ids)  # a whole id wins over a range
    assert (s.first, s.last, s.kind, s.parts, s.mode) == ("conv-a-b", "conv-a-b", "channel", 2, "reduce")
    assert parse_split("conv1:heads=8", ids).units == "heads"
    for bad, msg in [("conv1", "RANGE:KEY=VALUE"), ("conv9:rows=2", "neither a layer"),
                     ("conv1:tiles=3", "RxC"), ("conv1:rows=0", "positive"), ("conv1:foo=1", "unknown key"),
                     ("conv1:rows=2,channels=2", "either"),
                     ("conv1:rows=2,mode=reduce", "fused, layerwise or exchange")]:
        with pytest.raises(GranularityError, match=msg):
            parse_split(bad, ids)


def test_solve_with_split_reports_original_layers(tmp_path: Path) -> None:
    f = write(tmp_path)
    r = run("solve", f, "--split", "conv1-relu2:rows=2", "--solver", "brute", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    gran = out["granularity"]
    assert gran["steps"] == ["spatial split conv1-relu2 into 2 parts (fused)"]
    assert gran["original_layers"] == 4 and gran["nodes"] == 5
    parts = [row for row in gran["layers"]["conv2"] if row["kind"] == "part"]
    assert [row["detail"] for row in parts] == ["rows 0:4, cols 0:8", "rows 4:8, cols 0:8"]
    # Sequential latency, both devices at 1e6 FLOP/s, an instant link: the objective is the split's
    # FLOP / 1e6. Part 0 computes relu2/conv2 rows 0:4 from relu1/conv1 rows 0:5:
    # 2304*5/8 + 128*5/8 + 4608/2 + 128/2 = 1440 + 80 + 2304 + 64 = 3888 FLOP; part 1 the same by
    # symmetry: 7776 FLOP, 7.776 ms (the unsplit stack is 7168 FLOP; the halo costs 608).
    assert out["objective"] == pytest.approx(7776 / 1e6)
    assert set(gran["placement"]) == {"conv1", "relu1", "conv2", "relu2"}


def test_solve_with_granularity_layer(tmp_path: Path) -> None:
    r = run("solve", write(tmp_path), "--granularity", "layer", "--solver", "brute", "--json")
    assert r.exit_code == 0, r.output
    gran = json.loads(r.stdout)["granularity"]
    assert gran["nodes"] == 2
    assert gran["placement"] == {"conv1": "cam", "relu1": "cam", "conv2": "cam", "relu2": "cam"}
    assert gran["layers"]["relu2"][0]["node"] == "conv2+relu2"
    human = run("solve", write(tmp_path), "--granularity", "layer", "--solver", "brute")
    assert "placement on the original layers" in human.stdout and "in conv1+relu1" in human.stdout


def test_bad_specs_exit_2_without_traceback(tmp_path: Path) -> None:
    f = write(tmp_path)
    for args in (["--split", "conv1:tiles=3"], ["--granularity", "blocks"], ["--split", "relu1:rows=2"]):
        r = run("solve", f, *args)
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output and "error:" in r.output


def test_transform_writes_a_loadable_instance(tmp_path: Path) -> None:
    out = tmp_path / "tiled.yaml"
    r = run("transform", write(tmp_path), "--split", "conv1-relu2:tiles=2x2", "--out", out)
    assert r.exit_code == 0, r.output
    inst = load_instance(out)
    assert inst.n == 4 + 4 + 1  # 4 slices, 4 tiles, 1 gather
    assert inst.graph.outputs == (inst.graph.layer_index["conv1-relu2#out"],)
    j = run("transform", write(tmp_path), "--granularity", "layer", "--json")
    assert json.loads(j.stdout)["nodes"]["conv1+relu1"] == {"kind": "merged", "layers": ["conv1", "relu1"]}
