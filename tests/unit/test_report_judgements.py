"""The report's statistical charts: the judge run again at each step of a stage on the evidence
since the stage began (`judgement_points`), and its SVG: the estimate, the interval band, the
limit line and one verdict point per step, each with the judge's message."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from reconciler.core.judge import Verdict, judge
from reconciler.core.observations import EvidenceHistory, VersionCounts
from reconciler.core.release import Gate, RollbackTrigger, Rollout, Stage
from reconciler.core.rollout_report import (
    HEIGHT,
    TOP,
    JudgementSeries,
    Scale,
    StageSpan,
    judged_rules,
    judgement_chart,
    judgement_points,
    render_html,
    value_domain,
)

from .test_rollout_report import COMMITS, SVG, at, report

WINDOW = timedelta(minutes=5)
CANDIDATE, STABLE = ("chat-assistant", "1.3.0"), ("chat-assistant", "1.2.0")
STAGE_2 = StageSpan(2, at(65), at(155))  # the demo's 5% stage, rolled back at 11:35


def errors(candidate_rate: float) -> EvidenceHistory:
    """5-minute windows from 9:00 to 11:45: the candidate 1,000 requests each, the stable 19,000 at 1%."""
    ends = [at(5 * k) for k in range(1, 34)]
    return EvidenceHistory("proportion", {
        CANDIDATE: tuple((end, VersionCounts(trials=1000, events=1000 * candidate_rate)) for end in ends),
        STABLE: tuple((end, VersionCounts(trials=19000, events=190)) for end in ends),
    })


def points(history: EvidenceHistory, span: StageSpan = STAGE_2, most: int = 120):  # type: ignore[no-untyped-def]
    return judgement_points(history, None, "error_rate", "max_increase_over_stable", 0.005, 0.95, CANDIDATE, STABLE,
                            span, WINDOW, most)


def test_each_step_is_judged_on_the_windows_from_the_stage_start_to_that_step() -> None:
    judged = points(errors(0.03))
    # windows wholly inside 10:05-11:35 end at 10:10, 10:15, ..., 11:35
    assert [when for when, _ in judged] == [at(m) for m in range(70, 156, 5)]
    third = judged[2][1]
    assert third == judge("error_rate", "max_increase_over_stable", 0.005, 0.95, "proportion", None,
                          VersionCounts(trials=3000, events=90), VersionCounts(trials=57000, events=570))
    widths = [j.high - j.low for _, j in judged]  # type: ignore[operator]
    assert widths == sorted(widths, reverse=True)  # the interval narrows as evidence accumulates
    assert all(j.estimate == pytest.approx(0.02) for _, j in judged)
    assert judged[0][1].verdict is Verdict.INCONCLUSIVE and judged[-1][1].verdict is Verdict.WORSE


def test_at_most_the_given_number_of_steps_always_the_last() -> None:
    judged = points(errors(0.01), most=5)
    assert len(judged) == 5 and judged[-1][0] == at(155)


def test_statistical_gates_apply_in_their_stage_and_triggers_in_every_stage() -> None:
    rollout = Rollout(stages=[
        Stage(weight=0),
        Stage(weight=1, gates=[Gate(metric="latency_p99_ms", max_ratio_to_stable=1.1, confidence=0.95),
                               Gate(metric="ttft_p99_seconds", max=1.5)]),
        Stage(weight=5),
        Stage(weight=100)],
        rollback_triggers=[RollbackTrigger(metric="error_rate", max_increase_over_stable=0.005, confidence=0.99),
                           RollbackTrigger(metric="error_rate", max=0.05)])
    rules = judged_rules(rollout, list(COMMITS), at(165))
    assert [(m, b, limit, c, source, [s.stage for s in spans]) for m, b, limit, c, source, spans in rules] == [
        ("latency_p99_ms", "max_ratio_to_stable", 1.1, 0.95, "stage 1 gate", [1]),
        ("error_rate", "max_increase_over_stable", 0.005, 0.99, "rollback trigger", [0, 1, 2]),
    ]


def test_the_chart_draws_the_interval_the_estimate_the_limit_and_a_verdict_per_step() -> None:
    judged = points(errors(0.03))
    series = JudgementSeries("error_rate", "max_increase_over_stable", 0.005, 0.95, "rollback trigger", (judged,))
    svg = judgement_chart(report(), series)
    root = ET.fromstring(svg)
    values = [v for _, j in judged for v in (j.estimate, j.low, j.high)]
    lo, hi = value_domain(values + [0.005])
    y = Scale(lo, hi, HEIGHT - 30, TOP)

    [limit] = [e for e in root.iter() if "limit" in (e.get("class") or "").split()]
    ys = [float(v) for v in re.findall(r"[ML][\d.]+ ([\d.]+)", limit.find(f"{SVG}path").get("d"))]
    assert ys == [pytest.approx(y(0.005), abs=0.06)] * 2
    assert limit.find(f"{SVG}text").text == "stable + 0.005 at 95%"

    [band] = [e for e in root.iter(f"{SVG}path") if e.get("class") == "interval"]
    corners = [float(v) for v in re.findall(r"[ML][\d.]+ ([\d.]+)", band.get("d"))]
    assert len(corners) == 2 * len(judged)  # the highs forward, the lows back
    assert corners[0] == pytest.approx(y(judged[0][1].high), abs=0.06)
    assert corners[-1] == pytest.approx(y(judged[0][1].low), abs=0.06)

    dots = [e for e in root.iter(f"{SVG}circle") if "verdict" in (e.get("class") or "").split()]
    assert len(dots) == len(judged)
    assert dots[0].get("class") == "verdict verdict-inconclusive" and dots[-1].get("class") == "verdict verdict-worse"
    assert dots[-1].find(f"{SVG}title").text.endswith(judged[-1][1].message)
    assert "worse" in judged[-1][1].message


def test_the_page_has_a_section_per_statistical_rule_and_says_when_evidence_is_missing() -> None:
    judged = points(errors(0.03))
    page = render_html(report(judgements=(
        JudgementSeries("error_rate", "max_increase_over_stable", 0.005, 0.95, "rollback trigger", (judged,)),
        JudgementSeries("latency_p99_ms", "max_ratio_to_stable", 1.1, 0.95, "stage 1 gate",
                        error="latency_p99_ms: no evidence query in the environment's metrics.queries"),
    )))
    assert '<section id="judgements">' in page
    assert "<h3>error_rate: stable + 0.005 at 95% (rollback trigger)</h3>" in page
    assert f"Last judgement: {html.escape(judged[-1][1].message)}" in page
    assert "<h3>latency_p99_ms: 1.1 x stable at 95% (stage 1 gate)</h3>" in page
    assert "evidence not read: latency_p99_ms: no evidence query" in page
    assert '<section id="judgements">' not in render_html(report())  # releases without them look as before
