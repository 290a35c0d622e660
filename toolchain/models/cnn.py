"""Classic CNNs as ``torch.nn.Module``s, built from their published layer definitions.

torchvision cannot be installed beside the CPU build of torch used here, so these follow its
layouts (and the cited papers) layer for layer, with readable module names where torchvision uses
indices (AlexNet and VGG-16 are named like the Caffe models: ``conv1``, ``fc6``...). Weights are
random; import them on the ``meta`` device to avoid allocating them at all.

Sources
-------
* AlexNet: Krizhevsky, Sutskever, Hinton, NeurIPS 2012, in torchvision's single-tower layout
  (64-192-384-256-256 channels).
* VGG-16: Simonyan, Zisserman, ICLR 2015, configuration D.
* ResNet-18/50: He, Zhang, Ren, Sun, CVPR 2016, torchvision v1.5 (stride in the 3x3 conv).
* MobileNetV2: Sandler et al., CVPR 2018, width 1.0.
* GoogLeNet: Szegedy et al., CVPR 2015, torchvision layout (batch norm, 3x3 in the "5x5" branch,
  no auxiliary classifiers).
* Tiny YOLOv2: Redmon, Farhadi, CVPR 2017, darknet ``yolov2-tiny-voc.cfg`` (416x416, 125 outputs).
* NiN: Lin, Chen, Yan, ICLR 2014, the ImageNet model of the Caffe model zoo (224x224).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as tf
from torch import nn

# AlexNet and VGG-16 -------------------------------------------------------------------------------


def alexnet(num_classes: int = 1000) -> nn.Module:
    """AlexNet for 3x224x224 inputs (torchvision's adaptive 6x6 pool is the identity there)."""
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(3, 64, 11, stride=4, padding=2)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(64, 192, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(192, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 256, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(256, 256, 3, padding=1)), ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2)),
        ("flatten", nn.Flatten()),
        ("drop6", nn.Dropout()), ("fc6", nn.Linear(256 * 6 * 6, 4096)), ("relu6", nn.ReLU()),
        ("drop7", nn.Dropout()), ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()),
        ("fc8", nn.Linear(4096, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


def vgg16(num_classes: int = 1000) -> nn.Module:
    """VGG-16 (configuration D) for 3x224x224 inputs."""
    cfg = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    layers: list[tuple[str, nn.Module]] = []
    c_in = 3
    for b, block in enumerate(cfg, start=1):
        for i, c in enumerate(block, start=1):
            layers += [(f"conv{b}_{i}", nn.Conv2d(c_in, c, 3, padding=1)), (f"relu{b}_{i}", nn.ReLU())]
            c_in = c
        layers.append((f"pool{b}", nn.MaxPool2d(2, 2)))
    layers += [
        ("flatten", nn.Flatten()),
        ("fc6", nn.Linear(512 * 7 * 7, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout()),
        ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout()),
        ("fc8", nn.Linear(4096, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))


# ResNet -------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, c_in: int, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.downsample = _projection(c_in, c, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision v1.5), 1x1 expand by 4, plus shortcut."""

    expansion = 4

    def __init__(self, c_in: int, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c * 4)
        self.relu = nn.ReLU()
        self.downsample = _projection(c_in, c * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """ResNet stem, four stages and classifier (He et al., CVPR 2016)."""

    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, block: Any, depths: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        for i, (c, n) in enumerate(zip([64, 128, 256, 512], depths, strict=True), start=1):
            blocks = []
            for j in range(n):
                blocks.append(block(c_in, c, 2 if (j == 0 and i > 1) else 1))
                c_in = c * block.expansion
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> nn.Module:
    """ResNet-18."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes: int = 1000) -> nn.Module:
    """ResNet-50."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


# MobileNetV2 --------------------------------------------------------------------------------------


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(c_out)]
    if act:
        mods.append(nn.ReLU6())
    return nn.Sequential(*mods)


class InvertedResidual(nn.Module):
    """Expand 1x1, depthwise 3x3, project 1x1 (linear), residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        mods: list[nn.Module] = [] if expand == 1 else [_conv_bn(c_in, hidden, 1)]
        mods += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, c_out, 1, act=False)]
        self.conv = nn.Sequential(*mods)
        self.use_res = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width 1.0, 3x224x224."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                   (6, 160, 3, 2), (6, 320, 1, 1)]
        feats: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        c_in = 32
        for t, c, n, s in setting:
            for i in range(n):
                feats.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        feats.append(_conv_bn(c_in, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def mobilenet_v2(num_classes: int = 1000) -> nn.Module:
    """MobileNetV2."""
    return MobileNetV2(num_classes)


# GoogLeNet ----------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3), ReLU."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tf.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels."""

    def __init__(self, c_in: int, b1: int, b2r: int, b2: int, b3r: int, b3: int, b4: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(c_in, b1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(c_in, b2r, 1), BasicConv2d(b2r, b2, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(c_in, b3r, 1), BasicConv2d(b3r, b3, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(c_in, b4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1 (torchvision layout, no auxiliary classifiers), 3x224x224."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, 7, 2, 3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for name in ("4a", "4b", "4c", "4d", "4e"):
            x = getattr(self, f"inception{name}")(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


def googlenet(num_classes: int = 1000) -> nn.Module:
    """GoogLeNet."""
    return GoogLeNet(num_classes)


# Tiny YOLOv2 and NiN ------------------------------------------------------------------------------


def tiny_yolov2(num_outputs: int = 125) -> nn.Module:
    """Tiny YOLOv2 (darknet ``yolov2-tiny-voc.cfg``) for 3x416x416 inputs.

    Every 3x3 convolution has batch norm and a leaky ReLU (slope 0.1). The sixth max pool (size 2,
    stride 1) keeps 13x13 as darknet does, by padding one row and column on the far side.
    """
    layers: list[tuple[str, nn.Module]] = []
    c_in = 3
    for i, c in enumerate([16, 32, 64, 128, 256, 512, 1024, 1024], start=1):
        layers += [(f"conv{i}", nn.Conv2d(c_in, c, 3, 1, 1, bias=False)), (f"bn{i}", nn.BatchNorm2d(c)),
                   (f"leaky{i}", nn.LeakyReLU(0.1))]
        if i <= 5:
            layers.append((f"pool{i}", nn.MaxPool2d(2, 2)))
        elif i == 6:
            layers += [("pad6", nn.ZeroPad2d((0, 1, 0, 1))), ("pool6", nn.MaxPool2d(2, 1))]
        c_in = c
    layers.append(("conv9", nn.Conv2d(c_in, num_outputs, 1)))
    return nn.Sequential(OrderedDict(layers))


def nin(num_classes: int = 1000) -> nn.Module:
    """Network in Network for ImageNet (Caffe model zoo layout), 3x224x224."""
    spec: list[str | tuple[str, int, int, int, int, int]] = [
        ("conv1", 3, 96, 11, 4, 0), ("cccp1", 96, 96, 1, 1, 0), ("cccp2", 96, 96, 1, 1, 0), "pool1",
        ("conv2", 96, 256, 5, 1, 2), ("cccp3", 256, 256, 1, 1, 0), ("cccp4", 256, 256, 1, 1, 0), "pool2",
        ("conv3", 256, 384, 3, 1, 1), ("cccp5", 384, 384, 1, 1, 0), ("cccp6", 384, 384, 1, 1, 0), "pool3",
        ("conv4", 384, 1024, 3, 1, 1), ("cccp7", 1024, 1024, 1, 1, 0), ("cccp8", 1024, num_classes, 1, 1, 0),
    ]
    layers: list[tuple[str, nn.Module]] = []
    for s in spec:
        if isinstance(s, str):
            layers.append((s, nn.MaxPool2d(3, 2, ceil_mode=True)))
            continue
        name, c_in, c_out, k, stride, pad = s
        layers += [(name, nn.Conv2d(c_in, c_out, k, stride, pad)), (f"relu_{name}", nn.ReLU())]
    layers += [("pool4", nn.AvgPool2d(6, 1)), ("flatten", nn.Flatten())]
    return nn.Sequential(OrderedDict(layers))
