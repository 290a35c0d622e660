"""Import and profiling times: ResNet-50 and GPT-2 small through the PyTorch importer, and a CPU profile.

For each model the table shows the time to build it on the meta device, the time of
``torch.export`` plus decomposition alone, and the whole import (trace, FLOP counting, grouping,
model dict), with the ratio import / export: the importer's own work on top of torch's tracer.
The profiling rows time ``profile_module`` on ResNet-18 (3x224x224, CPU, warm-up 1, 5 repeats)
and compare the sum of per-layer medians with the eager forward pass (op-by-op execution costs
interpreter overhead and loses fusion, so the ratio is >= 1).

Run: ``.venv/bin/python benchmarks/import.py``; numbers are recorded in ``benchmarks/README.md``.
Never used in tests (no timing assertions anywhere).
"""

from __future__ import annotations

import time
import warnings


def _import_row(name: str) -> tuple[str, int, float, float, float]:
    import torch

    from toolchain.importers.pytorch import from_module
    from toolchain.models import MODELS

    t0 = time.perf_counter()
    module, args, kwargs = MODELS[name].build()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.export.export(module, args, kwargs=kwargs).run_decompositions()
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = from_module(module, args, example_kwargs=kwargs, name=name)
    t_import = time.perf_counter() - t0
    return name, len(model["layers"]), t_build, t_export, t_import


def main() -> None:
    """Print the benchmark tables."""
    import torch

    from toolchain.models import MODELS
    from toolchain.profiling import profile_module

    # Warm torch's tracer up once so the first row is not charged for it.
    _import_row("branchy")
    print("| model | layers | build s | export+decompose s | import s | import / export |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("resnet50", "gpt2"):
        n, layers, tb, te, ti = _import_row(name)
        print(f"| {n} | {layers} | {tb:.2f} | {te:.2f} | {ti:.2f} | {ti / te:.2f} |")

    module, args, _ = MODELS["resnet18"].build()
    t0 = time.perf_counter()
    prof = profile_module(module, args, repeats=5, warmup=1)
    wall = time.perf_counter() - t0
    layer_sum = sum(t.median_s for t in prof.layers.values())
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| profile | layers | runs | wall s | eager forward ms | sum of layer medians ms | sum / eager |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| resnet18 cpu | {len(prof.layers)} | 1+5 | {wall:.2f} | {prof.eager_median_s * 1e3:.1f} | "
          f"{layer_sum * 1e3:.1f} | {layer_sum / prof.eager_median_s:.2f} |")


if __name__ == "__main__":
    main()
