"""The operator graph of an analytic decoder (:mod:`toolchain.models.llm`), per-head attention.

Nodes of block ``i`` (prefix ``blocks.i.``), with ``h`` query heads, ``g`` key/value heads and
``E`` experts:

* ``attn_norm``; per key/value head ``attn.k.j`` and ``attn.v.j`` (K with its rotary embedding);
  per query head ``attn.q.j`` (Q projection of the head, rotary embedding), ``attn.scores.j``
  (``Q·Kᵀ`` and softmax, reading its K/V group's keys) and ``attn.av.j`` (the weighted sum of the
  values); ``attn.o`` (reads every head's ``av``) and ``attn.add`` (residual);
* ``mlp_norm``; SwiGLU ``mlp.gate``, ``mlp.up``, ``mlp.act`` (SiLU and product), ``mlp.down`` —
  or GELU ``mlp.fc``, ``mlp.act``, ``mlp.proj`` — or, for a mixture, ``mlp.router`` and per expert
  ``mlp.experts.j.{gate,up,act,down}``; ``mlp.add`` (residual; for a mixture also the weighted sum
  of the chosen experts' outputs).

Plus ``embed``, ``final_norm`` and ``head``. Node count: ``n_layers · (3h + 2g + 3 + m) + 3`` with
``m = 6`` (SwiGLU), 5 (GELU) or ``3 + 4E`` (mixture). LLaMA-2 70B (``h = 64``, ``g = 8``): 80 ·
217 + 3 = 17,363 nodes; LLaMA-2 7B: 32 · 169 + 3 = 5,411; GPT-3 175B: 96 · 488 + 3 = 46,851;
Mixtral 8x7B: 32 · 150 + 3 = 4,803.

Tensors. A K (V) node's output is the keys (values) of all ``S`` positions, what every head of its
group reads; in decode mode the cache of the ``S - 1`` earlier positions is stored with it
(``param_bytes``, ``attrs.kv_cache_bytes``). The roofline's bytes moved by such a node therefore
count the cache once more than the kernel reads it (it only appends): for LLaMA-2 70B at
``S = 1025`` that is 0.5 % of a block's bytes. Mixture experts carry the expected share ``k/E`` of
the tokens (FLOPs and output bytes) under uniform routing.
"""

from __future__ import annotations

from typing import Any

from toolchain.models.llm import DecoderConfig, Quant


def _node(lid: str, op: str, inputs: list[str], flops: float, params: int, pbytes: int, out: float,
          **attrs: Any) -> dict[str, Any]:
    return {"id": lid, "op": op, "inputs": inputs, "flops": flops, "param_bytes": pbytes, "output_bytes": out,
            "attrs": {"param_count": params, **{k: v for k, v in attrs.items() if v is not None}}}


class _Ops:
    """Accumulates the nodes; knows the configuration's byte conventions."""

    def __init__(self, cfg: DecoderConfig, quant: Quant, t: int, s: int) -> None:
        self.cfg, self.quant, self.t, self.s = cfg, quant, t, s
        self.b = cfg.bytes_per_value
        self.fmt = None if quant.bits >= 16 else quant.name
        self.nodes: list[dict[str, Any]] = []

    def add(self, lid: str, op: str, inputs: list[str], flops: float, params: int, pbytes: int, out: float,
            **attrs: Any) -> str:
        self.nodes.append(_node(lid, op, inputs, flops, params, pbytes, out, **attrs))
        return lid

    def linear(self, lid: str, inputs: list[str], n_in: int, n_out: int, tokens: float, extra_flops: float = 0,
               cache: int = 0, out_rows: float | None = None) -> str:
        """A projection ``n_in -> n_out`` over ``tokens`` rows (bias when the architecture has them)."""
        bias = n_out if self.cfg.bias else 0
        pbytes = self.quant.matrix_bytes(n_out, n_in, self.b) + bias * self.b + cache
        rows = tokens if out_rows is None else out_rows
        return self.add(lid, "linear", inputs, 2 * tokens * n_in * n_out + extra_flops, n_in * n_out + bias, pbytes,
                        rows * n_out * self.b, kv_cache_bytes=cache if cache else None, weight_format=self.fmt)

    def norm(self, lid: str, inputs: list[str], tokens: int) -> str:
        c = self.cfg
        per = 5 if c.norm == "layer" else 4
        p = c.norm_params()
        return self.add(lid, "layer_norm" if c.norm == "layer" else "rms_norm", inputs, per * tokens * c.d_model, p,
                        p * self.b, tokens * c.d_model * self.b)


