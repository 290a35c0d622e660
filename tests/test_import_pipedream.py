"""PipeDream profile importer: all 14 published profiles load and validate; hand-checked AlexNet and GNMT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from formulation.evaluator import evaluate
from formulation.loader import load_instance_data
from formulation.model import Instance
from toolchain.cli import app
from toolchain.importers.pipedream import ProfileError, from_pipedream, parse_profile

#: The published profiles, unchanged, inside the repository (see instances/third_party/README.md).
DATA = Path(__file__).resolve().parents[1] / "instances" / "third_party" / "pipedream-profiles"

#: file -> (layers, model inputs, outputs, batch size). Layers = nodes - inputs; the batch is the
#: classifier head's output elements / its width (None for GNMT, whose head is a wrapper).
FILES = {
    "alexnet": (22, 1, 1, 256),
    "densenet121": (428, 1, 1, 64),
    "gnmt": (45, 3, 1, None),
    "gnmt_large": (93, 3, 1, None),
    "inception_v3": (325, 1, 2, 128),  # the auxiliary head is a second output
    "nasnetalarge": (1250, 1, 2, 16),
    "nasnetamobile": (920, 1, 2, 128),
    "resnet101": (346, 1, 1, 64),
    "resnet18": (70, 1, 1, 256),
    "resnet50": (176, 1, 1, 128),
    "resnext101": (346, 1, 1, 64),
    "resnext50": (176, 1, 1, 128),
    "squeezenet1_0": (67, 1, 1, 256),
    "vgg16": (40, 1, 1, 128),
}


def _instance(res: Any) -> Instance:
    """The imported model on one device whose latency table is the profile's forward times."""
    device = next(iter(res.latency))
    data = {
        "dnnpart": 1, "name": res.model["name"], "model": res.model,
        "system": {"devices": [{"id": device, "compute": "1 TFLOP/s"}], "links": [], "source": device,
                   "latency": res.latency},
    }
    return load_instance_data(data, file=res.model["name"])


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_published_profile_loads_and_validates(name: str) -> None:
    res = from_pipedream(DATA / f"{name}.graph.txt")
    inst = _instance(res)
    layers, inputs, outputs, batch = FILES[name]
    assert (inst.n, inst.graph.m, len(inst.graph.outputs), res.batch_size) == (layers, inputs, outputs, batch)
    # On the profiled device alone, sequential latency is the sum of the forward times (the table).
    total = sum(res.latency["profiled"].values())
    ev = evaluate(inst, {v: "profiled" for v in inst.graph.layer_ids})
    assert ev.latency_sequential_s == pytest.approx(total, rel=1e-12)
    assert all(lay["flops"] >= 0 for lay in res.model["layers"])


def test_alexnet_hand_checked() -> None:
    res = from_pipedream(DATA / "alexnet.graph.txt")
    lay = {x["id"]: x for x in res.model["layers"]}
    # The Input node is the model input: 256 images x 3 x 224 x 224 float32 = 154,140,672 bytes.
    assert res.model["inputs"] == [{"id": "node1", "bytes": 256 * 3 * 224 * 224 * 4}]
    assert res.dropped_input_ms == {"node1": 635.902}  # the data loader's time, not a layer
    assert res.batch_size == 256  # node23 Linear(4096 -> 1000): 1,024,000 B / 4 / 1000
    # node2 Conv2d(3, 64, 11x11, stride 4): output 256 x 64 x 55 x 55 floats = 198,246,400 B;
    # FLOP = 2 x 49,561,600 outputs x 3 x 11 x 11 = 35,981,721,600; weights (64*3*121 + 64) x 4 = 93,184 B.
    c1 = lay["node2"]
    assert (c1["op"], c1["inputs"], c1["output_bytes"], c1["param_bytes"]) == ("conv2d", ["node1"], 198246400, 93184)
    assert c1["flops"] == 2 * (256 * 64 * 55 * 55) * 3 * 11 * 11 == 35_981_721_600
    assert res.latency["profiled"]["node2"] == pytest.approx(22.316e-3)
    assert c1["attrs"]["backward_time_s"] == pytest.approx(6.405e-3)
    # node4 MaxPool2d(3): 47,775,744 B = 11,943,936 outputs x 9 comparisons = 107,495,424 FLOP.
    assert lay["node4"]["flops"] == 9 * 47775744 // 4 == 107_495_424
    # node18 Linear(9216 -> 4096): 2 x (256 x 4096) x 9216 = 19,327,352,832 FLOP; weights 151,011,328 B.
    assert (lay["node18"]["flops"], lay["node18"]["param_bytes"]) == (2 * 256 * 4096 * 9216, 151011328)
    assert lay["node3"]["flops"] == 198246400 // 4  # ReLU: 1 per element
    assert lay["node17"]["op"] == "dropout" and lay["node17"]["flops"] == 0
    # node14 feeds both Size(0) (node15) and View (node16); Size is a dead end, not an output.
    assert sorted(lay["node16"]["inputs"]) == ["node14", "node15"]
    assert res.model["outputs"] == ["node23"]
    # The forward pass: 22.316 + 0.813 + ... + 0.453 ms = 44.801 ms per mini-batch.
    assert sum(res.latency["profiled"].values()) == pytest.approx(44.801e-3, abs=1e-9)
    # Per sample: the input is one 3 x 224 x 224 image; conv1 is the zoo's 140,553,600 FLOP.
    one = from_pipedream(DATA / "alexnet.graph.txt", per_sample=True, device="gpu")
    lay1 = {x["id"]: x for x in one.model["layers"]}
    assert one.model["inputs"][0]["bytes"] == 3 * 224 * 224 * 4
    assert lay1["node2"]["flops"] == 140_553_600
    assert lay1["node2"]["param_bytes"] == 93184  # weights are not per sample
    assert one.latency["gpu"]["node2"] == pytest.approx(22.316e-3 / 256)


