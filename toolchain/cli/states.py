"""Command-line output for network states: the states of ``validate``, the per-state table of ``solve``."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from formulation.model import Instance
from formulation.routing import describe_routes
from formulation.scenarios import OVERRIDABLE, has_deadline, state_instances
from formulation.units import format_quantity
from toolchain.cli.common import console


def describe(inst: Instance) -> list[str]:
    """One line for the measure and one per state (its probability and overrides, SI units)."""
    sc = inst.problem.scenarios
    if sc is None:
        return []
    level = "every state" if sc.deadline_probability is None else f"probability >= {sc.deadline_probability:g}"
    deadline = f"; deadline in {level}" if has_deadline(inst) else ""
    lines = [f"{len(sc.states)} network states, robust {sc.label()}{deadline}"]
    wl = inst.workload
    for st, one in zip(sc.states, state_instances(inst), strict=True):
        sets = ", ".join(
            f"{ov.path} = {format_quantity(ov.value, OVERRIDABLE[ov.section][ov.field][1])}" for ov in st.overrides
        )
        sets = sets or "the file's figures"
        lines.append(f"state {st.name} (p = {st.probability:g}): {sets}")
        if wl is not None and one.workload is not None and one.workload.routes != wl.routes:
            # shortest routes are computed per state: list the ones this state changes
            changed = {pair: r for pair, r in one.workload.routes.items() if wl.routes.get(pair) != r}
            lines += [f"  route {line}" for line in describe_routes(inst.system, changed, every=True)]
    return lines


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.6g}"


def show(report: dict[str, Any]) -> None:
    """The per-state table: objective, latency, energy, cost, deadline, the state's optimum, regret."""
    t = Table(title=f"network states (robust {report['robust']}: objective {_num(report['objective'])}, "
              f"expected {_num(report['expected'])}, worst {_num(report['worst'])})")
    for col in ("state", "p", "objective", "latency s", "energy J", "cost USD", "deadline", "state optimum", "regret"):
        t.add_column(col, justify="left" if col == "state" else "right")
    has_deadline = report.get("deadline_met_probability") is not None
    for s in report["states"]:
        rel = s.get("regret_relative")
        regret = _num(s.get("regret")) + ("" if rel is None else f" ({100 * rel:.3g} %)")
        t.add_row(
            s["name"],
            f"{s['probability']:g}",
            _num(s["objective"]),
            _num(s["latency_s"]),
            _num(s["energy_total_j"]),
            _num(s["cost_usd"]),
            ("met" if s["deadline_met"] else "missed") if has_deadline else "-",
            _num(s.get("optimum")) if s.get("optimum") is not None else s.get("optimum_status", "-"),
            regret,
        )
    console.print(t)
    console.print("the metrics table above is the nominal system (the file's figures without overrides)",
                  highlight=False)
