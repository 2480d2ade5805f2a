"""YAML 1.2 core-schema scalars, resolved in one pass over plain text.

libyaml composes the document; resolving each scalar's type through ruamel's Python resolver was
the largest cost of loading 1,000 files, so plain (unquoted) scalars are typed here with a
first-character shortcut and a few anchored patterns. Quoted scalars are always text, so
`version: "1.3.0"` and `revision: "4795393e2298"` stay strings.

Timestamps (not in the 1.2 core schema, but every YAML user writes them) become timezone-aware
datetimes when they carry a zone, naive ones otherwise (the models then ask for a zone).
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

NULL = frozenset({"", "~", "null", "Null", "NULL"})
BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# One pattern, one match per scalar; the group that matched names the type.
_TYPED = re.compile(
    r"(?P<int>[-+]?[0-9][0-9_]*)"
    r"|(?P<based>0o[0-7]+|0x[0-9a-fA-F]+)"
    r"|(?P<float>[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<inf>[-+]?\.(?:inf|Inf|INF))"
    r"|(?P<nan>\.(?:nan|NaN|NAN))"
    r"|(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"|(?P<datetime>[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::?[0-9]{2})?))?)")
_MAYBE_TYPED = frozenset("-+.0123456789~nNtTfF")

CORE = "tag:yaml.org,2002:"


def resolve_plain(text: str) -> Any:
    """Type an unquoted scalar: "0.3" -> 0.3, "true" -> True, "~" -> None, "1.3.0" -> "1.3.0"."""
    if text and text[0] not in _MAYBE_TYPED:
        return text
    if text in NULL:
        return None
    if text in BOOL:
        return BOOL[text]
    match = _TYPED.fullmatch(text)
    kind = match.lastgroup if match else None
    if kind in ("int", "based"):
        try:
            return int(text.replace("_", ""), 0 if kind == "based" else 10)
        except ValueError:  # more digits than Python converts (4,300): no real value is that long
            return text
    if kind == "float":
        number = float(text.replace("_", ""))
        return text if math.isinf(number) else number  # "4795393e2298" is a git hash, not infinity
    if kind == "inf":
        return -math.inf if text.startswith("-") else math.inf
    if kind == "nan":
        return math.nan
    if kind == "date":
        return _date(text)
    if kind == "datetime":
        return _datetime(text)
    return text


def construct_tagged(tag: str, text: str) -> Any:
    """An explicitly tagged core scalar (`!!int "5"`); raises ValueError when the text does not fit."""
    kind = tag.removeprefix(CORE)
    if kind == "str":
        return text
    value = resolve_plain(text)
    expected = {"null": type(None), "bool": bool, "int": int, "float": (float, int), "timestamp": (date, datetime)}
    if kind not in expected:
        raise ValueError(f"unsupported tag {tag}")
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected[kind]):
        raise ValueError(f"{text!r} is not a valid {kind}")
    return float(value) if kind == "float" else value


def _date(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text  # "2026-02-30": stays text, and the model says it is not a valid date


def _datetime(text: str) -> datetime | str:
    normalized = re.sub(r"[ \t]+", " ", text.replace("t", "T"))
    normalized = re.sub(r" (Z|[-+])", r"\1", normalized)
    try:
        return datetime.fromisoformat(normalized)
    except ValueError:
        return text
