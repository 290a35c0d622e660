"""Networks that change: ``dnnpart sweep --exact`` (exact breakpoints) and ``dnnpart replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from formulation.model import Instance
from toolchain.cli.common import EXIT_NO_SOLUTION, EXIT_OK, UserError, console, dump_json, fail, load
from toolchain.cli.outputs import check_output, check_plot, staged, write_output


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

    check_output(out, "--out")
    check_plot(plot)
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
        write_output(out, dump_json(bp.policy()) + "\n")
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
        with staged(plot) as tmp:
            plot_sweep(res, breakpoints=[b / per_unit for b in bp.breakpoints], path=tmp)
        if not as_json:
            console.print(f"plot written to {plot}", highlight=False, markup=False)
    raise typer.Exit(EXIT_OK if bp.intervals else EXIT_NO_SOLUTION)


def _policies(text: str) -> tuple[list[str], str | None, str | None]:
    """``static[:placement.json],oracle,table[:policy.json]`` -> names, static file, table file."""
    names: list[str] = []
    files: dict[str, str | None] = {"static": None, "table": None}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        name, _, arg = item.partition(":")
        if name not in ("static", "oracle", "table") or (arg and name == "oracle"):
            raise UserError(
                f"--policy {item!r}: expected static[:placement.json], oracle or table[:policy.json], comma-separated"
            )
        names.append(name)
        if arg:
            files[name] = arg
    if not names:
        raise UserError("--policy: expected at least one of static, oracle, table")
    return names, files["static"], files["table"]


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to ``app`` (``sweep --exact`` is an option of ``sweep``)."""

    @app.command()
    def replay(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        trace: Annotated[Path, typer.Option("--trace", help="CSV: time, bandwidth[, latency][, load:<device>].")],
        policy: Annotated[
            str,
            typer.Option("--policy", help="Comma-separated: static[:placement.json], oracle, table[:policy.json]."),
        ] = "static,oracle,table",
        link: Annotated[str | None, typer.Option("--link", help="The link a-b the trace describes.")] = None,
        switch_cost: Annotated[
            str, typer.Option("--switch-cost", help="none, or weights: charge moving parameters on a change.")
        ] = "none",
        rate: Annotated[
            float | None, typer.Option("--rate", help="Inferences per second (default: one per row).")
        ] = None,
        deadline: Annotated[
            float | None, typer.Option("--deadline", help="Deadline in seconds for counting misses.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the JSON of every inference.")] = None,
        plot: Annotated[Path | None, typer.Option("--plot", help="Bandwidth, latency and energy over time.")] = None,
    ) -> None:
        """Replay a bandwidth trace over a stream of inferences under static, oracle and table policies."""
        from toolchain.cli.common import read_json, user_errors
        from toolchain.cli.core import placement_from_json
        from toolchain.replay import replay as run_replay
        from toolchain.sweep import SweepError
        from toolchain.traces import TraceError, read_trace

        with user_errors():
            check_output(out, "--out")
            check_plot(plot)
            names, static_file, table_file = _policies(policy)
            inst = load(file)
            try:
                tr = read_trace(trace, inst.system.device_ids)
                static = None
                if static_file is not None:
                    static = placement_from_json(read_json(static_file, "the placement"), static_file)[0]
                table = read_json(table_file, "the decision table") if table_file is not None else None
                rep = run_replay(
                    inst, tr, names, link=link, switch=switch_cost, rate=rate, deadline_s=deadline,
                    static_placement=static, table=table, table_path=table_file or "table",
                )  # fmt: skip
            except TraceError as exc:
                raise UserError(str(exc)) from None
            except SweepError as exc:
                raise UserError(f"{file}: {exc}") from None
        if out is not None:
            write_output(out, dump_json(rep.to_dict(per_inference=True)) + "\n")
        if as_json:
            print(dump_json(rep.to_dict()))
        else:
            _print_replay(rep)
        if plot is not None:
            from toolchain.plots import plot_replay

            with staged(plot) as tmp:
                plot_replay(rep, path=tmp)
            if not as_json:
                console.print(f"plot written to {plot}", highlight=False, markup=False)


def _print_replay(rep: Any) -> None:
    console.print(
        f"{rep.instance}: {rep.times.size} inferences over trace {rep.trace} on link {rep.link}"
        + (f", deadline {rep.deadline_s:g} s" if rep.deadline_s is not None else "")
        + f" ({rep.solves} exact solves)",
        highlight=False,
        markup=False,
    )
    t = Table()
    cols = ("policy", "latency mean s", "p95 s", "p99 s", "energy mean J", "misses", "switches", "switch s")
    for col in cols:
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, run in rep.runs.items():
        s = run.summary()
        t.add_row(
            name,
            f"{s['latency_mean_s']:.6g}",
            f"{s['latency_p95_s']:.6g}",
            f"{s['latency_p99_s']:.6g}",
            f"{s['energy_mean_j']:.6g}",
            str(s["deadline_misses"]),
            str(s["switches"]),
            f"{s['switch_time_s']:.6g}",
        )
    console.print(t)
