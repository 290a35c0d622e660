"""Errors raised for bad input, with the file, field path, offending value and what was expected."""

from __future__ import annotations

from typing import Any


class InstanceError(Exception):
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
        shown = repr(self.value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
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
