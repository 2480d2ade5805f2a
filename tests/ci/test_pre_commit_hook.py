"""`.pre-commit-hooks.yaml`: Sluice's `reconciler validate` as a hook other repositories use.

pre-commit has no JSON Schema for its hooks manifest; the schema below encodes the keys and types
that pre-commit 4's own manifest loader (`pre_commit.clientlib`) accepts, checked against it by hand
once. When the `pre-commit` package is installed, the manifest also goes through that loader, and
the hook runs for real with `pre-commit try-repo` (which pip-installs this package into a fresh
environment, so it needs the package index).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import ROOT, copy_example
from tests.integration.rollout_world import git, hermetic_git

from .workflow_kit import HOOKS, load

LANGUAGES = ["conda", "coursier", "dart", "docker", "docker_image", "dotnet", "fail", "golang", "haskell", "julia",
             "lua", "node", "perl", "pygrep", "python", "r", "ruby", "rust", "swift", "unsupported",
             "unsupported_script"]
STAGES = ["commit-msg", "post-checkout", "post-commit", "post-merge", "post-rewrite", "pre-commit",
          "pre-merge-commit", "pre-push", "pre-rebase", "prepare-commit-msg", "manual"]
_STRINGS = {"type": "array", "items": {"type": "string"}}
HOOKS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["id", "name", "entry", "language"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": r"^\S+$"},
            "name": {"type": "string", "minLength": 1},
            "entry": {"type": "string", "minLength": 1},
            "language": {"enum": LANGUAGES},
            **{key: {"type": "string"} for key in ("alias", "files", "exclude", "description", "language_version",
                                                   "log_file", "minimum_pre_commit_version")},
            **{key: _STRINGS for key in ("types", "types_or", "exclude_types", "additional_dependencies", "args")},
            **{key: {"type": "boolean"} for key in ("always_run", "fail_fast", "pass_filenames", "require_serial",
                                                    "verbose")},
            "stages": {"type": "array", "items": {"enum": STAGES}},
        },
    },
}


def hooks() -> list[dict[str, Any]]:
    return load(HOOKS)


def schema_errors(manifest: Any) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(HOOKS_SCHEMA).iter_errors(manifest)]


def test_the_manifest_matches_pre_commits_hook_schema() -> None:
    assert schema_errors(hooks()) == []
    for hook in hooks():
        for key in ("files", "exclude"):
            if key in hook:
                re.compile(hook[key])  # pre-commit compiles these with Python's re


def test_the_hook_is_the_whole_repository_validate() -> None:
    [hook] = hooks()
    assert (hook["id"], hook["entry"], hook["language"], hook["pass_filenames"]) == (
        "reconciler-validate", "reconciler validate", "python", False)


@pytest.mark.parametrize("change, problem", [
    (lambda h: h.pop("entry"), "'entry' is a required property"),
    (lambda h: h.update(pass_filenames="no"), "'no' is not of type 'boolean'"),
    (lambda h: h.update(file="^releases/"), "Additional properties are not allowed ('file' was unexpected)"),
    (lambda h: h.update(language="python3"), "'python3' is not one of"),
    (lambda h: h.update(stages=["precommit"]), "'precommit' is not one of"),
], ids=["no entry", "string for a boolean", "unknown key", "unknown language", "unknown stage"])
def test_the_schema_rejects_a_broken_manifest(change, problem: str) -> None:
    manifest = hooks()
    change(manifest[0])
    assert any(problem in message for message in schema_errors(manifest)), schema_errors(manifest)


@pytest.mark.parametrize("path, runs", [
    ("releases/chat-assistant/1.3.0.yaml", True),
    ("environments/prod.yaml", True),
    ("environments/prod.yml", True),  # validate reports the wrong suffix, so the hook must run
    ("README.md", False),
    ("infra/__main__.py", False),
    ("docs/releases/notes.yaml", False),
    ("schemas/release.schema.json", False),
])
def test_the_hook_runs_when_a_release_or_environment_file_is_staged(path: str, runs: bool) -> None:
    [hook] = hooks()
    assert bool(re.search(hook["files"], path)) is runs  # pre-commit matches `files` with re.search


def test_validate_needs_no_pulumi_since_the_hook_installs_only_the_base_dependencies(tmp_path: Path) -> None:
    good, bad = copy_example(tmp_path / "good"), copy_example(tmp_path / "bad")
    staging = bad / "environments" / "staging.yaml"
    staging.write_text(staging.read_text().replace("namespace:", "namespac:"))
    program = ("import sys\n"
               "sys.modules.update(dict.fromkeys(['pulumi', 'pulumi_aws', 'pulumi_kubernetes', 'pulumi_policy']))\n"
               "from reconciler.cli.main import main\n"
               "sys.exit(main(['validate', sys.argv[1]]))\n")
    for repo, code, word in ((good, 0, "ok:"), (bad, 1, "FAILED:")):
        done = subprocess.run([sys.executable, "-c", program, str(repo)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == code, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1].startswith(word)


def test_pre_commits_own_loader_accepts_the_manifest() -> None:
    clientlib = pytest.importorskip("pre_commit.clientlib", reason="the pre-commit package is not installed")
    [hook] = clientlib.load_manifest(str(HOOKS))
    assert (hook["id"], hook["entry"], hook["pass_filenames"]) == ("reconciler-validate", "reconciler validate", False)


def test_the_hook_runs_for_real_in_a_repository_that_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pre-commit try-repo` installs Sluice from a clone of this repository into its own virtualenv
    and runs the hook in a team's repository: passes on the example, fails on a typo, skips when
    no release or environment file is involved."""
    pytest.importorskip("pre_commit", reason="the pre-commit package is not installed")
    hermetic_git(monkeypatch, tmp_path)
    monkeypatch.setenv("PRE_COMMIT_HOME", str(tmp_path / "cache"))
    sluice = tmp_path / "sluice"
    git(tmp_path, "clone", "-q", str(ROOT), str(sluice))
    (sluice / ".pre-commit-hooks.yaml").write_text(HOOKS.read_text())  # the manifest as in this working tree
    git(sluice, "add", ".pre-commit-hooks.yaml")
    git(sluice, "commit", "-q", "--allow-empty", "-m", "hooks manifest under test")
    team = copy_example(tmp_path / "team")
    (team / "README.md").write_text("the team's repository\n")
    git(team, "init", "-q", "-b", "main")
    git(team, "add", ".")
    git(team, "commit", "-q", "-m", "releases and environments")

    def try_repo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(sluice), "reconciler-validate",
                               *args], cwd=team, capture_output=True, text=True, timeout=600)

    passed = try_repo("--all-files")
    assert passed.returncode == 0 and "reconciler validate" in passed.stdout, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
    skipped = try_repo("--files", "README.md")
    assert skipped.returncode == 0 and "(no files to check)Skipped" in skipped.stdout
    release = team / "releases" / "chat-assistant" / "1.3.0.yaml"
    release.write_text(release.read_text().replace("min_duration:", "min_duraton:"))
    failed = try_repo("--files", "releases/chat-assistant/1.3.0.yaml")
    assert failed.returncode == 1, failed.stdout
    assert "unknown field `min_duraton`" in failed.stdout and "FAILED:" in failed.stdout


def test_a_quoted_time_is_told_to_drop_its_quotes(tmp_path: Path) -> None:
    """What a hook user sees for `standby_until: "2020-01-01T00:00:00Z"`: the value looks right, so
    the fix has to say what is wrong with it (the quotes make it text; the same file unquoted passes)."""
    repo = copy_example(tmp_path / "repo")
    prod = repo / "environments" / "prod.yaml"
    prod.write_text(prod.read_text().replace('    standby: "1.1.0"',
                                             '    standby_until: "2020-01-01T00:00:00Z"\n    standby: "1.1.0"'))
    done = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(repo)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    [finding] = [line for line in done.stdout.splitlines() if "standby_until" in line]
    assert "quote" in finding.split("; fix: ")[1], finding
