"""Version-2 cost model, generation requests (docs/instance-format.md §9.10): the per-request
figures of the results — time to first token, time per output token, total, key/value cache and
token rates — from the same loads and shares as the latency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from formulation.evaluator.contention import request_loads

if TYPE_CHECKING:
    from formulation.evaluator.workload_eval import Latencies, WorkloadMetrics


def ttft(wm: WorkloadMetrics, lat: Latencies) -> np.ndarray:
    """(R,) time to first token of every request: its prefill alone, as §9.5 costs a request.

    ``none``: the prefill's sequential latency (its outputs at the sink). ``share``: the prefill's
    fixed delays plus its work on each device and channel over the request's fraction of it (the
    fractions of the whole generation). For a request that is not a generation: its latency.
    """
    pre = request_loads(wm.inst, wm.loads.placement, "prefill")
    if lat.shares is None:
        return np.asarray(pre.alone)
    R, k = pre.comp.shape
    W = np.concatenate([pre.comp, pre.chan.reshape(R, k * k)], axis=1)
    S = np.concatenate([lat.shares.device, lat.shares.channel.reshape(R, k * k)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(W > 0, W / np.where(S > 0, S, 1.0), 0.0)
    return np.asarray(pre.fixed + per.sum(axis=1))


def generation_entries(wm: WorkloadMetrics, lat: Latencies) -> dict[int, dict[str, Any]]:
    """``{request index: figures}`` for the generation requests (§9.10's reported metrics)."""
    from formulation.generation import memory_terms

    wl = wm.wl
    if not wl.generation:
        return {}
    first = ttft(wm, lat)
    _ws, kv = memory_terms(wm.inst)
    P = wm.loads.placement
    dev = wm.inst.system.device_ids
    U = wm.period
    out: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(wl.requests):
        if r.generate is None:
            continue
        total = float(lat.latency[i])
        tokens = r.generate + 1
        rho = r.rate if r.rate is not None else 1.0
        cache = np.zeros(len(dev))
        np.add.at(cache, P[list(r.layers)], kv[list(r.layers)])
        out[i] = {
            "prompt_tokens": r.prompt,
            "decode_steps": r.generate,
            "output_tokens": tokens,
            "ttft_s": float(first[i]),
            "tpot_s": (total - float(first[i])) / r.generate,
            "total_s": total,
            "kv_cache_bytes": {dev[d]: float(cache[d]) for d in np.flatnonzero(cache > 0)},
            "tokens_per_s": None if r.rate is None else r.rate * tokens,
            "max_tokens_per_s": rho * tokens / U if U > 0 else float("inf"),
        }
    return out
