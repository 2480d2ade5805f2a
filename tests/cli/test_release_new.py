"""`reconciler release new MODEL --bump ...`: the next release file, from the current stable.

On a copy of the example repository, in-process through `reconciler.cli.main.main`. What must be
measured anew is left empty and named, so the file fails `validate` until it is filled in; filled
in, it validates, and the semver rule holds the bump to what the author then changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.cli.main import main

from ..conftest import copy_example, load_yaml, mutate_yaml

TODO_FIELDS = ["revision", "description", "lineage.approvals", "evaluation.toxicity",
               "evaluation.win_rate_vs_current", "evaluation.latency_p99_ms", "evaluation.adversarial_pass_rate",
               "evaluation.benchmarks"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def release_new(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["release", "new", *args, str(repo)])
    out, err = capsys.readouterr()
    return code, out, err


def fill_in(data: Any) -> None:
    data["revision"] = "0123456789ab"
    data["description"] = "Shorter answers."
    data["evaluation"].update(toxicity=0.01, win_rate_vs_current=0.55, latency_p99_ms=1700, adversarial_pass_rate=1.0)


def errors(repo: Path) -> list[tuple[str, str, str]]:
    return [(f.rule, f.file, f.yaml_path) for f in load_repository(repo).errors]


def test_a_patch_from_the_stable_names_what_to_fill_in_and_keeps_the_parents_style(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = release_new(repo, capsys, "chat-assistant", "--bump", "patch")
    assert code == 0
    assert "wrote releases/chat-assistant/1.2.1.yaml: chat-assistant 1.2.1 from 1.2.0 (stable in prod, staging)" in out
    assert "fill in (marked TODO(sluice) in the file): " + ", ".join(TODO_FIELDS) in out
    text = (repo / "releases/chat-assistant/1.2.1.yaml").read_text()
    parent = (repo / "releases/chat-assistant/1.2.0.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/release.schema.json\n"
                           "# chat-assistant 1.2.1: a PATCH release from 1.2.0.")
    assert "the customer-support assistant" not in text  # the parent's own header described the parent
    assert text.count("TODO(sluice)") == len(TODO_FIELDS) + 1  # and the header's instruction
    # Style: the same section breaks as the parent, and its comments inside sections.
    assert _top_level_shape(text) == _top_level_shape(parent) == \
        ["model", "version", "revision", "description", "", "bundle", "", "lineage", "", "evaluation", "", "rollout"]
    data = load_yaml(repo / "releases/chat-assistant/1.2.1.yaml")
    assert data["version"] == "1.2.1" and data["lineage"]["parent_version"] == "1.2.0"
    assert data["bundle"] == load_yaml(repo / "releases/chat-assistant/1.2.0.yaml")["bundle"]
    assert data["lineage"]["approvals"] == [] and data["evaluation"]["toxicity"] is None


def _top_level_shape(text: str) -> list[str]:
    """Top-level keys and the blank lines between them."""
    return [line.split(":")[0] if line else "" for line in text.splitlines()
            if not line.startswith((" ", "#")) and (not line or ":" in line)]


def test_the_scaffold_fails_validate_on_exactly_what_must_be_measured_and_passes_once_filled_in(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert release_new(repo, capsys, "chat-assistant", "--bump", "minor", "--from", "1.3.0")[0] == 0
    path = repo / "releases/chat-assistant/1.4.0.yaml"
    assert errors(repo) == [("schema", "releases/chat-assistant/1.4.0.yaml", p) for p in
                            ("revision", "evaluation.toxicity", "evaluation.latency_p99_ms",
                             "evaluation.adversarial_pass_rate")]
    assert main(["validate", str(repo)]) == 1
    assert "`toxicity` is empty (input should be a valid number); fix: fill in `toxicity:` under evaluation" \
        in capsys.readouterr().out
    mutate_yaml(path, fill_in)
    assert errors(repo) == []


@pytest.mark.parametrize(("bump", "change", "ok"), [
    ("patch", ("generation", "temperature", 0.2), True),
    ("patch", ("weights", "sha256", "ab" * 32), False),
    ("minor", ("weights", "sha256", "ab" * 32), True),
    ("minor", ("system_prompt", "sha256", "cd" * 32), True),
])
def test_the_semver_rule_holds_the_bump_to_what_the_author_changes(
        repo: Path, capsys: pytest.CaptureFixture[str], bump: str, change: tuple[str, str, Any], ok: bool) -> None:
    assert release_new(repo, capsys, "chat-assistant", "--bump", bump, "--from", "1.3.0")[0] == 0
    version = {"patch": "1.3.1", "minor": "1.4.0"}[bump]
    path = repo / f"releases/chat-assistant/{version}.yaml"
    section, key, value = change

    def edit(data: Any) -> None:
        fill_in(data)
        data["bundle"][section][key] = value

    mutate_yaml(path, edit)
    found = errors(repo)
    assert found == ([] if ok else [("semver", f"releases/chat-assistant/{version}.yaml", "bundle.weights.sha256")])


def test_a_taken_version_is_refused_and_nothing_is_written(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in (repo / "releases/chat-assistant").iterdir())
    code, _, err = release_new(repo, capsys, "chat-assistant", "--bump", "minor")
    assert code == 2
    assert "releases/chat-assistant/1.3.0.yaml already exists: scaffold from it with --from 1.3.0" in err
    assert sorted(p.name for p in (repo / "releases/chat-assistant").iterdir()) == before


@pytest.mark.parametrize(("args", "message"), [
    (("no-such-model", "--bump", "patch"), "no releases of 'no-such-model' under releases/ (models: chat-assistant, "
                                           "code-completion)"),
    (("chat-assistant", "--bump", "patch", "--from", "9.9.9"), "chat-assistant has no release 9.9.9 (known: 1.1.0, "
                                                              "1.2.0, 1.3.0)"),
    (("chat-assistant", "--bump", "patch", "-e", "dev"), "chat-assistant is not deployed in 'dev' (it is in: prod, "
                                                         "staging)"),
])
def test_bad_requests_are_usage_errors(repo: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                       message: str) -> None:
    code, _, err = release_new(repo, capsys, *args)
    assert code == 2
    assert err.strip() == f"reconciler release: {message}"


def test_the_parent_follows_the_environment_asked_for(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def prod_runs_older(data: Any) -> None:
        data["models"]["code-completion"]["stable"] = "2.0.0"

    mutate_yaml(repo / "environments/prod.yaml", prod_runs_older)

    def staging_promoted(data: Any) -> None:
        model = data["models"]["code-completion"]
        model["stable"], model["candidate"], model["stage"] = "2.1.0", None, 0

    mutate_yaml(repo / "environments/staging.yaml", staging_promoted)
    code, out, _ = release_new(repo, capsys, "code-completion", "--bump", "patch", "-e", "prod")
    assert code == 0 and "code-completion 2.0.1 from 2.0.0 (stable in prod)" in out
    code, out, _ = release_new(repo, capsys, "code-completion", "--bump", "patch")
    assert code == 0 and "code-completion 2.1.1 from 2.1.0 (stable in staging)" in out
