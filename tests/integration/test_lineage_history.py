"""`reconciler lineage` on a real git repository: served intervals from the history of environments/.

One repository per module, built from the example (tests.conftest.copy_example) with hermetic git
and fixed dates (tests.integration.rollout_world.git): chat-assistant 1.3.0 is added, started in
staging, advanced, rolled back, broken for one commit, started again, advanced on a branch that is
merged later, promoted, and then promoted in prod too. Every pointer move is a commit of its own, as
the reconciler makes them. The tests read it with the adapter and through the CLI, and assert exact
intervals, commits and dates.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.history import read_history
from reconciler.adapters.repo_loader import load_repository
from reconciler.cli.main import main
from reconciler.core.lineage import served_intervals, unreadable_revisions
from tests.conftest import copy_example
from tests.integration.rollout_world import CHAT, CODE, T0, at, edit_yaml, git, hermetic_git, z

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

STAGING, PROD = "environments/staging.yaml", "environments/prod.yaml"
NEW = "releases/chat-assistant/1.3.0.yaml"
START = T0 - timedelta(days=2)  # the initial commit
ADDED = T0 - timedelta(hours=1)  # 1.3.0's release file


def point(root: Path, rel: str, model: str, **pointers: Any) -> None:
    """Set a model's pointers in an environment file; a None value removes the key."""
    def change(doc: Any) -> None:
        entry = doc["models"][model]
        for key, value in pointers.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
    edit_yaml(root / rel, change)


def commit(root: Path, when: datetime, message: str, *paths: str) -> str:
    git(root, "add", *paths)
    git(root, "commit", "-q", "-m", message, when=when)
    return git(root, "rev-parse", "HEAD").strip()


def build_history(root: Path) -> dict[str, str]:
    """The repository described in the module docstring; returns each step's commit sha by name."""
    copy_example(root)
    (root / NEW).rename(root.parent / "1.3.0.yaml")
    point(root, STAGING, CHAT, candidate=None, stage=None, stage_started_at=None)
    point(root, STAGING, CODE, candidate=None, stage=None, stage_started_at=None)
    git(root, "init", "-q", "-b", "main")
    sha = {"initial": commit(root, START, "Example: 1.2.0 stable everywhere, 1.1.0 standby in prod", ".")}
    (root.parent / "1.3.0.yaml").rename(root / NEW)
    git(root, "add", NEW)
    git(root, "-c", "user.name=Priya Raman", "-c", "user.email=priya.raman@acme.example",
        "commit", "-q", "-m", "chat-assistant 1.3.0", when=ADDED)
    sha["added"] = git(root, "rev-parse", "HEAD").strip()

    def move(name: str, minutes: float, rel: str = STAGING, model: str = CHAT, **pointers: Any) -> None:
        point(root, rel, model, **pointers)
        sha[name] = commit(root, at(minutes), f"{name}: {model} {pointers}", rel)

    text = (root / STAGING).read_text(encoding="utf-8")  # bytes != characters: the batch reader must not care
    (root / STAGING).write_text("# Zoë's staging — pointers below ✓\n" + text, encoding="utf-8")
    move("start", 0, candidate="1.3.0", stage=0, stage_started_at=z(at(0)))
    move("stage1", 10, stage=1, stage_started_at=z(at(10)))
    move("other-model", 20, model=CODE, replicas=3)  # chat-assistant unchanged: its interval goes on
    move("stage2", 30, stage=2, stage_started_at=z(at(30)))
    move("rollback", 40, candidate=None, stage=None, stage_started_at=None)
    good = (root / STAGING).read_text(encoding="utf-8")
    (root / STAGING).write_text(good + "policy: [unclosed\n", encoding="utf-8")
    sha["broken"] = commit(root, at(50), "broken by hand, chat-assistant's entry untouched", STAGING)
    (root / STAGING).write_text(good, encoding="utf-8")
    point(root, STAGING, CHAT, candidate="1.3.0", stage=0)
    started = (root / STAGING).read_text(encoding="utf-8")
    (root / STAGING).write_text(started + "policy: [unclosed\n", encoding="utf-8")
    sha["broken-start"] = commit(root, at(52), "a start in a broken file: never applied", STAGING)
    (root / STAGING).write_text(good, encoding="utf-8")
    move("restart", 55, candidate="1.3.0", stage=0, stage_started_at=z(at(55)))
    git(root, "checkout", "-q", "-b", "ramp")
    move("ramp", 60, stage=5, stage_started_at=z(at(60)))  # on a branch: served only once merged
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge ramp", "ramp", when=at(90))
    sha["merge"] = git(root, "rev-parse", "HEAD").strip()
    move("promote", 100, stable="1.3.0", standby="1.2.0", candidate=None, stage=None, stage_started_at=None)
    move("prod", 120, rel=PROD, stable="1.3.0", standby="1.2.0")
    return sha


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("lineage")
    with pytest.MonkeyPatch.context() as patch:
        hermetic_git(patch, base)
        root = base / "repo"
        root.mkdir()
        return root, build_history(root)


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_git(monkeypatch, tmp_path)


