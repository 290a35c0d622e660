"""Transformer models from Hugging Face ``transformers`` configurations, offline, random weights.

Only configuration classes are used (never ``from_pretrained``): the default ``BertConfig``,
``GPT2Config`` and ``ViTConfig`` are BERT-base (Devlin et al., NAACL 2019), GPT-2 small (Radford
et al., 2019) and ViT-B/16 (Dosovitskiy et al., ICLR 2021). Attention is the ``eager``
implementation, so it decomposes into the matrix products and softmax that the importer counts.
Each builder returns ``(module, args, kwargs)`` built on the ``meta`` device unless told otherwise.
"""

from __future__ import annotations

from typing import Any

Built = tuple[Any, tuple[Any, ...], dict[str, Any]]


def _build(cls: Any, cfg: Any, device: str) -> Any:
    import torch

    with torch.device(device):
        return cls(cfg).eval()


def bert_base(seq_len: int = 128, device: str = "meta") -> Built:
    """BERT-base encoder with pooler (12 layers, d=768, 12 heads), one sequence of ``seq_len`` tokens."""
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(attn_implementation="eager")  # type: ignore[call-arg]
    ids = torch.zeros(1, seq_len, dtype=torch.long, device=device)
    return _build(BertModel, cfg, device), (ids,), {}


def gpt2_small(seq_len: int = 128, device: str = "meta") -> Built:
    """GPT-2 small with its (tied) language-model head, one prompt of ``seq_len`` tokens, no KV cache."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(attn_implementation="eager")  # type: ignore[call-arg]
    ids = torch.zeros(1, seq_len, dtype=torch.long, device=device)
    return _build(GPT2LMHeadModel, cfg, device), (ids,), {"use_cache": False}


def vit_b16(image: int = 224, device: str = "meta") -> Built:
    """ViT-B/16 image classifier (1000 classes) on one 3 x ``image`` x ``image`` image."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(image_size=image, num_labels=1000, attn_implementation="eager")  # type: ignore[call-arg]
    x = torch.zeros(1, 3, image, image, device=device)
    return _build(ViTForImageClassification, cfg, device), (x,), {}
