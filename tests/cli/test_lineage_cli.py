"""`reconciler lineage`: exit codes and messages (unknown model or version, broken files on and off
the chain, gaps, cycles, no git), the JSON document's keys, and a small snapshot of the text.

Each test works on its own copy of the example repository, outside any git repository unless it
makes one (GIT_CEILING_DIRECTORIES stops git from finding one above tmp_path); served intervals
from real history are in tests/integration/test_lineage_history.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from reconciler.cli import exit_codes
from reconciler.cli.main import main

from ..conftest import mutate_yaml

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

CHAT = "chat-assistant"


@pytest.fixture(autouse=True)
def _no_git_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(tmp_path))


def lineage(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["lineage", *args])
    return code, out.getvalue(), err.getvalue()


def reparent(root: Path, version: str, parent: str | None) -> None:
    def change(doc):  # type: ignore[no-untyped-def]
        doc["lineage"]["parent_version"] = parent
    mutate_yaml(root / "releases" / CHAT / f"{version}.yaml", change)


# --- usage errors: exit 2 ----------------------------------------------------------------------------


def test_an_unknown_model_is_a_usage_error_listing_the_known_models(example_repo: Path) -> None:
    assert lineage("chat-asistant", "1.3.0", str(example_repo)) == (
        exit_codes.USAGE, "", "reconciler lineage: no releases of model 'chat-asistant' under releases/ "
        "(known models: chat-assistant, code-completion)\n")


def test_an_unknown_version_is_a_usage_error_listing_the_known_versions(example_repo: Path) -> None:
    assert lineage(CHAT, "1.4.0", str(example_repo)) == (
        exit_codes.USAGE, "", "reconciler lineage: chat-assistant has no release '1.4.0': no "
        "releases/chat-assistant/1.4.0.yaml (known versions: 1.1.0, 1.2.0, 1.3.0)\n")


def test_a_path_that_is_not_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = lineage(CHAT, "1.3.0", str(tmp_path))
    assert (code, out) == (exit_codes.USAGE, "")
    assert err == f"reconciler lineage: {tmp_path} has neither releases/ nor environments/: not a Sluice repository\n"


def test_a_missing_argument_is_a_usage_error() -> None:
    assert lineage(CHAT)[0] == exit_codes.USAGE


def test_path_may_follow_the_options_as_the_usage_line_writes_it(example_repo: Path) -> None:
    """Needs main.py to parse options and positionals intermixed (plain parse_args gives PATH up early)."""
    code, out, _ = lineage(CHAT, "1.3.0", "--format", "json", str(example_repo))
    assert code == exit_codes.OK and json.loads(out)["version"] == "1.3.0"


# --- which files must be valid: only the chain's -------------------------------------------------------


def test_errors_off_the_chain_do_not_stop_the_audit(example_repo: Path) -> None:
    (example_repo / "environments" / "prod.yaml").write_text("models: [unclosed\n", encoding="utf-8")
    mutate_yaml(example_repo / "releases" / "code-completion" / "2.1.0.yaml", lambda d: d.pop("bundle"))
    code, out, err = lineage(CHAT, "1.3.0", str(example_repo), "--format", "json")
    assert (code, err) == (exit_codes.OK, "")
    assert [v["version"] for v in json.loads(out)["chain"]] == ["1.3.0", "1.2.0", "1.1.0"]


def test_a_chain_file_that_does_not_load_is_refused_with_its_errors(example_repo: Path) -> None:
    mutate_yaml(example_repo / "releases" / CHAT / "1.2.0.yaml",
                lambda d: d["lineage"]["dataset"].__setitem__("sha256", "not-a-hash"))
    mutate_yaml(example_repo / "releases" / "code-completion" / "2.1.0.yaml", lambda d: d.pop("bundle"))
    code, out, err = lineage(CHAT, "1.3.0", str(example_repo))
    assert (code, out) == (exit_codes.FINDINGS, "")
    lines = err.splitlines()
    assert len(lines) == 2, err  # the chain file's error only, not code-completion's
    assert lines[0].startswith("releases/chat-assistant/1.2.0.yaml:")
    assert "lineage.dataset.sha256: 'not-a-hash' is not a sha256" in lines[0]
    assert lines[1] == "reconciler lineage: 1 error(s): run `reconciler validate` and fix them first"


def test_the_asked_for_version_whose_file_does_not_load_is_refused(example_repo: Path) -> None:
    path = example_repo / "releases" / CHAT / "1.3.0.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "model: chat-assistant\n", encoding="utf-8")  # duplicate key
    code, out, err = lineage(CHAT, "1.3.0", str(example_repo))
    assert (code, out) == (exit_codes.FINDINGS, "")
    assert err.startswith("releases/chat-assistant/1.3.0.yaml:")
    assert "duplicate key" in err.splitlines()[0]


def test_a_missing_parent_ends_the_chain_with_a_note_and_exit_0(example_repo: Path) -> None:
    reparent(example_repo, "1.1.0", "1.0.0")
    code, out, _ = lineage(CHAT, "1.3.0", str(example_repo))
    assert code == exit_codes.OK
    assert out.startswith("chat-assistant 1.3.0: 3 version(s) back to 1.1.0 (the chain stops there: see the end)")
    assert ("chain stops: 1.1.0 names parent 1.0.0, but releases/chat-assistant/1.0.0.yaml does not exist "
            "in the working tree") in out
    report = json.loads(lineage(CHAT, "1.3.0", str(example_repo), "--format", "json")[1])
    assert report["complete"] is False
    assert {k: report["gap"][k] for k in ("kind", "version", "parent")} == {
        "kind": "missing", "version": "1.1.0", "parent": "1.0.0"}


def test_a_cycle_ends_the_chain_with_a_note_and_exit_0(example_repo: Path) -> None:
    reparent(example_repo, "1.1.0", "1.3.0")
    code, out, _ = lineage(CHAT, "1.2.0", str(example_repo))
    assert code == exit_codes.OK
    assert [line.split()[0] for line in out.splitlines() if line[:1].isdigit()] == ["1.2.0", "1.1.0", "1.3.0"]
    assert ("chain stops: 1.3.0 names parent 1.2.0, which is already on the chain "
            "(a cycle: 1.2.0 -> 1.1.0 -> 1.3.0 -> 1.2.0); fix lineage.parent_version in one of them\n") in out


def test_a_parent_that_does_not_load_is_refused(example_repo: Path) -> None:
    mutate_yaml(example_repo / "releases" / CHAT / "1.1.0.yaml", lambda d: d.pop("evaluation"))
    code, out, err = lineage(CHAT, "1.3.0", str(example_repo))
    assert (code, out) == (exit_codes.FINDINGS, "")
    assert err.startswith("releases/chat-assistant/1.1.0.yaml:")


# --- git or not ----------------------------------------------------------------------------------------


def test_outside_git_the_chain_is_printed_with_a_note_and_exit_0(example_repo: Path) -> None:
    code, out, err = lineage(CHAT, "1.3.0", str(example_repo), "--format", "json")
    assert (code, err) == (exit_codes.OK, "")
    report = json.loads(out)
    assert report["history"] == {"available": False, "head": None, "commits": 0, "unreadable_revisions": {},
                                 "note": f"served history needs git: {example_repo} is not inside a git repository"}
    assert all(v["added"] is None and v["served"] == [] for v in report["chain"])


def test_a_repository_without_commits_says_so(example_repo: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=example_repo, check=True)
    code, out, _ = lineage(CHAT, "1.3.0", str(example_repo))
    assert code == exit_codes.OK
    assert out.rstrip().endswith("history: served history needs git: the repository has no commits yet")


def test_json_keys_are_the_documented_ones(example_repo: Path) -> None:
    report = json.loads(lineage(CHAT, "1.3.0", str(example_repo), "--format", "json")[1])
    assert list(report) == ["model", "version", "complete", "gap", "chain", "history"]
    assert list(report["chain"][0]) == [
        "version", "full_id", "file", "description", "created_by", "created_at", "parent_version", "base_model",
        "dataset", "hyperparameters", "training", "approvals", "bundle_digest", "added", "uncommitted_changes",
        "served"]
    newest = report["chain"][0]
    assert newest["full_id"] == "chat-assistant/v1.3.0-4f2a9c1d07e5"
    assert newest["dataset"]["sha256"] == "289d5a1345c430a4c3e221ff49639698142f11046dea0a2a6d55f0caff071e0e"
    assert newest["approvals"][1] == {"by": "bob.okafor@acme.example", "role": "safety", "at": "2026-11-13T15:22:00Z"}


def test_text_of_a_first_release_outside_git(example_repo: Path, snapshot) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = lineage(CHAT, "1.1.0", str(example_repo))
    assert code == exit_codes.OK
    assert out.replace(str(example_repo), "<repo>") == snapshot
