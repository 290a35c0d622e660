"""LLM-scale decoders described analytically (no torch): LLaMA/LLaMA-2, GPT-3-shaped, mixture of experts.

One builder, :func:`decoder_model`, serves every front end: the zoo's presets (:data:`PRESETS`) and
the Hugging Face configuration import (:mod:`toolchain.importers.hf_decoder`). It describes one
pass of a decoder-only transformer over ``T`` new tokens attending to ``S`` positions (prefill of a
prompt: ``T = S = P``; one decode step after ``L`` cached positions: ``T = 1``, ``S = L + 1``) at
three granularities:

* ``block``: ``embed``, one node per decoder block ``blocks.i`` and ``head`` (final norm + head);
* ``sublayer``: per block an attention node ``blocks.i.attn`` and an MLP node ``blocks.i.mlp``
  (the graph of the zoo's ``llama7b_*`` models, unchanged);
* ``op``: the operators of :mod:`toolchain.models.llm_ops` (per-head attention; see there for the
  node count).

The coarser graphs are the operator graph's nodes merged (sums of FLOPs, parameters and bytes), so
the three agree on every total by construction.

Architectures. LLaMA (Touvron et al., arXiv 2302.13971, 2023) and LLaMA-2 (Touvron et al., arXiv
2307.09288, 2023): pre-norm blocks with RMSNorm, rotary position embeddings, SwiGLU MLP, untied
head; LLaMA-2 70B uses grouped-query attention with 8 key/value heads (Ainslie et al., EMNLP
2023). GPT-3 (Brown et al., NeurIPS 2020, Table 2.1, "175B"): LayerNorm, GELU MLP of width 4d,
biases, learned positions, head tied to the embedding (as GPT-2). Mixtral 8x7B (Jiang et al.,
arXiv 2401.04088, 2024): the 7B-class LLaMA block with GQA (8 KV heads) whose MLP is 8 SwiGLU
experts of width 14336, of which a router picks the top 2 per token.

FLOPs (multiply-add = 2, as everywhere in dnnpart; biases not counted), for ``T`` tokens and ``S``
positions, ``h`` query heads, ``g`` key/value heads, head size ``e``, width ``d``, MLP width ``f``:

* norm: RMSNorm 4 per element, LayerNorm 5 (the importers' table, docs/toolchain.md);
* projections: ``2·T·in·out`` (Q: ``d × h·e``, K and V: ``d × g·e``, O: ``h·e × d``);
* rotary embedding: 3 per element of Q and K;
* attention core per head: scores ``2·T·S·e``, softmax ``3·T·S``, weighted sum ``2·T·S·e``
  (dense, masked positions not skipped);
* SwiGLU: gate and up ``2·T·d·f`` each, SiLU and product ``2·T·f``, down ``2·T·f·d``; GELU MLP:
  ``2·T·d·f`` twice and ``T·f`` for the activation;
* residual adds ``T·d``; learned positions: ``T·d`` in ``embed``;
* mixture of experts: the router ``2·T·d·E``; every token runs ``k`` of the ``E`` experts, so the
  experts' FLOPs are ``k/E`` of running every token through every expert (under uniform routing
  each expert receives ``T·k/E`` tokens on average, which is what each expert node carries at
  operator granularity), while all ``E`` experts' weights are resident; the weighted sum of the
  ``k`` expert outputs ``2·T·k·d``;
* head: the final norm and the vocabulary projection of the last token only (generation needs only
  the next-token logits): ``norm(d) + 2·d·V``.

Bytes. Activations are fp16 (:attr:`DecoderConfig.bytes_per_value`). Weight matrices are stored in
the :class:`Quant` format (fp16, or int8 / int4 with fp16 scales); embeddings, norms and biases
stay fp16. In decode mode the key/value cache of the ``S - 1`` cached positions
(``2·(S-1)·g·e`` values per block) resides with the layers that compute K and V: it is part of their
``param_bytes`` (and of ``attrs.kv_cache_bytes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

Mode = Literal["prefill", "decode"]
Granularity = Literal["block", "sublayer", "op"]
GRANULARITIES: tuple[str, ...] = ("block", "sublayer", "op")


@dataclass(frozen=True)
class Quant:
    """Storage of weight matrices: ``bits`` per weight plus one fp16 scale per ``group`` weights of
    a row (``group = 0``: one scale per output row; no scales at 16 bits).

    int8: per-output-channel scales (LLM.int8(), Dettmers et al., NeurIPS 2022; SmoothQuant, Xiao et
    al., ICML 2023). int4: groups of 128 weights (GPTQ, Frantar et al., ICLR 2023; AWQ, Lin et al.,
    MLSys 2024), zero points not stored (symmetric)."""

    name: str
    bits: int
    group: int = 0

    def matrix_bytes(self, rows: int, cols: int, bytes_fp16: int = 2) -> int:
        """Bytes of a ``rows × cols`` weight matrix (``rows`` outputs, ``cols`` inputs)."""
        if self.bits >= 16:
            return rows * cols * bytes_fp16
        scales = rows * (math.ceil(cols / self.group) if self.group else 1)
        return (rows * cols * self.bits + 7) // 8 + scales * bytes_fp16


FP16 = Quant("fp16", 16)
INT8 = Quant("int8", 8)
INT4 = Quant("int4", 4, 128)
QUANTS: dict[str, Quant] = {q.name: q for q in (FP16, INT8, INT4)}


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of a decoder-only transformer (defaults: LLaMA-7B)."""

    name: str = "llama-7b"
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    d_ff: int = 11008
    vocab: int = 32000
    bytes_per_value: int = 2  # fp16 activations (and fp16 weights unless quantised)
    n_kv_heads: int = 0  # 0: as many as query heads (multi-head attention)
    head_dim: int = 0  # 0: d_model / n_heads
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    norm: Literal["rms", "layer"] = "rms"
    positions: int = 0  # learned position embeddings (GPT); 0: rotary
    bias: bool = False
    tied: bool = False
    n_experts: int = 1
    top_k: int = 1

    @property
    def kv_heads(self) -> int:
        """Key/value heads ``g``."""
        return self.n_kv_heads or self.n_heads

    @property
    def hd(self) -> int:
        """Head size ``e``."""
        return self.head_dim or self.d_model // self.n_heads

    def norm_params(self) -> int:
        """Parameters of one norm (RMSNorm: a scale; LayerNorm: scale and shift)."""
        return self.d_model * (2 if self.norm == "layer" else 1)

    def attention_params(self) -> int:
        """Q, K, V, O projections (and their biases) of one block, without its norm."""
        d, q, kv = self.d_model, self.n_heads * self.hd, self.kv_heads * self.hd
        w = d * q + 2 * d * kv + q * d
        return w + ((q + 2 * kv + d) if self.bias else 0)

    def expert_params(self) -> int:
        """One MLP (one expert of a mixture)."""
        d, f = self.d_model, self.d_ff
        if self.mlp == "swiglu":
            return 3 * d * f + ((2 * f + d) if self.bias else 0)
        return 2 * d * f + ((f + d) if self.bias else 0)

    def block_params(self, active: bool = False) -> int:
        """One decoder block (``active``: only the ``top_k`` experts a token runs)."""
        router = self.d_model * self.n_experts if self.n_experts > 1 else 0
        experts = self.top_k if active and self.n_experts > 1 else self.n_experts
        return 2 * self.norm_params() + self.attention_params() + router + experts * self.expert_params()

    def embedding_params(self) -> int:
        """Token (and learned position) embeddings."""
        return (self.vocab + self.positions) * self.d_model

    def param_count(self, active: bool = False) -> int:
        """All parameters (each shared weight once); ``active``: those one token uses."""
        head = 0 if self.tied else self.d_model * self.vocab
        return self.embedding_params() + self.n_layers * self.block_params(active) + self.norm_params() + head


