"""Released files never change: `reconciler validate --base REF` on real git history.

Every case starts from the example repository committed on `main` (the base: what is released),
then changes the working tree, or commits on a feature branch, and runs `validate --base main`
in-process through the real entry point. A case lists every finding it expects, exactly: a
change to a released value is an error naming the changed fields, where the first one is (file,
line, YAML path) and the bump to cut the change as; a change that leaves every value as it was
(comments, key order, quoting, flow style, a default spelled out) passes; a released file deleted
is a warning; files the base does not have are not released, whatever happens to them.

Base refs: a ref git cannot read is a usage error (exit 2) that says so; `origin/main` works in a
clone of a bare remote, and a CI clone without that ref gets a hint to fetch the history.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli.main import main
from tests.conftest import ROOT, copy_example
from tests.integration.rollout_world import Run, git, hermetic_git
from tests.unit.test_rules import Mutation, append, both, copy, edit, position, set_

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

R12 = "releases/chat-assistant/1.2.0.yaml"
R13 = "releases/chat-assistant/1.3.0.yaml"
R131 = "releases/chat-assistant/1.3.1.yaml"
STAGING = "environments/staging.yaml"


# --- edits, as a person makes them (round-trip YAML edits: tests/unit/test_rules.py's helpers) ----------


def replace_text(rel: str, *pairs: tuple[str, str]) -> Mutation:
    """Text edits (regex -> replacement), each of which must match: formatting a YAML library would undo."""
    def mutate(root: Path) -> None:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        for pattern, replacement in pairs:
            text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
            assert count == 1, f"{pattern!r} not found in {rel}"
        path.write_text(text, encoding="utf-8")
    return mutate


#: releases/chat-assistant/1.3.1.yaml: 1.3.0 again with a lower temperature (a PATCH).
new_patch_release = copy(R13, R131, set_(("version",), "1.3.1"), set_(("revision",), "5a1b2c3d4e5f"),
                         set_(("lineage", "parent_version"), "1.3.0"),
                         set_(("bundle", "generation", "temperature"), 0.2))
another_approval = edit(R13, append(("lineage", "approvals"), {
    "by": "carol.nguyen@acme.example", "at": datetime(2026, 11, 14, 9, 0, tzinfo=timezone.utc), "role": "product"}))


def delete_file(rel: str) -> Mutation:
    def mutate(root: Path) -> None:
        (root / rel).unlink()
    return mutate


def line_of(text: str, *patterns: str) -> int:
    """1-based line where the last regex matches, each searched from where the previous matched."""
    return position(text, patterns)[0]


# --- running ---------------------------------------------------------------------------------------


def findings(run: Run) -> list[dict[str, Any]]:
    data = json.loads(run.out)
    return data["errors"] + data["warnings"]


def validate(root: Path, *args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(root), *args])
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hermetic_git(monkeypatch, tmp_path)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-11-20T09:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-20T09:00:00Z")
    return tmp_path


def released_repo(path: Path, before: Mutation | None = None) -> Path:
    """The example (reshaped by `before`) committed on main: what is released."""
    root = copy_example(path)
    if before is not None:
        before(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "releases", "environments")
    git(root, "commit", "-q", "-m", "Released: the example repository")
    return root


# --- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    severity: str
    rule: str
    file: str
    path: str
    message: str | None = None  # exact, when given
    fix: str | None = None
    line: tuple[str, ...] = ()  # regexes locating the line in the file as the change left it


@dataclass(frozen=True)
class Case:
    id: str
    before: Mutation | None = None  # part of the base commit
    branch: Mutation | None = None  # committed on a feature branch (the base stays main)
    worktree: Mutation | None = None  # left uncommitted
    code: int = 0
    expect: tuple[Expected, ...] = ()


def edited(version: str, changed: str, bump: str, rel: str, path: str, *line: str) -> Expected:
    return Expected(
        "error", "immutable", rel, path,
        f"chat-assistant {version} is released (main has it) and may not change; changed: {changed}",
        f"put the released values back (git checkout main -- {rel}) and cut a new version for the change: "
        f"reconciler release new chat-assistant --bump {bump}", line)


CASES = [
    Case("new weights in a released file (working tree): MINOR",
         worktree=edit(R13, set_(("bundle", "weights", "sha256"), "ab" * 32)), code=1,
         expect=(edited("1.3.0", "bundle.weights.sha256", "minor", R13, "bundle.weights.sha256",
                        r"^  weights:", r"sha256:"),)),
    Case("a lower temperature in a released file (committed on a branch): PATCH",
         branch=edit(R12, set_(("bundle", "generation", "temperature"), 0.2)), code=1,
         expect=(edited("1.2.0", "bundle.generation.temperature", "patch", R12, "bundle.generation.temperature",
                        r"^  generation:", r"temperature:"),)),
    Case("evaluation numbers edited: a new version all the same (PATCH)",
         worktree=edit(R13, set_(("evaluation", "toxicity"), 0.009)), code=1,
         expect=(edited("1.3.0", "evaluation.toxicity", "patch", R13, "evaluation.toxicity",
                        r"^evaluation:", r"toxicity:"),)),
    Case("an approval added (a list that grows is one changed field)",
         worktree=another_approval, code=1,
         expect=(edited("1.3.0", "lineage.approvals", "patch", R13, "lineage.approvals", r"^  approvals:"),)),
    Case("another base model: MAJOR, and the semver rule says 1.3.0 is too small a bump from 1.2.0",
         worktree=edit(R13, set_(("lineage", "base_model", "name"), "Qwen/Qwen2.5-72B-Instruct")), code=1,
         expect=(edited("1.3.0", "lineage.base_model.name", "major", R13, "lineage.base_model.name",
                        r"^lineage:", r"^    name:"),
                 Expected("error", "semver", R13, "lineage.base_model.name"))),
    Case("seven fields edited: five named, and how many more",
         worktree=edit(R12, set_(("description",), "Reworded."), set_(("bundle", "generation", "temperature"), 0.2),
                       set_(("bundle", "generation", "top_p"), 0.8), set_(("bundle", "generation", "max_tokens"), 512),
                       set_(("bundle", "routing", "max_input_tokens"), 8192), set_(("evaluation", "toxicity"), 0.01),
                       set_(("evaluation", "latency_p99_ms"), 1700)), code=1,
         expect=(edited("1.2.0", "description, bundle.generation.temperature, bundle.generation.top_p, "
                        "bundle.generation.max_tokens, bundle.routing.max_input_tokens and 2 more", "patch", R12,
                        "description", r"^description:"),)),
    Case("comments, key order, quoting, flow style and number spelling only: passes",
         worktree=replace_text(
             R13,
             (r'^model: chat-assistant\nversion: "1.3.0"\n', "version: '1.3.0'  # reviewed\nmodel: chat-assistant\n"),
             (r"blocked_categories: \[self-harm, violence, sexual-minors\]",
              "blocked_categories:\n      - self-harm\n      - violence\n      - sexual-minors"),
             (r"temperature: 0\.3$", "temperature: 0.30   # unchanged, written with two digits"),
             (r"max_silence: 10m$", "max_silence: 600s"),
             (r"^lineage:\n", "# Where it came from.\nlineage:\n"))),
    Case("a default spelled out (the same value): passes",
         worktree=edit(R12, set_(("bundle", "generation", "stop"), []),
                       set_(("bundle", "safety", "pii_redaction"), True))),
    Case("a new release file: passes", worktree=new_patch_release),
    Case("a new release, committed on the branch, then edited again: passes (not on the base)",
         branch=new_patch_release, worktree=edit(R131, set_(("bundle", "generation", "temperature"), 0.25))),
    Case("a new release edited in a second commit on the branch: passes",
         branch=both(new_patch_release, edit(R131, set_(("description",), "Cooler answers.")))),
    Case("a released file deleted: a warning, nothing else",
         before=new_patch_release, worktree=delete_file(R131), code=0,
         expect=(Expected("warning", "immutable", R131, "",
                          "chat-assistant 1.3.1 was released (main has releases/chat-assistant/1.3.1.yaml) and is "
                          "deleted here",
                          "keep released versions so lineage reaches the first one: git checkout main -- "
                          f"{R131}"),)),
    Case("a released file that no longer parses: its syntax error, not a deletion",
         worktree=replace_text(R12, (r"^model: chat-assistant$", "model: [chat-assistant")), code=1,
         expect=(Expected("error", "yaml", R12, ""),)),
]


def findings_of(run: Run) -> list[tuple[str, str, str, str]]:
    return sorted((f["severity"], f["rule"], f["file"], f["path"]) for f in findings(run))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_released_files_against_the_base(hermetic: Path, case: Case) -> None:
    root = released_repo(hermetic / "repo", case.before)
    if case.branch is not None:
        git(root, "checkout", "-q", "-b", "feature")
        case.branch(root)
        git(root, "add", "releases", "environments")
        git(root, "commit", "-q", "-m", "The change under review")
    if case.worktree is not None:
        case.worktree(root)

    run = validate(root, "--base", "main", "--format", "json")

    assert run.code == case.code, run.out + run.err
    assert findings_of(run) == sorted((e.severity, e.rule, e.file, e.path) for e in case.expect), run.out
    for expected in case.expect:
        found = next(f for f in findings(run) if (f["rule"], f["file"]) == (expected.rule, expected.file))
        if expected.message is not None:
            assert found["message"] == expected.message
            assert found["fix"] == expected.fix
        if expected.line:
            assert found["line"] == line_of((root / expected.file).read_text(encoding="utf-8"), *expected.line)
    without_base = validate(root, "--format", "json")  # the rule needs a base: without one, none of this
    assert [f for f in findings(without_base) if f["rule"] == "immutable"] == []


def test_the_text_form_names_file_line_path_and_fix(hermetic: Path) -> None:
    root = released_repo(hermetic / "repo")
    edit(R13, set_(("bundle", "system_prompt", "sha256"), "cd" * 32))(root)
    line = line_of((root / R13).read_text(encoding="utf-8"), r"^  system_prompt:", r"sha256:")
    run = validate(root, "--base", "HEAD")
    assert run.code == 1
    assert run.out.splitlines() == [
        f"{R13}:{line}:5: error: bundle.system_prompt.sha256: chat-assistant 1.3.0 is released (HEAD has it) and may "
        "not change; changed: bundle.system_prompt.sha256; fix: put the released values back (git checkout HEAD -- "
        f"{R13}) and cut a new version for the change: reconciler release new chat-assistant --bump minor "
        "[immutable]",
        "FAILED: 7 files checked, 1 error, 0 warnings"]


def test_a_version_edited_in_place_is_a_change_to_the_released_file(hermetic: Path) -> None:
    root = released_repo(hermetic / "repo")
    replace_text(R13, (r'^version: "1.3.0"$', 'version: "1.3.1"'))(root)
    run = validate(root, "--base", "main", "--format", "json")
    assert run.code == 1
    immutable = [f for f in findings(run) if f["rule"] == "immutable"]
    assert [(f["severity"], f["file"], f["path"]) for f in immutable] == [("error", R13, "version")]
    assert "may not change; changed: version" in immutable[0]["message"]


# --- base refs -------------------------------------------------------------------------------------


def test_a_base_ref_that_does_not_exist_is_a_usage_error(hermetic: Path) -> None:
    root = released_repo(hermetic / "repo")
    run = validate(root, "--base", "no-such-branch")
    assert run.code == 2
    assert run.out == ""
    assert run.err.startswith(f"reconciler validate: cannot read 'no-such-branch' from git in {root}: ")
    assert "fetch-depth" not in run.err  # the hint is for origin/ refs, where a shallow CI clone is the usual cause


def test_a_directory_that_is_not_a_git_repository_is_a_usage_error(hermetic: Path) -> None:
    root = copy_example(hermetic / "plain")
    run = validate(root, "--base", "main")
    assert (run.code, run.out) == (2, "")
    assert "cannot read 'main' from git" in run.err
    assert "not a git repository" in run.err.lower()


def test_origin_main_in_a_clone_of_a_bare_remote(hermetic: Path) -> None:
    """The CI shape: a bare remote holds main; the pull request's clone compares against origin/main."""
    seed = released_repo(hermetic / "seed")
    remote = hermetic / "remote.git"
    git(hermetic, "clone", "-q", "--bare", str(seed), str(remote))
    work = hermetic / "work"
    git(hermetic, "clone", "-q", str(remote), str(work))
    git(work, "checkout", "-q", "-b", "feature")
    new_patch_release(work)
    edit(R12, set_(("bundle", "routing", "max_concurrent_requests"), 40))(work)
    git(work, "add", "releases")
    git(work, "commit", "-q", "-m", "1.3.1, and a routing tweak to 1.2.0")

    run = validate(work, "--base", "origin/main", "--format", "json")

    assert run.code == 1, run.err
    assert [(f["rule"], f["file"], f["path"]) for f in findings(run)] == [
        ("immutable", R12, "bundle.routing.max_concurrent_requests")]
    assert findings(run)[0]["message"] == ("chat-assistant 1.2.0 is released (origin/main has it) and may not change; "
                                          "changed: bundle.routing.max_concurrent_requests")
    # main moves on in the remote (someone merged 1.3.1 first): the same branch is now judged against it
    git(seed, "remote", "add", "origin", str(remote))
    new_patch_release(seed)
    git(seed, "add", "releases")
    git(seed, "commit", "-q", "-m", "Release 1.3.1")
    git(seed, "push", "-q", "origin", "main")
    git(work, "fetch", "-q", "origin")
    edit(R12, set_(("bundle", "routing", "max_concurrent_requests"), 48))(work)  # the tweak undone
    edit(R131, set_(("bundle", "generation", "temperature"), 0.25))(work)  # 1.3.1 is released now: not editable
    rerun = validate(work, "--base", "origin/main", "--format", "json")
    assert rerun.code == 1
    assert [(f["rule"], f["file"], f["path"]) for f in findings(rerun)] == [
        ("immutable", R131, "bundle.generation.temperature")]


