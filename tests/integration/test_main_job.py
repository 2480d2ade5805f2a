"""The main job end to end, and `reconciler report` on real rollouts.

The demo (`python -m reconciler.demo`, the README's first command runs it) plays a canary of the
example's chat-assistant 1.3.0 in prod in a temporary git repository against Debian's Prometheus
on a synthetic history (reconciler/demo/scenario.py): start, two advances, a breach, the
automatic rollback with its incident record, and the HTML report. Played once per module with
the real Prometheus (recording its answers); the recorded fallback must then reach the very same
commits. Its second act (`python -m reconciler.demo.shadow_act`) has the online evaluator's series,
scraped live, roll back a diverging shadow candidate, or shows the evaluator's counts without
Prometheus. `reconciler report` is also run on small rollouts of the rollout-scenario world (staging,
10-minute stages): in flight, rolled back by hand, with Prometheus unreachable, and on bad input.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.rollout_report import report_metrics
from reconciler.demo import recording, scenario
from reconciler.demo.__main__ import main as demo_main
from reconciler.demo.player import RECORDED, Demo, play
from reconciler.demo.shadow_act import play_shadow
from tests.integration.rollout_world import CHAT, World, at, read_log, split_traffic, z
from tests.prometheus_kit import prometheus  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
INCIDENT = "incidents/prod/2026-11-20T113500Z-prod-chat-assistant-1.3.0.yaml"


@dataclass
class Played:
    demo: Demo
    answers: dict[str, Any]  # what the real Prometheus answered, recorded during the play

    @property
    def html(self) -> str:
        return self.demo.report_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Played:
    """The demo against the real Prometheus, once for the module."""
    base = tmp_path_factory.mktemp("main-job")
    demo = play(ROOT, base / "demo", record=base / "answers.json", echo=lambda line: None)
    return Played(demo, recording.load(base / "answers.json"))


def decisions(demo: Demo) -> list[tuple[str, str, int | None, int | None, int | None, tuple[str, ...]]]:
    return [(r.at.strftime("%H:%M"), str(d.action), d.stage, d.next_stage, d.weight, d.reasons)
            for r in demo.passes for d in r.decisions]


def log(demo: Demo) -> list[tuple[str, str, str, str]]:
    """(sha, action, stage, weight) of every commit after the example's own, oldest first."""
    return [(c.sha, c.trailer("Sluice-Action"), c.trailer("Sluice-Stage"), c.trailer("Sluice-Weight"))
            for c in read_log(demo.root, "HEAD~4..HEAD")]


class Page(HTMLParser):
    """The tags, attributes and text of an HTML page, via the standard library's parser."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def charts(html: str) -> dict[str, ET.Element]:
    """metric -> its chart's SVG, parsed as XML."""
    found = {}
    for metric, svg in re.findall(r'<figure class="metric" id="metric-([^"]+)">.*?(<svg.*?</svg>)', html, re.S):
        found[metric] = ET.fromstring(svg)
    return found


def path_points(element: ET.Element) -> list[tuple[float, float]]:
    tokens = element.get("d", "").replace("M", " M").replace("L", " L").split()
    return [(float(tokens[k][1:]), float(tokens[k + 1])) for k in range(0, len(tokens), 2)]


# --- the demo, with the real Prometheus ------------------------------------------------------------------