LLAMA_7B = DecoderConfig()
LLAMA2_7B = replace(LLAMA_7B, name="llama-2-7b")
LLAMA2_13B = DecoderConfig("llama-2-13b", 5120, 40, 40, 13824)
LLAMA2_70B = DecoderConfig("llama-2-70b", 8192, 80, 64, 28672, n_kv_heads=8)
GPT3_175B = DecoderConfig("gpt-3-175b", 12288, 96, 96, 4 * 12288, 50257, mlp="gelu", norm="layer", positions=2048,
                          bias=True, tied=True)
MIXTRAL_8X7B = DecoderConfig("mixtral-8x7b", 4096, 32, 32, 14336, n_kv_heads=8, n_experts=8, top_k=2)
PRESETS: dict[str, DecoderConfig] = {c.name: c for c in (LLAMA2_7B, LLAMA2_13B, LLAMA2_70B, GPT3_175B, MIXTRAL_8X7B)}


@dataclass(frozen=True)
class Published:
    """Published parameter totals of a preset, the tolerance they are checked to, and why ours differ."""

    params: float
    active: float | None
    rel_tol: float
    source: str
    why: str


PUBLISHED: dict[str, Published] = {
    "llama-2-7b": Published(6.74e9, None, 2e-3, "Touvron et al. 2023 (LLaMA-2), 6.74 B (Hugging Face model card)",
                            "rounding only: 6,738,415,616"),
    "llama-2-13b": Published(13.0e9, None, 2e-3, "Touvron et al. 2023 (LLaMA-2), 13.0 B",
                             "rounding only: 13,015,864,320"),
    "llama-2-70b": Published(69.0e9, None, 2e-3, "Touvron et al. 2023 (LLaMA-2), 69.0 B (grouped-query, 8 KV heads)",
                             "rounding only: 68,976,648,192"),
    "gpt-3-175b": Published(175.0e9, None, 5e-3, "Brown et al. 2020, Table 2.1: 175.0 B",
                            "ours 174.6 B: the published figure is rounded to '175B' and the paper does not give "
                            "every bias and norm; the 12·L·d² core alone is 173.9 B"),
    "mixtral-8x7b": Published(46.7e9, 12.9e9, 3e-3, "Jiang et al. 2024 (Mixtral): 46.7 B total, 12.9 B active",
                              "rounding only: 46,702,792,704 total, 12,879,925,248 active"),
}


