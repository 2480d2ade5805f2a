"""Edit the reconciler's pointers in `environments/<env>.yaml` and write the file safely.

People own these files and read them during incidents, so an edit must change only what it says:

- ruamel.yaml's round trip keeps comments, key order, blank lines and quoting. We also find the
  file's own indentation (mapping, sequence, dash offset) and set a very wide line limit. With
  these, the example files go through a load and dump unchanged, and a diff shows only the
  edited lines.
- ruamel stores a comment with the key *before* it: the token holds that key's end-of-line
  comment, a newline, and then every blank or comment line up to the next key. When a value
  changes we drop only its end-of-line comment (a stale `# 1% of traffic` misleads on-call).
  When a key is removed or a new key is inserted after another, the following lines move to the
  neighbouring key, so the next key's comment and blank line stay where they were.
- Values are typed so they read back unchanged. Versions are double-quoted (a bare `1.10` would
  read as a float). Instants are written as plain UTC timestamps, `2026-11-22T10:00:00Z`,
  which the loader (`yaml_scalars`) reads as the same aware datetime.
- New keys go in the documented order next to the pointers already there (see `POINTER_KEYS`),
  before `pool` and `replicas`. This keeps every environment file in the same shape.

`write_atomically` puts the text on disk with a temporary file and `os.replace`, so a reader or a
crash sees the old file or the new one, never half of one (docs/runbook.md: a killed pass leaves no
half-written file).
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import CommentMark
from ruamel.yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent,
                                 SequenceStartEvent)
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

#: Where a new pointer key goes: after the pointer keys that come before it in this order.
POINTER_KEYS = ("stable", "candidate", "standby", "standby_until", "stage", "stage_started_at", "deadline_paged_at")

_DEFAULT_INDENT = (2, 4, 2)  # mapping, sequence, dash offset: the example files' style
_NEW_FILE_MODE = 0o644
_BOM = "\ufeff"


class _UtcInstant(str):
    """A timestamp already in its final form; the representer writes it as a plain scalar."""


class _Representer(RoundTripRepresenter):
    """Round-trip representer that also writes `_UtcInstant` (a subclass keeps ruamel's global registry untouched)."""


_Representer.add_representer(
    _UtcInstant, lambda rep, data: rep.represent_scalar("tag:yaml.org,2002:timestamp", str(data)))


def update_models(text: str, changes: Mapping[str, Mapping[str, object]]) -> str:
    """Set or remove `models.<model>.<key>` in an environment file's text and return the new text.

    `changes` maps each model to its key changes; a value of None removes the key. Allowed values
    are str (written double-quoted), int, and timezone-aware datetime (written as UTC, whole seconds).
    A key whose value already equals the new one keeps its text, comment included. Raises KeyError
    for a model that is not in the file, TypeError or ValueError for a value that cannot be written.
    """
    edits = _typed_edits(changes)
    document = _EnvironmentDocument(text)
    document.require(edits)
    changed = False
    for model, keys in edits.items():
        changed |= _edit_model(document.models, model, keys)
    return document.dump() if changed else text


def update_models_in_sequence(text: str, steps: Sequence[Mapping[str, Mapping[str, object]]]) -> list[str]:
    """The text after each step: exactly what folding `update_models` over `steps` gives, from one parse.

    An applying pass commits each decision apart (people revert single decisions), so it needs the
    file after every decision; re-parsing the whole growing file for each one made a pass over 200
    rollouts quadratic (30 s). Here each model's block is edited in memory and the document is
    dumped once per *round* (round r applies every model's r-th change; a pass changes most models
    once, a few twice), then each step's text is spliced from the blocks. This relies on a block's
    text depending only on its own model, which is checked, not assumed, where it can be: the file
    must dump back to itself unedited, and every dump must split into the same models in the same
    order behind the same prefix and suffix. When a check fails the steps are folded one by one.
    """
    typed = [_typed_edits(changes) for changes in steps]
    if not typed:
        return []
    document = _EnvironmentDocument(text)
    for edits in typed:
        document.require(edits)
    names = [str(model) for model in document.models]
    column = document.models_column()
    baseline = document.dump()
    layout = _ModelLayout.split(baseline, names, column, document.first_model_line())
    if baseline != text or layout is None:
        return _fold(text, steps)
    touches: dict[str, list[Mapping[str, object]]] = {}
    for edits in typed:
        for model, keys in edits.items():
            touches.setdefault(str(model), []).append(keys)
    versions: dict[str, list[str]] = {}  # model -> its block after its 1st, 2nd, ... change
    for round_ in range(max(len(keys) for keys in touches.values())):
        for model, changes in touches.items():
            if round_ < len(changes):
                _edit_model(document.models, model, changes[round_])
        dumped = _ModelLayout.split(document.dump(), names, column, layout.first_line)
        if dumped is None or (dumped.prefix, dumped.suffix) != (layout.prefix, layout.suffix):
            return _fold(text, steps)
        for model, changes in touches.items():
            if round_ < len(changes):
                versions.setdefault(model, []).append(dumped.blocks[model])
    texts, seen = [], dict.fromkeys(names, 0)
    for edits in typed:
        for model in edits:
            seen[str(model)] += 1
        blocks = "".join(versions[m][seen[m] - 1] if seen[m] else layout.blocks[m] for m in names)
        texts.append(document.finish(layout.prefix + blocks + layout.suffix))
    return texts


def _fold(text: str, steps: Sequence[Mapping[str, Mapping[str, object]]]) -> list[str]:
    texts = []
    for changes in steps:
        text = update_models(text, changes)
        texts.append(text)
    return texts


def _typed_edits(changes: Mapping[str, Mapping[str, object]]) -> dict[str, dict[str, object]]:
    return {model: {key: _yaml_value(model, key, value) for key, value in keys.items()}
            for model, keys in changes.items()}


class _EnvironmentDocument:
    """An environment file's round-trip document, with what it takes to write it back the same way
    (its byte order mark, line endings and indentation)."""

    def __init__(self, text: str) -> None:
        self.bom = _BOM if text.startswith(_BOM) else ""
        body = text.removeprefix(self.bom)
        self.crlf = "\r\n" in body
        self.yaml = round_trip_yaml(body)
        self.document = self.yaml.load(body)
        models = self.document.get("models") if isinstance(self.document, CommentedMap) else None
        if not isinstance(models, CommentedMap):
            raise KeyError("the environment file has no `models:` mapping")
        self.models: CommentedMap = models

    def require(self, edits: Mapping[str, object]) -> None:
        missing = [model for model in edits if not isinstance(self.models.get(model), CommentedMap)]
        if missing:
            known = ", ".join(str(m) for m in self.models) or "none"
            raise KeyError(f"model(s) {', '.join(missing)} not found under `models:` (the file has: {known})")

    def models_column(self) -> int | None:
        first = next(iter(self.models), None)
        return None if first is None else self.models.lc.key(first)[1]

    def first_model_line(self) -> int | None:
        first = next(iter(self.models), None)
        return None if first is None else self.models.lc.key(first)[0]

    def dump(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.document, out)
        return self.finish(out.getvalue())

    def finish(self, dumped: str) -> str:
        return self.bom + (dumped.replace("\n", "\r\n") if self.crlf else dumped)


@dataclass(frozen=True)
class _ModelLayout:
    """A dumped file cut into the text before the first model, one block per model (its key line up
    to the next model's), and the text after the `models:` mapping."""

    prefix: str
    blocks: dict[str, str]
    suffix: str
    first_line: int

    @classmethod
    def split(cls, text: str, names: list[str], column: int | None, first_line: int | None) -> _ModelLayout | None:
        """None when the text does not cut cleanly into exactly `names`, in order, at `column`."""
        if column is None or first_line is None:
            return None
        lines = text.splitlines(keepends=True)
        starts, end = [], len(lines)
        for index in range(first_line, len(lines)):
            line = lines[index]
            content = line.lstrip(" ")
            if not content.strip() or content.startswith("#"):
                continue
            indent = len(line) - len(content)
            if indent < column:
                end = index
                break
            if indent == column:
                starts.append(index)
        if not starts or starts[0] != first_line or len(starts) != len(names):
            return None
        blocks = {}
        for name, start, stop in zip(names, starts, starts[1:] + [end]):
            key = _BLOCK_KEY.match(lines[start][column:])
            if key is None or key.group(2) != name:
                return None
            blocks[name] = "".join(lines[start:stop])
        return cls("".join(lines[:first_line]), blocks, "".join(lines[end:]), first_line)


_BLOCK_KEY = re.compile(r"""(["']?)([^"'#:]+)\1:(?:\s|$)""")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) all at once, keeping the file's mode.

    The text goes to a temporary file in the same directory, which is fsynced and then renamed
    over the original. If anything fails, the original is left as it was and the temporary file
    is removed.
    """
    target = Path(os.path.realpath(path))  # write through a symlink, don't replace it
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(target.parent)


_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # what write_atomically's mkstemp names


def remove_leftover_temporaries(directory: Path) -> list[Path]:
    """Delete, under `directory`, the temporary files of `write_atomically` calls that a killed
    process never finished, and return them. Only for a caller that holds the checkout's lock
    (no write of ours can be in progress)."""
    leftovers = [path for path in directory.rglob(".*.tmp") if _TEMPORARY.fullmatch(path.name) and path.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- values -------------------------------------------------------------------------------------

def _yaml_value(model: str, key: str, value: object) -> object:
    return yaml_scalar(value, f"models.{model}.{key}")


def yaml_scalar(value: object, where: str) -> object:
    """`value` as it should be written so it reads back the same: str double-quoted, instants as
    UTC `2026-11-22T10:00:00Z`; `where` names the key in errors."""
    if value is None:
        return None
    if isinstance(value, bool):  # a bool is an int to Python, but no pointer is a flag
        raise TypeError(f"{where}: cannot write {value!r}: expected str, int or datetime")
    if isinstance(value, str):
        return DoubleQuotedScalarString(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{where}: {value.isoformat()} has no timezone; pass an aware datetime (UTC)")
        return _UtcInstant(value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    raise TypeError(f"{where}: cannot write {type(value).__name__} {value!r}: expected str, int or datetime")


def _same_value(old: object, new: object) -> bool:
    """True when the file already says `new` (same type of value, same meaning)."""
    if isinstance(new, _UtcInstant):
        return (isinstance(old, datetime) and old.tzinfo is not None
                and old == datetime.fromisoformat(new.replace("Z", "+00:00")))
    if isinstance(new, str):
        return isinstance(old, str) and str(old) == str(new)
    if isinstance(new, int):
        return isinstance(old, int) and not isinstance(old, bool) and int(old) == new
    return False


# --- editing one model's mapping ------------------------------------------------------------------

def _edit_model(models: CommentedMap, model: str, keys: Mapping[str, object]) -> bool:
    """Apply removals, then changes, then insertions (in `POINTER_KEYS` order); True if anything changed."""
    mapping: CommentedMap = models[model]
    changed = False
    for key, value in keys.items():
        if value is None and key in mapping:
            _remove(models, model, key)
            changed = True
    for key, value in keys.items():
        if value is not None and key in mapping and not _same_value(mapping[key], value):
            mapping[key] = value
            drop_eol_comment(mapping, key)
            changed = True
    new_keys = [key for key in keys if keys[key] is not None and key not in mapping]
    for key in sorted(new_keys, key=_rank):
        _insert(models, model, _insert_position(mapping, key), key, keys[key])
        changed = True
    return changed


def _rank(key: str) -> int:
    return POINTER_KEYS.index(key) if key in POINTER_KEYS else len(POINTER_KEYS)


def _insert_position(mapping: CommentedMap, key: str) -> int:
    existing = list(mapping)
    if key not in POINTER_KEYS:
        return len(existing)
    before = [i for i, k in enumerate(existing) if k in POINTER_KEYS and _rank(k) < _rank(key)]
    if before:
        return before[-1] + 1
    after = [i for i, k in enumerate(existing) if k in POINTER_KEYS or k in ("pool", "replicas")]
    return after[0] if after else len(existing)


def _insert(models: CommentedMap, model: str, position: int, key: str, value: object) -> None:
    """Insert `key` at `position`; the lines after the previous key's value stay above the next key."""
    mapping: CommentedMap = models[model]
    existing = list(mapping)
    mapping.insert(position, key, value)
    if position > 0:
        eol, following = _tail(mapping, existing[position - 1])
        _set_tail(mapping, existing[position - 1], eol, "")
    else:  # a new first key: the lines under the model's own line belong to the old first key
        eol, following = _tail(models, model)
        following += _take_lines_above_first_key(models, model)
        _set_first_key_comment(models, model, _set_tail(models, model, eol, ""))
    _set_tail(mapping, key, "", following)


