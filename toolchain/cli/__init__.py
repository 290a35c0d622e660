"""The ``dnnpart`` command line (typer + rich).

Each group of commands lives in its own module with a ``register(app)`` function, listed in
``_COMMAND_MODULES``; modules import heavy libraries inside the commands so ``dnnpart --help``
stays fast.

Exit codes: 0 solved, 1 infeasible or no solution, 2 bad input (one-paragraph message, no
traceback). Every command runs under :class:`toolchain.cli.guard.GuardedGroup`, the one place that
maps exceptions to these codes.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from toolchain.cli.guard import GuardedGroup

app = typer.Typer(
    cls=GuardedGroup,
    name="dnnpart",
    help="Partition DNN graphs across cooperating devices: exact formulations, algorithms and heuristics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules with a ``register(app)`` function, in help order.
_COMMAND_MODULES = [
    "toolchain.cli.core",
    "toolchain.cli.workflow",
    "toolchain.cli.pareto",
    "toolchain.cli.network",
    "toolchain.cli.importers",
    "toolchain.cli.toolchain",
    "toolchain.cli.granularity",
    "toolchain.cli.msr",
    "toolchain.cli.llm",
    "toolchain.cli.runtime",
]



def _version() -> str:
    """The installed distribution's version (read from its metadata: no heavy import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dnnpart")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _show_version(value: bool) -> None:
    if value:
        print(f"dnnpart {_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Partition DNN graphs across cooperating devices: exact formulations, algorithms and heuristics."""


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point."""
    app()
