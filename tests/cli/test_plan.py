"""`reconciler plan --base REF [--format markdown|text|json] [--no-program] [PATH]`: what a pull
request does, for the PR comment.

One scenario per kind of change a release author or an on-call engineer makes, each on a real git
repository (the example with its program, committed on `main` with a fixed date) changed in the
working tree the way a person would (ruamel round-trip edits). For each, the Markdown a reviewer
sees is a syrupy snapshot (tests/cli/__snapshots__/test_plan.ambr: read it as the reviewer would),
and the JSON says the same in numbers: traffic per version before and after, the bump, the verdict.
Snapshots use `--no-program` (the file-level plan: fast, and independent of the program's resource
names), except one stage advance with the program on (its resource updates and the policy line).

The mandatory policy violation is one the policy pack blocks and `validate` cannot see: a
credential in a release's artifact URI (a pre-signed S3 URL pasted into the weights' `uri`) ends up
in the release ConfigMap, which `configmap-secrets` refuses. Every other mandatory policy has a
validate rule of its own (route weights and stages, digests, hashes, lineage, gates, approvals,
capacity); GPU scheduling and serving availability are the program's own doing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.cli.main import main
from tests.conftest import ROOT
from tests.integration.rollout_world import Run, edit_yaml, git, hermetic_git
from tests.unit.test_rules import Mutation, both, set_

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")

STAGING, PROD = "environments/staging.yaml", "environments/prod.yaml"
R12, R13 = "releases/chat-assistant/1.2.0.yaml", "releases/chat-assistant/1.3.0.yaml"
CHAT, CODE = "chat-assistant", "code-completion"
AT = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)
#: A pre-signed S3 URL: the query carries a session token (a credential), readable by anyone who
#: can read the namespace once it is in a ConfigMap.
PRESIGNED = ("https://acme-llm-artifacts.s3.amazonaws.com/chat-assistant/1.3.1/model.tar"
             "?X-Amz-Security-Token=FwoGZXIvYXdzEJr7q2Vd9Lx4Tn0aKpWm3Ys")


# --- the repository and the changes ----------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example (releases, environments, program, pack, Pulumi project) committed on main."""
    hermetic_git(monkeypatch, tmp_path)
    root = tmp_path / "repo"
    for folder in ("releases", "environments", "infra", "policies"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for project in ROOT.glob("Pulumi*.yaml"):
        shutil.copyfile(project, root / project.name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "The example repository", when=AT)
    return root


def model(rel: str, name: str, change: Callable[[Any], None]) -> Mutation:
    """A round-trip edit of `models.<name>` in an environment file."""
    def mutate(root: Path) -> None:
        edit_yaml(root / rel, lambda doc: change(doc["models"][name]))
    return mutate


def edit(rel: str, *changes: Callable[[Any], None]) -> Mutation:
    """tests/unit/test_rules.py's `edit` in the example files' own style: line numbers stay a person's."""
    def mutate(root: Path) -> None:
        edit_yaml(root / rel, lambda doc: [change(doc) for change in changes])
    return mutate


def release(version: str, *changes: Callable[[Any], None]) -> Mutation:
    """releases/chat-assistant/<version>.yaml: a copy of 1.3.0, its child, with `changes`."""
    rel = f"releases/{CHAT}/{version}.yaml"

    def mutate(root: Path) -> None:
        shutil.copyfile(root / R13, root / rel)
        edit(rel, set_(("version",), version), set_(("revision",), "5a1b2c3d4e5f"),
             set_(("description",), f"{version}: see the bundle."), set_(("lineage", "parent_version"), "1.3.0"),
             *changes)(root)
    return mutate


def advance(chat: Any) -> None:
    chat["stage"], chat["stage_started_at"] = 2, AT


def new_candidate(version: str) -> Callable[[Any], None]:
    """What `reconciler start` writes: the candidate at stage 0, from now."""
    def change(chat: Any) -> None:
        chat.insert(1, "candidate", version)
        chat.insert(2, "stage", 0)
        chat.insert(3, "stage_started_at", AT)
    return change


def promote(chat: Any) -> None:
    """What the reconciler's promotion writes: 1.3.0 stable, 1.2.0 on standby for 72h."""
    chat["stable"] = "1.3.0"
    chat.insert(1, "standby", "1.2.0")
    chat.insert(2, "standby_until", datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc))
    for key in ("candidate", "stage", "stage_started_at"):
        del chat[key]


