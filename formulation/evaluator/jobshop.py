"""Version-2 cost model, part 2: the joint schedule of the ``schedule`` contention model (§9.5).

Every layer of every request is a task on its device; every hop of every routed transfer is a task
on its channel, busy for ``bytes / bandwidth``, followed by the hop's fixed delay before the next hop
(or the consumer) may start. Each device runs one task at a time, each channel direction carries one
hop at a time, without preemption; a request's tasks start no earlier than its release.

* :func:`list_schedule` — the default schedule of a placement given without one: repeatedly, among
  the tasks whose predecessors are scheduled, the one that can start earliest, ties broken by the
  request's release, then request order, then task order (tasks are numbered in the combined
  graph's topological order, each layer followed by the hops of its output's transfers).
* :func:`check_schedule` — a given schedule (``{task key: start}``) checked and evaluated.
* :func:`optimal_schedule` — the schedule minimising a monotone function of the requests'
  completion times, by exhaustive search over task orders (tiny instances).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from formulation.evaluator.contention import Loads
from formulation.evaluator.schedule import SCHEDULE_TOL, ScheduleSearchLimit
from formulation.model import FloatArray, Instance


@dataclass(frozen=True)
class Tasks:
    """The task graph of one placement."""

    keys: tuple[str, ...]
    resource: tuple[int, ...]
    """Device ``d`` is resource ``d``; channel ``a -> b`` is ``k + a * k + b``."""
    dur: tuple[float, ...]
    request: tuple[int, ...]
    release: tuple[float, ...]
    preds: tuple[tuple[tuple[int, float], ...], ...]
    """``(task, delay)``: may start at the earliest ``end(task) + delay``."""
    ends: tuple[tuple[tuple[int, float], ...], ...]
    """Per request: ``(task, delay)`` pairs whose ``end + delay`` is a completion point."""

    @property
    def size(self) -> int:
        """Number of tasks."""
        return len(self.keys)


def hop_key(tensor: str, dst: str, hop: int) -> str:
    """Schedule key of hop ``hop`` of tensor ``tensor``'s transfer to ``dst``: ``TENSOR>DST#HOP``."""
    return f"{tensor}>{dst}#{hop}"


def build_tasks(inst: Instance, loads: Loads) -> Tasks:
    """Tasks, resources, durations and precedences of the joint schedule."""
    wl = inst.workload
    assert wl is not None
    g, s = inst.graph, inst.system
    P, k = loads.placement, s.k
    keys: list[str] = []
    res: list[int] = []
    dur: list[float] = []
    req: list[int] = []
    pred: list[list[tuple[int, float]]] = []
    transfers_of: dict[int, list[int]] = {}
    for i, tr in enumerate(loads.transfers):
        transfers_of.setdefault(tr.tensor, []).append(i)
    layer_task: dict[int, int] = {}
    arrival: dict[tuple[int, int], tuple[int, float]] = {}  # (tensor, dst) -> (last hop task, delay)

    def add_transfers(t: int, after: tuple[tuple[int, float], ...]) -> None:
        for i in transfers_of.get(t, []):
            tr = loads.transfers[i]
            prev = after
            for h, ((a, b), occ, dl) in enumerate(zip(tr.route, tr.occupied, tr.delay, strict=True)):
                keys.append(hop_key(g.tensor_ids[t], s.device_ids[tr.dst], h))
                res.append(k + a * k + b)
                dur.append(occ)
                req.append(tr.request)
                pred.append(list(prev))
                prev = ((len(keys) - 1, dl),)
            arrival[(t, tr.dst)] = prev[0]

    for t in range(g.n, g.n + g.m):
        add_transfers(t, ())
    for v in range(g.n):
        d = int(P[v])
        pv: list[tuple[int, float]] = []
        for t in g.layer_inputs[v]:
            if (t, d) in arrival:
                pv.append(arrival[(t, d)])
            elif t < g.n:
                pv.append((layer_task[t], 0.0))
        layer_task[v] = len(keys)
        keys.append(g.layer_ids[v])
        res.append(d)
        dur.append(float(inst.time[v, d]))
        req.append(int(wl.request_of_layer[v]))
        pred.append(pv)
        add_transfers(v, ((layer_task[v], 0.0),))
    ends: list[list[tuple[int, float]]] = [[] for _ in wl.requests]
    for r, rq in enumerate(wl.requests):
        for o in rq.outputs:
            key = (o, rq.sink) if rq.sink is not None else None
            ends[r].append(arrival[key] if key in arrival else (layer_task[o], 0.0))
    release = tuple(wl.requests[r].release_s for r in req)
    return Tasks(
        tuple(keys), tuple(res), tuple(dur), tuple(req), release,
        tuple(tuple(p) for p in pred), tuple(tuple(e) for e in ends),
    )


