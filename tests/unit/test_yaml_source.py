"""parse_yaml: bytes in, plain data + node tree out, every problem located; never raises, always bounded."""

from __future__ import annotations

import datetime as dt
import gc
import subprocess
import sys
import textwrap

import pytest

from reconciler.adapters import yaml_source
from reconciler.adapters.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, locate, parse_yaml

from ..conftest import ROOT

ANY = None  # in an expected error: "not asserted" (no single right answer, or located later by the loader)


def _errors(raw: bytes) -> list[tuple[str, int | None, int | None, tuple, bool]]:
    return [(e.message, e.line, e.column, e.path, e.fatal) for e in parse_yaml(raw).errors]


def _billion_laughs(levels: int = 9, width: int = 9) -> bytes:
    lines = ["a: &a [" + ", ".join(['"lol"'] * width) + "]"]
    previous = "a"
    for name in "bcdefghijklmnop"[: levels - 1]:
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
        previous = name
    return ("\n".join(lines) + "\n").encode()


# (raw bytes, [(message substring, line, column, YAML path, fatal)])
BAD_INPUTS = [
    pytest.param(b"a: 1\nb: [1, 2\nc: 3\n",
                 [("YAML syntax error: did not find expected ',' or ']'", 3, 2, (), True)],
                 id="an unclosed flow list is a syntax error where the parser gives up"),
    pytest.param(b"a: 1\n  b: 2\n",
                 [("YAML syntax error: mapping values are not allowed in this context", 2, 4, (), True)],
                 id="a wrongly indented key is a syntax error at its colon"),
    pytest.param(b"a:\n\tb: 1\n",
                 [("YAML syntax error: found character that cannot start any token", 2, 1, (), True)],
                 id="a tab used for indentation is a syntax error at the tab"),
    pytest.param(b"a: 1\nb: *nowhere\n",
                 [("YAML syntax error: found undefined alias", 2, 4, (), True)],
                 id="an alias to an undefined anchor is a syntax error at the alias"),
    pytest.param(b"a: 1\nb: 2\na: 3\nb: 4\n",
                 [("duplicate key 'a' (first on line 1)", 3, 1, ("a",), False),
                  ("duplicate key 'b' (first on line 2)", 4, 1, ("b",), False)],
                 id="every duplicate key is reported, each at the duplicate, naming the first line"),
    pytest.param(b"outer:\n  x: 1\n  y: 2\n  x: 3\n",
                 [("duplicate key 'x' (first on line 2)", 4, 3, ("outer", "x"), False)],
                 id="a nested duplicate key carries its full YAML path"),
    pytest.param(b"a: 1\nb: caf\xe9\n",
                 [("not UTF-8: byte 0xe9 cannot be decoded", 2, 7, (), True)],
                 id="a Latin-1 byte is reported at its line and column"),
    pytest.param(b"\xef\xbb\xbfa: 1\nb: \xff\n",
                 [("not UTF-8: byte 0xff cannot be decoded", 2, 4, (), True)],
                 id="a bad byte after a byte-order mark is named and located correctly"),
    pytest.param("b: é".encode() + b"\xff\n",
                 [("not UTF-8: byte 0xff cannot be decoded", 1, 5, (), True)],
                 id="the column of a bad byte counts characters like every other column"),
    pytest.param(b"#" * (MAX_FILE_BYTES + 1),
                 [("file is 1,048,577 bytes, over the 1,048,576-byte limit", 1, 1, (), True)],
                 id="a file over 1 MiB is refused with its size"),
    pytest.param(b"a: &a [1, *a]\n",
                 [("an alias refers to the collection that contains it", ANY, ANY, ("a", 1), True)],
                 id="a sequence that contains itself through an alias is refused"),
    pytest.param(b"a: &a {b: 1, c: *a}\n",
                 [("an alias refers to the collection that contains it", ANY, ANY, ("a", "c"), True)],
                 id="a mapping that contains itself through an alias is refused"),
    pytest.param(b"[" * 200_000,
                 [(f"deeper than {MAX_DEPTH} levels", 1, ANY, (), True)],
                 id="200,000 open brackets are refused before libyaml can overflow its C stack"),
    pytest.param(b"a: " + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"\n",
                 [(f"deeper than {MAX_DEPTH} levels", 1, ANY, (), True)],
                 id="one level of brackets over the limit is refused"),
    pytest.param(b"a: 1\nb: 2\nc: " + b"[" * 100 + b"\n",
                 [(f"deeper than {MAX_DEPTH} levels", 3, ANY, (), True)],
                 id="over-deep brackets are reported on their own line"),
    pytest.param(b"".join(b"  " * i + b"k:\n" for i in range(MAX_DEPTH + 6)),
                 [(f"nested deeper than {MAX_DEPTH} levels", MAX_DEPTH + 2, 2 * (MAX_DEPTH + 1) + 1,
                   ("k",) * (MAX_DEPTH + 1), True)],
                 id="block mappings nested too deep are refused at the first level over the limit"),
    pytest.param(b"base: &b {a: 1}\nderived:\n  <<: *b\n  c: 2\n",
                 [("merge keys (<<) are not supported", 3, 3, ("derived",), True)],
                 id="a merge key is refused at the << key"),
    pytest.param(b"a: 1\n1: 2\n",
                 [("key '1' is not text", 2, 1, (), True)],
                 id="an integer key is refused"),
    pytest.param(b"true: 1\n",
                 [("key 'true' is not text", 1, 1, (), True)],
                 id="a boolean key is refused"),
    pytest.param(b"~: 1\n",
                 [("key '~' is not text", 1, 1, (), True)],
                 id="a null key is refused"),
    pytest.param(b"a: 1\n? [1, 2]\n: 3\n",
                 [("key a list is not text", 2, 3, (), True)],
                 id="a list used as a key is refused"),
    pytest.param(b"a: !custom 1\n",
                 [("unsupported tag !custom", 1, 4, ("a",), True)],
                 id="a local tag on a scalar is refused"),
    pytest.param(b"a: !!python/name:os.system ''\n",
                 [("unsupported tag tag:yaml.org,2002:python/name:os.system", 1, 4, ("a",), True)],
                 id="a python tag on a scalar is refused"),
    pytest.param(b"a: !!binary aGVsbG8=\n",
                 [("unsupported tag tag:yaml.org,2002:binary", 1, 4, ("a",), True)],
                 id="a binary scalar is refused"),
    pytest.param(b"a: !!python/object:os.system {}\n",
                 [("unsupported tag tag:yaml.org,2002:python/object:os.system", 1, 4, ("a",), True)],
                 id="a python object tag on a mapping is refused"),
    pytest.param(b"a: !!python/object/apply:os.system [ls]\n",
                 [("unsupported tag tag:yaml.org,2002:python/object/apply:os.system", 1, 4, ("a",), True)],
                 id="a python apply tag on a sequence is refused"),
    pytest.param(b"a: 1\n---\nb: 2\n",
                 [("the file holds more than one YAML document", 2, 1, (), True)],
                 id="a second document is refused at its separator"),
    pytest.param(b"",
                 [("the file is empty", 1, 1, (), True)],
                 id="an empty file is refused"),
    pytest.param(b"# only a comment\n\n",
                 [("the file is empty", 1, 1, (), True)],
                 id="a file of comments only is empty"),
    pytest.param(b"a: 1\nb: 2\nc: x\x01y\n",
                 [("control characters are not allowed", 3, 5, (), True)],
                 id="a control character is reported at its line and column"),
    pytest.param(b"a: !!bool maybe\n",
                 [("cannot read 'maybe'", 1, 4, ("a",), True)],
                 id="a !!bool that is not a boolean is an error, not a crash"),
    pytest.param(b"a: !!int\n",
                 [("cannot read ''", 1, 4, ("a",), True)],
                 id="an empty !!int is an error, not a crash"),
]


