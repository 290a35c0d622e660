"""``dnnpart profile`` (measure per-layer latencies here) and ``dnnpart scenario`` (system files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolchain.cli.common import UserError, console, err_console, user_errors
from toolchain.cli.outputs import check_output, write_output


def _write_yaml(data: dict[str, Any], output: Path | None, header: list[str]) -> None:
    import yaml

    text = "".join(f"# {h}\n" for h in header) + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None, width=float("inf")
    )
    if output is None:
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    else:
        write_output(output, text, create_parents=True)


MAX_SCENARIO_DEVICES = 1024
"""Most devices ``dnnpart scenario`` builds (``phone:99999999999`` would never finish)."""


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _figure(entry: dict[str, Any], key: str) -> str:
    """A catalogue figure as written there (each has a value and a source), '-' when absent."""
    item = entry.get(key)
    return str(item.get("value", "-")) if isinstance(item, dict) else ("-" if item is None else str(item))


def _show_catalog() -> None:
    """The device and network catalogues, one line per entry with its figures (sources in
    toolchain/catalog/); lines, not a table, so that no figure is cut in a narrow terminal."""
    from toolchain import catalog

    dev_cols = ("compute", "memory", "memory_bandwidth", "power_active", "power_idle", "price")
    net_cols = ("bandwidth", "latency", "tx_power", "rx_power", "price")
    console.print("devices (--devices NAME[:COUNT],...):", highlight=False)
    for k, d in catalog.devices().items():
        figs = ", ".join(f"{c.replace('_', ' ')} {_figure(d, c)}" for c in dev_cols)
        console.print(f"  {k} ({d.get('tier', '-')}): {figs}; {d.get('name', '')}", highlight=False, soft_wrap=True)
    console.print("networks (--network NAME[,NAME...]):", highlight=False)
    for k, e in catalog.networks().items():
        figs = ", ".join(f"{c.replace('_', ' ')} {_figure(e, c)}" for c in net_cols)
        console.print(f"  {k}: {figs}; {e.get('name', '')}", highlight=False, soft_wrap=True)
    console.print("every figure's source: toolchain/catalog/devices.yaml and networks.yaml", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``profile`` and ``scenario``."""

    @app.command("profile")
    def profile(
        model: Annotated[str, typer.Argument(
            help="A zoo model name (e.g. resnet18), MODULE:FACTORY or path/to/file.py:FACTORY. The factory and the "
                 "module's forward are executed: name only code you trust.")],
        device: Annotated[str, typer.Option(help="Where to run: cpu or cuda (cuda only when available).")] = "cpu",
        repeats: Annotated[int, typer.Option(help="Timed runs; each layer reports median and quartiles.")] = 10,
        warmup: Annotated[int, typer.Option(help="Untimed runs before timing.")] = 3,
        name: Annotated[str | None, typer.Option(help="Device id in the latency table (default host-DEVICE).")] = None,
        input_shape: Annotated[list[str] | None, typer.Option(
            "--input-shape", help="Shape of a positional input, e.g. 1,3,224,224 (repeatable).")] = None,
        dtype: Annotated[str, typer.Option(help="dtype of the --input-shape inputs.")] = "float32",
        level: Annotated[str, typer.Option(help="Layer granularity: module or op.")] = "module",
        calibrate: Annotated[bool, typer.Option(
            "--calibrate", help="Fit the device's effective compute and memory bandwidth (roofline).")] = False,
        model_out: Annotated[Path | None, typer.Option(
            "--model-out", help="Also write the imported model (same layer ids) to this file.")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="YAML file (default: stdout).")] = None,
    ) -> None:
        """Measure every layer's latency on this machine and write a latency table for a device."""
        with user_errors():
            check_output(output, "--output", create_parents=True)
            check_output(model_out, "--model-out", create_parents=True)
            if repeats < 1 or warmup < 0:
                raise UserError(f"--repeats {repeats} / --warmup {warmup}: need repeats >= 1 and warmup >= 0")
            if device not in ("cpu", "cuda"):
                raise UserError(f"--device {device!r}: expected cpu or cuda")
            if level not in ("module", "op"):
                raise UserError(f"--level {level!r}: expected module or op")
            import torch

            if device == "cuda" and not torch.cuda.is_available():
                raise UserError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
            from toolchain.cli.importers import resolve_module, user_code
            from toolchain.importers.common import dump_model_yaml
            from toolchain.profiling import calibrate as fit
            from toolchain.profiling import profile_module

            module, args, kwargs, default = resolve_module(model, input_shape, dtype, meta=True)
            with user_code(model, "running the module"):
                prof = profile_module(module, args, device=device, repeats=repeats, warmup=warmup, level=level,
                                      example_kwargs=kwargs, name=default, device_name=name)
            cal = fit(prof) if calibrate else None
            header = [f"Measured by `dnnpart profile {model}` on {prof.host}, torch {torch.__version__}, "
                      f"{device}, {repeats} timed runs after {warmup} warm-up runs.",
                      "latency: per-layer medians in seconds (paste into a system file's latency: section); "
                      "spread: quartiles and minimum."]
            _write_yaml(prof.to_data(cal), output, header)
            if model_out is not None:
                write_output(model_out, dump_model_yaml(prof.model, [f"Imported by `dnnpart profile {model}` "
                                                                     f"(level {level})."]), create_parents=True)
            total = sum(t.median_s for t in prof.layers.values())
            err_console.print(f"{len(prof.layers)} layers, sum of medians {total * 1e3:.3f} ms, "
                              f"eager forward {prof.eager_median_s * 1e3:.3f} ms", highlight=False)
            if cal is not None:
                err_console.print(f"fit: compute {cal.compute_flops_per_s / 1e9:.4g} GFLOP/s, memory bandwidth "
                                  f"{cal.memory_bandwidth_bytes_per_s / 1e9:.4g} GB/s", highlight=False)
                for op, f in sorted(cal.per_op.items()):
                    err_console.print(f"  {op:<20} {f.layers:>4} layers  measured {f.measured_s * 1e3:9.3f} ms  "
                                      f"predicted {f.predicted_s * 1e3:9.3f} ms  median |error| "
                                      f"{f.median_abs_rel_error:.0%}", highlight=False)

    @app.command("scenario")
    def scenario(
        devices: Annotated[str | None, typer.Option(
            help="Catalogue devices, comma-separated; NAME:COUNT for copies (e.g. phone,cloud or rpi3b:4).")] = None,
        network: Annotated[str | None, typer.Option(
            help="Catalogue network for every link, or one per link, comma-separated (e.g. lte or wifi,wan).")] = None,
        topology: Annotated[str, typer.Option(help="auto, chain, star or full.")] = "auto",
        sink: Annotated[str | None, typer.Option(help="Sink device id, or 'none' (default: the source).")] = None,
        source: Annotated[str | None, typer.Option(help="Source device id (default: the first device).")] = None,
        trusted: Annotated[str | None, typer.Option(help="Trusted device ids (default: tiers end and edge).")] = None,
        list_catalog: Annotated[bool, typer.Option("--list", help="List the catalogue and exit.")] = False,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="System file (default: stdout).")] = None,
        users: Annotated[int | None, typer.Option(
            help="Write a version-2 instance: this many users, each with its own --devices device.")] = None,
        model: Annotated[str | None, typer.Option(
            help="With --users: zoo model(s) the users run, comma-separated, assigned in turn.")] = None,
        edge: Annotated[str | None, typer.Option(help="With --users: the shared edge server (catalogue).")] = None,
        cloud: Annotated[str | None, typer.Option(help="With --users: a cloud behind the edge (over wan).")] = None,
        aggregate: Annotated[str, typer.Option(help="With --users: sum or max.")] = "max",
        contention: Annotated[str, typer.Option(help="With --users: none, schedule or share.")] = "share",
        own_device: Annotated[bool, typer.Option(
            help="With --users: each user's layers only on its own device and the servers (Tang et al.'s "
                 "setting), or also on other users' devices.")] = True,
    ) -> None:
        """Write a system file (devices and links) built from the device and network catalogues.

        With --users, write a version-2 instance (docs/instance-format.md §9) instead: N users, each
        with its own --devices device linked by --network to one --edge server, running --model.
        """
        with user_errors():
            check_output(output, "--output", create_parents=True)
            from toolchain import catalog
            from toolchain.scenario import build_system, build_workload, expand_devices

            if list_catalog:
                _show_catalog()
                return
            if devices is None or network is None:
                raise UserError("scenario: --devices and --network are required (see `dnnpart scenario --list`)")
            if users is not None:
                if not (1 <= users <= MAX_SCENARIO_DEVICES) or model is None or edge is None:
                    raise UserError(f"--users {users}: expected 1..{MAX_SCENARIO_DEVICES} with --model and --edge")
                if aggregate not in ("sum", "max") or contention not in ("none", "schedule", "share"):
                    raise UserError(f"--aggregate {aggregate!r} / --contention {contention!r}: expected "
                                    "sum|max and none|schedule|share")
                try:
                    data = build_workload(users, _split(model), devices, edge, network, cloud=cloud,
                                          aggregate=aggregate, contention=contention,  # type: ignore[arg-type]
                                          own_device=own_device)
                except (KeyError, ValueError) as exc:
                    raise UserError(str(exc.args[0]) if exc.args else str(exc)) from None
                _write_yaml(data, output, [f"Built by `dnnpart scenario --users {users} --model {model} "
                                           f"--devices {devices} --edge {edge} --network {network}"
                                           f"{'' if own_device else ' --no-own-device'}` "
                                           "(format version 2)."])
                return

            if topology not in ("auto", "chain", "star", "full"):
                raise UserError(f"--topology {topology!r}: expected auto, chain, star or full")
            devs = _split(devices)
            total = sum(int(c) if c.strip().isdigit() else 1 for c in (d.partition(":")[2] for d in devs))
            if total > MAX_SCENARIO_DEVICES:
                raise UserError(f"--devices {devices!r}: {total} devices; expected at most {MAX_SCENARIO_DEVICES}")
            try:
                system = build_system(
                    devs, _split(network), topology=topology,  # type: ignore[arg-type]
                    source=source, sink="source" if sink is None else (None if sink == "none" else sink),
                    trusted=_split(trusted) if trusted is not None else None,
                )
                names = [f"{i} = {catalog.device(k)['name']}" for i, k in expand_devices(devs)]
            except (KeyError, ValueError) as exc:
                raise UserError(str(exc.args[0]) if exc.args else str(exc)) from None
            header = [f"Built by `dnnpart scenario --devices {devices} --network {network}` from toolchain/catalog/ "
                      "(every figure's source is there).", "Devices: " + "; ".join(names) + "."]
            _write_yaml(system, output, header)