def test_a_shallow_ci_clone_without_origin_main_gets_the_fetch_depth_hint(hermetic: Path) -> None:
    seed = released_repo(hermetic / "seed")
    git(seed, "checkout", "-q", "-b", "feature")
    new_patch_release(seed)
    git(seed, "add", "releases")
    git(seed, "commit", "-q", "-m", "Release 1.3.1")
    ci = hermetic / "ci"
    git(hermetic, "clone", "-q", "--depth", "1", "--single-branch", "--branch", "feature", f"file://{seed}", str(ci))

    run = validate(ci, "--base", "origin/main")

    assert run.code == 2
    assert "cannot read 'origin/main' from git" in run.err
    assert run.err.rstrip().endswith("(in CI, fetch the history: actions/checkout with fetch-depth: 0)")


def test_the_installed_entry_point_exits_2_for_a_bad_ref(hermetic: Path) -> None:
    root = released_repo(hermetic / "repo")
    child = subprocess.run([sys.executable, "-m", "reconciler", "validate", "--base", "v9.9.9", str(root)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (child.returncode, child.stdout) == (2, "")
    assert child.stderr.startswith("reconciler validate: cannot read 'v9.9.9' from git")
    assert "Traceback" not in child.stderr


# --- the base's whole history: a version removed and re-added is still the version released -------------

RELEASED_AT = datetime(2026, 11, 10, 9, 0, tzinfo=timezone.utc)
cooler = edit(R131, set_(("bundle", "generation", "temperature"), 0.25))


def commit_all(root: Path, message: str, when: datetime) -> str:
    """Commit releases/ as it is now (added, changed and deleted files); the new commit's short sha."""
    git(root, "add", "-A", "releases")
    git(root, "commit", "-q", "-m", message, when=when)
    return git(root, "rev-parse", "--short=10", "HEAD").strip()


def released_then_withdrawn(path: Path) -> tuple[Path, str]:
    """main: the example, then 1.3.1 released (10 Nov), then its file deleted (12 Nov); (root, release sha)."""
    root = released_repo(path)
    new_patch_release(root)
    sha = commit_all(root, "Release chat-assistant 1.3.1", RELEASED_AT)
    delete_file(R131)(root)
    commit_all(root, "Withdraw chat-assistant 1.3.1", datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc))
    return root, sha


def released_elsewhere(version: str, sha: str, subject: str, changed: str, free: str) -> tuple[str, str]:
    """(message, fix) of the error for a file whose earlier content `sha` released."""
    return (f'chat-assistant {version} was released with other values in {sha} (2026-11-10, "{subject}") and '
            f"removed since; changed: {changed}",
            f"a version is released once, with one content: put the released values back (git show "
            f"{sha}:./{R131} > {R131}), or release these values as a version never used, e.g. {free} (move the file "
            f"to releases/chat-assistant/{free}.yaml and set version: \"{free}\")")


def test_a_version_removed_and_re_added_with_other_values_is_an_error_naming_the_release(hermetic: Path) -> None:
    root, sha = released_then_withdrawn(hermetic / "repo")
    new_patch_release(root)
    cooler(root)

    run = validate(root, "--base", "main", "--format", "json")

    assert run.code == 1, run.out + run.err
    assert [(f["severity"], f["rule"], f["file"], f["path"]) for f in findings(run)] == [
        ("error", "immutable", R131, "bundle.generation.temperature")]
    message, fix = released_elsewhere("1.3.1", sha, "Release chat-assistant 1.3.1", "bundle.generation.temperature",
                                      "1.3.2")
    assert (findings(run)[0]["message"], findings(run)[0]["fix"]) == (message, fix)
    assert findings(run)[0]["line"] == line_of((root / R131).read_text(encoding="utf-8"), r"^  generation:",
                                               r"temperature:")
    git(root, "checkout", "-q", "-b", "feature")  # committed on the pull request's branch: the same
    commit_all(root, "Re-release 1.3.1, cooler", datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc))
    assert [f["message"] for f in findings(validate(root, "--base", "main", "--format", "json"))] == [message]


