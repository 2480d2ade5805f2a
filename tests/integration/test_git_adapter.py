"""GitRepository on real repositories: commits of only the given paths, trailers that git itself
parses, a lost push race as a value, recovery by fetch and reset, revert, and failures that leave
nothing staged.

Every repository lives in tmp_path; git runs without user or system config, with fixed dates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.adapters.git import BOT_EMAIL, BOT_NAME, Commit, GitError, GitRepository, PushResult

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

ENV = "environments/staging.yaml"
WHEN = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
REASON = "p99: 812 ms ≤ 900 ms (naïve check: ok)"


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config, no inherited identity, fixed dates."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
                 "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-11-21T09:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-11-21T09:00:00Z")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Test Person", "-c", "user.email=test@example.invalid", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def new_repo(root: Path) -> GitRepository:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    write(root, ENV, "stage: 1\n")
    write(root, "environments/prod.yaml", "stage: 0\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "example")
    return GitRepository(root)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepository:
    return new_repo(tmp_path / "repo")


def staged(repo: GitRepository) -> list[str]:
    return git(repo.root, "diff", "--cached", "--name-only").split()


def changed_in(repo: GitRepository, sha: str) -> list[str]:
    return git(repo.root, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()


# --- commit ----------------------------------------------------------------------------------------

def test_commit_takes_only_the_given_paths_and_leaves_other_staged_work_staged(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    write(repo.root, "environments/prod.yaml", "stage: 5  # someone's work in progress\n")
    git(repo.root, "add", "environments/prod.yaml")
    before = repo.head()
    sha = repo.commit([Path(ENV)], "Advance chat-assistant to stage 2", [("Sluice-Decision", "advance")])
    assert sha == repo.head() != before
    assert changed_in(repo, sha) == [ENV]
    assert staged(repo) == ["environments/prod.yaml"]
    assert repo.is_clean([Path(ENV)])
    assert not repo.is_clean([Path("environments/prod.yaml")])


def test_commit_takes_new_and_deleted_files_and_absolute_paths(repo: GitRepository) -> None:
    new = write(repo.root, "environments/dev.yaml", "stage: 0\n")
    (repo.root / "environments/prod.yaml").unlink()
    sha = repo.commit([new, repo.root / "environments/prod.yaml"], "Replace prod with dev")
    assert sorted(changed_in(repo, sha)) == ["environments/dev.yaml", "environments/prod.yaml"]
    assert repo.is_clean()


def test_trailers_follow_a_blank_line_and_git_parses_them_back(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    trailers = [("Sluice-Decision", "advance"), ("Sluice-Reason", REASON), ("Sluice-Version", ""),
                ("Sluice-Gate", "latency_p99_ms"), ("Sluice-Gate", "error_rate")]
    sha = repo.commit([Path(ENV)], "Advance chat-assistant to stage 2\n\nAll gates pass.", trailers)
    assert git(repo.root, "log", "-1", "--format=%B") == (
        "Advance chat-assistant to stage 2\n\nAll gates pass.\n\n"
        f"Sluice-Decision: advance\nSluice-Reason: {REASON}\nSluice-Version:\n"
        "Sluice-Gate: latency_p99_ms\nSluice-Gate: error_rate\n\n")
    assert repo.trailers(sha) == {"Sluice-Decision": ["advance"], "Sluice-Reason": [REASON], "Sluice-Version": [""],
                                  "Sluice-Gate": ["latency_p99_ms", "error_rate"]}
    parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=git(repo.root, "log", "-1", "--format=%B"),
                            capture_output=True, text=True, check=True).stdout
    assert f"Sluice-Reason: {REASON}" in parsed.splitlines()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("Sluice Reason", "x", "use letters, digits and '-'"),
    ("Sluice-Reason:", "x", "use letters, digits and '-'"),
    ("Sluice-Reason", "two\nlines", "must be one line"),
])
def test_a_trailer_git_could_not_read_back_is_refused(repo: GitRepository, key: str, value: str,
                                                      message: str) -> None:
    write(repo.root, ENV, "stage: 2\n")
    with pytest.raises(ValueError, match=message):
        repo.commit([Path(ENV)], "Advance", [(key, value)])
    assert staged(repo) == []


def test_the_bot_identity_is_the_default(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    sha = repo.commit([Path(ENV)], "Advance")
    assert git(repo.root, "show", "-s", "--format=%an <%ae>|%cn <%ce>", sha).strip() == (
        f"{BOT_NAME} <{BOT_EMAIL}>|{BOT_NAME} <{BOT_EMAIL}>")


def test_a_configured_identity_is_kept_and_an_explicit_author_wins(repo: GitRepository) -> None:
    git(repo.root, "config", "user.name", "Ops Bot")
    git(repo.root, "config", "user.email", "ops@acme.example")
    write(repo.root, ENV, "stage: 2\n")
    sha = repo.commit([Path(ENV)], "Advance")
    assert git(repo.root, "show", "-s", "--format=%an <%ae>|%cn <%ce>", sha).strip() == (
        "Ops Bot <ops@acme.example>|Ops Bot <ops@acme.example>")
    write(repo.root, ENV, "stage: 3\n")
    sha = repo.commit([Path(ENV)], "Roll back", author=("Alice Chen", "alice.chen@acme.example"))
    assert git(repo.root, "show", "-s", "--format=%an <%ae>|%cn <%ce>", sha).strip() == (
        "Alice Chen <alice.chen@acme.example>|Ops Bot <ops@acme.example>")


def test_the_commit_date_is_the_given_instant(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    sha = repo.commit([Path(ENV)], "Advance", date=local)
    assert git(repo.root, "show", "-s", "--format=%aI|%cI", sha).strip() == (
        "2026-11-22T12:00:00+02:00|2026-11-22T12:00:00+02:00")
    with pytest.raises(ValueError, match="no timezone"):
        repo.commit([Path(ENV)], "Advance", date=datetime(2026, 11, 22))


def test_nothing_to_commit_raises_with_the_command_and_leaves_nothing_staged(repo: GitRepository) -> None:
    with pytest.raises(GitError) as failure:
        repo.commit([Path(ENV)], "Advance")
    assert "`git commit --only" in str(failure.value)
    assert "nothing" in str(failure.value)  # what git said
    assert staged(repo) == []


def test_a_commit_refused_by_a_hook_leaves_the_change_unstaged(repo: GitRepository) -> None:
    hook = write(repo.root, ".git/hooks/pre-commit", "#!/bin/sh\necho 'stage files are frozen' >&2\nexit 1\n")
    hook.chmod(0o755)
    write(repo.root, ENV, "stage: 2\n")
    before = repo.head()
    with pytest.raises(GitError, match="stage files are frozen"):
        repo.commit([Path(ENV)], "Advance")
    assert repo.head() == before
    assert staged(repo) == []
    assert (repo.root / ENV).read_text(encoding="utf-8") == "stage: 2\n"  # the edit is still there to inspect


def test_a_missing_path_is_a_git_error_and_a_path_outside_is_refused(repo: GitRepository, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="did not match"):
        repo.commit([Path("environments/nope.yaml")], "Advance")
    with pytest.raises(ValueError, match="outside the repository"):
        repo.commit([tmp_path / "elsewhere.yaml"], "Advance")
    with pytest.raises(ValueError, match="at least one path"):
        repo.commit([], "Advance")


# --- reading -----------------------------------------------------------------------------------------

def test_head_branch_and_a_detached_head(repo: GitRepository) -> None:
    assert repo.branch() == "main"
    assert repo.head() == git(repo.root, "rev-parse", "HEAD").strip()
    git(repo.root, "checkout", "-q", "--detach")
    with pytest.raises(GitError, match="symbolic-ref"):
        repo.branch()


def test_is_clean_sees_staged_unstaged_and_untracked_changes_at_the_paths(repo: GitRepository) -> None:
    assert repo.is_clean([Path(ENV)]) and repo.is_clean()
    write(repo.root, "environments/prod.yaml", "stage: 3\n")
    assert repo.is_clean([Path(ENV)]) and not repo.is_clean()
    write(repo.root, ENV, "stage: 2\n")
    assert not repo.is_clean([Path(ENV)])
    git(repo.root, "add", ENV)
    assert not repo.is_clean([Path(ENV)])
    write(repo.root, "environments/dev.yaml", "stage: 0\n")
    assert not repo.is_clean([Path("environments/dev.yaml")])


def test_log_filters_by_path_and_trailer_newest_first(repo: GitRepository) -> None:
    made = []
    for i, (rel, decision) in enumerate([(ENV, "advance"), ("environments/prod.yaml", "advance"),
                                         (ENV, "rollback"), (ENV, "advance")]):
        write(repo.root, rel, f"stage: {i + 10}\n")
        made.append(repo.commit([Path(rel)], f"decision {i}", [("Sluice-Decision", decision)],
                                date=WHEN + timedelta(hours=i)))
    staging = repo.log(Path(ENV))
    assert [c.sha for c in staging] == [made[3], made[2], made[0], git(repo.root, "rev-list", "--max-parents=0",
                                                                        "HEAD").strip()]
    assert staging[0] == Commit(made[3], "decision 3", WHEN + timedelta(hours=3), {"Sluice-Decision": ["advance"]})
    advances = repo.log(Path(ENV), grep_trailer=("sluice-decision", "advance"))
    assert [c.sha for c in advances] == [made[3], made[0]]
    assert [c.sha for c in repo.log(grep_trailer=("Sluice-Decision", "advance"), max_count=2)] == [made[3], made[1]]
    assert repo.log(grep_trailer=("Sluice-Decision", "adv")) == []  # values compare exactly


def test_log_of_an_empty_repository_is_empty(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main", "empty")
    assert GitRepository(tmp_path / "empty").log() == []


# --- revert ------------------------------------------------------------------------------------------

def test_revert_restores_the_previous_content(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    advance = repo.commit([Path(ENV)], "Advance chat-assistant to stage 2")
    sha = repo.revert(advance)
    assert sha == repo.head() != advance
    assert (repo.root / ENV).read_text(encoding="utf-8") == "stage: 1\n"
    assert git(repo.root, "show", "-s", "--format=%s", sha).strip() == 'Revert "Advance chat-assistant to stage 2"'
    assert repo.is_clean()


def test_a_conflicting_revert_is_aborted_and_leaves_the_tree_as_it_was(repo: GitRepository) -> None:
    write(repo.root, ENV, "stage: 2\n")
    advance = repo.commit([Path(ENV)], "Advance to 2")
    write(repo.root, ENV, "stage: 3\n")
    later = repo.commit([Path(ENV)], "Advance to 3")
    with pytest.raises(GitError, match="revert"):
        repo.revert(advance)
    assert repo.head() == later
    assert repo.is_clean()
    assert not (repo.root / ".git" / "REVERT_HEAD").exists()


# --- push races ----------------------------------------------------------------------------------------

@pytest.fixture
def two_clones(tmp_path: Path) -> tuple[GitRepository, GitRepository]:
    seed = new_repo(tmp_path / "seed")
    git(tmp_path, "clone", "-q", "--bare", str(seed.root), "remote.git")
    for name in ("a", "b"):
        git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), name)
    return GitRepository(tmp_path / "a"), GitRepository(tmp_path / "b")


def test_the_second_push_is_rejected_and_fetch_and_reset_pick_up_the_first(
        two_clones: tuple[GitRepository, GitRepository]) -> None:
    first, second = two_clones
    write(first.root, ENV, "stage: 2\n")
    pushed = first.commit([Path(ENV)], "Advance (first reconciler)")
    result = first.push()
    assert (result.ok, result.rejected) == (True, False)
    write(second.root, ENV, "stage: 0\n")
    second.commit([Path(ENV)], "Roll back (second reconciler)")
    rejected = second.push("origin", "main")
    assert rejected == PushResult(False, True, rejected.message)
    assert "origin/main: [rejected]" in rejected.message
    second.fetch("origin")
    assert second.reset_hard("origin/main") == pushed == second.head()
    assert (second.root / ENV).read_text(encoding="utf-8") == "stage: 2\n"
    write(second.root, ENV, "stage: 0\n")
    second.commit([Path(ENV)], "Roll back (decided again)")
    assert second.push().ok


def test_a_push_to_an_unknown_remote_raises(repo: GitRepository) -> None:
    with pytest.raises(GitError, match="nowhere"):
        repo.push("nowhere")


def test_reset_hard_refuses_to_discard_uncommitted_changes(two_clones: tuple[GitRepository, GitRepository]) -> None:
    first, _ = two_clones
    write(first.root, ENV, "stage: 4  # hand edit\n")
    with pytest.raises(GitError, match=f"uncommitted changes in {ENV}"):
        first.reset_hard("origin/main")
    assert (first.root / ENV).read_text(encoding="utf-8") == "stage: 4  # hand edit\n"


# --- commit_chain, advance_head, behind_head -------------------------------------------------------

from reconciler.adapters.git import PlannedCommit  # noqa: E402

TRAILERS = [("Sluice-Action", "advance"), ("Sluice-Version", ""), ("Sluice-Reason", REASON),
            ("Sluice-Reason", REASON), ("Sluice-Reason", "second")]
MESSAGE = "Advance chat-assistant  \n\n\n- a reason with # inside\n\nRevert this commit to undo it: `git revert`."


def test_a_chain_is_byte_for_byte_the_commits_git_commit_makes_and_touches_nothing_until_head_moves(
        tmp_path: Path) -> None:
    ours, theirs = new_repo(tmp_path / "ours"), new_repo(tmp_path / "theirs")
    steps = [{ENV: "stage: 2\n"}, {ENV: "stage: 3\n", "incidents/staging/one.yaml": "incident: one\n"}]
    base = ours.head()
    chain = ours.commit_chain(base, [PlannedCommit(files, MESSAGE, TRAILERS) for files in steps])
    assert ours.head() == base and (ours.root / ENV).read_text() == "stage: 1\n" and ours.is_clean()
    assert git(ours.root, "for-each-ref").count("refs/") == 1  # only main: no helper ref left behind
    for files in steps:
        for rel, text in files.items():
            write(theirs.root, rel, text)
        theirs.commit([Path(rel) for rel in files], MESSAGE, TRAILERS)
    assert chain == git(theirs.root, "rev-list", "--max-count=2", "HEAD").split()[::-1]
    ours.advance_head(chain[-1], base, "two decisions")
    assert git(ours.root, "rev-parse", "main").strip() == chain[-1]
    with pytest.raises(GitError, match="update-ref"):  # compare-and-swap: HEAD is no longer `base`
        ours.advance_head(base, base, "stale")


def test_a_working_tree_left_behind_head_by_a_killed_pass_is_told_from_a_persons_edit(repo: GitRepository) -> None:
    base = repo.head()
    chain = repo.commit_chain(base, [
        PlannedCommit({ENV: "stage: 2\n"}, "Advance", [("Sluice-Action", "advance")]),
        PlannedCommit({ENV: "stage: 3\n", "incidents/staging/x.yaml": "x: 1\n"}, "Roll back",
                      [("Sluice-Action", "rollback")])])
    repo.advance_head(chain[-1], base, "test")  # and the pass dies before touching the working tree
    dirty = repo.dirty_paths([Path("environments"), Path("incidents")])
    assert dirty == [ENV, "incidents/staging/x.yaml"]
    assert repo.behind_head(dirty) == (dirty, [])
    write(repo.root, ENV, "stage: 2\n")  # a half-updated working tree is behind too
    assert repo.behind_head([ENV]) == ([ENV], [])
    write(repo.root, ENV, "stage: 2  # mine\n")  # a person's edit is not
    assert repo.behind_head([ENV]) == ([], [ENV])
    git(repo.root, "commit", "-q", "-am", "a person's commit ends the reconciler's run")
    write(repo.root, ENV, "stage: 2\n")
    assert repo.behind_head([ENV]) == ([], [ENV])