@pytest.mark.parametrize(("raw", "expected"), BAD_INPUTS)
def test_bad_input_is_reported_at_its_position(raw: bytes, expected: list) -> None:
    got = _errors(raw)
    assert len(got) == len(expected), got
    for (message, line, column, path, fatal), (want, want_line, want_column, want_path, want_fatal) in zip(got, expected):
        assert want in message
        if want_line is not ANY:
            assert line == want_line, message
        if want_column is not ANY:
            assert column == want_column, message
        assert path == want_path, message
        assert fatal is want_fatal, message


def test_every_message_fits_on_one_line() -> None:
    """Reporters print one finding per line; a message with a newline breaks `file:line:col:` parsing."""
    raws = [p.values[0] for p in BAD_INPUTS if not p.marks]
    for raw in raws:
        for e in parse_yaml(raw).errors:
            assert "\n" not in e.message and "\n" not in e.fix, e.message


def test_an_unreadable_timestamp_message_is_one_line() -> None:
    (error,) = parse_yaml(b"a: !!timestamp soon\n").errors
    assert "cannot read 'soon'" in error.message
    assert "\n" not in error.message


@pytest.mark.parametrize("digits", [
    pytest.param(b"9" * 5000, id="decimal"),
    pytest.param(b"0x" + b"f" * 5000, id="hexadecimal"),
])
def test_an_integer_too_long_for_python_is_not_a_crash(digits: bytes) -> None:
    parsed = parse_yaml(b"a: " + digits + b"\n")
    if parsed.errors:  # refused where it is...
        assert [(e.line, e.column, e.path) for e in parsed.errors] == [(1, 4, ("a",))]
    else:  # ...or read, as a number or as the text written, for the model to judge
        value = parsed.data["a"]
        assert value == digits.decode() or isinstance(value, int) and value > 10**4000


