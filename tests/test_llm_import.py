"""transformers-config import of decoder LLMs (toolchain/importers/hf_decoder.py) and ``dnnpart import llm``:
the field mapping, refusals, and a cross-check of the analytic builder against ``torch.export`` of
tiny configurations through the PyTorch importer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from toolchain.cli import app
from toolchain.importers.common import totals
from toolchain.importers.hf_decoder import ConfigError, decoder_config, from_hf_config
from toolchain.models.llm import PRESETS

#: LLaMA-2-70B's config.json fields (as published with the model on the Hugging Face hub).
LLAMA2_70B_JSON: dict[str, Any] = {
    "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
    "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000, "hidden_act": "silu",
    "tie_word_embeddings": False, "rms_norm_eps": 1e-5,
}


def test_a_config_dict_maps_to_the_preset(tmp_path: Path) -> None:
    cfg = decoder_config(LLAMA2_70B_JSON, "llama-2-70b")
    assert cfg == PRESETS["llama-2-70b"]
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_70B_JSON))
    assert decoder_config(tmp_path, "llama-2-70b") == cfg  # a folder holding config.json
    m = from_hf_config(tmp_path / "config.json", "decode", granularity="op")
    assert len(m["layers"]) == 17_363 and totals(m)["params"] == 68_976_648_192


@pytest.mark.parametrize(("patch", "message"), [
    ({"model_type": "bert"}, "'model_type': 'bert' is not supported"),
    ({"hidden_act": "gelu"}, "'hidden_act': 'gelu'; expected 'silu'"),
    ({"attention_bias": True}, "'attention_bias': biases are not modelled"),
    ({"num_hidden_layers": 0}, "'num_hidden_layers': expected a positive integer up to 100,000,000, got 0"),
    ({"hidden_size": "8k"}, "'hidden_size': expected a positive integer up to 100,000,000, got '8k'"),
    ({"vocab_size": 10**12}, "'vocab_size': expected a positive integer up to 100,000,000"),
])
def test_unsupported_configs_are_refused_with_the_field(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decoder_config({**LLAMA2_70B_JSON, **patch})


def test_transformers_config_objects_map_to_the_presets() -> None:
    tr = pytest.importorskip("transformers", reason="the transformers config classes come with the torch extra")
    llama = tr.LlamaConfig(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                           vocab_size=32000)
    assert decoder_config(llama).param_count() == PRESETS["llama-2-13b"].param_count() == 13_015_864_320
    mixtral = tr.MixtralConfig()  # the default MixtralConfig is Mixtral-8x7B
    assert decoder_config(mixtral).param_count() == PRESETS["mixtral-8x7b"].param_count()
    assert decoder_config(mixtral).param_count(active=True) == 12_879_925_248
    gpt3 = tr.GPT2Config(n_embd=12288, n_layer=96, n_head=96, n_positions=2048)
    assert decoder_config(gpt3).param_count() == PRESETS["gpt-3-175b"].param_count()


def _flops_by_op(model: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for lay in model["layers"]:
        out[lay["op"]] = out.get(lay["op"], 0) + lay["flops"]
    return out


@pytest.mark.torch
def test_analytic_builder_agrees_with_torch_export_of_tiny_configs() -> None:
    torch = pytest.importorskip("torch", reason="the cross-check traces modules with torch.export (torch extra)")
    tr = pytest.importorskip("transformers", reason="the tiny models are transformers classes (torch extra)")
    from toolchain.importers.pytorch import from_module

    t, cases = 8, [
        (tr.LlamaConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=100, max_position_embeddings=64,
                        attn_implementation="eager"), tr.LlamaForCausalLM),
        (tr.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32, bos_token_id=0,
                       eos_token_id=0, attn_implementation="eager"), tr.GPT2LMHeadModel),
    ]
    for cfg, cls in cases:
        with torch.device("meta"):
            module = cls(cfg).eval()
            ids = torch.zeros(1, t, dtype=torch.long)
        traced = from_module(module, (ids,), "module", example_kwargs={"use_cache": False, "logits_to_keep": 1})
        ours = from_hf_config(cfg, "prefill", tokens=t, granularity="op")
        dc = decoder_config(cfg)
        # Parameters: exactly (torch counts each tied weight once, as attrs.param_count does).
        assert totals(ours)["params"] == totals(traced)["params"] == sum(p.numel() for p in module.parameters())
        # Matrix products: exactly, once the rotary embedding (3 per Q and K element, which our Q and K
        # nodes carry) and the softmax (3 per score, carried by our score nodes) are taken out.
        rope = 0 if dc.positions else 3 * t * dc.hd * (dc.n_heads + dc.kv_heads) * dc.n_layers
        softmax = 3 * t * t * dc.n_heads * dc.n_layers
        a, b = _flops_by_op(ours), _flops_by_op(traced)
        assert a["linear"] - rope == b["linear"]
        assert a["matmul"] - softmax == b["matmul"]
        # Everything else differs by counting conventions only (the traced graph decomposes RMSNorm,
        # the rotary embedding, SiLU and GELU into elementwise operators, adds the score scaling and the
        # causal mask, and normalises every position before keeping the last): within 5 % here, far
        # less at scale, where matrix products dominate.
        assert totals(ours)["flops"] == pytest.approx(totals(traced)["flops"], rel=0.05)


def test_mixtral_parameters_agree_with_the_module() -> None:
    torch = pytest.importorskip("torch", reason="the module is built on the meta device (torch extra)")
    tr = pytest.importorskip("transformers", reason="MixtralForCausalLM comes with the torch extra")
    cfg = tr.MixtralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=100, num_local_experts=4, num_experts_per_tok=2)
    with torch.device("meta"):
        module = tr.MixtralForCausalLM(cfg)
    # The routing (top-k, data-dependent dispatch) does not trace on fake tensors, so only the
    # parameters are cross-checked; the FLOPs of the active experts are checked by hand in test_llm_zoo.
    assert decoder_config(cfg).param_count() == sum(p.numel() for p in module.parameters()) == 185_664


def test_cli_import_llm(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "m.yaml"
    res = runner.invoke(app, ["import", "llm", "llama-2-70b", "--granularity", "block", "--quant", "int4", "-o",
                              str(out)])
    assert res.exit_code == 0, res.output
    import yaml

    model = yaml.safe_load(out.read_text())
    assert len(model["layers"]) == 82 and model["name"] == "llama-2-70b-decode-int4-block"
    assert model["layers"][1]["attrs"]["weight_format"] == "int4"
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({**LLAMA2_70B_JSON, "model_type": "t5"}))
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**LLAMA2_70B_JSON, "num_hidden_layers": 10**6}))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "folder").mkdir()
    for args, msg in [(["nope"], "neither a preset"), ([str(bad)], "'model_type': 't5' is not supported"),
                      ([str(huge), "--granularity", "op"], "at most 1,000,000 are built"),
                      ([str(deep)], "deep.json"), ([str(tmp_path / "folder")], "config.json: no such file"),
                      ([str(huge), "--context", "-1"], "--context -1"),
                      (["llama-2-7b", "--granularity", "tiles"], "--granularity 'tiles'"),
                      (["llama-2-7b", "--tokens", "0"], "--tokens 0")]:
        res = runner.invoke(app, ["import", "llm", *args])
        assert res.exit_code == 2 and msg in res.output, (args, res.output)
