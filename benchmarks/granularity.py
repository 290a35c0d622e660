"""Cost of granularity transformations next to one evaluation of the same instance.

Target: a transformation (coarsening or split, provenance included) costs no more than a few
evaluations of the original instance, so it never dominates a solve. The table prints, per case,
the layers before and the nodes after, the transformation time, the time of one ``evaluate`` of
the original (all layers on the source) and their ratio.

Run: ``python benchmarks/granularity.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from formulation.evaluator import evaluate
from formulation.generators import system
from formulation.granularity import apply_granularity, split_spatial
from formulation.granularity.provenance import Transformed
from formulation.model import Graph, Instance, Layer, ModelInput, Problem
from paper_reproductions.deepthings_modnn.models import yolov2


def _timed(fn: Callable[[], Transformed]) -> tuple[Transformed, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def residual(blocks: int) -> Graph:
    """A ResNet-style chain of basic blocks: conv-bn-relu-conv-bn-add(skip)-relu, 7 layers each."""
    layers = [Layer("stem", "conv2d", ("x",), 1e8, 8e5, 1e4)]
    h = "stem"
    for b in range(blocks):
        p = f"l{b}."
        spec = [("conv1", "conv2d", (h,)), ("bn1", "batch_norm", (p + "conv1",)), ("relu1", "relu", (p + "bn1",)),
                ("conv2", "conv2d", (p + "relu1",)), ("bn2", "batch_norm", (p + "conv2",)),
                ("add", "add", (p + "bn2", h)), ("relu2", "relu", (p + "add",))]
        for name, op, ins in spec:
            heavy = op == "conv2d"
            layers.append(Layer(p + name, op, ins, 1e8 if heavy else 2e5, 8e5, 1e5 if heavy else 0.0))
        h = p + "relu2"
    return Graph(f"residual-{blocks}", [ModelInput("x", 6e5)], layers)


def cases() -> list[tuple[str, Instance, Callable[[Instance], Transformed]]]:
    out: list[tuple[str, Instance, Callable[[Instance], Transformed]]] = []
    for blocks in (143, 1428):
        n = 7 * blocks + 1
        inst = Instance(f"resnet-{n}", residual(blocks), system(4), Problem())
        out.append((f"resnet-{n} layer", inst, lambda i: apply_granularity(i, "layer")))
        out.append((f"resnet-{n} block", inst, lambda i: apply_granularity(i, "block")))
    layers, nbytes = yolov2(with_tail=True)
    yolo = Instance("yolov2", Graph("yolov2", [ModelInput("image", nbytes)], layers), system(6), Problem())
    out.append(("yolov2 0-15 tiles 5x5 fused", yolo, lambda i: split_spatial(i, "conv0", "conv15", rows=5, cols=5)))
    out.append(("yolov2 0-15 rows 6 exchange", yolo,
                lambda i: split_spatial(i, "conv0", "conv15", rows=6, mode="exchange")))
    return out


def main() -> None:
    print(f"{'case':<32}{'layers':>8}{'nodes':>8}{'transform s':>13}{'evaluate s':>12}{'ratio':>8}")
    for name, inst, fn in cases():
        t, secs = _timed(lambda fn=fn, inst=inst: fn(inst))  # type: ignore[misc]
        t0 = time.perf_counter()
        evaluate(inst, {v: inst.system.source for v in inst.graph.layer_ids})
        ev = time.perf_counter() - t0
        print(f"{name:<32}{inst.n:>8}{t.instance.n:>8}{secs:>13.3f}{ev:>12.3f}{secs / ev:>8.1f}")


if __name__ == "__main__":
    main()
