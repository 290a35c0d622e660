"""Decoder-only LLMs from Hugging Face ``transformers`` configurations, analytically (no weights).

A configuration (a ``transformers`` config object, its ``to_dict()``, or a ``config.json`` file) is
mapped to a :class:`toolchain.models.llm.DecoderConfig`, and the model dict is built by the same
builder as the zoo's presets (:func:`toolchain.models.llm.decoder_model`): one builder, two front
ends. Reading a dict or a file needs nothing but the standard library; ``transformers`` is needed
only to pass a config object.

Field mapping (``model_type``):

===================  =====================================  =====================================
DecoderConfig         ``llama``, ``mistral``, ``mixtral``     ``gpt2``
===================  =====================================  =====================================
``d_model``           ``hidden_size``                         ``n_embd``
``n_layers``          ``num_hidden_layers``                   ``n_layer``
``n_heads``           ``num_attention_heads``                 ``n_head``
``n_kv_heads``        ``num_key_value_heads`` (default: heads)  = heads
``head_dim``          ``head_dim`` (default: width / heads)   width / heads
``d_ff``              ``intermediate_size``                   ``n_inner`` (default ``4·n_embd``)
``vocab``             ``vocab_size``                          ``vocab_size``
``tied``              ``tie_word_embeddings``                 ``tie_word_embeddings`` (default true)
``positions``         0 (rotary)                              ``n_positions``
``n_experts, top_k``  ``num_local_experts``,                  1, 1
                      ``num_experts_per_tok`` (mixtral)
mlp, norm, bias       SwiGLU, RMSNorm, none                   GELU, LayerNorm, biases
===================  =====================================  =====================================

Configurations the builder cannot describe exactly are refused with the field named: another
activation than SiLU (llama family) or GELU (gpt2), attention or MLP biases in the llama family.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolchain.models.llm import FP16, DecoderConfig, Granularity, Mode, Quant, decoder_model

LLAMA_FAMILY = ("llama", "mistral", "mixtral")
SUPPORTED = (*LLAMA_FAMILY, "gpt2")
#: Largest value accepted for any size field (vocabularies of a few hundred thousand are the largest in use).
MAX_DIMENSION = 10**8


class ConfigError(ValueError):
    """A configuration that cannot be imported (the message names the field and what was expected)."""


def _as_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, str | Path):
        return read_config(config)
    if hasattr(config, "to_dict"):
        data: dict[str, Any] = config.to_dict()
        return data
    raise ConfigError(f"expected a transformers config, a dict or a config.json path, not {type(config).__name__}")


def read_config(path: str | Path) -> dict[str, Any]:
    """A ``config.json`` (or a folder holding one) as a dict, read within the input limits of every
    user file (:mod:`formulation.limits`: size, nesting, regular files only).

    Raises
    ------
    ConfigError
        For a missing file or a document that is not a JSON object.
    formulation.errors.InstanceError
        For an unreadable or malformed file (its message names the file and the position).
    """
    from formulation.yamlio import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.exists():
        raise ConfigError(f"{p}: no such file")
    data = load_file(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object (a transformers config.json), got {type(data).__name__}")
    return data


def _int(d: Mapping[str, Any], key: str, default: Any = None) -> int:
    value = d.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIMENSION:
        raise ConfigError(f"config field {key!r}: expected a positive integer up to {MAX_DIMENSION:,}, got {value!r}")
    return value


def decoder_config(config: Any, name: str | None = None) -> DecoderConfig:
    """The :class:`DecoderConfig` of a transformers configuration (module docstring's mapping).

    Raises
    ------
    ConfigError
        For an unsupported ``model_type`` or a field the builder cannot describe.
    """
    d = _as_dict(config)
    kind = d.get("model_type")
    if kind not in SUPPORTED:
        raise ConfigError(
            f"config field 'model_type': {kind!r} is not supported; expected one of {', '.join(SUPPORTED)}")
    label = name or str(d.get("_name_or_path") or kind)
    if kind == "gpt2":
        act = d.get("activation_function", "gelu_new")
        if not str(act).startswith("gelu"):
            raise ConfigError(f"config field 'activation_function': {act!r}; expected a GELU variant")
        width = _int(d, "n_embd")
        return DecoderConfig(
            label, width, _int(d, "n_layer"), _int(d, "n_head"), _int(d, "n_inner", 4 * width), _int(d, "vocab_size"),
            mlp="gelu", norm="layer", positions=_int(d, "n_positions"), bias=True,
            tied=bool(d.get("tie_word_embeddings", True)),
        )
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise ConfigError(f"config field 'hidden_act': {act!r}; expected 'silu' (SwiGLU)")
    for key in ("attention_bias", "mlp_bias"):
        if d.get(key):
            raise ConfigError(f"config field {key!r}: biases are not modelled for model_type {kind!r}; expected false")
    heads = _int(d, "num_attention_heads")
    width = _int(d, "hidden_size")
    experts = _int(d, "num_local_experts", 1) if kind == "mixtral" else 1
    if experts > 1 and _int(d, "num_experts_per_tok", 2) > experts:
        raise ConfigError(f"config field 'num_experts_per_tok': {d['num_experts_per_tok']!r} exceeds "
                          f"num_local_experts = {experts}")
    kv, hd = _int(d, "num_key_value_heads", heads), _int(d, "head_dim", width // heads)
    return DecoderConfig(  # defaults (0) where the value is the default, so that equal shapes compare equal
        label, width, _int(d, "num_hidden_layers"), heads, _int(d, "intermediate_size"), _int(d, "vocab_size"),
        n_kv_heads=0 if kv == heads else kv, head_dim=0 if hd == width // heads else hd,
        tied=bool(d.get("tie_word_embeddings", False)), n_experts=experts,
        top_k=_int(d, "num_experts_per_tok", 2) if experts > 1 else 1,
    )


def from_hf_config(
    config: Any, mode: Mode = "prefill", tokens: int = 512, context: int = 1024, granularity: Granularity = "block",
    quant: Quant = FP16, name: str | None = None,
) -> dict[str, Any]:
    """The spec-form model dict of a transformers decoder configuration (see
    :func:`toolchain.models.llm.decoder_model` for the arguments)."""
    return decoder_model(decoder_config(config, name), mode, tokens, context, granularity, quant)
