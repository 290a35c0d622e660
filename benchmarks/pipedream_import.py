"""Import time of the 14 published PipeDream profiles, next to loading the resulting instance.

Target: importing a profile (parse, FLOPs, batch inference, conversion) costs no more than
validating the instance it gives (``load_instance_data``); the ratio column is import / load.

Run: ``python benchmarks/pipedream_import.py [DATA_DIR]`` (default ``instances/third_party/pipedream-profiles``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from formulation.loader import load_instance_data
from toolchain.importers.pipedream import from_pipedream

DEFAULT = Path(__file__).resolve().parents[1] / "instances" / "third_party" / "pipedream-profiles"


def main(argv: list[str]) -> None:
    """Print one row per profile: layers, import seconds, load seconds, ratio."""
    folder = Path(argv[0]) if argv else DEFAULT
    print(f"{'profile':<16}{'layers':>7}{'import s':>10}{'load s':>9}{'ratio':>7}")
    total_i = total_l = 0.0
    for path in sorted(folder.glob("*.graph.txt")):
        t0 = time.perf_counter()
        res = from_pipedream(path)
        t1 = time.perf_counter()
        dev = next(iter(res.latency))
        data = {"dnnpart": 1, "name": res.model["name"], "model": res.model,
                "system": {"devices": [{"id": dev, "compute": 1e12}], "links": [], "source": dev,
                           "latency": res.latency}}
        inst = load_instance_data(data)
        t2 = time.perf_counter()
        total_i, total_l = total_i + t1 - t0, total_l + t2 - t1
        print(f"{path.name.removesuffix('.graph.txt'):<16}{inst.n:>7}{t1 - t0:>10.3f}{t2 - t1:>9.3f}"
              f"{(t1 - t0) / (t2 - t1):>7.2f}")
    print(f"{'all':<16}{'':>7}{total_i:>10.3f}{total_l:>9.3f}{total_i / total_l:>7.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
