"""Analytic LLM decoders (toolchain/models/llm.py, llm_ops.py): published totals, hand-computed
FLOPs and bytes, the three granularities, quantised weights and the mixture of experts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolchain.importers.common import totals
from toolchain.models.llm import (
    FP16,
    INT4,
    INT8,
    LLAMA2_70B,
    MIXTRAL_8X7B,
    PRESETS,
    PUBLISHED,
    DecoderConfig,
    decoder_model,
    node_count,
)

ZOO = Path(__file__).resolve().parents[1] / "instances" / "zoo" / "models"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameters_match_the_published_totals(name: str) -> None:
    cfg, pub = PRESETS[name], PUBLISHED[name]
    assert cfg.param_count() == pytest.approx(pub.params, rel=pub.rel_tol), pub.why
    if pub.active is not None:
        assert cfg.param_count(active=True) == pytest.approx(pub.active, rel=pub.rel_tol), pub.why
    # The model dict's layers carry the same total at every granularity.
    for g in ("block", "sublayer"):
        assert totals(decoder_model(cfg, "decode", granularity=g))["params"] == cfg.param_count()


def test_exact_parameter_counts() -> None:
    # LLaMA-2 70B by hand: embeddings and head 2·32000·8192; per block Q and O 8192², K and V
    # 8192·1024 (8 KV heads of 128), MLP 3·8192·28672, two RMSNorms 2·8192; final norm 8192.
    block = 2 * 8192**2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192
    assert LLAMA2_70B.param_count() == 2 * 32000 * 8192 + 80 * block + 8192 == 68_976_648_192
    # Mixtral: 8 experts of 3·4096·14336 and a 4096x8 router per block; 2 experts active.
    attn = 2 * 4096**2 + 2 * 4096 * 1024 + 2 * 4096
    assert MIXTRAL_8X7B.param_count() == 2 * 32000 * 4096 + 32 * (attn + 8 * 3 * 4096 * 14336 + 4096 * 8) + 4096
    active = 2 * 32000 * 4096 + 32 * (attn + 2 * 3 * 4096 * 14336 + 4096 * 8) + 4096
    assert MIXTRAL_8X7B.param_count(active=True) == active


TINY = DecoderConfig("tiny", d_model=8, n_layers=1, n_heads=2, d_ff=16, vocab=10, n_kv_heads=1)


def test_tiny_decode_flops_and_bytes_by_hand() -> None:
    # d=8, h=2 heads of e=4, g=1 KV head, f=16, V=10; one token after 3 cached positions: T=1, S=4.
    m = decoder_model(TINY, "decode", context=3, granularity="block")
    embed, block, head = m["layers"]
    norm = 4 * 8
    q, kv, o = 2 * 8 * 8 + 3 * 8, 2 * (2 * 8 * 4) + 3 * 4, 2 * 8 * 8  # rotary: 3 per Q and K element
    core = 2 * (2 * 4 * 4 + 3 * 4 + 2 * 4 * 4)  # per head: scores 2·S·e, softmax 3·S, weighted sum 2·S·e
    mlp = 2 * (2 * 8 * 16) + 2 * 16 + 2 * 16 * 8
    assert block["flops"] == norm + q + kv + core + o + 8 + norm + mlp + 8
    assert head["flops"] == 4 * 8 + 2 * 8 * 10
    assert embed["flops"] == 0
    cache = 2 * 3 * 4 * 2  # K and V of 3 earlier positions, one head of 4, fp16
    assert block["attrs"]["kv_cache_bytes"] == cache
    weights = 8 * 8 + 2 * 8 * 4 + 8 * 8 + 3 * 8 * 16 + 2 * 8
    assert block["param_bytes"] == 2 * weights + cache
    assert block["output_bytes"] == 8 * 2 and head["output_bytes"] == 10 * 2


def test_decode_flops_are_twice_the_active_parameters_plus_attention() -> None:
    # Per token: 2 FLOP per non-embedding (active) parameter, plus 4·L·S·h·e for Q·Kᵀ and the
    # weighted sum; the remaining terms (norms, rotary, softmax, residuals) stay below 0.1 %. A
    # tied head (GPT-3) computes with the embedding table, which the parameter count holds once.
    for cfg in PRESETS.values():
        s = 1025
        t = totals(decoder_model(cfg, "decode", context=s - 1, granularity="block"))
        matrices = cfg.param_count(active=True) - cfg.embedding_params() + (cfg.d_model * cfg.vocab if cfg.tied else 0)
        closed = 2 * matrices + 4 * cfg.n_layers * s * cfg.n_heads * cfg.hd
        assert t["flops"] == pytest.approx(closed, rel=1e-3), cfg.name


def test_prefill_flops_scale_with_the_prompt() -> None:
    cfg, p = PRESETS["llama-2-7b"], 256
    t = totals(decoder_model(cfg, "prefill", tokens=p, granularity="block"))
    blocks = cfg.param_count() - cfg.embedding_params() - cfg.d_model - cfg.d_model * cfg.vocab
    closed = 2 * p * blocks + 4 * cfg.n_layers * p * p * cfg.d_model + 2 * cfg.d_model * cfg.vocab
    assert t["flops"] == pytest.approx(closed, rel=2e-3)


def test_granularities_agree_and_the_70b_operator_graph_is_large() -> None:
    ms = {g: decoder_model(LLAMA2_70B, "decode", granularity=g) for g in ("block", "sublayer", "op")}
    assert [len(m["layers"]) for m in ms.values()] == [82, 162, 80 * (3 * 64 + 2 * 8 + 3 + 6) + 3]
    assert len(ms["op"]["layers"]) == 17_363 >= 10_000
    ref = totals(ms["block"])
    for m in ms.values():
        t = totals(m)
        assert t["flops"] == pytest.approx(ref["flops"], rel=1e-12)
        assert t["param_bytes"] == ref["param_bytes"] and t["params"] == ref["params"]
    ids = {lay["id"] for lay in ms["op"]["layers"]}
    assert {"blocks.79.attn.scores.63", "blocks.0.attn.k.7", "blocks.3.mlp.down", "final_norm", "head"} <= ids
    scores = next(lay for lay in ms["op"]["layers"] if lay["id"] == "blocks.0.attn.scores.17")
    assert scores["inputs"] == ["blocks.0.attn.q.17", "blocks.0.attn.k.2"]  # heads 16-23 share KV head 2


def test_quantised_weights() -> None:
    assert FP16.matrix_bytes(4, 256) == 4 * 256 * 2
    assert INT8.matrix_bytes(4, 256) == 4 * 256 + 4 * 2  # one fp16 scale per output row
    assert INT4.matrix_bytes(4, 256) == 4 * 256 // 2 + 4 * 2 * 2  # a scale per 128 weights of a row
    fp = totals(decoder_model(LLAMA2_70B, "decode", context=0, granularity="block"))
    q4 = totals(decoder_model(LLAMA2_70B, "decode", context=0, granularity="block", quant=INT4))
    matrices = LLAMA2_70B.param_count() - LLAMA2_70B.embedding_params() - 161 * 8192  # without norms
    assert fp["param_bytes"] - q4["param_bytes"] == pytest.approx(matrices * (2 - 0.5 - 2 / 128), rel=1e-9)
    assert q4["flops"] == fp["flops"]


def test_mixture_counts_only_active_experts_in_flops() -> None:
    ops = decoder_model(MIXTRAL_8X7B, "decode", granularity="op")["layers"]
    expert = next(lay for lay in ops if lay["id"] == "blocks.0.mlp.experts.5.up")
    assert expert["flops"] == pytest.approx(2 * (2 / 8) * 4096 * 14336)  # 2 of 8 experts per token
    assert expert["param_bytes"] == 4096 * 14336 * 2  # every expert resident
    blk = decoder_model(MIXTRAL_8X7B, "decode", granularity="block")["layers"][1]
    dense = decoder_model(DecoderConfig("d", 4096, 1, 32, 14336, n_kv_heads=8), "decode", granularity="block")
    router, combine = 2 * 4096 * 8, 2 * 2 * 4096  # router; weighted sum of the two chosen experts
    two_experts = 2 * (2 * 2 * 4096 * 14336 + 2 * 14336 + 2 * 14336 * 4096)
    one_expert = 2 * 2 * 4096 * 14336 + 2 * 14336 + 2 * 14336 * 4096
    assert blk["flops"] == pytest.approx(dense["layers"][1]["flops"] - one_expert + two_experts + router + combine)


def test_the_7b_sublayer_graph_is_the_zoo_file() -> None:
    for mode in ("prefill", "decode"):
        committed = yaml.safe_load((ZOO / f"llama7b_{mode}.yaml").read_text())
        assert decoder_model(mode=mode)["layers"] == committed["layers"]


def test_bad_granularity_is_refused() -> None:
    with pytest.raises(ValueError, match="granularity must be one of block, sublayer, op"):
        decoder_model(granularity="tiles")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["llama-2-7b", "mixtral-8x7b", "llama-2-70b"])
def test_node_count_formula(name: str) -> None:
    for g in ("block", "sublayer", "op"):
        assert len(decoder_model(PRESETS[name], "decode", granularity=g)["layers"]) == node_count(PRESETS[name], g)


def test_graphs_beyond_the_node_limit_are_refused() -> None:
    huge = DecoderConfig("huge", 64, 10**5, 64, 128)  # 10^5 · (3·64 + 2·64 + 3 + 6) + 3 nodes
    assert node_count(huge, "op") > 1_000_000
    with pytest.raises(ValueError, match="would have 32,900,003 nodes; at most 1,000,000"):
        decoder_model(huge, granularity="op")


#: Device types of EdgeShard (Zhang et al., 2024) and Galaxy (Ye et al., INFOCOM 2024) -> fp16 peak (TFLOP/s).
EDGE_LLM_DEVICES = {"agx-orin": 42.5, "orin-nx": 15.0, "rtx3090": 71.0, "jetson-nano": 0.472, "jetson-tx2": 1.33,
                    "xavier-nx": 6.8}


@pytest.mark.parametrize("name", sorted(EDGE_LLM_DEVICES))
def test_edge_llm_devices_are_catalogued_with_sourced_fp16_peaks(name: str) -> None:
    from formulation.units import parse_quantity
    from toolchain import catalog

    entry = catalog.device(name)
    for field in ("compute", "memory", "memory_bandwidth", "power_active", "peak_fp16"):
        assert entry[field]["source"].startswith(("vendor:", "estimate:")), (name, field)
    peak = parse_quantity(entry["peak_fp16"]["value"], "flop_rate")
    assert peak == pytest.approx(EDGE_LLM_DEVICES[name] * 1e12, rel=1e-9)
    assert peak > parse_quantity(entry["compute"]["value"], "flop_rate")  # above the effective fp32 rate
