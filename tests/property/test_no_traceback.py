"""Whatever is in the files, `reconciler validate` answers with an exit code and findings, never a traceback.

Hypothesis runs many examples per test, so these tests share one copy of the example repository
per module (function-scoped fixtures would not be reset between examples) and restore the file
they changed after each example.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli.main import main

from ..conftest import copy_example, dump_yaml, load_yaml

RELEASE = "releases/chat-assistant/1.3.0.yaml"
ENVIRONMENT = "environments/staging.yaml"
EXAMPLE_FILES = [
    "releases/chat-assistant/1.1.0.yaml", "releases/chat-assistant/1.2.0.yaml", RELEASE,
    "releases/code-completion/2.0.0.yaml", "releases/code-completion/2.1.0.yaml",
    "environments/prod.yaml", ENVIRONMENT,
]

# derandomize: the same examples every run, so a failure is reproducible and CI never flakes.
SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Text that looks like YAML: indicators, indentation and line breaks, so the parser gets past line 1.
YAML_ALPHABET = list("abk019.:- \n\t[]{},&*!|>'\"#?%@`~<=\\") + ["\u00e9", "\u2028", "\ufeff", "\x00", "\x85"]
CONTENT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(YAML_ALPHABET), max_size=300),
    st.binary(max_size=300),
)
OTHER_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory.mktemp("property") / "repo")


@contextlib.contextmanager
def changed(path: Path) -> Iterator[None]:
    original = path.read_bytes()
    try:
        yield
    finally:
        path.write_bytes(original)


def validate(repo: Path, *options: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(repo), *options])
    return code, out.getvalue(), err.getvalue()


def check_report(code: int, out: str, err: str) -> dict[str, Any]:
    assert code in (0, 1, 2), code
    if code == 2:
        assert err.startswith("reconciler validate: "), err
        return {}
    report = json.loads(out)
    assert report["ok"] is (code == 0)
    assert bool(report["errors"]) is (code == 1)
    for entry in report["errors"] + report["warnings"]:
        assert entry["file"] and entry["message"] and entry["rule"]
        assert isinstance(entry["line"], int) and entry["line"] >= 1, entry  # every finding is located
    return report


@pytest.mark.parametrize("target", [RELEASE, ENVIRONMENT])
@SETTINGS
@given(content=CONTENT)
def test_arbitrary_content_is_reported_not_raised(repo: Path, target: str, content: str | bytes) -> None:
    path = repo / target
    with changed(path):
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        code, out, err = validate(repo)
    assert code in (1, 2), out
    assert target in out + err


@pytest.mark.parametrize("target", [RELEASE, ENVIRONMENT])
@SETTINGS
@given(content=CONTENT)
def test_arbitrary_content_is_reported_in_json(repo: Path, target: str, content: str | bytes) -> None:
    path = repo / target
    with changed(path):
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        code, out, err = validate(repo, "--format", "json")
    report = check_report(code, out, err)
    assert code == 1
    assert target in {e["file"] for e in report["errors"]}


# --- mutations of the example files ---------------------------------------------------------------------


def _paths(node: Any, want: type, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every value of kind `want` (dict, list, or object for scalars) in a round-trip document."""
    is_collection = isinstance(node, (dict, list))
    if want is object and not is_collection or want is not object and isinstance(node, want):
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, want, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, want, path + (i,))


def _get(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate_document(path: Path, data: st.DataObject, kind: str) -> None:
    doc = load_yaml(path)
    if kind == "replace-scalar":
        where = data.draw(st.sampled_from(list(_paths(doc, object))))
        old = _get(doc, where)
        new = data.draw(OTHER_VALUES.filter(lambda v: type(v) is not type(old)))
        _get(doc, where[:-1])[where[-1]] = new
    elif kind == "delete-key":
        where = data.draw(st.sampled_from([p for p in _paths(doc, dict) if _get(doc, p)]))
        mapping = _get(doc, where)
        del mapping[data.draw(st.sampled_from(list(mapping)))]
    else:  # insert-unknown-key
        where = data.draw(st.sampled_from(list(_paths(doc, dict))))
        mapping = _get(doc, where)
        key = data.draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in mapping))
        mapping[key] = data.draw(OTHER_VALUES)
    dump_yaml(path, doc)


@SETTINGS
@given(data=st.data(), file=st.sampled_from(EXAMPLE_FILES),
       kind=st.sampled_from(["replace-scalar", "delete-key", "insert-unknown-key", "duplicate-line", "truncate"]))
def test_mutated_example_files_are_reported_not_raised(repo: Path, data: st.DataObject, file: str, kind: str) -> None:
    path = repo / file
    with changed(path):
        raw = path.read_bytes()
        if kind == "duplicate-line":
            lines = raw.splitlines(keepends=True)
            i = data.draw(st.integers(0, len(lines) - 1))
            path.write_bytes(b"".join(lines[: i + 1] + lines[i:]))
        elif kind == "truncate":
            path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
        else:
            _mutate_document(path, data, kind)
        code, out, err = validate(repo, "--format", "json")
    report = check_report(code, out, err)
    if code == 1:
        assert report["errors"][0]["message"]


def test_the_shared_repository_is_restored(repo: Path) -> None:
    """Runs after the property tests in this module: every example put its file back."""
    code, out, _ = validate(repo)
    assert code == 0, out
