"""`reconciler start`, `reconcile`, `rollback` (and `status` as of a time) on a real git repository.

Every test works in its own copy of one git repository holding the example repository (built once
per module: `git init -b main`, a fixed author and fixed dates, one commit), and calls the CLI
in-process through `reconciler.cli.main.main`. Git runs without user or system config, with fixed
dates, so the commits are the bot's and reproducible. Notifications are recorded, never sent: the
example releases name real-looking Slack and webhook URLs.

Prometheus is never needed here: `--prometheus http://127.0.0.1:9` (nothing listens on the discard
port) is the "Prometheus is down" case, which must hold every rollout and say so; the real-server
passes are in tests/integration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.adapters import rollout_pass
from reconciler.adapters.git import BOT_EMAIL, BOT_NAME
from reconciler.adapters.notify import Delivery
from reconciler.cli.main import main

from ..conftest import copy_example, load_yaml, mutate_yaml
from ..prometheus_kit import utc

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

PROD = "environments/prod.yaml"
STAGING = "environments/staging.yaml"
AT = "2026-11-22T10:00:00Z"
DOWN = "http://127.0.0.1:9"  # the discard port: connection refused
GIT_DATE = "2026-11-21T09:00:00Z"
UNREACHABLE = ("Prometheus unreachable: cannot reach Prometheus at http://127.0.0.1:9: connection refused; "
               "holding: nothing advances or rolls back on missing data")
UNJUDGED_STAGING = ("reconciler reconcile: exit 3: Prometheus could not be read for staging: 2 rollout(s) held "
                    "unjudged (chat-assistant 1.3.0, code-completion 2.1.0); see docs/runbook.md\n")


# --- a git repository around a copy of the example ---------------------------------------------------


def _hermetic_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") and k not in ("EMAIL",)}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": str(home),
            "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE,
            "GIT_CEILING_DIRECTORIES": str(home.parent)}
    return env


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=Test Person", "-c", "user.email=test@example.invalid", *args],
                          cwd=root, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repository in a git repository with one commit, built once per module."""
    base = tmp_path_factory.mktemp("rollout-template")
    root = copy_example(base / "repo")
    env = _hermetic_env(base)
    for args in (("init", "-q", "-b", "main"), ("add", "."), ("commit", "-q", "-m", "Example repository")):
        subprocess.run(["git", "-c", "user.name=Test Person", "-c", "user.email=test@example.invalid", *args],
                       cwd=root, env=env, check=True, capture_output=True, timeout=30)
    return root


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config, no inherited identity, fixed dates, no repository above tmp_path."""
    for name in [k for k in os.environ if k.startswith("GIT_")] + ["EMAIL"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in _hermetic_env(tmp_path).items():
        if name.startswith("GIT_") or name == "HOME":
            monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Notifications the commands would send: recorded, each delivered ok."""
    calls: list[dict[str, Any]] = []

    def fake_notify(targets: Any, summary: str, payload: Any, timeout: float = 5.0) -> list[Delivery]:
        targets = list(targets)
        calls.append({"targets": [t.url for t in targets], "summary": summary, "payload": dict(payload)})
        return [Delivery(t.url, True, "recorded by the test") for t in targets]

    monkeypatch.setattr(rollout_pass, "notify", fake_notify)
    return calls


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(template, dest, symlinks=True)
    return dest


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def dirty(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


def subjects(root: Path) -> list[str]:
    return git(root, "log", "--format=%s").splitlines()


def changed_in(root: Path, sha: str = "HEAD") -> list[str]:
    return sorted(git(root, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split())


def trailers(root: Path, sha: str = "HEAD") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = git(root, "show", "-s", "--format=%(trailers:only,unfold)", sha)
    for line in text.splitlines():
        if line.strip():
            key, value = line.split(": ", 1)
            out.setdefault(key, []).append(value)
    return out


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def model(root: Path, environment: str, name: str) -> dict[str, Any]:
    return dict(load_yaml(root / "environments" / f"{environment}.yaml")["models"][name])


def set_standby_until(root: Path, when: str) -> None:
    """prod's chat-assistant standby (1.1.0) is kept until `when` (UTC)."""
    mutate_yaml(root / PROD, lambda d: d["models"]["chat-assistant"].__setitem__("standby_until", utc(when)))


def add_release(root: Path, version: str, **evaluation: float) -> Path:
    """releases/chat-assistant/<version>.yaml: a copy of 1.3.0 with `evaluation` overrides."""
    path = root / "releases" / "chat-assistant" / f"{version}.yaml"
    shutil.copy(root / "releases" / "chat-assistant" / "1.3.0.yaml", path)

    def change(data: Any) -> None:
        data["version"] = version
        data["lineage"]["parent_version"] = "1.3.0"
        data["evaluation"].update(evaluation)

    mutate_yaml(path, change)
    return path


# --- help ----------------------------------------------------------------------------------------------


def test_top_level_help_lists_the_rollout_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = {line.split()[0] for line in out.split("commands:", 1)[1].splitlines() if line.strip()}
    assert {"start", "reconcile", "rollback", "status"} <= listed


@pytest.mark.parametrize(("command", "options"), [
    ("start", ["model", "version", "path", "--environment", "-e", "--at", "--push"]),
    ("rollback", ["model", "path", "--reason", "--environment", "-e", "--at", "--push"]),
    ("reconcile", ["path", "--environment", "-e", "--prometheus", "--at", "--dry-run", "--push", "--format",
                   "--watch", "--interval"]),
    ("status", ["path", "--format", "--at"]),
    ("resume", ["model", "path", "--reason", "--environment", "-e", "--at", "--push"]),
])
def test_command_help_lists_its_options(capsys: pytest.CaptureFixture[str], command: str, options: list[str]) -> None:
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: reconciler {command} ")
    for option in options:
        assert option in out, f"{command} --help does not mention {option}:\n{out}"


# --- usage errors: exit 2, `reconciler <command>: ...` on stderr, nothing written -------------------


USAGE_ERRORS = [
    pytest.param(["start", "chat-assistant", "1.3.0", "{repo}", "-e", "nowhere"],
                 "reconciler start: no environments/nowhere.yaml (known: prod, staging)",
                 id="start: unknown environment"),
    pytest.param(["rollback", "chat-assistant", "{repo}", "-e", "nowhere", "--reason", "x"],
                 "reconciler rollback: no environments/nowhere.yaml (known: prod, staging)",
                 id="rollback: unknown environment"),
    pytest.param(["reconcile", "{repo}", "-e", "nowhere", "--prometheus", DOWN, "--dry-run"],
                 "reconciler reconcile: no environments/nowhere.yaml (known: prod, staging)",
                 id="reconcile: unknown environment"),
    pytest.param(["start", "summarizer", "1.0.0", "{repo}", "-e", "prod"],
                 "reconciler start: summarizer is not deployed in prod (models: chat-assistant, code-completion)",
                 id="start: unknown model"),
    pytest.param(["rollback", "summarizer", "{repo}", "-e", "prod", "--reason", "x"],
                 "reconciler rollback: summarizer is not deployed in prod", id="rollback: unknown model"),
    pytest.param(["start", "chat-assistant", "1.4.0", "{repo}", "-e", "prod"],
                 "reconciler start: no release file releases/chat-assistant/1.4.0.yaml: add it first",
                 id="start: missing release file"),
    pytest.param(["start", "chat-assistant", "1.3.0", "{repo}", "-e", "staging"],
                 "reconciler start: chat-assistant already has candidate 1.3.0 at stage 1 in staging: let it finish, "
                 "or roll it back first (reconciler rollback chat-assistant -e staging)",
                 id="start: a candidate already in flight"),
    pytest.param(["start", "chat-assistant", "1.1.0", "{repo}", "-e", "prod"],
                 "reconciler start: 1.1.0 is not newer than stable 1.2.0: to go back to an older version, use "
                 "reconciler rollback or git revert", id="start: older than stable"),
    pytest.param(["start", "chat-assistant", "1.2.0", "{repo}", "-e", "prod"],
                 "reconciler start: 1.2.0 is not newer than stable 1.2.0", id="start: the stable itself"),
    pytest.param(["rollback", "code-completion", "{repo}", "-e", "prod", "--reason", "x"],
                 "reconciler rollback: code-completion in prod has no candidate and no standby to go back to: "
                 "revert the commit that promoted it (git revert)", id="rollback: nothing to go back to"),
    pytest.param(["reconcile", "{repo}", "--watch", "--at", AT],
                 "reconciler reconcile: --watch runs on the clock; --at replays one instant: use one or the other",
                 id="reconcile: --watch with --at"),
    pytest.param(["reconcile", "{repo}", "--watch", "--interval", "soon"],
                 "reconciler reconcile: --interval: 'soon' is not a duration", id="reconcile: bad --interval"),
    pytest.param(["reconcile", "{repo}", "--interval", "30"],
                 "reconciler reconcile: --interval: '30' is not a duration", id="reconcile: --interval without a unit"),
    pytest.param(["start", "chat-assistant", "1.3.0", "{repo}", "-e", "prod", "--at", "2026-11-22T10:00:00"],
                 "reconciler start: error: argument --at: '2026-11-22T10:00:00' has no time zone: add Z (UTC)",
                 id="start: --at without a zone"),
    pytest.param(["rollback", "chat-assistant", "{repo}", "-e", "prod", "--reason", "x", "--at", "yesterday"],
                 "reconciler rollback: error: argument --at: 'yesterday' is not an ISO 8601 time",
                 id="rollback: --at not a time"),
    pytest.param(["reconcile", "{repo}", "--at", "2026-11-22 10:00"],
                 "reconciler reconcile: error: argument --at: '2026-11-22 10:00' has no time zone",
                 id="reconcile: --at without a zone"),
    pytest.param(["rollback", "chat-assistant", "{repo}", "-e", "prod"],
                 "reconciler rollback: error: the following arguments are required: --reason",
                 id="rollback: no --reason"),
    pytest.param(["start", "chat-assistant", "1.3.0", "{repo}"],
                 "reconciler start: error: the following arguments are required: --environment",
                 id="start: no --environment"),
    pytest.param(["reconcile", "{repo}", "--format", "yaml"], "reconciler reconcile: error: argument --format",
                 id="reconcile: bad --format"),
    pytest.param(["resume", "chat-assistant", "-e", "staging", "--reason", "x", "{repo}"],
                 "reconciler resume: chat-assistant 1.3.0 in staging is not held by a revert: the reconciler is "
                 "already moving it", id="resume: nothing held"),
    pytest.param(["resume", "chat-assistant", "-e", "prod", "--reason", "x", "{repo}"],
                 "reconciler resume: chat-assistant has no candidate in prod: nothing to resume",
                 id="resume: no candidate"),
    pytest.param(["resume", "chat-assistant", "-e", "staging", "--reason", " ", "{repo}"],
                 "reconciler resume: --reason is empty", id="resume: blank reason"),
]


@pytest.mark.parametrize(("argv", "in_stderr"), USAGE_ERRORS)
def test_usage_errors_exit_2_and_write_nothing(capsys: pytest.CaptureFixture[str], repo: Path, argv: list[str],
                                               in_stderr: str) -> None:
    before = head(repo)
    code, out, err = run(capsys, *(str(repo) if a == "{repo}" else a for a in argv))
    assert code == 2, err
    assert out == ""
    assert in_stderr in err
    assert "Traceback" not in err
    assert head(repo) == before and dirty(repo) == ""


def test_reconcile_refuses_to_commit_over_uncommitted_edits(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    # An expired standby gives the pass a decision to commit (retire) without any Prometheus data.
    set_standby_until(repo, "2026-11-20T00:00:00")
    commit_all(repo, "standby window set")
    before = head(repo)
    edited = (repo / PROD).read_text() + "# a person's edit, not committed\n"
    (repo / PROD).write_text(edited)
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT)
    assert code == 2
    assert out == ""
    assert err.startswith("reconciler reconcile: environments/prod.yaml has uncommitted changes: commit or discard "
                          "them first")
    assert (repo / PROD).read_text() == edited
    assert head(repo) == before
    assert dirty(repo) == " M environments/prod.yaml\n"


def test_start_refuses_uncommitted_edits_of_the_environment_file(capsys: pytest.CaptureFixture[str],
                                                                  repo: Path) -> None:
    (repo / PROD).write_text((repo / PROD).read_text().replace("replicas: 3", "replicas: 2"))
    edited = (repo / PROD).read_text()
    before = head(repo)
    code, _, err = run(capsys, "start", "chat-assistant", "1.3.0", str(repo), "-e", "prod", "--at", AT)
    assert code == 2
    assert "environments/prod.yaml has uncommitted changes" in err
    assert (repo / PROD).read_text() == edited and head(repo) == before


@pytest.mark.parametrize("argv", [
    ["start", "chat-assistant", "1.3.0", "{repo}", "-e", "prod", "--at", AT],
    ["rollback", "chat-assistant", "{repo}", "-e", "staging", "--reason", "x", "--at", AT],
], ids=["start", "rollback"])
def test_a_folder_that_is_not_a_git_repository_exits_2_and_writes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]) -> None:
    plain = copy_example(tmp_path / "plain")
    before = {p: p.read_bytes() for p in plain.rglob("*") if p.is_file()}
    code, out, err = run(capsys, *(str(plain) if a == "{repo}" else a for a in argv))
    assert code == 2 and out == ""
    assert err.startswith(f"reconciler {argv[0]}: ")
    assert "not a git repository" in err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in plain.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", [
    ["start", "chat-assistant", "1.3.0", "{path}", "-e", "prod"],
    ["rollback", "chat-assistant", "{path}", "-e", "prod", "--reason", "x"],
    ["reconcile", "{path}", "--dry-run"],
], ids=["start", "rollback", "reconcile"])
def test_a_folder_that_is_not_a_sluice_repository_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          command: list[str]) -> None:
    code, out, err = run(capsys, *(str(tmp_path) if a == "{path}" else a for a in command))
    assert code == 2 and out == ""
    assert err.startswith(f"reconciler {command[0]}: ")