#: Largest graph :func:`decoder_model` builds (GPT-3 at operator granularity has 46,851 nodes).
MAX_NODES = 1_000_000


def node_count(cfg: DecoderConfig, granularity: str) -> int:
    """Nodes of the graph at ``granularity`` (operators: see :mod:`toolchain.models.llm_ops`)."""
    if granularity == "block":
        return cfg.n_layers + 2
    if granularity == "sublayer":
        return 2 * cfg.n_layers + 2
    m = 5 if cfg.mlp == "gelu" else (6 if cfg.n_experts == 1 else 3 + 4 * cfg.n_experts)
    return cfg.n_layers * (3 * cfg.n_heads + 2 * cfg.kv_heads + 3 + m) + 3


def positions(mode: Mode, tokens: int, context: int) -> tuple[int, int]:
    """``(T, S)``: new tokens and attended positions of a prefill of ``tokens`` or a decode step
    after ``context`` cached positions."""
    return (tokens, tokens) if mode == "prefill" else (1, context + 1)


def decoder_model(
    cfg: DecoderConfig = LLAMA_7B, mode: Mode = "prefill", tokens: int = 512, context: int = 1024,
    granularity: Granularity = "sublayer", quant: Quant = FP16, per_token: bool = False,
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
    granularity : {"block", "sublayer", "op"}
        Nodes per block (module docstring).
    quant : Quant
        Storage of the weight matrices.
    per_token : bool
        Add the per-token costs of generation requests (``tokens`` on every layer and the input,
        docs/instance-format.md §9.10; :mod:`toolchain.models.llm_tokens`); ``param_bytes`` then holds
        the weights alone (the key/value cache is ``kv_bytes_per_position``).
    """
    from toolchain.models.llm_ops import operator_graph

    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    nodes = node_count(cfg, granularity)
    if nodes > MAX_NODES:
        raise ValueError(f"{cfg.name} at {granularity} granularity would have {nodes:,} nodes; at most "
                         f"{MAX_NODES:,} are built")
    t, s = positions(mode, tokens, context)
    ops = operator_graph(cfg, t, s, quant)
    layers = ops if granularity == "op" else _merge(ops, granularity, cfg, t)
    suffix = "" if quant.bits >= 16 else f"-{quant.name}"
    name = f"{cfg.name}-{mode}{suffix}" if granularity == "sublayer" else f"{cfg.name}-{mode}{suffix}-{granularity}"
    model = {"name": name, "inputs": [{"id": "tokens", "bytes": t * 8}], "layers": layers, "outputs": ["head"]}
    if per_token:
        from toolchain.models.llm_tokens import with_tokens

        return with_tokens(model, cfg, granularity, quant)
    return model


def _group_of(layer_id: str, granularity: str) -> tuple[str, str]:
    """``(group id, op)`` of an operator at a coarser granularity."""
    parts = layer_id.split(".")
    if parts[0] != "blocks":
        return ("embed", "embedding") if parts[0] == "embed" else ("head", "linear")
    block = ".".join(parts[:2])
    if granularity == "block":
        return block, "decoder_block"
    return (f"{block}.attn", "attention") if parts[2] in ("attn_norm", "attn") else (f"{block}.mlp", "mlp")


def _merge(ops: list[dict[str, Any]], granularity: str, cfg: DecoderConfig, t: int) -> list[dict[str, Any]]:
    """Operators merged into their groups (sums; the group's output is its last operator's)."""
    groups: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for op in ops:
        gid, kind = _group_of(op["id"], granularity)
        owner[op["id"]] = gid
        a = op["attrs"]
        g = groups.get(gid)
        if g is None:
            g = groups[gid] = {"id": gid, "op": kind, "inputs": [], "flops": 0, "param_bytes": 0, "output_bytes": 0,
                               "attrs": {"param_count": 0}, "_kv": 0, "_shared": 0, "_fmt": a.get("weight_format")}
        for src in op["inputs"]:
            src_g = owner.get(src, src)
            if src_g != gid and src_g not in g["inputs"]:
                g["inputs"].append(src_g)
        g["flops"] += op["flops"]
        g["param_bytes"] += op["param_bytes"]
        g["output_bytes"] = op["output_bytes"]
        g["attrs"]["param_count"] += a.get("param_count", 0)
        g["_kv"] += a.get("kv_cache_bytes", 0)
        g["_shared"] += a.get("shared_param_bytes", 0)
        g["_fmt"] = g["_fmt"] or a.get("weight_format")
    out = []
    for g in groups.values():
        attrs = g["attrs"]
        if g["op"] in ("attention", "decoder_block"):
            attrs["kv_cache_bytes"] = g.pop("_kv")
        shared = g.pop("_shared")
        if shared:
            attrs["shared_param_bytes"] = shared
        fmt = g.pop("_fmt")
        g.pop("_kv", None)
        if fmt:
            attrs["weight_format"] = fmt
        attrs["shape_out"] = [1, 1, cfg.vocab] if g["id"] == "head" else [1, t, cfg.d_model]
        out.append(g)
    return out