def completions(tasks: Tasks, start: FloatArray) -> FloatArray:
    """(R,) completion time of each request given every task's start."""
    end = start + np.array(tasks.dur)
    return np.array([max((end[i] + dl for i, dl in e), default=0.0) for e in tasks.ends])


def _est(tasks: Tasks, i: int, end: list[float], free: dict[int, float]) -> float:
    t0 = max(tasks.release[i], free.get(tasks.resource[i], 0.0))
    for p, dl in tasks.preds[i]:
        t0 = max(t0, end[p] + dl)
    return t0


def list_schedule(tasks: Tasks) -> FloatArray:
    """The default schedule: earliest possible start first (ties: release, request, task order)."""
    n = tasks.size
    succ: list[list[int]] = [[] for _ in range(n)]
    left = [len(p) for p in tasks.preds]
    for i, ps in enumerate(tasks.preds):
        for p, _ in ps:
            succ[p].append(i)
    ready = [i for i in range(n) if left[i] == 0]
    end = [0.0] * n
    start = np.zeros(n)
    free: dict[int, float] = {}
    while ready:
        i = min(ready, key=lambda j: (_est(tasks, j, end, free), tasks.release[j], tasks.request[j], j))
        ready.remove(i)
        start[i] = _est(tasks, i, end, free)
        end[i] = start[i] + tasks.dur[i]
        free[tasks.resource[i]] = end[i]
        for j in succ[i]:
            left[j] -= 1
            if left[j] == 0:
                ready.append(j)
    return start


def asap_completions(tasks: Tasks) -> FloatArray:
    """(R,) completions when no two tasks ever compete: a lower bound valid for every schedule."""
    end = [0.0] * tasks.size
    start = np.zeros(tasks.size)
    for i in range(tasks.size):  # tasks are numbered in a topological order
        start[i] = max([tasks.release[i], *(end[p] + dl for p, dl in tasks.preds[i])])
        end[i] = start[i] + tasks.dur[i]
    return completions(tasks, start)


def check_schedule(tasks: Tasks, given: Mapping[str, float]) -> tuple[FloatArray, list[str]]:
    """Starts of a given schedule and the rules it breaks, in words (docs/instance-format.md §9.5)."""
    problems: list[str] = []
    start = np.zeros(tasks.size)
    for i, key in enumerate(tasks.keys):
        if key not in given:
            problems.append(f"the schedule has no start time for {key!r}")
            continue
        start[i] = float(given[key])
        if not math.isfinite(start[i]) or start[i] < tasks.release[i] - SCHEDULE_TOL * max(1.0, tasks.release[i]):
            problems.append(f"{key!r} starts at {start[i]!r}; expected a finite time >= its release {tasks.release[i]}")
    end = start + np.array(tasks.dur)
    for i, ps in enumerate(tasks.preds):
        for p, dl in ps:
            if start[i] < end[p] + dl - SCHEDULE_TOL * max(1.0, end[p] + dl):
                problems.append(f"{tasks.keys[i]!r} starts at {start[i]:.9g} s before {tasks.keys[p]!r} "
                                f"has finished and arrived ({end[p] + dl:.9g} s)")
    by_res: dict[int, list[int]] = {}
    for i, r in enumerate(tasks.resource):
        by_res.setdefault(r, []).append(i)
    for items in by_res.values():
        items.sort(key=lambda i: (start[i], end[i]))
        for a, b in itertools.pairwise(items):
            if start[b] < end[a] - SCHEDULE_TOL * max(1.0, end[a]):
                problems.append(f"{tasks.keys[a]!r} and {tasks.keys[b]!r} overlap on the same device or channel")
    return start, problems


