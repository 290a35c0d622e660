"""Hypothesis strategies: random tiny version-2 instances (docs/instance-format.md §9) as file data."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

OBJECTIVES = ["latency", "latency", "energy", "cost", "throughput", {"weighted": {"latency": 1.0, "energy": 0.1}}]


@st.composite
def models(draw: st.DrawFn, name: str, max_layers: int = 2) -> dict[str, Any]:
    """A model of 1..max_layers layers: a chain, or two branches from the input when there are two."""
    n = draw(st.integers(1, max_layers))
    branch = n == 2 and draw(st.booleans())
    layers = []
    for v in range(n):
        inputs = ["x"] if v == 0 or branch else [f"{name}{v - 1}"]
        layers.append(
            {
                "id": f"{name}{v}",
                "op": "op",
                "inputs": inputs,
                "flops": draw(st.sampled_from([0.0, 1e8, 5e8, 2e9])),
                "output_bytes": draw(st.sampled_from([1e3, 1e5, 4e5])),
                "param_bytes": draw(st.sampled_from([0.0, 1e5, 1e6])),
            }
        )
    return {"inputs": [{"id": "x", "bytes": draw(st.sampled_from([0.0, 1e4, 2e5]))}], "layers": layers}


@st.composite
def v2_data(draw: st.DrawFn, contention: str, max_total_layers: int = 4, rates: bool | None = None) -> dict[str, Any]:
    """A version-2 instance with 1-3 requests, 2-3 devices and at most ``max_total_layers`` layers in all."""
    k = draw(st.integers(2, 3))
    devices = [
        {
            "id": f"d{j}",
            "compute": draw(st.sampled_from([1e9, 1e10, 5e10])),
            "power_active": draw(st.sampled_from([0.0, 1.0, 3.0])),
            "power_idle": draw(st.sampled_from([0.0, 0.2])),
            "price": draw(st.sampled_from([0.0, 1e-3])),
            "memory": draw(st.sampled_from([None, None, 1.5e6])),
            "trusted": j == 0,
        }
        for j in range(k)
    ]
    devices = [{key: val for key, val in d.items() if val is not None} for d in devices]
    links = []
    for a in range(k):
        for b in range(a + 1, k):
            if (a == 0 and b == 1) or draw(st.booleans()):
                links.append(
                    {
                        "from": f"d{a}",
                        "to": f"d{b}",
                        "bandwidth": draw(st.sampled_from([1e5, 1e6, 1e7])),
                        "latency": draw(st.sampled_from([0.0, 0.01])),
                        "tx_power": draw(st.sampled_from([0.0, 1.0])),
                        "rx_power": draw(st.sampled_from([0.0, 0.5])),
                        "price": draw(st.sampled_from([0.0, 1e-9])),
                        "bidirectional": draw(st.sampled_from([True, True, False])),
                    }
                )
    n_models = draw(st.integers(1, 2))
    mods = {f"m{i}": draw(models(f"m{i}_", 2)) for i in range(n_models)}
    requests: list[dict[str, Any]] = []
    total = 0
    use_rates = draw(st.booleans()) if rates is None else rates
    for r in range(draw(st.integers(1, 3))):
        m = draw(st.sampled_from(sorted(mods)))
        size = len(mods[m]["layers"])
        if total + size > max_total_layers:
            break
        total += size
        req: dict[str, Any] = {"id": f"r{r}", "model": m, "source": f"d{draw(st.integers(0, k - 1))}"}
        if draw(st.booleans()):
            req["sink"] = f"d{draw(st.integers(0, k - 1))}"
        req["weight"] = draw(st.sampled_from([1, 1, 2]))
        req["release"] = draw(st.sampled_from([0.0, 0.0, 0.05]))
        if draw(st.integers(0, 4)) == 0:
            req["deadline"] = draw(st.sampled_from([0.2, 1.0]))
        if use_rates:
            req["rate"] = draw(st.sampled_from([0.5, 2.0]))
        if draw(st.integers(0, 5)) == 0:
            req["allowed"] = {mods[m]["layers"][0]["id"]: [f"d{draw(st.integers(0, k - 1))}"]}
        if draw(st.integers(0, 5)) == 0:
            req["private"] = ["x"]
        requests.append(req)
    if not requests:  # the first model alone was too large: keep one request of its first layer
        m = sorted(mods)[0]
        mods[m]["layers"] = mods[m]["layers"][:1]
        requests = [{"id": "r0", "model": m, "source": "d0"}]
    return {
        "dnnpart": 2,
        "name": "random-v2",
        "models": mods,
        "system": {"devices": devices, "links": links, "routing": draw(st.sampled_from(["direct", "shortest"]))},
        "workload": requests,
        "problem": {
            "objective": draw(st.sampled_from(OBJECTIVES)),
            "aggregate": draw(st.sampled_from(["sum", "max"])),
            "contention": contention,
            "constraints": {"memory": draw(st.sampled_from([True, False, "params"]))},
        },
    }
