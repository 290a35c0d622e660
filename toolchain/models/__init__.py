"""The model zoo's networks: builders and the published totals each one is checked against.

:data:`MODELS` maps a zoo name to a :class:`ZooModel`; :func:`model_dict` imports it (PyTorch
models through :func:`toolchain.importers.pytorch.from_module` on the meta device, analytic
ones directly). torch and transformers are imported only when a torch model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reference:
    """Published totals: conv+linear+matmul GMAC (FLOP/2) and parameters, with tolerance and source."""

    gmac: float
    params: float
    rel_tol: float
    source: str


@dataclass(frozen=True)
class ZooModel:
    """A zoo network: how to build it, what it computes, and its published totals."""

    name: str
    description: str
    build: Callable[[], Any]
    kind: str  # "torch": build() -> (module, args, kwargs); "analytic": build() -> model dict
    reference: Reference


def _cnn(factory: str, image: int = 224) -> Callable[[], Any]:
    def build() -> Any:
        import torch

        from toolchain.models import cnn

        with torch.device("meta"):
            module = getattr(cnn, factory)()
            x = torch.zeros(1, 3, image, image)
        return module, (x,), {}

    return build


def _hf(factory: str) -> Callable[[], Any]:
    def build() -> Any:
        from toolchain.models import transformer

        return getattr(transformer, factory)()

    return build


def _toy() -> Any:
    from toolchain.models.toy import branchy

    module, args = branchy(channels=32, image=224)
    return module, args, {}


def _llm(mode: str, preset: str | None = None, granularity: str = "sublayer", quant: str = "fp16") -> Callable[[], Any]:
    def build() -> Any:
        from toolchain.models.llm import LLAMA_7B, PRESETS, QUANTS, decoder_model

        cfg = PRESETS[preset] if preset else LLAMA_7B
        return decoder_model(cfg, mode=mode, granularity=granularity, quant=QUANTS[quant])  # type: ignore[arg-type]

    return build


_DECODE_MACS = "MACs from L·(block matrices + 2·S·h·e) + d·V, S=1025 (one token after 1024 cached positions)"


_TV = "torchvision model documentation (weights tables: GFLOPS column, which counts multiply-adds, and params)"
MODELS: dict[str, ZooModel] = {m.name: m for m in [
    ZooModel("branchy", "toy CNN with a residual and a concat branch, 3x224x224", _toy, "torch",
             Reference(0.5138, 8.038, 1e-3, "hand count: 32·224²·27 + 32·224²·288 + 2·32·112²·10 MAC")),
    ZooModel("alexnet", "AlexNet, 3x224x224 (Krizhevsky et al., NeurIPS 2012)", _cnn("alexnet"), "torch",
             Reference(0.714, 61.10, 5e-3, "issue acceptance figures; " + _TV)),
    ZooModel("vgg16", "VGG-16, 3x224x224 (Simonyan and Zisserman, ICLR 2015)", _cnn("vgg16"), "torch",
             Reference(15.47, 138.36, 5e-3, "issue acceptance figures; " + _TV)),
    ZooModel("resnet18", "ResNet-18, 3x224x224 (He et al., CVPR 2016)", _cnn("resnet18"), "torch",
             Reference(1.81, 11.69, 5e-3, _TV)),
    ZooModel("resnet50", "ResNet-50, 3x224x224 (He et al., CVPR 2016)", _cnn("resnet50"), "torch",
             Reference(4.09, 25.56, 5e-3, "issue acceptance figures (~4.1 GMAC, 25.6 M); " + _TV)),
    ZooModel("mobilenet_v2", "MobileNetV2, 3x224x224 (Sandler et al., CVPR 2018)", _cnn("mobilenet_v2"), "torch",
             Reference(0.30, 3.50, 1e-2, _TV)),
    ZooModel("googlenet", "GoogLeNet / Inception v1, 3x224x224 (Szegedy et al., CVPR 2015)", _cnn("googlenet"),
             "torch", Reference(1.50, 6.62, 5e-3, _TV)),
    ZooModel("tiny_yolov2", "Tiny YOLOv2 (VOC), 3x416x416 (Redmon and Farhadi, CVPR 2017)",
             _cnn("tiny_yolov2", 416), "torch",
             Reference(3.485, 15.86, 5e-3, "darknet reports 6.97 BFLOPs (2 per multiply-add) for yolov2-tiny-voc.cfg; "
                       "parameters counted from the cfg")),
    ZooModel("nin", "Network in Network (ImageNet), 3x224x224 (Lin et al., ICLR 2014)", _cnn("nin"), "torch",
             Reference(1.10, 7.60, 5e-3, "counted from the Caffe model-zoo NIN-ImageNet prototxt (7.6 M parameters)")),
    ZooModel("bert_base", "BERT-base encoder, 128 tokens (Devlin et al., NAACL 2019)", _hf("bert_base"), "torch",
             Reference(11.17, 109.48, 5e-3, "110 M parameters (Devlin et al.); MACs from 12·(T·12d² + 2T²d) + d², "
                       "T=128, d=768")),
    ZooModel("gpt2", "GPT-2 small with LM head, 128 tokens (Radford et al., 2019)", _hf("gpt2_small"), "torch",
             Reference(16.11, 124.44, 5e-3, "124 M parameters (Radford et al.); MACs from 12·(T·12d² + 2T²d) + T·d·V, "
                       "T=128, d=768, V=50257")),
    ZooModel("vit_b16", "ViT-B/16, 3x224x224 (Dosovitskiy et al., ICLR 2021)", _hf("vit_b16"), "torch",
             Reference(17.56, 86.57, 5e-3, _TV)),
    ZooModel("llama7b_prefill", "LLaMA-7B-shaped decoder, fp16, 512-token prompt (analytic)", _llm("prefill"),
             "analytic", Reference(3384.7, 6738.4, 1e-2, "6.7 B parameters (Touvron et al., 2023); "
                                   "MACs from 32·(T·(4d²+3df) + 2T²d) + d·V, T=512")),
    ZooModel("llama7b_decode", "LLaMA-7B-shaped decoder, fp16, one token after 1024 (analytic)", _llm("decode"),
             "analytic", Reference(6.877, 6738.4, 1e-2, "6.7 B parameters (Touvron et al., 2023); "
                                   "MACs from 32·(4d²+3df + 2·S·d) + d·V, S=1025")),
    ZooModel("llama2_7b_decode", "LLaMA-2-7B, fp16, one token after 1024, block granularity (analytic)",
             _llm("decode", "llama-2-7b", "block"), "analytic",
             Reference(6.8758, 6740, 2e-3, "6.74 B parameters (Touvron et al., 2023, LLaMA-2); " + _DECODE_MACS)),
    ZooModel("llama2_13b_decode", "LLaMA-2-13B, fp16, one token after 1024, block granularity (analytic)",
             _llm("decode", "llama-2-13b", "block"), "analytic",
             Reference(13.2714, 13000, 2e-3, "13.0 B parameters (Touvron et al., 2023, LLaMA-2); " + _DECODE_MACS)),
    ZooModel("llama2_70b_decode", "LLaMA-2-70B (GQA, 8 KV heads), fp16, one token after 1024, block granularity "
             "(analytic)", _llm("decode", "llama-2-70b", "block"), "analytic",
             Reference(70.0567, 69000, 2e-3, "69.0 B parameters (Touvron et al., 2023, LLaMA-2); " + _DECODE_MACS)),
    ZooModel("llama2_70b_decode_int4", "LLaMA-2-70B, int4 weights (groups of 128, fp16 scales), one token after "
             "1024, block granularity (analytic)", _llm("decode", "llama-2-70b", "block", "int4"), "analytic",
             Reference(70.0567, 69000, 2e-3, "69.0 B parameters (Touvron et al., 2023, LLaMA-2); " + _DECODE_MACS)),
    ZooModel("gpt3_175b_decode_int4", "GPT-3-175B-shaped decoder, int4 weights (groups of 128, fp16 scales), one "
             "token after 1024, block granularity (analytic)", _llm("decode", "gpt-3-175b", "block", "int4"),
             "analytic",
             Reference(176.982, 175000, 5e-3, "175 B parameters (Brown et al., NeurIPS 2020, Table 2.1; ours 174.6 B, "
                       "the published figure is rounded); " + _DECODE_MACS)),
    ZooModel("mixtral_8x7b_decode", "Mixtral-8x7B-shaped mixture of experts (8 experts, top 2), fp16, one token "
             "after 1024, block granularity (analytic)", _llm("decode", "mixtral-8x7b", "block"), "analytic",
             Reference(13.0173, 46700, 3e-3, "46.7 B parameters, 12.9 B active (Jiang et al., 2024); MACs of the "
                       "2 active experts: " + _DECODE_MACS)),
]}


def model_dict(name: str, level: str = "module") -> dict[str, Any]:
    """Import zoo model ``name`` as a spec-form model dict.

    Raises
    ------
    KeyError
        For an unknown name (the message lists the zoo).
    """
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}")
    entry = MODELS[name]
    if entry.kind == "analytic":
        result: dict[str, Any] = entry.build()
        return result
    from toolchain.importers.pytorch import from_module

    module, args, kwargs = entry.build()
    return dict(from_module(module, args, level, example_kwargs=kwargs, name=name))  # type: ignore[arg-type]