def _remove(models: CommentedMap, model: str, key: str) -> None:
    """Delete `key` with its end-of-line comment; the lines after it join the key before it."""
    mapping: CommentedMap = models[model]
    existing = list(mapping)
    _, following = _tail(mapping, key)
    mapping.ca.items.pop(key, None)
    del mapping[key]
    if not following:
        return
    index = existing.index(key)
    if index > 0:
        previous = existing[index - 1]
        eol, previous_following = _tail(mapping, previous)
        _set_tail(mapping, previous, eol, previous_following + following)
    else:  # the first key: the lines join those after the model's own line (`chat-assistant:`)
        eol, previous_following = _tail(models, model)
        above = _take_lines_above_first_key(models, model)
        _set_first_key_comment(models, model, _set_tail(models, model, eol, previous_following + above + following))


def _set_first_key_comment(models: CommentedMap, model: str, token: CommentToken | None) -> None:
    """ruamel keeps the lines under `model:` twice: on the parent's entry and on the child map."""
    mapping: CommentedMap = models[model]
    if mapping.ca.comment is None:
        mapping.ca.comment = [None, None]
    mapping.ca.comment[0] = token


def _take_lines_above_first_key(models: CommentedMap, model: str) -> str:
    """Remove and return, as text, the comment lines ruamel keeps apart (one token per line) when the
    model's own line has no end-of-line comment."""
    comment = models[model].ca.comment
    above = comment[1] if comment and len(comment) > 1 and comment[1] else []
    text = "".join(" " * token.column + token.value if token.value.startswith("#") else token.value
                   for token in above)
    entry = models.ca.items.get(model)
    for tokens in (above, entry[3] if entry and len(entry) > 3 else None):
        if tokens:
            tokens.clear()  # usually one list shared by the parent's entry and the child
    return text