def test_re_added_as_released_passes_and_so_do_comments_order_and_quoting(hermetic: Path) -> None:
    root, sha = released_then_withdrawn(hermetic / "repo")
    git(root, "checkout", "-q", sha, "--", R131)  # the very bytes released
    assert validate(root, "--base", "main").code == 0
    replace_text(R131, (r'^model: chat-assistant\nversion: "1.3.1"\n', "version: '1.3.1'  # back\nmodel: chat-assistant\n"),
                 (r"^lineage:\n", "# Where it came from.\nlineage:\n"))(root)
    run = validate(root, "--base", "main", "--format", "json")
    assert (run.code, findings(run)) == (0, [])


def test_every_content_the_history_released_counts_not_only_the_last(hermetic: Path) -> None:
    """1.3.1 released, then edited on main (before anyone checked), then removed: re-adding the last
    values still changes what the first release said."""
    root = released_repo(hermetic / "repo")
    new_patch_release(root)
    first = commit_all(root, "Release chat-assistant 1.3.1", RELEASED_AT)
    cooler(root)
    commit_all(root, "Tweak 1.3.1 in place", datetime(2026, 11, 11, 9, 0, tzinfo=timezone.utc))
    last = git(root, "rev-parse", "--short=10", "HEAD").strip()
    delete_file(R131)(root)
    commit_all(root, "Withdraw chat-assistant 1.3.1", datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc))
    git(root, "checkout", "-q", last, "--", R131)

    run = validate(root, "--base", "main", "--format", "json")

    assert run.code == 1
    assert [f["message"] for f in findings(run)] == [released_elsewhere(
        "1.3.1", first, "Release chat-assistant 1.3.1", "bundle.generation.temperature", "1.3.2")[0]]