def _attention(o: _Ops, p: str, x: str) -> str:
    c, t, s, b = o.cfg, o.t, o.s, o.b
    d, e, h, g = c.d_model, c.hd, c.n_heads, c.kv_heads
    rope = 0 if c.positions else 3
    n = o.norm(f"{p}.attn_norm", [x], t)
    cache = (s - t) * e * b  # earlier positions of one K (or V) head
    for j in range(g):
        o.linear(f"{p}.attn.k.{j}", [n], d, e, t, rope * t * e, cache, out_rows=s)
    for j in range(g):
        o.linear(f"{p}.attn.v.{j}", [n], d, e, t, 0, cache, out_rows=s)
    for j in range(h):
        o.linear(f"{p}.attn.q.{j}", [n], d, e, t, rope * t * e)
    av = []
    for j in range(h):
        grp = j * g // h
        sc = o.add(f"{p}.attn.scores.{j}", "matmul", [f"{p}.attn.q.{j}", f"{p}.attn.k.{grp}"],
                   2 * t * s * e + 3 * t * s, 0, 0, t * s * b)
        av.append(o.add(f"{p}.attn.av.{j}", "matmul", [sc, f"{p}.attn.v.{grp}"], 2 * t * s * e, 0, 0, t * e * b))
    proj = o.linear(f"{p}.attn.o", av, h * e, d, t)
    return o.add(f"{p}.attn.add", "add", [x, proj], t * d, 0, 0, t * d * b)


def _mlp(o: _Ops, p: str, x: str) -> str:
    c, t, b = o.cfg, o.t, o.b
    d, f = c.d_model, c.d_ff
    n = o.norm(f"{p}.mlp_norm", [x], t)
    if c.mlp == "gelu":
        fc = o.linear(f"{p}.mlp.fc", [n], d, f, t)
        act = o.add(f"{p}.mlp.act", "gelu", [fc], t * f, 0, 0, t * f * b)
        return o.add(f"{p}.mlp.add", "add", [x, o.linear(f"{p}.mlp.proj", [act], f, d, t)], t * d, 0, 0, t * d * b)
    if c.n_experts == 1:
        outs = [_swiglu(o, f"{p}.mlp", [n], t)]
        return o.add(f"{p}.mlp.add", "add", [x, *outs], t * d, 0, 0, t * d * b)
    E, k = c.n_experts, c.top_k
    r = o.add(f"{p}.mlp.router", "linear", [n], 2 * t * d * E, d * E, d * E * b, t * E * b)
    share = t * k / E  # expected tokens per expert under uniform routing
    outs = [_swiglu(o, f"{p}.mlp.experts.{j}", [n, r], share) for j in range(E)]
    return o.add(f"{p}.mlp.add", "add", [x, *outs], 2 * t * k * d + t * d, 0, 0, t * d * b)


def _swiglu(o: _Ops, p: str, inputs: list[str], tokens: float) -> str:
    d, f, b = o.cfg.d_model, o.cfg.d_ff, o.b
    gate = o.linear(f"{p}.gate", inputs, d, f, tokens)
    up = o.linear(f"{p}.up", inputs, d, f, tokens)
    act = o.add(f"{p}.act", "silu_mul", [gate, up], 2 * tokens * f, 0, 0, tokens * f * b)
    return o.linear(f"{p}.down", [act], f, d, tokens)


def operator_graph(cfg: DecoderConfig, t: int, s: int, quant: Quant) -> list[dict[str, Any]]:
    """Operator nodes (layer dicts) of one pass over ``t`` new tokens attending to ``s`` positions."""
    o = _Ops(cfg, quant, t, s)
    d, v, b = cfg.d_model, cfg.vocab, o.b
    emb = cfg.embedding_params()
    x = o.add("embed", "embedding", ["tokens"], t * d if cfg.positions else 0, emb, emb * b, t * d * b)
    for i in range(cfg.n_layers):
        x = _mlp(o, f"blocks.{i}", _attention(o, f"blocks.{i}", x))
    n = o.norm("final_norm", [x], 1)
    n_node = o.nodes[-1]
    n_node["output_bytes"] = d * b  # the last token only
    if cfg.tied:
        o.add("head", "linear", [n], 2 * d * v, 0, v * d * b, v * b, shared_param_bytes=v * d * b)
    else:
        o.linear("head", [n], d, v, 1)
    return o.nodes
