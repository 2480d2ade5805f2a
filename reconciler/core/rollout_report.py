"""The rollout report: one self-contained HTML page for a rollout review or a post-mortem.

Input is plain values (the rollout's commits as their `Sluice-*` trailers say, metric series per
version, thresholds); output is an HTML string. No I/O and no clock: the adapter reads git,
Prometheus and the incident records and passes them in.

Design decisions:
- One file, no JavaScript, no external resource: the page is attached to an incident ticket or
  mailed, and must read the same offline in five years. Charts are inline SVG written here (a
  few hundred lines beat a plotting dependency), hover details are SVG <title> elements.
- Every text that came from outside (reasons, subjects, YAML, labels) is escaped once, where it
  is written into the page (`_e`).
- What a chart shows is what the reconciler judged: thresholds are drawn only over the time they
  applied (a stage's gates over that stage, triggers while the candidate held traffic), and
  bounds relative to stable are drawn as the limit computed from the stable series at each point
  (`limit_points`), with the same arithmetic the gates use.
- Decision markers are numbered; the commit log below uses the same numbers.
- A statistical gate or trigger is charted as what the judge said at each step of the stage:
  `judge` is run again on the evidence accumulated from the stage's start to that step
  (`judgement_points`), so the chart shows the estimate narrowing inside its interval until the
  interval leaves the limit (worse) or falls under it (not worse).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

from .gates import RELATIVE_BOUNDS, number
from .judge import Judgement, Verdict, judge
from .observations import EvidenceHistory, VersionCounts, VersionKey
from .release import Rollout, statistical_bound
from .types import format_duration, utc_text

Point = tuple[datetime, float]

#: Actions after which the candidate holds no more traffic as a candidate.
TERMINAL = ("promote", "rollback", "stop")


# --- values -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CommitRecord:
    """One commit of the rollout, as git and its `Sluice-*` trailers tell it.

    `action` is "" for a commit without trailers: a change by hand (an edit, a `git revert`).
    `stage` and `weight` are the trailers' text, e.g. "1 -> 2" and "1 -> 5".
    """

    sha: str
    at: datetime  # Sluice-At (when the decision was made), else the author date
    subject: str
    action: str = ""
    version: str = ""
    stable: str = ""
    stage: str = ""
    weight: str = ""
    reasons: tuple[str, ...] = ()

    @property
    def by_hand(self) -> bool:
        return not self.action

    @property
    def new_stage(self) -> int | None:
        return _arrow(self.stage, 1)

    @property
    def new_weight(self) -> int | None:
        return _arrow(self.weight, 1)

    @property
    def old_weight(self) -> int | None:
        return _arrow(self.weight, 0)


@dataclass(frozen=True)
class StageSpan:
    """The candidate at `stage` from `start` until `end`."""

    stage: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Bound:
    """One threshold of a metric over the time it applied.

    `name` is the release's key: "min", "max" (absolute) or "max_ratio_to_stable",
    "min_ratio_to_stable", "max_increase_over_stable", "max_decrease_from_stable" (relative).
    """

    metric: str
    name: str
    value: float
    source: str  # "rollback trigger" or "stage 2 gate"
    start: datetime
    end: datetime

    @property
    def relative(self) -> bool:
        return self.name not in ("min", "max")

    @property
    def upper(self) -> bool:
        return self.name.startswith("max")

    @property
    def label(self) -> str:
        """"max 0.05", "1.2 x stable", "stable + 0.005": how the gate messages write the limit."""
        if not self.relative:
            return f"{self.name} {number(self.value)}"
        return " ".join(RELATIVE_BOUNDS[self.name][1].format(k=number(self.value), s="").split())


@dataclass(frozen=True)
class MetricSeries:
    """One gate or trigger metric: the candidate's and the stable's series, and its thresholds."""

    metric: str
    candidate: tuple[Point, ...] = ()
    stable: tuple[Point, ...] = ()
    bounds: tuple[Bound, ...] = ()
    unit: str | None = None
    description: str | None = None
    error: str | None = None  # the query failed: the chart says so instead of drawing nothing


@dataclass(frozen=True)
class JudgementSeries:
    """One statistical gate or trigger over the rollout: per stage it applied in, the judgement at
    each step from the evidence since that stage began."""

    metric: str
    bound: str
    limit: float
    confidence: float
    source: str  # "stage 2 gate" or "rollback trigger"
    segments: tuple[tuple[tuple[datetime, Judgement], ...], ...] = ()  # one per stage, in time order
    error: str | None = None  # the evidence could not be read

    @property
    def label(self) -> str:
        """"1.1 x stable at 95%": the limit as the gates write it, and the confidence."""
        limit = " ".join(RELATIVE_BOUNDS[self.bound][1].format(k=number(self.limit), s="").split())
        return f"{limit} at {self.confidence:.0%}"

    @property
    def last(self) -> Judgement | None:
        return self.segments[-1][-1][1] if self.segments and self.segments[-1] else None


@dataclass(frozen=True)
class Incident:
    path: str  # relative to the repository root
    text: str  # the record as written
    summary: tuple[str, ...] = ()  # its breaches (or reasons), one line each


@dataclass(frozen=True)
class RolloutReport:
    environment: str
    model: str
    candidate: str
    stable: str
    start: datetime  # the period the charts show
    end: datetime
    commits: tuple[CommitRecord, ...]  # oldest first
    metrics: tuple[MetricSeries, ...] = ()
    incidents: tuple[Incident, ...] = ()
    charts_missing: str | None = None  # why there are no metric charts at all
    source: str = ""  # where the series came from ("Prometheus at http://...")
    step: timedelta | None = None  # the series' resolution
    notes: tuple[str, ...] = ()
    progress_deadline: str | None = None  # each stage's deadline and its action (`progress_deadlines`)
    judgements: tuple[JudgementSeries, ...] = ()  # statistical gates and triggers, judged along the stage


# --- what the commits say ---------------------------------------------------------------------------

def candidate_commits(report: RolloutReport) -> list[CommitRecord]:
    return [c for c in report.commits if c.version == report.candidate and not c.by_hand]


def stage_spans(commits: Sequence[CommitRecord], end: datetime) -> list[StageSpan]:
    """The stages the candidate went through, from the `Sluice-Stage` trailers.

    Example: start "- -> 0" at 9:00, advance "0 -> 1" at 9:05, rollback "1 -> -" at 10:00 ->
    stage 0 9:00-9:05, stage 1 9:05-10:00. The last stage still open ends at `end`.
    """
    spans: list[StageSpan] = []
    current: tuple[int, datetime] | None = None
    for commit in commits:
        if not commit.stage or (commit.action == "page" and current is not None and commit.new_stage == current[0]):
            continue  # a page ("2 -> 2") leaves the stage and its clock running
        if current is not None:
            spans.append(StageSpan(current[0], current[1], commit.at))
        new = commit.new_stage
        current = None if new is None else (new, commit.at)
    if current is not None:
        spans.append(StageSpan(current[0], current[1], max(end, current[1])))
    return spans


def weight_steps(commits: Sequence[CommitRecord], start: datetime, end: datetime) -> list[Point]:
    """The candidate's traffic weight as a step function from `start` to `end`, from the
    `Sluice-Weight` trailers: (time, weight from then on) points, first at `start`, last at `end`.

    Example: start "0 -> 0" at 9:00, advance "0 -> 1" at 9:05, rollback "1 -> 0" at 10:00, shown
    8:50-10:10 -> (8:50, 0), (9:00, 0), (9:05, 1), (10:00, 0), (10:10, 0).
    """
    changes = [(c.at, c.new_weight, c.old_weight) for c in commits if c.new_weight is not None]
    first = next((old for _, _, old in changes if old is not None), 0)
    points: list[Point] = [(start, float(first))]
    for at, weight, _ in changes:
        if start <= at <= end:
            points.append((at, float(weight)))  # type: ignore[arg-type]
        elif at < start:
            points[0] = (start, float(weight))  # type: ignore[arg-type]
    points.append((end, points[-1][1]))
    return points


def in_flight(commits: Sequence[CommitRecord], end: datetime) -> tuple[datetime, datetime] | None:
    """From the rollout's start to its promote, rollback or stop (or `end` while it runs)."""
    if not commits:
        return None
    stop = next((c.at for c in commits if c.action in TERMINAL), end)
    return commits[0].at, stop


