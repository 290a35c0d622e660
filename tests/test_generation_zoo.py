"""The LLM zoo's per-token costs (toolchain/models/llm_tokens.py) and its generation instance
(instances/zoo/generation/llama2-7b-generate-phone-edge.yaml): TTFT and TPOT by hand from LLaMA-2-7B's
FLOP and byte formulas (docs/instance-format.md §9.10)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from formulation.evaluator import evaluate
from formulation.loader import load_instance
from solvers.options import SolverOptions
from solvers.registry import solve
from solvers.result import Status
from toolchain.models.llm import FP16, INT4, LLAMA2_7B, LLAMA2_70B, MIXTRAL_8X7B, decoder_model
from toolchain.models.llm_tokens import check_affine
from toolchain.zoo_generation import NAME, generation_instance

ZOO = Path(__file__).resolve().parents[1] / "instances" / "zoo" / "generation" / f"{NAME}.yaml"


@pytest.mark.parametrize(("cfg", "granularity"), [(LLAMA2_7B, "block"), (LLAMA2_70B, "sublayer"),
                                                  (MIXTRAL_8X7B, "block"), (LLAMA2_7B, "op")])
def test_per_token_costs_reproduce_every_pass(cfg: object, granularity: str) -> None:
    for t, s in ((512, 512), (1, 1025), (3, 7)):
        assert check_affine(cfg, granularity, FP16, t, s) == 0.0  # type: ignore[arg-type]
    assert check_affine(cfg, granularity, INT4, 1, 300) == 0.0  # type: ignore[arg-type]


def _pass(model: dict, t: int, s: int, lid: str) -> tuple[float, float]:
    lay = next(x for x in model["layers"] if x["id"] == lid)
    c = lay["tokens"]
    flops = (c.get("flops", 0) + c.get("flops_per_token", 0) * t + c.get("flops_per_position", 0) * s
             + c.get("flops_per_token_position", 0) * t * s)
    return flops, lay["param_bytes"] + c.get("kv_bytes_per_position", 0) * s


def test_per_token_figures_equal_the_prefill_and_decode_models() -> None:
    gen = decoder_model(LLAMA2_7B, "prefill", 512, granularity="block", per_token=True)
    pre = decoder_model(LLAMA2_7B, "prefill", 512, granularity="block")
    dec = decoder_model(LLAMA2_7B, "decode", context=1024, granularity="block")
    for a, b, c in zip(gen["layers"], pre["layers"], dec["layers"], strict=True):
        assert _pass(gen, 512, 512, a["id"])[0] == b["flops"]
        flops, resident = _pass(gen, 1, 1025, a["id"])
        assert flops == c["flops"]
        # the decode model stores the 1024 cached positions; the generation holds 1025 after the step
        kv = a["tokens"].get("kv_bytes_per_position", 0)
        assert resident - kv == c["param_bytes"] and c["param_bytes"] - kv * 1024 == a["param_bytes"]
    block = gen["layers"][1]["tokens"]
    # by hand: 2(4d² + 3df) + norms 8d + rotary 6d + residuals 2d + SwiGLU 2f per token; h(4e + 3) per
    # token and position; K and V of 32 heads of 128 in fp16 per position
    d, f, h, e = 4096, 11008, 32, 128
    assert block["flops_per_token"] == 2 * (4 * d * d + 3 * d * f) + 8 * d + 6 * d + 2 * d + 2 * f
    assert block["flops_per_token_position"] == h * (4 * e + 3)
    assert block["kv_bytes_per_position"] == 2 * h * e * 2


def test_zoo_file_is_the_generator_output() -> None:
    body = "\n".join(line for line in ZOO.read_text().splitlines() if not line.startswith("#"))
    assert yaml.safe_load(body) == yaml.safe_load(yaml.safe_dump(generation_instance()))


def test_llama2_7b_generation_ttft_and_tpot_by_hand() -> None:
    inst = load_instance(ZOO)
    ev = evaluate(inst, {lid: "edge-gpu" for lid in inst.graph.layer_ids})
    gen = ev.workload["requests"]["chat"]["generation"]
    # LLaMA-2 7B: d 4096, MLP 11008, 32 heads of 128, vocabulary 32000, fp16; T4 edge server 4.05
    # TFLOP/s and 224 GB/s; Wi-Fi 18.88 Mbit/s, 5 ms
    d, f, h, e, V, b = 4096, 11008, 32, 128, 32000, 2
    c, mbw, link, lat = 4.05e12, 224e9, 18.88e6 / 8, 0.005
    w_block = (4 * d * d + 3 * d * f + 2 * d) * b
    w_embed, w_head = V * d * b, (V * d + d) * b

    def block(T: int, S: int) -> float:
        flops = T * (2 * (4 * d * d + 3 * d * f) + 16 * d + 2 * f) + T * S * h * (4 * e + 3)
        moved = w_block + 2 * h * e * b * S + 2 * T * d * b  # weights, cache, output and input
        return max(flops / c, moved / mbw)

    def pass_time(T: int, S: int) -> float:
        up = lat + 8 * T / link  # token ids to the edge
        embed = (w_embed + T * d * b + 8 * T) / mbw  # no FLOP: a table look-up
        head = max((4 * d + 2 * d * V) / c, (w_head + T * d * b + V * b) / mbw)  # the last token only
        down = lat + V * b / link  # the logits back to the phone
        return up + embed + 32 * block(T, S) + head + down

    ttft = pass_time(512, 512)
    steps = [pass_time(1, 512 + j) for j in range(1, 129)]
    assert gen["ttft_s"] == pytest.approx(ttft, rel=1e-9)
    assert gen["tpot_s"] == pytest.approx(sum(steps) / 128, rel=1e-9)
    assert gen["total_s"] == pytest.approx(ttft + sum(steps), rel=1e-9)
    assert ttft == pytest.approx(1.7131, rel=1e-4) and sum(steps) / 128 == pytest.approx(0.09864, rel=1e-3)
    assert gen["kv_cache_bytes"] == {"edge-gpu": 32 * 2 * h * e * b * (512 + 128)}
    # the decode steps are memory-bound on the T4: the weights' 13.5 GB at 224 GB/s, 60 ms a step
    assert block(1, 600) == pytest.approx((w_block + 2 * h * e * b * 600 + 2 * d * b) / mbw)


@pytest.mark.parametrize("solver", ["cpsat-v2", "highs"])
def test_llama2_7b_generation_solves_to_the_edge(solver: str) -> None:
    inst = load_instance(ZOO)
    res = solve(inst, solver, SolverOptions(time_limit_s=60))
    assert res.status == Status.OPTIMAL
    best = evaluate(inst, {lid: "edge-gpu" for lid in inst.graph.layer_ids}).objective
    assert res.objective == pytest.approx(best, rel=1e-9)
    assert res.objective == pytest.approx(1.7131 + 128 * 0.09864, rel=1e-3)  # TTFT + G x TPOT by hand above
    assert set(res.placement.values()) == {"edge-gpu"}
