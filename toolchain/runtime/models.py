"""Real-weight modules and example inputs for the runtime (zoo names or ``MODULE:FACTORY``).

The importers trace modules on the ``meta`` device; running a partition needs weights and data.
Zoo modules get random weights as the profiler draws them (:func:`toolchain.profiling._materialise`)
after seeding torch; a factory's module keeps its own weights. Inputs are random with the example
inputs' shapes (token ids in ``[0, 1000)``), so a given ``seed`` gives the same model and data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RealModel:
    """A module with weights and one inference's inputs."""

    name: str
    module: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _random_like(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return torch.randn(tuple(x.shape), dtype=x.dtype)
        if x.dtype == torch.bool:
            return torch.ones(tuple(x.shape), dtype=torch.bool)
        return torch.randint(0, 1000, tuple(x.shape), dtype=x.dtype)
    if isinstance(x, list | tuple):
        return type(x)(_random_like(v) for v in x)
    if isinstance(x, dict):
        return {k: _random_like(v) for k, v in x.items()}
    return x


#: Zoo transformers -> their builder in :mod:`toolchain.models.transformer`.
_HF_CPU = {"bert_base": "bert_base", "gpt2": "gpt2_small", "vit_b16": "vit_b16"}


def real_model(target: str, seed: int = 0) -> RealModel:
    """Build ``target`` (a zoo model name or ``MODULE:FACTORY``) with random weights and inputs.

    Raises the command line's bad-input errors (exit 2) for an unknown name or a failing factory.
    """
    import torch

    from toolchain.cli.importers import resolve_module
    from toolchain.profiling import _materialise

    torch.manual_seed(seed)
    if target in _HF_CPU:
        # Built on the CPU: their integer buffers (position and token-type ids) would be garbage
        # after materialising a meta module.
        from toolchain.models import transformer

        module, args, kwargs = getattr(transformer, _HF_CPU[target])(device="cpu")
        return RealModel(target, module.eval(), tuple(_random_like(a) for a in args),
                         {k: _random_like(v) for k, v in kwargs.items()})
    # A factory's own weights are kept (built on the CPU); zoo modules come on the meta device and
    # are materialised with random weights.
    module, args, kwargs, name = resolve_module(target, None, "float32", meta=False)
    module = _materialise(module, "cpu")
    args = tuple(_random_like(a) for a in args)
    kwargs = {k: _random_like(v) for k, v in kwargs.items()}
    return RealModel(name, module, args, kwargs)