def gate_bounds(rollout: Rollout, commits: Sequence[CommitRecord], end: datetime) -> list[Bound]:
    """Every threshold the rollout was judged against, over the time it applied: each stage's
    gates over that stage, the rollback triggers while the candidate was in flight."""
    bounds = []
    for span in stage_spans(commits, end):
        if span.stage >= len(rollout.stages):
            continue
        for gate in rollout.stages[span.stage].gates:
            bounds += [Bound(gate.metric, name, value, f"stage {span.stage} gate", span.start, span.end)
                       for name, value in gate.bounds().items()]
    flying = in_flight(commits, end)
    if flying is not None:
        for trigger in rollout.rollback_triggers:
            bounds += [Bound(trigger.metric, name, value, "rollback trigger", *flying)
                       for name, value in (("min", trigger.min), ("max", trigger.max)) if value is not None]
    return bounds


def progress_deadlines(rollout: Rollout, commits: Sequence[CommitRecord], end: datetime) -> str:
    """Each stage's progress deadline, its action, and when the stage in flight (if any) reaches it.

    Example: "stage 0: 1h, stage 1: 3h, stage 2: 12h after the stage began; then hold and page
    on-call once. Stage 2, in flight, reaches it at 2026-11-20T22:05:00Z".
    """
    each = ", ".join(f"stage {i}: {format_duration(rollout.progress_deadline_of(i))}"
                     for i in range(len(rollout.stages)))
    then = "roll back" if rollout.on_progress_deadline == "rollback" else "hold and page on-call once"
    text = f"{each} after the stage began; then {then}"
    spans = stage_spans(commits, end)
    if not spans or any(c.action in TERMINAL for c in commits) or spans[-1].stage >= len(rollout.stages):
        return text
    last = spans[-1]
    due = last.start + rollout.progress_deadline_of(last.stage)
    return f"{text}. Stage {last.stage}, in flight, {'passed' if due <= end else 'reaches'} it at {utc_text(due)}"


