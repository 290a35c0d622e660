"""Layer definitions of the two models of the reproduction, from their published configurations.

* YOLOv2 at 608x608 (darknet ``cfg/yolov2.cfg``; Redmon and Farhadi, "YOLO9000: Better, Faster,
  Stronger", CVPR 2017): DeepThings fuses its first 16 layers (12 convolutions, 4 max pools;
  Zhao et al., IEEE TCAD 37(11), 2018, Sec. VI, and ``-l 16`` in the DeepThings repository).
  The remaining 15 layers (routes and reorg included) are one ``tail`` node here, 36.94 GFLOP.
* VGG-16 at 224x224 (Simonyan and Zisserman, ICLR 2015, configuration D), MoDNN's model
  (Mao et al., DATE 2017): 13 convolutions, 5 max pools, 3 fully connected layers.

FLOP count a multiply-add as 2 (the importers' convention); batch norm and activations are folded
into the convolutions, as darknet and the MoDNN implementation run them; tensors are float32.
"""

from __future__ import annotations

from typing import Any

from formulation.model import Layer

BYTES = 4


def _conv(lid: str, src: str, c_in: int, c_out: int, h: int, k: int, stride: int = 1) -> tuple[Layer, int]:
    pad = k // 2
    h_out = (h + 2 * pad - k) // stride + 1
    attrs: dict[str, Any] = {
        "kernel": [k, k], "stride": [stride, stride], "padding": [pad, pad], "dilation": [1, 1],
        "shape_in": [1, c_in, h, h], "shape_out": [1, c_out, h_out, h_out],
    }
    flops = 2.0 * c_out * h_out * h_out * c_in * k * k
    params = float(BYTES * (c_out * c_in * k * k + c_out))
    return Layer(lid, "conv2d", (src,), flops, float(BYTES * c_out * h_out * h_out), params, attrs=attrs), h_out


def _pool(lid: str, src: str, c: int, h: int) -> tuple[Layer, int]:
    h_out = h // 2
    attrs = {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "shape_in": [1, c, h, h],
             "shape_out": [1, c, h_out, h_out]}
    return Layer(lid, "max_pool2d", (src,), float(c * h_out * h_out * 4), float(BYTES * c * h_out * h_out),
                 attrs=attrs), h_out


def _stack(plan: list[tuple[str, int, int]], src: str, c: int, h: int) -> tuple[list[Layer], str, int, int]:
    """``plan`` rows: (id, filters, kernel) with filters 0 for a 2x2/2 max pool."""
    layers = []
    for lid, filters, k in plan:
        if filters == 0:
            lay, h = _pool(lid, src, c, h)
        else:
            lay, h = _conv(lid, src, c, filters, h, k)
            c = filters
        layers.append(lay)
        src = lid
    return layers, src, c, h


#: darknet layers 0-15 of yolov2.cfg: (id, filters, size); filters 0 is a 2x2/2 max pool.
YOLOV2_FIRST16 = [
    ("conv0", 32, 3), ("max1", 0, 2), ("conv2", 64, 3), ("max3", 0, 2),
    ("conv4", 128, 3), ("conv5", 64, 1), ("conv6", 128, 3), ("max7", 0, 2),
    ("conv8", 256, 3), ("conv9", 128, 1), ("conv10", 256, 3), ("max11", 0, 2),
    ("conv12", 512, 3), ("conv13", 256, 1), ("conv14", 512, 3), ("conv15", 256, 1),
]

#: FLOP of darknet layers 16-30 of yolov2.cfg at 608x608 (2 per multiply-add), summed:
#: convs 16, 18-24, 26, 29, 30 (3x3/1x1 at 38x38 and 19x19; routes and reorg move data only).
YOLOV2_TAIL_FLOPS = 2.0 * (
    1444 * 512 * 256 * 9  # 16
    + 361 * 1024 * 512 * 9 + 361 * 512 * 1024 + 361 * 1024 * 512 * 9 + 361 * 512 * 1024  # 18-21
    + 361 * 1024 * 512 * 9 + 2 * 361 * 1024 * 1024 * 9  # 22-24
    + 1444 * 64 * 512  # 26
    + 361 * 1024 * 1280 * 9 + 361 * 425 * 1024  # 29-30
)


def yolov2(with_tail: bool = True) -> tuple[list[Layer], float]:
    """YOLOv2-608 layers 0-15 (and the rest as one ``tail`` node); returns layers and input bytes."""
    layers, last, _, _ = _stack(YOLOV2_FIRST16, "image", 3, 608)
    if with_tail:
        out = float(BYTES * 425 * 19 * 19)
        layers.append(Layer("tail", "yolo_tail", (last,), YOLOV2_TAIL_FLOPS, out, 50_000_000.0 * BYTES))
    return layers, float(BYTES * 3 * 608 * 608)


VGG16_CONVS = [
    ("conv1_1", 64, 3), ("conv1_2", 64, 3), ("pool1", 0, 2),
    ("conv2_1", 128, 3), ("conv2_2", 128, 3), ("pool2", 0, 2),
    ("conv3_1", 256, 3), ("conv3_2", 256, 3), ("conv3_3", 256, 3), ("pool3", 0, 2),
    ("conv4_1", 512, 3), ("conv4_2", 512, 3), ("conv4_3", 512, 3), ("pool4", 0, 2),
    ("conv5_1", 512, 3), ("conv5_2", 512, 3), ("conv5_3", 512, 3), ("pool5", 0, 2),
]


def vgg16(with_fc: bool = True) -> tuple[list[Layer], float]:
    """VGG-16 (configuration D) at 224x224; returns layers and input bytes."""
    layers, last, c, h = _stack(VGG16_CONVS, "image", 3, 224)
    if with_fc:
        dims = [(c * h * h, 4096, "fc6"), (4096, 4096, "fc7"), (4096, 1000, "fc8")]
        for n_in, n_out, lid in dims:
            layers.append(Layer(lid, "linear", (last,), 2.0 * n_in * n_out, float(BYTES * n_out),
                                float(BYTES * (n_in * n_out + n_out))))
            last = lid
    return layers, float(BYTES * 3 * 224 * 224)