def test_the_demo_starts_advances_twice_and_rolls_back_on_the_breach(played: Played) -> None:
    demo = played.demo
    assert demo.mode == "prometheus" and demo.fallback_reason is None
    assert decisions(demo) == [
        ("09:05", "advance", 0, 1, 1, ("no gates at this stage", "next: stage 1 (1%)")),
        ("09:35", "wait", 1, 1, 1, ("stage 1 (1%) has run 30m of 1h",)),
        ("10:05", "advance", 1, 2, 5, ("latency_p99_ms 1,100 <= 1.2 x stable 1,000 = 1,200 over 5m",
                                       "ttft_p99_seconds 0.9 <= max 1.5 over 5m", "next: stage 2 (5%)")),
        ("10:35", "wait", 2, 2, 5, ("stage 2 (5%) has run 30m of 4h",)),
        ("11:05", "wait", 2, 2, 5, ("stage 2 (5%) has run 1h of 4h",)),
        ("11:35", "rollback", 2, None, 0, ("error_rate 0.09 > max 0.05 over 5m at stage 2 (5%)",
                                           "traffic back to stable 1.2.0")),
    ]
    assert [entry[1:] for entry in log(demo)] == [
        ("start", "- -> 0", "0 -> 0"), ("advance", "0 -> 1", "0 -> 1"), ("advance", "1 -> 2", "1 -> 5"),
        ("rollback", "2 -> -", "5 -> 0")]
    rollback = log(demo)[-1][0]
    changed = subprocess.run(["git", "show", "--name-only", "--format=", rollback], cwd=demo.root,
                             capture_output=True, text=True, check=True).stdout.split()
    assert changed == ["environments/prod.yaml", INCIDENT]  # the rollback and its record, one commit
    record = YAML(typ="safe").load((demo.root / INCIDENT).read_text(encoding="utf-8"))
    assert [(b["metric"], b["bound"], b["threshold"]) for b in record["breaches"]] == [("error_rate", "max", 0.05)]
    assert load_repository(demo.root).errors == []
    env = YAML(typ="safe").load((demo.root / "environments/prod.yaml").read_text(encoding="utf-8"))
    assert "candidate" not in env["models"]["chat-assistant"]  # traffic is back on 1.2.0


def test_the_demo_report_holds_the_rollback_the_incident_and_a_chart_per_gated_metric(played: Played) -> None:
    html = played.html
    page = Page(html)
    assert "<script" not in html.lower()
    assert not [tag for tag, attrs in page.tags if tag in ("link", "img", "iframe") or "src" in attrs]
    rollback = log(played.demo)[-1][0]
    rows = [attrs for tag, attrs in page.tags if tag == "tr" and "commit" in (attrs.get("class") or "")]
    assert [row["class"] for row in rows] == ["commit commit-start", "commit commit-advance", "commit commit-advance",
                                              "commit commit-rollback"]
    assert f'<code title="{rollback}">{rollback[:12]}</code>' in html
    assert f"<code>{INCIDENT}</code>" in html and "message: error_rate 0.09 &gt; max 0.05 over 5m" in html
    release = load_repository(played.demo.root).repository.release("chat-assistant", "1.3.0")
    assert release is not None
    drawn = charts(html)
    assert list(drawn) == report_metrics(release.rollout)  # one chart per gate or trigger metric
    judged = {"latency_p99_ms", "ttft_p99_seconds", "quality_score", "error_rate", "safety_violation_rate"}
    for metric, svg in drawn.items():
        classes = [(e.get("class") or "") for e in svg.iter()]
        assert "series series-candidate" in classes and "series series-stable" in classes, metric
        assert any(c.startswith("threshold ") for c in classes) == (metric in judged), metric
    # error_rate: the candidate's line rises above the trigger's line, drawn from 09:00 to the rollback
    error_rate = drawn["error_rate"]
    labels = [t.text for t in error_rate.iter(f"{SVG}text")]
    assert "max 0.05 (rollback trigger)" in labels and "stable + 0.005 (stage 2 gate)" in labels
    [trigger] = [g for g in error_rate.iter(f"{SVG}g") if "max 0.05 (rollback trigger)" in
                 (g.findtext(f"{SVG}title") or "")]
    line = path_points(trigger.find(f"{SVG}path"))  # type: ignore[arg-type]
    assert len(line) == 2 and line[0][1] == line[1][1]
    [candidate] = [p for p in error_rate.iter(f"{SVG}path") if p.get("class") == "series series-candidate"]
    assert min(y for _, y in path_points(candidate)) < line[0][1]  # above it (y grows downwards)


