"""The one place where every failure of a command becomes the exit-code contract.

Exit codes: 0 solved, 1 infeasible / no solution / engine failure, 2 bad input. Whatever a
command raises, the user sees one paragraph on stderr, never a traceback:

* the catalogue of :mod:`formulation.errors` carries its own exit code and message;
* the errors other layers raise for bad input (solver options and capabilities, granularity,
  catalogues, importers, sweeps, batch stores) and file-system errors naming a path are exit 2;
* anything else is an internal error: exit 1, naming the exception type, with a hint to rerun with
  ``DNNPART_DEBUG=1``, which prints the traceback too.

:class:`GuardedGroup` applies this to every command of the app (also under typer's ``CliRunner``);
:func:`toolchain.cli.common.user_errors` applies it to one block (``validate`` goes on with the next
file after a bad one).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from formulation.errors import EXIT_BAD_INPUT, EXIT_NO_SOLUTION, DnnpartError

#: Exceptions of other layers that mean bad input: (module, class name). Looked up only in modules
#: already imported, so that the guard never imports a heavy library itself.
BAD_INPUT_CLASSES: tuple[tuple[str, str], ...] = (
    ("solvers.options", "SolverError"),
    ("formulation.granularity.provenance", "GranularityError"),
    ("toolchain.catalog", "CatalogError"),
    ("toolchain.importers.pipedream", "ProfileError"),
    ("toolchain.importers.msr", "MsrError"),
    ("toolchain.sweep", "SweepError"),
    ("solvers.batch.runner", "BatchError"),
    ("solvers.batch.store", "StoreError"),
)

DEBUG_ENV = "DNNPART_DEBUG"
"""Environment variable: when set to anything but ``""``/``0``, failures also print their traceback."""


def debug_enabled() -> bool:
    """Whether ``DNNPART_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _is_bad_input(exc: BaseException) -> bool:
    for module, name in BAD_INPUT_CLASSES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _text_of(exc: BaseException) -> str:
    """``str(exc)`` without the quotes ``KeyError`` adds, cut to a paragraph."""
    text = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc
    try:
        shown = str(text)
    except Exception:  # a str() that fails must not hide the original failure
        shown = f"<{type(exc).__name__}>"
    return shown if len(shown) <= 2000 else shown[:1997] + "..."


def describe(exc: BaseException, *, internal: bool = True) -> tuple[int, str] | None:
    """The exit code and one-paragraph message for ``exc``.

    Parameters
    ----------
    exc : BaseException
        What a command raised.
    internal : bool
        Also describe exceptions outside the catalogue (as internal errors, exit 1); when False
        those give ``None``.

    Returns
    -------
    tuple of (int, str), or None
        ``None`` for control flow that is not a failure (typer's ``Exit`` and usage errors,
        ``SystemExit``, ``KeyboardInterrupt``) and, when ``internal`` is False, for unknown errors.
    """
    if isinstance(exc, TyperException | typer.Exit | typer.Abort) or not isinstance(exc, Exception):
        return None
    if isinstance(exc, DnnpartError):
        return exc.exit_code, exc.message()
    if _is_bad_input(exc):
        return EXIT_BAD_INPUT, _text_of(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        names = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
        names = names if len(names) <= 300 else names[:297] + "..."
        return EXIT_BAD_INPUT, f"{names}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, RecursionError):
        return EXIT_BAD_INPUT, (
            "the input is nested too deeply (or chains too long) for this command to process "
            "(RecursionError); nesting in files is limited by DNNPART_MAX_DEPTH"
        )
    if not internal:
        return None
    if isinstance(exc, MemoryError):
        return EXIT_NO_SOLUTION, (
            "out of memory (MemoryError): the input is too large for this machine; "
            f"rerun with {DEBUG_ENV}=1 to see where"
        )
    return EXIT_NO_SOLUTION, (
        f"internal error ({type(exc).__name__}: {_text_of(exc)}); this is a bug in dnnpart, "
        f"not in the input: rerun with {DEBUG_ENV}=1 to see the traceback, and report it"
    )


def report(code_message: tuple[int, str], exc: BaseException | None = None) -> typer.Exit:
    """Print the paragraph (and with ``DNNPART_DEBUG`` the traceback) and return the ``Exit`` to raise."""
    from toolchain.cli.common import err_console

    code, message = code_message
    if exc is not None and debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    return typer.Exit(code)


def _quiet_stdout() -> None:
    """Point file descriptor 1 at devnull (stdout's reader is gone)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (a test runner's capture): nothing to redirect
        pass


class GuardedGroup(TyperGroup):
    """The app's command group: a command's failure becomes one paragraph and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader closed the pipe (``dnnpart ... | head``): stop quietly, as Python's docs
            # advise, pointing stdout at devnull so the interpreter's last flush cannot fail again.
            _quiet_stdout()
            raise typer.Exit(1) from None
        except Exception as exc:
            described = describe(exc)
            if described is None:
                raise
            raise report(described, exc) from None
