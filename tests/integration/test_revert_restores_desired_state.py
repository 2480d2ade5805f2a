"""`git revert` is a rollback: in a real git repository, reverting the reconciler's commit (a stage
advance) or a promotion gives back exactly the desired state of the commit before it.

The commits are made the way the reconciler makes them: a ruamel round-trip edit of the
environment file, committed on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.adapters.deployable import load_desired_state
from reconciler.core.desired import DesiredState

from ..conftest import copy_example, mutate_yaml

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

STAGING = "environments/staging.yaml"
CHAT = "chat-assistant"


def git(repo: Path, *args: str) -> str:
    """Run git hermetically: no user or system config, a fixed identity, no signing or hooks."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": str(repo),
           "GIT_AUTHOR_DATE": "2026-11-22T10:00:00Z", "GIT_COMMITTER_DATE": "2026-11-22T10:00:00Z"}
    done = subprocess.run(
        ["git", "-c", "user.name=Sluice Reconciler", "-c", "user.email=reconciler@sluice.invalid",
         "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo, env=env, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path / "repo")
    git(root, "init", "-q")
    git(root, "add", "releases", "environments")
    git(root, "commit", "-q", "-m", "example repository")
    return root


def commit_change(root: Path, message: str, change: Callable[[Any], None]) -> None:
    mutate_yaml(root / STAGING, change)
    git(root, "add", STAGING)
    git(root, "commit", "-q", "-m", message)


def as_json(desired: DesiredState) -> str:
    return json.dumps(desired.manifests(), sort_keys=True)


def chat_weights(desired: DesiredState) -> dict[str, int]:
    """Weights of the mesh's weighted route (the gateway's carries the same, tested elsewhere)."""
    ms = next(m for m in desired.models if m.model == CHAT)
    weighted = next(r for r in ms.virtual_service["spec"]["http"] if r["name"] == "mesh-weighted")
    return {d["destination"]["subset"]: d["weight"] for d in weighted["route"]}


def changed_objects(before: DesiredState, after: DesiredState) -> set[tuple[str, str]]:
    a = {(m["kind"], m["metadata"]["name"]): m for m in before.manifests()}
    b = {(m["kind"], m["metadata"]["name"]): m for m in after.manifests()}
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def assert_revert_restores(root: Path, before: DesiredState) -> None:
    first = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    git(root, "revert", "--no-edit", "HEAD")
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "diff", first, "HEAD", "--", "environments", "releases") == ""
    assert (root / STAGING).read_text(encoding="utf-8") == git(root, "show", f"{first}:{STAGING}")
    assert len(git(root, "rev-list", "HEAD").split()) == 3  # the change is reverted, not erased
    reverted = load_desired_state(root, "staging")
    assert reverted == before
    assert as_json(reverted) == as_json(before)
    assert reverted.outputs() == before.outputs()


def test_reverting_a_stage_advance_restores_the_desired_state(repo: Path) -> None:
    before = load_desired_state(repo, "staging")
    assert chat_weights(before) == {"v1-2-0": 99, "v1-3-0": 1}

    def advance(data: Any) -> None:
        chat = data["models"][CHAT]
        chat["stage"] = 2
        chat["stage_started_at"] = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)

    commit_change(repo, "reconciler: advance chat-assistant 1.3.0 to stage 2 (5%)", advance)
    advanced = load_desired_state(repo, "staging")
    assert chat_weights(advanced) == {"v1-2-0": 95, "v1-3-0": 5}
    # a stage advance is a route change: the VirtualService and the pointer, nothing else
    assert changed_objects(before, advanced) == {("VirtualService", CHAT), ("ConfigMap", f"{CHAT}-pointer")}

    assert_revert_restores(repo, before)


def test_reverting_a_promotion_restores_the_desired_state(repo: Path) -> None:
    before = load_desired_state(repo, "staging")

    def promote(data: Any) -> None:
        chat = data["models"][CHAT]
        chat["stable"] = "1.3.0"
        chat.insert(list(chat).index("stable") + 1, "standby", "1.2.0")
        for key in ("candidate", "stage", "stage_started_at"):
            del chat[key]

    commit_change(repo, "reconciler: promote chat-assistant 1.3.0, keep 1.2.0 on standby", promote)
    promoted = load_desired_state(repo, "staging")
    assert chat_weights(promoted) == {"v1-3-0": 100, "v1-2-0": 0}
    assert next(m for m in promoted.models if m.model == CHAT).versions == {"stable": "1.3.0", "standby": "1.2.0"}
    # routes and the pointer change; the online evaluator ends with the canary (nothing left to compare)
    assert changed_objects(before, promoted) == {("VirtualService", CHAT), ("ConfigMap", f"{CHAT}-pointer"),
                                                 *((kind, f"{CHAT}-evaluator") for kind in
                                                   ("ConfigMap", "Deployment", "Service"))}

    assert_revert_restores(repo, before)