def test_duplicate_keys_keep_the_rest_of_the_document_usable() -> None:
    parsed = parse_yaml(b"a: 1\nb: {x: 1}\na: 2\nc: [1, 2]\n")
    assert parsed.data == {"a": 1, "b": {"x": 1}, "c": [1, 2]}  # the first value wins; later keys still read
    assert parsed.usable
    assert [e.fatal for e in parsed.errors] == [False]


@pytest.mark.parametrize("raw", [b"a: 1\nb: [1\n", b"a: 1\n1: 2\n", b"", b"a: !x 1\n"],
                         ids=["a syntax error", "a non-text key", "an empty file", "a custom tag"])
def test_fatal_errors_make_the_document_unusable(raw: bytes) -> None:
    parsed = parse_yaml(raw)
    assert parsed.errors and not parsed.usable


def test_a_billion_laughs_is_refused_after_a_bounded_number_of_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []

    class CountingBuilder(yaml_source._Builder):
        def build(self, node, path, depth):  # type: ignore[no-untyped-def]
            built.append(1)
            return super().build(node, path, depth)

    monkeypatch.setattr(yaml_source, "_Builder", CountingBuilder)
    parsed = parse_yaml(_billion_laughs())  # 9**9 = 387 million strings if expanded
    assert [(e.message, e.line, e.column) for e in parsed.errors] == [
        (f"the document expands to more than {MAX_NODES:,} values (aliases repeat data)", 1, 1)]
    assert "billion laughs" in parsed.errors[0].fix
    assert parsed.data is None and not parsed.usable
    assert MAX_NODES < len(built) <= MAX_NODES + 1


def test_aliases_below_the_node_limit_are_expanded() -> None:
    parsed = parse_yaml(_billion_laughs(levels=3, width=3))
    assert parsed.errors == []
    assert parsed.data["c"] == [[["lol"] * 3] * 3] * 3


@pytest.mark.parametrize("unit", [b"- ", b"? ", b"- ? ", b"-\t"],
                         ids=["block sequences", "complex keys", "sequences of complex keys", "tab-separated dashes"])
def test_a_long_compact_chain_does_not_crash_the_interpreter(unit: bytes) -> None:
    """`- - - ... x` on one line nests block collections without a single bracket: libyaml's composer
    recurses in C once per level and overflows the stack at ~30,000 levels, so the depth check must
    cover such chains too. Run in a child process: if it crashes, only the child dies."""
    code = textwrap.dedent(f"""
        from reconciler.adapters.yaml_source import parse_yaml
        parsed = parse_yaml({unit!r} * (400_000 // {len(unit)}) + b"x\\n")
        print(parsed.errors[0].message, parsed.errors[0].line)
    """)
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, f"the interpreter died with code {child.returncode}: {child.stderr[-500:]}"
    assert child.stdout == f"nested deeper than {MAX_DEPTH} levels 1\n"


