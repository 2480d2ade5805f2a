"""The committed JSON Schemas match the models, and every example file validates against its schema."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from reconciler.core.schemas import SCHEMA_FILES, schema_documents

from ..conftest import ROOT

SCHEMA_DIR = ROOT / "schemas"
EXAMPLES = sorted((ROOT / "releases").glob("*/*.yaml")) + sorted((ROOT / "environments").glob("*.yaml"))
SCHEMA_OF = {"releases": "release.schema.json", "environments": "environment.schema.json"}


def _schema_name(path: Path) -> str:
    return SCHEMA_OF[path.relative_to(ROOT).parts[0]]


def _plain(value: Any) -> Any:
    """YAML timestamps become ISO strings, as JSON (and an editor's schema check) would see them."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _load(path: Path) -> Any:
    return _plain(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_there_are_examples_of_both_kinds() -> None:
    assert {_schema_name(p) for p in EXAMPLES} == set(SCHEMA_FILES)
    assert len(EXAMPLES) == 7


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_is_up_to_date(name: str) -> None:
    committed = SCHEMA_DIR / name
    assert committed.exists(), f"{committed} is missing: run `reconciler schema` and commit the result"
    assert committed.read_text(encoding="utf-8") == schema_documents()[name], (
        f"{committed} differs from the models: run `reconciler schema` and commit the result")


def test_no_stray_schema_files() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json")) == sorted(SCHEMA_FILES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_example_validates_against_its_schema(path: Path) -> None:
    validator = _validator(_schema_name(path))
    errors = sorted(validator.iter_errors(_load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_example_names_its_schema_on_the_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix), first
    target = (path.parent / first.removeprefix(prefix).strip()).resolve()
    assert target == (SCHEMA_DIR / _schema_name(path)).resolve()
    assert target.is_file()


@pytest.mark.parametrize(("name", "change", "complaint"), [
    pytest.param("release.schema.json", lambda d: d.pop("model"), "'model' is a required property",
                 id="a release without model"),
    pytest.param("release.schema.json", lambda d: d.update(surprise=1), "Additional properties",
                 id="a release with an unknown field"),
    pytest.param("release.schema.json", lambda d: d["bundle"]["serving"].update(gpus="four"), "is not of type",
                 id="a release with text for a GPU count"),
    pytest.param("release.schema.json", lambda d: d.update(version="v1.3"), "does not match",
                 id="a release with a version that is not semver"),
    pytest.param("environment.schema.json", lambda d: d["models"]["chat-assistant"].pop("pool"),
                 "'pool' is a required property", id="an environment model without a pool"),
    pytest.param("environment.schema.json", lambda d: d["metrics"].update(window=60), "is not of type",
                 id="an environment with a duration without unit"),
])
def test_the_schemas_reject_broken_documents(name: str, change, complaint: str) -> None:  # type: ignore[no-untyped-def]
    """The check above could pass vacuously if the schemas accepted anything."""
    example = ROOT / ("releases/chat-assistant/1.3.0.yaml" if name.startswith("release") else "environments/staging.yaml")
    data = copy.deepcopy(_load(example))
    change(data)
    messages = [e.message for e in _validator(name).iter_errors(data)]
    assert any(complaint in m for m in messages), messages