def test_a_zero_interval_is_a_usage_error(capsys: pytest.CaptureFixture[str], repo: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # stop the watch loop after its first pass, whatever happens
        slept.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr("reconciler.cli.reconcile.sleep", sleep)
    code, _, err = run(capsys, "reconcile", str(repo), "--watch", "--interval", "0s", "--dry-run",
                       "--prometheus", DOWN)
    assert (code, slept) == (2, [])
    assert err.startswith("reconciler reconcile: --interval")


def test_watch_sleeps_the_interval_between_passes(capsys: pytest.CaptureFixture[str], repo: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt  # Ctrl-C while waiting: a clean exit

    monkeypatch.setattr("reconciler.cli.reconcile.sleep", sleep)
    code, out, err = run(capsys, "reconcile", str(repo), "--watch", "--interval", "1m30s", "--dry-run",
                         "--prometheus", DOWN)
    assert code == 0, err
    assert slept == [90.0, 90.0]
    assert out.count("reconcile at ") == 2
    assert err == UNJUDGED_STAGING * 2  # Prometheus down: every pass says so, and the loop goes on


def test_a_watch_loop_goes_on_when_another_command_holds_the_checkout(capsys: pytest.CaptureFixture[str], repo: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An on-call's long manual command must not end the loop that judges every rollout: the
    locked pass exits 4 in a single pass, and a watch loop says so and tries again after the interval."""
    import fcntl

    from reconciler.adapters.checkout_lock import LOCK_NAME

    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("reconciler.cli.reconcile.sleep", sleep)
    with open(repo / ".git" / LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242 on oncall-laptop, `reconciler rollback`, since 2026-11-22T09:59:00Z\n")
        held.flush()
        code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--lock-timeout", "0s")
        assert (code, out) == (4, "") and "pid 4242 on oncall-laptop" in err
        code, out, err = run(capsys, "reconcile", str(repo), "--watch", "--interval", "1m", "--prometheus", DOWN,
                             "--lock-timeout", "0s")
    assert code == 0 and slept == [60.0, 60.0]
    assert err.count("another reconciler is writing to this checkout") == 2


@pytest.mark.parametrize("command", [
    ["start", "chat-assistant", "1.3.0", "-e", "prod"],
    ["rollback", "chat-assistant", "-e", "prod", "--reason", "p99 regression"],
    ["resume", "chat-assistant", "-e", "prod", "--reason", "fixed upstream"],
], ids=["start", "rollback", "resume"])
def test_a_hand_action_waits_for_the_checkouts_lock_then_exits_4_naming_the_holder(
        capsys: pytest.CaptureFixture[str], repo: Path, command: list[str]) -> None:
    import fcntl

    from reconciler.adapters.checkout_lock import LOCK_NAME

    before = head(repo)
    with open(repo / ".git" / LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("pid 4242 on cron-runner, `reconciler reconcile`, since 2026-11-22T09:59:00Z\n")
        held.flush()
        code, out, err = run(capsys, *command, str(repo), "--at", AT, "--lock-timeout", "200ms")
    assert (code, out) == (4, "")
    assert err.startswith(f"reconciler {command[0]}: another reconciler is writing to this checkout: pid 4242 on "
                          "cron-runner, `reconciler reconcile`, since 2026-11-22T09:59:00Z holds ")
    assert err.rstrip().endswith("nothing was written")
    assert head(repo) == before and git(repo, "status", "--porcelain") == ""


# --- start ---------------------------------------------------------------------------------------------


def test_start_commits_the_candidate_at_stage_0(capsys: pytest.CaptureFixture[str], repo: Path,
                                                sent: list[dict[str, Any]]) -> None:
    """Prod is protected: 1.3.0 carries two allowed approvals, and the a100 pool (8 nodes) holds
    stable + standby + candidate at 4 replicas x 4 GPUs (6 nodes)."""
    original = (repo / PROD).read_text()
    before = head(repo)
    code, out, err = run(capsys, "start", "chat-assistant", "1.3.0", str(repo), "-e", "prod", "--at",
                         "2026-11-22T11:00:00+01:00")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == ["prod chat-assistant 1.3.0: start",
                         "    canary rollout of 1.3.0 over stable 1.2.0: stage 0 (0%)"]
    assert lines[2] == f"committed {head(repo)[:12]}"

    assert git(repo, "rev-list", f"{before}..HEAD").split() == [head(repo)]
    assert subjects(repo)[0] == "Start chat-assistant 1.3.0 in prod at stage 0 (0%)"
    assert git(repo, "show", "-s", "--format=%an <%ae> %aI").strip() == (
        f"{BOT_NAME} <{BOT_EMAIL}> {GIT_DATE.replace('Z', '+00:00')}")
    assert changed_in(repo) == [PROD]
    assert dirty(repo) == ""
    found = trailers(repo)
    assert found["Sluice-Action"] == ["start"] and found["Sluice-Environment"] == ["prod"]
    assert found["Sluice-Version"] == ["1.3.0"] and found["Sluice-Stable"] == ["1.2.0"]
    assert found["Sluice-At"] == ["2026-11-22T10:00:00Z"] and found["Sluice-Stage"] == ["- -> 0"]

    entry = model(repo, "prod", "chat-assistant")
    assert entry["candidate"] == "1.3.0" and entry["stage"] == 0
    assert entry["stable"] == "1.2.0" and entry["standby"] == "1.1.0"
    text = (repo / PROD).read_text()
    assert "stage_started_at: 2026-11-22T10:00:00Z" in text
    for line in original.splitlines():  # every line survives, comments included; only three are added
        assert line in text.splitlines(), line
    assert len(text.splitlines()) == len(original.splitlines()) + 3
    assert "# previous stable, kept warm for a one-route-change rollback" in text
    assert sent == []  # a start notifies nobody
    assert run(capsys, "validate", str(repo))[0] == 0


def test_start_in_staging_after_a_rollback(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    assert run(capsys, "rollback", "chat-assistant", str(repo), "-e", "staging", "--reason", "retry",
               "--at", "2026-11-22T09:00:00Z")[0] == 0
    add_release(repo, "1.4.0")
    commit_all(repo, "Add chat-assistant 1.4.0")
    code, out, err = run(capsys, "start", "chat-assistant", "1.4.0", str(repo), "-e", "staging", "--at", AT)
    assert (code, err) == (0, "")
    assert subjects(repo)[:3] == ["Start chat-assistant 1.4.0 in staging at stage 0 (0%)", "Add chat-assistant 1.4.0",
                                  "Roll back chat-assistant 1.3.0 in staging: by hand"]
    entry = model(repo, "staging", "chat-assistant")
    assert (entry["candidate"], entry["stage"], entry["stable"]) == ("1.4.0", 0, "1.2.0")
    assert "# 1% of traffic" not in (repo / STAGING).read_text()  # the old stage's comment went with its line


def _one_approval(root: Path) -> None:
    path = add_release(root, "1.4.0")
    mutate_yaml(path, lambda d: d["lineage"]["approvals"].pop())


def _approval_before_creation(root: Path) -> None:
    """Three allowed approvers, but one approved before the release existed: it approved something else
    (the other two still make the count)."""
    def predate(release: Any) -> None:
        approvals = release["lineage"]["approvals"]
        approvals.append({"by": "carol.nguyen@acme.example", "at": datetime(2020, 1, 1, tzinfo=timezone.utc)})

    mutate_yaml(add_release(root, "1.4.0"), predate)


def _small_a100_pool(root: Path) -> None:
    # stable + standby need 4 nodes; a candidate would need 2 more
    mutate_yaml(root / PROD, lambda d: d["gpu_pools"][0].__setitem__("max_nodes", 4))


@pytest.mark.parametrize(("prepare", "version", "rule", "where"), [
    pytest.param(_small_a100_pool, "1.3.0", "[capacity]", PROD, id="capacity"),
    pytest.param(_one_approval, "1.4.0", "[approvals]", "releases/chat-assistant/1.4.0.yaml", id="approvals"),
    pytest.param(_approval_before_creation, "1.4.0", "[approvals]", "releases/chat-assistant/1.4.0.yaml",
                 id="approval-before-created-at"),
])
def test_a_start_that_would_break_a_rule_exits_1_and_writes_nothing(
        capsys: pytest.CaptureFixture[str], repo: Path, prepare: Any, version: str, rule: str, where: str) -> None:
    prepare(repo)
    commit_all(repo, "prepared")
    assert run(capsys, "validate", str(repo))[0] == 0  # valid as it is: only the start would break it
    before, original = head(repo), (repo / PROD).read_text()
    code, out, err = run(capsys, "start", "chat-assistant", version, str(repo), "-e", "prod", "--at", AT)
    assert code == 1 and out == ""
    *findings, summary = err.strip().splitlines()
    assert summary == "reconciler start: refused: the repository would have 1 error(s); nothing was written"
    assert len(findings) == 1 and findings[0].startswith(f"{where}:") and findings[0].endswith(rule)
    assert " error: " in findings[0]
    assert (repo / PROD).read_text() == original
    assert head(repo) == before and dirty(repo) == ""


@pytest.mark.parametrize(("evaluation", "message"), [
    ({"toxicity": 0.2}, "toxicity"),
    ({"win_rate_vs_current": 0.4}, "win"),
    ({"adversarial_pass_rate": 0.97}, "adversarial"),
])
def test_failing_pre_deployment_gates_exit_1_and_write_nothing(
        capsys: pytest.CaptureFixture[str], repo: Path, evaluation: dict[str, float], message: str) -> None:
    add_release(repo, "1.4.0", **evaluation)
    commit_all(repo, "Add chat-assistant 1.4.0")
    assert run(capsys, "validate", str(repo))[0] == 0
    before, original = head(repo), (repo / PROD).read_text()
    code, out, err = run(capsys, "start", "chat-assistant", "1.4.0", str(repo), "-e", "prod", "--at", AT)
    assert code == 1 and out == ""
    assert err.startswith("reconciler start: pre-deployment gates fail: ")
    assert message in err
    assert err.rstrip().endswith("; nothing was written")
    assert "fix: " in err
    assert (repo / PROD).read_text() == original
    assert head(repo) == before and dirty(repo) == ""


def with_origin(root: Path, tmp_path: Path) -> Path:
    """A bare clone of `root` as its origin."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(root), str(bare))
    git(root, "remote", "add", "origin", str(bare))
    git(root, "fetch", "-q", "origin")
    return bare


def test_start_push_lands_the_commit_on_origin(capsys: pytest.CaptureFixture[str], repo: Path,
                                               tmp_path: Path) -> None:
    bare = with_origin(repo, tmp_path)
    code, out, err = run(capsys, "start", "chat-assistant", "1.3.0", str(repo), "-e", "prod", "--at", AT, "--push")
    assert (code, err) == (0, "")
    assert git(bare, "rev-parse", "main").strip() == head(repo)
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "Start chat-assistant 1.3.0 in prod at stage 0 (0%)"


def test_a_failed_push_says_the_commit_is_local(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    before = head(repo)
    code, out, err = run(capsys, "start", "chat-assistant", "1.3.0", str(repo), "-e", "prod", "--at", AT, "--push")
    assert code == 2
    assert head(repo) != before  # the commit was made: the error must say so
    assert f"committed {head(repo)[:12]} locally" in err


# --- rollback ------------------------------------------------------------------------------------------


def _incident(root: Path, rel: str) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load((root / rel).read_text(encoding="utf-8"))


def test_rollback_withdraws_the_candidate_with_an_incident_record(
        capsys: pytest.CaptureFixture[str], repo: Path, sent: list[dict[str, Any]]) -> None:
    before = head(repo)
    code, out, err = run(capsys, "rollback", "chat-assistant", str(repo), "-e", "staging", "--reason",
                         "support tickets: wrong answers", "--at", AT)
    assert (code, err) == (0, "")
    incident = "incidents/staging/2026-11-22T100000Z-staging-chat-assistant-1.3.0.yaml"
    assert out.splitlines() == [
        "staging chat-assistant 1.3.0: rollback",
        "    manual: support tickets: wrong answers",
        "    traffic back to stable 1.2.0",
        f"committed {head(repo)[:12]}, incident {incident}",
    ]
    assert git(repo, "rev-list", f"{before}..HEAD").split() == [head(repo)]
    assert subjects(repo)[0] == "Roll back chat-assistant 1.3.0 in staging: by hand"
    assert changed_in(repo) == [STAGING, incident]
    assert dirty(repo) == ""
    assert trailers(repo)["Sluice-Action"] == ["rollback"]

    entry = model(repo, "staging", "chat-assistant")
    assert entry["stable"] == "1.2.0"
    assert not {"candidate", "stage", "stage_started_at"} & set(entry)
    assert model(repo, "staging", "code-completion")["candidate"] == "2.1.0"  # the other rollout is untouched

    record = _incident(repo, incident)
    assert record["manual"] is True
    assert (record["environment"], record["model"], record["version"], record["stable"]) == (
        "staging", "chat-assistant", "1.3.0", "1.2.0")
    assert record["stage"] == 1 and record["detected_at"] == AT
    assert "manual: support tickets: wrong answers" in record["reasons"]
    assert record["timeline"][-1]["event"] == "rolled back 1.3.0 (by hand); traffic back to 1.2.0"

    assert len(sent) == 1  # to 1.3.0's targets, with the commit and the incident
    assert sent[0]["targets"] == ["https://hooks.slack.com/services/T0000/B0000/chat-assistant-releases",
                                  "https://oncall.acme.example/hooks/sluice"]
    assert sent[0]["payload"]["commit"] == head(repo) and sent[0]["payload"]["incident"] == incident
    assert sent[0]["payload"]["manual"] is True
    assert run(capsys, "validate", str(repo))[0] == 0


def test_a_manual_rollback_records_the_weight_and_time_it_took_back(capsys: pytest.CaptureFixture[str],
                                                                     repo: Path) -> None:
    assert run(capsys, "rollback", "chat-assistant", str(repo), "-e", "staging", "--reason", "x", "--at", AT)[0] == 0
    record = _incident(repo, "incidents/staging/2026-11-22T100000Z-staging-chat-assistant-1.3.0.yaml")
    assert trailers(repo)["Sluice-Weight"] == ["1 -> 0"]
    assert (record["weight_before"], record["time_in_stage"]) == (1, "1d1h")


def test_rollback_without_a_candidate_goes_back_to_the_standby(
        capsys: pytest.CaptureFixture[str], repo: Path, sent: list[dict[str, Any]]) -> None:
    code, out, err = run(capsys, "rollback", "chat-assistant", str(repo), "-e", "prod", "--reason",
                         "1.2.0 regressed refunds", "--at", AT)
    assert (code, err) == (0, "")
    incident = "incidents/prod/2026-11-22T100000Z-prod-chat-assistant-1.2.0.yaml"
    assert out.splitlines() == [
        "prod chat-assistant 1.2.0: rollback",
        "    manual: 1.2.0 regressed refunds",
        "    traffic back to standby 1.1.0, which becomes stable",
        f"committed {head(repo)[:12]}, incident {incident}",
    ]
    assert subjects(repo)[0] == "Roll back chat-assistant 1.2.0 in prod: by hand"
    assert changed_in(repo) == [PROD, incident]
    entry = model(repo, "prod", "chat-assistant")
    assert entry["stable"] == "1.1.0"
    assert not {"standby", "standby_until", "candidate"} & set(entry)
    assert model(repo, "prod", "code-completion")["stable"] == "2.0.0"
    record = _incident(repo, incident)
    assert record["manual"] is True
    assert (record["version"], record["stable"]) == ("1.2.0", "1.1.0")
    assert [n["targets"] for n in sent] == [["https://hooks.slack.com/services/T0000/B0000/chat-assistant-releases"]]
    # and then there is nothing left to go back to
    code, _, err = run(capsys, "rollback", "chat-assistant", str(repo), "-e", "prod", "--reason", "again")
    assert code == 2 and "has no candidate and no standby" in err
    assert run(capsys, "validate", str(repo))[0] == 0


def test_a_reason_with_a_line_break_is_a_usage_error_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                                      repo: Path) -> None:
    before, original = head(repo), (repo / STAGING).read_text()
    try:
        code, _, err = run(capsys, "rollback", "chat-assistant", str(repo), "-e", "staging", "--reason",
                           "wrong answers\nSluice-Action: promote", "--at", AT)
    finally:
        assert head(repo) == before and (repo / STAGING).read_text() == original and dirty(repo) == ""
    assert code == 2 and err.startswith("reconciler rollback: ")


def test_a_blank_reason_is_refused(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    before = head(repo)
    code, _, err = run(capsys, "rollback", "chat-assistant", str(repo), "-e", "staging", "--reason", "  ", "--at", AT)
    assert (code, head(repo)) == (2, before)
    assert err.startswith("reconciler rollback: ")


def test_a_failed_notification_is_reported_and_the_rollback_stands(
        capsys: pytest.CaptureFixture[str], repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(targets: Any, summary: str, payload: Any, timeout: float = 5.0) -> list[Delivery]:
        return [Delivery("https://hooks.slack.com/…", False, "HTTP 500")]

    monkeypatch.setattr(rollout_pass, "notify", failing)
    code, out, err = run(capsys, "rollback", "code-completion", str(repo), "-e", "staging", "--reason", "x",
                         "--at", AT)
    assert code == 0
    assert "committed " in out
    assert err == "reconciler rollback: notification to https://hooks.slack.com/… failed: HTTP 500\n"
    assert subjects(repo)[0] == "Roll back code-completion 2.1.0 in staging: by hand"


# --- reconcile -----------------------------------------------------------------------------------------


def test_reconcile_dry_run_holds_everything_when_prometheus_is_unreachable(capsys: pytest.CaptureFixture[str],
                                                                          repo: Path) -> None:
    before = head(repo)
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT, "--dry-run")
    assert (code, err) == (3, UNJUDGED_STAGING)
    assert out.splitlines() == [
        "reconcile at 2026-11-22T10:00:00Z: 2 decision(s), 1 Prometheus query (dry run: nothing written)",
        "  staging chat-assistant 1.3.0: hold stage 1 (1%)",
        f"      {UNREACHABLE}",
        "  staging code-completion 2.1.0: hold stage 0 (0%)",
        f"      {UNREACHABLE}",
    ]
    assert head(repo) == before and dirty(repo) == ""


def test_reconcile_json_has_exactly_the_documented_shape(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT, "--dry-run",
                         "--format", "json")
    assert (code, err) == (3, UNJUDGED_STAGING)
    report = json.loads(out)
    assert report == {
        "at": "2026-11-22T10:00:00+00:00",
        "queries": 1,  # staging only: prod has nothing in flight, so it is not queried
        "pushed": False,
        "metrics_unreachable": ["staging"],
        "decisions": [
            {"environment": "staging", "model": "chat-assistant", "candidate": "1.3.0", "action": "hold",
             "stage": 1, "next_stage": 1, "weight": 1, "reasons": [UNREACHABLE]},
            {"environment": "staging", "model": "code-completion", "candidate": "2.1.0", "action": "hold",
             "stage": 0, "next_stage": 0, "weight": 0, "reasons": [UNREACHABLE]},
        ],
    }


def test_reconcile_of_one_environment_with_nothing_in_flight_sends_no_query(capsys: pytest.CaptureFixture[str],
                                                                           repo: Path) -> None:
    code, out, _ = run(capsys, "reconcile", str(repo), "-e", "prod", "--prometheus", DOWN, "--at", AT, "--dry-run",
                       "--format", "json")
    assert code == 0  # nothing in flight: nothing left unjudged, whatever Prometheus does
    assert json.loads(out) | {"at": None} == {"at": None, "queries": 0, "pushed": False, "metrics_unreachable": [],
                                              "decisions": []}


def test_reconcile_with_prometheus_down_still_retires_an_expired_standby(capsys: pytest.CaptureFixture[str],
                                                                        repo: Path) -> None:
    """Retiring needs no metrics; the rollouts hold (no rollback) and the pass exits 3 for them; the
    retire is committed (not a dry run)."""
    set_standby_until(repo, "2026-11-22T09:00:00")
    commit_all(repo, "standby window set")
    before = head(repo)
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT, "--format", "json")
    assert (code, err) == (3, UNJUDGED_STAGING)
    report = json.loads(out)
    actions = [(d["environment"], d["model"], d["action"]) for d in report["decisions"]]
    assert actions == [("prod", "chat-assistant", "retire"), ("staging", "chat-assistant", "hold"),
                       ("staging", "code-completion", "hold")]
    retire = report["decisions"][0]
    assert retire["candidate"] == "1.1.0" and retire["commit"] == head(repo)
    assert retire["incident"] is None and retire["notifications"] == []
    assert git(repo, "rev-list", f"{before}..HEAD").split() == [head(repo)]
    assert subjects(repo)[0] == "Retire standby chat-assistant 1.1.0 in prod"
    assert changed_in(repo) == [PROD]
    assert not {"standby", "standby_until"} & set(model(repo, "prod", "chat-assistant"))
    assert dirty(repo) == ""


def test_reconcile_push_retires_on_origin_too(capsys: pytest.CaptureFixture[str], repo: Path,
                                             tmp_path: Path) -> None:
    set_standby_until(repo, "2026-11-22T09:00:00")
    commit_all(repo, "standby window set")
    bare = with_origin(repo, tmp_path)
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT, "--push")
    assert (code, err) == (3, UNJUDGED_STAGING)
    assert out.splitlines()[-1] == "pushed after 1 attempt(s)"
    assert git(bare, "log", "-1", "--format=%s", "main").strip() == "Retire standby chat-assistant 1.1.0 in prod"
    assert git(bare, "rev-parse", "main").strip() == head(repo)


def test_reconcile_of_an_invalid_repository_exits_1_with_the_findings(capsys: pytest.CaptureFixture[str],
                                                                      repo: Path) -> None:
    path = repo / "releases" / "chat-assistant" / "1.3.0.yaml"
    path.write_text(path.read_text().replace("gpus: 4", "gpus: four"))
    before = head(repo)
    code, out, err = run(capsys, "reconcile", str(repo), "--prometheus", DOWN, "--at", AT)
    assert code == 1 and out == ""
    *findings, summary = err.strip().splitlines()
    assert summary == "reconciler reconcile: 1 error(s): run `reconciler validate` and fix them first"
    assert len(findings) == 1
    assert findings[0].startswith("releases/chat-assistant/1.3.0.yaml:") and "bundle.serving.gpus" in findings[0]
    assert head(repo) == before
    assert dirty(repo) == " M releases/chat-assistant/1.3.0.yaml\n"


# --- status as of a time -------------------------------------------------------------------------------


def test_status_json_says_time_in_stage_next_gate_and_standby_until(capsys: pytest.CaptureFixture[str],
                                                                    repo: Path) -> None:
    set_standby_until(repo, "2026-11-25T10:00:00")
    code, out, err = run(capsys, "status", str(repo), "--format", "json", "--at", AT)
    assert (code, err) == (0, "")
    models = {(env["name"], m["model"]): m for env in json.loads(out)["environments"] for m in env["models"]}
    chat = models[("staging", "chat-assistant")]
    assert chat["time_in_stage_seconds"] == 25 * 3600  # since 2026-11-21T09:00Z
    assert chat["next_gate"] == ("1,000 requests, then latency_p99_ms max_ratio_to_stable 1.2, ttft_p99_seconds max "
                                 "1.5 -> stage 2 (5%)")
    assert chat["standby_until"] is None
    blue_green = models[("staging", "code-completion")]
    assert blue_green["time_in_stage_seconds"] == 2 * 3600 + 30 * 60  # since 07:30
    assert blue_green["next_gate"] == ("1,000 requests, then error_rate max 0.01, latency_p99_ms max_ratio_to_stable "
                                       "1.2 -> stage 1 (100%)")
    prod_chat = models[("prod", "chat-assistant")]
    assert prod_chat["standby_until"] == "2026-11-25T10:00:00Z"
    assert prod_chat["time_in_stage_seconds"] is None and prod_chat["next_gate"] is None
    for entry in models.values():
        assert {"time_in_stage_seconds", "next_gate", "standby_until"} <= set(entry)


def set_stage_started_at(root: Path, when: str) -> None:
    """staging's chat-assistant (1.3.0 at stage 1) began its stage at `when`."""
    mutate_yaml(root / STAGING, lambda d: d["models"]["chat-assistant"].__setitem__("stage_started_at", utc(when)))


def test_validate_refuses_a_stage_that_starts_in_the_future_beyond_the_clock_skew_allowance(
        capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    set_stage_started_at(repo, "2027-01-01T00:00:00")
    code, out, _ = run(capsys, "validate", str(repo), "--at", AT)
    assert code == 1
    [line] = [x for x in out.splitlines() if "stage_started_at" in x]
    assert line == ("environments/staging.yaml:42:5: error: models.chat-assistant.stage_started_at: chat-assistant: "
                    "stage_started_at 2027-01-01T00:00:00Z is in the future (39d14h after now, 2026-11-22T10:00:00Z), "
                    "more than the 5m allowed for clock skew; fix: set it to when the stage began, at or before now "
                    "(and check the clock of whatever wrote it) [stage]")
    set_stage_started_at(repo, "2026-11-22T10:04:59")  # within the allowance: a runner's clock a little ahead
    assert run(capsys, "validate", str(repo), "--at", AT)[0] == 0


def test_status_shows_a_stage_that_starts_in_the_future_as_held(capsys: pytest.CaptureFixture[str],
                                                                 repo: Path) -> None:
    set_stage_started_at(repo, "2027-01-01T00:00:00")
    code, out, _ = run(capsys, "status", str(repo), "--format", "json", "--at", AT)
    assert code == 0
    staging = next(env for env in json.loads(out)["environments"] if env["name"] == "staging")
    chat = next(m for m in staging["models"] if m["model"] == "chat-assistant")
    assert chat["time_in_stage_seconds"] is None
    assert chat["next_gate"] == (
        "held: stage_started_at 2027-01-01T00:00:00Z is in the future (39d14h after now, 2026-11-22T10:00:00Z): "
        "a clock is skewed or a hand edit is wrong; holding, never advancing, until it is fixed: set "
        "models.chat-assistant.stage_started_at in environments/staging.yaml to when the stage began")
    code, out, _ = run(capsys, "status", str(repo), "--at", AT)
    assert "    next      held: stage_started_at 2027-01-01T00:00:00Z is in the future" in out
    assert " ago" not in out.split("chat-assistant")[2].split("code-completion")[0]


def test_status_follows_a_start(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    assert run(capsys, "start", "chat-assistant", "1.3.0", str(repo), "-e", "prod", "--at", AT)[0] == 0
    code, out, _ = run(capsys, "status", str(repo), "--format", "json", "--at", "2026-11-22T10:20:00Z")
    assert code == 0
    prod = next(env for env in json.loads(out)["environments"] if env["name"] == "prod")
    chat = next(m for m in prod["models"] if m["model"] == "chat-assistant")
    assert (chat["candidate"], chat["stage"], chat["time_in_stage_seconds"]) == ("1.3.0", 0, 1200)
    assert chat["weights"] == {"1.2.0": 100, "1.3.0": 0, "1.1.0": 0}
    assert chat["next_gate"] is not None and chat["next_gate"].endswith("-> stage 1 (1%)")