def back_to_standby(chat: Any) -> None:
    """prod's one-route-change rollback, by hand: the standby 1.1.0 becomes stable again."""
    chat["stable"] = "1.1.0"
    del chat["standby"]


def new_environment(root: Path) -> None:
    """environments/eu-staging.yaml: staging's shape in another region."""
    shutil.copyfile(root / STAGING, root / "environments/eu-staging.yaml")

    def change(doc: Any) -> None:
        doc["cluster"]["region"], doc["cluster"]["name"] = "eu-west-1", "llm-eu-staging"
        doc["istio"]["hosts"] = ["llm.eu-staging.acme.example"]
        for name in (CHAT, CODE):
            for key in ("candidate", "stage", "stage_started_at"):
                del doc["models"][name][key]
    edit_yaml(root / "environments/eu-staging.yaml", change)


# --- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    change: Mutation | None
    code: int
    weights: dict[tuple[str, str], dict[str, tuple[int, int]]] = field(default_factory=dict)
    releases: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, version, bump)
    rules: list[str] = field(default_factory=list)  # the errors' rules
    settings: dict[str, list[str]] = field(default_factory=dict)  # environment -> changed settings


SCENARIOS = [
    Scenario("stage advance", model(STAGING, CHAT, advance), 0,
             weights={("staging", CHAT): {"1.2.0": (99, 95), "1.3.0": (1, 5)}}),
    Scenario("new release and new candidate at stage 0",
             both(release("1.4.0", set_(("bundle", "system_prompt", "sha256"), "ab" * 32)),
                  model(PROD, CHAT, new_candidate("1.4.0"))), 0,
             weights={("prod", CHAT): {"1.1.0": (0, 0), "1.2.0": (100, 100), "1.4.0": (0, 0)}},
             releases=[("added", "1.4.0", "minor")]),
    Scenario("promotion", model(STAGING, CHAT, promote), 0,
             weights={("staging", CHAT): {"1.2.0": (99, 0), "1.3.0": (1, 100)}}),
    Scenario("manual rollback to the standby", model(PROD, CHAT, back_to_standby), 0,
             weights={("prod", CHAT): {"1.1.0": (0, 100), "1.2.0": (100, 0)}}),
    Scenario("released file edited", edit(R12, set_(("bundle", "generation", "temperature"), 0.2)), 1,
             releases=[("changed", "1.2.0", None)], rules=["immutable"]),
    Scenario("semver violation: new weights in a PATCH",
             release("1.3.1", set_(("bundle", "weights", "sha256"), "ab" * 32)), 1,
             releases=[("added", "1.3.1", "patch")], rules=["semver"]),
    Scenario("environment added", new_environment, 0,
             weights={("eu-staging", CHAT): {"1.2.0": (0, 100)}, ("eu-staging", CODE): {"2.0.0": (0, 100)}}),
    Scenario("environment settings changed",
             edit(STAGING, set_(("gpu_pools", 0, "max_nodes"), 4)), 0,
             settings={"staging": ["gpu_pools"]}),
    Scenario("no change", None, 0),
]


