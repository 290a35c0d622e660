"""Core commands: validate, solve, evaluate, solvers, schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from toolchain.cli import granularity as granularity_cli
from toolchain.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    UserError,
    console,
    dump_json,
    err_console,
    esc,
    exit_code_of,
    load,
    print_metrics,
    print_result,
    read_json,
    user_errors,
)
from toolchain.cli.granularity import GranularityOpt, SplitOpt
from toolchain.cli.outputs import check_output, check_plot, staged, write_output

AllowOutside = Annotated[
    bool,
    typer.Option("--allow-outside", help="Let file: references read outside the instance's folder and CWD."),
]


def parse_raw_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to a dict; values are parsed as JSON when they parse, else kept as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out


def placement_from_json(data: Any, path: str) -> tuple[dict[str, str], dict[str, float] | None]:
    """Accept ``{layer: device}`` or a result JSON (with ``placement`` and optional ``schedule``)."""
    schedule = None
    if isinstance(data, dict) and isinstance(data.get("placement"), dict):
        sched = data.get("schedule")
        schedule = sched if isinstance(sched, dict) and sched else None
        data = data["placement"]
    if isinstance(data, dict):
        split = sorted(k for k, v in data.items() if isinstance(v, list))
        if split:
            raise UserError(
                f"{path}: placement: layer(s) {', '.join(split[:5])} are split into parts on several devices "
                "(solved with --split); evaluate the split instance instead: `dnnpart transform FILE --split ... "
                "-o split.yaml`, then `dnnpart evaluate split.yaml --placement` with the result's "
                "granularity.node_placement"
            )
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise UserError(
            f"{path}: expected a JSON object {{layer id: device id}} or a result with 'placement'"
        )
    if schedule is not None and not all(isinstance(v, int | float) for v in schedule.values()):
        raise UserError(f"{path}: schedule: expected {{layer id: start seconds}}")
    return data, schedule


SolverExecutable = Annotated[
    Path | None,
    typer.Option(
        "--solver-executable",
        help="With --solver pyomo:NAME: the path of NAME's executable (this file is run; NAME itself "
        "must be a Pyomo solver name, never a path).",
    ),
]


def set_solver_executable(solver: str, executable: Path | None) -> None:
    """Give ``pyomo:NAME`` an explicit executable (a path is accepted only this way).

    Raises
    ------
    UserError
        If the solver is not ``pyomo:NAME`` of a solver run as an executable, or the path is not an
        executable regular file.
    """
    if executable is None:
        return
    family, _, name = solver.partition(":")
    if family != "pyomo" or not name:
        raise UserError(f"--solver-executable {executable}: only for --solver pyomo:NAME (got {solver!r})")
    from solvers.milp import pyomo_backend

    if name not in pyomo_backend.legacy_names() or name in pyomo_backend.contrib_names():
        raise UserError(
            f"--solver-executable {executable}: Pyomo solver {name!r} is not one that runs an executable "
            "(use a solver name such as cbc, glpk, scip, cplex, gurobi or asl)"
        )
    if not executable.is_file() or not os.access(executable, os.X_OK):
        raise UserError(f"--solver-executable {executable}: expected an executable file")
    pyomo_backend.EXECUTABLES[name] = str(executable.resolve())


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""

    @app.command()
    def validate(
        files: Annotated[list[Path], typer.Argument(help="Instance files (YAML or JSON).")],
        allow_outside: AllowOutside = False,
    ) -> None:
        """Check instance files against the format and its consistency rules."""
        from toolchain.cli.guard import describe, report

        codes: list[int] = []  # exit codes of the files that failed
        for f in files:
            try:
                with user_errors():
                    inst = load(f, allow_outside)
                    console.print(
                        f"[green]ok[/] {esc(f)}: {esc(inst.name)} ({inst.n} layers, {inst.k} devices, "
                        f"objective {esc(inst.problem.objective)}, {inst.problem.execution})",
                        highlight=False,
                        markup=True,
                    )
                    if inst.workload is not None:  # version 2: requests and the routes computed at load
                        from formulation.routing import describe_routes

                        wl = inst.workload
                        console.print(
                            f"  {len(wl.requests)} requests, aggregate {wl.aggregate}, contention "
                            f"{wl.contention}, routing {wl.routing}",
                            highlight=False,
                            markup=False,
                        )
                        for line in describe_routes(inst.system, wl.routes):
                            console.print(f"  route {line}", highlight=False, markup=False)
                    if inst.problem.scenarios is not None:  # network states: docs/instance-format.md §10
                        from toolchain.cli.states import describe as describe_states

                        for line in describe_states(inst):
                            console.print(f"  {line}", highlight=False, markup=False)
            except typer.Exit as exc:
                codes.append(exc.exit_code)
            except Exception as exc:  # a bug met on one file: report it and go on with the others
                described = describe(exc)
                if described is None:
                    raise
                codes.append(report(described, exc).exit_code)
        if codes:
            raise typer.Exit(EXIT_BAD_INPUT if EXIT_BAD_INPUT in codes else max(codes))

    @app.command()
    def solve(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        solver: Annotated[
            str, typer.Option("--solver", "-s", help="Solver name (see `dnnpart solvers`).")
        ] = "auto",
        time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds.")] = None,
        gap: Annotated[float | None, typer.Option("--gap", help="Relative gap to stop at.")] = None,
        threads: Annotated[int | None, typer.Option("--threads")] = None,
        seed: Annotated[int | None, typer.Option("--seed")] = None,
        option: Annotated[
            list[str] | None,
            typer.Option("--option", help="Raw backend option KEY=VALUE (repeatable; no short flag: -o is --out)."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the result as JSON (docs/instance-format.md §6).")
        ] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the JSON result here.")] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the solver log (on stderr).")] = False,
        show_progress: Annotated[
            bool | None,
            typer.Option(
                "--progress/--no-progress",
                help="One live line on stderr (incumbent, bound, gap, time) after 1 s of solving; "
                "default: on when stderr is a terminal, without --json and -v.",
            ),
        ] = None,
        plot: Annotated[
            Path | None, typer.Option("--plot", help="Draw the partition here (parallel mode: also a Gantt chart).")
        ] = None,
        write_model: Annotated[
            Path | None,
            typer.Option("--write-model", help="Also write the MILP formulation here (.lp or .mps)."),
        ] = None,
        granularity: GranularityOpt = None,
        split: SplitOpt = None,
        allow_outside: AllowOutside = False,
        solver_executable: SolverExecutable = None,
    ) -> None:
        """Solve an instance and print the partition, its metrics and the proof (bound, gap)."""
        from solvers.options import SolverOptions
        from solvers.registry import get_solver

        with user_errors():
            # Outputs are checked first: a result found after a long solve must not be lost.
            if out is not None and "=" in out.name and out.suffix.lower() != ".json":
                # -o used to be --option: a KEY=VALUE given to it now would silently become a file
                raise UserError(
                    f"-o/--out {out}: looks like a backend option; -o now means --out (the output file), "
                    "pass backend options as --option KEY=VALUE"
                )
            check_output(out, "--out")
            check_output(write_model, "--write-model")  # its format is checked as it is written, before the solve
            check_plot(plot)
            set_solver_executable(solver, solver_executable)
            inst = load(file, allow_outside)
            view = granularity_cli.prepare(inst, granularity, split or []) if granularity or split else None
            inst = view.instance if view is not None else inst
            try:
                opts = SolverOptions(
                    time_limit_s=time_limit,
                    gap=gap,
                    threads=threads,
                    seed=seed,
                    verbose=verbose,
                    raw=parse_raw_options(option or []),
                )
            except ValueError as exc:
                raise UserError(str(exc)) from None
            if write_model is not None:
                from solvers.milp.export import write_model as export_model

                try:
                    with staged(write_model) as tmp:
                        export_model(inst, tmp)
                except ValueError as exc:
                    raise UserError(str(exc)) from None
                err_console.print(f"model written to {write_model}", highlight=False)
            from toolchain.cli.progress import live_line, wanted

            with live_line(wanted(show_progress, as_json=as_json, verbose=verbose)):
                if verbose:  # the engine's live log goes to stderr; stdout keeps only the result
                    from toolchain.cli.logs import stdout_to_stderr

                    with stdout_to_stderr() as echo:
                        res = get_solver(solver).solve(inst, opts)
                    echoed = echo.bytes
                else:
                    res = get_solver(solver).solve(inst, opts)
                    echoed = 0
            if res.status.value == "infeasible":  # proven: name the conflicting constraints
                from solvers.conflict import attach_conflict

                attach_conflict(inst, res, time_limit_s=time_limit)
        payload = res.to_dict(with_log=verbose)
        if view is not None:  # placement on the instance's own layer ids; the solved view under granularity
            payload["granularity"] = granularity_cli.report(view, res)
            if res.placement:
                payload["granularity"]["node_placement"] = payload["placement"]
                payload["granularity"]["node_schedule"] = payload.get("schedule") or {}
                payload["placement"] = payload["granularity"]["placement"]
                payload["schedule"] = {}  # node start times do not apply to the layers merged into a node
        if inst.problem.scenarios is not None and res.metrics is not None:  # per state, with regret
            from toolchain.robust import state_report

            with user_errors():
                payload["scenarios"] = state_report(inst, res.placement, time_limit_s=time_limit,
                                                    schedule=res.schedule or None)
        if verbose:  # once: the captured log only when the engine echoed nothing live
            from toolchain.cli.logs import scaled_units_note

            if not echoed and res.log:
                err_console.print(res.log, highlight=False, markup=False)
            err_console.print(scaled_units_note(inst, res.extra), highlight=False, markup=False)
        if out is not None:
            write_output(out, dump_json(payload) + "\n")
        if as_json:
            print(dump_json(payload))
        else:
            print_result(inst, res)
            if "scenarios" in payload:
                from toolchain.cli.states import show

                show(payload["scenarios"])
            if res.conflict is not None:
                console.print(f"conflict: {res.conflict['summary']}", highlight=False, markup=False)
            if res.metrics is not None:
                from formulation.units import format_quantity
                from toolchain.bottleneck import bottleneck

                name, busy = bottleneck(res.metrics)
                shown = format_quantity(busy, "time", digits=4)
                console.print(f"bottleneck: {name}, busy {shown} per inference (sets the period)", highlight=False)
            if view is not None:
                granularity_cli.print_original(view, res)
        if plot is not None and res.metrics is not None:
            from toolchain.plots import plot_solution

            with staged(plot) as tmp:
                written = plot_solution(inst, res.metrics, tmp)
            for w in written:
                err_console.print(f"plot written to {plot.parent / w.name}", highlight=False)
        raise typer.Exit(exit_code_of(res))

    @app.command()
    def evaluate(
        file: Annotated[Path, typer.Argument(help="Instance file.")],
        placement: Annotated[
            Path, typer.Option("--placement", "-p", help="JSON {layer: device}, or a result JSON.")
        ],
        schedule: Annotated[
            Path | None, typer.Option("--schedule", help="JSON {layer: start seconds} (parallel mode).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        allow_outside: AllowOutside = False,
    ) -> None:
        """Evaluate a given placement (and schedule) under the instance's cost model."""
        from formulation.evaluator import evaluate as do_evaluate

        with user_errors():
            inst = load(file, allow_outside)
            given_placement = read_json(placement, "the placement")
            pl, sched = placement_from_json(given_placement, str(placement))
            if schedule is not None:
                given = read_json(schedule, "the schedule")
                if not isinstance(given, dict):
                    raise UserError(f"{schedule}: schedule: expected a JSON object {{layer id: start seconds}}")
                _, sched = placement_from_json({"placement": pl, "schedule": given}, str(schedule))
            try:
                from formulation.choices import choices_from_json  # variants and exits: §11.4

                ev = do_evaluate(
                    inst,
                    pl,
                    sched if inst.problem.execution == "parallel" else None,
                    choices=choices_from_json(given_placement),
                )
            except ValueError as exc:
                raise UserError(f"{placement}: {exc}") from None
        if as_json:
            print(
                dump_json(
                    {
                        "instance": inst.name,
                        "objective": ev.objective,
                        "placement": ev.placement,
                        "schedule": ev.schedule,
                        "metrics": ev.to_dict(),
                    }
                )
            )
        else:
            console.print(
                f"[bold]{esc(inst.name)}[/] objective {ev.objective:.6g} "
                f"({'feasible' if ev.feasible else 'INFEASIBLE'})",
                highlight=False,
                markup=True,
            )
            print_metrics(inst, ev)
            if ev.scenarios:
                from toolchain.cli.states import show

                show(ev.scenarios)
        raise typer.Exit(EXIT_OK if ev.feasible else 1)

    @app.command("solvers")
    def list_solvers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """List registered solvers: availability, exactness and capabilities."""
        from rich.table import Table

        from solvers.registry import families, names, solver_info

        infos = [solver_info(n) for n in names()]
        if as_json:
            print(
                dump_json(
                    [
                        {
                            "name": i.name,
                            "available": i.available,
                            "reason": i.reason,
                            "exact": i.exact,
                            "capabilities": i.capabilities.to_dict(),
                            "description": i.description,
                        }
                        for i in infos
                    ]
                )
            )
            return
        t = Table(title="solvers")
        cols = ("name", "available", "exact", "objectives", "execution", "constraints", "graph / size", "version 2")
        for col in cols:
            t.add_column(col)
        for i in infos:
            cap = i.capabilities.to_dict()
            size = cap["graph"] + (f", <= {cap['max_devices']} devices" if cap["max_devices"] else "")
            t.add_row(
                i.name,
                "yes" if i.available else f"no: {i.reason}",
                "yes" if i.exact else "no",
                ",".join(cap["objectives"]),
                ",".join(cap["executions"]),
                ",".join(cap["constraints"]),
                size,
                ",".join(cap["workload"]) or "-",  # contention models (and routing) of version 2
            )
        console.print(t)
        for fam in families():
            console.print(f"family [cyan]{fam}:NAME[/] (e.g. {fam}:cbc)", highlight=False, markup=True)

    @app.command()
    def schema(
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")
        ] = None,
        version: Annotated[int, typer.Option("--version", help="Format version: 1 or 2.")] = 1,
    ) -> None:
        """Print the JSON Schema of instance files (generated from the pydantic model)."""
        from formulation.schema import json_schema
        from formulation.schema_v2 import json_schema_v2

        check_output(out, "--out")
        if version not in (1, 2):
            console.print(f"[red]error[/]: --version must be 1 or 2, got {version}", markup=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        text = json.dumps(json_schema() if version == 1 else json_schema_v2(), indent=2) + "\n"
        if out is None:
            print(text, end="")
        else:
            write_output(out, text)