def optimal_schedule(
    tasks: Tasks, value: Callable[[FloatArray], float], upper: float = math.inf, node_limit: int = 2_000_000
) -> tuple[float, FloatArray] | None:
    """The schedule minimising ``value(completions)``, a function non-decreasing in every completion.

    Every schedule is dominated (each task no later) by the one built by taking its tasks in order
    of start time, each at its earliest start after the previous task on its resource; so searching
    all task orders with that rule is exact. Two consecutive independent tasks on different
    resources give the same schedule in either order, so only one of the two orders is explored;
    a branch is cut when ``value`` at a lower bound of the completions (each ready task's earliest
    start plus its longest path to its request's completion) cannot beat the best found.

    Returns ``(value, starts)`` or ``None`` when nothing beats ``upper``.

    Raises
    ------
    ScheduleSearchLimit
        When ``node_limit`` search nodes did not suffice (never a wrong answer).
    """
    n, R = tasks.size, len(tasks.ends)
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(tasks.preds):
        for p, _ in ps:
            succ[p].append(i)
    # tail[i]: longest time from task i's start to its request's completion (-inf if none)
    tail = [-math.inf] * n
    for r_ends in tasks.ends:
        for i, dl in r_ends:
            tail[i] = max(tail[i], tasks.dur[i] + dl)
    for i in range(n - 1, -1, -1):
        for j in succ[i]:
            for p, dl in tasks.preds[j]:
                if p == i and tail[j] > -math.inf:
                    tail[i] = max(tail[i], tasks.dur[i] + dl + tail[j])
    left = [len(p) for p in tasks.preds]
    end = [0.0] * n
    start = [0.0] * n
    free: dict[int, float] = {}
    done_c = np.zeros(R)
    best_val = upper
    best_starts: FloatArray | None = None
    nodes = [0]
    succ_sets = [set(x) for x in succ]

    def dfs(ready: list[int], last: int, count: int) -> None:
        nonlocal best_val, best_starts
        nodes[0] += 1
        if nodes[0] > node_limit:
            raise ScheduleSearchLimit(f"the joint-schedule search exceeded {node_limit} nodes")
        if count == n:
            val = value(done_c.copy())
            if val < best_val:
                best_val, best_starts = val, np.array(start)
            return
        lb = done_c.copy()
        for i in ready:
            if tail[i] > -math.inf:
                r = tasks.request[i]
                lb[r] = max(lb[r], _est(tasks, i, end, free) + tail[i])
        if value(lb) >= best_val * (1 - 1e-12):
            return
        for i in sorted(ready):
            if last >= 0 and i < last and tasks.resource[i] != tasks.resource[last] and i not in succ_sets[last]:
                continue
            st = _est(tasks, i, end, free)
            rs = tasks.resource[i]
            old_free, old_c = free.get(rs), done_c.copy()
            start[i], end[i] = st, st + tasks.dur[i]
            free[rs] = end[i]
            for r, r_ends in enumerate(tasks.ends):
                for j, dl in r_ends:
                    if j == i:
                        done_c[r] = max(done_c[r], end[i] + dl)
            new_ready = [x for x in ready if x != i]
            for j in succ[i]:
                left[j] -= 1
                if left[j] == 0:
                    new_ready.append(j)
            dfs(new_ready, i, count + 1)
            for j in succ[i]:
                left[j] += 1
            done_c[:] = old_c
            if old_free is None:
                del free[rs]
            else:
                free[rs] = old_free

    dfs([i for i in range(n) if left[i] == 0], -1, 0)
    if best_starts is None:
        return None
    return float(best_val), best_starts