def report_metrics(rollout: Rollout) -> list[str]:
    """The metrics a report charts: every stage's gate metrics in stage order, then the triggers'."""
    names = [g.metric for s in rollout.stages for g in s.gates] + [t.metric for t in rollout.rollback_triggers]
    return list(dict.fromkeys(names))


#: Judgements per stage segment at most: the judge runs once per point.
MAX_JUDGED = 120


def judged_rules(rollout: Rollout, commits: Sequence[CommitRecord], end: datetime
                 ) -> list[tuple[str, str, float, float, str, list[StageSpan]]]:
    """Every statistical gate and trigger with the stage spans it applied in: (metric, bound,
    limit, confidence, source, spans). A gate applies in its own stage, a trigger in every stage."""
    spans = [s for s in stage_spans(commits, end) if s.stage < len(rollout.stages)]
    rules = []
    for path, check in rollout.statistical_checks():
        bound, limit = statistical_bound(check)
        applies = [s for s in spans if s.stage == path[1]] if path[0] == "stages" else spans
        source = f"stage {path[1]} gate" if path[0] == "stages" else "rollback trigger"
        rules.append((check.metric, bound, limit, check.confidence or 0.0, source, applies))
    return rules


def judgement_points(history: EvidenceHistory, quantile: float | None, metric: str, bound: str, limit: float,
                     confidence: float, candidate: VersionKey, stable: VersionKey, span: StageSpan,
                     window: timedelta, most: int = MAX_JUDGED) -> tuple[tuple[datetime, Judgement], ...]:
    """The judgement at each evidence window's end inside the stage, on the windows from the
    stage's start to that end (what decide would have seen on a pass then). At most `most`
    points, evenly spread, always the last.

    Example: a stage 10:00-11:00 with 5m windows -> judgements at 10:05, 10:10, ..., 11:00.
    """
    ends = sorted({end for key in (candidate, stable) for end, _ in history.points.get(key, ())
                   if span.start <= end - window and end <= span.end})
    if len(ends) > most:
        stride = math.ceil(len(ends) / most)
        ends = ends[len(ends) - 1::-stride][::-1]
    return tuple((end, judge(metric, bound, limit, confidence, history.kind, quantile, c, s))
                 for end, c, s in zip(ends, _running_since(history, candidate, span.start, window, ends),
                                      _running_since(history, stable, span.start, window, ends)))


def _running_since(history: EvidenceHistory, key: VersionKey, start: datetime, window: timedelta,
                   ends: Sequence[datetime]) -> Iterable[VersionCounts]:
    """EvidenceHistory.since(key, start, window) on the points up to each of `ends` (ascending), as
    one running sum (the points are in time order, added in the same order as `since` adds them)
    instead of a sum from the stage's start at every end."""
    points = [(end, counts) for end, counts in history.points.get(key, ()) if end - window >= start]
    total, taken = VersionCounts(), 0
    for end in ends:
        while taken < len(points) and points[taken][0] <= end:
            total = total + points[taken][1]
            taken += 1
        yield total


def limit_points(bound: Bound, stable: Sequence[Point]) -> list[Point]:
    """The bound as a series over the time it applied: a constant for an absolute bound, the limit
    computed from each stable point for a relative one.

    Example: max_ratio_to_stable 1.2 with stable (9:05, 1000), (9:06, 1010) -> (9:05, 1200),
    (9:06, 1212); max 4000 from 9:00 to 10:00 -> (9:00, 4000), (10:00, 4000).
    """
    if not bound.relative:
        return [(bound.start, bound.value), (bound.end, bound.value)]
    threshold = RELATIVE_BOUNDS[bound.name][2]
    return [(t, threshold(s, bound.value)) for t, s in stable if bound.start <= t <= bound.end]


def outcome(report: RolloutReport) -> tuple[str, str]:
    """(css class, sentence): how the rollout ended, or where it stands."""
    commits = candidate_commits(report)
    final = next((c for c in reversed(commits) if c.action in TERMINAL), None)
    if final is None:
        last = commits[-1] if commits else None
        if last is None or last.new_stage is None:
            return "flight", "In flight."
        return "flight", f"In flight at stage {last.new_stage} ({last.new_weight}%) since {utc_text(last.at)}."
    why = _rollback_reason(final) if final.action == "rollback" else ""
    verb = {"promote": "Promoted", "rollback": "Rolled back", "stop": "Stopped"}[final.action]
    return final.action, f"{verb} at {utc_text(final.at)}{': ' + why if why else ''}."


