"""Loading and writing the generation keys of version 2 (docs/instance-format.md §9.10).

``tokens`` on a model's layers and inputs (per-token costs, units converted and signs checked like
every other quantity), ``tokens: {prompt, generate}`` on a request, and the rule that a generation
is costed by ``none`` or ``share`` contention only.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from formulation.generation import INPUT_TOKEN_KEYS, LAYER_TOKEN_KEYS, InputTokens, LayerTokens, TokenCosts
from formulation.schema_v2 import ModelSpecV2

if TYPE_CHECKING:
    from formulation.loader import _Section
    from formulation.workload import Workload

#: Contention models that cost a generation request (a joint schedule of its steps is not modelled).
GENERATION_CONTENTIONS = ("none", "share")


def model_tokens(sec: _Section, spec: Any) -> dict[str, TokenCosts]:
    """``{local id: costs}`` of the layers and inputs of a model section that carry ``tokens``."""
    out: dict[str, TokenCosts] = {}
    if not isinstance(spec, ModelSpecV2):
        return out
    for j, mi in enumerate(spec.inputs):
        if mi.tokens is not None:
            where = ("inputs", j, "tokens")
            vals = {k: sec.quantity((*where, k), getattr(mi.tokens, k), "bytes") for k in INPUT_TOKEN_KEYS}
            out[mi.id] = InputTokens(**vals)
    for i, lay in enumerate(spec.layers):
        if lay.tokens is not None:
            at = ("layers", i, "tokens")
            vals = {
                k: sec.quantity((*at, k), getattr(lay.tokens, k), "flops" if "flops" in k else "bytes")
                for k in LAYER_TOKEN_KEYS
            }
            out[lay.id] = LayerTokens(**vals)
    return out


def check_contention(file: str, workload: list[Any], contention: str) -> list[Any]:
    """Errors for generation requests under a contention model that does not cost them."""
    from formulation.errors import InstanceError
    from formulation.schema import format_path

    if contention in GENERATION_CONTENTIONS:
        return []
    return [
        InstanceError(
            file, format_path(["workload", j, "tokens"]), item["tokens"],
            f"no generation under contention {contention!r}: a generation request is costed by contention "
            f"none or share (a joint schedule of its decode steps is not modelled)",
        )
        for j, item in enumerate(workload)
        if isinstance(item, dict) and item.get("tokens") is not None
    ]


def tokens_data(costs: TokenCosts) -> dict[str, float]:
    """The ``tokens`` mapping of a layer or model input as file data (the non-zero figures)."""
    return {f.name: float(getattr(costs, f.name)) for f in fields(costs) if getattr(costs, f.name)}


def request_tokens_data(wl: Workload, r: int) -> dict[str, int] | None:
    """A request's ``tokens`` as file data, or ``None`` for an ordinary request."""
    req = wl.requests[r]
    if req.generate is None or req.prompt is None:
        return None
    return {"prompt": req.prompt, "generate": req.generate}
