"""Sample-size planning through the CLI: `status` and `plan` show, per stage with statistical gates,
the candidate requests needed and how long they take at the declared traffic; `validate` warns
(file, line, YAML path, fix) when a stage cannot reach its evidence before its progress deadline.

The example's chat-assistant 1.3.0 is given statistical gates on stage 1 (1%, latency p99 at most
1.2x stable, 95%) and stage 2 (5%, error rate at most +0.5 pp, 95%), and staging declares
`expected_rps`. The numbers come from `judge.requests_needed` (its own tests check them); what is
under test here is that every face shows the same plan and the time is requests / (rps x share).
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from reconciler.cli.main import main
from reconciler.core.judge import requests_needed
from tests.conftest import ROOT
from tests.integration.rollout_world import edit_yaml, git, hermetic_git
from tests.prometheus_kit import STEP, PrometheusServer, Traffic, openmetrics, prometheus, utc  # noqa: F401

R13, STAGING = "releases/chat-assistant/1.3.0.yaml", "environments/staging.yaml"
AT = "2026-11-21T09:30:00Z"
LATENCY = requests_needed("max_ratio_to_stable", 1.2, 0.95, "histogram", 0.99, None, 0.01)
ERRORS = requests_needed("max_increase_over_stable", 0.005, 0.95, "proportion", None, None, 0.05)


def statistical_gates(root: Path) -> None:
    def change(doc) -> None:  # type: ignore[no-untyped-def]
        stages = doc["rollout"]["stages"]
        stages[1]["gates"][0]["confidence"] = 0.95
        stages[2]["gates"][1]["confidence"] = 0.95
    edit_yaml(root / R13, change)


def expected_rps(root: Path, rps: float) -> None:
    edit_yaml(root / STAGING, lambda doc: doc["models"]["chat-assistant"].__setitem__("expected_rps", rps))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in ("releases", "environments"):
        shutil.copytree(ROOT / folder, root / folder)
    statistical_gates(root)
    return root


def test_the_plan_is_what_the_judge_needs() -> None:
    assert LATENCY is not None and ERRORS is not None and LATENCY != ERRORS


def test_status_shows_requests_and_time_per_statistical_stage(capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    expected_rps(repo, 20)  # 1% of 20 req/s: 0.2 req/s; 5%: 1 req/s
    code, out, err = run(capsys, "status", str(repo), "--at", AT)
    assert (code, err) == (0, "")
    latency_minutes, error_minutes = round(LATENCY / 0.2 / 60), round(ERRORS / 1.0 / 60)
    assert (f"    evidence  stage 1 (1%): latency_p99_ms max_ratio_to_stable 1.2 at 95%: {LATENCY:,} candidate "
            f"requests, {_duration(latency_minutes)} at 0.20 req/s (declared)  <- now") in out.splitlines()
    assert (f"    evidence  stage 2 (5%): error_rate max_increase_over_stable 0.005 at 95%: {ERRORS:,} candidate "
            f"requests, {_duration(error_minutes)} at 1.00 req/s (declared)") in out.splitlines()
    assert out.count("    evidence  ") == 2  # stages without statistical gates are not planned

    code, out, _ = run(capsys, "status", str(repo), "--at", AT, "--format", "json")
    chat = {m["model"]: m for m in json.loads(out)["environments"][1]["models"]}["chat-assistant"]
    assert [(s["stage"], s["weight"], [g["requests_needed"] for g in s["gates"]]) for s in chat["evidence"]] == \
        [(1, 1, [LATENCY]), (2, 5, [ERRORS])]
    latency = chat["evidence"][0]["gates"][0]
    assert (latency["candidate_rps"], latency["rate_source"]) == (pytest.approx(0.2), "declared")
    assert latency["seconds_needed"] == round(LATENCY / 0.2)


def test_status_without_declared_traffic_says_how_to_plan_the_time(capsys: pytest.CaptureFixture[str],
                                                                   repo: Path) -> None:
    code, out, _ = run(capsys, "status", str(repo), "--at", AT)
    assert code == 0
    assert (f"    evidence  stage 1 (1%): latency_p99_ms max_ratio_to_stable 1.2 at 95%: {LATENCY:,} candidate "
            "requests (no request rate observed or declared: set models.<model>.expected_rps)  <- now") in out


def test_validate_warns_when_a_stage_cannot_reach_its_evidence_before_its_deadline(
        capsys: pytest.CaptureFixture[str], repo: Path) -> None:
    """Stage 1's deadline is 3 x 1h: at 0.2 req/s the latency gate needs longer; stage 2's (12h) is enough."""
    expected_rps(repo, 20)
    assert LATENCY / 0.2 > 3 * 3600 and ERRORS / 1.0 < 12 * 3600
    code, out, _ = run(capsys, "validate", str(repo))
    assert code == 0  # a warning, not an error
    warnings = [line for line in out.splitlines() if "[evidence-in-time]" in line]
    assert len(warnings) == 1
    line = (repo / R13).read_text().splitlines().index(
        "        - {metric: latency_p99_ms, max_ratio_to_stable: 1.2, confidence: 0.95}") + 1
    assert warnings[0].startswith(f"{R13}:{line}:")
    assert (f"warning: rollout.stages[1].gates[0]: staging: chat-assistant 1.3.0 stage 1 (1%) gate latency_p99_ms "
            f"max_ratio_to_stable 1.2 at 95% needs {LATENCY:,} candidate requests") in warnings[0]
    assert "longer than the stage's progress deadline 3h; fix: give stage 1 a longer progress_deadline" in warnings[0]
    assert "raise models.chat-assistant.expected_rps in environments/staging.yaml" in warnings[0]


@pytest.mark.parametrize("rps", [None, 1000])
def test_no_warning_without_declared_traffic_or_with_enough(capsys: pytest.CaptureFixture[str], repo: Path,
                                                            rps: float | None) -> None:
    if rps is not None:
        expected_rps(repo, rps)
    code, out, _ = run(capsys, "validate", str(repo))
    assert code == 0 and "evidence-in-time" not in out


def test_plan_shows_the_evidence_each_stage_needs(capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_git(monkeypatch, tmp_path)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base", when=datetime(2026, 11, 22, tzinfo=timezone.utc))
    expected_rps(repo, 20)
    code, out, err = run(capsys, "plan", str(repo), "--base", "main", "--no-program")
    assert code == 0, err
    assert (f"- staging / chat-assistant evidence, stage 1 (1%): latency_p99_ms max_ratio_to_stable 1.2 at 95%: "
            f"{LATENCY:,} candidate requests, {_duration(round(LATENCY / 0.2 / 60))} at 0.20 req/s (declared)") in out
    assert "[evidence-in-time]" in out  # the new warning, as the PR comment shows it
    code, out, _ = run(capsys, "plan", str(repo), "--base", "main", "--no-program", "--format", "text")
    assert re.search(rf"^    evidence, stage 2 \(5%\): error_rate .*: {ERRORS:,} candidate requests", out, re.MULTILINE)
    code, out, _ = run(capsys, "plan", str(repo), "--base", "main", "--no-program", "--format", "json")
    chat = json.loads(out)["environments"][0]["models"][0]
    assert [s["stage"] for s in chat["evidence"]] == [1, 2]
    assert chat["evidence"][1]["gates"][0]["seconds_needed"] == ERRORS


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest else "")


def test_status_observe_plans_the_current_stage_at_the_observed_rate(
        capsys: pytest.CaptureFixture[str], repo: Path,
        prometheus: Callable[[str], PrometheusServer]) -> None:  # noqa: F811  (the fixture)
    """The candidate serves 0.5 req/s since its stage began (09:00); 1% of the declared 20 req/s
    would be 0.2. The current stage uses what was observed, later stages the declared rate."""
    expected_rps(repo, 20)
    server = prometheus(openmetrics([
        Traffic("chat-assistant", "1.2.0", utc("2026-11-21T08:00"), utc(AT) + STEP, rps=25),
        Traffic("chat-assistant", "1.3.0", utc("2026-11-21T08:00"), utc(AT) + STEP, rps=0.5),
    ]))
    code, out, err = run(capsys, "status", str(repo), "--at", AT, "--observe", "--prometheus", server.url)
    assert (code, err) == (0, ""), err
    assert (f"stage 1 (1%): latency_p99_ms max_ratio_to_stable 1.2 at 95%: {LATENCY:,} candidate requests, "
            f"{_duration(round(LATENCY / 0.5 / 60))} at 0.50 req/s (observed)  <- now") in out
    assert f"{ERRORS:,} candidate requests, {_duration(round(ERRORS / 1.0 / 60))} at 1.00 req/s (declared)" in out
