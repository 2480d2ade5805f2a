"""`reconciler preview --environment ENV [--base REF] [--format text|json] [PATH]`: the program under
the SDK's mocks, its resources judged by the policy pack over gRPC, and with --base what changes.

Each preview starts a pack process (~0.3 s) and runs the program (~0.3 s), so the tests share runs
where they can. Repositories in tmp_path get releases/, environments/, infra/ and policies/ from
the checkout; Sluice is not installed here, so the pack (started with the copy as its working
directory) finds `reconciler` through PYTHONPATH, as it would in a virtualenv that has Sluice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.adapters.offline_preview import run_offline
from reconciler.cli.main import main
from reconciler.core.policy import policy_rules

from ..conftest import ROOT, mutate_yaml

PROD = "environments/prod.yaml"
STAGING = "environments/staging.yaml"
CHAT_120 = "releases/chat-assistant/1.2.0.yaml"
CHAT_130 = "releases/chat-assistant/1.3.0.yaml"
FIRST_LINE = ("{env}: offline preview: the Pulumi program ran under the SDK's mocks and the policy pack judged "
              "its resources over gRPC. Not a cloud preview: nothing was read from AWS or the cluster.")
IDENTITY = ("-c", "user.name=Sluice Tests", "-c", "user.email=tests@sluice.example")
TIMINGS = re.compile(r"^reconciler preview: program \d+\.\d\d s, (base program \d+\.\d\d s, )?policy pack after the program \d+\.\d\d s$")
# The standby chat-assistant 1.1.0 in prod: what retiring it deletes.
STANDBY_OBJECTS = [
    ("delete", "kubernetes:apps/v1:Deployment", "chat-assistant-v1-1-0"),
    ("delete", "kubernetes:core/v1:ConfigMap", "chat-assistant-v1-1-0-release"),
    ("delete", "kubernetes:core/v1:ConfigMap", "chat-assistant-v1-1-0-runtime"),
    ("delete", "kubernetes:core/v1:Service", "chat-assistant-v1-1-0"),
    ("delete", "kubernetes:policy/v1:PodDisruptionBudget", "chat-assistant-v1-1-0"),
]
# ... and what it changes: the pointer loses its standby, the routes and subsets lose v1-1-0.
STANDBY_ROUTING = [
    ("update", "kubernetes:core/v1:ConfigMap", "chat-assistant-pointer"),
    ("update", "kubernetes:networking.istio.io/v1:DestinationRule", "chat-assistant"),
    ("update", "kubernetes:networking.istio.io/v1:VirtualService", "chat-assistant"),
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def preview(capsys: pytest.CaptureFixture[str], repo: Path, env: str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "preview", "--environment", env, *extra, str(repo))


def section(text: str, title: str) -> list[str]:
    """The lines of one section of the text form (title line included), up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def custom_resources(repo: Path, env: str) -> list[tuple[str, str]]:
    return sorted((r.type, r.name) for r in run_offline(repo, env) if r.custom)


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True)


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-gpg-sign", "--message", message)


