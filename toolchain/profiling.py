"""Measure per-layer latencies on this machine, and fit a device's roofline from them.

:func:`profile_module` traces the module as the importer does (so layer ids match the imported
model), then runs the exported ATen graph node by node under a timing interpreter: each node is
timed with ``time.perf_counter`` (after ``torch.cuda.synchronize`` on CUDA) and the node times
of a layer are summed. After ``warmup`` untimed runs, ``repeats`` timed runs give each layer's
median and spread (quartiles, minimum). The whole module is also timed eagerly, for comparison:
op-by-op execution adds interpreter overhead (microseconds per node) and forgoes fusion, so
the per-layer sum is an upper estimate of the eager time.

:func:`calibrate` fits the two parameters of the roofline time (docs/instance-format.md §5.1)
``t(v) = max(flops(v) / compute, bytes(v) / memory_bandwidth)`` (Williams, Waterman, Patterson,
"Roofline", CACM 2009) to the measured medians by weighted least squares on log times (weights =
each layer's share of the measured time, so that long layers dominate), and reports the fit
error per operator type.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LayerTiming:
    """Measured time of one layer over the timed runs (seconds)."""

    median_s: float
    p25_s: float
    p75_s: float
    min_s: float


@dataclass
class Profile:
    """Per-layer measurements of one module on one device.

    Attributes
    ----------
    device_name : str
        Name of the device in the written ``latency:`` table.
    torch_device : str
        ``cpu`` or ``cuda``.
    repeats, warmup : int
        Timed and untimed runs.
    layers : dict
        Layer id -> :class:`LayerTiming`.
    model : dict
        The imported model (same ids).
    eager_median_s : float
        Median time of the whole module run eagerly.
    host : str
        Machine description.
    """

    device_name: str
    torch_device: str
    repeats: int
    warmup: int
    layers: dict[str, LayerTiming]
    model: dict[str, Any]
    eager_median_s: float
    host: str = field(default_factory=lambda: f"{platform.machine()} {platform.processor() or platform.system()}")

    def latency_table(self) -> dict[str, dict[str, float]]:
        """``{device_name: {layer: median seconds}}``, the ``latency:`` table of docs/instance-format.md §3.4."""
        return {self.device_name: {k: t.median_s for k, t in self.layers.items()}}

    def to_data(self, calibration: Calibration | None = None) -> dict[str, Any]:
        """A YAML-ready mapping: ``latency`` (medians), ``spread`` and optionally ``calibration``."""
        data: dict[str, Any] = {
            "device": self.device_name,
            "measured_on": {"host": self.host, "torch_device": self.torch_device, "repeats": self.repeats,
                            "warmup": self.warmup, "eager_median_s": self.eager_median_s,
                            "sum_of_layer_medians_s": sum(t.median_s for t in self.layers.values())},
            "latency": self.latency_table(),
            "spread": {
                self.device_name: {
                    k: {"p25": t.p25_s, "p75": t.p75_s, "min": t.min_s} for k, t in self.layers.items()
                }
            },
        }
        if calibration is not None:
            data["calibration"] = calibration.to_data()
        return data


def _materialise(module: Any, device: str) -> Any:
    """A module on ``device`` with random weights (meta modules are allocated and re-initialised)."""
    import torch

    if any(p.is_meta for p in module.parameters()) or any(b.is_meta for b in module.buffers()):
        module = module.to_empty(device=device)
        with torch.no_grad():
            for m in module.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
                if hasattr(m, "running_var") and m.running_var is not None:
                    m.running_var.fill_(1.0)
                    m.running_mean.zero_()
            for b in module.buffers():
                if b.is_floating_point() and not torch.isfinite(b).all():
                    b.zero_()
    return module.to(device).eval()


def _to_device(x: Any, device: str) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        if x.is_meta:
            return torch.zeros(x.shape, dtype=x.dtype, device=device)
        return x.to(device)
    if isinstance(x, list | tuple):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def profile_module(
    module: Any,
    example_inputs: Sequence[Any] | Any,
    *,
    device: str = "cpu",
    repeats: int = 10,
    warmup: int = 3,
    level: str = "module",
    example_kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    device_name: str | None = None,
) -> Profile:
    """Time every layer of ``module`` on this machine.

    Parameters
    ----------
    module : torch.nn.Module
        The network (meta modules are materialised with random weights).
    example_inputs : tensor or sequence of tensors
        One inference's inputs (meta tensors become zeros).
    device : {"cpu", "cuda"}
        Where to run; ``cuda`` needs an available GPU.
    repeats, warmup : int
        Timed runs (at least 1) and untimed runs before them.
    level : {"module", "op"}
        Layer granularity, as in :func:`toolchain.importers.pytorch.from_module`.
    example_kwargs : mapping, optional
        Keyword inputs.
    name : str, optional
        Model name.
    device_name : str, optional
        Device id for the latency table (default: ``host-cpu`` or ``host-cuda``).

    Raises
    ------
    ValueError
        For ``repeats < 1``, ``warmup < 0`` or an unavailable device.
    """
    import torch
    import torch.fx
    from torch.utils import _pytree as pytree

    from toolchain.importers.pytorch import trace_module

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False on this machine")
    args = tuple(example_inputs) if isinstance(example_inputs, list | tuple) else (example_inputs,)
    module = _materialise(module, device)
    args = _to_device(args, device)
    kwargs = _to_device(dict(example_kwargs or {}), device)
    trace = trace_module(module, args, level, example_kwargs=kwargs, name=name, method="export")  # type: ignore[arg-type]
    gm = trace.program.module()
    flat = pytree.tree_flatten((args, kwargs))[0]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    node_layer = trace.node_layer

    class _Timed(torch.fx.Interpreter):
        def __init__(self, g: Any) -> None:
            super().__init__(g)
            self.acc: dict[str, float] = {}

        def run_node(self, n: torch.fx.Node) -> Any:
            layer = node_layer.get(n.name)
            if layer is None or n.op != "call_function":
                return super().run_node(n)
            sync()
            t0 = time.perf_counter()
            out = super().run_node(n)
            sync()
            self.acc[layer] = self.acc.get(layer, 0.0) + time.perf_counter() - t0
            return out

    samples: dict[str, list[float]] = {lay["id"]: [] for lay in trace.model["layers"]}
    eager: list[float] = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            runner = _Timed(gm)
            runner.run(*flat)
            sync()
            t0 = time.perf_counter()
            module(*args, **kwargs)
            sync()
            if i >= warmup:
                eager.append(time.perf_counter() - t0)
                for k in samples:
                    samples[k].append(runner.acc.get(k, 0.0))
    layers = {}
    for k, v in samples.items():
        q25, q75 = np.percentile(v, [25, 75])
        layers[k] = LayerTiming(statistics.median(v), float(q25), float(q75), min(v))
    return Profile(
        device_name or f"host-{device}", device, repeats, warmup, layers, trace.model, statistics.median(eager)
    )


@dataclass(frozen=True)
class OpFit:
    """Fit quality for one operator type: layers, measured and predicted totals, median error."""

    layers: int
    measured_s: float
    predicted_s: float
    median_abs_rel_error: float


@dataclass(frozen=True)
class Calibration:
    """Effective roofline parameters fitted to a profile."""

    compute_flops_per_s: float
    memory_bandwidth_bytes_per_s: float
    per_op: dict[str, OpFit]
    total_measured_s: float
    total_predicted_s: float

    def to_data(self) -> dict[str, Any]:
        """YAML-ready mapping with unit strings for the two fitted figures."""
        return {
            "compute": f"{self.compute_flops_per_s / 1e9:.4g} GFLOP/s",
            "memory_bandwidth": f"{self.memory_bandwidth_bytes_per_s / 1e9:.4g} GB/s",
            "total_measured_s": self.total_measured_s,
            "total_predicted_s": self.total_predicted_s,
            "fit_by_op": {
                op: {"layers": f.layers, "measured_s": f.measured_s, "predicted_s": f.predicted_s,
                     "median_abs_rel_error": f.median_abs_rel_error}
                for op, f in sorted(self.per_op.items())
            },
        }


def layer_work(model: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Ids, FLOP, bytes moved (params + output + distinct inputs) and op of every layer."""
    size = {t["id"]: float(t["bytes"]) for t in model.get("inputs", [])}
    size.update({lay["id"]: float(lay["output_bytes"]) for lay in model["layers"]})
    ids = [lay["id"] for lay in model["layers"]]
    flops = np.array([float(lay["flops"]) for lay in model["layers"]])
    moved = np.array([
        float(lay.get("param_bytes", 0))
        + float(lay["output_bytes"])
        + sum(size[u] for u in dict.fromkeys(lay["inputs"]))
        for lay in model["layers"]
    ])
    return ids, flops, moved, [lay["op"] for lay in model["layers"]]


