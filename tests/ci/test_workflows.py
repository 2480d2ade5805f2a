"""The CI templates in .github/ against GitHub's schema, the real reconciler CLI and the rules a
team relies on when it copies them: pinned actions, least privilege, one deploy per stack at a time.

They cannot run here (no GitHub runner, no Pulumi CLI, no cloud). Each check uses the real part
that does exist: check-jsonschema's copy of GitHub's workflow and action schemas, the CLI's own
argument parser (through bash, so the shell's quoting applies), and the repository's stack files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, mutate_yaml

from .workflow_kit import (
    ACTIONS, HOOKS, WORKFLOWS, all_steps, calls_in, load, mentions, parse_problem, pin_problems, steps, uses_lines,
)

PR, MAIN, RECONCILE = (ROOT / ".github" / "workflows" / f"{n}.yml" for n in ("pull-request", "main", "reconcile"))
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


# --- GitHub's schema ---------------------------------------------------------------------------------


def test_the_three_workflows_and_two_actions_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["main.yml", "pull-request.yml", "reconcile.yml"]
    assert [p.parent.name for p in ACTIONS] == ["pulumi-stack", "setup-sluice"]


def test_every_workflow_matches_githubs_workflow_schema() -> None:
    done = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_composite_action_matches_githubs_action_schema() -> None:
    done = check_jsonschema("vendor.github-actions", *ACTIONS)
    assert done.returncode == 0, done.stdout + done.stderr


def _drop_runs_on(doc: Any) -> None:
    del doc["jobs"]["plan"]["runs-on"]


def _misspell_steps(doc: Any) -> None:
    doc["jobs"]["plan"]["step"] = doc["jobs"]["plan"].pop("steps")


def _bad_permission(doc: Any) -> None:
    doc["jobs"]["plan"]["permissions"]["contents"] = "writ"


@pytest.mark.parametrize("breakage", [_drop_runs_on, _misspell_steps, _bad_permission],
                         ids=["runs-on missing", "unknown key", "bad permission value"])
def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path, breakage) -> None:
    broken = tmp_path / "pull-request.yml"
    shutil.copy(PR, broken)
    mutate_yaml(broken, breakage)
    done = check_jsonschema("vendor.github-workflows", broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pull-request.yml" in done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_action(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    shutil.copy(ACTIONS[0], broken)
    mutate_yaml(broken, lambda doc: doc["runs"].pop("using"))
    assert check_jsonschema("vendor.github-actions", broken).returncode == 1


# --- every `reconciler ...` line parses with the real CLI --------------------------------------------


def _command_cases() -> list[Any]:
    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        for step in all_steps():
            if step.run:
                for n, argv in enumerate(calls_in(step.run, step.env, Path(scratch))):
                    cases.append(pytest.param(argv, id=f"{step.id}:{n}:{argv[0]}"))
    for hook in load(HOOKS):
        entry = hook["entry"].split()
        assert entry[0] == "reconciler", hook
        cases.append(pytest.param(entry[1:] + list(hook.get("args", [])), id=f".pre-commit-hooks.yaml:{hook['id']}"))
    return cases


@pytest.mark.parametrize("argv", _command_cases())
def test_every_reconciler_command_line_parses_with_the_real_cli(argv: list[str]) -> None:
    assert parse_problem(argv) is None, f"reconciler {' '.join(argv)}: {parse_problem(argv)}"


def test_every_reconciler_mention_in_a_script_is_a_line_the_check_sees(tmp_path: Path) -> None:
    for step in all_steps():
        if step.run:
            assert mentions(step.run) == len(calls_in(step.run, step.env, tmp_path)), (
                f"{step.id}: a `reconciler` call that does not start its line escapes the parser check")


def test_the_workflows_call_the_commands_the_design_asks_for(tmp_path: Path) -> None:
    def calls(path: Path) -> list[list[str]]:
        return [argv for s in steps(path) if s.run for argv in calls_in(s.run, s.env, tmp_path)]

    assert calls(PR) == [["validate", "--base", "origin/{github.base_ref}"],
                         ["plan", "--base", "origin/{github.base_ref}", "--format", "markdown"]]
    assert calls(MAIN) == [["validate"]]
    assert calls(RECONCILE) == [["reconcile", "--push", "--format", "json", "--prometheus",
                                 "{vars.PROMETHEUS_URL || secrets.PROMETHEUS_URL}"]]


def test_without_a_prometheus_url_reconcile_uses_each_environments_own(tmp_path: Path) -> None:
    [step] = [s for s in steps(RECONCILE) if s.run and "reconciler" in s.run]
    assert calls_in(step.run, {**step.env, "PROMETHEUS_URL": ""}, tmp_path) == [
        ["reconcile", "--push", "--format", "json"]]


@pytest.mark.parametrize("script, problem", [
    ("reconciler validate --bogus", "unrecognized arguments: --bogus"),
    ("reconciler plann --base origin/main", "unknown command 'plann'"),
    ("reconciler reconcile --format yaml", "invalid choice: 'yaml'"),
    ('reconciler status "$EXTRA"', "unrecognized arguments"),
])
def test_the_parser_check_catches_a_bad_command_line(tmp_path: Path, script: str, problem: str) -> None:
    [argv] = calls_in(script, {"EXTRA": "--nope"}, tmp_path)
    found = parse_problem(argv)
    assert found is not None and problem in found, found


def test_a_call_hidden_inside_a_line_is_noticed(tmp_path: Path) -> None:
    script = "if ! reconciler validate --bogus; then exit 1; fi\n"
    assert mentions(script) == 1 and calls_in(script, {}, tmp_path) == []


# --- supply chain, privileges, injection ------------------------------------------------------------


def test_third_party_actions_are_pinned_by_commit_sha_with_their_version() -> None:
    problems = [p for path in [*WORKFLOWS, *ACTIONS] for p in pin_problems(path.read_text(), path.name)]
    assert problems == []


def test_the_pin_check_sees_every_uses_and_each_action_has_one_pin() -> None:
    pins: dict[str, set[str]] = {}
    for path in [*WORKFLOWS, *ACTIONS]:
        text_refs = sorted(ref for _, ref, _ in uses_lines(path.read_text()))
        yaml_refs = sorted(s.body["uses"] for s in steps(path) if "uses" in s.body)
        assert text_refs == yaml_refs, path
        for number, ref, rest in uses_lines(path.read_text()):
            if "@" in ref:
                name, sha = ref.split("@")
                pins.setdefault(name, set()).add(sha + rest)
    assert {name: len(found) for name, found in pins.items()} == {
        "actions/checkout": 1, "actions/setup-python": 1, "pulumi/actions": 1}


@pytest.mark.parametrize("line", [
    "      - uses: actions/checkout@v6",
    "      - uses: actions/checkout@main",
    "      - uses: actions/checkout@de0fac2",
    "      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd",
    "      - uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6",
    "      - uses: docker://alpine:3.20",
])
def test_the_pin_check_rejects_tags_branches_short_shas_and_missing_versions(line: str) -> None:
    assert len(pin_problems(line)) == 1


def test_the_pin_check_accepts_local_actions_and_pinned_ones() -> None:
    assert pin_problems("- uses: ./.github/actions/setup-sluice\n"
                        "- uses: actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd # v6.0.2\n"
                        "- uses: docker://alpine@sha256:" + "0" * 64 + "\n") == []


#: The only write permissions the templates hold, and why.
WRITES = {
    ("pull-request.yml", "plan"): {"pull-requests"},  # the sticky plan comment
    ("reconcile.yml", "reconcile"): {"contents", "actions"},  # push decisions; start main.yml
}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_nothing_by_default_and_each_job_names_its_permissions(path: Path) -> None:
    doc = load(path)
    assert doc["permissions"] == {}, "top-level permissions: {} so a new job starts with nothing"
    for job_id, job in doc["jobs"].items():
        granted = job.get("permissions")
        assert isinstance(granted, dict), f"{path.name}: job {job_id} must state its permissions"
        assert set(granted.values()) <= {"read", "write", "none"}
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes == WRITES.get((path.name, job_id), set()), (path.name, job_id, writes)


def test_no_workflow_runs_pull_request_code_with_secrets() -> None:
    for path in WORKFLOWS:
        assert "pull_request_target" not in load(path)["on"], path.name


def test_no_run_script_contains_an_expression() -> None:
    """`${{ }}` in a script is pasted into the shell before it runs (script injection from a branch
    name or a PR title); every value reaches the scripts through `env:` instead."""
    assert [s.id for s in all_steps() if s.run and "${{" in s.run] == []


def test_only_the_reconcile_job_keeps_the_checkout_token() -> None:
    keeps = [s.id for s in all_steps() if str(s.body.get("uses", "")).startswith("actions/checkout@")
             and (s.body.get("with") or {}).get("persist-credentials") is not False]
    assert keeps == [".github/workflows/reconcile.yml:reconcile:0"]


def test_versions_are_pinned_only_in_pyproject() -> None:
    installs = [line for s in all_steps() if s.run for line in s.run.splitlines() if "pip install" in line]
    assert installs == ['.venv/bin/python -m pip install --disable-pip-version-check -e ".[pulumi]"']
    for s in all_steps():
        assert not re.search(r"\b[\w.-]+==\d", s.run or ""), s.id
    setup = load(ROOT / ".github" / "actions" / "setup-sluice" / "action.yml")
    assert setup["runs"]["steps"][0]["with"]["python-version"] == "3.11"  # pyproject: requires-python >= 3.11


# --- the shape of each workflow ----------------------------------------------------------------------


def test_pull_requests_cancel_superseded_runs_and_see_the_base_branch() -> None:
    doc = load(PR)
    assert doc["concurrency"] == {"group": "sluice-pr-${{ github.event.pull_request.number }}",
                                  "cancel-in-progress": True}
    checkout = doc["jobs"]["plan"]["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # --base origin/<base> needs the base branch's history


def test_every_pulumi_stack_is_previewed_on_pull_requests_and_deployed_from_main() -> None:
    assert STACKS == ["prod", "staging"]
    assert sorted(p.stem for p in (ROOT / "environments").glob("*.yaml")) == STACKS
    preview = load(PR)["jobs"]["preview"]
    assert sorted(preview["strategy"]["matrix"]["stack"]) == STACKS
    assert preview["needs"] == "plan"
    assert _pulumi_step(preview)["with"]["command"] == "preview"
    jobs = load(MAIN)["jobs"]
    deployed = {job_id: _pulumi_step(job)["with"] for job_id, job in jobs.items() if job_id != "validate"}
    assert {job_id: (w["command"], w["stack"]) for job_id, w in deployed.items()} == {
        stack: ("up", stack) for stack in STACKS}


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if s.get("uses") == "./.github/actions/pulumi-stack"]
    return step


def test_main_deploys_staging_then_prod_one_up_per_stack_at_a_time_behind_environments() -> None:
    doc = load(MAIN)
    assert doc["on"]["push"] == {"branches": ["main"]}
    jobs = doc["jobs"]
    assert jobs["validate"]["if"] == "github.ref == 'refs/heads/main'"
    assert (jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("validate", "staging")
    groups = set()
    for stack in ("staging", "prod"):
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["concurrency"]["cancel-in-progress"] is False  # never cancel an `up` half way
        assert stack in job["concurrency"]["group"] and "${{" not in job["concurrency"]["group"]
        groups.add(job["concurrency"]["group"])
    assert len(groups) == 2
    assert "concurrency" not in doc  # a workflow-level group would also serialise staging behind prod


def test_reconcile_runs_every_five_minutes_one_pass_at_a_time_with_history() -> None:
    doc = load(RECONCILE)
    assert doc["on"]["schedule"] == [{"cron": "*/5 * * * *"}]
    assert "workflow_dispatch" in doc["on"]
    assert doc["concurrency"] == {"group": "sluice-reconcile", "cancel-in-progress": False}
    job = doc["jobs"]["reconcile"]
    assert job["steps"][0]["with"]["fetch-depth"] == 0  # incident records read the rollout's git log
    dispatch = job["steps"][-1]
    assert dispatch["run"].strip() == "gh workflow run main.yml --ref main"
    assert "workflow_dispatch" in load(MAIN)["on"]


def test_pulumi_runs_the_policy_pack_on_the_named_stack() -> None:
    [step] = [s for s in steps(ACTIONS[0]) if s.run and "pulumi up" in s.run]
    assert "pulumi up --yes --policy-pack policies --stack \"$STACK\"" in step.run
    assert "pulumi preview --policy-pack policies --stack \"$STACK\"" in step.run
    assert set(step.env) >= {"PULUMI_ACCESS_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_secrets_are_never_set_for_a_whole_job_and_reach_only_the_pulumi_step() -> None:
    for path in WORKFLOWS:
        doc = load(path)
        assert "secrets." not in str(doc.get("env", {})), path.name
        for job_id, job in doc["jobs"].items():
            assert "secrets." not in str(job.get("env", {})), (path.name, job_id)
    pulumi_stack = ROOT / ".github" / "actions" / "pulumi-stack" / "action.yml"
    raw = re.compile(r"inputs\.(pulumi-access-token|aws-access-key-id|aws-secret-access-key) \}")
    holders = [s.body["name"] for s in steps(pulumi_stack) if raw.search(str(s.body.get("env", {})))]
    assert holders == ["pulumi ${{ inputs.command }} ${{ inputs.stack }}"]
