"""Field paths and error translation for the instance-file models of :mod:`formulation.schema`.

A pydantic ``ValidationError`` becomes :class:`~formulation.errors.InstanceError` objects naming the
file, a readable field path such as ``system.devices[1].compute``, the offending value and what was
expected; pydantic's own multi-line report is never shown.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from formulation.errors import InstanceError


class _Missing:
    """Stands for an absent key in error messages (``got nothing``)."""

    def __repr__(self) -> str:
        return "nothing"


MISSING: Any = _Missing()


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def format_path(parts: typing.Iterable[str | int], prefix: str = "") -> str:
    """Join path parts into ``a.b[2].c``; keys that are not plain words are quoted (``x["fc.0"]``).

    Parameters
    ----------
    parts : iterable of str or int
        Keys (str) and list indices (int).
    prefix : str
        An already joined path to extend, e.g. ``"model"``.

    Returns
    -------
    str
        The readable path.
    """
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional/Union-with-None, keeping the first pydantic model if a union."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members)[0]
        else:
            return tp


def _field(cls: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in cls.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _type_at(root: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The declared type at ``loc`` below ``root`` (None where it cannot be followed)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = _field(tp, str(part))
            if info is None:
                return None
            tp = info.annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    return _unwrap(tp)


def field_names(cls: type[BaseModel]) -> list[str]:
    """The keys a section accepts, as written in files.

    Parameters
    ----------
    cls : type
        A section model such as :class:`~formulation.schema.LinkSpec`.

    Returns
    -------
    list of str
        Field names, aliases where a field has one (``from`` rather than ``from_``).
    """
    return [info.alias or name for name, info in cls.model_fields.items()]


def _explain(root: type[BaseModel], err: Any) -> tuple[tuple[Any, ...], Any, str]:
    """(loc, offending value, expected) for one pydantic error dict."""
    loc: tuple[Any, ...] = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong type
        return loc[:-2], loc[-2], "a string key"
    if kind == "extra_forbidden":
        parent = _type_at(root, loc[:-1])
        key = str(loc[-1])
        allowed = field_names(parent) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return loc, value, f"no key {key!r} here{hint}; the keys are: {', '.join(allowed)}"
    if kind == "missing":
        parent = _type_at(root, loc[:-1])
        info = (
            _field(parent, str(loc[-1]))
            if isinstance(parent, type) and issubclass(parent, BaseModel)
            else None
        )
        about = f": {info.description}" if info is not None and info.description else ""
        return loc, MISSING, f"the required key {loc[-1]!r}{about}"
    if "expected" in ctx and kind not in ("literal_error",):
        return loc, value, str(ctx["expected"])
    simple = {
        "literal_error": f"one of {ctx.get('expected', '')}",
        "string_type": "a string (quote numbers used as names)",
        "bool_type": "a boolean, true or false",
        "int_type": "an integer",
        "float_type": "a number",
        "list_type": "a list",
        "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)",
        "model_attributes_type": "a mapping (key: value)",
        "too_short": "a non-empty list" if isinstance(value, list) else "a non-empty value",
        "string_too_short": "a non-empty string",
        "greater_than_equal": f"an integer >= {ctx.get('ge')}",
    }
    if kind in simple:
        return loc, value, simple[kind]
    msg = str(err.get("msg", "a valid value"))
    return loc, value, msg[:1].lower() + msg[1:]


def translate_errors(
    exc: ValidationError, root: type[BaseModel], *, file: str, prefix: str = ""
) -> list[InstanceError]:
    """Turn a pydantic ValidationError into InstanceErrors with readable field paths.

    Parameters
    ----------
    exc : ValidationError
        The error from validating data against ``root``.
    root : type
        The model that was validated.
    file : str
        The file the data came from.
    prefix : str
        Path of the data inside that file (``model``, ``system``, or ``""`` for a whole file).

    Returns
    -------
    list of InstanceError
        One per distinct problem, in document order.
    """
    out: list[InstanceError] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc, value, expected = _explain(root, err)
        path = format_path(loc, prefix)
        key = f"{path}|{expected}"
        if key not in seen:
            seen.add(key)
            out.append(InstanceError(file, path, value, expected))
    return out


M = TypeVar("M", bound=BaseModel)


def validate_section(cls: type[M], data: Any, *, file: str, prefix: str = "") -> M:
    """Validate ``data`` against ``cls``, raising file-level errors.

    Parameters
    ----------
    cls : type
        One of the section models (e.g. :class:`~formulation.schema.ModelSpec`).
    data : Any
        Plain data loaded from a file.
    file : str
        The file the data came from.
    prefix : str
        Path of the data inside that file.

    Returns
    -------
    The validated model object.

    Raises
    ------
    InstanceError
        The only problem, or :class:`~formulation.errors.InstanceErrors` listing several.
    """
    from formulation.errors import InstanceErrors

    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = translate_errors(exc, cls, file=file, prefix=prefix)
        raise (errors[0] if len(errors) == 1 else InstanceErrors(errors)) from None