def _rollback_reason(commit: CommitRecord) -> str:
    reasons = [r for r in commit.reasons if not r.startswith("traffic back to")]
    return "; ".join(reasons) or commit.subject


def warnings(report: RolloutReport) -> list[str]:
    """What the page lacks, for stderr: no charts at all, or no data for a metric."""
    if report.charts_missing:
        return [f"the page has no metric charts: {report.charts_missing}"]
    return [f"no chart data for {m.metric}: {m.error}" for m in report.metrics if m.error]


def summary_lines(report: RolloutReport) -> list[str]:
    """A few lines for a terminal: the outcome, the decisions, the charts and the incident."""
    _, sentence = outcome(report)
    lines = [f"{report.model} {report.candidate} in {report.environment}: {sentence[:1].lower()}{sentence[1:]}"]
    for number_, commit in enumerate(report.commits, 1):
        detail = f"stage {commit.stage}, weight {commit.weight}" if commit.stage or commit.weight else ""
        lines.append(f"  {number_}. {utc_text(commit.at)} {commit.action or 'by hand':<9} {commit.sha[:12]}"
                     f"{'  ' + detail if detail else ''}")
    if report.charts_missing:
        lines.append(f"  no metric charts: {report.charts_missing}")
    else:
        failed = [m.metric for m in report.metrics if m.error]
        lines.append(f"  {len(report.metrics)} metric chart(s)" + (f", {len(failed)} without data: "
                                                                  f"{', '.join(failed)}" if failed else ""))
    lines += [f"  incident {i.path}" for i in report.incidents]
    return lines


# --- drawing ----------------------------------------------------------------------------------------

WIDTH, HEIGHT, WEIGHT_HEIGHT = 960, 250, 190
LEFT, RIGHT, TOP, BOTTOM = 64, 168, 26, 30
COLORS = {"candidate": "#d9480f", "stable": "#1c7ed6", "upper": "#c92a2a", "lower": "#7048e8"}
ACTION_COLORS = {"start": "#495057", "advance": "#2b8a3e", "promote": "#1864ab", "rollback": "#c92a2a",
                 "stop": "#5f3dc4", "retire": "#868e96", "page": "#f08c00", "": "#e67700"}
_TIME_STEPS = [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)] + \
    [timedelta(days=d) for d in (1, 2, 7, 14, 28)]


@dataclass(frozen=True)
class Scale:
    """A linear map from data to SVG pixels: Scale(0, 100, 250, 50)(50) == 150.0 (y grows downwards)."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.px_lo + self.px_hi) / 2
        return self.px_lo + (value - self.lo) * (self.px_hi - self.px_lo) / (self.hi - self.lo)


def time_scale(start: datetime, end: datetime, px_lo: float, px_hi: float) -> Scale:
    return Scale(start.timestamp(), end.timestamp(), px_lo, px_hi)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: nice_ticks(0, 0.09) -> [0, 0.02, 0.04, 0.06, 0.08, 0.1]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def time_ticks(start: datetime, end: datetime, most: int = 8) -> list[datetime]:
    """Instants on round multiples (UTC) of the smallest step that gives at most `most` ticks."""
    span = end - start
    step = next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1])
    seconds = step.total_seconds()
    first = math.ceil(start.timestamp() / seconds) * seconds
    ticks = []
    value = first
    while value <= end.timestamp():
        ticks.append(datetime.fromtimestamp(value, timezone.utc))
        value += seconds
    return ticks


def value_domain(values: Iterable[float]) -> tuple[float, float]:
    """The y range for `values`, padded, from 0 when every value is positive and 0 is near."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    bottom = lo - pad
    if lo >= 0 and (bottom < 0 or lo < (hi - lo)):
        bottom = 0.0
    ticks = nice_ticks(bottom, hi + pad)
    return ticks[0], ticks[-1]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _f(value: float) -> str:
    return f"{value:.1f}"


def _path(points: Sequence[Point], x: Scale, y: Scale, max_gap: timedelta | None) -> str:
    """SVG path data through the points; a gap longer than `max_gap` (no data) breaks the line."""
    parts = []
    previous: datetime | None = None
    for at, value in points:
        if not math.isfinite(value):
            previous = None
            continue
        jump = previous is None or (max_gap is not None and at - previous > max_gap)
        parts.append(f"{'M' if jump else 'L'}{_f(x(at.timestamp()))} {_f(y(value))}")
        previous = at
    return " ".join(parts)


def _step_path(points: Sequence[Point], x: Scale, y: Scale) -> str:
    parts = []
    for k, (at, value) in enumerate(points):
        px = _f(x(at.timestamp()))
        if k:
            parts.append(f"L{px} {_f(y(points[k - 1][1]))}")
        parts.append(f"{'L' if k else 'M'}{px} {_f(y(value))}")
    return " ".join(parts)


