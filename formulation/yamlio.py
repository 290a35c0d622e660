"""Safe loading of YAML and JSON instance files, with errors that point at the file, line and key.

YAML is read with :class:`yaml.SafeLoader` semantics (the C-accelerated ``CSafeLoader`` when PyYAML
was built with libyaml), plus three rules that plain ``yaml.safe_load`` lacks:

* **duplicate keys** in a mapping are an error naming the key, its field path and both lines
  (PyYAML silently keeps the last one, which hides typos such as two ``flops:`` lines);
* **aliases are bounded**: a document may use at most :data:`MAX_ALIASES` alias references
  (``*name``), and expanding them may add at most :data:`MAX_ALIAS_NODES` nodes to the document.
  Aliases to collections are allowed (anchoring a device template is a fair use), but an
  exponential "billion laughs" document fails after composing, before anything is expanded;
  a recursive alias (a collection containing itself) is an error too;
* nesting deeper than :func:`max_depth` levels is an error (no instance needs more than ~8).

JSON is read with :mod:`json`; duplicate keys and the non-standard ``NaN``/``Infinity`` literals
are errors. Syntax errors in either format name the line and column.

The input limits of :mod:`formulation.limits` apply to YAML and JSON alike: file size and kind,
nesting depth, integers beyond float range (each error names the file and the field path).

:class:`ReferenceReader` reads the files that ``{file: PATH#KEY}`` references name, and refuses
those that resolve (after symlinks) outside a fence of directories, so that an instance file from
elsewhere cannot make the loader read arbitrary files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from formulation.errors import Described, InstanceError
from formulation.limits import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_INT_DIGITS,
    check_regular_file,
    check_tree,
    huge_int,
    max_depth,
    max_file_bytes,
    parse_json_int,
    read_bytes,
    too_deep,
)

__all__ = [
    "MAX_ALIASES",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "ReferenceReader",
    "check_regular_file",
    "check_tree",
    "load_file",
    "load_json_text",
    "load_yaml_text",
    "max_depth",
    "max_file_bytes",
    "read_bytes",
    "read_text",
]

MAX_ALIASES = 100
"""Most alias references (``*name``) one YAML document may use."""
MAX_ALIAS_NODES = 100_000
"""Most nodes that expanding all aliases of one YAML document may add."""
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"


_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader (C parser when available) with no extra constructors: a private subclass so that
    nothing registered on it can leak into other users of PyYAML."""


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _where(node: Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _NodeChecker:
    """One pass over a composed YAML node graph: duplicate keys, alias budget, recursion, depth.

    The walk visits each distinct node once (aliased nodes are the same Python object), so it is
    linear in the file size even for an alias bomb, whose expanded size it computes without
    expanding anything.
    """

    def __init__(self, file: str, loader: Any) -> None:
        self.file = file
        self.loader = loader
        self.sizes: dict[int, int] = {}  # id(node) -> node count after expanding aliases
        self.active: set[int] = set()
        self.aliases = 0
        self.max_depth = max_depth()

    def check(self, root: Node) -> None:
        total = self.visit(root, "", 0)
        added = total - len(self.sizes)
        if added > MAX_ALIAS_NODES:
            raise InstanceError(
                self.file,
                "",
                f"aliases expanding to {total} nodes",
                f"YAML aliases (*name) that add at most {MAX_ALIAS_NODES} nodes when expanded "
                "(this document looks like an alias bomb)",
            )

    def visit(self, node: Node, path: str, depth: int) -> int:
        key = id(node)
        if key in self.sizes:
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise InstanceError(
                    self.file,
                    path,
                    f"more than {MAX_ALIASES} aliases ({_where(node)})",
                    f"at most {MAX_ALIASES} YAML aliases (*name) per document (a guard against alias bombs)",
                )
            return self.sizes[key]
        if key in self.active:
            raise InstanceError(
                self.file, path, f"recursive alias ({_where(node)})", "no collection that contains itself"
            )
        if depth > self.max_depth:
            raise too_deep(self.file, path, f" ({_where(node)})")
        if isinstance(node, ScalarNode) and node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
            raise huge_int(
                self.file, path, Described(f"an integer of {len(node.value)} characters ({_where(node)})")
            )
        self.active.add(key)
        size = 1
        if isinstance(node, SequenceNode):
            for i, child in enumerate(node.value):
                size += self.visit(child, f"{path}[{i}]", depth + 1)
        elif isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, value_node in node.value:
                label: Any = "<<"
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE_TAG:
                    label = self.key_of(key_node)
                    if label in seen:
                        first = seen[label]
                        raise InstanceError(
                            self.file,
                            _join(path, label),
                            label,
                            f"each key once per mapping; key {label!r} appears on "
                            f"{_where(first)} and again on {_where(key_node)}",
                        )
                    seen[label] = key_node
                size += self.visit(key_node, path, depth + 1)
                size += self.visit(value_node, _join(path, label), depth + 1)
        self.active.discard(key)
        self.sizes[key] = size
        return size

    def key_of(self, node: ScalarNode) -> Any:
        if node.tag == _STR_TAG:
            return node.value
        # Non-string keys compare by value, so that `yes:` and `on:` (both true) collide as they would.
        try:
            value = self.loader.construct_object(node, deep=True)
            hash(value)
        except Exception:
            return (node.tag, node.value)
        return value


def _source_line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line].strip() if 0 <= line < len(lines) else ""


