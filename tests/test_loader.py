"""Loading instance files: examples, references, security, round trips, YAML/JSON safety, schema."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from formulation.errors import InstanceError, InstanceErrors
from formulation.loader import instance_to_data, load_instance, load_instance_data
from formulation.model import Instance
from formulation.schema import SCHEMA_FILE, format_path, json_schema
from formulation.yamlio import MAX_ALIASES, load_json_text, load_yaml_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "instances" / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
GiB = 1024**3
MiB = 2**20


def tiny() -> dict[str, Any]:
    """A small valid instance as data (two layers, two devices, one bidirectional link)."""
    return {
        "dnnpart": 1,
        "name": "tiny",
        "model": {
            "name": "m",
            "inputs": [{"id": "x", "bytes": "1 kB"}],
            "layers": [
                {"id": "a", "op": "conv2d", "inputs": ["x"], "flops": "1 GFLOP", "output_bytes": "2 kB"},
                {"id": "b", "op": "linear", "inputs": ["a"], "flops": 0, "output_bytes": 10},
            ],
        },
        "system": {
            "devices": [
                {"id": "p", "compute": "1 GFLOP/s", "trusted": True},
                {"id": "c", "compute": "1 TFLOP/s", "tier": "cloud"},
            ],
            "links": [{"from": "p", "to": "c", "bandwidth": "8 Mbit/s"}],
            "source": "p",
        },
    }


# --------------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------------


def test_examples_are_found() -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {
        "alexnet-lte-latency.yaml",
        "alexnet-lte-phone-energy.yaml",
        "tiny-dag-three-tier.yaml",
        "tiny-dag-three-tier-throughput.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    inst = load_instance(path)
    assert isinstance(inst, Instance)
    assert inst.name == path.stem
    assert inst.source_path == str(path)
    assert np.isfinite(inst.time).all()


def test_alexnet_lte_latency_numbers() -> None:
    inst = load_instance(EXAMPLES / "alexnet-lte-latency.yaml")
    g, s, p = inst.graph, inst.system, inst.problem
    assert g.name == "alexnet" and g.n == 18 and g.input_ids == ("image",)
    assert g.layer_ids[0] == "conv1" and g.layer_ids[-1] == "fc8"
    assert [g.layer_ids[i] for i in g.outputs] == ["fc8"]
    assert g.is_chain
    conv1 = g.layers[0]
    assert (conv1.flops, conv1.param_bytes, conv1.output_bytes) == (1.40554e8, 93184.0, 774400.0)
    assert g.layers[1].param_bytes == 0.0 and g.layers[1].workspace_bytes == 0.0
    phone, cloud = s.devices
    assert phone.compute_flops_per_s == 6e9
    assert phone.memory_bandwidth_bytes_per_s == 3e9
    assert phone.memory_bytes == 2 * GiB
    assert (phone.power_active_w, phone.power_idle_w, phone.trusted, phone.tier) == (5.0, 0.5, True, "end")
    assert cloud.compute_flops_per_s == 3e12 and cloud.memory_bytes == 64 * GiB
    assert cloud.price_usd_per_s == pytest.approx(3.06 / 3600, rel=1e-15)
    assert cloud.trusted is False and cloud.power_idle_w == 0.0
    assert set(s.links) == {("phone", "cloud"), ("cloud", "phone")}
    for lk in s.links.values():
        assert lk.bandwidth_bytes_per_s == 731250.0
        assert lk.latency_s == 0.04
        assert (lk.tx_power_w, lk.rx_power_w) == (3.85, 1.5)
        assert lk.price_usd_per_byte == pytest.approx(0.09e-9, rel=1e-15)
    assert (s.source, s.sink) == ("phone", "phone")
    assert p.objective.kind == "latency" and p.execution == "sequential"
    assert p.constraints.memory is True and p.energy_scope is None
    # roofline: conv1 on the phone is compute bound, fc6 memory bound
    assert inst.time[0, 0] == pytest.approx(1.40554e8 / 6e9)
    fc6 = g.layer_index["fc6"]
    moved = 151011328 + 16384 + 36864
    assert inst.time[fc6, 0] == pytest.approx(moved / 3e9)


def test_alexnet_phone_energy_problem() -> None:
    inst = load_instance(EXAMPLES / "alexnet-lte-phone-energy.yaml")
    p = inst.problem
    assert p.objective.kind == "energy"
    assert p.energy_scope == ("phone",)
    assert p.constraints.deadline_s == 1.5
    assert p.constraints.private == ("image",)
    assert inst.scope_mask.tolist() == [True, False]


def test_tiny_dag_three_tier_numbers() -> None:
    inst = load_instance(EXAMPLES / "tiny-dag-three-tier.yaml")
    g, s = inst.graph, inst.system
    assert g.inputs[0].bytes == 600_000.0
    assert g.layer_ids == ("stem", "left", "right", "merge", "head")
    merge = g.layers[g.layer_index["merge"]]
    assert merge.inputs == ("left", "right") and merge.flops == 1e6 and merge.param_bytes == 0.0
    assert g.layers[g.layer_index["head"]].param_bytes == 120e6
    assert g.layers[g.layer_index["stem"]].flops == pytest.approx(0.4e9)
    camera, edge, cloud = s.devices
    assert (
        camera.memory_bytes == 256 * MiB and edge.memory_bytes == 4 * GiB and cloud.memory_bytes == 80 * GiB
    )
    assert camera.compute_flops_per_s == 10e9 and cloud.price_usd_per_s == pytest.approx(4 / 3600)
    # three bidirectional links, each direction its own channel
    assert len(s.links) == 6
    for a, b in [("camera", "edge"), ("edge", "cloud"), ("camera", "cloud")]:
        assert (a, b) in s.links and (b, a) in s.links
        fwd, back = s.links[(a, b)], s.links[(b, a)]
        assert (fwd.src, fwd.dst, back.src, back.dst) == (a, b, b, a)
        assert fwd.bandwidth_bytes_per_s == back.bandwidth_bytes_per_s
    assert s.links[("camera", "edge")].bandwidth_bytes_per_s == 12.5e6
    assert s.links[("edge", "camera")].latency_s == 0.002
    assert s.links[("cloud", "edge")].price_usd_per_byte == pytest.approx(5e-11)
    assert s.links[("camera", "cloud")].bandwidth_bytes_per_s == 1e6
    assert s.links[("edge", "camera")].tx_power_w == 0.8
    assert inst.problem.execution == "parallel" and inst.problem.constraints.private == ("frame",)


def test_path_key_reference() -> None:
    base = load_instance(EXAMPLES / "tiny-dag-three-tier.yaml")
    thr = load_instance(EXAMPLES / "tiny-dag-three-tier-throughput.yaml")
    assert thr.problem.objective.kind == "throughput"
    assert thr.problem.execution == "sequential"  # the default, not the referenced file's problem
    assert thr.graph.layers == base.graph.layers
    assert thr.system.devices == base.system.devices
    assert dict(thr.system.links) == dict(base.system.links)
    np.testing.assert_array_equal(thr.time, base.time)


# --------------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------------


def _same(a: Instance, b: Instance) -> None:
    assert a.name == b.name and a.description == b.description
    assert a.graph.name == b.graph.name
    assert a.graph.inputs == b.graph.inputs
    assert a.graph.layers == b.graph.layers
    assert a.graph.outputs == b.graph.outputs
    assert a.system.devices == b.system.devices
    assert dict(a.system.links) == dict(b.system.links)
    assert (a.system.source, a.system.sink) == (b.system.source, b.system.sink)
    assert a.problem == b.problem
    assert {k: dict(v) for k, v in a.latency_table.items()} == {
        k: dict(v) for k, v in b.latency_table.items()
    }
    np.testing.assert_array_equal(a.time, b.time)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_round_trip(path: Path, tmp_path: Path) -> None:
    inst = load_instance(path)
    data = instance_to_data(inst)
    json.dumps(data)  # plain data only
    again = load_instance_data(data)
    _same(inst, again)
    assert instance_to_data(again) == data
    out = tmp_path / "x.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    _same(inst, load_instance(out))


def test_round_trip_of_everything() -> None:
    d = tiny()
    d["model"]["layers"][0]["attrs"] = {"shape": [1, 3, 224, 224], "module": "features.0"}
    d["model"]["layers"][1]["workspace_bytes"] = "1 MB"
    d["model"]["outputs"] = ["b"]
    d["system"]["devices"][0].update(memory="1 GiB", memory_bandwidth="10 GB/s", power_idle="0.1 W")
    d["system"]["links"] = [
        {"from": "p", "to": "c", "bandwidth": "8 Mbit/s", "bidirectional": False},
        {
            "from": "c",
            "to": "p",
            "bandwidth": "80 Mbit/s",
            "latency": "5 ms",
            "rx_power": "1 W",
            "bidirectional": False,
        },
    ]
    d["system"]["sink"] = "p"
    d["system"]["latency"] = {"c": {"a": "2 ms"}}
    d["problem"] = {
        "objective": {"weighted": {"latency": 1, "energy": "1e-3"}},
        "execution": "parallel",
        "energy_scope": ["p"],
        "constraints": {
            "memory": False,
            "deadline": "1 s",
            "energy_budget": {"p": "2 J"},
            "allowed": {"a": ["p"]},
            "private": ["x"],
            "contiguous": True,
            "max_devices": 1,
        },
    }
    inst = load_instance_data(d)
    again = load_instance_data(instance_to_data(inst))
    _same(inst, again)
    assert again.graph.layers[0].attrs["module"] == "features.0"
    assert again.problem.objective.weights == {"latency": 1.0, "energy": 1e-3}
    assert again.time[0, 1] == 0.002


# --------------------------------------------------------------------------------------------------
# Semantics of load_instance_data
# --------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    inst = load_instance_data(tiny())
    assert inst.problem.objective.kind == "latency"
    assert inst.problem.execution == "sequential"
    assert inst.problem.constraints.memory is True
    assert inst.graph.name == "m"
    dev = inst.system.devices[0]
    assert math.isinf(dev.memory_bytes) and dev.tier == "other" and dev.memory_bandwidth_bytes_per_s is None
    assert inst.system.sink is None
    assert [inst.graph.layer_ids[i] for i in inst.graph.outputs] == ["b"]
    assert inst.source_path is None


def test_model_name_defaults_to_instance_name() -> None:
    d = tiny()
    del d["model"]["name"]
    assert load_instance_data(d).graph.name == "tiny"


def test_explicit_channel_each_way_is_allowed() -> None:
    d = tiny()
    d["system"]["links"] = [
        {"from": "p", "to": "c", "bandwidth": 1e6, "bidirectional": False},
        {"from": "c", "to": "p", "bandwidth": 2e6, "bidirectional": False},
    ]
    s = load_instance_data(d).system
    assert s.links[("p", "c")].bandwidth_bytes_per_s == 1e6
    assert s.links[("c", "p")].bandwidth_bytes_per_s == 2e6


def test_one_way_link() -> None:
    d = tiny()
    d["system"]["links"][0]["bidirectional"] = False
    assert set(load_instance_data(d).system.links) == {("p", "c")}


def test_duplicate_inputs_of_a_layer_are_merged() -> None:
    d = tiny()
    d["model"]["layers"][1]["inputs"] = ["a", "a", "x"]
    assert load_instance_data(d).graph.layers[1].inputs == ("a", "x")


def test_static_infeasibility_is_not_a_load_error() -> None:
    d = tiny()
    d["system"]["devices"][0]["trusted"] = False
    d["problem"] = {"constraints": {"private": ["x"]}}
    inst = load_instance_data(d)
    assert not inst.placement_mask[inst.graph.layer_index["a"]].any()  # a reads x: no trusted device


def test_several_independent_errors_are_reported_together() -> None:
    d = tiny()
    d["model"]["layers"][0]["flops"] = "-1 GFLOP"
    d["system"]["devices"][1]["compute"] = 0
    d["problem"] = {"objective": "speed"}
    with pytest.raises(InstanceErrors) as info:
        load_instance_data(d, file="t.yaml")
    paths = [e.path for e in info.value.errors]
    assert paths == ["model.layers[0].flops", "system.devices[1].compute", "problem.objective"]
    msg = str(info.value)
    assert msg.startswith("3 problems:") and "t.yaml: system.devices[1].compute: got 0" in msg


def test_error_message_format() -> None:
    d = tiny()
    d["system"]["devices"][1]["compute"] = "5 GB/s"
    with pytest.raises(InstanceError) as info:
        load_instance_data(d, file="inst.yaml")
    err = info.value
    assert not isinstance(err, InstanceErrors)
    assert (err.file, err.path, err.value) == ("inst.yaml", "system.devices[1].compute", "5 GB/s")
    assert str(err).startswith("inst.yaml: system.devices[1].compute: got '5 GB/s'; expected a compute rate")
    assert "\n" not in str(err)


def test_version_is_checked_first() -> None:
    d = tiny()
    d["dnnpart"] = 3  # 2 is a version since issue 14 (docs/instance-format.md §9)
    d["model"]["layers"] = []
    with pytest.raises(InstanceError) as info:
        load_instance_data(d)
    assert not isinstance(info.value, InstanceErrors) and info.value.path == "dnnpart"


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_version_must_be_integer_one(version: object) -> None:
    d = tiny()
    d["dnnpart"] = version
    with pytest.raises(InstanceError, match="format version 1"):
        load_instance_data(d)


def test_weighted_objective() -> None:
    d = tiny()
    d["problem"] = {"objective": {"weighted": {"latency": 1.0, "throughput": 0, "cost": "2"}}}
    obj = load_instance_data(d).problem.objective
    assert obj.kind == "weighted" and obj.terms() == {"latency": 1.0, "throughput": 0.0, "cost": 2.0}


def test_quoted_path_for_dotted_ids() -> None:
    d = tiny()
    d["problem"] = {"constraints": {"allowed": {"features.0": ["p"]}}}
    with pytest.raises(InstanceError) as info:
        load_instance_data(d)
    assert info.value.path == 'problem.constraints.allowed["features.0"]'
    assert format_path(["a", 0, "b c", "d"], "x") == 'x.a[0]["b c"].d'


# --------------------------------------------------------------------------------------------------
# file: references and the directory fence
# --------------------------------------------------------------------------------------------------


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data))
    return path


def test_references_relative_to_the_naming_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tiny()
    _write(tmp_path / "zoo" / "models" / "m.json", d["model"])
    _write(tmp_path / "zoo" / "bundle.yaml", {"sys": d["system"]})
    # An instance whose model is taken, by PATH#KEY, from another instance that references a file.
    _write(tmp_path / "zoo" / "other.yaml", {**d, "model": {"file": "models/m.json"}})
    inst_file = _write(
        tmp_path / "zoo" / "inst.yaml",
        {**d, "model": {"file": "other.yaml#model"}, "system": {"file": "bundle.yaml#sys"}},
    )
    _same(load_instance(inst_file), load_instance_data(d))


def test_load_instance_data_with_base_dir(tmp_path: Path) -> None:
    d = tiny()
    _write(tmp_path / "m.yaml", d["model"])
    inst = load_instance_data({**d, "model": {"file": "m.yaml"}}, base_dir=tmp_path)
    assert inst.graph.n == 2


def test_reference_errors_name_the_referenced_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tiny()
    bad_model = copy.deepcopy(d["model"])
    bad_model["layers"][1]["inputs"] = ["zz"]
    _write(tmp_path / "models" / "m.yaml", bad_model)
    inst_file = _write(tmp_path / "inst.yaml", {**d, "model": {"file": "models/m.yaml"}})
    with pytest.raises(InstanceError) as info:
        load_instance(inst_file)
    assert info.value.file.endswith("models/m.yaml")
    assert info.value.path == "layers[1].inputs[0]" and info.value.value == "zz"


def test_reference_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = tiny()
    inst_file = _write(tmp_path / "inst.yaml", {**d, "model": {"file": "inst.yaml#model"}})
    with pytest.raises(InstanceError, match="do not lead back to themselves"):
        load_instance(inst_file)


def test_reference_outside_is_refused_unless_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tiny()
    _write(tmp_path / "outside" / "m.yaml", d["model"])
    inst_file = _write(tmp_path / "inst" / "i.yaml", {**d, "model": {"file": "../outside/m.yaml"}})
    monkeypatch.chdir(tmp_path / "inst")
    with pytest.raises(InstanceError) as info:
        load_instance(inst_file)
    assert info.value.path == "model.file" and "--allow-outside" in str(info.value)
    assert load_instance(inst_file, allow_outside=True).graph.n == 2
    # The working directory counts as inside too.
    monkeypatch.chdir(tmp_path)
    assert load_instance(inst_file).graph.n == 2


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tiny()
    target = _write(tmp_path / "secret" / "m.yaml", d["model"])
    (tmp_path / "inst").mkdir()
    try:
        (tmp_path / "inst" / "m.yaml").symlink_to(target)
    except OSError:
        pytest.skip("no symlinks here")
    inst_file = _write(tmp_path / "inst" / "i.yaml", {**d, "model": {"file": "m.yaml"}})
    monkeypatch.chdir(tmp_path / "inst")
    with pytest.raises(InstanceError, match="allow-outside"):
        load_instance(inst_file)
    assert load_instance(inst_file, allow_outside=True).graph.n == 2


def test_json_instance_file(tmp_path: Path) -> None:
    p = _write(tmp_path / "i.json", tiny())
    assert load_instance(p).graph.n == 2


def test_missing_file() -> None:
    with pytest.raises(InstanceError, match="an existing file"):
        load_instance(EXAMPLES / "nope.yaml")


# --------------------------------------------------------------------------------------------------
# YAML and JSON safety
# --------------------------------------------------------------------------------------------------


def test_yaml_duplicate_key_names_key_path_and_lines() -> None:
    text = "a:\n  b: 1\n  c: 2\n  b: 3\n"
    with pytest.raises(InstanceError) as info:
        load_yaml_text(text, "f.yaml")
    assert info.value.path == "a.b" and info.value.value == "b"
    assert "line 2" in str(info.value) and "line 4" in str(info.value)


def test_yaml_merge_keys_may_be_overridden() -> None:
    assert load_yaml_text("d: &d {k: 1, j: 2}\ne: {<<: *d, k: 3}\n")["e"] == {"k": 3, "j": 2}


def test_yaml_few_aliases_are_fine() -> None:
    text = "t: &t {compute: 1 GFLOP/s}\nu: [" + ", ".join(["*t"] * MAX_ALIASES) + "]\n"
    assert len(load_yaml_text(text)["u"]) == MAX_ALIASES


def test_yaml_too_many_aliases() -> None:
    text = "t: &t 1\nu: [" + ", ".join(["*t"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(InstanceError, match="at most 100 YAML aliases"):
        load_yaml_text(text)


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(InstanceError) as info:
        load_yaml_text("a: 1\nb: [1, 2\n", "f.yaml")
    assert info.value.path.startswith("line ") and ", column " in info.value.path


def test_yaml_unsafe_tag_is_refused() -> None:
    with pytest.raises(InstanceError, match="valid YAML"):
        load_yaml_text("a: !!python/object/apply:os.system [echo hi]\n")


def test_json_duplicate_key_is_located() -> None:
    with pytest.raises(InstanceError) as info:
        load_json_text('{"a": {"b": 1,\n "b": 2}}', "f.json")
    assert info.value.path == "a.b" and "line 2" in str(info.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_literals(literal: str) -> None:
    with pytest.raises(InstanceError, match="JSON has no NaN or Infinity"):
        load_json_text('{"a": [1, ' + literal + "]}")


# --------------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------------


def test_committed_schema_is_current() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), "run: python -m formulation.schema"


def test_schema_accepts_examples() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    for path in EXAMPLE_FILES:
        validator.validate(yaml.safe_load(path.read_text()))
    for path in EXAMPLE_FILES:
        validator.validate(instance_to_data(load_instance(path)))
    bad = tiny()
    bad["system"]["devices"][0]["computee"] = 1
    assert not validator.is_valid(bad)


def test_cycle_names_its_layers_in_data_flow_order() -> None:
    d = tiny()
    d["model"]["layers"] += [
        {"id": "c", "op": "add", "inputs": ["b", "e"], "flops": 1, "output_bytes": 1},
        {"id": "d", "op": "relu", "inputs": ["c"], "flops": 1, "output_bytes": 1},
        {"id": "e", "op": "relu", "inputs": ["d"], "flops": 1, "output_bytes": 1},
    ]
    with pytest.raises(InstanceError) as info:
        load_instance_data(d)
    assert info.value.path == "model.layers[2].inputs"
    assert info.value.value == ["c", "d", "e", "c"]
    assert "c -> d -> e -> c" in str(info.value)
