"""Turn pydantic's validation errors into findings people can act on.

pydantic reports `loc` paths that can include union member names ("float") and messages written
for programmers. Here each error is cut back to the part of its path that exists in the
document (plus the name of a missing key), duplicate union errors are merged, and every kind gets
a fix: "unknown field `min_duraton`: did you mean `min_duration`?".
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .findings import Finding, PathPart, Severity, YamlPath, format_path
from .types import shortened


def schema_findings(file: str, model: type[BaseModel], data: Any, error: ValidationError) -> list[Finding]:
    merged: dict[YamlPath, list[str]] = {}
    fixes: dict[YamlPath, str] = {}
    for err in error.errors(include_url=False):
        path = _document_path(data, err["loc"], err["type"])
        message, fix = _explain(model, path, err)
        if message not in merged.setdefault(path, []):
            merged[path].append(message)
        fixes.setdefault(path, fix)
    return [
        Finding(Severity.ERROR, "schema", file, path, " or ".join(messages) if len(messages) < 4
                else f"{messages[0]} (or {len(messages) - 1} other forms)", fixes[path])
        for path, messages in merged.items()
    ]


def _document_path(data: Any, loc: tuple[PathPart, ...], kind: str) -> YamlPath:
    """The longest prefix of `loc` present in `data`, plus the key a 'missing' error names."""
    found: list[PathPart] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            if kind == "missing" and isinstance(part, str) and isinstance(node, dict):
                found.append(part)
            break
        found.append(part)
    return tuple(found)


#: Splits a model validator's ValueError into the problem and its fix (release.py's statistical bounds).
VALUE_ERROR_FIX = "; fix: "


def _explain(model: type[BaseModel], path: YamlPath, err: dict[str, Any]) -> tuple[str, str]:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    name = path[-1] if path else ""
    where = format_path(path[:-1]) or "the top level"
    if kind == "missing":
        return f"`{name}` is required", f"add `{name}:` under {where}"
    if kind == "extra_forbidden":
        allowed = sorted(_fields_at(model, path[:-1]))
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"allowed here: {', '.join(allowed)}"
        return f"unknown field `{name}`", f"{hint} (remove it or fix its spelling)"
    if kind == "value_error":  # a validator may say its own fix: "what is wrong; fix: what to do"
        problem, _, fix = msg.removeprefix("Value error, ").partition(VALUE_ERROR_FIX)
        return problem, fix or "correct the value"
    if kind in ("datetime_type", "datetime_parsing", "datetime_from_date_parsing") and isinstance(value, str) \
            and _reads_as_time(value):
        return f"{value!r} is quoted, so YAML reads it as text, not a time", \
            f"remove the quotes: {name}: {value}"
    if kind.startswith("timezone") or (kind == "datetime_type" and hasattr(value, "isoformat")):
        shown = value.isoformat() if hasattr(value, "isoformat") else repr(value)
        return f"{msg}: {shown}", "write a time with a zone, e.g. 2026-11-20T09:00:00Z"
    if kind == "literal_error":
        choices = [c.strip(" '") for c in str(err.get("ctx", {}).get("expected", "")).replace(" or ", ",").split(",")]
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(choices)}"
        return f"{value!r} is not one of: {', '.join(choices)}", hint
    if value is None and kind.endswith("_type"):
        # `toxicity:` with nothing after it, as `reconciler release new` leaves what must be measured
        return f"`{name}` is empty ({msg[0].lower() + msg[1:]})", f"fill in `{name}:` under {where}"
    shown = f", got {value!r}" if isinstance(value, (str, int, float, bool)) else ""
    if isinstance(value, str) and len(value) > 60:
        shown = f", got {value[:57]!r}..."
    if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) > 24:
        shown = f", got {shortened(str(value))}"  # a 400-digit typo is not worth 400 characters
    if kind in _RANGE_KINDS:
        return f"{msg}{shown}", "use a value within the field's range (docs/formats.md, \"Ranges\")"
    if kind == "string_type" and isinstance(value, (int, float)):
        return f"{msg}{shown}", f"quote it so YAML reads it as text: \"{value}\""
    return f"{msg}{shown}", "correct the value"


_RANGE_KINDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})


def _reads_as_time(text: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _fields_at(model: type[BaseModel], path: YamlPath) -> set[str]:
    """Field names of the model found by following `path` through annotations; empty when unknown."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return set()
    model_cls = _model_in(annotation)
    return set(model_cls.model_fields) if model_cls else set()


def _step(annotation: Any, part: PathPart) -> Any:
    model_cls = _model_in(annotation)
    if model_cls is not None and isinstance(part, str):
        field = model_cls.model_fields.get(part)
        return field.annotation if field else None
    for arg in _members(annotation):
        origin = typing.get_origin(arg)
        if origin is list and isinstance(part, int):
            return typing.get_args(arg)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(arg)[1]
    return None


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None
