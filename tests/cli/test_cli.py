"""The `reconciler` CLI, called in-process: exit codes, text and JSON output, status and schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.core.schemas import schema_documents

from ..conftest import ROOT, mutate_yaml

REL = "releases/chat-assistant/1.3.0.yaml"
PROD = "environments/prod.yaml"
STAGING = "environments/staging.yaml"

FINDING_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning): "
                          r"(?:(?P<path>[^ ]+): )?(?P<message>.+); fix: (?P<fix>.+) \[(?P<rule>[a-z-]+)\]$")
SUMMARY = re.compile(r"^(ok|FAILED): (\d+) files? checked, (\d+) errors?, (\d+) warnings?$")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def break_two_files(repo: Path, environment: str = PROD) -> None:
    text = (repo / REL).read_text()
    (repo / REL).write_text(text.replace("gpus: 4", "gpus: four"))
    text = (repo / environment).read_text()
    (repo / environment).write_text(text.replace("namespace: llm-serving", "namespac: llm-serving"))


def add_warning(repo: Path) -> None:
    mutate_yaml(repo / PROD, lambda data: data["models"]["code-completion"].__setitem__("stage", 2))


# --- validate ----------------------------------------------------------------------------------------


def test_validate_a_clean_repository_exits_0(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, err = run(capsys, "validate", str(example_repo))
    assert code == 0
    assert out.strip() == "ok: 7 files checked, 0 errors, 0 warnings"
    assert err == ""


def test_validate_defaults_to_the_current_directory(capsys: pytest.CaptureFixture[str], example_repo: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(example_repo)
    assert run(capsys, "validate")[0] == 0
    break_two_files(example_repo)
    assert run(capsys, "validate")[0] == 1


def test_validate_with_warnings_only_exits_0(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    add_warning(example_repo)
    code, out, _ = run(capsys, "validate", str(example_repo))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[-1] == "ok: 7 files checked, 0 errors, 1 warning"
    match = FINDING_LINE.match(lines[0])
    assert match, lines[0]
    assert match.group("file", "severity", "path", "rule") == (PROD, "warning", "models.code-completion.stage", "stage")


def test_validate_text_output_has_one_line_per_finding_then_a_summary(
        capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    break_two_files(example_repo)
    code, out, err = run(capsys, "validate", str(example_repo))
    assert code == 1 and err == ""
    *findings, summary = out.strip().splitlines()
    assert summary == "FAILED: 7 files checked, 2 errors, 0 warnings"
    assert SUMMARY.match(summary)
    parsed = [FINDING_LINE.match(line) for line in findings]
    assert all(parsed), findings
    assert [m.group("file", "line", "column", "severity", "path", "rule") for m in parsed] == [
        (PROD, "8", "1", "error", "namespac", "schema"),
        (REL, "43", "5", "error", "bundle.serving.gpus", "schema"),
    ]
    assert parsed[0].group("message") == "unknown field `namespac`"
    assert parsed[0].group("fix").startswith("did you mean `namespace`?")


def test_validate_json_output(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    break_two_files(example_repo, STAGING)
    add_warning(example_repo)  # in prod, which still loads
    code, out, err = run(capsys, "validate", str(example_repo), "--format", "json")
    assert code == 1 and err == ""
    report = json.loads(out)
    assert set(report) == {"ok", "files", "errors", "warnings"}
    assert report["ok"] is False and report["files"] == 7
    for entry in report["errors"] + report["warnings"]:
        assert {"file", "line", "path", "rule", "message"} <= set(entry)
        assert isinstance(entry["line"], int) and entry["message"]
    assert [(e["file"], e["line"], e["column"], e["path"], e["rule"], e["severity"]) for e in report["errors"]] == [
        (STAGING, 8, 1, "namespac", "schema", "error"),
        (REL, 43, 5, "bundle.serving.gpus", "schema", "error"),
    ]
    assert "valid integer" in report["errors"][1]["message"]
    assert [(w["file"], w["path"], w["rule"], w["severity"]) for w in report["warnings"]] == [
        (PROD, "models.code-completion.stage", "stage", "warning")]


def test_validate_json_output_of_a_clean_repository(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, _ = run(capsys, "validate", str(example_repo), "--format=json")
    assert code == 0
    assert json.loads(out) == {"ok": True, "files": 7, "errors": [], "warnings": []}


def test_validate_reports_a_yaml_error_without_a_path(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    (example_repo / STAGING).write_bytes(b"cluster: [\n")
    code, out, _ = run(capsys, "validate", str(example_repo))
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(f"{STAGING}:2:1: error: YAML syntax error: ")
    assert first.endswith("[yaml]")


# --- usage errors: exit 2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "in_stderr"), [
    pytest.param(["frobnicate"], "unknown command 'frobnicate'", id="an unknown command"),
    pytest.param(["validate", "--format", "xml"], "invalid choice: 'xml'", id="a bad --format"),
    pytest.param(["status", "--format", "yaml"], "invalid choice: 'yaml'", id="a bad --format for status"),
    pytest.param(["validate", "--strict"], "unrecognized arguments: --strict", id="an unknown option"),
    pytest.param(["validate", "a", "b"], "unrecognized arguments: b", id="two paths"),
    pytest.param([], "commands:", id="no command at all (help goes to stderr)"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], in_stderr: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert in_stderr in err
    assert out == ""


@pytest.mark.parametrize("command", ["validate", "status"])
@pytest.mark.parametrize(("make", "in_stderr"), [
    pytest.param(lambda p: p / "missing", "is not a directory", id="a path that does not exist"),
    pytest.param(lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "is not a directory",
                 id="a file"),
    pytest.param(lambda p: p, "not a Sluice repository", id="a directory that is not a repository"),
])
def test_a_path_that_is_not_a_repository_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 command: str, make, in_stderr: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    code, out, err = run(capsys, command, str(path))
    assert code == 2
    assert err.startswith(f"reconciler {command}: {path}")
    assert in_stderr in err
    assert out == ""


# --- help ---------------------------------------------------------------------------------------------


def test_help_exits_0_and_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--help")
    assert code == 0 and err == ""
    assert "usage: reconciler COMMAND" in out
    for command in ("validate", "status", "schema"):
        assert re.search(rf"^  {command}\s+\S", out, re.MULTILINE), command


@pytest.mark.parametrize("command", ["validate", "status", "schema"])
def test_command_help_exits_0(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"usage: reconciler {command}" in out


# --- status -------------------------------------------------------------------------------------------


def test_status_text(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, err = run(capsys, "status", str(example_repo))
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "prod  (cluster llm-prod, us-east-1, protected)"
    assert "staging  (cluster llm-staging, us-east-1)" in out.splitlines()
    assert "    traffic   stable 1.2.0 99%, candidate 1.3.0 1%" in out
    assert re.search(r"^    rollout   canary\b.*\bstage 1/5\b.*since 2026-11-21 09:00 UTC, \S+ ago$", out, re.MULTILINE)
    assert re.search(r"^    rollout   blue-green\b.*\bstage 0/1\b.*since 2026-11-22 07:30 UTC, \S+ ago$", out, re.MULTILINE)
    assert out.count("    rollout   ") == 2  # prod has no candidate
    assert "    traffic   stable 1.2.0 100%, standby 1.1.0 0%" in out
    assert "  pool a10g: 2 of 2 g5.12xlarge nodes needed with every live version running" in out


def test_status_as_of_a_time_says_how_long_and_what_is_next(capsys: pytest.CaptureFixture[str],
                                                             example_repo: Path) -> None:
    code, out, _ = run(capsys, "status", str(example_repo), "--at", "2026-11-22T08:00:00Z")
    assert code == 0
    assert "    rollout   canary, stage 1/5 (1% to the candidate), since 2026-11-21 09:00 UTC, 23h ago" in out
    assert ("    next      1,000 requests, then latency_p99_ms max_ratio_to_stable 1.2, ttft_p99_seconds max 1.5 "
            "-> stage 2 (5%)") in out
    assert "    rollout   blue-green, stage 0/1 (0% to the candidate), since 2026-11-22 07:30 UTC, 30m ago" in out
    assert "    standby   1.1.0, kept until removed by hand" in out


def test_status_says_how_long_is_left_before_each_stage_s_progress_deadline(capsys: pytest.CaptureFixture[str],
                                                                            example_repo: Path) -> None:
    """staging's chat-assistant is at stage 1 (min 1h: deadline 3h) since 09:00 the day before, past
    its deadline at 08:00; code-completion's blue/green stage 0 (min 1h: 3h) began at 07:30."""
    code, out, _ = run(capsys, "status", str(example_repo), "--at", "2026-11-22T08:00:00Z")
    assert code == 0
    assert ("    deadline  3h after the stage began (2026-11-21 12:00 UTC), passed 20h ago: hold and page on-call "
            "once") in out
    assert ("    deadline  3h after the stage began (2026-11-22 10:30 UTC), 2h30m left, then hold and page on-call "
            "once") in out
    code, out, _ = run(capsys, "status", str(example_repo), "--format", "json", "--at", "2026-11-22T08:00:00Z")
    staging = json.loads(out)["environments"][1]
    chat, code_completion = staging["models"]
    assert (chat["progress_deadline_seconds"], chat["deadline_left_seconds"], chat["on_progress_deadline"]) == \
        (3 * 3600, -20 * 3600, "hold")
    assert code_completion["deadline_left_seconds"] == 2 * 3600 + 30 * 60


