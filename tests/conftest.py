"""Shared fixtures: a private copy of the example repository, and YAML helpers to mutate it."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from ruamel.yaml import YAML

from .mlflow_kit import mlflow_server  # noqa: F401 - the session's MLflow server, for any test that asks

ROOT = Path(__file__).resolve().parents[1]


def copy_example(dest: Path) -> Path:
    """Copy releases/ and environments/ of the example repository into `dest`."""
    for folder in ("releases", "environments"):
        shutil.copytree(ROOT / folder, dest / folder)
    return dest


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments and order survive a mutation
    yaml.preserve_quotes = True
    return yaml


def load_yaml(path: Path) -> Any:
    return _yaml().load(path.read_text(encoding="utf-8"))


def dump_yaml(path: Path, data: Any) -> None:
    buffer = io.StringIO()
    _yaml().dump(data, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def mutate_yaml(path: Path, change: Callable[[Any], None]) -> None:
    """Load `path`, let `change` edit the document in place, write it back."""
    data = load_yaml(path)
    change(data)
    dump_yaml(path, data)