def test_a_file_at_the_size_limit_is_read() -> None:
    raw = b"a: 1\n" + b"#" * (MAX_FILE_BYTES - 6) + b"\n"
    assert len(raw) == MAX_FILE_BYTES
    parsed = parse_yaml(raw)
    assert parsed.errors == [] and parsed.data == {"a": 1}


def test_a_top_level_list_parses_without_error() -> None:
    """Not a YAML problem: the loader reports it (the document is a list, not a mapping)."""
    parsed = parse_yaml(b"- 1\n- two\n")
    assert parsed.errors == [] and parsed.data == [1, "two"]


def test_a_date_without_timezone_is_read_as_a_naive_datetime() -> None:
    """Reading keeps it; the models reject it (see test_loader)."""
    parsed = parse_yaml(b"at: 2026-11-21T09:00:00\non: 2026-11-21\n")
    assert parsed.errors == []
    assert parsed.data["at"] == dt.datetime(2026, 11, 21, 9, 0) and parsed.data["at"].tzinfo is None
    assert parsed.data["on"] == dt.date(2026, 11, 21)


def test_core_types_are_constructed() -> None:
    parsed = parse_yaml(b"s: text\nq: '1'\ni: 3\nf: 2.5e-3\nb: true\nn: null\n"
                        b"t: 2026-11-21T09:00:00Z\ne: !!str 5\nl: [1, {x: y}]\n")
    assert parsed.errors == []
    assert parsed.data == {
        "s": "text", "q": "1", "i": 3, "f": 0.0025, "b": True, "n": None,
        "t": dt.datetime(2026, 11, 21, 9, 0, tzinfo=dt.timezone.utc), "e": "5", "l": [1, {"x": "y"}],
    }


def test_a_byte_order_mark_is_accepted() -> None:
    parsed = parse_yaml(b"\xef\xbb\xbfa: 1\n")
    assert parsed.errors == [] and parsed.data == {"a": 1}


@pytest.mark.parametrize(("path", "expected"), [
    pytest.param(("a",), (1, 1, ("a",)), id="a top-level key is located at the key"),
    pytest.param(("a", "b", 1, "y"), (4, 7, ("a", "b", 1, "y")), id="a key inside a list item is located at the key"),
    pytest.param(("a", "b", 1, "z"), (4, 7, ("a", "b", 1)), id="a missing key stops at its parent"),
    pytest.param(("a", "b", 5), (2, 3, ("a", "b")), id="an index past the end stops at the list's key"),
    pytest.param(("c", "d"), (5, 1, ("c",)), id="a path into a scalar stops at the scalar's key"),
    pytest.param((), (1, 1, ()), id="the empty path is the document"),
])
def test_locate(path: tuple, expected: tuple) -> None:
    root = parse_yaml(b"a:\n  b:\n    - x: 1\n    - y: 2\nc: 3\n").root
    assert locate(root, path) == expected


def test_locate_without_a_document() -> None:
    assert locate(None, ("a",)) == (None, None, ())


@pytest.mark.parametrize("raw", [b"model: chat\nweights: [1, 2]\n", b"a: [1\n"], ids=["a document", "a syntax error"])
def test_parsing_leaves_no_cyclic_garbage(raw: bytes) -> None:
    """The repository loader pauses the cyclic collector, so whatever parsing leaves in a reference
    cycle (ruamel's loader refers to itself, and holds the text) stays until the end of the load."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            parse_yaml(raw)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_equal_texts_are_one_object() -> None:
    """A model name, a metric or an approver recurs in every file: one copy each, not one per file."""
    first = parse_yaml(b"model: chat-assistant\nmetric: 'p99_latency_ms'\n").data
    second = parse_yaml(b'model: chat-assistant\nmetric: "p99_latency_ms"\n').data
    assert first == second
    assert first["model"] is second["model"] and first["metric"] is second["metric"]
    assert next(iter(first)) is next(iter(second))  # keys too