def calibrate(profile: Profile) -> Calibration:
    """Fit effective ``compute`` and ``memory_bandwidth`` to the profile's medians (see module notes).

    Raises
    ------
    ValueError
        If no layer has both a positive time and positive work.
    """
    from scipy.optimize import minimize

    ids, flops, moved, ops = layer_work(profile.model)
    t = np.array([profile.layers[i].median_s for i in ids])
    ok = (t > 0) & ((flops > 0) | (moved > 0))
    if not ok.any():
        raise ValueError("no layer with a positive measured time and positive work to fit")
    f, m, tm = flops[ok], moved[ok], t[ok]
    w = tm / tm.sum()

    def predict(x: np.ndarray, f_: np.ndarray, m_: np.ndarray) -> np.ndarray:
        return np.maximum(f_ / np.exp(x[0]), m_ / np.exp(x[1]))

    def loss(x: np.ndarray) -> float:
        return float(np.sum(w * (np.log(np.maximum(predict(x, f, m), 1e-30)) - np.log(tm)) ** 2))

    x0 = np.log([max(f.sum(), 1.0) / tm.sum(), max(m.sum(), 1.0) / tm.sum()])
    best = min(
        (minimize(loss, x0 + d, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 4000})
         for d in (np.zeros(2), np.array([1.0, 0.0]), np.array([0.0, 1.0]))),
        key=lambda r: r.fun,
    )
    pred_all = predict(best.x, flops, moved)
    per_op: dict[str, OpFit] = {}
    for op in sorted(set(ops)):
        sel = [i for i, o in enumerate(ops) if o == op and ok[i]]
        if not sel:
            continue
        rel = [abs(pred_all[i] / t[i] - 1.0) for i in sel]
        per_op[op] = OpFit(len(sel), float(t[sel].sum()), float(pred_all[sel].sum()), float(statistics.median(rel)))
    return Calibration(
        float(np.exp(best.x[0])), float(np.exp(best.x[1])), per_op, float(tm.sum()), float(pred_all[ok].sum())
    )