def test_the_recording_in_the_repository_is_what_prometheus_answers_today(played: Played) -> None:
    """The fallback replays reconciler/demo/recorded.json: it must not drift from the scenario."""
    assert _series_sorted(played.answers) == _series_sorted(recording.load(RECORDED)), (
        "reconciler/demo/recorded.json is stale: run python -m reconciler.demo --record reconciler/demo/recorded.json")
    assert json.loads(RECORDED.read_text(encoding="utf-8"))["about"].startswith("Prometheus answers")


def _series_sorted(answers: dict) -> dict:
    """Prometheus returns a query's series in no particular order: compare them as sets."""
    return {key: sorted(value, key=lambda series: json.dumps(series, sort_keys=True)) if isinstance(value, list)
            else value for key, value in answers.items()}


def test_the_recorded_fallback_reaches_the_same_decisions_and_commits(played: Played, tmp_path: Path) -> None:
    replayed = play(ROOT, tmp_path / "demo", recorded=True, echo=lambda line: None)
    assert replayed.mode == "recorded"
    assert decisions(replayed) == decisions(played.demo)
    assert log(replayed) == log(played.demo)  # same shas: same files, trailers, dates and identity
    ours, theirs = (re.sub(r'<dt>metrics from</dt><dd>[^<]*</dd>', "", d.report_path.read_text(encoding="utf-8"))
                    for d in (replayed, played.demo))
    assert ours == theirs  # the same page, but for where its series came from


