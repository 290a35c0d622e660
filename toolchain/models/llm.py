"""An LLM-scale decoder described analytically (no torch): LLaMA-7B-shaped, fp16 weights.

The architecture is that of LLaMA (Touvron et al., "LLaMA: Open and Efficient Foundation
Language Models", arXiv 2302.13971, 2023): pre-norm decoder blocks with RMSNorm, rotary position
embeddings, multi-head attention and a SwiGLU MLP; 7B: d=4096, 32 layers, 32 heads, MLP width
11008, vocabulary 32000 (6,738,415,616 parameters).

Each block is two layers, ``blocks.i.attn`` and ``blocks.i.mlp``, plus ``embed`` and ``head``,
so the graph is a chain of 2·L+2 layers. FLOPs (multiply-add = 2, as everywhere in dnnpart), for
``T`` new tokens attending to ``S`` positions (prefill: ``S = T``; decode: ``T = 1``,
``S = context``):

* attention layer: RMSNorm 4·T·d, Q/K/V/O projections 2·T·4d², rotary embedding 3 per element of
  Q and K (6·T·d), scores Q·Kᵀ 2·T·S·d, softmax 3·h·T·S, weighted sum 2·T·S·d, residual T·d
  (attention is computed densely, without skipping masked positions);
* MLP layer: RMSNorm 4·T·d, gate and up 2·2·T·d·f, SiLU and product 2·T·f, down 2·T·f·d,
  residual T·d;
* head: RMSNorm and the vocabulary projection for the last token only, 4·d + 2·d·V (generation
  needs only the next-token logits).

In decode mode the key/value cache of the ``S`` positions (2·S·d values per block) must reside
with the attention layer: it is part of that layer's ``param_bytes`` (and ``attrs.kv_cache_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of a LLaMA-style decoder."""

    name: str = "llama-7b"
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    d_ff: int = 11008
    vocab: int = 32000
    bytes_per_value: int = 2  # fp16 weights and activations

    def param_count(self) -> int:
        """Parameters: embeddings, per-block attention + MLP + two norms, final norm, head."""
        d, f, v = self.d_model, self.d_ff, self.vocab
        return v * d + self.n_layers * (4 * d * d + 3 * d * f + 2 * d) + d + d * v


LLAMA_7B = DecoderConfig()


def decoder_model(
    cfg: DecoderConfig = LLAMA_7B, mode: Literal["prefill", "decode"] = "prefill", tokens: int = 512,
    context: int = 1024,
) -> dict[str, Any]:
    """The decoder as a spec-form model dict.

    Parameters
    ----------
    cfg : DecoderConfig
        Architecture.
    mode : {"prefill", "decode"}
        Process a prompt of ``tokens`` tokens, or generate one token after ``context`` positions.
    tokens, context : int
        Prompt length (prefill) and cached positions (decode).
    """
    d, f, v, h, b = cfg.d_model, cfg.d_ff, cfg.vocab, cfg.n_heads, cfg.bytes_per_value
    t, s = (tokens, tokens) if mode == "prefill" else (1, context + 1)
    act = t * d * b
    kv = 2 * (s - 1) * d * b if mode == "decode" else 0
    attn_flops = 4 * t * d + 8 * t * d * d + 6 * t * d + 2 * t * s * d + 3 * h * t * s + 2 * t * s * d + t * d
    mlp_flops = 4 * t * d + 4 * t * d * f + 2 * t * f + 2 * t * f * d + t * d
    layers: list[dict[str, Any]] = [
        {"id": "embed", "op": "embedding", "inputs": ["tokens"], "flops": 0, "param_bytes": v * d * b,
         "output_bytes": act, "attrs": {"param_count": v * d, "shape_out": [1, t, d]}},
    ]
    prev = "embed"
    for i in range(cfg.n_layers):
        a_id, m_id = f"blocks.{i}.attn", f"blocks.{i}.mlp"
        layers.append({
            "id": a_id, "op": "attention", "inputs": [prev], "flops": attn_flops,
            "param_bytes": (4 * d * d + d) * b + kv, "output_bytes": act,
            "attrs": {"param_count": 4 * d * d + d, "kv_cache_bytes": kv, "shape_out": [1, t, d]},
        })
        layers.append({
            "id": m_id, "op": "mlp", "inputs": [a_id], "flops": mlp_flops,
            "param_bytes": (3 * d * f + d) * b, "output_bytes": act,
            "attrs": {"param_count": 3 * d * f + d, "shape_out": [1, t, d]},
        })
        prev = m_id
    layers.append({
        "id": "head", "op": "linear", "inputs": [prev], "flops": 4 * d + 2 * d * v,
        "param_bytes": (d + d * v) * b, "output_bytes": v * b,
        "attrs": {"param_count": d + d * v, "shape_out": [1, 1, v]},
    })
    return {
        "name": f"{cfg.name}-{mode}",
        "inputs": [{"id": "tokens", "bytes": t * 8}],
        "layers": layers,
        "outputs": ["head"],
    }
