"""A small network with a residual and a concatenation branch, as a module and as an ONNX graph.

``Branchy`` is the importers' reference case: its FLOPs and bytes are derived by hand in
``tests/test_import_torch.py``, and :func:`branchy_onnx` builds the same network directly with
``onnx.helper`` (no exporter needed) so that both importers can be compared layer by layer.
It is also the zoo's smallest model, small enough for exhaustive search.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Branchy(nn.Module):
    """stem conv → BN → ReLU → (conv → ReLU) + skip → concat with the skip → max pool → linear."""

    def __init__(self, channels: int = 8, image: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * channels * (image // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv(x)))
        z = self.relu(self.conv2(y)) + y
        c = torch.cat([z, y], 1)
        return self.fc(torch.flatten(self.pool(c), 1))


def branchy(channels: int = 8, image: int = 8) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The module on the meta device and a meta example input of shape ``[1, 3, image, image]``."""
    with torch.device("meta"):
        return Branchy(channels, image), (torch.zeros(1, 3, image, image),)


def branchy_onnx(channels: int = 8, image: int = 8, num_classes: int = 10) -> Any:
    """:class:`Branchy` as an ``onnx.ModelProto`` (opset 17), node names equal to the torch layer ids."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, h = channels, image
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> Any:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [
        init("conv.weight", c, 3, 3, 3), init("conv.bias", c),
        init("bn.weight", c), init("bn.bias", c), init("bn.mean", c), init("bn.var", c),
        init("conv2.weight", c, c, 3, 3), init("conv2.bias", c),
        init("fc.weight", num_classes, 2 * c * (h // 2) ** 2), init("fc.bias", num_classes),
    ]
    conv: dict[str, Any] = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["t_conv"], name="conv", **conv),
        helper.make_node("BatchNormalization", ["t_conv", "bn.weight", "bn.bias", "bn.mean", "bn.var"],
                         ["t_bn"], name="bn"),
        helper.make_node("Relu", ["t_bn"], ["t_relu"], name="relu"),
        helper.make_node("Conv", ["t_relu", "conv2.weight", "conv2.bias"], ["t_conv2"], name="conv2", **conv),
        helper.make_node("Relu", ["t_conv2"], ["t_relu1"], name="relu@1"),
        helper.make_node("Add", ["t_relu1", "t_relu"], ["t_add"], name="add"),
        helper.make_node("Concat", ["t_add", "t_relu"], ["t_cat"], name="cat", axis=1),
        helper.make_node("MaxPool", ["t_cat"], ["t_pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["t_pool"], ["t_flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["t_flat", "fc.weight", "fc.bias"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, h])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, num_classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model
