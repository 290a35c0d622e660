"""PyTorch importer: hand-computed FLOPs and bytes, branches, attrs, published totals, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from formulation.loader import load_instance_data  # noqa: E402
from toolchain.cli import app  # noqa: E402
from toolchain.importers.common import totals  # noqa: E402
from toolchain.importers.pytorch import from_module, trace_module  # noqa: E402
from toolchain.models import MODELS, model_dict  # noqa: E402
from toolchain.models.toy import branchy  # noqa: E402

pytestmark = pytest.mark.torch
ROOT = Path(__file__).resolve().parents[1]

# Branchy(channels=8, image=8) on a 1x3x8x8 float32 input (768 B). Every tensor below is float32.
# conv  3->8, 3x3, pad 1: out 8x8x8 = 512 values (2048 B); FLOP 2*512*(3*3*3) = 27648;
#       params 8*27 + 8 = 224 -> 896 B
# bn    FLOP 2 per element = 1024; reads weight, bias, running mean, running var: 4*8*4 = 128 B
# relu  1 per element = 512
# conv2 8->8, 3x3, pad 1: FLOP 2*512*(8*3*3) = 73728; params 8*72 + 8 = 584 -> 2336 B
# relu@1 (second call of the same ReLU module) 512
# add   residual: 512
# cat   [add, relu] -> 16x8x8 = 1024 values (4096 B), 0 FLOP
# pool  2x2 max: 16x4x4 = 256 outputs x 4 = 1024 FLOP, out 1024 B (the flatten view merges in)
# fc    256 -> 10: FLOP 2*256*10 = 5120; params 2560 + 10 = 2570 -> 10280 B; out 40 B
EXPECTED = [
    ("conv", "conv2d", ["x"], 27648, 896, 2048),
    ("bn", "batch_norm", ["conv"], 1024, 128, 2048),
    ("relu", "relu", ["bn"], 512, 0, 2048),
    ("conv2", "conv2d", ["relu"], 73728, 2336, 2048),
    ("relu@1", "relu", ["conv2"], 512, 0, 2048),
    ("add", "add", ["relu@1", "relu"], 512, 0, 2048),
    ("cat", "cat", ["add", "relu"], 0, 0, 4096),
    ("pool", "max_pool2d", ["cat"], 1024, 0, 1024),
    ("fc", "linear", ["pool"], 5120, 10280, 40),
]


def _rows(model: dict) -> list[tuple]:  # type: ignore[type-arg]
    return [
        (lay["id"], lay["op"], lay["inputs"], lay["flops"], lay["param_bytes"], lay["output_bytes"])
        for lay in model["layers"]
    ]


def test_branchy_reproduces_hand_computed_flops_and_bytes() -> None:
    module, args = branchy()
    model = from_module(module, args, name="branchy")
    assert model["inputs"] == [{"id": "x", "bytes": 768}]
    assert _rows(model) == EXPECTED
    assert model["outputs"] == ["fc"]
    assert sum(r[3] for r in EXPECTED) == 110080 == totals(model)["flops"]


def test_fx_fallback_gives_the_same_layers() -> None:
    module, args = branchy()
    tr = trace_module(module, args, method="fx", name="branchy")
    assert tr.method == "fx"
    assert _rows(tr.model) == EXPECTED


def test_op_level_splits_into_aten_operators_with_same_totals() -> None:
    module, args = branchy()
    model = from_module(module, args, level="op", name="branchy")
    ids = [lay["id"] for lay in model["layers"]]
    assert ids == ["conv.conv2d", "bn.batch_norm", "relu.relu", "conv2.conv2d", "relu.relu@1", "add", "cat",
                   "pool.max_pool2d", "fc.linear"]
    assert [lay["flops"] for lay in model["layers"]] == [r[3] for r in EXPECTED]


def test_attrs_carry_conv_and_pool_geometry_and_flop_source() -> None:
    module, args = branchy()
    layers = {lay["id"]: lay for lay in from_module(module, args)["layers"]}
    conv = layers["conv"]["attrs"]
    assert (conv["kernel"], conv["stride"], conv["padding"], conv["dilation"], conv["groups"]) == (
        [3, 3], [1, 1], [1, 1], [1, 1], 1)
    assert conv["shape_in"] == [1, 3, 8, 8] and conv["shape_out"] == [1, 8, 8, 8]
    assert conv["module"] == "conv" and conv["module_type"] == "Conv2d" and conv["param_count"] == 224
    assert conv["flops_by"] == "torch"  # torch.utils.flop_counter covers convolutions
    assert layers["relu"]["attrs"]["flops_by"] == "analytic"
    assert layers["cat"]["attrs"]["flops_by"] == "none"
    pool = layers["pool"]["attrs"]
    assert (pool["kernel"], pool["stride"], pool["padding"]) == ([2, 2], [2, 2], [0, 0])


def test_tied_weights_are_resident_with_every_user_and_counted_once_in_totals() -> None:
    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(100, 16)
            self.head = torch.nn.Linear(16, 100, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.emb(ids))

    model = from_module(Tied(), torch.zeros(1, 4, dtype=torch.long))
    emb, head = model["layers"]
    # 100x16 float32 = 6400 B in both layers; the head records it as shared.
    assert (emb["param_bytes"], head["param_bytes"]) == (6400, 6400)
    assert head["attrs"]["shared_param_bytes"] == 6400
    assert model["inputs"] == [{"id": "ids", "bytes": 32}]  # 4 int64 token ids
    assert head["flops"] == 2 * 4 * 16 * 100
    assert totals(model)["params"] == 1600 and totals(model)["param_bytes"] == 6400


def test_alexnet_matches_the_example_model_file() -> None:
    example = yaml.safe_load((ROOT / "instances/examples/models/alexnet.yaml").read_text())
    ours = model_dict("alexnet")
    assert len(ours["layers"]) == len(example["layers"]) == 18
    for mine, ref in zip(ours["layers"], example["layers"], strict=True):
        assert mine["op"].replace("_", "") == ref["op"].replace("_", "")
        assert mine["flops"] == pytest.approx(ref["flops"], rel=1e-5)  # the example rounds to 6 digits
        assert (mine["param_bytes"], mine["output_bytes"]) == (ref["param_bytes"], ref["output_bytes"])


@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_imported_cnn_matches_published_totals(name: str) -> None:
    ref = MODELS[name].reference
    t = totals(model_dict(name))
    assert t["mac_conv_linear"] / 1e9 == pytest.approx(ref.gmac, rel=ref.rel_tol)
    assert t["params"] / 1e6 == pytest.approx(ref.params, rel=ref.rel_tol)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["nin", "tiny_yolov2", "resnet18", "resnet50", "mobilenet_v2", "googlenet", "bert_base", "gpt2", "vit_b16"]
)
def test_imported_large_model_matches_published_totals(name: str) -> None:
    ref = MODELS[name].reference
    t = totals(model_dict(name))
    assert t["mac_conv_linear"] / 1e9 == pytest.approx(ref.gmac, rel=ref.rel_tol)
    assert t["params"] / 1e6 == pytest.approx(ref.params, rel=ref.rel_tol)


def _zoo_model(name: str) -> dict:  # type: ignore[type-arg]
    # Zoo model files are this importer's output (tests/test_zoo.py checks they regenerate unchanged).
    return yaml.safe_load((ROOT / "instances/zoo/models" / f"{name}.yaml").read_text())  # type: ignore[no-any-return]


def test_resnet_residuals_and_inception_concats_are_dag_edges() -> None:
    res = {lay["id"]: lay for lay in _zoo_model("resnet18")["layers"]}
    # layer1.0: out = relu(bn2(conv2(...)) + x), x being the stem's max pool output.
    assert res["layer1.0.add"]["inputs"] == ["layer1.0.bn2", "maxpool"]
    assert res["layer2.0.add"]["inputs"] == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert res["conv1"]["attrs"]["kernel"] == [7, 7] and res["conv1"]["attrs"]["stride"] == [2, 2]
    assert res["maxpool"]["attrs"]["padding"] == [1, 1]
    goog = {lay["id"]: lay for lay in _zoo_model("googlenet")["layers"]}
    assert goog["inception3a.cat"]["inputs"] == [
        "inception3a.branch1.relu", "inception3a.branch2.1.relu", "inception3a.branch3.1.relu",
        "inception3a.branch4.1.relu"]
    # 28x28 outputs of 64 + 128 + 32 + 32 = 256 channels, float32
    assert goog["inception3a.cat"]["output_bytes"] == 256 * 28 * 28 * 4


def test_bad_level_is_rejected() -> None:
    module, args = branchy()
    with pytest.raises(ValueError, match="level must be 'module' or 'op'"):
        from_module(module, args, level="block")  # type: ignore[arg-type]


# -- CLI ----------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_import_torch_writes_a_model_the_loader_accepts(tmp_path: Path) -> None:
    out = tmp_path / "branchy.yaml"
    res = runner.invoke(app, ["import", "torch", "toolchain.models.toy:branchy", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = {
        "dnnpart": 1, "name": "t", "model": {"file": "branchy.yaml"},
        "system": {"devices": [{"id": "a", "compute": "1 GFLOP/s"}], "source": "a"},
    }
    inst = load_instance_data(data, base_dir=tmp_path)
    assert inst.graph.layer_ids == tuple(r[0] for r in EXPECTED)
    assert inst.graph.flops.sum() == 110080


def test_cli_import_torch_with_input_shape(tmp_path: Path) -> None:
    out = tmp_path / "relu.yaml"
    res = runner.invoke(app, ["import", "torch", "torch.nn:ReLU", "--input-shape", "2,5", "-o", str(out)])
    assert res.exit_code == 0, res.output
    layer = yaml.safe_load(out.read_text())["layers"][0]
    assert (layer["flops"], layer["output_bytes"]) == (10, 40)  # 10 elements, float32


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch.module:build"], "cannot load 'build' from module 'nosuch.module'"),
        (["not-a-zoo-model"], "expected MODULE:FACTORY"),
        (["torch.nn:ReLU", "--input-shape", "1,x"], "--input-shape '1,x'"),
        (["torch.nn:ReLU"], "give the example input shape with --input-shape"),
        (["toolchain.models.toy:branchy", "--level", "block"], "--level 'block'"),
    ],
)
def test_cli_import_torch_bad_input_exits_2(argv: list[str], message: str) -> None:
    res = runner.invoke(app, ["import", "torch", *argv])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
