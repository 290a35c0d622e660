"""Hypothesis strategies: random tiny instances covering every feature of the cost model."""

from __future__ import annotations

from hypothesis import strategies as st

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


@st.composite
def graphs(draw: st.DrawFn, max_layers: int = 6) -> Graph:
    """A random DAG: each layer reads 1-2 earlier tensors (model inputs or layers)."""
    n = draw(st.integers(1, max_layers))
    m = draw(st.integers(1, 2))
    inputs = [ModelInput(f"in{j}", draw(st.sampled_from([0.0, 1e3, 5e4, 2e5]))) for j in range(m)]
    names = [i.id for i in inputs]
    layers = []
    for v in range(n):
        k = draw(st.integers(1, min(2, len(names))))
        ins = tuple(draw(st.lists(st.sampled_from(names), min_size=k, max_size=k, unique=True)))
        layers.append(
            Layer(
                f"L{v}",
                "op",
                ins,
                flops=draw(st.sampled_from([0.0, 1e8, 5e8, 1e9, 3e9])),
                output_bytes=draw(st.sampled_from([1e3, 1e4, 1e5, 4e5])),
                param_bytes=draw(st.sampled_from([0.0, 1e5, 1e6])),
                workspace_bytes=draw(st.sampled_from([0.0, 1e4])),
            )
        )
        names.append(f"L{v}")
    return Graph("g", inputs, layers)


@st.composite
def systems(draw: st.DrawFn, max_devices: int = 3) -> System:
    """2-3 devices, random figures; links possibly one-way or missing (never from the source)."""
    k = draw(st.integers(2, max_devices))
    devs = [
        Device(
            f"d{i}",
            draw(st.sampled_from([1e9, 2e9, 1e10])),
            memory_bandwidth_bytes_per_s=draw(st.sampled_from([None, None, 1e8])),
            memory_bytes=draw(st.sampled_from([float("inf"), 3e6, 1.5e6])),
            power_active_w=draw(st.sampled_from([0.0, 2.0, 5.0])),
            power_idle_w=draw(st.sampled_from([0.0, 0.5])),
            price_usd_per_s=draw(st.sampled_from([0.0, 0.5])),
            trusted=(i == 0) or draw(st.booleans()),
        )
        for i in range(k)
    ]
    links = []
    for a in range(k):
        for b in range(a + 1, k):
            mode = draw(st.sampled_from(["both", "both", "both", "one", "none"] if a else ["both"]))
            if mode == "none":
                continue
            fig = dict(
                bandwidth_bytes_per_s=draw(st.sampled_from([1e5, 1e6, 1e7])),
                latency_s=draw(st.sampled_from([0.0, 0.005, 0.02])),
                tx_power_w=draw(st.sampled_from([0.0, 1.0])),
                rx_power_w=draw(st.sampled_from([0.0, 0.5])),
                price_usd_per_byte=draw(st.sampled_from([0.0, 1e-7])),
            )
            links.append(Link(f"d{a}", f"d{b}", **fig))
            if mode == "both":
                fig2 = dict(fig, bandwidth_bytes_per_s=draw(st.sampled_from([1e5, 1e6, 1e7])))
                links.append(Link(f"d{b}", f"d{a}", **fig2))
    sink = draw(st.sampled_from(["d0", None, f"d{k - 1}"]))
    return System(devs, links, "d0", sink)


@st.composite
def problems(draw: st.DrawFn, g: Graph, s: System, constraints: bool = True) -> Problem:
    """Any objective, either execution mode, optional constraints."""
    kind = draw(st.sampled_from(["latency", "throughput", "energy", "cost", "weighted"]))
    weights = {}
    if kind == "weighted":
        weights = {"latency": 1.0, draw(st.sampled_from(["energy", "cost", "throughput"])): 0.3}
    devs = list(s.device_ids)
    scope = draw(st.sampled_from([None, (devs[0],)]))
    c = Constraints()
    if constraints:
        c = Constraints(
            memory=draw(st.booleans()),
            deadline_s=draw(st.sampled_from([None, None, 2.0, 0.5])),
            energy_budget_j=draw(st.sampled_from([{}, {}, {devs[0]: 3.0}])),
            allowed=draw(
                st.sampled_from([{}, {g.layer_ids[-1]: (devs[0],)}, {g.layer_ids[0]: tuple(devs[1:])}])
            ),
            private=draw(st.sampled_from([(), (g.input_ids[0],), (g.layer_ids[0],)])),
            contiguous=draw(st.booleans()),
            max_devices=draw(st.sampled_from([None, None, 1, 2])),
        )
    return Problem(
        Objective(kind, weights),  # type: ignore[arg-type]
        execution=draw(st.sampled_from(["sequential", "parallel"])),
        energy_scope=scope,
        constraints=c,
    )


@st.composite
def instances(
    draw: st.DrawFn, max_layers: int = 6, max_devices: int = 3, constraints: bool = True
) -> Instance:
    """A random tiny instance."""
    g = draw(graphs(max_layers))
    s = draw(systems(max_devices))
    return Instance("rand", g, s, draw(problems(g, s, constraints)))
