"""ONNX importer: shape inference only, FLOPs of common ops, constants, scopes, agreement with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from toolchain.cli import app  # noqa: E402
from toolchain.importers.onnx_model import from_onnx  # noqa: E402


def _model(nodes, inputs, outputs, inits=()):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _w(name: str, *shape: int):  # type: ignore[no-untyped-def]
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _attention_block():  # type: ignore[no-untyped-def]
    """x[1,16,64] -> q, k, v projections -> softmax(q kᵀ) v -> output projection."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q"], name="/attn/q/MatMul"),
        helper.make_node("MatMul", ["x", "wk"], ["k"], name="/attn/k/MatMul"),
        helper.make_node("MatMul", ["x", "wv"], ["v"], name="/attn/v/MatMul"),
        helper.make_node("Transpose", ["k"], ["kt"], name="/attn/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="/attn/scores/MatMul"),
        helper.make_node("Softmax", ["s"], ["p"], name="/attn/Softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["o"], name="/attn/context/MatMul"),
        helper.make_node("MatMul", ["o", "wo"], ["y"], name="/out/MatMul"),
    ]
    inits = [_w(n, 64, 64) for n in ("wq", "wk", "wv", "wo")]
    return _model(nodes, [helper.make_tensor_value_info("x", f, [1, 16, 64])],
                  [helper.make_tensor_value_info("y", f, [1, 16, 64])], inits)


def test_attention_block_as_it_decomposes() -> None:
    model = from_onnx(_attention_block())
    rows = {lay["id"]: (lay["op"], lay["flops"], lay["param_bytes"], lay["output_bytes"]) for lay in model["layers"]}
    # projections: 2 * 16 * 64 * 64 = 131072 FLOP, weights 64*64*4 = 16384 B, out 16*64*4 = 4096 B
    for proj in ("attn.q.MatMul", "attn.v.MatMul", "out.MatMul"):
        assert rows[proj] == ("linear", 131072, 16384, 4096)
    # the transpose of k is a view: merged into k's layer
    assert "attn.Transpose" not in rows
    assert rows["attn.k.MatMul"] == ("linear", 131072, 16384, 4096)
    # scores q kᵀ: 2 * 16 * 64 * 16 = 32768 FLOP, out 16*16*4 = 1024 B; softmax 3 per element = 768
    assert rows["attn.scores.MatMul"] == ("matmul", 32768, 0, 1024)
    assert rows["attn.Softmax"] == ("softmax", 768, 0, 1024)
    assert rows["attn.context.MatMul"] == ("matmul", 2 * 16 * 16 * 64, 0, 4096)
    by_id = {lay["id"]: lay for lay in model["layers"]}
    assert by_id["attn.context.MatMul"]["inputs"] == ["attn.Softmax", "attn.v.MatMul"]


def test_module_level_groups_consecutive_nodes_of_a_scope() -> None:
    f = TensorProto.FLOAT
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="/block1/conv/Conv", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="/block1/conv/Relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="/block2/conv/Conv", **conv),
    ]
    m = _model(nodes, [helper.make_tensor_value_info("x", f, [1, 2, 4, 4])],
               [helper.make_tensor_value_info("c2", f, [1, 2, 4, 4])], [_w("w1", 2, 2, 3, 3), _w("w2", 2, 2, 3, 3)])
    # conv: 2 * (2*4*4 outputs) * (2*3*3) = 1152 FLOP; relu: 32
    by_op = [(lay["id"], lay["flops"]) for lay in from_onnx(m, level="op")["layers"]]
    assert by_op == [("block1.conv.Conv", 1152), ("block1.conv.Relu", 32), ("block2.conv.Conv", 1152)]
    grouped = from_onnx(m, level="module")["layers"]
    assert [(lay["id"], lay["op"], lay["flops"], lay["inputs"]) for lay in grouped] == [
        ("block1.conv.Conv", "conv2d", 1184, ["x"]),
        ("block2.conv.Conv", "conv2d", 1152, ["block1.conv.Conv"]),
    ]


def test_constants_and_shape_arithmetic_cost_nothing() -> None:
    f = TensorProto.FLOAT
    shape = numpy_helper.from_array(np.array([1, 48], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=shape),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "c"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], name="fc", transB=1),
    ]
    m = _model(nodes, [helper.make_tensor_value_info("x", f, [1, 3, 4, 4])],
               [helper.make_tensor_value_info("y", f, [1, 5])], [_w("w", 5, 48), _w("b", 5)])
    model = from_onnx(m)
    assert [(lay["id"], lay["flops"], lay["param_bytes"]) for lay in model["layers"]] == [
        ("relu", 48, 0),  # 1 per element of 1x3x4x4
        ("fc", 2 * 48 * 5, (5 * 48 + 5) * 4),
    ]
    assert model["layers"][1]["inputs"] == ["relu"]


def test_dynamic_dimensions_need_static_input_shapes() -> None:
    f = TensorProto.FLOAT
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
               [helper.make_tensor_value_info("x", f, ["batch", 8])],
               [helper.make_tensor_value_info("y", f, ["batch", 8])])
    with pytest.raises(ValueError, match="dynamic dimension 'batch'"):
        from_onnx(m)
    model = from_onnx(m, input_shapes={"x": [2, 8]})
    assert model["inputs"] == [{"id": "x", "bytes": 64}]
    assert model["layers"][0]["flops"] == 16


@pytest.mark.torch
def test_onnx_and_pytorch_imports_of_the_same_model_agree() -> None:
    pytest.importorskip("torch")
    from toolchain.importers.pytorch import from_module
    from toolchain.models.toy import branchy, branchy_onnx

    module, args = branchy()
    mine = from_module(module, args, name="branchy")
    theirs = from_onnx(branchy_onnx())
    fields = ("id", "op", "inputs", "flops", "param_bytes", "output_bytes")
    assert [tuple(lay[f] for f in fields) for lay in theirs["layers"]] == [
        tuple(lay[f] for f in fields) for lay in mine["layers"]
    ]
    assert theirs["inputs"] == mine["inputs"] and theirs["outputs"] == mine["outputs"]
    for a, b in zip(theirs["layers"], mine["layers"], strict=True):
        for key in ("kernel", "stride", "padding", "shape_out"):
            assert a["attrs"].get(key) == b["attrs"].get(key)


runner = CliRunner()


def test_cli_import_onnx(tmp_path: Path) -> None:
    path = tmp_path / "attn.onnx"
    onnx.save(_attention_block(), str(path))
    out = tmp_path / "attn.yaml"
    res = runner.invoke(app, ["import", "onnx", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert sum(lay["flops"] for lay in data["layers"]) == 4 * 131072 + 32768 + 768 + 32768


def test_cli_import_onnx_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    for argv, message in [
        ([str(tmp_path / "missing.onnx")], "no such file"),
        ([str(bad)], "not a readable ONNX model"),
        ([str(bad), "--input-shape", "x"], "--input-shape 'x'"),
    ]:
        res = runner.invoke(app, ["import", "onnx", *argv])
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
