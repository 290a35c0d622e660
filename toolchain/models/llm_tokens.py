"""Per-token costs of the analytic decoders (docs/instance-format.md §9.10), for generation requests.

Every figure of a pass of :func:`toolchain.models.llm.decoder_model` over ``T`` new tokens attending
to ``S`` positions is a polynomial ``c0 + cT·T + cS·S + cTS·T·S`` (the FLOP and byte formulas of
:mod:`toolchain.models.llm`: projections and MLP per token, attention scores and weighted sums per
token and position, the keys and values of every position, the head of the last token only). The
four coefficients of every node are read off the same operator graph at ``(T, S)`` in ``{1, 2}²``
(exact: the formulas are bilinear, and the values integers or binary fractions);
:func:`check_affine` confirms them at other points. The key/value cache, which the graph stores with
the K and V nodes as ``(S − T)`` positions of resident bytes, becomes ``kv_bytes_per_position`` (the
cache held after a pass is ``S`` positions), and ``param_bytes`` keeps the weights alone.
"""

from __future__ import annotations

from typing import Any

from toolchain.models.llm import DecoderConfig, Quant, _merge

POINTS = ((1, 1), (2, 1), (1, 2), (2, 2))


def _nodes(cfg: DecoderConfig, granularity: str, quant: Quant, t: int, s: int) -> list[dict[str, Any]]:
    from toolchain.models.llm_ops import operator_graph

    ops = operator_graph(cfg, t, s, quant)
    return ops if granularity == "op" else _merge(ops, granularity, cfg, t)


def _fit(v11: float, v21: float, v12: float, v22: float) -> tuple[float, float, float, float]:
    """``(c0, cT, cS, cTS)`` of ``c0 + cT·T + cS·S + cTS·T·S`` through the four points of :data:`POINTS`."""
    cts = v22 - v21 - v12 + v11
    ct = v21 - v11 - cts
    cs = v12 - v11 - cts
    return v11 - ct - cs - cts, ct, cs, cts


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def token_costs(
    cfg: DecoderConfig, granularity: str, quant: Quant
) -> tuple[dict[str, dict[str, float | int]], dict[str, float]]:
    """``({node id: tokens mapping}, {node id: weight bytes})`` of the decoder at ``granularity``."""
    per_point = [_nodes(cfg, granularity, quant, t, s) for t, s in POINTS]
    tokens: dict[str, dict[str, float | int]] = {}
    weights: dict[str, float] = {}
    for nodes in zip(*per_point, strict=True):
        nid = nodes[0]["id"]
        f = _fit(*(float(n["flops"]) for n in nodes))
        o = _fit(*(float(n["output_bytes"]) for n in nodes))
        p0, pt, ps, pts = _fit(*(float(n["param_bytes"]) for n in nodes))
        # resident bytes: the weights, plus the cache of the S - T earlier positions
        assert pts == 0 and pt == -ps, (nid, pt, ps, pts)
        entry = {
            "flops": f[0], "flops_per_token": f[1], "flops_per_position": f[2], "flops_per_token_position": f[3],
            "output_bytes": o[0], "output_bytes_per_token": o[1], "output_bytes_per_position": o[2],
            "output_bytes_per_token_position": o[3], "kv_bytes_per_position": ps,
        }
        tokens[nid] = {k: _num(v) for k, v in entry.items() if v}
        weights[nid] = p0
    return tokens, weights


def check_affine(cfg: DecoderConfig, granularity: str, quant: Quant, t: int, s: int) -> float:
    """The largest relative difference at ``(t, s)`` between the graph's FLOP and output bytes and the
    fitted coefficients (0 when they are exact)."""
    tokens, _ = token_costs(cfg, granularity, quant)
    worst = 0.0
    for n in _nodes(cfg, granularity, quant, t, s):
        c = tokens[n["id"]]
        flops = (c.get("flops", 0) + c.get("flops_per_token", 0) * t + c.get("flops_per_position", 0) * s
                 + c.get("flops_per_token_position", 0) * t * s)
        out = (c.get("output_bytes", 0) + c.get("output_bytes_per_token", 0) * t
               + c.get("output_bytes_per_position", 0) * s + c.get("output_bytes_per_token_position", 0) * t * s)
        for want, got in ((n["flops"], flops), (n["output_bytes"], out)):
            worst = max(worst, abs(got - want) / max(abs(want), 1.0))
    return worst


def with_tokens(model: dict[str, Any], cfg: DecoderConfig, granularity: str, quant: Quant) -> dict[str, Any]:
    """The model dict with ``tokens`` on every layer and on the input, and the weights alone in
    ``param_bytes`` (the cache is ``kv_bytes_per_position``)."""
    tokens, weights = token_costs(cfg, granularity, quant)
    for lay in model["layers"]:
        lay["tokens"] = tokens[lay["id"]]
        lay["param_bytes"] = _num(weights[lay["id"]])
        lay.get("attrs", {}).pop("kv_cache_bytes", None)
    for mi in model["inputs"]:
        mi["tokens"] = {"bytes_per_token": 8}  # one 64-bit token id per new token
    return model
