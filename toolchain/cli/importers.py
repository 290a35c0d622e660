"""``dnnpart import``: a sub-app of importers (``torch``, ``onnx``; others may add subcommands).

Other modules add importers with ``@import_app.command("NAME")``; this module registers the
sub-app once under the name ``import``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from formulation.errors import DnnpartError, UntrustedCodeError
from formulation.yamlio import check_regular_file
from toolchain.cli.common import UserError, console, err_console, user_errors
from toolchain.cli.outputs import check_output, write_output

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


@contextlib.contextmanager
def user_code(target: str, what: str) -> Iterator[None]:
    """Run user code: any exception it raises (also ``SystemExit``) becomes exit 2 naming ``target``."""
    try:
        yield
    except (KeyboardInterrupt, DnnpartError):
        raise
    except BaseException as exc:  # user code may raise anything, SystemExit included
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise UntrustedCodeError(
            f"model {target!r}: {what} raised {detail}; rerun with DNNPART_DEBUG=1 to see its traceback"
        ) from exc


def load_factory(target: str) -> tuple[Callable[[], Any], str]:
    """The factory named by ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY``, and its name.

    The module is imported, which runs its code: name only code you trust. The current directory
    is put first on ``sys.path`` (as ``python -m`` does), so a module next to the user's files is
    found; a ``.py`` path is imported from that file, with its folder on ``sys.path`` too.
    Whatever the import or the lookup raises (``SyntaxError``, ``SystemExit``, any exception)
    becomes an :class:`UntrustedCodeError`.
    """
    mod_name, _, attr = target.rpartition(":")
    if not mod_name or not attr or not attr.isidentifier():
        raise UntrustedCodeError(
            f"model {target!r}: expected MODULE:FACTORY or path/to/file.py:FACTORY with both parts "
            "non-empty and FACTORY a Python name (e.g. mypkg.nets:build or nets.py:build)"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    with user_code(target, f"importing {mod_name!r}"):
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise UntrustedCodeError(f"model {target!r}: {mod_name}: no such file")
            folder = str(path.resolve().parent)  # its sibling modules import as they would under python
            if folder not in sys.path:
                sys.path.insert(0, folder)
            spec = importlib.util.spec_from_file_location(f"dnnpart_user_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise UntrustedCodeError(f"model {target!r}: {mod_name}: cannot be imported as a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(mod_name)
            except ModuleNotFoundError as exc:
                if exc.name is not None and mod_name.startswith(exc.name):
                    raise UntrustedCodeError(
                        f"model {target!r}: cannot load {attr!r} from module {mod_name!r}: no module named "
                        f"{exc.name!r} (searched the current directory and the installed packages; a file path "
                        "must end in .py)"
                    ) from None
                raise
    factory = getattr(module, attr, None)
    if not callable(factory):
        found = "not found" if factory is None else f"an object of type {type(factory).__name__}, not a factory"
        raise UntrustedCodeError(f"model {target!r}: {attr!r} in module {mod_name!r}: {found}")
    return factory, attr


def resolve_module(
    target: str, input_shapes: list[str] | None, dtype: str, meta: bool
) -> tuple[Any, tuple[Any, ...], dict[str, Any], str]:
    """Build the module named by ``target`` and its example inputs.

    ``target`` is a zoo model name (``resnet50``), ``MODULE:FACTORY`` or
    ``path/to/file.py:FACTORY`` (see :func:`load_factory`: this imports and runs the user's code);
    the factory is called without arguments (under ``torch.device("meta")`` when ``meta``) and
    returns a module, or a tuple ``(module, args[, kwargs])``. Whatever the user's code raises is
    an :class:`~formulation.errors.UntrustedCodeError` (exit 2) naming ``target``.
    ``input_shapes`` (one per positional input) override the example inputs. Returns ``(module, args, kwargs, name)``.
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
        factory, attr = load_factory(target)
        with torch.device("meta") if meta else torch.device("cpu"), user_code(target, "the factory"):
            built = factory()
        if isinstance(built, tuple) and not 2 <= len(built) <= 3:
            raise UntrustedCodeError(
                f"model {target!r}: the factory returned a tuple of {len(built)} items; expected a module, "
                "or (module, args) or (module, args, kwargs)"
            )
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
        write_output(output, text, create_parents=True)
    t = totals(model)
    err_console.print(
        f"{model['name']}: {int(t['layers'])} layers, {t['flops'] / 1e9:.4g} GFLOP, "
        f"{t['params'] / 1e6:.4g} M parameters" + (f" -> {output}" if output else ""),
        highlight=False,
    )


@import_app.command("torch")
def import_torch(
    target: Annotated[str, typer.Argument(help="MODULE:FACTORY or path/to/file.py:FACTORY returning an nn.Module "
                                                "(or module, args[, kwargs]), or a zoo model name such as resnet50. "
                                                "The module is imported and the factory called: this RUNS that "
                                                "code, so name only code you trust.")],
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", help="Shape of a positional input, e.g. 1,3,224,224 (repeat for several inputs).")] = None,
    dtype: Annotated[str, typer.Option(help="dtype of the --input-shape inputs.")] = "float32",
    level: Annotated[str, typer.Option(help="Layer granularity: module (leaf modules) or op (ATen ops).")] = "module",
    method: Annotated[str, typer.Option(help="Tracer: auto (torch.export, then torch.fx), export or fx.")] = "auto",
    name: Annotated[str | None, typer.Option(help="Model name (default: the factory or zoo name).")] = None,
    meta: Annotated[bool, typer.Option(help="Build the module on the meta device (no weight memory).")] = True,
    output: Output = None,
) -> None:
    """Import a PyTorch module (random weights, nothing downloaded) as a model file.

    MODULE:FACTORY imports MODULE (the current directory comes first on the import path) and
    calls FACTORY: this executes their code. An exception it raises (even SystemExit) exits 2
    with the module named.
    """
    with user_errors():
        check_output(output, "--output", create_parents=True)
        if level not in ("module", "op"):
            raise UserError(f"--level {level!r}: expected module or op")
        if method not in ("auto", "export", "fx"):
            raise UserError(f"--method {method!r}: expected auto, export or fx")
        from toolchain.importers.pytorch import trace_module

        module, args, kwargs, default = resolve_module(target, input_shape, dtype, meta)
        with user_code(target, "tracing the module (torch.export, then torch.fx)"):
            tr = trace_module(module, args, level, example_kwargs=kwargs, name=name or default,  # type: ignore[arg-type]
                              method=method)  # type: ignore[arg-type]
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
        check_output(output, "--output", create_parents=True)
        if level not in ("module", "op"):
            raise UserError(f"--level {level!r}: expected op or module")
        shapes: dict[str, list[int]] = {}
        for item in input_shape or []:
            key, sep, dims = item.partition("=")
            if not sep or not key:
                raise UserError(f"--input-shape {item!r}: expected NAME=DIMS, e.g. input=1,3,224,224")
            shapes[key] = parse_shape(dims)
        if not file.exists():
            raise FileNotFoundError(2, "no such file", str(file))
        check_regular_file(file)  # not a FIFO, a device or a folder
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
        except Exception as exc:  # a malformed model (missing types, unknown domains) fails anywhere inside
            raise UserError(
                f"{file}: cannot import this ONNX model ({type(exc).__name__}: {str(exc)[:300]}); expected a "
                "model that onnx.checker accepts, with typed inputs"
            ) from None
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
        check_output(output, "--output", create_parents=True)
        check_output(latency_out, "--latency-out", create_parents=True)
        from toolchain.importers.pipedream import ProfileError, from_pipedream, header_lines

        if not file.exists():
            raise FileNotFoundError(2, "no such file", str(file))
        check_regular_file(file)  # not a FIFO, a device or a folder
        try:
            res = from_pipedream(file, device=device, name=name, per_sample=per_sample)
        except (ProfileError, UnicodeDecodeError) as exc:
            raise UserError(str(exc)) from None
        header = header_lines(res, file.name)
        _emit(res.model, output, header)
        if latency_out is not None:
            import yaml

            write_output(latency_out, "".join(f"# {h}\n" for h in header) + yaml.safe_dump(
                {"latency": res.latency}, sort_keys=False, default_flow_style=None, width=float("inf")),
                create_parents=True)


def register(app: typer.Typer) -> None:
    """Add the ``import`` sub-app."""
    app.add_typer(import_app, name="import")