class _Frame:
    """The plot area of one chart: scales, axes, stage bands and decision markers."""

    def __init__(self, report: RolloutReport, height: int, lo: float, hi: float) -> None:
        self.report, self.height = report, height
        self.bottom = height - BOTTOM
        self.x = time_scale(report.start, report.end, LEFT, WIDTH - RIGHT)
        self.y = Scale(lo, hi, self.bottom, TOP)
        self.lo, self.hi = lo, hi

    def clamp(self, at: datetime) -> float:
        return min(max(self.x(at.timestamp()), LEFT), WIDTH - RIGHT)

    def open(self, title: str) -> list[str]:
        return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {self.height}" '
                f'width="{WIDTH}" height="{self.height}" role="img"><title>{_e(title)}</title>']

    def bands(self, labels: bool) -> list[str]:
        out = []
        spans = stage_spans(candidate_commits(self.report), self.report.end)
        weights = {c.new_stage: c.new_weight for c in candidate_commits(self.report) if c.new_stage is not None}
        for k, span in enumerate(spans):
            x0, x1 = self.clamp(span.start), self.clamp(span.end)
            if x1 <= x0:
                continue
            shade = "band-a" if k % 2 == 0 else "band-b"
            out.append(f'<rect class="{shade}" x="{_f(x0)}" y="{TOP}" width="{_f(x1 - x0)}" '
                       f'height="{_f(self.bottom - TOP)}"><title>stage {span.stage}: {_e(utc_text(span.start))} to '
                       f'{_e(utc_text(span.end))}</title></rect>')
            if labels and x1 - x0 > 46:
                weight = weights.get(span.stage)
                text = f"stage {span.stage}" + (f" ({weight}%)" if weight is not None else "")
                out.append(f'<text class="band-label" x="{_f(x0 + 4)}" y="{TOP + 12}">{_e(text)}</text>')
        return out

    def axes(self, unit: str = "") -> list[str]:
        out = [f'<line class="axis" x1="{LEFT}" y1="{self.bottom}" x2="{WIDTH - RIGHT}" y2="{self.bottom}"/>']
        long_span = self.report.end - self.report.start > timedelta(days=1)
        for tick in time_ticks(self.report.start, self.report.end):
            px = _f(self.x(tick.timestamp()))
            label = tick.strftime("%m-%d %H:%M" if long_span else "%H:%M")
            out.append(f'<line class="grid" x1="{px}" y1="{TOP}" x2="{px}" y2="{self.bottom}"/>'
                       f'<text class="tick" x="{px}" y="{self.bottom + 16}" text-anchor="middle">{label}</text>')
        for value in nice_ticks(self.lo, self.hi):
            if not self.lo - 1e-12 <= value <= self.hi + 1e-12:
                continue
            py = _f(self.y(value))
            out.append(f'<line class="grid" x1="{LEFT}" y1="{py}" x2="{WIDTH - RIGHT}" y2="{py}"/>'
                       f'<text class="tick" x="{LEFT - 6}" y="{py}" text-anchor="end" dominant-baseline="middle">'
                       f'{_e(number(value))}{_e(unit)}</text>')
        return out

    def no_data(self, text: str) -> str:
        """Why the plot is empty, written across its middle."""
        return (f'<text class="nodata" x="{_f((LEFT + WIDTH - RIGHT) / 2)}" y="{_f((TOP + self.bottom) / 2)}" '
                f'text-anchor="middle">{_e(_shorten(text, 120))}</text>')

    def markers(self) -> list[str]:
        out = []
        for k, commit in enumerate(self.report.commits, 1):
            if not self.report.start <= commit.at <= self.report.end:
                continue
            px = _f(self.x(commit.at.timestamp()))
            color = ACTION_COLORS.get(commit.action, ACTION_COLORS[""])
            what = commit.action or "change by hand"
            out.append(f'<g class="marker marker-{_e(commit.action or "hand")}"><title>{k}. {_e(utc_text(commit.at))} '
                       f'{_e(what)}: {_e(commit.subject)}</title>'
                       f'<line x1="{px}" y1="{TOP - 4}" x2="{px}" y2="{self.bottom}" stroke="{color}"/>'
                       f'<circle cx="{px}" cy="{TOP - 12}" r="8" fill="{color}"/>'
                       f'<text x="{px}" y="{TOP - 8}" text-anchor="middle" class="marker-number">{k}</text></g>')
        return out


def weight_ceiling(highest: float) -> float:
    """The top of the weight axis: a canary that reached 5% is drawn on 0-10%, not lost at the
    bottom of 0-100%. weight_ceiling(5) == 10, weight_ceiling(25) == 30, weight_ceiling(100) == 100."""
    return min(100.0, nice_ticks(0.0, max(highest * 1.1, 10.0))[-1])


