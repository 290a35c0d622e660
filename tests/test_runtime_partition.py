"""export-partition: the per-device parts reproduce the monolithic outputs; mismatched ids are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from formulation.errors import InstanceError
from formulation.loader import load_instance_data
from toolchain.cli import app
from toolchain.importers.pytorch import from_module
from toolchain.models.toy import Branchy
from toolchain.runtime import partition as pt


class Block(nn.Module):
    """A pre-norm transformer encoder block: attention and MLP, each with a residual."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def small_cnn() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Factory for the command line: Branchy on 8x8 images."""
    return Branchy(8, 8), (torch.randn(1, 3, 8, 8),)


def small_block() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """Factory for the command line: one transformer block on 6 tokens."""
    return Block(), (torch.randn(1, 6, 16),)


_TRACED: dict[str, tuple[nn.Module, tuple[Any, ...], pt.Traced]] = {}


def traced(factory: Any) -> tuple[nn.Module, tuple[Any, ...], pt.Traced]:
    """The factory's module, inputs and trace, traced once per test session (tracing takes seconds)."""
    if factory.__name__ not in _TRACED:
        torch.manual_seed(0)
        module, args = factory()
        _TRACED[factory.__name__] = (module, args, pt.trace_for_cut(module, args, {}))
    return _TRACED[factory.__name__]


def instance_for(module: nn.Module, args: tuple[Any, ...], devices: int = 3, model: Any = None) -> Any:
    model = model if model is not None else from_module(module, args)
    ids = [chr(ord("a") + i) for i in range(devices)]
    links = [{"from": a, "to": b, "bandwidth": "100 Mbit/s", "latency": "1 ms"}
             for i, a in enumerate(ids) for b in ids[i + 1:]]
    return load_instance_data({
        "dnnpart": 1, "name": "t", "model": model,
        "system": {"devices": [{"id": d, "compute": "1 GFLOP/s"} for d in ids], "links": links,
                   "source": "a", "sink": "a"},
        "problem": {"objective": "latency", "execution": "parallel"},
    })


def round_robin(inst: Any, devices: list[str]) -> dict[str, str]:
    """Every layer on the next device in turn: values go back and forth between all devices."""
    return {lay: devices[i % len(devices)] for i, lay in enumerate(inst.graph.layer_ids)}


@pytest.mark.parametrize("factory", [small_cnn, small_block], ids=["cnn", "transformer"])
@pytest.mark.parametrize("devices", [["a"], ["a", "b"], ["a", "b", "c"]], ids=["local", "two", "three"])
def test_parts_reproduce_outputs(factory: Any, devices: list[str], tmp_path: Path) -> None:
    module, args, tr = traced(factory)
    inst = instance_for(module, args, model=tr.trace.model)
    pl = round_robin(inst, devices)
    part = pt.cut(inst, pl, module, args, {}, traced=tr)
    assert pt.max_abs_diff(pt.run_in_process(part.plan, part.parts, part.inputs), part.reference) <= 1e-5
    # The cut matches the instance: every transfer of the evaluator is a message of the plan.
    from formulation.evaluator import evaluate

    ev = evaluate(inst, pl)
    planned = {(lay, dst) for lay, by in part.plan.sends.items() for dst in by}
    planned |= {(u, dst) for dst, us in part.plan.input_sends.items() for u in us}
    assert planned == {(t.tensor, t.dst) for t in ev.transfers}
    # Saved and rebuilt from the files, the parts give the same outputs.
    pt.save(part, tmp_path)
    plan = pt.load_plan(tmp_path)
    parts = {d: pt.load_part(tmp_path, plan, d) for d in plan.devices}
    inputs, reference = pt.load_inputs(tmp_path)
    assert pt.max_abs_diff(pt.run_in_process(plan, parts, inputs), reference) <= 1e-5
    assert sorted(s.layer for segs in parts.values() for s in segs) == sorted(inst.graph.layer_ids)


def test_segments_follow_the_evaluator_schedule() -> None:
    module, args, tr = traced(small_cnn)
    inst = instance_for(module, args, model=tr.trace.model)
    pl = round_robin(inst, ["a", "b"])
    part = pt.cut(inst, pl, module, args, {}, traced=tr)
    from formulation.evaluator import evaluate

    sched = evaluate(inst, pl).schedule
    for d, segs in part.parts.items():
        starts = [sched[s.layer] for s in segs]
        assert starts == sorted(starts)
        assert [s.layer for s in segs] == part.plan.order[d]


def test_mismatched_ids_are_refused() -> None:
    cnn, cnn_args, tr = traced(small_cnn)
    block, block_args, block_tr = traced(small_block)
    inst = instance_for(block, block_args, model=block_tr.trace.model)
    with pytest.raises(InstanceError, match="layer ids of the graph"):
        pt.cut(inst, {lay: "a" for lay in inst.graph.layer_ids}, cnn, cnn_args, {}, traced=tr)


def test_cli_export_partition_and_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    module, args = small_cnn()
    model = from_module(module, args)
    system = {"devices": [{"id": "a", "compute": "1 GFLOP/s"}, {"id": "b", "compute": "1 GFLOP/s"}],
              "links": [{"from": "a", "to": "b", "bandwidth": "100 Mbit/s"}], "source": "a", "sink": "a"}
    inst_file = tmp_path / "cnn.yaml"
    inst_file.write_text(yaml.safe_dump({"dnnpart": 1, "name": "cnn", "model": model, "system": system,
                                         "problem": {"objective": "latency"}}))
    layers = [lay["id"] for lay in model["layers"]]
    placement = tmp_path / "p.json"
    placement.write_text(json.dumps({"placement": {lay: ("b" if i % 2 else "a") for i, lay in enumerate(layers)}}))
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    runner = CliRunner()
    out = tmp_path / "parts"
    res = runner.invoke(app, ["export-partition", str(inst_file), "--model", "tests.test_runtime_partition:small_cnn",
                              "-p", str(placement), "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"a", "b"} and manifest["placement"]["conv"] == "a"
    assert (out / manifest["files"]["b"]).is_file()
    # A model whose graph has other layer ids: exit 2, one paragraph naming the instance file.
    res = runner.invoke(app, ["export-partition", str(inst_file), "--model", "tests.test_runtime_partition:small_block",
                              "-p", str(placement), "--out", str(tmp_path / "other")])
    assert res.exit_code == 2
    assert "cnn.yaml" in res.output and "model.layers" in res.output and "Traceback" not in res.output