def plan(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> Run:
    code = main(["plan", str(root), *args])
    out, err = capsys.readouterr()
    return Run(code, out, err)


def applied(root: Path, scenario: Scenario) -> Path:
    if scenario.change is not None:
        scenario.change(root)
    return root


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_markdown_for_each_kind_of_change(capsys: pytest.CaptureFixture[str], repo: Path, scenario: Scenario,
                                          snapshot) -> None:  # type: ignore[no-untyped-def]
    run = plan(capsys, applied(repo, scenario), "--base", "main", "--no-program")
    assert (run.code, run.err) == (scenario.code, "")
    assert str(repo) not in run.out and str(repo.parent) not in run.out
    assert run.out == snapshot


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_json_for_each_kind_of_change(capsys: pytest.CaptureFixture[str], repo: Path, scenario: Scenario) -> None:
    run = plan(capsys, applied(repo, scenario), "--base", "main", "--no-program", "--format", "json")
    data = run.json
    assert run.code == scenario.code
    assert data["ok"] is (scenario.code == 0)
    assert data["base"] == "main"
    weights = {(env["name"], m["model"]): {v: (w["before"], w["after"]) for v, w in m["weights"].items()}
               for env in data["environments"] for m in env["models"]}
    for key, expected in scenario.weights.items():
        assert {v: w for v, w in weights[key].items() if v in expected} == expected, key
    moved = {key for key, w in weights.items() if any(a != b for a, b in w.values())}
    assert moved == {key for key, w in scenario.weights.items() if any(a != b for a, b in w.values())}
    assert [(r["kind"], r["version"], r["bump"]) for r in data["releases"]] == scenario.releases
    assert [e["rule"] for e in data["errors"]] == scenario.rules
    assert {e["name"]: e["settings"] for e in data["environments"] if e["settings"]} == scenario.settings
    assert data["checks"] == {}  # --no-program: nothing run, nothing claimed


# --- what the JSON says in detail ------------------------------------------------------------------


def test_json_of_a_new_release_names_its_parent_bump_reasons_and_gates(capsys: pytest.CaptureFixture[str],
                                                                      repo: Path) -> None:
    applied(repo, SCENARIOS[1])
    data = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json").json
    [added] = data["releases"]
    assert (added["file"], added["parent"], added["bump"]) == ("releases/chat-assistant/1.4.0.yaml", "1.3.0", "minor")
    assert added["changes_since_parent"] == [
        {"path": "bundle.system_prompt.sha256", "needs": "minor", "what": "a changed system prompt"}]
    [prod] = data["environments"]
    [chat] = prod["models"]
    assert [(f["field"], f["before"], f["after"]) for f in chat["fields"]] == [
        ("candidate", None, "1.4.0"), ("stage", None, 0), ("stage_started_at", None, "2026-11-22T10:00:00Z")]
    assert chat["stage"] == "stage 0 of 5 (0%)"
    assert [(g["gate"], g["phase"]) for g in chat["predeployment"]] == [
        ("toxicity", "pass"), ("adversarial-suite", "pass"), ("win-rate", "pass"), ("latency-p99", "pass")]


def test_json_of_a_semver_violation_says_what_the_change_needs(capsys: pytest.CaptureFixture[str],
                                                                repo: Path) -> None:
    applied(repo, SCENARIOS[5])
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json")
    data = run.json
    assert (run.code, data["ok"], data["verdict"]) == (1, False, "Blocked: 1 error")
    [added] = data["releases"]
    assert (added["bump"], added["changes_since_parent"]) == (
        "patch", [{"path": "bundle.weights.sha256", "needs": "minor", "what": "new weights"}])
    [error] = data["errors"]
    assert (error["file"], error["path"], error["rule"]) == (
        "releases/chat-assistant/1.3.1.yaml", "bundle.weights.sha256", "semver")
    assert "release it as 1.4.0" in error["fix"]


def test_a_candidate_failing_a_blocking_gate_is_blocked_with_the_gate_shown(capsys: pytest.CaptureFixture[str],
                                                                           repo: Path) -> None:
    toxic = edit("releases/chat-assistant/1.4.0.yaml", set_(("evaluation", "toxicity"), 0.08))
    both(SCENARIOS[1].change, toxic)(repo)  # type: ignore[arg-type]
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json")
    data = run.json
    assert (run.code, data["ok"]) == (1, False)
    gates = {g["gate"]: g["phase"] for g in data["environments"][0]["models"][0]["predeployment"]}
    assert gates["toxicity"] == "fail"
    assert [e["rule"] for e in data["errors"]] == ["predeployment-gates"]


# --- the program on -------------------------------------------------------------------------------


def test_stage_advance_with_the_program(capsys: pytest.CaptureFixture[str], repo: Path,
                                        snapshot) -> None:  # type: ignore[no-untyped-def]
    """The one snapshot with resources: a stage advance is a route change (the VirtualService and the
    pointer ConfigMap) and nothing else, and the policy rules pass."""
    applied(repo, SCENARIOS[0])
    run = plan(capsys, repo, "--base", "main")
    assert (run.code, run.err) == (0, "")
    assert run.out == snapshot
    data = plan(capsys, repo, "--base", "main", "--format", "json").json
    staging = data["checks"]["staging"]
    assert [(c["action"], c["type"].rsplit(":", 1)[-1], c["name"]) for c in staging["resources"]] == [
        ("update", "ConfigMap", "chat-assistant-pointer"), ("update", "VirtualService", "chat-assistant")]
    assert (staging["violations"], staging["skipped"]) == ([], None)
    assert staging["policies"] >= 10


def test_a_presigned_url_is_refused_by_validate_and_plan_before_the_pack(capsys: pytest.CaptureFixture[str],
                                                                         repo: Path) -> None:
    """A pre-signed URL (with its session token) as the weights' URI of a new PATCH release, which
    prod takes as its candidate: the token would land in the release ConfigMap, so validate's
    `secrets` rule (the pack's detector) refuses it, and plan reports that error."""
    both(release("1.3.1", set_(("bundle", "weights", "uri"), PRESIGNED),
                 set_(("bundle", "generation", "temperature"), 0.2)),
         model(PROD, CHAT, new_candidate("1.3.1")))(repo)
    assert main(["validate", str(repo), "--base", "main"]) == 1
    assert "bundle.weights.uri: bundle.weights.uri holds what looks like a value assigned to " \
        "'X-Amz-Security-Token' (FwoG... " in capsys.readouterr().out

    run = plan(capsys, repo, "--base", "main", "--format", "json")

    assert run.code == 1 and run.json["ok"] is False
    assert [(e["rule"], e["path"]) for e in run.json["errors"]] == [("secrets", "bundle.weights.uri")]
    assert PRESIGNED.rsplit("=", 1)[1] not in run.out + run.err  # the secret is not repeated


def test_a_mandatory_policy_violation_that_validate_does_not_see(capsys: pytest.CaptureFixture[str],
                                                                 repo: Path) -> None:
    """validate scans what releases put into ConfigMaps; the environment's policy (its approvers'
    addresses, in the sluice-environment ConfigMap) is scanned by the pack alone."""
    approver = "AKIA" + "IOSFODNN7EXAMPLQ" + "@acme.example"
    edit(PROD, lambda doc: doc["policy"]["allowed_approvers"].append(approver))(repo)
    assert main(["validate", str(repo), "--base", "main"]) == 0  # validate has nothing against it
    capsys.readouterr()

    run = plan(capsys, repo, "--base", "main", "--format", "json")

    data = run.json
    assert (run.code, data["ok"], data["errors"]) == (1, False, [])
    assert data["verdict"] == "Blocked: 1 mandatory policy violation"
    violations = data["checks"]["prod"]["violations"]
    assert violations and {(v["policy"], v["mandatory"]) for v in violations} == {("configmap-secrets", True)}
    assert all("ConfigMap sluice-environment" in v["message"] for v in violations)
    assert all("AWS access key id (AKIA... (20 characters))" in v["message"] for v in violations)
    assert not any(approver in v["message"] for v in violations)  # the secret is not repeated
    markdown = plan(capsys, repo, "--base", "main")
    assert markdown.code == 1
    assert markdown.out.splitlines()[2].startswith(f"❌ **{data['verdict']}** ·")
    assert "configmap-secrets (mandatory): prod: ConfigMap sluice-environment" in markdown.out


# --- text, usage and exit codes -------------------------------------------------------------------


def test_text_format(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    applied(repo, SCENARIOS[0])
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "text")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0] == "Plan against main: Ready to merge (traffic moves in staging)"
    assert lines[1] == "  staging / chat-assistant: stage 1 -> 2; traffic 1.2.0 99% -> 95%, 1.3.0 1% -> 5%"
    assert lines[2].startswith("    at stage 2 of 5 (5%), needs: at least 4h, then 10,000 requests")
    assert lines[3:] == ["Checks:", "  validate: 0 errors, 0 new warnings"]


