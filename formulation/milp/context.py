"""Shared state of one MILP build: the instance, the model, and the index tables builders leave.

Builders run in a fixed order (:func:`formulation.milp.build.build_milp`): placement, shipping,
latency, throughput, energy, cost, constraints, objective. Each reads what earlier ones left here
(e.g. the transfer table of :mod:`formulation.milp.shipping`) and adds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulation.milp.model import LinearModel, safe_names
from formulation.model import BoolArray, FloatArray, Instance, IntArray


@dataclass
class Transfers:
    """Every transfer the model can make: tensor ``t`` sent once from device ``a`` to ``b``.

    Transfer ``i`` happens exactly when column ``col[i]`` is 1 (a shipping variable, or the
    placement variable ``x[t, a]`` for a model output sent to the sink). Figures are SI.
    """

    tensor: IntArray
    src: IntArray
    dst: IntArray
    col: IntArray
    occupied_s: FloatArray
    """Link busy time ``bytes / bandwidth(a, b)``."""
    duration_s: FloatArray
    """Transfer time ``latency(a, b) + bytes / bandwidth(a, b)``."""
    bytes: FloatArray

    @classmethod
    def empty(cls) -> Transfers:
        """No transfer."""
        z = np.zeros(0, dtype=np.int64)
        f = np.zeros(0)
        return cls(z, z, z, z, f, f, f)

    def __len__(self) -> int:
        return int(self.tensor.size)


@dataclass
class MilpContext:
    """Everything builders share (see the module docstring).

    Attributes
    ----------
    inst : Instance
    model : LinearModel
    layer_names, device_names, tensor_names : list of str
        LP-safe identifiers used in column and row names.
    x : (n, k) int array
        Column of the placement variable ``x[v, d]``, or -1 where the pair is forbidden.
    allowed : (n, k) bool array
        Pairs that have a placement variable.
    transfers : Transfers
        Filled by :mod:`formulation.milp.shipping`.
    pairs : dict
        ``(u, v) -> {(a, b): column}`` of the edge-pair variables ``y`` (:mod:`formulation.milp.pairs`);
        empty when the model is built without them.
    start : (n,) int array or None
        Start-time columns of the parallel schedule model.
    order : dict
        ``(u, v) -> column`` of the order variable ``o[u, v]`` (1: u runs before v).
    metric_cols : dict
        ``metric name -> column`` of the variables ``latency``, ``period``, ``energy``, ``cost``.
    energy_cols : dict
        ``device index -> column`` of the per-device energy variables ``E[d]``.
    horizon_s : float
        Upper bound on every finish time used by the schedule model (0 when not built).
    """

    inst: Instance
    model: LinearModel
    layer_names: list[str]
    device_names: list[str]
    tensor_names: list[str]
    x: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    allowed: BoolArray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    transfers: Transfers = field(default_factory=Transfers.empty)
    pair_mode: bool = True
    pairs: dict[tuple[int, int], dict[tuple[int, int], int]] = field(default_factory=dict)
    start: IntArray | None = None
    order: dict[tuple[int, int], int] = field(default_factory=dict)
    metric_cols: dict[str, int] = field(default_factory=dict)
    energy_cols: dict[int, int] = field(default_factory=dict)
    horizon_s: float = 0.0
    units: dict[str, float] | None = None
    """Unit scales for :mod:`solvers.milp.scaling` when the builder sets them (version-2 workloads,
    whose reference placements the version-1 evaluator cannot judge); ``None``: computed there."""
    send_once_terms: dict[tuple[str, int], list[tuple[int, float]]] = field(default_factory=dict)
    """``(kind, device) -> terms`` of the sending time / radio energy of a ``send_once`` device
    (:mod:`formulation.milp.sending`), built once."""

    @classmethod
    def new(cls, inst: Instance) -> MilpContext:
        """An empty context for ``inst`` with LP-safe names."""
        g, s = inst.graph, inst.system
        return cls(
            inst=inst,
            model=LinearModel(safe_names([inst.name])[0]),
            layer_names=safe_names(g.layer_ids),
            device_names=safe_names(s.device_ids),
            tensor_names=safe_names(g.tensor_ids),
        )

    def parallel(self) -> bool:
        """Latency is the makespan of a schedule (execution ``parallel``)."""
        return self.inst.problem.execution == "parallel"

    def compute_terms(self, d: int) -> tuple[IntArray, FloatArray]:
        """Columns and coefficients of device ``d``'s compute time ``sum_v t(v, d) x[v, d]``."""
        vs = np.flatnonzero(self.allowed[:, d])
        return self.x[vs, d], self.inst.time[vs, d].astype(float)

    def layer_time_terms(self, v: int) -> tuple[IntArray, FloatArray]:
        """Columns and coefficients of layer ``v``'s duration ``sum_d t(v, d) x[v, d]``."""
        ds = np.flatnonzero(self.allowed[v])
        return self.x[v, ds], self.inst.time[v, ds].astype(float)
