"""``dnnpart import llm``: an analytic decoder-only LLM from a preset or a transformers ``config.json``.

The model is built by :func:`toolchain.models.llm.decoder_model` (no weights, no torch); see
docs/toolchain.md, "LLM-scale decoders".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolchain.cli.common import UserError, user_errors
from toolchain.cli.importers import Output, _emit, import_app
from toolchain.cli.outputs import check_output


@import_app.command("llm")
def import_llm(
    source: Annotated[str, typer.Argument(help="A preset (llama-2-7b, llama-2-13b, llama-2-70b, gpt-3-175b, "
                                                "mixtral-8x7b) or a transformers config.json (or its folder).")],
    mode: Annotated[str, typer.Option(help="prefill (a prompt of --tokens) or decode (one token after --context).")]
        = "decode",
    tokens: Annotated[int, typer.Option(help="Prompt length (prefill).")] = 512,
    context: Annotated[int, typer.Option(help="Cached positions before the decoded token (decode).")] = 1024,
    granularity: Annotated[str, typer.Option(help="block, sublayer (attention + MLP) or op (per-head operators).")]
        = "block",
    quant: Annotated[str, typer.Option(help="Weight storage: fp16, int8 (per-row scales) or int4 (groups of 128).")]
        = "fp16",
    name: Annotated[str | None, typer.Option(help="Model name (default: the preset or the config's).")] = None,
    output: Output = None,
) -> None:
    """Build an LLM decoder analytically (parameters, FLOPs, bytes, KV cache) as a model file."""
    with user_errors():
        check_output(output, "--output", create_parents=True)
        from toolchain.importers.hf_decoder import ConfigError, decoder_config
        from toolchain.models.llm import GRANULARITIES, PRESETS, QUANTS, decoder_model

        if mode not in ("prefill", "decode"):
            raise UserError(f"--mode {mode!r}: expected prefill or decode")
        if granularity not in GRANULARITIES:
            raise UserError(f"--granularity {granularity!r}: expected {', '.join(GRANULARITIES)}")
        if quant not in QUANTS:
            raise UserError(f"--quant {quant!r}: expected {', '.join(QUANTS)}")
        for option, value, least in (("--tokens", tokens, 1), ("--context", context, 0)):
            if not least <= value <= 10**9:
                raise UserError(f"{option} {value}: expected an integer from {least} to 1,000,000,000")
        if source in PRESETS:
            cfg = PRESETS[source]
        elif Path(source).exists():
            try:
                cfg = decoder_config(Path(source), name)
            except ConfigError as exc:
                raise UserError(f"{source}: {exc}") from None
        else:
            raise UserError(f"{source!r} is neither a preset ({', '.join(PRESETS)}) nor an existing config.json")
        try:
            model = decoder_model(cfg, mode, tokens, context, granularity, QUANTS[quant])  # type: ignore[arg-type]
        except ValueError as exc:  # a graph beyond the node limit
            raise UserError(f"{source}: {exc}") from None
        if name:
            model["name"] = name
        _emit(model, output, [f"Built by `dnnpart import llm {source}` ({mode}, {granularity} granularity, "
                              f"{quant} weights); analytic, see docs/toolchain.md."])


def register(app: typer.Typer) -> None:
    """Nothing to add: ``import llm`` joins the existing ``import`` sub-app when this module loads."""