def test_a_pull_requests_draft_was_never_released_its_merge_was(hermetic: Path) -> None:
    """History is main's first-parent line: a draft commit on a merged branch never reached main."""
    root = released_repo(hermetic / "repo")
    git(root, "checkout", "-q", "-b", "release-1.3.1")
    both(new_patch_release, cooler)(root)
    commit_all(root, "Draft 1.3.1", datetime(2026, 11, 9, 9, 0, tzinfo=timezone.utc))
    new_patch_release(root)
    commit_all(root, "1.3.1 as reviewed", datetime(2026, 11, 9, 10, 0, tzinfo=timezone.utc))
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge 1.3.1", "release-1.3.1", when=RELEASED_AT)
    merge = git(root, "rev-parse", "--short=10", "HEAD").strip()
    delete_file(R131)(root)
    commit_all(root, "Withdraw chat-assistant 1.3.1", datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc))

    new_patch_release(root)
    assert validate(root, "--base", "main").code == 0
    cooler(root)  # the draft's values
    run = validate(root, "--base", "main", "--format", "json")
    assert [f["message"] for f in findings(run)] == [released_elsewhere(
        "1.3.1", merge, "Merge 1.3.1", "bundle.generation.temperature", "1.3.2")[0]]


def test_plan_reports_the_same_error(hermetic: Path) -> None:
    root, sha = released_then_withdrawn(hermetic / "repo")
    both(new_patch_release, cooler)(root)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", str(root), "--base", "main", "--no-program", "--format", "json"])
    assert code == 1, err.getvalue()
    errors = [f for f in json.loads(out.getvalue())["errors"] if f["rule"] == "immutable"]
    assert [f["message"] for f in errors] == [released_elsewhere(
        "1.3.1", sha, "Release chat-assistant 1.3.1", "bundle.generation.temperature", "1.3.2")[0]]