def weight_chart(report: RolloutReport) -> str:
    """The candidate's share of user traffic over time, with the stages shaded and labelled."""
    points = weight_steps(candidate_commits(report), report.start, report.end)
    frame = _Frame(report, WEIGHT_HEIGHT, 0.0, weight_ceiling(max(v for _, v in points)))
    out = frame.open(f"traffic weight of {report.model} {report.candidate} in {report.environment}")
    out += frame.bands(labels=True) + frame.axes("%") + frame.markers()
    out.append(f'<path class="weight" d="{_step_path(points, frame.x, frame.y)}"/>')
    out.append("</svg>")
    return "\n".join(out)


def metric_chart(report: RolloutReport, series: MetricSeries) -> str:
    """One metric: candidate and stable over time against its thresholds, with decision markers."""
    limits = [(bound, limit_points(bound, series.stable)) for bound in series.bounds]
    values = [v for _, v in series.candidate] + [v for _, v in series.stable] + \
        [v for _, points in limits for _, v in points]
    lo, hi = value_domain(values)
    frame = _Frame(report, HEIGHT, lo, hi)
    out = frame.open(f"{series.metric}: {report.candidate} and {report.stable} against thresholds")
    out += frame.bands(labels=False) + frame.axes()
    gap = report.step * 2.5 if report.step else None
    for bound, points in limits:
        kind = "upper" if bound.upper else "lower"
        data = _path(points, frame.x, frame.y, gap if bound.relative else None)
        if not data:
            continue
        last_t, last_v = points[-1]
        out.append(f'<g class="threshold threshold-{kind}"><title>{_e(bound.label)} ({_e(bound.source)}), '
                   f'{_e(utc_text(bound.start))} to {_e(utc_text(bound.end))}</title>'
                   f'<path d="{data}" stroke="{COLORS[kind]}"/>'
                   f'<text x="{_f(frame.clamp(last_t) + 4)}" y="{_f(frame.y(last_v))}" dominant-baseline="middle" '
                   f'fill="{COLORS[kind]}">{_e(bound.label)} ({_e(bound.source)})</text></g>')
    for role, points in (("stable", series.stable), ("candidate", series.candidate)):
        data = _path(points, frame.x, frame.y, gap)
        if data:
            out.append(f'<path class="series series-{role}" d="{data}" stroke="{COLORS[role]}"/>')
    if series.error or not (series.candidate or series.stable):
        out.append(frame.no_data(f"query failed: {series.error}" if series.error
                                 else "no data from either version in this period"))
    out += frame.markers()
    out.append("</svg>")
    return "\n".join(out)


VERDICT_COLORS = {Verdict.WORSE: "#c92a2a", Verdict.NOT_WORSE: "#2b8a3e", Verdict.INCONCLUSIVE: "#868e96"}


def judgement_chart(report: RolloutReport, series: JudgementSeries) -> str:
    """One statistical gate or trigger: the estimate and its interval at each step of the stages it
    applied in, against its limit; each point's colour is the verdict then, its hover the message."""
    points = [(at, j) for segment in series.segments for at, j in segment]
    values = [v for _, j in points for v in (j.estimate, j.low, j.high) if v is not None and math.isfinite(v)]
    lo, hi = value_domain(values + [series.limit])
    frame = _Frame(report, HEIGHT, lo, hi)
    out = frame.open(f"{series.metric} {series.label} ({series.source}): estimate and interval over the stage")
    out += frame.bands(labels=False) + frame.axes()

    def clamp(value: float) -> float:
        return min(max(value, lo), hi)

    for segment in series.segments:
        known = [(at, j) for at, j in segment if j.low is not None and j.high is not None]
        if known:
            upper = [f"{_f(frame.x(at.timestamp()))} {_f(frame.y(clamp(j.high)))}" for at, j in known]  # type: ignore[arg-type]
            lower = [f"{_f(frame.x(at.timestamp()))} {_f(frame.y(clamp(j.low)))}" for at, j in reversed(known)]  # type: ignore[arg-type]
            out.append(f'<path class="interval" d="M{" L".join(upper + lower)} Z"><title>{series.confidence:.0%} '
                       "confidence interval</title></path>")
        line = _path([(at, j.estimate) for at, j in segment if j.estimate is not None], frame.x, frame.y, None)
        if line:
            out.append(f'<path class="series estimate" d="{line}" stroke="{COLORS["candidate"]}"/>')
    py = _f(frame.y(series.limit))
    out.append(f'<g class="threshold threshold-upper limit"><title>limit: {_e(series.label)} ({_e(series.source)})'
               f'</title><path d="M{LEFT} {py} L{WIDTH - RIGHT} {py}" stroke="{COLORS["upper"]}"/>'
               f'<text x="{WIDTH - RIGHT + 4}" y="{py}" dominant-baseline="middle" fill="{COLORS["upper"]}">'
               f'{_e(series.label)}</text></g>')
    for at, j in points:
        if j.estimate is not None and math.isfinite(j.estimate):
            out.append(f'<circle class="verdict verdict-{_e(str(j.verdict).replace(" ", "-"))}" '
                       f'cx="{_f(frame.x(at.timestamp()))}" cy="{_f(frame.y(clamp(j.estimate)))}" r="2.5" '
                       f'fill="{VERDICT_COLORS[j.verdict]}"><title>{_e(utc_text(at))}: {_e(j.message)}</title></circle>')
    if series.error or not points:
        out.append(frame.no_data(f"evidence not read: {series.error}" if series.error
                                 else "no evidence from both versions in this period"))
    out += frame.markers()
    out.append("</svg>")
    return "\n".join(out)