def test_gnmt_tuples_wrappers_and_unknown_ops() -> None:
    res = from_pipedream(DATA / "gnmt.graph.txt")
    lay = {x["id"]: x for x in res.model["layers"]}
    # Three Input nodes of 0 bytes; "hidden" (node20) is a layer with no inputs, not a model input.
    assert [t["id"] for t in res.model["inputs"]] == ["node1", "node2", "node3"]
    assert lay["node20"]["inputs"] == [] and lay["node20"]["flops"] == 0
    # LSTM(2048, 1024) returns (output, h, c): 6,291,456 + 131,072 + 131,072 bytes.
    lstm = lay["node7"]
    assert lstm["output_bytes"] == 6291456 + 2 * 131072
    assert lstm["attrs"]["activation_bytes"] == [6291456, 131072, 131072]
    # steps x batch = 6,291,456 / 4 / 1024 = 1536; per step 8 x 1024 x (2048 + 1024) + 9 x 1024 FLOP.
    assert lstm["flops"] == 1536 * (8 * 1024 * (2048 + 1024) + 9 * 1024)
    # Classifier wraps one Linear(1024 -> 32320): 2 x (194,437,120 / 4) x 1024 FLOP.
    assert (lay["node48"]["op"], lay["node48"]["flops"]) == ("linear", 2 * (194437120 // 4) * 1024)
    # Composite modules with several inner modules count 1 FLOP per output element and are reported.
    assert res.unknown_ops == {"EmuBidirLSTM", "RecurrentAttention"}
    assert lay["node5"]["attrs"]["flops_by"] == "unknown" and lay["node5"]["flops"] == 12582912 // 4
    # Unused LSTM states (__getitem__(1) dead ends) are not outputs: only the classifier is.
    assert res.model["outputs"] == ["node48"]
    assert res.batch_size is None and "not inferable" in res.batch_evidence
    with pytest.raises(ProfileError, match="needs the batch size"):
        from_pipedream(DATA / "gnmt.graph.txt", per_sample=True)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("node1 -- Input -- forward_compute_time=x, backward_compute_time=0, activation_size=1, parameter_size=0",
         r"bad.txt:1: forward_compute_time='x': expected a number"),
        ("node1 -- Input", "expected 'ID -- DESCRIPTION"),
        ("node1 -- Input -- forward_compute_time=-1, backward_compute_time=0, activation_size=1, parameter_size=0",
         "finite number >= 0"),
        ("a -- ReLU -- forward_compute_time=1, backward_compute_time=0, activation_size=4, parameter_size=0\n"
         "a -- ReLU -- forward_compute_time=1, backward_compute_time=0, activation_size=4, parameter_size=0",
         "defined twice"),
        ("a -- ReLU -- forward_compute_time=1, backward_compute_time=0, activation_size=4, parameter_size=0\n"
         "\ta -- b", "node 'b' is not defined"),
        ("", "no nodes"),
    ],
)
def test_malformed_profiles_name_file_and_line(text: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match) as info:
        parse_profile(text, "bad.txt")
    assert str(info.value).startswith("bad.txt")


def test_cli_writes_model_and_latency_table(tmp_path: Path) -> None:
    runner = CliRunner()
    model, lat = tmp_path / "alexnet.yaml", tmp_path / "latency.yaml"
    r = runner.invoke(app, ["import", "pipedream", str(DATA / "alexnet.graph.txt"), "--device", "gpu",
                            "-o", str(model), "--latency-out", str(lat)])
    assert r.exit_code == 0, r.output
    text = model.read_text()
    assert "batch size: 256" in text.splitlines()[1]
    table = yaml.safe_load(lat.read_text())["latency"]
    data = {"dnnpart": 1, "name": "a", "model": yaml.safe_load(text),
            "system": {"devices": [{"id": "gpu", "compute": "1 TFLOP/s"}], "links": [], "source": "gpu",
                       "latency": table}}
    inst = load_instance_data(data)
    assert inst.time[inst.graph.layer_index["node2"], 0] == pytest.approx(0.022316)

    bad = tmp_path / "bad.txt"
    bad.write_text("not a profile\n")
    for args in (["import", "pipedream", str(bad)], ["import", "pipedream", str(tmp_path / "missing.txt")],
                 ["import", "pipedream", str(DATA / "gnmt.graph.txt"), "--per-sample"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output