def without_prometheus(tmp_path: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` with only git on PATH: a machine where `prometheus` is not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(subprocess.run(["which", "git"], capture_output=True, text=True,
                                                check=True).stdout.strip())
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env={**env, "PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=120)


def test_without_prometheus_the_demo_says_so_and_plays_from_recorded_values(tmp_path: Path) -> None:
    """As scripts/example.sh runs it, on a machine where `prometheus` is not installed."""
    done = without_prometheus(tmp_path, "reconciler.demo", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    assert ("Prometheus is not available here (prometheus and promtool not found on PATH: install it: apt-get "
            "install -y --no-install-recommends prometheus (as root)).") in done.stdout
    assert "Playing the same rollout from recorded metric values instead" in done.stdout
    assert "$ reconciler reconcile -e prod --at 2026-11-20T11:35:00Z\n" in done.stdout
    assert re.search(r"2026-11-20T11:35:00Z  rollback stage 2 \(5% -> 0%\) +error_rate 0\.09 > max 0\.05 over 5m .*"
                     r"incident incidents/prod/", done.stdout)
    assert (tmp_path / "demo" / "report.html").is_file()
    assert f"Report: {tmp_path / 'demo' / 'report.html'}" in done.stdout


def test_the_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert demo_main(["--out", str(tmp_path), "--recorded"]) == 2
    assert capsys.readouterr().err == (f"python -m reconciler.demo: {tmp_path} is not empty: give --out a new or "
                                       "empty directory\n")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# --- reconciler report on small rollouts -----------------------------------------------------------------


RAMP = {at(1): 1, at(12): 5}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World.create(tmp_path, monkeypatch)


def report(world: World, out: Path, *extra: str) -> Any:
    return world.cli("report", CHAT, str(world.root), "-e", "staging", "--out", str(out), *extra)


def test_report_of_a_rollout_in_flight(world: World, prometheus, tmp_path: Path) -> None:  # noqa: F811
    world.serve(prometheus, split_traffic(CHAT, "1.2.0", "1.3.0", RAMP, start=at(-15), end=at(30),
                                          latency_p99_ms=850.0, ttft_p99_seconds=0.9))
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    assert world.pass_at(at(1)).decision["action"] == "advance"
    assert world.pass_at(at(12)).decision["action"] == "advance"
    out = tmp_path / "report.html"
    run = report(world, out, "--prometheus", world.prometheus_url or "", "--until", z(at(20)))
    assert (run.code, run.err) == (0, "")
    assert run.out.splitlines()[:2] == [
        f"wrote {out}", "chat-assistant 1.3.0 in staging: in flight at stage 2 (5%) since 2026-11-22T10:12:00Z."]
    html = out.read_text(encoding="utf-8")
    assert html.count('<tr class="commit commit-') == 3
    drawn = charts(html)
    assert set(drawn) == {"latency_p99_ms", "ttft_p99_seconds", "quality_score", "error_rate",
                          "safety_violation_rate", "user_satisfaction"}
    assert "period shown</dt><dd>2026-11-22T09:50:00Z to 2026-11-22T10:20:00Z" in html  # 10 minutes' lead
    latency = [t.text for t in drawn["latency_p99_ms"].iter(f"{SVG}text")]
    assert "1.2 x stable (stage 1 gate)" in latency and "max 4,000 (rollback trigger)" in latency


def test_report_with_prometheus_unreachable_still_writes_the_commits_and_says_why(
        world: World, tmp_path: Path) -> None:
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    assert world.rollback(CHAT, "users report <garbled> answers", at(5)).code == 0
    port = _closed_port()
    out = tmp_path / "report.html"
    run = report(world, out, "--prometheus", f"http://127.0.0.1:{port}")
    assert run.code == 0
    assert run.err == (f"reconciler report: warning: the page has no metric charts: cannot reach Prometheus at "
                       f"http://127.0.0.1:{port}: connection refused\n")
    html = out.read_text(encoding="utf-8")
    assert f"No metric charts: cannot reach Prometheus at http://127.0.0.1:{port}: connection refused" in html
    assert "Rolled back at 2026-11-22T10:05:00Z: manual: users report &lt;garbled&gt; answers." in html
    assert html.count('<tr class="commit commit-') == 2
    assert "<code>incidents/staging/2026-11-22T100500Z-staging-chat-assistant-1.3.0.yaml</code>" in html


def test_report_picks_the_latest_rollout_started_by_until(world: World, tmp_path: Path) -> None:
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    assert world.rollback(CHAT, "first try", at(5)).code == 0
    assert world.start(CHAT, "1.3.0", at(30)).code == 0
    unreachable = ("--prometheus", f"http://127.0.0.1:{_closed_port()}")
    first = report(world, tmp_path / "first.html", *unreachable, "--until", z(at(20)))
    latest = report(world, tmp_path / "latest.html", *unreachable)
    assert first.code == latest.code == 0
    assert first.out.splitlines()[1] == ("chat-assistant 1.3.0 in staging: rolled back at 2026-11-22T10:05:00Z: "
                                         "manual: first try.")
    assert "  2. 2026-11-22T10:05:00Z rollback" in first.out and "2026-11-22T10:30:00Z" not in first.out
    assert latest.out.splitlines()[1].startswith("chat-assistant 1.3.0 in staging: in flight at stage 0 (0%) since "
                                                 "2026-11-22T10:30:00Z")
    assert latest.out.count("\n  1. ") == 1 and "  2. " not in latest.out


@pytest.mark.parametrize(("args", "message"), [
    (("code-completion", "-e", "staging"), "no rollout of code-completion in staging: the history of "
     "environments/staging.yaml has no commit with `Sluice-Action: start`"),
    (("chat-assistant", "-e", "nowhere"), "no environments/nowhere.yaml (known: prod, staging)"),
    (("chat-assistant", "-e", "staging", "--since", "2026-11-22T12:00:00Z", "--until", "2026-11-22T11:00:00Z"),
     "--since 2026-11-22T12:00:00+00:00 is not before --until 2026-11-22T11:00:00+00:00"),
    (("chat-assistant", "-e", "staging", "--until", "2026-11-01T00:00:00Z"),
     "no rollout of chat-assistant in staging at or before 2026-11-01T00:00:00+00:00"),
])
def test_report_usage_errors_exit_2_and_write_nothing(world: World, tmp_path: Path, args: tuple[str, ...],
                                                      message: str) -> None:
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    out = tmp_path / "report.html"
    run = world.cli("report", *args, str(world.root), "--out", str(out), "--prometheus", "http://127.0.0.1:1")
    assert run.code == 2
    assert run.err.startswith(f"reconciler report: {message}"), run.err
    assert not out.exists()


def test_report_into_a_missing_folder_or_outside_git_exits_2(world: World, tmp_path: Path) -> None:
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    run = report(world, tmp_path / "no" / "such" / "report.html", "--prometheus", "http://127.0.0.1:1")
    assert (run.code, run.err) == (2, f"reconciler report: cannot write {tmp_path / 'no/such/report.html'}: "
                                      "No such file or directory\n")
    plain = tmp_path / "plain"
    (plain / "environments").mkdir(parents=True)
    run = world.cli("report", CHAT, str(plain), "-e", "staging", "--out", str(tmp_path / "r.html"))
    assert run.code == 2 and run.err.startswith(f"reconciler report: {plain} must be a git checkout with the "
                                                "rollout's commits: `git rev-parse --verify HEAD^{commit}` failed")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_scenario_times_fit_the_history() -> None:
    """The history covers every pass's look-back and the report's period (10 minutes each side)."""
    first, last = scenario.HISTORY
    assert first <= scenario.START - timedelta(minutes=15)
    assert last >= scenario.PASSES[-1].at + timedelta(minutes=15)


# --- the shadow act: the evaluator's series deciding a shadow stage ---------------------------------------


def test_the_shadow_act_rolls_back_the_diverging_candidate_on_the_evaluators_series(tmp_path: Path) -> None:
    lines: list[str] = []
    act = play_shadow(ROOT, tmp_path / "act", echo=lines.append)
    text = "\n".join(lines)
    assert act.mode == "prometheus" and act.report is not None
    [decision] = act.report.decisions
    assert (str(decision.action), decision.reasons) == ("rollback", (
        "shadow_divergence_rate 0.4167 > max 0.3 over 5m at stage 0 (0%, mirroring 100%)",
        "traffic back to stable 1.2.0"))
    # the numbers compared, side by side, as the evaluator counted them
    assert re.search(r"samples +96 +96\n", text) and re.search(r"divergent from stable's answer +- +40 of 96 \(0\.42\)",
                                                              text)
    assert re.search(r"flagged unsafe by the classifier +0 of 96 \(0\.00\) +0 of 96 \(0\.00\)", text)
    assert re.search(r"\$ reconciler reconcile -e staging --at \S+Z --prometheus http://127\.0\.0\.1:\d+\n", text)
    assert [(c.trailer("Sluice-Action"), c.trailer("Sluice-Stage")) for c in read_log(act.root, "HEAD~2..HEAD")] == [
        ("start", "- -> 0"), ("rollback", "0 -> -")]
    assert load_repository(act.root).errors == []


def test_without_prometheus_the_shadow_act_says_so_and_shows_the_evaluators_counts(tmp_path: Path) -> None:
    done = without_prometheus(tmp_path, "reconciler.demo.shadow_act", "--out", str(tmp_path / "act"))
    assert done.returncode == 0, done.stderr
    assert "Prometheus is not available here (prometheus and promtool not found on PATH" in done.stdout
    assert re.search(r"divergent from stable's answer +- +40 of 96 \(0\.42\)", done.stdout)
    assert ("from the evaluator's own counts, shadow_divergence_rate is 0.4167 (the release's gate: max 0.2; its "
            "trigger: max 0.3)") in done.stdout
    assert "$ reconciler reconcile" not in done.stdout
