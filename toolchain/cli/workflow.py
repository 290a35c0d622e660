"""The researcher's workflow: ``dnnpart batch``, ``results``, ``compare`` and ``sweep``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from toolchain.cli.common import UserError, console, dump_json, err_console, esc, load, user_errors
from toolchain.cli.outputs import check_output, check_plot, staged

if TYPE_CHECKING:
    import pandas as pd

#: Exit code after Ctrl-C (128 + SIGINT), the shell's convention.
EXIT_INTERRUPTED = 130


def _csv(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UserError(f"{what} {text!r}: expected a comma-separated list")
    return items


def _option_sets(items: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        try:
            data = json.loads(item)
        except json.JSONDecodeError as exc:
            raise UserError(f"--options {item!r}: not JSON ({exc.msg}); expected e.g. '{{\"gap\": 0.01}}'") from None
        if not isinstance(data, dict):
            raise UserError(f"--options {item!r}: expected a JSON object of solver options")
        out.append(data)
    return out or [{}]


def _seeds(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    try:
        return [int(x) for x in _csv(text, "--seeds")]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected integers such as 0,1,2") from None


def _memory(text: str | None) -> int | str | None:
    from formulation.units import parse_quantity

    if text is None:
        return "auto"
    if text.strip().lower() in ("none", "off", "0"):
        return None
    value = parse_quantity(text, "bytes", file="--memory-limit", path="")
    if not (math.isfinite(value) and value >= 1):
        raise UserError(f"--memory-limit {text!r}: expected a positive size such as '4 GiB', or 'none'")
    return int(value)


def _fmt(x: Any, digits: int = 6) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:.{digits}g}"
    return str(x)


def _print_requests(df: pd.DataFrame) -> None:
    """Version 2: each request's latency and whether its deadline is met, per instance and solver."""
    from solvers.compare import config_labels, natural_order
    from solvers.request_columns import request_table

    table = request_table(df, config_labels(df))
    if table.empty:
        return
    table = table.sort_values("request", key=natural_order, kind="stable")
    table = table.sort_values(["instance", "config"], kind="stable")
    t = Table(title="per request (version 2): latency and deadline")
    for col in ("instance", "solver", "request", "latency s", "deadline s", "deadline met"):
        t.add_column(col, justify="right" if col in ("latency s", "deadline s") else "left", overflow="fold")
    for r in table.to_dict("records"):
        met = r["deadline_met"]
        t.add_row(r["instance"], r["config"], r["request"], _fmt(r["latency_s"]), _fmt(r["deadline_s"]),
                  "-" if met is None else ("yes" if met else "no"))
    console.print(t)


def print_summary(df: pd.DataFrame, title: str) -> None:
    """Rows per solver by status, failures by outcome, and median times."""
    from solvers.batch import is_failure

    console.print(
        f"[bold]{esc(title)}[/]: {len(df)} rows, {df['instance_hash'].nunique()} instances, "
        f"{df['solver'].nunique()} solvers",
        highlight=False,
        markup=True,
    )
    if df.empty:
        return
    t = Table(title="rows per solver")
    statuses = ["optimal", "feasible", "infeasible", "no_solution_found", "time_limit_no_solution", "error"]
    for col in ("solver", "rows", *statuses, "crashed", "median wall s"):
        t.add_column(col, justify="left" if col == "solver" else "right", overflow="fold")
    for solver, g in df.groupby("solver", sort=False):
        counts = g["status"].value_counts()
        t.add_row(
            str(solver),
            str(len(g)),
            *(str(int(counts.get(s, 0))) for s in statuses),
            str(int((g["outcome"] == "crashed").sum())),
            _fmt(float(g["wall_time_s"].median()), 3),
        )
    console.print(t)
    failed = df[[is_failure(r) for r in df.to_dict("records")]]
    for r in failed.head(10).to_dict("records"):
        console.print(
            f"[red]{esc(r['outcome'])}[/] {esc(r['instance'])} / {esc(r['solver'])}: {esc(str(r['message'])[:200])}",
            highlight=False,
            markup=True,
        )
    if len(failed) > 10:
        console.print(f"... and {len(failed) - 10} more failed rows", highlight=False)


