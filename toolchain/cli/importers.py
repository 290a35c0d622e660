"""``dnnpart import``: a sub-app of importers (``torch``, ``onnx``; others may add subcommands).

Other modules add importers with ``@import_app.command("NAME")``; this module registers the
sub-app once under the name ``import``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from toolchain.cli.common import UserError, console, err_console, user_errors

import_app = typer.Typer(
    name="import",
    help="Import a real network (PyTorch module, ONNX file) as a dnnpart model file.",
    no_args_is_help=True,
)

Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Model file to write (YAML); default: print to stdout.")
]


def parse_shape(text: str, option: str = "--input-shape") -> list[int]:
    """``"1,3,224,224"`` -> ``[1, 3, 224, 224]``, or a :class:`UserError` naming the option and value."""
    try:
        dims = [int(x) for x in text.split(",")]
    except ValueError:
        dims = []
    if not dims or any(d < 1 for d in dims):
        raise UserError(f"{option} {text!r}: expected positive integers separated by commas, e.g. 1,3,224,224")
    return dims


def resolve_module(
    target: str, input_shapes: list[str] | None, dtype: str, meta: bool
) -> tuple[Any, tuple[Any, ...], dict[str, Any], str]:
    """Build the module named by ``target`` and its example inputs.

    ``target`` is a zoo model name (``resnet50``) or ``MODULE:FACTORY``; the factory is called
    without arguments (under ``torch.device("meta")`` when ``meta``) and returns a module, or a
    tuple ``(module, args[, kwargs])``. ``input_shapes`` (one per positional input) override
    the example inputs. Returns ``(module, args, kwargs, name)``.
    """
    import torch

    if ":" not in target:
        from toolchain.models import MODELS

        entry = MODELS.get(target)
        if entry is None or entry.kind != "torch":
            known = ", ".join(k for k, m in MODELS.items() if m.kind == "torch")
            raise UserError(
                f"model {target!r}: expected MODULE:FACTORY (e.g. mypkg.nets:build) or a zoo model ({known})"
            )
        module, args, kwargs = entry.build()
        name = target
    else:
        mod_name, _, attr = target.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"model {target!r}: cannot load {attr!r} from module {mod_name!r} ({exc})") from None
        with torch.device("meta") if meta else torch.device("cpu"):
            built = factory()
        if isinstance(built, tuple):
            module, args = built[0], tuple(built[1]) if isinstance(built[1], list | tuple) else (built[1],)
            kwargs = dict(built[2]) if len(built) > 2 else {}
        else:
            module, args, kwargs = built, (), {}
        name = attr
    if not isinstance(module, torch.nn.Module):
        raise UserError(f"model {target!r}: the factory returned {type(module).__name__}, expected a torch.nn.Module")
    if input_shapes:
        dt = getattr(torch, dtype, None)
        if not isinstance(dt, torch.dtype):
            raise UserError(f"--dtype {dtype!r}: not a torch dtype (e.g. float32, float16, int64)")
        device = "meta" if meta else "cpu"
        args = tuple(torch.zeros(parse_shape(s), dtype=dt, device=device) for s in input_shapes)
    if not args:
        raise UserError(f"model {target!r}: give the example input shape with --input-shape, e.g. 1,3,224,224")
    return module, args, kwargs, name


def _emit(model: dict[str, Any], output: Path | None, header: list[str]) -> None:
    from toolchain.importers.common import dump_model_yaml, totals

    text = dump_model_yaml(model, header)
    if output is None:
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    t = totals(model)
    err_console.print(
        f"{model['name']}: {int(t['layers'])} layers, {t['flops'] / 1e9:.4g} GFLOP, "
        f"{t['params'] / 1e6:.4g} M parameters" + (f" -> {output}" if output else ""),
        highlight=False,
    )


@import_app.command("torch")
def import_torch(
    target: Annotated[str, typer.Argument(help="MODULE:FACTORY returning an nn.Module (or module, args[, kwargs]), "
                                                "or a zoo model name such as resnet50.")],
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", help="Shape of a positional input, e.g. 1,3,224,224 (repeat for several inputs).")] = None,
    dtype: Annotated[str, typer.Option(help="dtype of the --input-shape inputs.")] = "float32",
    level: Annotated[str, typer.Option(help="Layer granularity: module (leaf modules) or op (ATen ops).")] = "module",
    method: Annotated[str, typer.Option(help="Tracer: auto (torch.export, then torch.fx), export or fx.")] = "auto",
    name: Annotated[str | None, typer.Option(help="Model name (default: the factory or zoo name).")] = None,
    meta: Annotated[bool, typer.Option(help="Build the module on the meta device (no weight memory).")] = True,
    output: Output = None,
) -> None:
    """Import a PyTorch module (random weights, nothing downloaded) as a model file."""
    with user_errors():
        if level not in ("module", "op"):
            raise UserError(f"--level {level!r}: expected module or op")
        if method not in ("auto", "export", "fx"):
            raise UserError(f"--method {method!r}: expected auto, export or fx")
        from toolchain.importers.pytorch import trace_module

        module, args, kwargs, default = resolve_module(target, input_shape, dtype, meta)
        try:
            tr = trace_module(module, args, level, example_kwargs=kwargs, name=name or default,  # type: ignore[arg-type]
                              method=method)  # type: ignore[arg-type]
        except Exception as exc:
            raise UserError(f"model {target!r}: tracing failed ({type(exc).__name__}: {str(exc)[:300]})") from None
        header = [f"Imported by `dnnpart import torch {target}` (level {level}, traced with torch.{tr.method}).",
                  "FLOPs count a multiply-add as 2; attrs.flops_by says which counter applied."]
        if tr.unknown_ops:
            header.append(f"Operators counted at 1 FLOP per output element (unknown): {sorted(tr.unknown_ops)}")
        _emit(tr.model, output, header)


@import_app.command("onnx")
def import_onnx(
    file: Annotated[Path, typer.Argument(help="ONNX model file.")],
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", help="NAME=1,3,224,224 for an input with symbolic dimensions (repeatable).")] = None,
    level: Annotated[str, typer.Option(help="Layer granularity: op (one per node) or module (per name scope).")] = "op",
    name: Annotated[str | None, typer.Option(help="Model name (default: the graph name).")] = None,
    output: Output = None,
) -> None:
    """Import an ONNX model by shape inference (the model is never run)."""
    with user_errors():
        if level not in ("module", "op"):
            raise UserError(f"--level {level!r}: expected op or module")
        shapes: dict[str, list[int]] = {}
        for item in input_shape or []:
            key, sep, dims = item.partition("=")
            if not sep or not key:
                raise UserError(f"--input-shape {item!r}: expected NAME=DIMS, e.g. input=1,3,224,224")
            shapes[key] = parse_shape(dims)
        if not file.is_file():
            raise FileNotFoundError(2, "no such file", str(file))
        import onnx

        from toolchain.importers.onnx_model import from_onnx

        try:
            proto = onnx.load(str(file))
        except Exception as exc:
            raise UserError(f"{file}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
        try:
            model = from_onnx(proto, level, name=name or proto.graph.name or file.stem,  # type: ignore[arg-type]
                              input_shapes=shapes or None)
        except ValueError as exc:
            raise UserError(f"{file}: {exc}") from None
        _emit(model, output, [f"Imported by `dnnpart import onnx {file.name}` (level {level}, shape inference)."])


@import_app.command("pipedream")
def import_pipedream(
    file: Annotated[Path, typer.Argument(help="PipeDream profile (graph.txt).")],
    device: Annotated[str, typer.Option(help="Device id of the latency table (the profiled GPU).")] = "profiled",
    per_sample: Annotated[bool, typer.Option(
        "--per-sample", help="Divide bytes, FLOPs and times by the batch size (when the file determines it).")] = False,
    latency_out: Annotated[Path | None, typer.Option(
        "--latency-out", help="Also write the forward times as a latency table (YAML) for a system file.")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the file name).")] = None,
    output: Output = None,
) -> None:
    """Import a PipeDream per-layer profile: the model, and its forward times as a latency table."""
    with user_errors():
        from toolchain.importers.pipedream import ProfileError, from_pipedream, header_lines

        if not file.is_file():
            raise FileNotFoundError(2, "no such file", str(file))
        try:
            res = from_pipedream(file, device=device, name=name, per_sample=per_sample)
        except (ProfileError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None
        header = header_lines(res, file.name)
        _emit(res.model, output, header)
        if latency_out is not None:
            import yaml

            latency_out.parent.mkdir(parents=True, exist_ok=True)
            latency_out.write_text("".join(f"# {h}\n" for h in header) + yaml.safe_dump(
                {"latency": res.latency}, sort_keys=False, default_flow_style=None, width=float("inf")))


def register(app: typer.Typer) -> None:
    """Add the ``import`` sub-app."""
    app.add_typer(import_app, name="import")
