"""The catalogue of errors dnnpart reports to users, and the exit code each one means.

Every error a user can meet is one paragraph: the file, the field path inside it, the offending
value and what was expected. The command line maps each class to an exit code in one place
(``toolchain.cli.guard``):

=============================  ====  ===========================================================
class                          exit  meaning
=============================  ====  ===========================================================
:class:`DnnpartError`          n/a   base of the catalogue (carries ``exit_code``)
:class:`BadInput`              2     something the user gave is wrong (file, option, value)
:class:`InstanceError`         2     a problem inside an instance file, with its field path
:class:`InstanceErrors`        2     several independent instance problems found in one pass
:class:`InputLimitError`       2     an input beyond a configured limit (size, nesting, number)
:class:`OutputPathError`       2     an output path that cannot be written (checked before solving)
:class:`UntrustedCodeError`    2     user code named on the command line (a model factory) failed
:class:`NoSolution`            1     the instance is infeasible or no solution was found
:class:`EngineFailure`         1     a solver engine failed (crash, licence, missing executable)
=============================  ====  ===========================================================

Anything outside the catalogue is an internal error: exit 1 with the exception type named and a
hint to rerun with ``DNNPART_DEBUG=1``, which shows the traceback.
"""

from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_NO_SOLUTION, EXIT_BAD_INPUT = 0, 1, 2
"""Exit codes of every command: solved, infeasible or no solution (or an engine failure), bad input."""

#: Longest rendering of an offending value in a message.
MAX_SHOWN = 120


def int_digits(value: int) -> int:
    """The number of decimal digits of ``value`` (without converting it to text, which Python limits)."""
    n = abs(value)
    digits = int(n.bit_length() * 0.30102999566398120) + 1
    return digits - 1 if digits > 1 and 10 ** (digits - 1) > n else digits


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)``, cut to ``limit`` characters (huge integers are described, not converted).

    Parameters
    ----------
    value : Any
        The value to show.
    limit : int
        The longest text returned.

    Returns
    -------
    str
        The shortened representation.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"an integer of {int_digits(value)} digits"
    try:
        shown = repr(value)
    except (ValueError, RecursionError):  # a huge int nested in a container, or a deep container
        return f"a {type(value).__name__} too large to show"
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class Described:
    """A value shown in a message as a description (unquoted), e.g. ``a file of 3000000 bytes``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class DnnpartError(Exception):
    """Base of every error shown to users as one paragraph (never with a traceback).

    Attributes
    ----------
    exit_code : int
        The command line's exit status for this error.
    """

    exit_code = EXIT_BAD_INPUT

    def message(self) -> str:
        """The one-paragraph message shown to the user."""
        return str(self)


class BadInput(DnnpartError):
    """Something the user gave (a file, an option value) is wrong; the text says what and where."""


class OutputPathError(BadInput):
    """An output path that cannot be written; raised before any work whose result would be lost."""


class UntrustedCodeError(BadInput):
    """A model factory named on the command line (``MODULE:FACTORY``) could not be imported or failed."""


class NoSolution(DnnpartError):
    """The instance has no feasible placement, or the solver found none within its limits."""

    exit_code = EXIT_NO_SOLUTION


class EngineFailure(DnnpartError):
    """A solver engine failed for reasons outside the input (crash, missing executable, licence)."""

    exit_code = EXIT_NO_SOLUTION


class InstanceError(BadInput):
    """A problem with an instance file (or an object built from one).

    Parameters
    ----------
    file : str
        The file in which the problem is (``<dict>`` for in-memory data).
    path : str
        The field path inside the file, e.g. ``model.layers[3].flops``.
    value : Any
        The offending value (shown with ``repr``, shortened).
    expected : str
        What was expected instead, in words.
    """

    def __init__(self, file: str, path: str, value: Any, expected: str) -> None:
        self.file = file
        self.path = path
        self.value = value
        self.expected = expected
        super().__init__(self.message())

    def message(self) -> str:
        """The one-paragraph message shown to the user."""
        shown = shorten(self.value)
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: got {shown}; expected {self.expected}"


class InstanceErrors(InstanceError):
    """Several independent problems found in one pass; the message lists each on its own line."""

    def __init__(self, errors: list[InstanceError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.file, first.path, first.value, first.expected)

    def message(self) -> str:
        lines = [e.message() for e in self.errors]
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems:\n" + "\n".join(f"  - {ln}" for ln in lines)


class InputLimitError(InstanceError):
    """An input beyond a configured limit: file size, nesting depth, or a number beyond float range."""