@pytest.fixture
def full_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """releases/, environments/, infra/ and policies/ of the checkout, not under git; the pack can import Sluice."""
    repo = tmp_path / "repo"
    for folder in ("releases", "environments", "infra", "policies"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    return repo


@pytest.fixture
def git_repo(full_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`full_repo` as a git repository with one commit: the examples as they are."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    git(full_repo, "init", "--quiet", "--initial-branch=main")
    commit_all(full_repo, "the examples")
    return full_repo


def changes_of(out: str) -> list[dict[str, Any]]:
    return json.loads(out)["changes"]


def actions(changes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(c["action"], c["type"], c["name"]) for c in changes]


# --- the examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_an_example_passes_clean(capsys: pytest.CaptureFixture[str], env: str) -> None:
    code, out, err = preview(capsys, ROOT, env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == FIRST_LINE.format(env=env)  # says plainly: offline, not a cloud preview
    expected = custom_resources(ROOT, env)
    listed = section(out, "Resources (")
    assert re.fullmatch(rf"Resources \({len(expected)}, plus \d+ components\):", listed[0])
    assert sorted(tuple(line.split()) for line in listed[1:]) == expected  # every custom resource, once
    assert section(out, "Policies (") == [f"Policies ({len(policy_rules())} policy rules in the pack):", "  no violations"]
    assert lines[-1] == "Result: passed, 0 advisory note(s)."
    assert "Changes against" not in out
    assert TIMINGS.match(err.strip()), err  # timings on stderr only


def test_json_through_the_real_entry_point() -> None:
    child = subprocess.run([sys.executable, "-m", "reconciler", "preview", "-e", "prod", "--format", "json", str(ROOT)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    data = json.loads(child.stdout)  # stdout is the JSON document alone
    assert {"environment", "offline", "resources", "changes", "policies", "blocked"} <= set(data)
    assert (data["environment"], data["offline"], data["changes"], data["policies"], data["blocked"]) == (
        "prod", True, None, [], False)
    assert "Not a cloud preview" in data["note"]
    assert sorted((r["type"], r["name"]) for r in data["resources"]) == custom_resources(ROOT, "prod")
    assert all(r["urn"].startswith("urn:pulumi:prod::sluice::") for r in data["resources"])
    assert TIMINGS.match(child.stderr.strip()), child.stderr


# --- --base -------------------------------------------------------------------------------------------


def test_stage_advance_against_the_base_ref(capsys: pytest.CaptureFixture[str], git_repo: Path, snapshot) -> None:  # type: ignore[no-untyped-def]
    """Staging's chat-assistant committed at stage 1 (1%), the working tree at stage 2 (5%)."""
    mutate_yaml(git_repo / STAGING, lambda d: d["models"]["chat-assistant"].__setitem__("stage", 2))
    code, out, err = preview(capsys, git_repo, "staging", "--base", "HEAD")
    assert code == 0, err
    assert str(git_repo) not in out and str(git_repo) not in err
    expected = custom_resources(git_repo, "staging")
    assert re.fullmatch(rf"Resources \({len(expected)}, plus \d+ components\):", section(out, "Resources (")[0])
    lines = out.splitlines()
    shown = [lines[0], ""] + lines[lines.index(section(out, "Changes against")[0]):]
    assert "\n".join(shown) == snapshot
    assert TIMINGS.match(err.strip()) and "base program" in err


def test_retiring_a_standby_deletes_its_objects(capsys: pytest.CaptureFixture[str], git_repo: Path) -> None:
    mutate_yaml(git_repo / PROD, lambda d: d["models"]["chat-assistant"].pop("standby"))
    code, out, err = preview(capsys, git_repo, "prod", "--base", "HEAD", "--format", "json")
    assert code == 0, err
    changes = changes_of(out)
    assert sorted(actions(changes)) == sorted(STANDBY_OBJECTS + STANDBY_ROUTING)
    route = next(c for c in changes if c["name"] == "chat-assistant" and c["type"].endswith("VirtualService"))
    assert route["fields"] == ["spec"]
    assert route["weights"] == {}  # the standby had a pinned route, no share of the traffic
    assert json.loads(out)["blocked"] is False


def test_adding_a_standby_creates_its_objects(capsys: pytest.CaptureFixture[str], git_repo: Path) -> None:
    """The base ref has no standby in prod; the working tree (the examples) has 1.1.0 back."""
    mutate_yaml(git_repo / PROD, lambda d: d["models"]["chat-assistant"].pop("standby"))
    commit_all(git_repo, "retire the standby")
    shutil.copy(ROOT / PROD, git_repo / PROD)
    code, out, err = preview(capsys, git_repo, "prod", "--base", "HEAD", "--format", "json")
    assert code == 0, err
    created = [("create", type_, name) for _, type_, name in STANDBY_OBJECTS]
    assert sorted(actions(changes_of(out))) == sorted(created + STANDBY_ROUTING)


def test_traffic_moves_and_a_release_is_promoted(capsys: pytest.CaptureFixture[str], git_repo: Path) -> None:
    """Promotion: staging's code-completion 2.1.0 becomes stable, 2.0.0 goes; text lines carry the traffic."""
    def promote(data: Any) -> None:
        model = data["models"]["code-completion"]
        model["stable"] = "2.1.0"
        for key in ("candidate", "stage", "stage_started_at"):
            model.pop(key)

    mutate_yaml(git_repo / STAGING, promote)
    code, out, err = preview(capsys, git_repo, "staging", "--base", "HEAD")
    assert code == 0, err
    changes = section(out, "Changes against HEAD")
    assert "  - kubernetes:apps/v1:Deployment code-completion-v2-0-0" in changes
    assert "  - kubernetes:core/v1:ConfigMap code-completion-v2-0-0-release" in changes
    assert not any(line.startswith("  + ") for line in changes)
    route = [line for line in changes if "VirtualService code-completion" in line]
    assert route == ["  ~ kubernetes:networking.istio.io/v1:VirtualService code-completion  (spec)  "
                     "traffic 2.0.0 100% -> 0%, 2.1.0 0% -> 100%"]


def test_an_environment_missing_at_the_base_is_all_new(capsys: pytest.CaptureFixture[str], git_repo: Path) -> None:
    (git_repo / PROD).unlink()
    commit_all(git_repo, "no prod yet")
    shutil.copy(ROOT / PROD, git_repo / PROD)
    code, out, err = preview(capsys, git_repo, "prod", "--base", "HEAD", "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["base"] == "HEAD"
    assert {c["action"] for c in data["changes"]} == {"create"}
    assert sorted((c["type"], c["name"]) for c in data["changes"]) == sorted(
        (r["type"], r["name"]) for r in data["resources"])
    route = next(c for c in data["changes"] if c["name"] == "chat-assistant" and c["type"].endswith("VirtualService"))
    assert route["weights"] == {"1.2.0": {"from": 0, "to": 100}}


# --- violations: the pack blocks, or validate refuses first ------------------------------------------


BLOCKED: dict[str, tuple[str, Callable[[Any], None], str, str]] = {
    # Passes through `reconciler validate`, which scans what releases put into ConfigMaps: the
    # environment's policy (the sluice-environment ConfigMap) is scanned by the pack alone.
    "configmap-secrets": (
        STAGING, lambda d: d.setdefault("policy", {}).setdefault("allowed_approvers", []).append(
            "AKIA" + "IOSFODNN7EXAMPLQ" + "@acme.example"),
        "sluice-environment", "holds what looks like an AWS access key id"),
}


@pytest.mark.parametrize("policy", sorted(BLOCKED))
def test_a_mandatory_violation_blocks(capsys: pytest.CaptureFixture[str], full_repo: Path, policy: str) -> None:
    file, change, config_map, message = BLOCKED[policy]
    mutate_yaml(full_repo / file, change)
    assert run(capsys, "validate", str(full_repo))[0] == 0  # a repository validate accepts

    code, out, err = preview(capsys, full_repo, "staging")
    assert code == 1, err
    violations = section(out, "Policies (")[1:]
    assert len(violations) == 1, violations
    prefix = f"  mandatory  {policy}  kubernetes:core/v1:ConfigMap {config_map}: staging: "
    assert violations[0].startswith(prefix) and message in violations[0] and "; fix: " in violations[0]
    assert out.splitlines()[-1] == "Result: blocked: 1 mandatory violation(s), 0 advisory note(s)."
    assert TIMINGS.match(err.strip()), err


def test_json_says_blocked(capsys: pytest.CaptureFixture[str], full_repo: Path) -> None:
    file, change, config_map, _ = BLOCKED["configmap-secrets"]
    mutate_yaml(full_repo / file, change)
    code, out, _ = preview(capsys, full_repo, "staging", "--format", "json")
    data = json.loads(out)
    assert (code, data["blocked"], [(p["policy"], p["level"]) for p in data["policies"]]) == (
        1, True, [("configmap-secrets", "mandatory")])
    assert data["policies"][0]["urn"].endswith(f"$kubernetes:core/v1:ConfigMap::{config_map}")


def test_a_repository_with_validate_errors_is_refused(capsys: pytest.CaptureFixture[str], full_repo: Path) -> None:
    """Too few approvals in a protected environment is a validate error: preview stops before the
    program and the pack, with validate's finding on stderr (the pack's own rule is the last line of
    defence, exercised in tests/policies)."""
    mutate_yaml(full_repo / CHAT_120, lambda d: d["lineage"]["approvals"].pop())
    code, out, err = preview(capsys, full_repo, "prod")
    assert (code, out) == (1, "")
    finding, summary = err.strip().splitlines()
    assert finding.startswith(f"{CHAT_120}:") and finding.endswith("[approvals]")
    assert "prod (stable): chat-assistant/v1.2.0-9c41e7a2d3b8 has 1 of 2 required approvals" in finding
    assert summary == "reconciler preview: 1 error(s): run `reconciler validate` and fix them first"


def test_validate_refuses_what_the_lineage_policy_blocks(capsys: pytest.CaptureFixture[str], full_repo: Path) -> None:
    """A missing parent on a release that is not the model's first: the pack's lineage-complete rule
    blocks it (tests/policies), and validate refuses it first, so the two never disagree."""
    mutate_yaml(full_repo / CHAT_130, lambda d: d["lineage"].__setitem__("parent_version", None))
    code, out, err = preview(capsys, full_repo, "staging")
    assert (code, out) == (1, "")
    finding = err.strip().splitlines()[0]
    assert finding.startswith(f"{CHAT_130}:") and finding.endswith("[lineage-parent]")
    assert "parent_version is empty, but 1.3.0 is not the first release of chat-assistant (1.1.0 is older)" in finding


# --- usage errors -------------------------------------------------------------------------------------


def test_an_unknown_environment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = preview(capsys, ROOT, "qa")
    assert (code, out) == (2, "")
    assert err.strip() == "reconciler preview: no environments/qa.yaml (known: prod, staging)"


def test_an_unknown_base_ref(capsys: pytest.CaptureFixture[str], git_repo: Path) -> None:
    code, out, err = preview(capsys, git_repo, "staging", "--base", "no-such-ref")
    assert (code, out) == (2, "")
    assert err.startswith("reconciler preview: cannot read 'no-such-ref' from git in ")


def test_a_base_outside_git(capsys: pytest.CaptureFixture[str], full_repo: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(full_repo.parent))  # no enclosing repository either
    code, out, err = preview(capsys, full_repo, "staging", "--base", "HEAD")
    assert (code, out) == (2, "")
    assert err.startswith("reconciler preview: cannot read 'HEAD' from git in ")


def test_no_policies_directory(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, err = preview(capsys, example_repo, "staging")
    assert (code, out) == (2, "")
    assert err.strip() == f"reconciler preview: {example_repo} has no policies/ directory (the CrossGuard policy pack)"


def test_environment_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "preview", str(ROOT))
    assert (code, out) == (2, "")
    assert "--environment" in err
