"""``dnnpart pareto``: the Pareto front of two metrics (epsilon-constraint method on the MILP)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolchain.cli.common import (
    EXIT_NO_SOLUTION,
    EXIT_OK,
    UserError,
    console,
    dump_json,
    esc,
    load,
    segments,
    user_errors,
)
from toolchain.cli.outputs import check_output, write_output


def register(app: typer.Typer) -> None:
    """Add the ``pareto`` command to ``app``."""

    @app.command()
    def pareto(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        objectives: Annotated[
            str,
            typer.Option(
                "--objectives", help="Two metrics, comma-separated: latency, throughput (the period), energy, cost."
            ),
        ] = "latency,energy",
        points: Annotated[
            int | None, typer.Option("--points", "-n", help="Epsilon-constraint points, the two ends included [10].")
        ] = None,
        complete: Annotated[
            bool, typer.Option("--complete", help="Every non-dominated point, each proven (no --points).")
        ] = False,
        solver: Annotated[str, typer.Option("--solver", "-s", help="highs or pyomo:NAME.")] = "highs",
        time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds per MILP solve.")] = None,
        gap: Annotated[float | None, typer.Option("--gap", help="Relative gap of each MILP solve.")] = None,
        threads: Annotated[int | None, typer.Option("--threads")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the front as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the JSON front here.")] = None,
        plot: Annotated[
            Path | None, typer.Option("--plot", help="Draw the front here (.png, .pdf, .svg).")
        ] = None,
        allow_outside: Annotated[
            bool, typer.Option("--allow-outside", help="Let file: references read outside the instance's folder.")
        ] = False,
    ) -> None:
        """Non-dominated placements trading two metrics off, each with its placement and metrics.

        The instance's constraints hold at every point; its objective is ignored.
        """
        from solvers.milp.pareto import pareto_front
        from solvers.options import SolverOptions
        from toolchain.cli.outputs import check_plot, staged

        with user_errors():
            check_output(out, "--out")
            check_plot(plot)
            inst = load(file, allow_outside)
            if inst.problem.scenarios is not None:  # a front per measure over states is not defined here
                raise UserError(
                    f"{file}: pareto takes an instance without network states (scenarios); "
                    "remove them, or solve it with `dnnpart solve` for one robust objective"
                )
            try:
                opts = SolverOptions(time_limit_s=time_limit, gap=gap, threads=threads)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            if complete and points is not None:
                raise UserError("--complete finds every non-dominated point; drop --points")
            if complete:
                from solvers.milp.pareto_complete import complete_front

                front = complete_front(inst, objectives.split(","), solver=solver, options=opts)
            else:
                front = pareto_front(inst, objectives.split(","), points or 10, solver=solver, options=opts)
        payload = front.to_dict()
        if out is not None:
            write_output(out, dump_json(payload) + "\n")
        if as_json:
            print(dump_json(payload))
        else:
            _print_front(inst, front)
        if plot is not None and front.points:
            from toolchain.cli.common import err_console
            from toolchain.plots import plot_pareto

            with staged(plot) as tmp:  # points numbered as in the table
                plot_pareto(payload, labels=[str(i + 1) for i in range(len(front.points))], path=tmp)
            err_console.print(f"plot written to {plot}", highlight=False)
        raise typer.Exit(EXIT_OK if front.points else EXIT_NO_SOLUTION)


def _print_front(inst: object, front: object) -> None:
    from rich.table import Table

    from solvers.milp.pareto import ParetoFront

    assert isinstance(front, ParetoFront)
    f1, f2 = front.objectives
    unit = {"latency": "s", "throughput": "s (period)", "energy": "J", "cost": "USD"}
    console.print(
        f"[bold]{esc(front.instance)}[/]  Pareto front of {f1} and {f2}: {len(front.points)} points, "
        f"{front.solves} MILP solves, {front.wall_time_s:.2f} s"
        + (" (complete: every point proven)" if front.complete else ""),
        highlight=False,
        markup=True,
    )
    if front.message:
        console.print(front.message, highlight=False)
    t = Table()
    t.add_column("#", justify="right")
    t.add_column(f"{f1} ({unit[f1]})", justify="right")
    t.add_column(f"{f2} ({unit[f2]})", justify="right")
    t.add_column("proved")
    t.add_column("placement (device: layers)")
    for i, p in enumerate(front.points):
        segs = segments(inst, p.placement)  # type: ignore[arg-type]
        shown = ", ".join(f"{d}: {ls[0]}" + (f"..{ls[-1]}" if len(ls) > 1 else "") for d, ls in segs)
        t.add_row(str(i + 1), f"{p.values[f1]:.6g}", f"{p.values[f2]:.6g}", "yes" if p.optimal else "no", shown)
    console.print(t)
