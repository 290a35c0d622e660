"""Seeded generators of synthetic graphs, systems and instances for tests and benchmarks.

Every generator takes an integer ``seed`` and is deterministic for it (``numpy.random.default_rng``).
Figures are drawn from ranges typical of DNN partitioning papers (layers of 1 MFLOP - 2 GFLOP and
1 kB - 4 MB outputs; devices of 5 GFLOP/s - 10 TFLOP/s; links of 1 - 1000 Mbit/s), all in SI
base units.

Graphs
    :func:`chain` (a path, as in Neurosurgeon and JointDNN), :func:`layered_dag` (random layered
    DAG with bounded fan-in, as in DADS's synthetic evaluation), :func:`resnet_like` (stages of
    residual blocks: a two-layer branch plus a skip edge into an ``add``) and
    :func:`transformer_like` (pre-norm encoder blocks: attention with q/k/v branches, an MLP, two
    residual adds per block).
Systems
    :func:`system` (``k`` heterogeneous devices, fully or partly connected).
Instances
    :func:`instance` (a graph and a system under a problem).
Tiny instances for cross-checking exact solvers against ``brute``
    :func:`random_instance` (at most 7 layers, 3 devices) draws every feature the format has:
    several model inputs, explicit or default outputs, a sink or none, missing link directions,
    asymmetric links, latency-table overrides, roofline devices, zero-FLOP layers, every objective
    (weighted included, non-negative weights), both latency modes and every constraint kind with
    values drawn near the achievable range so they bind (:func:`random_graph`,
    :func:`random_system`). The hypothesis strategies of the tests (``tests/strategies.py``) are
    thin wrappers over the same builders (:func:`tiny_graph`, :func:`tiny_system`,
    :func:`tiny_problem`), fed by hypothesis draws instead of a seeded generator.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TypeVar

import numpy as np

from formulation.model import (
    Constraints,
    Device,
    Graph,
    Instance,
    Layer,
    Link,
    ModelInput,
    Objective,
    Problem,
    System,
)

__all__ = [
    "Chooser",
    "RngChooser",
    "chain",
    "instance",
    "layered_dag",
    "random_graph",
    "random_instance",
    "random_system",
    "resnet_like",
    "system",
    "tiny_graph",
    "tiny_instance",
    "tiny_problem",
    "tiny_system",
    "transformer_like",
]

T = TypeVar("T")


def _layer_figures(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOP, output bytes and parameter bytes of ``n`` layers (log-uniform)."""
    flops = 10 ** rng.uniform(6, 9.3, n)
    out = 10 ** rng.uniform(3, 6.6, n)
    params = np.where(rng.random(n) < 0.6, 10 ** rng.uniform(3, 7, n), 0.0)
    return flops, out, params


def chain(n: int, *, seed: int = 0, input_bytes: float = 602_112.0, name: str | None = None) -> Graph:
    """A chain ``l0 -> l1 -> ... -> l(n-1)`` reading one model input ``x``.

    Parameters
    ----------
    n : int
        Number of layers (>= 1).
    seed : int
        Random seed.
    input_bytes : float
        Size of the model input in bytes.
    name : str, optional
        Graph name (default ``chain-<n>``).
    """
    rng = np.random.default_rng(seed)
    flops, out, params = _layer_figures(rng, n)
    layers = [
        Layer(f"l{i}", "op", (f"l{i - 1}",) if i else ("x",), float(flops[i]), float(out[i]), float(params[i]))
        for i in range(n)
    ]
    return Graph(name or f"chain-{n}", [ModelInput("x", input_bytes)], layers)


