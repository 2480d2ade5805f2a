"""The workflows' shell steps, run here with bash as a GitHub runner runs them.

Real git repositories (a bare `origin` and a clone, as actions/checkout leaves them), the real
reconciler (on PATH as `reconciler`, like the .venv the setup action makes) and the real summary
script. Only `gh` cannot reach GitHub from here: the sticky-comment step runs against a small `gh`
that records its calls and answers the comment listing through the real `jq`, so the step's own
logic (fork check, marker and author filter, create or edit, truncation) is what is tested.
"""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, copy_example, mutate_yaml
from tests.integration.rollout_world import git, hermetic_git

from .workflow_kit import StepRun, run_step, step_named, steps

PR = ROOT / ".github" / "workflows" / "pull-request.yml"
RECONCILE = ROOT / ".github" / "workflows" / "reconcile.yml"
PULUMI_STACK = ROOT / ".github" / "actions" / "pulumi-stack" / "action.yml"
SUMMARY = ROOT / ".github" / "scripts" / "reconcile_summary.py"
BOT = "github-actions[bot]"
MARKER = "<!-- sluice-plan -->"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A bin/ with `reconciler` and `python` as the setup action leaves them on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "reconciler",
               f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m reconciler "$@"\n')
    executable(bin_dir / "python", f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    return bin_dir


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example repository pushed to a bare `origin` and cloned back, as actions/checkout does
    with fetch-depth 0; the clone also holds the summary script, as an adopting repository would."""
    hermetic_git(monkeypatch, tmp_path)
    origin, seed, work = tmp_path / "origin.git", tmp_path / "seed", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    copy_example(seed)
    (seed / ".github" / "scripts").mkdir(parents=True)
    shutil.copy(SUMMARY, seed / ".github" / "scripts")
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "Example repository")
    git(seed, "push", "-q", str(origin), "main")
    git(tmp_path, "clone", "-q", str(origin), str(work))
    return work


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- credentials check (pulumi-stack) --------------------------------------------------------------


@pytest.mark.parametrize("command, has_pulumi, has_aws, ready, annotation", [
    ("preview", "true", "true", "true", None),
    ("preview", "false", "true", "false", "::notice title=pulumi preview prod skipped::"),
    ("preview", "true", "false", "false", "::notice title=pulumi preview prod skipped::"),
    ("up", "false", "false", "false", "::warning title=pulumi up prod skipped::"),
])
def test_missing_secrets_skip_pulumi_with_a_notice_or_a_warning_for_up(
        tmp_path: Path, command: str, has_pulumi: str, has_aws: str, ready: str, annotation: str | None) -> None:
    run = run_step(step_named(PULUMI_STACK, "Check for Pulumi and cloud credentials"), tmp_path,
                   {"COMMAND": command, "STACK": "prod", "HAS_PULUMI": has_pulumi, "HAS_AWS": has_aws})
    assert run.code == 0, run.stderr
    assert run.outputs == {"ready": ready}
    if annotation is None:
        assert "::" not in run.stdout
    else:
        assert run.stdout.startswith(annotation)
        assert ("PULUMI_ACCESS_TOKEN" in run.stdout) == (has_pulumi == "false")
        assert ("AWS_ACCESS_KEY_ID" in run.stdout) == (has_aws == "false")


def test_an_unknown_pulumi_command_fails_the_step(tmp_path: Path) -> None:
    run = run_step(step_named(PULUMI_STACK, "Check for Pulumi and cloud credentials"), tmp_path,
                   {"COMMAND": "destroy", "STACK": "prod", "HAS_PULUMI": "true", "HAS_AWS": "true"})
    assert run.code == 1 and "command must be preview or up" in run.stdout
    assert run.outputs == {}


def test_the_pulumi_steps_run_only_when_the_credentials_are_there() -> None:
    assert [s.body.get("if") for s in steps(PULUMI_STACK)] == [None, "steps.credentials.outputs.ready == 'true'",
                                                 "steps.credentials.outputs.ready == 'true'"]


# --- the pull request job: validate, plan, the sticky comment --------------------------------------


def change_branch(work: Path, edit) -> None:
    git(work, "checkout", "-q", "-b", "change")
    edit(work)
    git(work, "commit", "-q", "-am", "the change")


def test_the_pr_job_validates_and_plans_a_good_change_against_its_base(checkout: Path, tools: Path) -> None:
    change_branch(checkout, lambda w: mutate_yaml(w / "environments" / "prod.yaml",
                                                  lambda d: d["models"]["chat-assistant"].__setitem__("replicas", 5)))
    validate = run_step(step_named(PR, "reconciler validate"), checkout, {"BASE_REF": "main"}, (tools,))
    assert validate.code == 0, validate.stdout + validate.stderr
    plan = run_step(step_named(PR, "reconciler plan"), checkout, {"BASE_REF": "main"}, (tools,))
    assert plan.code == 0, plan.stderr
    assert plan.outputs == {"exit": "0"}
    text = (checkout / "plan.md").read_text()
    assert text.startswith("### Sluice plan against `origin/main`")
    assert "replicas 4 -> 5" in text
    assert plan.summary == text


def test_a_change_with_errors_is_planned_commented_and_then_fails_the_job(checkout: Path, tools: Path) -> None:
    """Editing a released file in place: validate fails, plan still writes its report (exit 1
    recorded, the step itself passes so the comment gets posted), and the last step fails."""
    change_branch(checkout, lambda w: mutate_yaml(w / "releases" / "chat-assistant" / "1.2.0.yaml",
                                                  lambda d: d["bundle"]["generation"].__setitem__("temperature", 0.9)))
    validate = run_step(step_named(PR, "reconciler validate"), checkout, {"BASE_REF": "main"}, (tools,))
    assert validate.code == 1, validate.stdout + validate.stderr
    assert "releases/chat-assistant/1.2.0.yaml" in validate.stdout
    plan = run_step(step_named(PR, "reconciler plan"), checkout, {"BASE_REF": "main"}, (tools,))
    assert plan.code == 0 and plan.outputs == {"exit": "1"}, plan.stderr
    assert "1.2.0.yaml" in (checkout / "plan.md").read_text()
    fail = run_step(step_named(PR, "Fail when the plan found errors"), checkout, {"EXIT": "1"})
    assert fail.code == 1 and fail.stdout.startswith("::error title=Sluice plan::exit 1")


def fake_gh(bin_dir: Path) -> Path:
    """`gh` that logs each call (with the body file it was given) and answers a comment listing by
    running the call's own --jq filter through the real jq over FAKE_GH_COMMENTS."""
    return executable(bin_dir / "gh", f'''#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
call = {{"args": args}}
for i, arg in enumerate(args):
    if arg == "-F" and args[i + 1].startswith("body=@"):
        call["body"] = open(args[i + 1][len("body=@"):], encoding="utf-8").read()
with open(os.environ["FAKE_GH_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(call) + "\\n")
if "--jq" in args:
    subprocess.run(["jq", "-r", args[args.index("--jq") + 1]], input=os.environ["FAKE_GH_COMMENTS"],
                   text=True, check=True)
''')


def post_comment(tmp_path: Path, plan: str, comments: list[dict[str, Any]], *, exit_code: str = "0",
                 head_repo: str = "acme/llm") -> tuple[StepRun, list[dict[str, Any]]]:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (GitHub's runners have it): apt-get install jq")
    bin_dir = tmp_path / "gh-bin"
    bin_dir.mkdir(exist_ok=True)
    fake_gh(bin_dir)
    work = tmp_path / "job"
    work.mkdir(exist_ok=True)
    (work / "plan.md").write_text(plan, encoding="utf-8")
    log = tmp_path / "gh.log"
    run = run_step(step_named(PR, "Post the plan as one sticky PR comment"), work, {
        "GH_TOKEN": "t", "REPO": "acme/llm", "HEAD_REPO": head_repo, "PR": "7", "SHA": "0123abc",
        "RUN_URL": "https://github.example/acme/llm/actions/runs/1", "EXIT": exit_code,
        "FAKE_GH_LOG": str(log), "FAKE_GH_COMMENTS": json.dumps(comments)}, (bin_dir,))
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return run, calls


PLAN = "### Sluice plan against `origin/main`\n\n✅ **Ready to merge** · no traffic moves\n"


def test_the_first_plan_comment_is_created_with_its_marker(tmp_path: Path) -> None:
    run, calls = post_comment(tmp_path, PLAN, [{"id": 11, "user": {"login": "alice"}, "body": "LGTM"}])
    assert run.code == 0, run.stderr
    listing, post = calls
    assert listing["args"][:3] == ["api", "--paginate", "repos/acme/llm/issues/7/comments"]
    assert post["args"][:4] == ["api", "--method", "POST", "repos/acme/llm/issues/7/comments"]
    assert post["body"].startswith(MARKER + "\n" + PLAN)
    assert "Sluice plan for 0123abc" in post["body"]


def test_a_new_push_edits_the_bots_plan_comment_and_no_other(tmp_path: Path) -> None:
    comments = [
        {"id": 21, "user": {"login": "alice"}, "body": MARKER + "\nalice quoting the old plan"},
        {"id": 22, "user": {"login": BOT}, "body": "a comment from another workflow"},
        {"id": 23, "user": {"login": BOT}, "body": MARKER + "\nthe old plan"},
    ]
    run, calls = post_comment(tmp_path, PLAN, comments)
    assert run.code == 0, run.stderr
    assert [c["args"][:4] for c in calls[1:]] == [["api", "--method", "PATCH", "repos/acme/llm/issues/comments/23"]]
    assert PLAN in calls[1]["body"]


def test_a_plan_that_printed_nothing_says_so_in_the_comment(tmp_path: Path) -> None:
    _, calls = post_comment(tmp_path, "", [], exit_code="2")
    assert "The plan printed nothing (exit 2): see the run log." in calls[-1]["body"]


def test_a_plan_too_long_for_a_comment_is_cut_and_points_at_the_summary(tmp_path: Path) -> None:
    _, calls = post_comment(tmp_path, "| row |\n" * 10_000, [])
    body = calls[-1]["body"]
    assert len(body.encode()) < 61_000  # GitHub refuses a comment over 65,536 characters
    assert "cut at 60000 bytes: the whole plan is in the run summary." in body


def test_a_fork_gets_a_notice_and_no_comment(tmp_path: Path) -> None:
    run, calls = post_comment(tmp_path, PLAN, [], head_repo="someone/llm-fork")
    assert run.code == 0 and calls == []
    assert run.stdout.startswith("::notice title=plan comment skipped::")


# --- the reconcile job --------------------------------------------------------------------------------


UNREACHABLE_SUMMARY = (
    "### Sluice reconcile: Prometheus unreachable (exit 3)\n\n"
    "**No rollout in staging was judged**: Prometheus could not be read, so each one holds where it is "
    "(nothing advances, nothing rolls back). Check that Prometheus is up and reachable from this runner "
    "(docs/runbook.md, \"Prometheus unreachable\").\n")


def reconcile_pass(work: Path, tools: Path) -> StepRun:
    return run_step(step_named(RECONCILE, "reconciler reconcile"), work, {"PROMETHEUS_URL": closed_port_url()},
                    (tools,))


def test_a_pass_that_pushes_says_so_and_its_summary_shows_the_decisions(checkout: Path, tools: Path) -> None:
    """prod's standby window ended long ago: the pass retires it (a commit, pushed); staging's two
    rollouts hold, since Prometheus does not answer, so the step fails with exit 3, an error
    annotation and a summary that leads with it, and still says it moved main (main.yml must
    apply the retire). A second pass has nothing to push, and fails the same way."""
    prod = checkout / "environments" / "prod.yaml"
    text = prod.read_text()
    assert '    standby: "1.1.0"' in text
    prod.write_text(text.replace('    standby: "1.1.0"', '    standby_until: 2020-01-01T00:00:00Z\n    standby: "1.1.0"'))
    git(checkout, "commit", "-q", "-am", "prod: standby window over")
    git(checkout, "push", "-q", "origin", "main")

    first = reconcile_pass(checkout, tools)
    assert first.code == 3, first.stderr
    assert first.outputs == {"moved": "true"}
    assert "::error title=Prometheus unreachable (exit 3)::" in first.stdout
    assert first.summary.startswith(UNREACHABLE_SUMMARY)
    head = git(checkout, "rev-parse", "origin/main").strip()
    assert git(checkout, "log", "-1", "--format=%s", head).strip() == "Retire standby chat-assistant 1.1.0 in prod"
    assert git(checkout, "ls-remote", "origin", "main").split()[0] == head
    summary = first.summary
    assert "3 decision(s)" in summary and ", pushed." in summary
    assert "| prod | chat-assistant | 1.1.0 | **retire** |  |  | standby 1.1.0 kept until" in summary
    assert f"| {head[:12]} |" in summary
    assert summary.count("| staging |") == 2 and summary.count("**hold**") == 2

    second = reconcile_pass(checkout, tools)
    assert second.code == 3, second.stderr
    assert second.summary.startswith(UNREACHABLE_SUMMARY)
    assert second.outputs == {"moved": "false"}
    assert "nothing pushed" in second.summary and "**retire**" not in second.summary


def test_a_failing_pass_fails_the_job_with_a_summary_that_says_so(checkout: Path, tools: Path) -> None:
    path = checkout / "environments" / "staging.yaml"
    path.write_text(path.read_text().replace("namespace:", "namespac:"))
    git(checkout, "commit", "-q", "-am", "a typo that reached main")
    git(checkout, "push", "-q", "origin", "main")
    run = reconcile_pass(checkout, tools)
    assert run.code == 1
    assert run.outputs == {"moved": "false"}
    assert run.summary.startswith("### Sluice reconcile failed (exit 1)")


# --- the summary script ---------------------------------------------------------------------------------


def summarise(report: str, code: int = 0) -> str:
    done = subprocess.run([sys.executable, str(SUMMARY), str(code)], input=report, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_summary_keeps_a_table_row_whole_whatever_the_reasons_say() -> None:
    report = {"at": "2026-11-22T10:00:00+00:00", "queries": 4, "pushed": True, "decisions": [{
        "environment": "staging", "model": "chat-assistant", "candidate": "1.3.0", "action": "rollback",
        "stage": 2, "next_stage": None, "weight": 0,
        "reasons": ["latency_p99_ms 4,500 > max 4,000 | over 5m", "line one\nline two <b>"],
        "commit": "0123456789abcdef0123", "incident": "incidents/staging/x.yaml",
        "notifications": [{"target": "slack", "ok": False, "detail": "HTTP 500"}, {"target": "pager", "ok": True,
                                                                                   "detail": ""}]}]}
    text = summarise(json.dumps(report))
    row = next(line for line in text.splitlines() if line.startswith("| staging"))
    assert row == ("| staging | chat-assistant | 1.3.0 | **rollback** | 2 | 0% | latency_p99_ms 4,500 &gt; max 4,000 \\| "
                   "over 5m<br>line one line two &lt;b&gt; | 0123456789ab (incident incidents/staging/x.yaml) |")
    assert row.replace("\\|", "").count("|") == 9  # eight cells
    assert "- chat-assistant in staging: notifying slack failed: HTTP 500" in text
    assert "pager" not in text


def test_the_summary_of_an_advance_shows_both_stages() -> None:
    report = {"at": "t", "queries": 1, "pushed": False, "decisions": [{
        "environment": "e", "model": "m", "candidate": "2.0.0", "action": "advance", "stage": 1, "next_stage": 2,
        "weight": 5, "reasons": []}]}
    assert "| e | m | 2.0.0 | **advance** | 1 → 2 | 5% |  |  |" in summarise(json.dumps(report))


def test_the_summary_says_when_nothing_is_in_flight() -> None:
    text = summarise(json.dumps({"at": "t", "queries": 0, "pushed": False, "decisions": []}))
    assert "0 decision(s)" in text and "No rollout in flight." in text and "|" not in text


def test_the_summary_of_a_pass_that_could_not_read_prometheus_leads_with_it_then_the_decisions() -> None:
    report = {"at": "t", "queries": 1, "pushed": False, "metrics_unreachable": ["staging", "prod"], "decisions": [{
        "environment": "staging", "model": "m", "candidate": "2.0.0", "action": "hold", "stage": 1, "next_stage": 1,
        "weight": 5, "reasons": ["Prometheus unreachable: connection refused"]}]}
    text = summarise(json.dumps(report), 3)
    assert text.startswith("### Sluice reconcile: Prometheus unreachable (exit 3)\n\n"
                           "**No rollout in staging, prod was judged**")
    assert "| staging | m | 2.0.0 | **hold** | 1 | 5% | Prometheus unreachable: connection refused |  |" in text


@pytest.mark.parametrize("report, code", [("", 2), ("not json", 0), ("[]", 0), ('{"at": "t", "decisions": []}', 1),
                                          ("", 3)])
def test_the_summary_of_a_failed_pass_says_it_failed(report: str, code: int) -> None:
    assert summarise(report, code).startswith(f"### Sluice reconcile failed (exit {code})")
