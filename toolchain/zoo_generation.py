"""The zoo's generation request (docs/instance-format.md §9.10): a LLaMA-2-7B-shaped chat turn from a
phone, with an edge GPU server over Wi-Fi; written by ``python -m toolchain.zoo`` to
``instances/zoo/generation/``.

The model is the analytic LLaMA-2 7B of :mod:`toolchain.models.llm` at block granularity (34 nodes)
with its per-token costs (:mod:`toolchain.models.llm_tokens`); the request processes a 512-token
prompt and then 128 decode steps. The devices and the network come from the catalogues
(``phone``, ``edge-gpu``: an NVIDIA T4 server; ``wifi``), each figure with its source there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "llama2-7b-generate-phone-edge"
PROMPT, GENERATE = 512, 128


def generation_instance() -> dict[str, Any]:
    """The instance as file data."""
    from toolchain.models.llm import LLAMA2_7B, decoder_model
    from toolchain.scenario import build_system
    from toolchain.zoo import GENERATOR_VERSION

    model = decoder_model(LLAMA2_7B, "prefill", tokens=PROMPT, granularity="block", per_token=True)
    model["name"] = "llama-2-7b"
    system = build_system(["phone", "edge-gpu"], "wifi")
    phone = system["devices"][0]["id"]
    return {
        "dnnpart": 2,
        "name": NAME,
        "description": (
            f"LLaMA-2-7B-shaped generation from a phone (prompt {PROMPT} tokens, {GENERATE} decode steps), an edge "
            f"T4 server over Wi-Fi; latency = time to first token + the decode steps (section 9.10). Zoo generator "
            f"version {GENERATOR_VERSION}."
        ),
        "models": {"llama-2-7b": model},
        "system": {"devices": system["devices"], "links": system["links"], "routing": "direct"},
        "workload": [{"id": "chat", "model": "llama-2-7b", "source": phone, "sink": phone,
                      "tokens": {"prompt": PROMPT, "generate": GENERATE}}],
        "problem": {"objective": "latency", "aggregate": "sum", "contention": "none", "constraints": {"memory": True}},
    }


def generate_generation(out_dir: Path) -> list[Path]:
    """Write the instance under ``out_dir/generation``; returns the file written."""
    from toolchain.zoo import HEADER, _dump

    path = out_dir / "generation" / f"{NAME}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump(generation_instance(), [HEADER]))
    return [path]