def layered_dag(
    n: int,
    *,
    width: int = 8,
    max_fan_in: int = 3,
    seed: int = 0,
    input_bytes: float = 602_112.0,
    name: str | None = None,
) -> Graph:
    """A random layered DAG of ``n`` layers.

    Layers are dealt into levels of 1 to ``width`` layers; each layer reads 1 to ``max_fan_in``
    layers of the two previous levels (the first level reads the model input), and every layer of
    a level is read by the next level (a few layers then read more than ``max_fan_in``), so
    tensors with several consumers are common. Layers of the last level are the outputs.

    Parameters
    ----------
    n : int
        Number of layers (>= 1).
    width : int
        Largest number of layers per level.
    max_fan_in : int
        Largest number of inputs per layer.
    seed : int
        Random seed.
    input_bytes : float
        Size of the model input in bytes.
    name : str, optional
        Graph name (default ``dag-<n>``).
    """
    rng = np.random.default_rng(seed)
    flops, out, params = _layer_figures(rng, n)
    levels: list[list[int]] = []
    i = 0
    while i < n:
        w = int(rng.integers(1, width + 1))
        levels.append(list(range(i, min(n, i + w))))
        i += w
    reads: list[list[int]] = []
    for lev, members in enumerate(levels):
        if not lev:
            reads += [[] for _ in members]
            continue
        prev = levels[lev - 1]
        pool = prev + (levels[lev - 2] if lev >= 2 else [])
        for _ in members:
            f = int(rng.integers(1, min(max_fan_in, len(pool)) + 1))
            # The first input comes from the previous level so that every level hangs together.
            first = int(rng.choice(prev))
            others = [int(u) for u in rng.choice(pool, size=f - 1, replace=False)] if f > 1 else []
            reads.append(list(dict.fromkeys([first, *others])))
        # No dead layers (as in a trained network): every layer of the previous level is read.
        read = {u for v in members for u in reads[v]}
        for u in prev:
            if u not in read:
                reads[int(rng.choice(members))].append(u)
    names = [tuple(f"l{u}" for u in r) if r else ("x",) for r in reads]
    layers = [Layer(f"l{i}", "op", names[i], float(flops[i]), float(out[i]), float(params[i])) for i in range(n)]
    return Graph(name or f"dag-{n}", [ModelInput("x", input_bytes)], layers)