def load_yaml_text(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document safely.

    Parameters
    ----------
    text : str
        The document.
    file : str
        Name used in error messages.

    Returns
    -------
    Any
        The document as plain Python data (``None`` for an empty document).

    Raises
    ------
    InstanceError
        On a syntax error (with line and column), several documents in one stream, a duplicate
        key, a recursive alias, too many aliases or too large an alias expansion, or a tag that
        the safe loader cannot construct.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _NodeChecker(file, loader).check(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if mark is None:
            raise InstanceError(file, "", text[:80], f"valid YAML ({problem})") from None
        raise InstanceError(
            file,
            f"line {mark.line + 1}, column {mark.column + 1}",
            _source_line(text, mark.line),
            f"valid YAML ({problem})",
        ) from None
    except yaml.YAMLError as exc:
        raise InstanceError(file, "", text[:80], f"valid YAML ({exc})") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a malformed !!timestamp
        raise InstanceError(file, "", str(exc)[:200], "valid YAML values") from None
    except RecursionError:
        raise too_deep(file, "") from None
    finally:
        loader.dispose()
    check_tree(data, file)
    return data


class _JsonDuplicateError(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _JsonConstantError(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicateError(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _JsonConstantError(name)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def load_json_text(text: str, file: str = "<string>") -> Any:
    """Parse a JSON document strictly: no duplicate keys, no ``NaN``/``Infinity``.

    Parameters
    ----------
    text : str
        The document.
    file : str
        Name used in error messages.

    Returns
    -------
    Any
        The document as plain Python data.

    Raises
    ------
    InstanceError
        On a syntax error (with line and column), a duplicate key (with its path and lines where
        they can be found) or a non-finite literal.
    """
    try:
        data = json.loads(
            text,
            object_pairs_hook=_pairs_without_duplicates,
            parse_constant=_reject_constant,
            parse_int=parse_json_int,
        )
    except RecursionError:
        raise too_deep(file, "") from None
    except json.JSONDecodeError as exc:
        raise InstanceError(
            file,
            f"line {exc.lineno}, column {exc.colno}",
            _source_line(text, exc.lineno - 1),
            f"valid JSON ({exc.msg})",
        ) from None
    except _JsonConstantError as exc:
        found = re.search(rf"(?<![\w\"]){re.escape(exc.name)}(?![\w\"])", text)
        where = "line {}, column {}".format(*_line_col(text, found.start())) if found else ""
        raise InstanceError(file, where, exc.name, "a finite number (JSON has no NaN or Infinity)") from None
    except _JsonDuplicateError as exc:
        # The JSON decoder does not say where; JSON is (nearly) YAML, so let the YAML checker find
        # the path and lines, and fall back to naming the key alone.
        try:
            load_yaml_text(text, file)
        except InstanceError as located:
            if located.value == exc.key:
                raise located from None
        raise InstanceError(
            file, "", exc.key, f"each key once per JSON object; {exc.key!r} repeats"
        ) from None
    check_tree(data, file)
    return data


def read_text(path: Path, display: str | None = None) -> str:
    """Read a UTF-8 file (a leading byte-order mark is skipped).

    Parameters
    ----------
    path : Path
        The file.
    display : str, optional
        The name to use in error messages; default ``str(path)``.

    Returns
    -------
    str
        The file's text.

    Raises
    ------
    InstanceError
        If the file does not exist, is not a regular file, cannot be read, or is not UTF-8.
    InputLimitError
        If the file is larger than :func:`max_file_bytes`.
    """
    name = display or str(path)
    try:
        return read_bytes(path, name).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InstanceError(name, "", f"byte {exc.start}", "a UTF-8 text file") from None


def load_file(path: Path | str, display: str | None = None) -> Any:
    """Load a YAML or JSON file (``.json`` is JSON; anything else is YAML, a superset of JSON).

    Parameters
    ----------
    path : Path or str
        The file.
    display : str, optional
        The name to use in error messages; default ``str(path)``.

    Returns
    -------
    Any
        The file's content as plain Python data.

    Raises
    ------
    InstanceError
        See :func:`read_text`, :func:`load_yaml_text` and :func:`load_json_text`.
    """
    path = Path(path)
    name = display or str(path)
    text = read_text(path, name)
    if path.suffix.lower() == ".json":
        return load_json_text(text, name)
    return load_yaml_text(text, name)


@dataclass
class ReferenceReader:
    """Reads the files named by ``file:`` references, inside a fence of directories.

    Parameters
    ----------
    roots : tuple of Path
        Resolved directories a referenced file must lie in (after resolving symlinks).
    allow_outside : bool
        Lift the fence.
    """

    roots: tuple[Path, ...]
    allow_outside: bool = False
    cache: dict[Path, Any] = field(default_factory=dict)

    def read(self, ref: str, *, naming_file: str, site: str, base_dir: Path) -> tuple[Any, str, str, Path]:
        """Follow one reference ``PATH`` or ``PATH#KEY``.

        Parameters
        ----------
        ref : str
            The reference as written.
        naming_file : str
            The file that holds the reference, as shown to users.
        site : str
            The field path of the reference there (e.g. ``model.file``), for errors.
        base_dir : Path
            The directory ``PATH`` is relative to (that of the naming file).

        Returns
        -------
        tuple
            ``(data, shown, key, real)``: the file's content (or its top-level ``KEY``), the
            file's name as shown to users, ``KEY`` (``""`` if none) and the resolved path.

        Raises
        ------
        InstanceError
            If the reference is malformed, leads outside the fence, names no file or no key, or
            the file cannot be parsed.
        """

        def fail(expected: str) -> InstanceError:
            return InstanceError(naming_file, site, ref, expected)

        target, hashmark, key = ref.partition("#")
        if not target or (hashmark and not key):
            raise fail("PATH or PATH#KEY with a non-empty PATH and KEY")
        full = base_dir / target
        try:
            real = full.resolve()  # symlinks resolved: a link may not lead out of the fence either
            if not self.allow_outside and not any(real.is_relative_to(r) for r in self.roots):
                raise fail(
                    f"a file inside {' or '.join(map(str, self.roots))} (this resolves to {real}); "
                    "pass --allow-outside (allow_outside=True) to follow references outside"
                )
            if not real.is_file():
                raise fail(f"an existing file (looked for {full})")
        except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise fail(f"a path the system can look up ({reason})") from None
        # Show a referenced file the way the user reached it (relative stays relative).
        naming_dir = base_dir if naming_file.startswith("<") else os.path.dirname(naming_file)
        shown = os.path.normpath(os.path.join(naming_dir, target))
        if real not in self.cache:
            try:
                self.cache[real] = load_file(real, display=shown)
            except InstanceError as exc:
                # Any file inside the fence can be named, so a parse error must not quote its text.
                raise InstanceError(exc.file, exc.path, Described("(a referenced file's text, not shown)"),
                                    exc.expected) from None
        data = self.cache[real]
        if not key:
            return data, shown, "", real
        if not isinstance(data, dict) or key not in data:
            keys = ", ".join(map(str, data)) if isinstance(data, dict) else "none, it is not a mapping"
            raise fail(f"a top-level key of {shown} (its keys: {keys})")
        return data[key], shown, key, real
