"""``dnnpart import msr`` and ``dnnpart export msr``: the MSR device-placement workload format.

The importer (:mod:`toolchain.importers.msr`) writes a complete instance (model, system of
accelerators and CPUs, max-load problem) that reproduces the computational model of Tarnawski et
al. (NeurIPS 2020) exactly; the exporter writes an instance of that shape back as MSR JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from formulation.yamlio import check_regular_file
from toolchain.cli.common import UserError, console, err_console, user_errors
from toolchain.cli.importers import import_app
from toolchain.cli.outputs import check_output, write_output

export_app = typer.Typer(
    name="export", help="Write an instance in another tool's format (msr).", no_args_is_help=True
)


def _seconds(text: str) -> float:
    from formulation.errors import InstanceError
    from formulation.units import parse_quantity

    try:
        value = parse_quantity(text if any(ch.isdigit() for ch in text) else f"1 {text}", "time", file="--time-unit")
    except InstanceError:
        raise UserError(f"--time-unit {text!r}: expected a time unit such as ms, s, us (or '10 ms')") from None
    if not value > 0:
        raise UserError(f"--time-unit {text!r}: expected a positive time")
    return value


@import_app.command("msr")
def import_msr(
    file: Annotated[Path, typer.Argument(help="MSR workload (JSON: maxSizePerFPGA, maxFPGAs, maxCPUs, nodes, edges).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Instance file to write (YAML); default: print to stdout.")] = None,
    contiguous: Annotated[bool, typer.Option(
        "--contiguous", help="Each device's nodes must be contiguous (the MSR contig mode).")] = False,
    fpgas: Annotated[int | None, typer.Option("--fpgas", help="Number of accelerators (default: maxFPGAs).")] = None,
    cpus: Annotated[int | None, typer.Option("--cpus", help="Number of CPU cores (default: maxCPUs).")] = None,
    time_unit: Annotated[str, typer.Option(
        help="Unit of cpuLatency, fpgaLatency and cost in the file.")] = "ms",
    bandwidth: Annotated[str, typer.Option(
        help="Accelerator channel bandwidth; tensor bytes = cost x bandwidth (a power of two keeps times exact).")]
        = "2147483648 B/s",
    name: Annotated[str | None, typer.Option(help="Instance name (default: the file name).")] = None,
) -> None:
    """Import an MSR device-placement workload as a complete max-load instance (exact model)."""
    with user_errors():
        from formulation.errors import InstanceError
        from formulation.units import parse_quantity
        from toolchain.importers.msr import MsrError, instance_yaml, msr_instance_data, read_msr

        check_output(output, "--output", create_parents=True)
        if not file.exists():
            raise FileNotFoundError(2, "no such file", str(file))
        check_regular_file(file)  # not a FIFO, a device or a folder
        try:
            bw = parse_quantity(bandwidth, "byte_rate", file="--bandwidth")
        except InstanceError as exc:
            raise UserError(exc.message()) from None
        if not bw > 0:
            raise UserError(f"--bandwidth {bandwidth!r}: expected a positive bandwidth")
        for opt, val in (("--fpgas", fpgas), ("--cpus", cpus)):
            if val is not None and val < 0:
                raise UserError(f"{opt} {val}: expected a count >= 0")
        try:
            w = read_msr(file)
            data = msr_instance_data(w, fpgas=fpgas, cpus=cpus, contiguous=contiguous, time_unit_s=_seconds(time_unit),
                                     bandwidth=bw, name=name)
        except (MsrError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None
        k, ell = (w.max_fpgas if fpgas is None else fpgas), (w.max_cpus if cpus is None else cpus)
        header = [f"Imported by `dnnpart import msr {file.name}` from the MSR device-placement format",
                  "(Tarnawski et al., NeurIPS 2020); the max-load model is reproduced exactly, see docs/msr.md."]
        text = instance_yaml(data, header)
        if output is None:
            console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        else:
            write_output(output, text, create_parents=True)
        err_console.print(f"{w.name}: {len(w.nodes)} nodes, {len(w.edges)} edges, {k} accelerators, {ell} CPUs"
                          + (", contiguous" if contiguous else "") + (f" -> {output}" if output else ""),
                          highlight=False)


@export_app.command("msr")
def export_msr(
    instance: Annotated[Path, typer.Argument(help="Instance file of the MSR shape (e.g. written by import msr).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="MSR JSON file to write; default: print to stdout.")] = None,
    time_unit: Annotated[str, typer.Option(help="Unit of the times written (cpuLatency, fpgaLatency, cost).")] = "ms",
) -> None:
    """Write an instance as an MSR device-placement workload (JSON)."""
    with user_errors():
        from toolchain.cli.common import load
        from toolchain.importers.msr import NotMsrShaped, to_msr

        check_output(output, "--output", create_parents=True)
        inst = load(instance)
        try:
            data = to_msr(inst, time_unit_s=_seconds(time_unit))
        except NotMsrShaped as exc:
            raise UserError(f"{instance}: not expressible in the MSR format: {exc}") from None
        text = json.dumps(data, indent=1)
        if output is None:
            print(text)
        else:
            write_output(output, text + "\n", create_parents=True)


def register(app: typer.Typer) -> None:
    """Add the ``export`` sub-app (``import msr`` joins the existing ``import`` sub-app)."""
    app.add_typer(export_app, name="export")
