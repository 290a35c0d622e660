"""Input limits shared by every reader of user files: size, file kind, nesting depth, number range.

* A file larger than :func:`max_file_bytes` (default 64 MiB, environment variable
  ``DNNPART_MAX_FILE_BYTES``) is refused before it is read, and so is anything that is not a
  regular file: a FIFO would block forever, ``/dev/zero`` never ends (:func:`read_bytes`,
  :func:`check_regular_file`).
* Nesting deeper than :func:`max_depth` (default 64, environment variable ``DNNPART_MAX_DEPTH``)
  is refused, also where a parser would run out of stack (:func:`check_tree`).
* An integer beyond the range of a float (about 1.8e308) is refused with its field path: every
  quantity becomes a float, and such an integer cannot (:func:`check_tree`).

Each refusal is an :class:`~formulation.errors.InputLimitError` naming the file and field path.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from formulation.errors import BadInput, Described, InputLimitError, InstanceError

MAX_DEPTH = 64
"""Deepest nesting of collections accepted by default (see :func:`max_depth`)."""
MAX_FILE_BYTES = 64 * 2**20
"""Largest input file read by default (see :func:`max_file_bytes`)."""
MAX_INT_DIGITS = 400
"""Longest integer literal parsed at all (a float holds at most 309 digits before the point)."""

_FLOAT_MAX = sys.float_info.max


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise BadInput(f"environment variable {name}={raw!r}: expected a positive integer")
    return value


def max_file_bytes() -> int:
    """The largest input file read: ``DNNPART_MAX_FILE_BYTES`` when set, else :data:`MAX_FILE_BYTES`."""
    return _env_limit("DNNPART_MAX_FILE_BYTES", MAX_FILE_BYTES)


def max_depth() -> int:
    """The deepest nesting accepted: ``DNNPART_MAX_DEPTH`` when set, else :data:`MAX_DEPTH`."""
    return _env_limit("DNNPART_MAX_DEPTH", MAX_DEPTH)


def too_deep(file: str, path: str, where: str = "") -> InputLimitError:
    limit = max_depth()
    return InputLimitError(
        file,
        path,
        Described(f"nesting deeper than {limit}{where}"),
        f"a shallower document (at most {limit} levels; the limit is set by DNNPART_MAX_DEPTH)",
    )


def huge_int(file: str, path: str, value: Any) -> InputLimitError:
    return InputLimitError(
        file, path, value, "a number within the range of a float (at most about 1.8e308 in magnitude)"
    )


class HugeInt:
    """Stands for a JSON integer literal too long to convert, until its field path is known."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"an integer of {len(self.text)} digits"


def parse_json_int(text: str) -> Any:
    return HugeInt(text) if len(text) > MAX_INT_DIGITS else int(text)


def _beyond_float(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000 \
        and abs(value) > _FLOAT_MAX


def check_tree(data: Any, file: str, prefix: str = "") -> None:
    """Refuse data nested deeper than :func:`max_depth` or holding an integer beyond float range.

    Parameters
    ----------
    data : Any
        Parsed YAML or JSON (or in-memory instance data).
    file : str
        Name used in error messages.
    prefix : str
        Field path of ``data`` itself.

    Raises
    ------
    InputLimitError
        Naming the field path of the first offending value.
    """
    limit = max_depth()
    if not _has_problem(data, limit):
        return
    # Only now build field paths (doing so for every value would cost more than parsing).
    stack: list[tuple[Any, str, int]] = [(data, prefix, 0)]
    seen: set[int] = set()  # aliased YAML collections are shared objects: visit each once
    while stack:
        value, path, depth = stack.pop()
        if depth > limit:  # scalars count, as in the YAML check
            raise too_deep(file, path)
        if isinstance(value, dict | list):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                sub = f"{path}[{k}]" if isinstance(value, list) else _join(path, k)
                stack.append((v, sub, depth + 1))
        elif isinstance(value, HugeInt) or _beyond_float(value):
            raise huge_int(file, path, value)


def _has_problem(data: Any, limit: int) -> bool:
    """Whether :func:`check_tree` has anything to report (a fast pass without field paths).

    Recursive, but never deeper than ``limit``: a collection at the limit with any child is a
    problem already.
    """
    if not isinstance(data, dict | list):
        return isinstance(data, HugeInt) or _beyond_float(data)

    def bad(value: dict[Any, Any] | list[Any], depth: int) -> bool:
        if depth >= limit and value:
            return True
        for child in value.values() if type(value) is dict else value:
            kind = type(child)
            if kind is str or kind is float or kind is bool:
                continue
            if kind is dict or kind is list or isinstance(child, dict | list):
                if bad(child, depth + 1):
                    return True
            elif kind is HugeInt or _beyond_float(child):
                return True
        return False

    return bad(data, 0)


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_bytes(path: Path, display: str | None = None, limit: int | None = None) -> bytes:
    """Read a regular file of at most ``limit`` bytes (default :func:`max_file_bytes`).

    The file is examined before it is opened: a FIFO, a device or a directory is refused (reading
    one could block forever or never end), and so is a file over the limit.

    Parameters
    ----------
    path : Path
        The file.
    display : str, optional
        The name to use in error messages; default ``str(path)``.
    limit : int, optional
        The largest size accepted.

    Returns
    -------
    bytes
        The file's content.

    Raises
    ------
    InstanceError
        If the file does not exist, is not a regular file or cannot be read.
    InputLimitError
        If it is larger than the limit.
    """
    name = display or str(path)
    limit = max_file_bytes() if limit is None else limit
    size = check_regular_file(path, name)
    if size > limit:
        raise _too_big(name, size, limit)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InstanceError(name, "", str(path), f"a readable file ({exc.strerror})") from None
    if len(data) > limit:  # the file grew after it was examined
        raise _too_big(name, len(data), limit)
    return data


def check_regular_file(path: Path, display: str | None = None) -> int:
    """The size of ``path`` if it is an existing regular file (examined without opening it).

    Raises
    ------
    InstanceError
        If it does not exist, or is a folder, a FIFO, a device or a socket.
    """
    name = display or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InstanceError(name, "", str(path), "an existing file") from None
    except NotADirectoryError:
        raise InstanceError(name, "", str(path), "an existing file (a folder on its path is a file)") from None
    except OSError as exc:
        raise InstanceError(name, "", str(path), f"a readable file ({exc.strerror})") from None
    kind = next((text for test, text in _KINDS if test(st.st_mode)), None)
    if kind is not None or not stat.S_ISREG(st.st_mode):
        raise InstanceError(name, "", str(path), f"a regular file, not {kind or 'a special file'}")
    return st.st_size


def _too_big(name: str, size: int, limit: int) -> InputLimitError:
    return InputLimitError(
        name,
        "",
        Described(f"a file of {size} bytes"),
        f"at most {limit} bytes (the limit is set by DNNPART_MAX_FILE_BYTES)",
    )


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)

