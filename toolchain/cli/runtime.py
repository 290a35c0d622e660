"""``dnnpart export-partition``, ``dnnpart run`` and ``dnnpart calibrate-links`` (docs/runtime.md)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from formulation.errors import EXIT_NO_SOLUTION
from toolchain.cli.common import UserError, console, dump_json, fail, load, read_json, user_errors
from toolchain.cli.outputs import check_output, check_plot, write_output

OUTPUT_TOL = 1e-5
"""Largest absolute difference to the monolithic forward accepted for float32 outputs."""

ModelOpt = Annotated[str, typer.Option(
    "--model", help="Zoo model name (e.g. alexnet) or MODULE:FACTORY (runs that code: name only code you trust).")]
PlacementOpt = Annotated[Path, typer.Option("--placement", "-p", help="JSON {layer: device}, or a result JSON.")]
AllowOutside = Annotated[bool, typer.Option("--allow-outside", help="Follow file references outside the folder.")]


def _prepare(file: Path, model: str, placement: Path, allow_outside: bool) -> tuple[Any, dict[str, str], Any]:
    """Instance, placement and the cut model (errors become exit 2)."""
    from toolchain.cli.core import placement_from_json
    from toolchain.runtime.models import real_model
    from toolchain.runtime.partition import cut

    inst = load(file, allow_outside)
    if inst.workload is not None:
        refuse_workload(file, inst)
    pl, _ = placement_from_json(read_json(placement, "the placement"), str(placement))
    try:
        inst.placement_indices(pl)
    except ValueError as exc:
        raise UserError(f"{placement}: {exc}") from None
    from formulation.evaluator import evaluate

    missing = [v.message for v in evaluate(inst, pl).violations if v.kind == "link"]
    if missing:
        raise UserError(f"{placement}: the placement needs links the instance lacks: {missing[0]}")
    rm = real_model(model)
    return inst, pl, cut(inst, pl, rm.module, rm.args, rm.kwargs, where=f"model {model!r}")


def refuse_workload(file: Path, inst: Any) -> None:
    """The runtime executes one model of a version-1 instance; a version-2 workload is refused (exit 2)."""
    wl = inst.workload
    models = sorted({r.model for r in wl.requests})
    raise UserError(
        f"{file}: a version-2 instance ({len(wl.requests)} request(s) of the model(s) {', '.join(models)}, "
        f"contention {wl.contention!r}, routing {wl.routing!r}); `dnnpart run` and `export-partition` execute "
        "one model of a version-1 instance over direct links (docs/runtime.md): write each request as a "
        "version-1 instance of its model to run its part of the placement"
    )


def _slowdowns(items: list[str] | None, devices: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for it in items or []:
        dev, _, val = it.partition("=")
        try:
            f = float(val)
        except ValueError:
            f = math.nan
        if dev not in devices or not f >= 1.0 or not math.isfinite(f):
            raise UserError(f"--slowdown {it!r}: expected DEVICE=F with DEVICE one of {list(devices)} and F >= 1")
        out[dev] = f
    return out


def register(app: typer.Typer) -> None:
    """Add ``export-partition``, ``run`` and ``calibrate-links``."""

    @app.command("export-partition")
    def export_partition(
        file: Annotated[Path, typer.Argument(help="Instance file (its layer ids must be the model's).")],
        model: ModelOpt,
        placement: PlacementOpt,
        out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the manifest and one file per device.")],
        allow_outside: AllowOutside = False,
    ) -> None:
        """Cut a PyTorch model by a placement into one part per device, with the tensors each sends."""
        from toolchain.runtime.partition import max_abs_diff, run_in_process, save

        with user_errors():
            if out.exists() and not out.is_dir():
                raise UserError(f"--out {out}: exists and is not a folder")
            _inst, _pl, part = _prepare(file, model, placement, allow_outside)
            files = save(part, out)
        diff = max_abs_diff(run_in_process(part.plan, part.parts, part.inputs), part.reference)
        console.print(f"wrote {len(files)} files under {out}; the parts reproduce the model's outputs "
                      f"(max abs difference {diff:.3g})", markup=False, highlight=False)
        if not diff <= OUTPUT_TOL:
            fail(f"the parts do not reproduce the model's outputs (max abs difference {diff:.3g})", EXIT_NO_SOLUTION)

    @app.command("run")
    def run(
        file: Annotated[Path, typer.Argument(help="Instance file (links are emulated; times are this host's).")],
        model: ModelOpt,
        placement: PlacementOpt,
        mode: Annotated[str, typer.Option(help="sequential, parallel or stream.")] = "parallel",
        inferences: Annotated[int, typer.Option(help="Timed inferences (after one warm-up).")] = 10,
        warmup: Annotated[int, typer.Option(help="Untimed inferences first.")] = 1,
        executor: Annotated[str, typer.Option(help="processes or ray.")] = "processes",
        slowdown: Annotated[list[str] | None, typer.Option(
            "--slowdown", help="DEVICE=F: the device sleeps (F-1) x its compute time (repeatable).")] = None,
        threads: Annotated[int, typer.Option(help="torch threads per worker.")] = 1,
        timeout: Annotated[float, typer.Option(help="Seconds any single wait may take.")] = 60.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the JSON report here.")] = None,
        plot: Annotated[Path | None, typer.Option(
            "--plot", help="Predicted vs measured Gantt charts (.png, .pdf, .svg...).")] = None,
        allow_outside: AllowOutside = False,
    ) -> None:
        """Run a placement on one worker per device and compare measured with predicted times."""
        from toolchain.runtime.driver import run_workers
        from toolchain.runtime.partition import max_abs_diff, save
        from toolchain.runtime.report import compare
        from toolchain.runtime.report import plot as draw

        with user_errors():
            check_output(out, "--out")
            check_plot(plot)
            if mode not in ("sequential", "parallel", "stream"):
                raise UserError(f"--mode {mode!r}: expected sequential, parallel or stream")
            if executor not in ("processes", "ray"):
                raise UserError(f"--executor {executor!r}: expected processes or ray")
            if inferences < 1 or warmup < 0 or threads < 1 or not timeout > 0:
                raise UserError("--inferences and --threads must be >= 1, --warmup >= 0, --timeout > 0")
            if mode == "stream" and inferences < 2:
                raise UserError("--mode stream needs --inferences >= 2 (throughput is measured between completions)")
            slow = _slowdowns(slowdown, load(file, allow_outside).system.device_ids)  # before the trace
            inst, _pl, part = _prepare(file, model, placement, allow_outside)
        with tempfile.TemporaryDirectory(prefix="dnnpart-run-") as tmp:
            save(part, Path(tmp))
            traces = run_workers(inst, part.plan, Path(tmp), part.inputs, mode, inferences, warmup,
                                 executor, slow, threads, timeout)
        got = [traces.outputs.get(o) for o in part.plan.outputs]
        diff = math.inf if any(g is None for g in got) else max_abs_diff(got, part.reference)
        meta = {"instance": inst.name, "model": model, "executor": executor, "threads_per_worker": threads,
                "slowdown": slow}
        rep = compare(inst, part.plan, traces, diff, meta)
        if out is not None:
            write_output(out, dump_json(rep) + "\n")
        if plot is not None:
            draw(inst, rep, str(plot))
        if as_json:
            print(dump_json(rep))
        else:
            _print_report(rep)
        if not diff <= OUTPUT_TOL:
            fail(f"the run's outputs differ from the model's by {diff:.3g} (more than {OUTPUT_TOL:g})",
                 EXIT_NO_SOLUTION)

    @app.command("calibrate-links")
    def calibrate_links(
        file: Annotated[Path, typer.Argument(help="System file, or an instance file with an inline system.")],
        runs: Annotated[list[Path], typer.Argument(help="JSON reports of `dnnpart run` (--out or --json).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the calibrated file (may be FILE).")],
        per_link: Annotated[bool, typer.Option(
            "--per-link", help="Fit each link direction on its own (default: one fit for all links).")] = False,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Fit the per-transfer overhead of measured runs and write it as link fields (overhead, overhead_bandwidth)."""
        from toolchain.runtime.calibrate import apply_to_file, fit

        with user_errors():
            check_output(out, "--out", suffixes={".yaml", ".yml", ".json"})
            reports = [read_json(p, "a run report") for p in runs]
            fits = fit(reports, per_link=per_link, names=[str(p) for p in runs])
            text = apply_to_file(file, fits)
        write_output(out, text)
        summary = {k: f.to_dict() for k, f in fits.items()}
        if as_json:
            print(dump_json({"file": str(out), "fits": summary}))
        else:
            for k, f in fits.items():
                console.print(f"{k}: overhead {f.overhead_s * 1e3:.3f} ms per transfer, "
                              f"{f.per_byte_s * 1e9:.3f} ns per byte ({f.samples} transfers)",
                              markup=False, highlight=False)
            console.print(f"wrote {out}", markup=False, highlight=False)


