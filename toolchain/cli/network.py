"""Networks that change: ``dnnpart sweep --exact`` (exact breakpoints) and ``dnnpart replay``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from formulation.model import Instance
from toolchain.cli.common import EXIT_NO_SOLUTION, EXIT_OK, UserError, console, dump_json, fail


def exact_sweep(
    file: Path,
    inst: Instance,
    param: str,
    values: str,
    *,
    points: int,
    unit: str | None,
    solver: str,
    time_limit: float | None,
    plot: Path | None,
    as_json: bool,
    out: Path | None,
) -> None:
    """``dnnpart sweep --exact``: breakpoints, intervals with certificates, the decision table.

    Exits 0 with a result, 1 when the instance is infeasible or a probe was not proven optimal,
    2 for a parameter in which the optimum is not piecewise linear (the message says why).
    """
    from solvers.options import SolverOptions
    from toolchain.parametric import OracleError, exact_breakpoints, parse_range
    from toolchain.sweep import SweepError, parse_param, to_si

    try:
        lo, hi = parse_range(values)
        opts = SolverOptions(time_limit_s=time_limit) if time_limit else None
        if opts is not None and solver in ("auto", "highs", "cpsat"):
            opts = SolverOptions(time_limit_s=time_limit, gap=0.0)
        bp = exact_breakpoints(inst, param, lo, hi, unit=unit, solver=solver, options=opts)
        shown = parse_param(inst, param)
        per_unit = to_si(shown, 1.0, unit)
    except SweepError as exc:
        raise UserError(f"{file}: {exc}") from None
    except OracleError as exc:
        fail(f"{file}: {exc}", EXIT_NO_SOLUTION)
    unit_name = unit or shown.field.unit
    if out is not None:
        out.write_text(dump_json(bp.policy()) + "\n")
    if as_json:
        print(dump_json(bp.to_dict()))
    else:
        console.print(
            f"{inst.name}: exact breakpoints of {param} over [{lo:g}, {hi:g}] {unit_name} "
            f"({len(bp.probes)} solves with {solver})",
            highlight=False,
            markup=False,
        )
        if bp.message:
            console.print(bp.message, highlight=False, markup=False)
        t = Table()
        for col in (f"from [{unit_name}]", f"to [{unit_name}]", "objective from", "objective to", "optimal cut"):
            t.add_column(col, justify="left" if col == "optimal cut" else "right")
        for iv in bp.intervals:
            t.add_row(
                f"{iv.lo / per_unit:.10g}",
                f"{iv.hi / per_unit:.10g}",
                f"{iv.objective_lo:.6g}",
                f"{iv.objective_hi:.6g}",
                escape(iv.cut),
            )
        console.print(t)
        if out is not None:
            console.print(f"decision table written to {out}", highlight=False, markup=False)
    if plot is not None and bp.intervals:
        from toolchain.plots import plot_sweep
        from toolchain.sweep import parse_values, run_sweep

        vals, log = parse_values(values, points)
        res = run_sweep(inst, param, vals, unit=unit, log=log, solver=solver)
        plot_sweep(res, breakpoints=[b / per_unit for b in bp.breakpoints], path=plot)
        if not as_json:
            console.print(f"plot written to {plot}", highlight=False, markup=False)
    raise typer.Exit(EXIT_OK if bp.intervals else EXIT_NO_SOLUTION)


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to ``app`` (``sweep --exact`` is an option of ``sweep``)."""
