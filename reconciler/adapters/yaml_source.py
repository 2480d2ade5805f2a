"""Safe, fast YAML reading with positions: bytes in, plain data plus a node tree out.

Why not `YAML().load()`: a release repository is input from pull requests, so reading it must be
bounded. We compose with libyaml (ruamel.yaml's C parser with the base resolver: fast, and every node
keeps its line and column), then build plain Python values ourselves in one walk that types
scalars (`yaml_scalars`), and

- rejects duplicate keys (each one reported, not just the first),
- counts nodes as if aliases were expanded, so a "billion laughs" file is refused after
  `MAX_NODES` instead of exhausting memory or time later in validation,
- refuses recursive aliases, non-text keys, merge keys and non-core tags,
- caps nesting depth (libyaml's composer recurses in C and crashes the interpreter on ~50,000
  levels, so deep flow brackets and long compact chains like `- - - -` are refused before composing;
  indentation alone cannot nest that deep within the size limit).

The node tree is kept so a finding's YAML path can be turned into a line and column later.
"""

from __future__ import annotations

import re
from sys import intern
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.cyaml import CBaseLoader
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.tag import Tag

from ..core.findings import PathPart, YamlPath
from .yaml_scalars import CORE, construct_tagged, resolve_plain

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a release is ~5 KB, an environment of 100 models ~40 KB
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 64

_STR_TAG = CORE + "str"
_COLLECTION_TAGS = {CORE + "map", CORE + "seq"}
# One shared Tag per kind for untagged nodes, so the builder tests identity instead of rendering
# the tag as a string for each of the ~100,000 nodes of a large repository.
_UNTAGGED = {ScalarNode: Tag(suffix=_STR_TAG), SequenceNode: Tag(suffix=CORE + "seq"),
             MappingNode: Tag(suffix=CORE + "map")}
_PLAIN = _UNTAGGED[ScalarNode]


class _Composer(CBaseLoader):
    """libyaml's composer; every untagged node gets its kind's shared tag (typing happens later)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Tag:
        return _UNTAGGED[kind]

    def dispose(self) -> None:
        """ruamel's loader refers to itself (as parser, composer, constructor and resolver): a cycle
        that only the cyclic collector frees, and the repository loader pauses that collector. Dropping
        the attributes frees the loader and its copy of the text as soon as parsing is done."""
        vars(self).clear()

_FLOW_BRACKETS = re.compile(r"[\[\]{}]")
_COMPACT_CHAIN = re.compile(r"(?:[-?][ \t]+){%d}" % MAX_DEPTH)  # `- - - ...`: one nesting level each


@dataclass(frozen=True, slots=True)
class YamlError:
    """A problem reading the file itself; `path` is as far as the walk got."""

    message: str
    fix: str
    line: int | None = None
    column: int | None = None
    path: YamlPath = ()
    fatal: bool = True  # False: the rest of the document is still worth validating (e.g. a duplicate key)


@dataclass
class ParsedYaml:
    data: Any = None
    root: Node | None = None
    errors: list[YamlError] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when `data` can still be validated to find more problems."""
        return self.root is not None and not any(e.fatal for e in self.errors)


class _TooBig(Exception):
    pass


def parse_yaml(raw: bytes) -> ParsedYaml:
    """Decode, compose and build one YAML document; never raises for bad input."""
    if len(raw) > MAX_FILE_BYTES:
        return _fail(f"file is {len(raw):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit",
                     "release and environment files are small: split the file or remove embedded data")
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark: allowed, and not content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line_start = raw.rfind(b"\n", 0, err.start) + 1
        column = len(raw[line_start:err.start].decode("utf-8", errors="replace")) + 1
        return _fail(f"not UTF-8: byte 0x{raw[err.start]:02x} cannot be decoded",
                     "save the file as UTF-8", raw.count(b"\n", 0, err.start) + 1, column)
    too_deep = _too_deep_at(text)
    if too_deep is not None:
        line, column = _position(text, too_deep)
        return _fail(f"nested deeper than {MAX_DEPTH} levels", "flatten the structure", line, column)
    loader = _Composer(text)
    try:
        root = loader.get_single_node()
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if "expected a single document" in str(err):
            problem, fix = "the file holds more than one YAML document", "keep one document per file (remove ---)"
        else:
            fix = "fix the YAML syntax at this position (check indentation, quotes and colons)"
        return _fail(f"YAML syntax error: {problem}", fix,
                     mark.line + 1 if mark else None, mark.column + 1 if mark else None)
    except (YAMLError, ValueError) as err:  # reader errors (control characters) carry a position, no mark
        position = getattr(err, "position", None)
        line, column = _position(text, position) if isinstance(position, int) else (1, 1)
        reason = getattr(err, "reason", None) or str(err).splitlines()[0]
        return _fail(f"YAML error: {reason}", "remove the unprintable character", line, column)
    finally:
        loader.dispose()
    if root is None:
        return _fail("the file is empty", "write the document, or delete the file")
    builder = _Builder()
    try:
        data = builder.build(root, (), 0)
    except _TooBig:
        return ParsedYaml(None, root, [YamlError(
            f"the document expands to more than {MAX_NODES:,} values (aliases repeat data)",
            "write the values out instead of nesting aliases: this looks like a 'billion laughs' file", 1, 1)])
    return ParsedYaml(data, root, builder.errors)


