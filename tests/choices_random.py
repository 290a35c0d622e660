"""Random tiny instances with layer variants and exits (docs/instance-format.md §11), as file data."""

from __future__ import annotations

from typing import Any

import numpy as np

from formulation.loader import load_instance_data
from formulation.model import Instance

OBJECTIVES = ("latency", "energy", "cost", "accuracy", {"weighted": {"latency": 1.0, "energy": 0.3}})


def random_choice_data(seed: int) -> dict[str, Any]:
    """A model of 3-6 layers (a backbone with up to two side exits), 2-3 devices, a few variants,
    exits chosen (Edgent), with probabilities (BranchyNet) or none, and a random objective and
    constraints."""
    rng = np.random.default_rng(seed)
    mode = ("variants", "choose", "expected")[seed % 3]
    n_main = int(rng.integers(2, 5))
    layers: list[dict[str, Any]] = []
    prev = "x"
    for i in range(n_main):
        lay: dict[str, Any] = {
            "id": f"m{i}",
            "op": "conv2d",
            "inputs": [prev],
            "flops": float(rng.uniform(0.1, 4.0)) * 1e9,
            "param_bytes": float(rng.uniform(0.1, 6.0)) * 1e6,
            "output_bytes": float(rng.uniform(0.01, 1.0)) * 1e6,
        }
        if rng.random() < 0.6:
            lay["variants"] = [
                {
                    "name": "int8",
                    "flops": lay["flops"] * float(rng.uniform(0.3, 0.7)),
                    "param_bytes": lay["param_bytes"] / 4,
                    "accuracy_delta": -float(rng.uniform(0, 0.03)),
                },
            ]
            if rng.random() < 0.4:
                lay["variants"].append(
                    {
                        "name": "int4",
                        "flops": lay["flops"] * 0.25,
                        "param_bytes": lay["param_bytes"] / 8,
                        "workspace_bytes": float(rng.uniform(0, 1e6)),
                        "accuracy_delta": -float(rng.uniform(0.02, 0.08)),
                    }
                )
        layers.append(lay)
        prev = lay["id"]
    model: dict[str, Any] = {"inputs": [{"id": "x", "bytes": float(rng.uniform(0.1, 2.0)) * 1e6}], "layers": layers}
    if mode == "variants":
        model["accuracy"] = float(rng.uniform(0.6, 0.9))
    else:
        n_side = int(rng.integers(1, min(2, n_main - 1) + 1))
        points = sorted(rng.choice(n_main - 1, size=n_side, replace=False).tolist())
        accs = sorted(rng.uniform(0.4, 0.9, size=n_side + 1).tolist())
        exits = []
        for j, pt in enumerate(points):
            head = {
                "id": f"b{j}",
                "op": "linear",
                "inputs": [f"m{pt}"],
                "flops": float(rng.uniform(0.01, 0.5)) * 1e9,
                "param_bytes": float(rng.uniform(0.1, 2)) * 1e6,
                "output_bytes": 4e3,
            }
            layers.append(head)
            exits.append({"name": f"exit{j}", "layer": head["id"], "accuracy": accs[j]})
        exits.append({"name": "final", "layer": prev, "accuracy": accs[-1]})
        if mode == "expected":
            p = rng.dirichlet(np.ones(len(exits)))
            p = np.round(p, 3)
            p[-1] = 1.0 - p[:-1].sum()
            for e, q in zip(exits, p, strict=True):
                e["probability"] = float(q)
        model["exits"] = exits
    k = int(rng.integers(2, 4))
    devices = []
    for d in range(k):
        dev: dict[str, Any] = {
            "id": f"d{d}",
            "compute": float(rng.uniform(5, 200)) * 1e9,
            "power_active": float(rng.uniform(0, 5)),
            "power_idle": float(rng.choice([0.0, 0.5])),
            "price": float(rng.uniform(0, 1e-3)),
        }
        if d == 0 and rng.random() < 0.4:
            dev["memory"] = float(rng.uniform(4, 14)) * 1e6
        devices.append(dev)
    links = []
    for a in range(k):
        for b in range(a + 1, k):
            if rng.random() < 0.85 or b == a + 1:
                links.append(
                    {
                        "from": f"d{a}",
                        "to": f"d{b}",
                        "bandwidth": float(rng.uniform(0.5, 20)) * 1e6,
                        "latency": float(rng.uniform(0, 0.02)),
                        "tx_power": float(rng.uniform(0, 2)),
                        "price": float(rng.uniform(0, 1e-9)),
                    }
                )
    system: dict[str, Any] = {"devices": devices, "links": links, "source": "d0"}
    if rng.random() < 0.7:
        system["sink"] = "d0"
    obj = OBJECTIVES[int(rng.integers(len(OBJECTIVES)))]
    constraints: dict[str, Any] = {}
    if obj == "accuracy" or rng.random() < 0.3:
        constraints["deadline"] = float(rng.uniform(0.1, 1.5))
    if obj != "accuracy" and rng.random() < 0.6:
        constraints["min_accuracy"] = float(rng.uniform(0.4, 0.85))
    if rng.random() < 0.15:
        constraints["max_devices"] = 1
    if rng.random() < 0.15:
        constraints["energy_budget"] = {"d0": float(rng.uniform(0.2, 3.0))}
    if rng.random() < 0.15 and k > 2:
        constraints["allowed"] = {"m0": ["d0", "d1"]}
    return {
        "dnnpart": 1,
        "name": f"choices-{seed}",
        "model": model,
        "system": system,
        "problem": {"objective": obj, "constraints": constraints},
    }


def random_choice_instance(seed: int) -> Instance:
    """:func:`random_choice_data` loaded."""
    return load_instance_data(random_choice_data(seed))