def test_status_json(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    code, out, _ = run(capsys, "status", str(example_repo), "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert [e["name"] for e in report["environments"]] == ["prod", "staging"]
    staging = report["environments"][1]
    assert (staging["cluster"], staging["region"], staging["protected"]) == ("llm-staging", "us-east-1", False)
    chat = {m["model"]: m for m in staging["models"]}["chat-assistant"]
    assert chat["stable"] == "1.2.0" and chat["candidate"] == "1.3.0" and chat["standby"] is None
    assert (chat["strategy"], chat["stage"], chat["last_stage"]) == ("canary", 1, 5)
    assert chat["weights"] == {"1.2.0": 99, "1.3.0": 1}
    assert chat["stage_started_at"] == "2026-11-21T09:00:00+00:00"
    assert chat["time_in_stage_seconds"] > 0 and chat["next_gate"].endswith("-> stage 2 (5%)")
    assert {p["name"]: (p["nodes_needed"], p["max_nodes"]) for p in staging["pools"]} == {"a100": (2, 3), "a10g": (2, 2)}


def test_status_text_shows_times_in_utc(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    path = example_repo / STAGING
    path.write_text(path.read_text().replace("2026-11-21T09:00:00Z", "2026-11-21T10:00:00+01:00"))
    code, out, _ = run(capsys, "status", str(example_repo))
    assert code == 0
    assert "since 2026-11-21 09:00 UTC" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_status_of_a_broken_repository_prints_the_errors_and_exits_1(
        capsys: pytest.CaptureFixture[str], example_repo: Path, fmt: str) -> None:
    break_two_files(example_repo)
    code, out, err = run(capsys, "status", str(example_repo), "--format", fmt)
    assert code == 1
    assert out == ""  # no summary of a repository that does not load
    lines = err.strip().splitlines()
    assert [FINDING_LINE.match(line).group("file") for line in lines[:-1]] == [PROD, REL]  # type: ignore[union-attr]
    assert lines[-1].startswith("reconciler status: 2 error(s)")


def test_status_ignores_warnings(capsys: pytest.CaptureFixture[str], example_repo: Path) -> None:
    add_warning(example_repo)
    code, out, err = run(capsys, "status", str(example_repo))
    assert code == 0 and err == ""
    assert out.startswith("prod  ")


# --- schema -------------------------------------------------------------------------------------------


def test_schema_writes_both_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "nested" / "schemas"
    code, out, _ = run(capsys, "schema", "--out", str(out_dir))
    assert code == 0
    expected = schema_documents()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(expected) == [
        "environment.schema.json", "release.schema.json"]
    for name, text in expected.items():
        assert (out_dir / name).read_text(encoding="utf-8") == text
        assert json.loads(text)["$id"].endswith(name)
        assert f"wrote {out_dir / name}" in out


def test_schema_check_fails_when_stale_and_passes_when_fresh(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    code, _, err = run(capsys, "schema", "--out", str(tmp_path), "--check")
    assert code == 1
    assert err.count("stale; run `reconciler schema`") == 2
    assert list(tmp_path.iterdir()) == []  # --check writes nothing

    assert run(capsys, "schema", "--out", str(tmp_path))[0] == 0
    code, out, err = run(capsys, "schema", "--out", str(tmp_path), "--check")
    assert (code, err) == (0, "")
    assert "up to date" in out

    stale = tmp_path / "release.schema.json"
    stale.write_text(stale.read_text().replace('"Release"', '"Old"'), encoding="utf-8")
    code, _, err = run(capsys, "schema", "--out", str(tmp_path), "--check")
    assert code == 1
    assert f"{stale}: stale" in err and "environment.schema.json" not in err
    assert '"Old"' in stale.read_text()  # still not rewritten

    assert run(capsys, "schema", "--out", str(tmp_path))[0] == 0
    assert stale.read_text() == schema_documents()["release.schema.json"]


def test_schema_out_that_is_a_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "schema", "--out", str(blocker))
    assert code == 2
    assert err.startswith("reconciler schema: ")


# --- as a program -------------------------------------------------------------------------------------


def test_python_dash_m_reconciler(example_repo: Path) -> None:
    break_two_files(example_repo)
    child = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(example_repo), "--format", "json"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stderr
    assert child.stderr == ""
    report = json.loads(child.stdout)
    assert report["ok"] is False
    assert [e["file"] for e in report["errors"]] == [PROD, REL]