def warn_damaged(df: pd.DataFrame, file: Path) -> None:
    """One warning paragraph on stderr when some cells of the store did not hold their column's type."""
    damaged = df.attrs.get("damaged") or []
    if not damaged:
        return
    shown = "; ".join(f"row {row} {col} = {value}" for row, col, value in damaged[:5])
    more = f"; and {len(damaged) - 5} more" if len(damaged) > 5 else ""
    err_console.print(
        f"warning: {file}: {len(damaged)} cell(s) do not hold their column's type (a damaged or hand-edited "
        f"store) and are shown as missing: {shown}{more}",
        highlight=False,
        markup=False,
    )


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in natural order of instance then solver (wifi12 before wifi142), with the instance
    parameters and solver options that vary as ``param.*`` / ``option.*`` columns."""
    from solvers.compare import natural_order
    from toolchain.params import with_parameters

    if df.empty:
        return df
    out = with_parameters(df)
    out = out.sort_values("solver", key=natural_order, kind="stable")
    out = out.sort_values("instance", key=natural_order, kind="stable").reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def export_tidy(df: pd.DataFrame, export: Path) -> int:
    """Write :func:`tidy` rows as .parquet or .csv (replaced whole or not at all); the row count."""
    with staged(export) as tmp:
        if export.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return len(df)


def register(app: typer.Typer) -> None:
    """Add the workflow commands to ``app``."""

    @app.command()
    def batch(
        instances: Annotated[list[Path], typer.Argument(help="Instance files, or folders of them.")],
        solvers: Annotated[str, typer.Option("--solvers", help="Comma-separated solver names.")] = "auto",
        options: Annotated[
            list[str] | None,
            typer.Option("--options", help="An option set as JSON, e.g. '{\"gap\": 0.01}' (repeatable)."),
        ] = None,
        seeds: Annotated[str | None, typer.Option("--seeds", help="Comma-separated seeds.")] = None,
        time_limit: Annotated[float | None, typer.Option("--time-limit", help="Solver time limit, s.")] = None,
        task_timeout: Annotated[
            float | None, typer.Option("--task-timeout", help="Hard per-task limit, s (default 1.5 x limit + 10).")
        ] = None,
        memory_limit: Annotated[
            str | None, typer.Option("--memory-limit", help='Per-task memory budget, e.g. "4 GiB"; "none".')
        ] = None,
        jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Parallel workers.")] = None,
        out: Annotated[Path, typer.Option("--out", "-o", help="Results store (SQLite).")] = Path("results.db"),
        resume: Annotated[bool, typer.Option("--resume", help="Skip tasks already in --out.")] = False,
        executor: Annotated[str, typer.Option("--executor", help="local (process pool) or ray.")] = "local",
        address: Annotated[
            str | None, typer.Option("--address", help="Ray cluster HOST:PORT (default: a local Ray).")
        ] = None,
        ray_dashboard: Annotated[
            bool, typer.Option("--ray-dashboard", help="Start the dashboard of a local Ray (127.0.0.1).")
        ] = False,
        connect_timeout: Annotated[
            float, typer.Option("--connect-timeout", help="Limit on connecting to the cluster at --address, s.")
        ] = 30.0,
        export: Annotated[
            Path | None, typer.Option("--export", help="Also write a tidy .parquet or .csv copy at the end.")
        ] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    ) -> None:
        """Solve every instance with every solver, option set and seed; one row per task in --out."""
        from solvers import batch as b

        with user_errors():
            check_output(export, "--export", suffixes={".parquet", ".csv"})
            check_output(out, "--out", create_parents=True)
            files = b.instance_files(instances)
            if executor not in b.runner.EXECUTORS:
                raise UserError(f"--executor {executor!r}: expected one of {', '.join(b.runner.EXECUTORS)}")
            if address is not None and executor != "ray":
                raise UserError(f"--address {address}: a cluster address needs --executor ray")
            ray_init = {"dashboard": True} if ray_dashboard and not address else None
            try:
                # files are loaded by the batch: one that fails becomes error rows, not a failed batch
                report = b.run(
                    files,
                    _csv(solvers, "--solvers"),
                    _option_sets(options or []),
                    _seeds(seeds),
                    out=out,
                    jobs=jobs,
                    executor=executor,
                    address=address,
                    time_limit_s=time_limit,
                    task_timeout_s=task_timeout,
                    memory_limit_bytes=_memory(memory_limit),
                    resume=resume,
                    progress=progress,
                    ray_init=ray_init,
                    connect_timeout_s=connect_timeout,
                )
            except (b.BatchError, b.StoreError, TypeError, ValueError) as exc:
                raise UserError(str(exc)) from None
            except KeyboardInterrupt:
                err_console.print(
                    f"interrupted: every finished row is in {out}; run the same command with --resume to go on",
                    highlight=False,
                )
                raise typer.Exit(EXIT_INTERRUPTED) from None
        elsewhere = f", {report.n_elsewhere} left to another batch running on it" if report.n_elsewhere else ""
        console.print(
            f"{report.n_run} tasks run ({report.n_failed} failed), {report.n_skipped} already done{elsewhere}, "
            f"in {report.elapsed_s:.1f} s -> {out}",
            highlight=False,
        )
        for bad in report.bad_files:
            err_console.print(f"warning: {bad.message} (its tasks are error rows)", highlight=False, markup=False)
        if report.bad_files and len(report.bad_files) == len(files):
            raise UserError(f"no instance file could be loaded ({len(files)} given); see the warnings above")
        if export is not None:
            with user_errors():
                n = export_tidy(tidy(b.load_results(out)), export)
            console.print(f"exported {n} rows to {export}", highlight=False)

    @app.command()
    def results(
        file: Annotated[Path, typer.Argument(help="A results store (or a .parquet/.csv export).")],
        export: Annotated[Path | None, typer.Option("--export", help="Write a .parquet or .csv copy.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print every row as JSON lines.")] = False,
    ) -> None:
        """Summarise a results store: rows per solver and status, failures, times."""
        from solvers.batch import StoreError, load_results

        with user_errors():
            check_output(export, "--export", suffixes={".parquet", ".csv"})
            try:
                df = tidy(load_results(file))
            except StoreError as exc:
                raise UserError(str(exc)) from None
            if export is not None:
                n = export_tidy(df, export)
        warn_damaged(df, file)
        if as_json:
            for row in df.to_dict("records"):
                print(dump_json(row).replace("\n", " "))
            return
        print_summary(df, str(file))
        if export is not None:
            console.print(f"exported {n} rows to {export}", highlight=False)

    @app.command()
    def compare(
        file: Annotated[Path, typer.Argument(help="A results store (or a .parquet/.csv export).")],
        measure: Annotated[str, typer.Option("--measure", help="Profile of: time or objective.")] = "time",
        success: Annotated[
            str, typer.Option("--success", help="Time profile counts: best (reached best objective) or optimal.")
        ] = "best",
        plot: Annotated[Path | None, typer.Option("--plot", help="Write the performance profile here.")] = None,
        csv: Annotated[Path | None, typer.Option("--csv", help="Write the comparison table here.")] = None,
    ) -> None:
        """Per instance, each solver's objective against the best proven bound, its time and status."""
        from solvers.batch import StoreError, load_results
        from solvers.compare import bound_conflicts, compare_table, performance_profile

        with user_errors():
            check_plot(plot)
            check_output(csv, "--csv")
            if measure not in ("time", "objective"):
                raise UserError(f"--measure {measure!r}: expected time or objective")
            if success not in ("best", "optimal"):
                raise UserError(f"--success {success!r}: expected best or optimal")
            try:
                df = load_results(file)
            except StoreError as exc:
                raise UserError(str(exc)) from None
            if df.empty:
                raise UserError(f"{file}: holds no rows")
        warn_damaged(df, file)
        table = compare_table(df)
        t = Table(title=f"{file}: objective against the best proven bound")
        for col in ("instance", "solver", "status", "objective", "best bound", "gap to bound", "x best", "time s"):
            left = col in ("instance", "solver", "status")
            t.add_column(col, justify="left" if left else "right", overflow="fold")
        for r in table.to_dict("records"):
            t.add_row(
                r["instance"],
                r["config"],
                r["status"],
                _fmt(r["objective"]),
                _fmt(r["best_bound"]),
                _fmt(r["gap_to_best_bound"], 3),
                _fmt(r["ratio_to_best"], 4),
                _fmt(r["time_s"], 3),
            )
        console.print(t)
        _print_requests(df)
        for r in bound_conflicts(df).to_dict("records"):
            console.print(
                f"[red]warning[/] {esc(r['instance'])}: a bound {r['best_bound']!r} exceeds the best objective "
                f"{r['best_objective']!r}; some solver's bound or objective is wrong",
                highlight=False,
                markup=True,
            )
        prof = performance_profile(df, measure, success=success)  # type: ignore[arg-type]
        p = Table(title=f"performance profile ({measure}; Dolan and Moré 2002)")
        for col in ("solver", "best (rho at 1)", "within 2x", "solved (rho at inf)"):
            p.add_column(col, justify="left" if col == "solver" else "right")
        for name in prof.rho:
            p.add_row(name, *(f"{prof.fraction(name, tau):.2f}" for tau in (1.0, 2.0, math.inf)))
        console.print(p)
        if csv is not None:
            with staged(csv) as tmp:
                table.to_csv(tmp, index=False)
        if plot is not None:
            from toolchain.plots import plot_performance_profile

            with staged(plot) as tmp:
                plot_performance_profile(prof, path=tmp)
            console.print(f"profile written to {plot}", highlight=False)

    @app.command()
    def sweep(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        param: Annotated[
            str, typer.Option("--param", help="links.<from>-<to>.<field>, devices.<id>.<field>, problem.deadline.")
        ],
        values: Annotated[
            str, typer.Option("--values", help="START:STOP:log, START:STOP[:lin] or v1,v2,... in the sweep unit.")
        ],
        points: Annotated[int, typer.Option("--points", help="Values in a START:STOP range.")] = 12,
        unit: Annotated[
            str | None, typer.Option("--unit", help="Unit of --values (default: the field's sweep unit).")
        ] = None,
        solver: Annotated[str, typer.Option("--solver", "-s", help="Solver name.")] = "auto",
        time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds per solve.")] = None,
        plot: Annotated[Path | None, typer.Option("--plot", help="Write latency and energy vs the value here.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
        exact: Annotated[
            bool, typer.Option("--exact", help="Exact breakpoints over the --values range (docs/networks.md).")
        ] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="With --exact: the decision table.")] = None,
    ) -> None:
        """Re-solve for each value of one parameter; show metrics and where the optimal cut moves."""
        from solvers.options import SolverOptions
        from toolchain.sweep import SweepError, parse_values, run_sweep

        with user_errors():
            check_plot(plot)
            inst = load(file)
            if exact or out is not None:
                from toolchain.cli.network import exact_sweep

                if not exact:
                    raise UserError("--out writes the decision table of --exact; add --exact")
                exact_sweep(file, inst, param, values, points=points, unit=unit, solver=solver,
                            time_limit=time_limit, plot=plot, as_json=as_json, out=out)  # fmt: skip
            try:
                vals, log = parse_values(values, points)
                res = run_sweep(
                    inst,
                    param,
                    vals,
                    unit=unit,
                    log=log,
                    solver=solver,
                    options=SolverOptions(time_limit_s=time_limit) if time_limit else None,
                )
            except SweepError as exc:
                raise UserError(f"{file}: {exc}") from None
        table = res.table()
        if as_json:
            print(dump_json({"param": param, "unit": res.unit, "rows": table.to_dict("records")}))
        else:
            t = Table(title=f"{inst.name}: sweep of {param} [{res.unit}] with {solver}")
            for col in ("value", "status", "objective", "latency s", "energy J", "optimal cut"):
                t.add_column(col, justify="left" if col in ("status", "optimal cut") else "right")
            for r in table.to_dict("records"):
                t.add_row(
                    _fmt(r["value"], 4),
                    r["status"],
                    _fmt(r["objective"]),
                    _fmt(r.get("latency_s")),
                    _fmt(r.get("energy_total_j")),
                    r["cut"],
                )
            console.print(t)
        if plot is not None:
            from toolchain.plots import plot_sweep

            with staged(plot) as tmp:
                plot_sweep(res, path=tmp)
            if not as_json:
                console.print(f"plot written to {plot}", highlight=False)