def drop_eol_comment(mapping: CommentedMap, key: str) -> None:
    _, following = _tail(mapping, key)
    _set_tail(mapping, key, "", following)


def set_eol_comment(mapping: CommentedMap, key: Any, comment: str) -> None:
    """`key: value  # comment`, keeping the blank and comment lines that follow the entry."""
    _, following = _tail(mapping, key)
    _set_tail(mapping, key, f"  # {comment}", following)


def _tail(mapping: CommentedMap, key: Any) -> tuple[str, str]:
    """(end-of-line comment, following blank and comment lines) stored after `key`'s value."""
    token = _tail_token(mapping, key)
    if token is None:
        return "", ""
    eol, _, following = token.value.partition("\n")
    return eol, following


def _set_tail(mapping: CommentedMap, key: Any, eol: str, following: str) -> CommentToken | None:
    token = _tail_token(mapping, key)
    if not eol and not following:
        if token is not None:
            mapping.ca.items[key][2] = None
            if not any(mapping.ca.items[key]):
                del mapping.ca.items[key]
        return None
    value = f"{eol}\n{following}"
    if token is None:
        token = CommentToken(value, CommentMark(0), None)
        mapping.ca.items.setdefault(key, [None, None, None, None])[2] = token
    else:
        token.value = value
    return token