def test_text_format_of_a_blocked_change_lists_the_error_lines(capsys: pytest.CaptureFixture[str],
                                                               repo: Path) -> None:
    applied(repo, SCENARIOS[4])
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "text")
    assert run.code == 1
    assert run.out.splitlines()[0] == "Plan against main: Blocked: 1 error (no traffic moves)"
    assert run.out.splitlines()[-1].startswith(f"{R12}:27:5: error: bundle.generation.temperature: chat-assistant "
                                               "1.2.0 is released (main has it) and may not change")


def test_a_base_ref_git_cannot_read_is_a_usage_error(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    run = plan(capsys, repo, "--base", "origin/main", "--no-program")
    assert (run.code, run.out) == (2, "")
    assert run.err.startswith("reconciler plan: cannot read 'origin/main' from git in ")
    assert run.err.rstrip().endswith("(in CI, fetch the history: actions/checkout with fetch-depth: 0)")


def test_base_is_required(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    run = plan(capsys, repo)
    assert (run.code, run.out) == (2, "")
    assert "--base" in run.err


def test_a_path_that_is_not_a_repository_is_a_usage_error(capsys: pytest.CaptureFixture[str], repo: Path,
                                                           tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    run = plan(capsys, empty, "--base", "HEAD", "--no-program")
    assert (run.code, run.out) == (2, "")


def test_the_plan_against_a_branch_with_committed_changes(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    """The PR shape: the change is committed on a branch, the working tree is clean, the base is main."""
    git(repo, "checkout", "-q", "-b", "advance")
    applied(repo, SCENARIOS[0])
    git(repo, "commit", "-q", "-am", "Advance chat-assistant", when=AT)
    assert plan(capsys, repo, "--base", "HEAD", "--no-program", "--format", "json").json["environments"] == []
    data = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json").json
    assert data["environments"][0]["models"][0]["weights"]["1.3.0"] == {"before": 1, "after": 5}


# --- known problems ------------------------------------------------------------------------------


def test_a_promotion_does_not_read_as_a_return_to_stage_0(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    applied(repo, SCENARIOS[2])
    data = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json").json
    fields = {f["field"]: (f["before"], f["after"]) for f in data["environments"][0]["models"][0]["fields"]}
    assert fields.get("stage", (1, None)) == (1, None)


def test_an_unparsable_environment_file_is_not_planned_as_removed(capsys: pytest.CaptureFixture[str],
                                                                  repo: Path) -> None:
    path = repo / STAGING
    path.write_text(path.read_text(encoding="utf-8").replace("namespace: llm-serving", "namespace: [llm-serving"),
                    encoding="utf-8")
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json")
    data = run.json
    assert run.code == 1 and [e["rule"] for e in data["errors"]] == ["yaml"]
    assert [e for e in data["environments"] if e["kind"] == "removed"] == []


def test_warnings_already_on_the_base_are_counted_not_repeated(capsys: pytest.CaptureFixture[str],
                                                               repo: Path) -> None:
    """A plan repeats no old news: the base's warning is a count; a warning the change adds is listed."""
    no_minimum = edit(R13, lambda doc: doc["rollout"]["stages"][1].pop("min_duration"))
    no_minimum(repo)
    git(repo, "commit", "-q", "-am", "1.3.0's first canary stage has no minimum duration", when=AT)
    applied(repo, SCENARIOS[0])
    markdown = plan(capsys, repo, "--base", "main", "--no-program")
    assert "- validate: 0 errors, 0 new warnings (1 already on main)" in markdown.out.splitlines()
    assert "**Errors and new warnings**" not in markdown.out

    edit(R12, set_(("rollout", "stages"), [{"weight": 0}, {"weight": 10}, {"weight": 100}]))(repo)
    data = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json").json
    assert (data["ok"], data["known_warnings"]) == (False, 1)  # editing released 1.2.0 is an error as well
    assert [(w["rule"], w["file"], w["path"]) for w in data["warnings"]] == [
        ("rollout-stages", R12, "rollout.stages[1].min_duration")]


def test_a_deleted_release_is_listed_and_warned_about(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    release("1.3.1", set_(("bundle", "generation", "temperature"), 0.2))(repo)
    git(repo, "add", "releases")
    git(repo, "commit", "-q", "-m", "Release 1.3.1", when=AT)
    (repo / "releases/chat-assistant/1.3.1.yaml").unlink()
    run = plan(capsys, repo, "--base", "main", "--no-program", "--format", "json")
    data = run.json
    assert (run.code, data["ok"]) == (0, True)
    assert [(r["kind"], r["version"], r["file"]) for r in data["releases"]] == [
        ("removed", "1.3.1", "releases/chat-assistant/1.3.1.yaml")]
    assert [(w["rule"], w["file"]) for w in data["warnings"]] == [("immutable", "releases/chat-assistant/1.3.1.yaml")]
    markdown = plan(capsys, repo, "--base", "main", "--no-program").out
    assert "| chat-assistant 1.3.1 | removed | - | release file deleted |" in markdown.splitlines()


def test_plan_and_preview_count_the_policy_rules_the_same_way(capsys: pytest.CaptureFixture[str],
                                                               repo: Path) -> None:
    """One count of the pack's rules (its `unknown-during-preview` channel is not a rule): plan
    runs them in-process, preview asks the pack over gRPC; both say the same number."""
    from reconciler.core.policy import policy_rules

    applied(repo, SCENARIOS[0])
    planned = plan(capsys, repo, "--base", "main", "--format", "json").json["checks"]["staging"]["policies"]
    assert main(["preview", "--environment", "staging", "--format", "json", str(repo)]) == 0
    previewed = json.loads(capsys.readouterr().out)["policy_rules"]
    assert planned == previewed == len(policy_rules())
    assert f"{planned} policy rules: no violations" in plan(capsys, repo, "--base", "main", "--format", "text").out
    assert main(["preview", "--environment", "staging", str(repo)]) == 0
    assert f"Policies ({planned} policy rules in the pack):" in capsys.readouterr().out