def _shorten(text: str, most: int) -> str:
    return text if len(text) <= most else text[:most - 1] + "…"


# --- the page -----------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;max-width:1000px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dee2e6}
h3{font-size:15px;margin:18px 0 2px}.outcome{font-size:16px;font-weight:600;margin:4px 0 10px}
.outcome.rollback{color:#c92a2a}.outcome.promote{color:#2b8a3e}.outcome.flight{color:#e67700}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}dl.facts dt{color:#666}dl.facts dd{margin:0}
.note{background:#fff4e6;border-left:4px solid #e67700;padding:6px 10px;margin:8px 0}
svg{display:block;max-width:100%;height:auto;font-size:11px}svg text{fill:#495057}
.axis{stroke:#868e96}.grid{stroke:#e9ecef}.band-a{fill:#f8f9fa}.band-b{fill:#f1f3f5}.band-label{font-size:11px}
.weight{fill:none;stroke:#d9480f;stroke-width:2.5}.series{fill:none;stroke-width:2}.series-stable{stroke-width:1.5}
.threshold path{fill:none;stroke-width:1.5;stroke-dasharray:6 4}.threshold text{font-size:11px}
.marker line{stroke-dasharray:2 3;stroke-width:1}.marker text.marker-number{fill:#fff;font-weight:700;font-size:10px}
.nodata{font-size:13px;fill:#c92a2a}.interval{fill:#ffd8a8;opacity:.7;stroke:none}.legend{margin:2px 0 0;padding:0;list-style:none;display:flex;gap:16px;flex-wrap:wrap;color:#495057}
.swatch{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}.swatch.dash{background:none;border-top:2px dashed}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;vertical-align:top;padding:4px 6px;border-bottom:1px solid #e9ecef}
th{background:#f8f9fa}td.num{white-space:nowrap}code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
td ul{margin:0;padding-left:16px}pre{background:#f8f9fa;padding:10px;overflow:auto;font-size:12px}
.action{display:inline-block;border-radius:3px;padding:0 6px;color:#fff;font-weight:600}
""".strip()


def render_html(report: RolloutReport) -> str:
    """The whole page: outcome and facts, the traffic weight, one chart per gate or trigger
    metric, the commit log and the incident records."""
    kind, sentence = outcome(report)
    title = f"{report.model} {report.candidate} in {report.environment}: rollout report"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{_e(title)}</title>",
           f"<style>{_STYLE}</style>", "</head>", "<body>", "<header>",
           f"<h1>{_e(report.model)} {_e(report.candidate)} in {_e(report.environment)}</h1>",
           f'<p class="outcome {_e(kind)}">{_e(sentence)}</p>', '<dl class="facts">']
    facts = [("candidate", report.candidate), ("stable", report.stable),
             ("period shown", f"{utc_text(report.start)} to {utc_text(report.end)} (times in UTC)"),
             ("commits", str(len(report.commits))),
             ("metrics from", report.source or "nowhere")]
    if report.step is not None:
        facts.append(("resolution", f"one point per {format_duration(report.step)}"))
    if report.progress_deadline:
        facts.append(("progress deadline", report.progress_deadline))
    out += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts]
    out.append("</dl>")
    out += [f'<p class="note">{_e(note)}</p>' for note in report.notes]
    out += ["</header>", '<section id="traffic">', "<h2>Traffic to the candidate</h2>",
            f"<p>Share of user traffic routed to {_e(report.candidate)}, as the reconciler's commits set it "
            "(their <code>Sluice-Weight</code> trailers); numbered markers are the commits below.</p>",
            weight_chart(report), "</section>", '<section id="metrics">', "<h2>Gate and trigger metrics</h2>"]
    if report.charts_missing:
        out.append(f'<p class="note">No metric charts: {_e(report.charts_missing)}</p>')
    else:
        out.append("<p>Each gate and rollback-trigger metric of the release, for the candidate and the stable, "
                   "against its thresholds over the time they applied (a stage's gates during that stage, "
                   "the triggers while the candidate was in flight; limits relative to the stable are computed "
                   "from the stable's series).</p>")
        out += [_metric_section(report, series) for series in report.metrics]
    if report.judgements:
        out += ['</section>', '<section id="judgements">', "<h2>Statistical gates and triggers</h2>",
                "<p>What the judge said along each stage: the estimate (the candidate against the stable) and its "
                "confidence interval, computed again at each step from the evidence since the stage began, "
                "against the limit. Worse once the whole interval is above the limit, not worse once it is all "
                "below; points are coloured by that verdict, and hovering one shows the judge's message.</p>"]
        out += [_judgement_section(report, series) for series in report.judgements]
    out += ['</section>', '<section id="commits">', "<h2>Commits</h2>", _commit_table(report), "</section>"]
    if report.incidents:
        out += ['<section id="incidents">', "<h2>Incident record" + ("s" if len(report.incidents) > 1 else "") + "</h2>"]
        for incident in report.incidents:
            out.append(f"<h3><code>{_e(incident.path)}</code></h3>")
            if incident.summary:
                out.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in incident.summary) + "</ul>")
            out.append(f"<pre>{_e(incident.text)}</pre>")
        out.append("</section>")
    out += ["<footer><p>Written by <code>reconciler report</code>: a single file with no scripts and no external "
            "resources.</p></footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _metric_section(report: RolloutReport, series: MetricSeries) -> str:
    heading = series.metric + (f" ({series.unit})" if series.unit else "")
    parts = [f'<figure class="metric" id="metric-{_e(series.metric)}">', f"<h3>{_e(heading)}</h3>"]
    if series.description:
        parts.append(f"<p>{_e(series.description)}</p>")
    parts.append(metric_chart(report, series))
    legend = [(COLORS["candidate"], f"candidate {report.candidate}", False),
              (COLORS["stable"], f"stable {report.stable}", False)]
    legend += [(COLORS["upper" if b.upper else "lower"], f"{b.label} ({b.source})", True) for b in series.bounds]
    items = _legend_items(dict.fromkeys(legend))
    if not series.bounds:
        items.append("<li>no threshold applied in this period (its gate is at a stage the rollout did not run)</li>")
    parts.append('<ul class="legend">' + "".join(items) + "</ul>")
    parts.append("</figure>")
    return "\n".join(parts)


def _judgement_section(report: RolloutReport, series: JudgementSeries) -> str:
    parts = [f'<figure class="judgement" id="judgement-{_e(series.metric)}-{_e(series.source.replace(" ", "-"))}">',
             f"<h3>{_e(series.metric)}: {_e(series.label)} ({_e(series.source)})</h3>"]
    if series.last is not None:
        parts.append(f"<p>Last judgement: {_e(series.last.message)}</p>")
    parts.append(judgement_chart(report, series))
    legend = [(COLORS["candidate"], "estimate", False), ("#ffd8a8", f"{series.confidence:.0%} interval", False),
              (COLORS["upper"], f"limit {series.label}", True)]
    legend += [(color, str(verdict), False) for verdict, color in VERDICT_COLORS.items()]
    parts.append('<ul class="legend">' + "".join(_legend_items(legend)) + "</ul>")
    parts.append("</figure>")
    return "\n".join(parts)


def _legend_items(entries: Iterable[tuple[str, str, bool]]) -> list[str]:
    """<li>s of (colour, text, dashed): a swatch, then the text."""
    return [f'<li><span class="swatch{" dash" if dashed else ""}" style="{"border-color" if dashed else "background"}:'
            f'{color}"></span>{_e(text)}</li>' for color, text, dashed in entries]


def _commit_table(report: RolloutReport) -> str:
    rows = ["<table>", "<thead><tr><th>#</th><th>commit</th><th>time (Sluice-At)</th><th>action</th><th>stage</th>"
            "<th>weight (%)</th><th>reason</th></tr></thead>", "<tbody>"]
    for k, c in enumerate(report.commits, 1):
        color = ACTION_COLORS.get(c.action, ACTION_COLORS[""])
        reasons = c.reasons or (c.subject,)
        rows.append(
            f'<tr class="commit commit-{_e(c.action or "hand")}"><td class="num">{k}</td>'
            f'<td class="num"><code title="{_e(c.sha)}">{_e(c.sha[:12])}</code></td>'
            f'<td class="num">{_e(utc_text(c.at))}</td>'
            f'<td><span class="action" style="background:{color}">{_e(c.action or "by hand")}</span></td>'
            f'<td class="num">{_e(c.stage)}</td><td class="num">{_e(c.weight)}</td>'
            f'<td><ul>{"".join(f"<li>{_e(r)}</li>" for r in reasons)}</ul></td></tr>')
    rows += ["</tbody>", "</table>"]
    if any(c.by_hand for c in report.commits):
        rows.append('<p class="note">Commits "by hand" changed the environment file without the reconciler '
                    "(an edit or a <code>git revert</code>): the traffic chart follows the reconciler's trailers "
                    "only, so read those commits to see what they changed.</p>")
    return "\n".join(rows)


def _arrow(text: str, side: int) -> int | None:
    """A side of a trailer's "1 -> 2": _arrow("1 -> 2", 1) == 2; "-" and "" are None."""
    parts = text.split("->")
    try:
        return int(parts[side].strip()) if len(parts) == 2 else None
    except ValueError:
        return None