def _print_report(rep: dict[str, Any]) -> None:
    from rich.table import Table

    lat = rep["latency"]
    console.print(f"{rep['mode']}: latency predicted {lat['predicted_s'] * 1e3:.2f} ms, measured median "
                  f"{lat['measured_median_s'] * 1e3:.2f} ms (p95 {lat['measured_p95_s'] * 1e3:.2f} ms), "
                  f"error {lat['rel_error']:+.1%}; outputs match to {rep['outputs_match']:.3g}",
                  markup=False, highlight=False)
    if "throughput" in rep:
        th = rep["throughput"]
        console.print(f"throughput predicted {th['predicted_per_s']:.3f}/s, measured {th['measured_per_s']:.3f}/s, "
                      f"error {th['rel_error']:+.1%}", markup=False, highlight=False)
    t = Table(title="transfers")
    for c in ("tensor", "link", "bytes", "predicted ms", "measured ms", "error"):
        t.add_column(c)
    for r in rep["transfers"]:
        t.add_row(r["tensor"], f"{r['src']}->{r['dst']}", f"{r['bytes']:.0f}", f"{r['predicted_s'] * 1e3:.2f}",
                  f"{r['measured_median_s'] * 1e3:.2f}", f"{r['rel_error']:+.1%}")
    console.print(t)