def resnet_like(n: int, *, seed: int = 0, input_bytes: float = 602_112.0, name: str | None = None) -> Graph:
    """A ResNet-like DAG of about ``n`` layers: a stem, then residual blocks.

    Each block reads the previous block's output ``h`` and computes ``a = conv(h)``,
    ``b = conv(a)``, ``h' = add(b, h)`` (the skip edge gives ``h`` two consumers). The blocks form
    four stages as in ResNet; the first block of stages 2-4 downsamples, its skip going through a
    1x1 ``proj`` convolution, and tensor sizes halve, FLOP grow by 10 % and weights by 4x per
    stage. The last layer is a ``linear`` head.

    Parameters
    ----------
    n : int
        Approximate number of layers (>= 5); the result has between ``n - 3`` and ``n`` layers.
    seed : int
        Random seed (jitters FLOP and sizes by up to +-30 %).
    input_bytes : float
        Size of the model input in bytes.
    name : str, optional
        Graph name (default ``resnet-<n>``).
    """
    rng = np.random.default_rng(seed)

    def jit(x: float) -> float:
        return float(x * rng.uniform(0.7, 1.3))

    layers = [Layer("stem", "conv2d", ("x",), jit(1.2e8), jit(8e5), jit(1e4))]
    h = "stem"
    size, flops, params = 8e5, 1e8, 4e4
    # Four stages as in ResNet, whatever the depth: a deep graph repeats blocks, it does not keep
    # shrinking its tensors (which would underflow) or growing its FLOP (which would overflow).
    blocks = max(1, (n - 2) // 3)
    b, stage = 0, 0
    while len(layers) + 4 <= n - 1:
        down = b > 0 and (4 * b) // blocks > stage
        if down:
            stage += 1
            size, flops, params = size / 2, flops * 1.1, params * 4
        a, c, o = f"b{b}a", f"b{b}b", f"b{b}add"
        layers.append(Layer(a, "conv2d", (h,), jit(flops), jit(size), jit(params)))
        layers.append(Layer(c, "conv2d", (a,), jit(flops), jit(size), jit(params)))
        skip = h
        if down:
            skip = f"b{b}proj"
            layers.append(Layer(skip, "conv2d", (h,), jit(flops / 8), jit(size), jit(params / 8)))
        layers.append(Layer(o, "add", (c, skip), jit(size / 4), jit(size)))
        h = o
        b += 1
    layers.append(Layer("head", "linear", (h,), jit(2e6), 4000.0, jit(2e6)))
    return Graph(name or f"resnet-{n}", [ModelInput("x", input_bytes)], layers)


def transformer_like(
    n: int,
    *,
    seed: int = 0,
    tokens: int = 128,
    hidden: int = 768,
    input_bytes: float | None = None,
    name: str | None = None,
) -> Graph:
    """A transformer-encoder-like DAG of about ``n`` layers (Vaswani et al., NeurIPS 2017; pre-norm as in GPT-2).

    An ``embed`` layer, then blocks of 12 layers: ``ln1``; the ``q``, ``k``, ``v`` projections
    (all reading ``ln1``, so its output has three consumers); ``scores = q k^T`` and
    ``attn = softmax(scores) v``; the output projection ``proj``; ``add1 = proj + h`` (skip);
    ``ln2``; ``fc1``, ``fc2`` (4x MLP); ``add2 = fc2 + add1`` (skip). A ``head`` closes the graph.
    Activations are ``tokens x hidden`` float32 tensors, FLOP are ``2 x`` multiply-adds.

    Parameters
    ----------
    n : int
        Approximate number of layers (>= 14); the result has between ``n - 11`` and ``n`` layers.
    seed : int
        Random seed (jitters FLOP and sizes by up to +-20 %).
    tokens, hidden : int
        Sequence length and model width.
    input_bytes : float, optional
        Size of the model input (default: ``tokens`` int64 token ids).
    name : str, optional
        Graph name (default ``transformer-<n>``).
    """
    rng = np.random.default_rng(seed)

    def jit(x: float) -> float:
        return float(x * rng.uniform(0.8, 1.2))

    act = 4.0 * tokens * hidden
    mm = 2.0 * tokens * hidden * hidden
    w = 4.0 * hidden * hidden
    att = 2.0 * tokens * tokens * hidden
    score_bytes = 4.0 * tokens * tokens * 12  # 12 heads of tokens x tokens scores
    layers = [Layer("embed", "embedding", ("x",), jit(tokens * hidden), act, jit(4.0 * 50_000 * hidden))]
    h = "embed"
    b = 0
    while len(layers) + 12 <= n - 1:
        p = f"t{b}"
        blk = [
            Layer(f"{p}ln1", "layernorm", (h,), jit(5 * tokens * hidden), act, 8.0 * hidden),
            Layer(f"{p}q", "linear", (f"{p}ln1",), jit(mm), act, jit(w)),
            Layer(f"{p}k", "linear", (f"{p}ln1",), jit(mm), act, jit(w)),
            Layer(f"{p}v", "linear", (f"{p}ln1",), jit(mm), act, jit(w)),
            Layer(f"{p}scores", "matmul", (f"{p}q", f"{p}k"), jit(att), score_bytes),
            Layer(f"{p}attn", "matmul", (f"{p}scores", f"{p}v"), jit(att), act),
            Layer(f"{p}proj", "linear", (f"{p}attn",), jit(mm), act, jit(w)),
            Layer(f"{p}add1", "add", (f"{p}proj", h), jit(tokens * hidden), act),
            Layer(f"{p}ln2", "layernorm", (f"{p}add1",), jit(5 * tokens * hidden), act, 8.0 * hidden),
            Layer(f"{p}fc1", "linear", (f"{p}ln2",), jit(4 * mm), 4 * act, jit(4 * w)),
            Layer(f"{p}fc2", "linear", (f"{p}fc1",), jit(4 * mm), act, jit(4 * w)),
        ]
        blk.append(Layer(f"{p}add2", "add", (f"{p}fc2", f"{p}add1"), jit(tokens * hidden), act))
        layers += blk
        h = f"{p}add2"
        b += 1
    layers.append(Layer("head", "linear", (h,), jit(2.0 * tokens * hidden * 1000), 4000.0, jit(4.0 * hidden * 1000)))
    ib = float(8 * tokens) if input_bytes is None else input_bytes
    return Graph(name or f"transformer-{n}", [ModelInput("x", ib)], layers)


def system(
    k: int,
    *,
    seed: int = 0,
    link_prob: float = 1.0,
    sink: bool = True,
    memory: bool = False,
    energy: bool = True,
) -> System:
    """``k`` heterogeneous devices ``d0 .. d(k-1)``; ``d0`` is the source (and the sink).

    Compute grows with the device index on average (end device first, cloud last). Each unordered
    device pair is linked (both directions, same figures) with probability ``link_prob``; pairs
    with ``d0`` are always linked so that every device can be reached from the source.

    Parameters
    ----------
    k : int
        Number of devices (>= 1).
    seed : int
        Random seed.
    link_prob : float
        Probability that a pair not involving ``d0`` is linked.
    sink : bool
        Make ``d0`` the sink (outputs must return to it).
    memory : bool
        Give devices finite memory (64 MiB - 8 GiB); default unlimited.
    energy : bool
        Give devices active/idle power and links radio power.
    """
    rng = np.random.default_rng(seed)
    comp = np.sort(10 ** rng.uniform(9.7, 13, k))
    devices = [
        Device(
            f"d{j}",
            float(comp[j]),
            memory_bytes=float(2 ** rng.uniform(26, 33)) if memory else float("inf"),
            power_active_w=float(rng.uniform(2, 300)) if energy else 0.0,
            power_idle_w=float(rng.uniform(0.1, 5)) if energy else 0.0,
            price_usd_per_s=float(rng.uniform(0, 1e-3)) if j else 0.0,
            trusted=bool(j == 0 or rng.random() < 0.5),
        )
        for j in range(k)
    ]
    links = []
    for a in range(k):
        for b in range(a + 1, k):
            if a and rng.random() >= link_prob:
                continue
            bw = float(10 ** rng.uniform(5.1, 8.1))
            lat = float(rng.uniform(0, 0.05))
            tx, rx = (float(rng.uniform(0.1, 2)), float(rng.uniform(0.05, 1))) if energy else (0.0, 0.0)
            price = float(rng.uniform(0, 1e-10))
            links.append(Link(f"d{a}", f"d{b}", bw, lat, tx, rx, price))
            links.append(Link(f"d{b}", f"d{a}", bw, lat, tx, rx, price))
    return System(devices, links, "d0", "d0" if sink else None)


def instance(graph: Graph, sys: System, problem: Problem | None = None, name: str | None = None) -> Instance:
    """An :class:`~formulation.model.Instance` of ``graph`` on ``sys`` (default problem: sequential latency)."""
    return Instance(name or f"{graph.name}-k{sys.k}", graph, sys, problem or Problem())


# -- tiny random instances for cross-checking exact solvers ------------------------------------------

METRICS = ("latency", "throughput", "energy", "cost")


def random_graph(rng: np.random.Generator, n: int, m: int) -> Graph:
    """A random DAG of ``n`` layers reading ``m`` model inputs (every layer reads something)."""
    inputs = [ModelInput(f"in{j}", float(rng.choice([0.0, rng.uniform(1e3, 1e6)], p=[0.1, 0.9]))) for j in range(m)]
    layers = []
    for i in range(n):
        pool = [f"in{j}" for j in range(m)] + [f"L{u}" for u in range(i)]
        k = int(rng.integers(1, min(3, len(pool)) + 1))
        # Prefer recent layers so that graphs are deep rather than star-shaped.
        w = np.array([0.5] * m + [1.0 + u for u in range(i)])
        ins = tuple(rng.choice(pool, size=k, replace=False, p=w / w.sum()).tolist())
        flops = 0.0 if rng.random() < 0.1 else float(rng.uniform(1e7, 3e9))
        layers.append(
            Layer(
                f"L{i}",
                "op",
                ins,
                flops,
                output_bytes=float(rng.uniform(1e3, 2e6)),
                param_bytes=float(rng.choice([0.0, rng.uniform(1e4, 5e6)])),
                workspace_bytes=float(rng.choice([0.0, rng.uniform(1e3, 1e6)], p=[0.7, 0.3])),
            )
        )
    outputs = None
    if rng.random() < 0.3 and n > 1:
        outputs = sorted({f"L{n - 1}", f"L{int(rng.integers(0, n - 1))}"})
    return Graph("rand", inputs, layers, outputs)


def random_system(rng: np.random.Generator, k: int) -> System:
    """``k`` devices, random links (some directions missing), source device 0, sink 0 or none."""
    devs = []
    for d in range(k):
        devs.append(
            Device(
                f"D{d}",
                float(rng.uniform(5e9, 5e11)),
                memory_bandwidth_bytes_per_s=float(rng.uniform(1e9, 1e11)) if rng.random() < 0.3 else None,
                memory_bytes=float(rng.uniform(4e6, 3e7)) if rng.random() < 0.4 else float("inf"),
                power_active_w=float(rng.uniform(0, 50)),
                power_idle_w=float(rng.uniform(0, 5)) if rng.random() < 0.8 else 0.0,
                price_usd_per_s=float(rng.uniform(0, 1e-3)) if rng.random() < 0.5 else 0.0,
                trusted=bool(d == 0 or rng.random() < 0.4),
            )
        )
    links = []
    for a in range(k):
        for b in range(k):
            if a != b and rng.random() < 0.85:
                links.append(
                    Link(
                        f"D{a}",
                        f"D{b}",
                        float(rng.uniform(1e6, 1e8)),
                        float(rng.uniform(0, 0.02)),
                        tx_power_w=float(rng.uniform(0, 3)),
                        rx_power_w=float(rng.uniform(0, 2)),
                        price_usd_per_byte=float(rng.uniform(0, 1e-9)) if rng.random() < 0.5 else 0.0,
                    )
                )
    sink = "D0" if rng.random() < 0.7 else (None if rng.random() < 0.5 else f"D{k - 1}")
    return System(devs, links, "D0", sink)


def random_instance(seed: int, *, max_layers: int = 6, max_devices: int = 3, execution: str | None = None) -> Instance:
    """A random tiny instance (see the module docstring), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, max_layers + 1))
    k = int(rng.integers(2, max_devices + 1))
    g = random_graph(rng, n, int(rng.integers(1, 3)))
    s = random_system(rng, k)
    table = {}
    if rng.random() < 0.3:
        d = s.device_ids[int(rng.integers(0, k))]
        table = {d: {g.layer_ids[int(rng.integers(0, n))]: float(rng.uniform(0, 0.05))}}
    kind = rng.choice(["latency", "throughput", "energy", "cost", "weighted"])
    if kind == "weighted":
        names = rng.choice(METRICS, size=int(rng.integers(2, 4)), replace=False)
        obj = Objective("weighted", MappingProxyType({str(x): float(rng.uniform(0.1, 10)) for x in names}))
    else:
        obj = Objective(str(kind))  # type: ignore[arg-type]
    ex = execution or str(rng.choice(["sequential", "parallel"]))
    scope = None
    if rng.random() < 0.3:
        scope = tuple(s.device_ids[: int(rng.integers(1, k + 1))])
    base = Instance("rand", g, s, Problem(obj, ex, scope), latency_table=MappingProxyType(table))  # type: ignore[arg-type]
    return base.with_problem(Problem(obj, ex, scope, _random_constraints(rng, base)))  # type: ignore[arg-type]


def _random_constraints(rng: np.random.Generator, inst: Instance) -> Constraints:
    """Constraints whose values are drawn from the range of the all-on-one-device placements."""
    from formulation.evaluator import batch_metrics

    g, s = inst.graph, inst.system
    P = np.repeat(np.arange(s.k)[:, None], g.n, axis=1)
    bm = batch_metrics(inst, P)
    L = bm.latency()
    E = bm.energy()
    kw: dict[str, object] = {"memory": bool(rng.random() < 0.8)}
    if rng.random() < 0.3:
        finite = L[np.isfinite(L)]
        kw["deadline_s"] = float(rng.uniform(0.5, 1.2) * (finite.min() if finite.size else 1.0))
    if rng.random() < 0.25:
        d = int(rng.integers(0, s.k))
        kw["energy_budget_j"] = MappingProxyType({s.device_ids[d]: float(rng.uniform(0.3, 1.5) * E[:, d].max())})
    if rng.random() < 0.25:
        v = g.layer_ids[int(rng.integers(0, g.n))]
        kw["allowed"] = MappingProxyType(
            {v: tuple(rng.choice(s.device_ids, size=int(rng.integers(1, s.k + 1)), replace=False).tolist())}
        )
    if rng.random() < 0.2:
        kw["private"] = (g.tensor_ids[int(rng.integers(0, g.n + g.m))],)
    kw["contiguous"] = bool(rng.random() < 0.25)
    if rng.random() < 0.25:
        kw["max_devices"] = int(rng.integers(1, s.k))
    return Constraints(**kw)  # type: ignore[arg-type]


from formulation.generators_tiny import (  # noqa: E402  (re-exported: the builders' historical home)
    Chooser,
    RngChooser,
    tiny_graph,
    tiny_instance,
    tiny_problem,
    tiny_system,
)