def _tail_token(mapping: CommentedMap, key: Any) -> CommentToken | None:
    entry = mapping.ca.items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    return token if isinstance(token, CommentToken) else None


# --- the file's own style -----------------------------------------------------------------------

def round_trip_yaml(text: str) -> YAML:
    """A round-trip YAML that writes in `text`'s own indentation, never folds, keeps quotes."""
    yaml = YAML()
    yaml.Representer = _Representer
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold a long line (PromQL queries are long)
    mapping, sequence, offset = _detect_indent(yaml, text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _detect_indent(yaml: YAML, text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as the file writes its first nested block mapping and sequence.

    `gpu_pools:` at column 0 with `  - name:` gives sequence 4 (`name` at column 4) and offset 2
    (the dash at column 2); `cluster:` with `  region:` gives mapping 2. Read from the parser's
    events, stopping once both are found (a second full parse per edit was most of an applying
    pass's time).
    """
    mapping = sequence = offset = None
    stack: list[list[bool]] = []  # per open container: [is a mapping, expects a key next]
    key_column: int | None = None  # the column of the latest key
    first: tuple[bool, int, int] | None = None  # a block container just opened as a value: (mapping?, key col, col)
    for event in yaml.parse(text):
        if first is not None:
            is_mapping, column, dash = first
            first = None
            if is_mapping and mapping is None:
                mapping = event.start_mark.column - column
            elif not is_mapping and sequence is None and event.start_mark.column > dash:
                sequence, offset = event.start_mark.column - column, dash - column
            if mapping is not None and sequence is not None:
                break
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            is_value = bool(stack) and stack[-1][0] and not stack[-1][1]
            if is_value:
                stack[-1][1] = True
                if not event.flow_style and key_column is not None:
                    first = (isinstance(event, MappingStartEvent), key_column, event.start_mark.column)
            stack.append([isinstance(event, MappingStartEvent), True])
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            stack.pop()
        elif isinstance(event, (ScalarEvent, AliasEvent)) and stack and stack[-1][0]:
            if stack[-1][1]:
                key_column = event.start_mark.column
            stack[-1][1] = not stack[-1][1]
    default_mapping, default_sequence, default_offset = _DEFAULT_INDENT
    mapping = mapping if mapping and mapping > 0 else default_mapping
    if sequence is None or sequence < offset + 2 or offset < 0:
        sequence, offset = default_sequence, default_offset
    return mapping, sequence, offset