def _fail(message: str, fix: str, line: int | None = 1, column: int | None = 1) -> ParsedYaml:
    return ParsedYaml(errors=[YamlError(message, fix, line, column)])


def _too_deep_at(text: str) -> int | None:
    """Offset where nesting first exceeds MAX_DEPTH, judged without parsing (cheap; may overcount
    brackets inside quotes, which no real release file nests 64 deep)."""
    indicators = text.count("- ") + text.count("-\t") + text.count("? ") + text.count("?\t")
    chain = _COMPACT_CHAIN.search(text) if indicators >= MAX_DEPTH else None
    depth = 0
    for bracket in _FLOW_BRACKETS.finditer(text):
        depth = depth + 1 if bracket.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            return bracket.start() if chain is None else min(bracket.start(), chain.start())
    return chain.start() if chain else None


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a character offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


class _Builder:
    def __init__(self) -> None:
        self.errors: list[YamlError] = []
        self.count = 0
        self.open: set[int] = set()  # nodes on the current path, to catch recursive aliases

    def error(self, node: Node, path: YamlPath, message: str, fix: str, fatal: bool = True) -> None:
        mark = node.start_mark
        self.errors.append(YamlError(message, fix, mark.line + 1, mark.column + 1, path, fatal))

    def build(self, node: Node, path: YamlPath, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig
        if depth > MAX_DEPTH:
            self.error(node, path, f"nested deeper than {MAX_DEPTH} levels", "flatten the structure")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.open:  # the alias's own position is gone: report at its path
            self.errors.append(YamlError("an alias refers to the collection that contains it", "remove the alias",
                                         None, None, path))
            return None
        if node.ctag is not _UNTAGGED[type(node)] and node.tag not in _COLLECTION_TAGS:
            self.error(node, path, f"unsupported tag {node.tag}", "remove the tag: plain YAML values only")
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path, depth)
            return None  # pragma: no cover - the composer makes only the three kinds
        finally:
            self.open.discard(id(node))

    def mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            plain_key = key_node.ctag is _PLAIN
            if not plain_key and (not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG) or (
                    plain_key and not key_node.style and not isinstance(resolve_plain(key_node.value), str)):
                self.error(key_node, path, f"key {_preview(key_node)} is not text",
                           "use plain text keys (quote numbers, e.g. \"1\":)")
                continue
            key = intern(key_node.value)
            if key == "<<" and not key_node.style:
                self.error(key_node, path, "merge keys (<<) are not supported", "write the keys out")
                continue
            if key in out:
                self.error(key_node, path + (key,), f"duplicate key {key!r} (first on line {first_line[key]})",
                           "remove one of them: with two values it is unclear which one applies", fatal=False)
                continue
            first_line[key] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out

    def scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        """Texts are interned: the same names (models, metrics, pools, approvers ...) recur in every
        file of a repository, and one copy of each saves about a fifth of a loaded release's memory."""
        if node.ctag is _PLAIN:
            value = node.value if node.style else resolve_plain(node.value)
            return intern(value) if type(value) is str else value
        tag = node.tag
        if not tag.startswith(CORE):
            self.error(node, path, f"unsupported tag {tag}", "remove the tag: plain YAML values only")
            return None
        try:
            return construct_tagged(tag, node.value)
        except ValueError as err:
            kind = tag.removeprefix(CORE)
            self.error(node, path, f"cannot read {node.value!r} as {kind}: {err}",
                       f"write a valid {kind}, or remove the tag")
            return None


def _preview(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return repr(node.value)[:40]
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


def locate(root: Node | None, path: YamlPath) -> tuple[int | None, int | None, YamlPath]:
    """Line and column (1-based) of the deepest node on `path`, and how much of the path exists.

    For a mapping entry the position is its key's, which is where people look. A path that
    leaves the document (a missing field) stops at its parent.
    """
    if root is None:
        return None, None, ()
    node, mark, found = root, root.start_mark, ()
    for part in path:
        nxt = _child(node, part)
        if nxt is None:
            break
        key_node, node = nxt
        mark = (key_node or node).start_mark
        found = found + (part,)
    return mark.line + 1, mark.column + 1, found


def _child(node: Node, part: PathPart) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                return key, value
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None