def test_a_shallow_clone_sees_only_the_history_it_has_and_says_so(hermetic: Path) -> None:
    """What a shallow clone cuts off cannot be checked: files the base's tip lacks get a warning that
    names where the history stops and how to fetch the rest; the history it does have is checked."""
    seed, sha = released_then_withdrawn(hermetic / "seed")
    shallow = hermetic / "shallow"
    git(hermetic, "clone", "-q", "--depth", "1", f"file://{seed}", str(shallow))
    cut = git(shallow, "rev-parse", "--short=10", "HEAD").strip()
    both(new_patch_release, cooler)(shallow)

    run = validate(shallow, "--base", "origin/main", "--format", "json")

    assert run.code == 0, run.out + run.err
    assert [(f["severity"], f["rule"], f["file"], f["path"]) for f in findings(run)] == [
        ("warning", "immutable", R131, "")]
    assert findings(run)[0]["message"] == (
        f"chat-assistant 1.3.1 is not on origin/main, whose history here stops at {cut} (a shallow clone): "
        "whether an earlier commit released other values for it is not known")
    assert findings(run)[0]["fix"] == ("fetch the whole history (git fetch --unshallow; in CI, actions/checkout "
                                       "with fetch-depth: 0)")
    deeper = hermetic / "deeper"  # two commits deep: the release is in reach again
    git(hermetic, "clone", "-q", "--depth", "2", f"file://{seed}", str(deeper))
    both(new_patch_release, cooler)(deeper)
    rerun = validate(deeper, "--base", "origin/main", "--format", "json")
    assert rerun.code == 1
    assert [f["message"] for f in findings(rerun)] == [released_elsewhere(
        "1.3.1", sha, "Release chat-assistant 1.3.1", "bundle.generation.temperature", "1.3.2")[0]]


