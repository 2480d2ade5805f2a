"""The layers import downward only: core imports neither adapters nor the CLI, adapters do not
import the CLI. Checked on the source (every import statement, at any depth, relative or absolute),
so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "reconciler"


def imported_modules(source: str, package: str) -> set[str]:
    """Absolute names of every module `source` (a module of `package`) imports, and of each name it
    imports from one: `from ..cli.reporters import f` in reconciler.adapters gives
    reconciler.cli.reporters and reconciler.cli.reporters.f."""
    parts = package.split(".")
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def upward_imports(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        for name in imported_modules(path.read_text(encoding="utf-8"), package):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("core", ("reconciler.adapters", "reconciler.cli")),
    ("adapters", ("reconciler.cli",)),
])
def test_no_layer_imports_upward(folder: str, forbidden: tuple[str, ...]) -> None:
    assert upward_imports(folder, forbidden) == []


@pytest.mark.parametrize(("source", "package", "expected"), [
    ("def f():\n    from ..cli.reporters import finding_line\n", "reconciler.adapters", "reconciler.cli.reporters"),
    ("from ...adapters import git\n", "reconciler.core.policy", "reconciler.adapters.git"),
    ("from . import routes\n", "reconciler.core.policy", "reconciler.core.policy.routes"),
    ("import reconciler.cli.main as m\n", "reconciler.core", "reconciler.cli.main"),
    ("from reconciler import cli\n", "reconciler.core", "reconciler.cli"),
])
def test_the_walker_resolves_imports_as_python_does(source: str, package: str, expected: str) -> None:
    assert expected in imported_modules(source, package)