def lineage(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["lineage", *args])
    return code, out.getvalue(), err.getvalue()


def served(report: dict[str, Any], version: str) -> list[tuple[Any, ...]]:
    (entry,) = [v for v in report["chain"] if v["version"] == version]
    return [(s["environment"], s["role"], s["stage"], s["weight"], s["from"], s["from_commit"], s["to"],
             s["to_commit"]) for s in entry["served"]]


def test_json_gives_every_interval_of_every_version_with_commits_and_committer_dates(history_repo) -> None:
    root, sha = history_repo
    code, out, err = lineage(CHAT, "1.3.0", str(root), "--format", "json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert [v["version"] for v in report["chain"]] == ["1.3.0", "1.2.0", "1.1.0"] and report["complete"]
    assert served(report, "1.3.0") == [
        ("staging", "candidate", 0, 0, z(at(0)), sha["start"], z(at(10)), sha["stage1"]),
        ("staging", "candidate", 1, 1, z(at(10)), sha["stage1"], z(at(30)), sha["stage2"]),
        ("staging", "candidate", 2, 5, z(at(30)), sha["stage2"], z(at(40)), sha["rollback"]),
        ("staging", "candidate", 0, 0, z(at(55)), sha["restart"], z(at(90)), sha["merge"]),
        # stage 5 was committed on a branch at +60m; it reached main with the merge at +90m
        ("staging", "candidate", 5, 100, z(at(90)), sha["merge"], z(at(100)), sha["promote"]),
        ("staging", "stable", None, None, z(at(100)), sha["promote"], None, None),
        ("prod", "stable", None, None, z(at(120)), sha["prod"], None, None),
    ]
    assert served(report, "1.2.0") == [
        ("prod", "stable", None, None, z(START), sha["initial"], z(at(120)), sha["prod"]),
        ("staging", "stable", None, None, z(START), sha["initial"], z(at(100)), sha["promote"]),
        ("staging", "standby", None, None, z(at(100)), sha["promote"], None, None),
        ("prod", "standby", None, None, z(at(120)), sha["prod"], None, None),
    ]
    assert served(report, "1.1.0") == [("prod", "standby", None, None, z(START), sha["initial"], z(at(120)),
                                        sha["prod"])]
    # initial, start, stage1, other-model, stage2, rollback, broken, broken-start, restart, merge, promote, prod;
    # of the two broken revisions only the one that changed chat-assistant's entry counts
    assert report["history"] == {"available": True, "note": None, "head": sha["prod"], "commits": 12,
                                 "unreadable_revisions": {"staging": 1}}


def test_json_names_the_commit_that_added_each_release_file(history_repo) -> None:
    root, sha = history_repo
    report = json.loads(lineage(CHAT, "1.3.0", str(root), "--format", "json")[1])
    added = {v["version"]: v["added"] for v in report["chain"]}
    assert added["1.3.0"] == {"commit": sha["added"], "author": "Priya Raman <priya.raman@acme.example>",
                              "date": z(ADDED)}
    assert added["1.2.0"] == added["1.1.0"] == {"commit": sha["initial"],
                                                "author": "On-call Engineer <oncall@acme.example>", "date": z(START)}
    assert not any(v["uncommitted_changes"] for v in report["chain"])


def test_text_shows_the_intervals_as_lines_people_read(history_repo) -> None:
    root, sha = history_repo
    code, out, _ = lineage(CHAT, "1.3.0", str(root))
    assert code == 0
    block = out.split("\n\n")[1]
    assert block.splitlines()[0] == "1.3.0  chat-assistant/v1.3.0-4f2a9c1d07e5"
    served_lines = block.split("  served        ")[1].splitlines()
    assert [line.strip() for line in served_lines] == [
        f"staging  candidate stage 0 (0%)    2026-11-22 10:00 UTC ({sha['start'][:8]}) -> "
        f"2026-11-22 10:10 UTC ({sha['stage1'][:8]})  10m",
        f"staging  candidate stage 1 (1%)    2026-11-22 10:10 UTC ({sha['stage1'][:8]}) -> "
        f"2026-11-22 10:30 UTC ({sha['stage2'][:8]})  20m",
        f"staging  candidate stage 2 (5%)    2026-11-22 10:30 UTC ({sha['stage2'][:8]}) -> "
        f"2026-11-22 10:40 UTC ({sha['rollback'][:8]})  10m",
        f"staging  candidate stage 0 (0%)    2026-11-22 10:55 UTC ({sha['restart'][:8]}) -> "
        f"2026-11-22 11:30 UTC ({sha['merge'][:8]})  35m",
        f"staging  candidate stage 5 (100%)  2026-11-22 11:30 UTC ({sha['merge'][:8]}) -> "
        f"2026-11-22 11:40 UTC ({sha['promote'][:8]})  10m",
        f"staging  stable                    2026-11-22 11:40 UTC ({sha['promote'][:8]}) -> now",
        f"prod     stable                    2026-11-22 12:00 UTC ({sha['prod'][:8]}) -> now",
    ]
    assert f"  added         2026-11-22 09:00 UTC  {sha['added'][:12]}  Priya Raman <priya.raman@acme.example>" in block
    assert out.rstrip().endswith(
        f"history: 12 commit(s) to environments/ on the first-parent line (HEAD {sha['prod'][:12]})\n"
        "unreadable: 1 revision(s) of environments/staging.yaml changed chat-assistant's entry but could not be "
        "read; skipped (the state before each carries on)")


def test_git_processes_do_not_grow_with_the_history(history_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """One log, one cat-file batch, one log of added files and a few fixed probes: never one per commit."""
    root, _ = history_repo
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(command, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(command))
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    history = read_history(root, CHAT, [NEW])
    assert len(history.snapshots) == 13  # 12 commits, the first touching both files
    git_verbs = [next(part for part in c[1:] if not part.startswith("-") and "=" not in part) for c in calls]
    assert git_verbs.count("cat-file") == 1 and "show" not in git_verbs
    assert len(calls) <= 6, git_verbs


@pytest.mark.parametrize("version", ["1.3.0", "1.2.0", "1.1.0"])
def test_skipping_revisions_that_leave_the_entry_alone_gives_the_same_intervals(history_repo, version: str) -> None:
    """Only revisions that change chat-assistant's entry are parsed; parsing every one must agree."""
    root, sha = history_repo
    stages = load_repository(root).repository.release(CHAT, version).rollout.stages
    quick, full = read_history(root, CHAT, []), read_history(root, CHAT, [], parse_every_revision=True)
    assert served_intervals(quick.snapshots, CHAT, version, stages) == \
        served_intervals(full.snapshots, CHAT, version, stages)
    assert unreadable_revisions(full.snapshots) == {"staging": 2}
    assert [s.commit for s in quick.snapshots if s.models is None] == [sha["broken-start"]]


def test_a_sluice_repository_in_a_subfolder_of_the_git_repository(tmp_path: Path) -> None:
    top = tmp_path / "mono"
    (top / "ml").mkdir(parents=True)
    copy_example(top / "ml")
    git(top, "init", "-q", "-b", "main")
    (top / "environments").mkdir()  # another project's environments/ at the top: not ours
    (top / "environments" / "staging.yaml").write_text("models: {chat-assistant: {stable: 9.9.9}}\n")
    first = commit(top, START, "both projects", ".")
    point(top / "ml", STAGING, CHAT, candidate=None, stage=None, stage_started_at=None)
    second = commit(top, at(0), "withdraw", "ml/" + STAGING)
    history = read_history(top / "ml", CHAT, ["releases/chat-assistant/1.3.0.yaml"])
    assert [(s.commit, s.environment) for s in history.snapshots] == [(first, "prod"), (first, "staging"),
                                                                      (second, "staging")]
    assert history.added["releases/chat-assistant/1.3.0.yaml"].sha == first
    report = json.loads(lineage(CHAT, "1.3.0", str(top / "ml"), "--format", "json")[1])
    assert served(report, "1.3.0") == [("staging", "candidate", 1, 1, z(START), first, z(at(0)), second)]


def test_an_uncommitted_release_has_no_added_commit_and_is_flagged(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    (root / NEW).rename(tmp_path / "1.3.0.yaml")
    git(root, "init", "-q", "-b", "main")
    commit(root, START, "without 1.3.0", ".")
    (tmp_path / "1.3.0.yaml").rename(root / NEW)
    report = json.loads(lineage(CHAT, "1.3.0", str(root), "--format", "json")[1])
    newest = report["chain"][0]
    assert (newest["added"], newest["uncommitted_changes"]) == (None, True)
    assert report["chain"][1]["uncommitted_changes"] is False
    code, out, _ = lineage(CHAT, "1.3.0", str(root))
    assert code == 0
    assert "  added         not committed yet" in out
    assert "releases/chat-assistant/1.3.0.yaml  (uncommitted changes: the working tree differs from git)" in out