def test_the_history_reader_skips_the_content_a_file_holds_now_by_blob_id(hermetic: Path) -> None:
    """Identical bytes cost nothing: only other contents are read, parsed and handed to the core."""
    from reconciler.adapters.history import read_release_history

    root, sha = released_then_withdrawn(hermetic / "repo")
    git(root, "checkout", "-q", sha, "--", R131)
    released_bytes = (root / R131).read_bytes()
    history = read_release_history(root, "main", {R131: released_bytes})
    assert history.earlier == {}
    assert R131 in history.files and R12 in history.files
    assert history.cut_at is None
    other = read_release_history(root, "main", {R131: released_bytes + b"# a comment\n"})
    assert [(e.release.version, e.commit.sha, e.commit.subject) for e in other.earlier[R131]] == [
        ("1.3.1", sha, "Release chat-assistant 1.3.1")]


def test_a_sluice_repository_in_a_subfolder_of_the_git_work_tree(hermetic: Path) -> None:
    top = hermetic / "monorepo"
    root = copy_example(top / "deploy" / "sluice")
    git(top, "init", "-q", "-b", "main")
    git(top, "add", ".")
    git(top, "commit", "-q", "-m", "Released: the example repository")
    new_patch_release(root)
    git(top, "add", "-A", ".")
    git(top, "commit", "-q", "-m", "Release chat-assistant 1.3.1", when=RELEASED_AT)
    sha = git(top, "rev-parse", "--short=10", "HEAD").strip()
    delete_file(R131)(root)
    git(top, "add", "-A", ".")
    git(top, "commit", "-q", "-m", "Withdraw chat-assistant 1.3.1")
    both(new_patch_release, cooler)(root)

    run = validate(root, "--base", "main", "--format", "json")

    assert run.code == 1
    assert [(f["file"], f["path"]) for f in findings(run)] == [(R131, "bundle.generation.temperature")]
    assert f"released with other values in {sha} (2026-11-10" in findings(run)[0]["message"]


def test_the_base_is_read_only_where_its_bytes_differ_from_the_working_tree(hermetic: Path) -> None:
    """A released file with the very bytes cannot have changed: `load_base` parses the others only,
    and still knows every file the tip has (so none of them is judged against the history)."""
    from reconciler.adapters.base_ref import load_base

    root = released_repo(hermetic / "repo")
    assert load_base(root, "main").tip.releases == ()
    edit(R13, set_(("evaluation", "toxicity"), 0.009))(root)
    delete_file(R12)(root)
    released = load_base(root, "main")
    assert sorted(e.file for e in released.tip.releases) == [R12, R13]
    assert {R12, R13, "releases/chat-assistant/1.1.0.yaml"} <= released.files_at_tip
