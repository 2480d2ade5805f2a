"""Safe, fast YAML reading with positions: bytes in, plain data plus a node tree out.

Why not `YAML().load()`: a release repository is input from pull requests, so reading it must be
bounded. We compose with libyaml (ruamel.yaml's C parser: fast, and every node keeps its line and
column), then build plain Python values ourselves in one walk that

- rejects duplicate keys (each one reported, not just the first),
- counts nodes as if aliases were expanded, so a "billion laughs" file is refused after
  `MAX_NODES` instead of exhausting memory or time later in validation,
- refuses recursive aliases, non-text keys, merge keys and non-core tags,
- caps nesting depth (libyaml's composer recurses in C and crashes on ~50,000 open brackets, so
  such files are refused before composing).

The node tree is kept so a finding's YAML path can be turned into a line and column later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.cyaml import CSafeLoader
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..core.findings import PathPart, YamlPath

MAX_FILE_BYTES = 1 << 20  # 1 MiB: a release is ~5 KB, an environment of 100 models ~40 KB
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 64

_SCALAR_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "timestamp")}
_STR_TAG = "tag:yaml.org,2002:str"
_FLOW_BRACKETS = re.compile(r"[\[\]{}]")


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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        return _fail(f"not UTF-8: byte 0x{raw[err.start]:02x} cannot be decoded",
                     "save the file as UTF-8", line, column)
    if _flow_depth(text) > MAX_DEPTH:
        return _fail(f"brackets nest deeper than {MAX_DEPTH} levels", "flatten the structure")
    loader = CSafeLoader(text)
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
    except (YAMLError, ValueError) as err:  # reader errors (e.g. control characters) carry no mark
        return _fail(f"YAML error: {str(err).splitlines()[0]}", "remove unprintable characters")
    if root is None:
        return _fail("the file is empty", "write the document, or delete the file")
    builder = _Builder(loader)
    try:
        data = builder.build(root, (), 0)
    except _TooBig:
        return ParsedYaml(None, root, [YamlError(
            f"the document expands to more than {MAX_NODES:,} values (aliases repeat data)",
            "write the values out instead of nesting aliases: this looks like a 'billion laughs' file", 1, 1)])
    return ParsedYaml(data, root, builder.errors)


def _fail(message: str, fix: str, line: int | None = 1, column: int | None = 1) -> ParsedYaml:
    return ParsedYaml(errors=[YamlError(message, fix, line, column)])


def _flow_depth(text: str) -> int:
    """Upper bound on flow nesting ([ and {), counted without parsing: cheap, and safe to overcount."""
    depth = deepest = 0
    for bracket in _FLOW_BRACKETS.findall(text):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


class _Builder:
    def __init__(self, loader: CSafeLoader) -> None:
        self.loader = loader
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
        if id(node) in self.open:
            self.error(node, path, "an alias refers to the collection that contains it", "remove the alias")
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
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.error(key_node, path, "merge keys (<<) are not supported", "write the keys out")
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                self.error(key_node, path, f"key {_preview(key_node)} is not text",
                           "use plain text keys (quote numbers, e.g. \"1\":)")
                continue
            key = key_node.value
            if key in out:
                self.error(key_node, path + (key,), f"duplicate key {key!r} (first on line {first_line[key]})",
                           "remove one of them: with two values it is unclear which one applies", fatal=False)
                continue
            first_line[key] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,), depth + 1)
        return out

    def scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        if node.tag == _STR_TAG:
            return node.value
        if node.tag in _SCALAR_TAGS:
            try:
                return self.loader.construct_object(node)
            except (YAMLError, ValueError, OverflowError) as err:
                self.error(node, path, f"cannot read {node.value!r}: {err}", "write a plain value")
                return None
        self.error(node, path, f"unsupported tag {node.tag}", "remove the tag: plain YAML values only")
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
