"""Rollback by revert, for every kind of commit: `git revert` leaves a valid repository, the plan
against the reverted commit shows the route change back, and the desired state is the one before.

Each kind of commit is made the way it is made in production, on a real git repository holding
the example with its program: the reconciler's decisions through `rollout_pass.apply_all` (the step a
reconcile pass runs after `decide`) with a `Decision` value, the hand actions through the CLI
(`reconciler start`, `reconciler rollback`), and a person's pointer edit committed with git. Then:

1. `plan --base <parent>` with the commit checked out: what the commit did (the original plan);
2. `git revert --no-edit <sha>`: a clean revert, and `load_repository` finds no errors;
3. `plan --base <sha>`: the same environments and models as the original plan, each with weights,
   mirror and pointer fields swapped (before <-> after): the route change back;
4. the tree equals the parent's (an incident record a rollback wrote is gone too), and the desired
   state of the environment equals the one before the commit (which the commit had changed).

For the kinds that create or delete serving stacks (start, promotion's standby, retire), the plan
also runs the program: the resources the revert changes are the commit's, with create and delete
swapped. tests/integration/test_revert_restores_desired_state.py covers hand-edited advance and
promotion commits with manifest-level detail; here every kind is made by the real code paths.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.adapters.deployable import load_desired_state
from reconciler.adapters.git import GitRepository
from reconciler.adapters.repo_loader import load_repository
from reconciler.adapters.rollout_pass import apply_all, load_valid
from reconciler.cli.main import main
from reconciler.core.decision import Action, Decision
from tests.conftest import ROOT
from tests.integration.rollout_world import edit_yaml, git, hermetic_git, read_log, z

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

STAGING, PROD = "environments/staging.yaml", "environments/prod.yaml"
R13 = "releases/chat-assistant/1.3.0.yaml"
CHAT, CODE = "chat-assistant", "code-completion"
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)  # when each commit under test is made
SWAPPED = {"create": "delete", "delete": "create", "update": "update", "replace": "replace"}
Edit = Callable[[Any], None]


# --- the repository -----------------------------------------------------------------------------


@dataclass
class Repo:
    root: Path

    def cli(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()

    def plan(self, base: str, program: bool) -> dict[str, Any]:
        code, out, err = self.cli("plan", str(self.root), "--base", base, "--format", "json",
                                  *(() if program else ("--no-program",)))
        assert code == 0, out + err
        return json.loads(out)

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()


def chat_in(change: Edit) -> Edit:
    return lambda doc: change(doc["models"][CHAT])


def code_in(change: Edit) -> Edit:
    return lambda doc: change(doc["models"][CODE])


def no_candidate(dep: Any) -> None:
    for key in ("candidate", "stage", "stage_started_at"):
        dep.pop(key, None)


def at_stage(stage: int) -> Edit:
    def change(dep: Any) -> None:
        dep["stage"] = stage
    return change


def promoted(dep: Any) -> None:
    """chat-assistant after its promotion: 1.3.0 stable, 1.2.0 on standby until an hour ago."""
    dep["stable"] = "1.3.0"
    dep.insert(1, "standby", "1.2.0")
    dep.insert(2, "standby_until", T0 - timedelta(hours=1))
    no_candidate(dep)


def shadow_only(doc: Any) -> None:
    """1.3.0 as a shadow-only evaluation: one stage mirroring all traffic, then it stops."""
    doc["rollout"]["strategy"] = "shadow"
    doc["rollout"]["stages"] = [{"weight": 0, "mirror": 100, "min_duration": "24h"}]


def no_notifications(root: Path) -> None:
    """Hand rollbacks notify the release's targets: none of them may leave the machine."""
    for path in sorted((root / "releases").rglob("*.yaml")):
        edit_yaml(path, lambda doc: doc["rollout"].pop("notify", None))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    hermetic_git(monkeypatch, tmp_path)
    monkeypatch.setenv("GIT_AUTHOR_DATE", z(T0))  # the reconciler's commits and the reverts
    monkeypatch.setenv("GIT_COMMITTER_DATE", z(T0))
    root = tmp_path / "repo"
    for folder in ("releases", "environments", "infra"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    no_notifications(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "releases", "environments", "infra")
    git(root, "commit", "-q", "-m", "The example repository", when=T0 - timedelta(days=2))
    return Repo(root)


# --- making the commits ---------------------------------------------------------------------------


def decided(environment: str, model: str, action: Action, **fields: Any) -> Callable[[Repo], str]:
    """The reconciler's commit of a decision, as a pass applies it (the versions from the pointers)."""
    def act(repo: Repo) -> str:
        loaded = load_valid(repo.root)
        dep = loaded.environments[environment].models[model]
        candidate = dep.standby if action is Action.RETIRE else dep.candidate
        decision = Decision(environment, model, candidate, dep.stable, action, T0, **fields)
        done, = apply_all(repo.root, GitRepository(repo.root), loaded, [decision])
        assert done.commit is not None
        return done.commit
    return act


def command(*args: str) -> Callable[[Repo], str]:
    """A hand action through the CLI (it commits)."""
    def act(repo: Repo) -> str:
        code, out, err = repo.cli(*args, str(repo.root), "--at", z(T0))
        assert code == 0, out + err
        return repo.head()
    return act


def by_hand(rel: str, change: Edit, message: str) -> Callable[[Repo], str]:
    """A person edits an environment file and commits it."""
    def act(repo: Repo) -> str:
        edit_yaml(repo.root / rel, change)
        git(repo.root, "commit", "-q", "-m", message, "--", rel, when=T0)
        return repo.head()
    return act


@dataclass(frozen=True)
class Kind:
    id: str
    environment: str
    act: Callable[[Repo], str]
    before: tuple[tuple[str, Edit], ...] = ()  # a person's commit first: the state the commit starts from
    action: str | None = None  # the commit's Sluice-Action trailer (None: a person's commit)
    program: bool = False  # also compare the program's resource changes
    moves: bool = True  # whether the commit moves user traffic or mirroring

    @property
    def incident(self) -> bool:
        """A rollback commits its incident record with the pointer edit; the revert removes it."""
        return self.action == "rollback"


BREACH = "error_rate 0.081 > max 0.05 over 5m at stage 1 (1%)"
KINDS = [
    Kind("start", "staging", command("start", CHAT, "1.3.0", "--environment", "staging"),
         before=((STAGING, chat_in(no_candidate)),), action="start", program=True, moves=False),
    Kind("advance", "staging",
         decided("staging", CHAT, Action.ADVANCE, stage=1, next_stage=2, weight=5, previous_weight=1,
                 reasons=("every gate passed at stage 1 (1%)", "next: stage 2 (5%)")), action="advance"),
    Kind("promote", "staging",
         decided("staging", CHAT, Action.PROMOTE, stage=4, next_stage=5, weight=100, previous_weight=50,
                 standby_until=T0 + timedelta(hours=72), reasons=("every gate passed at stage 4 (50%)",)),
         before=((STAGING, chat_in(at_stage(4))),), action="promote", program=True),
    Kind("rollback", "staging",
         decided("staging", CHAT, Action.ROLLBACK, stage=1, weight=0, previous_weight=1,
                 reasons=(BREACH, "traffic back to stable 1.2.0")), action="rollback"),
    Kind("switch back (blue-green, after the switch)", "staging",
         decided("staging", CODE, Action.ROLLBACK, stage=1, weight=0, previous_weight=100,
                 reasons=("post-promotion check failed: error_rate 0.02 > max 0.01 over 5m",
                          "traffic back to stable 2.0.0")),
         before=((STAGING, code_in(at_stage(1))),), action="rollback"),
    Kind("stop (shadow evaluation done)", "staging",
         decided("staging", CHAT, Action.STOP, stage=0, weight=0, previous_weight=0,
                 reasons=("no gates at this stage", "the release ends in shadow: v1.3.0 is withdrawn")),
         before=((R13, shadow_only), (STAGING, chat_in(at_stage(0)))), action="stop"),
    Kind("retire", "staging",
         decided("staging", CHAT, Action.RETIRE, reasons=("standby 1.2.0's window has ended",)),
         before=((STAGING, chat_in(promoted)),), action="retire", program=True, moves=False),
    Kind("manual rollback of the candidate", "staging",
         command("rollback", CHAT, "--environment", "staging", "--reason", "answers cite the wrong refund policy"),
         action="rollback"),
    Kind("manual rollback to the standby", "prod",
         command("rollback", CHAT, "--environment", "prod", "--reason", "1.2.0 times out on long tickets"),
         action="rollback", program=True),
    Kind("a person's pointer change", "staging",
         by_hand(STAGING, code_in(at_stage(1)), "Switch code-completion 2.1.0 to live by hand")),
]


# --- comparing plans -----------------------------------------------------------------------------


def models_of(plan: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(env["name"], m["model"]): m for env in plan["environments"] for m in env["models"]}


def swapped_model(m: dict[str, Any]) -> dict[str, Any]:
    """What the plan of the undo says, given the plan of the change."""
    return {
        "weights": {v: {"before": w["after"], "after": w["before"]} for v, w in m["weights"].items()},
        "mirror": {"before": m["mirror"]["after"], "after": m["mirror"]["before"]},
        "fields": [{"field": f["field"], "before": f["after"], "after": f["before"]} for f in m["fields"]],
    }


def moves(m: dict[str, Any]) -> bool:
    """Whether a model's plan moves user traffic or mirroring."""
    traffic = any(w["before"] != w["after"] for w in m["weights"].values())
    return traffic or m["mirror"]["before"] != m["mirror"]["after"]


def routes(m: dict[str, Any]) -> dict[str, Any]:
    return {key: m[key] for key in ("weights", "mirror", "fields")}


def resource_changes(plan: dict[str, Any], environment: str) -> set[tuple[str, str, str]]:
    checks = plan["checks"][environment]
    assert checks["skipped"] is None and checks["violations"] == [], checks
    return {(c["action"], c["type"], c["name"]) for c in checks["resources"]}


@pytest.mark.parametrize("kind", KINDS, ids=[k.id for k in KINDS])
def test_reverting_a_commit_is_a_rollback(repo: Repo, kind: Kind) -> None:
    for rel, change in kind.before:
        edit_yaml(repo.root / rel, change)
    if kind.before:
        git(repo.root, "commit", "-q", "-am", "Where the commit under test starts from", when=T0 - timedelta(days=1))
    parent = repo.head()
    before = load_desired_state(repo.root, kind.environment)

    sha = kind.act(repo)

    [made] = read_log(repo.root, f"{parent}..HEAD")
    assert made.sha == sha
    assert made.trailers.get("Sluice-Action") == ([kind.action] if kind.action else None)
    touched = git(repo.root, "show", "--name-only", "--format=", sha).split()
    assert touched[0] == f"environments/{kind.environment}.yaml"
    assert [Path(p).parent.as_posix() for p in touched[1:]] == ([f"incidents/{kind.environment}"] if kind.incident
                                                                 else [])
    changed = load_desired_state(repo.root, kind.environment)
    assert changed != before  # the commit changed what runs: the revert has something to undo
    original = repo.plan(parent, kind.program)
    assert original["ok"] and original["releases"] == []
    assert original["environments"], "the commit's plan shows no change"
    assert any(moves(m) for m in models_of(original).values()) is kind.moves

    git(repo.root, "revert", "--no-edit", sha, when=T0 + timedelta(minutes=5))

    assert git(repo.root, "status", "--porcelain", "--untracked-files=all") == ""
    assert load_repository(repo.root).findings == []
    undo = repo.plan(sha, kind.program)
    assert undo["ok"] and undo["releases"] == []
    assert [(e["name"], e["kind"], e["settings"]) for e in undo["environments"]] == [
        (e["name"], e["kind"], e["settings"]) for e in original["environments"]]
    assert {key: routes(m) for key, m in models_of(undo).items()} == {
        key: swapped_model(m) for key, m in models_of(original).items()}
    if kind.program:
        assert resource_changes(original, kind.environment)
        assert resource_changes(undo, kind.environment) == {
            (SWAPPED[action], type_, name) for action, type_, name in resource_changes(original, kind.environment)}
    assert git(repo.root, "diff", "--stat", parent, "HEAD") == ""  # an incident record included
    assert load_desired_state(repo.root, kind.environment) == before


def test_the_plans_read_as_a_route_change_back(repo: Repo) -> None:
    """What the reviewer of the revert sees: the same route, the other way (Markdown, file level)."""
    parent = repo.head()
    sha = decided("staging", CHAT, Action.ADVANCE, stage=1, next_stage=2, weight=5, previous_weight=1,
                  reasons=("every gate passed",))(repo)
    code, change, _ = repo.cli("plan", str(repo.root), "--base", parent, "--no-program")
    assert code == 0
    git(repo.root, "revert", "--no-edit", sha)
    code, undo, _ = repo.cli("plan", str(repo.root), "--base", sha, "--no-program")
    assert code == 0
    row = "| staging | chat-assistant | stage {} -> {} | **1.2.0 {}% -> {}%, 1.3.0 {}% -> {}%** |"
    assert row.format(1, 2, 99, 95, 1, 5) in change.splitlines()
    assert row.format(2, 1, 95, 99, 5, 1) in undo.splitlines()


def test_reverting_an_older_commit_under_a_later_one_in_another_environment(repo: Repo) -> None:
    """On-call reverts the commit that did the harm, not whatever came after it: a later commit to
    another environment stays, and the plan of the revert touches only the reverted environment."""
    parent = repo.head()
    sha = decided("staging", CHAT, Action.ADVANCE, stage=1, next_stage=2, weight=5, previous_weight=1,
                  reasons=("every gate passed",))(repo)
    staging_advanced = load_desired_state(repo.root, "staging")
    command("rollback", CHAT, "--environment", "prod", "--reason", "unrelated: prod back to 1.1.0")(repo)
    prod_after = load_desired_state(repo.root, "prod")

    git(repo.root, "revert", "--no-edit", sha)

    assert load_repository(repo.root).findings == []
    plan = repo.plan(sha, program=False)  # against the advance: prod's later rollback shows as well
    assert {key: routes(m)["weights"] for key, m in models_of(plan).items()} == {
        ("prod", CHAT): {"1.1.0": {"before": 0, "after": 100}, "1.2.0": {"before": 100, "after": 0}},
        ("staging", CHAT): {"1.2.0": {"before": 95, "after": 99}, "1.3.0": {"before": 5, "after": 1}}}
    assert load_desired_state(repo.root, "prod") == prod_after  # the later commit stands
    assert load_desired_state(repo.root, "staging") != staging_advanced
    assert git(repo.root, "diff", parent, "HEAD", "--", STAGING) == ""
