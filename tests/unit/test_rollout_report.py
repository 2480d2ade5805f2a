"""The rollout report's pure renderer: what the commits say (stages, weights, thresholds), values
to SVG coordinates, limit series for bounds relative to the stable, and escaping.

SVG charts are parsed as XML (the renderer writes well-formed XML), so the tests read the
coordinates the page draws, not the renderer's intermediate values.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from reconciler.core.release import Gate, Rollout, RollbackTrigger, Stage
from reconciler.core.rollout_report import (
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Bound,
    CommitRecord,
    Incident,
    MetricSeries,
    RolloutReport,
    Scale,
    gate_bounds,
    limit_points,
    metric_chart,
    nice_ticks,
    outcome,
    progress_deadlines,
    render_html,
    report_metrics,
    stage_spans,
    summary_lines,
    time_scale,
    value_domain,
    weight_ceiling,
    weight_chart,
    weight_steps,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def commit(minutes: float, action: str, stage: str = "", weight: str = "", *reasons: str,
           sha: str = "", version: str = "1.3.0", subject: str = "") -> CommitRecord:
    return CommitRecord(sha=sha or f"{int(minutes):04d}" + "a" * 36, at=at(minutes),
                        subject=subject or f"{action.capitalize()} chat-assistant {version}", action=action,
                        version=version, stable="1.2.0", stage=stage, weight=weight, reasons=tuple(reasons))


#: The demo's rollout: start, 1% at 9:05, 5% at 10:05, rolled back at 11:35.
COMMITS = (
    commit(0, "start", "- -> 0", "0 -> 0", "canary rollout of 1.3.0 over stable 1.2.0: stage 0 (0%)"),
    commit(5, "advance", "0 -> 1", "0 -> 1", "no gates at this stage", "next: stage 1 (1%)"),
    commit(65, "advance", "1 -> 2", "1 -> 5", "latency_p99_ms 1,100 <= 1.2 x stable 1,000 = 1,200 over 5m"),
    commit(155, "rollback", "2 -> -", "5 -> 0", "error_rate 0.09 > max 0.05 over 5m at stage 2 (5%)",
           "traffic back to stable 1.2.0"),
)
ROLLOUT = Rollout(stages=[
    Stage(weight=0),
    Stage(weight=1, min_duration="1h", gates=[Gate(metric="latency_p99_ms", max_ratio_to_stable=1.2)]),
    Stage(weight=5, min_duration="4h", gates=[Gate(metric="error_rate", max_increase_over_stable=0.005)]),
    Stage(weight=25, gates=[Gate(metric="user_satisfaction", min_ratio_to_stable=0.98)]),
    Stage(weight=100),
], rollback_triggers=[RollbackTrigger(metric="error_rate", max=0.05),
                      RollbackTrigger(metric="latency_p99_ms", max=4000)])


def report(**changes: object) -> RolloutReport:
    fields: dict[str, object] = dict(environment="prod", model="chat-assistant", candidate="1.3.0", stable="1.2.0",
                                     start=at(-10), end=at(165), commits=COMMITS, step=timedelta(minutes=1))
    return RolloutReport(**{**fields, **changes})  # type: ignore[arg-type]


def flat(value: float, start: float = -10, end: float = 165) -> tuple[tuple[datetime, float], ...]:
    return tuple((at(m), value) for m in range(int(start), int(end) + 1))


# --- what the commits say ----------------------------------------------------------------------------


def test_stage_spans_run_from_each_stage_change_to_the_next_and_a_rollback_closes_the_last() -> None:
    spans = stage_spans(COMMITS, at(165))
    assert [(s.stage, s.start, s.end) for s in spans] == [(0, at(0), at(5)), (1, at(5), at(65)), (2, at(65), at(155))]


def test_an_open_stage_runs_to_the_end_of_the_period() -> None:
    assert [(s.stage, s.end) for s in stage_spans(COMMITS[:3], at(100))] == [(0, at(5)), (1, at(65)), (2, at(100))]


def test_weight_steps_follow_the_weight_trailers_from_the_start_to_the_end_of_the_period() -> None:
    assert weight_steps(COMMITS, at(-10), at(165)) == [
        (at(-10), 0.0), (at(0), 0.0), (at(5), 1.0), (at(65), 5.0), (at(155), 0.0), (at(165), 0.0)]


def test_weight_steps_of_a_period_starting_mid_rollout_begin_at_the_weight_then_in_force() -> None:
    assert weight_steps(COMMITS, at(30), at(100)) == [(at(30), 1.0), (at(65), 5.0), (at(100), 5.0)]


def test_gates_apply_during_their_stage_and_triggers_while_the_candidate_is_in_flight() -> None:
    bounds = {(b.metric, b.name, b.value, b.source, b.start, b.end) for b in gate_bounds(ROLLOUT, COMMITS, at(165))}
    assert bounds == {
        ("latency_p99_ms", "max_ratio_to_stable", 1.2, "stage 1 gate", at(5), at(65)),
        ("error_rate", "max_increase_over_stable", 0.005, "stage 2 gate", at(65), at(155)),
        ("error_rate", "max", 0.05, "rollback trigger", at(0), at(155)),
        ("latency_p99_ms", "max", 4000, "rollback trigger", at(0), at(155)),
    }  # stage 3's user_satisfaction gate never applied: the rollout did not get there


def test_the_metrics_charted_are_every_gate_metric_in_stage_order_then_the_triggers() -> None:
    assert report_metrics(ROLLOUT) == ["latency_p99_ms", "error_rate", "user_satisfaction"]


@pytest.mark.parametrize(("name", "value", "stable", "expected"), [
    ("max_ratio_to_stable", 1.2, [1000.0, 1010.0], [1200.0, 1212.0]),
    ("min_ratio_to_stable", 0.98, [0.9, 0.5], [0.882, 0.49]),
    ("max_increase_over_stable", 0.005, [0.003, 0.004], [0.008, 0.009]),
    ("max_decrease_from_stable", 0.02, [0.91, 0.9], [0.89, 0.88]),
])
def test_a_relative_bound_is_the_limit_computed_from_each_stable_point(
        name: str, value: float, stable: list[float], expected: list[float]) -> None:
    bound = Bound("m", name, value, "stage 1 gate", at(5), at(6))
    points = limit_points(bound, [(at(4), 7.0), (at(5), stable[0]), (at(6), stable[1]), (at(7), 7.0)])
    assert [t for t, _ in points] == [at(5), at(6)]  # only while the bound applied
    assert [v for _, v in points] == pytest.approx(expected)


def test_an_absolute_bound_is_a_constant_over_the_time_it_applied() -> None:
    bound = Bound("error_rate", "max", 0.05, "rollback trigger", at(0), at(155))
    assert limit_points(bound, [(at(1), 0.003)]) == [(at(0), 0.05), (at(155), 0.05)]
    assert (bound.label, bound.upper, bound.relative) == ("max 0.05", True, False)


def test_bound_labels_read_like_the_gate_messages() -> None:
    labels = [Bound("m", n, v, "s", at(0), at(1)).label for n, v in (
        ("max_ratio_to_stable", 1.2), ("min_ratio_to_stable", 0.98), ("max_increase_over_stable", 0.005),
        ("max_decrease_from_stable", 0.02), ("min", 0.6), ("max", 4000))]
    assert labels == ["1.2 x stable", "0.98 x stable", "stable + 0.005", "stable - 0.02", "min 0.6", "max 4,000"]


# --- values to coordinates ------------------------------------------------------------------------------


def test_scale_maps_values_linearly_onto_pixels_and_y_grows_downwards() -> None:
    y = Scale(0, 100, 250, 50)
    assert (y(0), y(50), y(100), y(125)) == (250, 150, 50, 0)
    assert Scale(3, 3, 10, 20)(3) == 15  # a flat domain is drawn in the middle, never divided by zero
    x = time_scale(at(0), at(60), 100, 700)
    assert (x(at(0).timestamp()), x(at(15).timestamp()), x(at(60).timestamp())) == (100, 250, 700)


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 0.09, [0, 0.02, 0.04, 0.06, 0.08, 0.1]),
    (0, 4000, [0, 1000, 2000, 3000, 4000]),
    (0.58, 0.89, [0.5, 0.6, 0.7, 0.8, 0.9]),
    (5, 5, [5, 6, 7, 8, 9, 10]),
])
def test_nice_ticks_are_round_and_cover_the_range(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(ticks)


def test_the_value_axis_starts_at_zero_when_zero_is_near_and_hugs_the_data_when_not() -> None:
    assert value_domain([0.003, 0.09, 0.05]) == (0, 0.1)
    lo, hi = value_domain([0.86, 0.855, 0.8428, 0.6])
    assert 0.5 <= lo <= 0.6 and 0.86 < hi <= 0.9


@pytest.mark.parametrize(("highest", "top"), [(0, 10), (5, 10), (25, 30), (50, 60), (100, 100)])
def test_the_weight_axis_fits_the_highest_weight(highest: float, top: float) -> None:
    assert weight_ceiling(highest) == top


def paths(svg: str, css_class: str) -> list[list[tuple[float, float]]]:
    """The points (x, y) of each path that has `css_class` or sits in an element that has it."""
    found = []
    for element in ET.fromstring(svg).iter():
        if css_class in (element.get("class") or "").split():
            found += [_points(path.get("d", "")) for path in element.iter(f"{SVG}path")]
    return found


def _points(data: str) -> list[tuple[float, float]]:
    tokens = data.replace("M", " M").replace("L", " L").split()
    points = []
    for k in range(0, len(tokens), 2):
        points.append((float(tokens[k][1:]), float(tokens[k + 1])))
    return points


def test_a_metric_chart_draws_the_candidate_the_stable_and_the_relative_limit_where_they_are() -> None:
    series = MetricSeries("latency_p99_ms", candidate=flat(1100, 6, 156), stable=flat(1000),
                          bounds=(Bound("latency_p99_ms", "max_ratio_to_stable", 1.2, "stage 1 gate", at(5), at(65)),
                                  Bound("latency_p99_ms", "max", 4000, "rollback trigger", at(0), at(155))))
    svg = metric_chart(report(), series)
    lo, hi = value_domain([1100, 1000, 1200, 4000])
    assert (lo, hi) == (0, 5000)
    y = Scale(lo, hi, HEIGHT - 30, TOP)
    x = time_scale(at(-10), at(165), LEFT, WIDTH - RIGHT)
    [candidate] = paths(svg, "series-candidate")
    assert candidate[0] == pytest.approx((x(at(6).timestamp()), y(1100)), abs=0.06)
    assert candidate[-1] == pytest.approx((x(at(156).timestamp()), y(1100)), abs=0.06)
    [stable] = paths(svg, "series-stable")
    assert [py for _, py in stable] == [pytest.approx(y(1000), abs=0.06)] * len(flat(1000))
    relative, absolute = paths(svg, "threshold")
    assert relative[0] == pytest.approx((x(at(5).timestamp()), y(1200)), abs=0.06)  # 1.2 x stable 1,000
    assert relative[-1] == pytest.approx((x(at(65).timestamp()), y(1200)), abs=0.06)
    assert len(relative) == 61  # one limit point per stable point while the gate applied
    assert absolute == [pytest.approx((x(at(0).timestamp()), y(4000)), abs=0.06),
                        pytest.approx((x(at(155).timestamp()), y(4000)), abs=0.06)]


def test_a_series_that_stops_reporting_is_drawn_with_a_gap_not_a_bridge() -> None:
    points = flat(0.003, 0, 30) + flat(0.003, 60, 90)  # silent from 9:30 to 10:00
    svg = metric_chart(report(), MetricSeries("error_rate", candidate=points))
    root = ET.fromstring(svg)
    [path] = [p for p in root.iter(f"{SVG}path") if "series-candidate" in (p.get("class") or "")]
    assert path.get("d", "").count("M") == 2


def test_the_weight_chart_steps_at_each_commit_on_an_axis_that_fits_5_percent() -> None:
    svg = weight_chart(report())
    [line] = paths(svg, "weight")
    y = Scale(0, 10, 190 - 30, TOP)
    x = time_scale(at(-10), at(165), LEFT, WIDTH - RIGHT)
    assert (x(at(65).timestamp()), y(1)) == pytest.approx(line[5], abs=0.06)  # up to 5% at 10:05 ...
    assert (x(at(65).timestamp()), y(5)) == pytest.approx(line[6], abs=0.06)
    assert max(py for _, py in line) == pytest.approx(y(0), abs=0.06)
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "band-label"]
    assert labels == ["stage 1 (1%)", "stage 2 (5%)"]  # stage 0 (5 minutes) is too narrow for a label
    markers = [g for g in ET.fromstring(svg).iter(f"{SVG}g") if "marker" in (g.get("class") or "").split()]
    assert [g.find(f"{SVG}text").text for g in markers] == ["1", "2", "3", "4"]  # type: ignore[union-attr]


# --- the page -------------------------------------------------------------------------------------------


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE = '</td><script>alert("x")</script><img src=x onerror=alert(1)>'


def test_every_text_from_outside_is_escaped() -> None:
    nasty = COMMITS[:3] + (commit(155, "rollback", "2 -> -", "5 -> 0", HOSTILE, subject=f"Roll back {HOSTILE}"),)
    page = render_html(report(
        commits=nasty, model="chat<b>", notes=(HOSTILE,), source=HOSTILE,
        metrics=(MetricSeries("error_rate", error=HOSTILE, description=HOSTILE, unit=HOSTILE),),
        incidents=(Incident(f"incidents/prod/{HOSTILE}.yaml", f"reasons:\n- {HOSTILE}\n", (HOSTILE,)),)))
    parsed = Tags()
    parsed.feed(page)
    assert "<script" not in page.lower()
    assert "script" not in parsed.tags and "img" not in parsed.tags and "b" not in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attributes)
    assert HOSTILE in "".join(parsed.text)  # shown to the reader as text, whole
    for svg in page.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # still well-formed XML


def test_the_page_is_self_contained() -> None:
    page = render_html(report(metrics=(MetricSeries("error_rate", candidate=flat(0.003), stable=flat(0.003)),)))
    parsed = Tags()
    parsed.feed(page)
    assert not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    urls = [value for name, value in parsed.attributes if name in ("src", "href")]
    assert urls == []
    assert "url(" not in page and "@import" not in page


def test_charts_missing_says_why_and_the_commit_log_is_still_there() -> None:
    page = render_html(report(charts_missing="cannot reach Prometheus at http://127.0.0.1:9: connection refused"))
    assert "No metric charts: cannot reach Prometheus at http://127.0.0.1:9: connection refused" in page
    assert page.count('class="commit commit-') == 4
    assert 'class="metric"' not in page


def test_a_metric_whose_query_failed_says_so_on_its_chart() -> None:
    svg = metric_chart(report(), MetricSeries("error_rate", error="HTTP 400 bad_data"))
    assert [t.text for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "nodata"] == \
        ["query failed: HTTP 400 bad_data"]


@pytest.mark.parametrize(("commits", "kind", "sentence"), [
    (COMMITS, "rollback", "Rolled back at 2026-11-20T11:35:00Z: error_rate 0.09 > max 0.05 over 5m at stage 2 (5%)."),
    (COMMITS[:3], "flight", "In flight at stage 2 (5%) since 2026-11-20T10:05:00Z."),
    (COMMITS[:3] + (commit(300, "promote", "2 -> 3", "5 -> 100", "promoted"),), "promote",
     "Promoted at 2026-11-20T14:00:00Z."),
])
def test_the_outcome_names_how_the_rollout_ended(commits: tuple[CommitRecord, ...], kind: str, sentence: str) -> None:
    assert outcome(report(commits=commits)) == (kind, sentence)


def test_the_summary_lists_the_commits_the_charts_and_the_incident() -> None:
    lines = summary_lines(report(metrics=(MetricSeries("error_rate"), MetricSeries("x", error="boom")),
                                 incidents=(Incident("incidents/prod/i.yaml", "", ()),)))
    assert lines == [
        "chat-assistant 1.3.0 in prod: rolled back at 2026-11-20T11:35:00Z: error_rate 0.09 > max 0.05 over 5m at "
        "stage 2 (5%).",
        "  1. 2026-11-20T09:00:00Z start     0000aaaaaaaa  stage - -> 0, weight 0 -> 0",
        "  2. 2026-11-20T09:05:00Z advance   0005aaaaaaaa  stage 0 -> 1, weight 0 -> 1",
        "  3. 2026-11-20T10:05:00Z advance   0065aaaaaaaa  stage 1 -> 2, weight 1 -> 5",
        "  4. 2026-11-20T11:35:00Z rollback  0155aaaaaaaa  stage 2 -> -, weight 5 -> 0",
        "  2 metric chart(s), 1 without data: x",
        "  incident incidents/prod/i.yaml",
    ]


def test_a_value_that_rounds_to_a_thousand_reads_like_a_thousand() -> None:
    from reconciler.core.gates import number

    assert number(999.9999999999784) == number(1000.0) == "1,000"


# --- progress deadline -----------------------------------------------------------------------------------


def test_the_page_shows_each_stage_s_progress_deadline_and_when_the_stage_in_flight_passes_it() -> None:
    """Stage 2 (min 4h: deadline 12h) began at 10:05 and is still in flight at 11:35."""
    flying = COMMITS[:3]
    text = progress_deadlines(ROLLOUT, flying, at(155))
    assert text == ("stage 0: 1h, stage 1: 3h, stage 2: 12h, stage 3: 1h, stage 4: 1h after the stage began; "
                    "then hold and page on-call once. Stage 2, in flight, reaches it at 2026-11-20T22:05:00Z")
    late = Rollout(**{**ROLLOUT.model_dump(), "progress_deadline": "1h30m", "on_progress_deadline": "rollback"})
    assert progress_deadlines(late, flying, at(155)).endswith(
        "then roll back. Stage 2, in flight, passed it at 2026-11-20T11:35:00Z")
    assert progress_deadlines(ROLLOUT, COMMITS, at(165)).endswith("then hold and page on-call once")  # it ended
    page = render_html(report(commits=flying, progress_deadline=text))
    assert f"<dt>progress deadline</dt><dd>{text}</dd>" in page


def test_a_page_commit_keeps_the_stage_and_its_clock() -> None:
    """A page ("2 -> 2") is no new stage: the span, and the deadline counted from it, go on."""
    paged = COMMITS[:3] + (commit(140, "page", "2 -> 2", "5 -> 5"),)
    assert [(s.stage, s.start) for s in stage_spans(paged, at(155))] == [(0, at(0)), (1, at(5)), (2, at(65))]
    assert progress_deadlines(ROLLOUT, paged, at(155)).endswith("reaches it at 2026-11-20T22:05:00Z")
