"""Gather a rollout report: its commits from git, its metrics from Prometheus, its incident records.

Which rollout: the latest `Sluice-Action: start` of the model in the environment (at or before
`until`, when given), and every commit after it that touches the environment file: the
reconciler's decisions for that model (their trailers), and changes made by hand (no trailers).

What the charts show: from a little before the start to a little after the rollout ended
(promoted, rolled back or stopped; now while it is in flight), unless `since`/`until` say
otherwise. One range query per gate or trigger metric of the candidate's release, rendered from
the environment's catalog exactly as the reconcile pass renders it, so the chart shows the
numbers the reconciler judged. At most MAX_POINTS points per series. Statistical gates and
triggers also get their evidence (through the reconcile pass's own `observe`), judged again at
each step of their stages.

Prometheus being unreachable is not fatal: the commit log and the incident record are the core
of a post-mortem, so the page is still written and says why its charts are missing
(`RolloutReport.charts_missing`); the CLI warns on stderr. A query failing for one metric leaves
that chart empty with the error written on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

from ruamel.yaml import YAML, YAMLError

from ..core.environment import Environment, render_query
from ..core.repository import Repository
from ..core.rollout_report import (
    CommitRecord,
    Incident,
    JudgementSeries,
    MetricSeries,
    Point,
    TERMINAL,
    RolloutReport,
    gate_bounds,
    in_flight,
    judged_rules,
    judgement_points,
    progress_deadlines,
    render_html,
    report_metrics,
)
from .files import write_atomically
from .git import Commit, GitRepository
from .prometheus import PrometheusClient, PrometheusError, PrometheusUnreachable, observe, series_key
from .repo_loader import load_repository

#: Points per series at most: enough for a smooth line in a 730-pixel-wide plot.
MAX_POINTS = 250
#: Range-query steps to choose from: the smallest that keeps a series within MAX_POINTS.
STEPS = [timedelta(seconds=s) for s in (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)]

ClientFactory = Callable[[Environment, str | None], PrometheusClient]


class ReportError(Exception):
    """The report cannot be made (usage error): the message says what to do."""


@dataclass(frozen=True)
class Rollout:
    """The commits of one rollout, oldest first, and the versions they name."""

    commits: tuple[CommitRecord, ...]
    candidate: str
    stable: str


def default_client(environment: Environment, url: str | None) -> PrometheusClient:
    return PrometheusClient(url or environment.metrics.prometheus_url, environment.metrics.timeout.total_seconds())


def build_report(root: Path, environment: str, model: str, *, now: datetime, prometheus_url: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 client_factory: ClientFactory = default_client, source: str | None = None) -> RolloutReport:
    """The report of the latest rollout of `model` in `environment` (at or before `until`).

    `source` says where the series come from when the client is not a plain Prometheus (the
    demo's replayed answers); by default, "Prometheus at URL".
    """
    if since is not None and until is not None and since >= until:
        raise ReportError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    root = Path(root)
    repo = load_repository(root).repository  # a report reads history: errors elsewhere do not stop it
    git = GitRepository(root)
    rollout = find_rollout(git, root, environment, model, until)
    flying = in_flight(list(rollout.commits), until or now) or (now, now)  # never empty: it has its start
    lead = _margin(flying[1] - flying[0], repo.environments.get(environment))
    start = since or flying[0] - lead
    ended = any(c.action in TERMINAL for c in rollout.commits)
    end = until or (flying[1] + lead if ended else max(now, flying[0] + lead))
    if end <= start:
        raise ReportError(f"the period from {start.isoformat()} to {end.isoformat()} is empty: check --since/--until")
    commits = tuple(c for c in rollout.commits if not c.by_hand or start <= c.at <= end)
    release = repo.release(model, rollout.candidate)
    deadline = None if release is None else progress_deadlines(
        release.rollout, [c for c in commits if c.version == rollout.candidate and not c.by_hand], end)
    report = RolloutReport(environment, model, rollout.candidate, rollout.stable, start, end, commits,
                           incidents=tuple(_incidents(root, environment, model, rollout)), progress_deadline=deadline)
    return _with_metrics(report, repo, prometheus_url, client_factory, source)


def make_report(root: Path, environment: str, model: str, out: Path, **options: Any) -> RolloutReport:
    """Build the report (`build_report`'s options) and write its page to `out`, atomically: a
    reader never sees half a page, and a failed write leaves the old file as it was."""
    report = build_report(root, environment, model, **options)
    try:
        write_atomically(Path(out), render_html(report))
    except OSError as err:
        raise ReportError(f"cannot write {out}: {err.strerror or err}") from None
    return report


# --- git ------------------------------------------------------------------------------------------

def find_rollout(git: GitRepository, root: Path, environment: str, model: str,
                 until: datetime | None = None) -> Rollout:
    git.head()  # GitError when this is not a git checkout with commits
    env_file = root / "environments" / f"{environment}.yaml"
    records = []
    for commit in reversed(git.log(env_file)):  # oldest first
        trailers = commit.trailers
        ours = _one(trailers, "Sluice-Model") == model and _one(trailers, "Sluice-Environment") == environment
        if ours or not _one(trailers, "Sluice-Action"):
            record = commit_record(commit)
            if until is None or record.at <= until:
                records.append(record)
    starts = [k for k, r in enumerate(records) if r.action == "start"]
    if not starts:
        when = f" at or before {until.isoformat()}" if until is not None else ""
        if not env_file.is_file():
            known = ", ".join(sorted(p.stem for p in (root / "environments").glob("*.yaml")))
            raise ReportError(f"no environments/{environment}.yaml (known: {known}) and no rollout of {model} "
                              f"in {environment}{when} in its git history")
        raise ReportError(f"no rollout of {model} in {environment}{when}: the history of "
                          f"environments/{environment}.yaml has no commit with `Sluice-Action: start` and "
                          f"`Sluice-Model: {model}` (rollouts begin with `reconciler start {model} VERSION "
                          f"-e {environment}`)")
    first = records[starts[-1]]
    return Rollout(tuple(records[starts[-1]:]), first.version, first.stable)


def commit_record(commit: Commit) -> CommitRecord:
    trailers = commit.trailers
    return CommitRecord(
        sha=commit.sha, at=_instant(_one(trailers, "Sluice-At")) or commit.date, subject=commit.subject,
        action=_one(trailers, "Sluice-Action"), version=_one(trailers, "Sluice-Version"),
        stable=_one(trailers, "Sluice-Stable"), stage=_one(trailers, "Sluice-Stage"),
        weight=_one(trailers, "Sluice-Weight"), reasons=tuple(trailers.get("Sluice-Reason", ())))


def _one(trailers: Mapping[str, list[str]], key: str) -> str:
    values = trailers.get(key) or [""]
    return values[0]


def _instant(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _margin(span: timedelta, environment: Environment | None) -> timedelta:
    """Shown before the start and after the end: two metric windows, or 5% of the rollout."""
    window = environment.metrics.window if environment is not None else timedelta(minutes=5)
    return max(2 * window, span * 0.05)


# --- incident records -------------------------------------------------------------------------------

def _incidents(root: Path, environment: str, model: str, rollout: Rollout) -> list[Incident]:
    """The records the rollout's rollbacks wrote: incidents/<env>/*.yaml naming the same model,
    version and detection time as a rollback commit."""
    wanted = {(c.version, c.at) for c in rollout.commits if c.action == "rollback"}
    folder = root / "incidents" / environment
    if not wanted or not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            data = YAML(typ="safe", pure=True).load(text)
        except YAMLError:
            continue
        if not isinstance(data, dict) or data.get("model") != model:
            continue
        detected = _instant(str(data.get("detected_at", "")).replace("Z", "+00:00"))
        if (str(data.get("version")), detected) in wanted:
            breaches = [str(b.get("message")) for b in data.get("breaches") or [] if isinstance(b, dict)]
            summary = breaches or [str(r) for r in data.get("reasons") or []]
            found.append(Incident(path.relative_to(root).as_posix(), text, tuple(summary)))
    return found


# --- Prometheus -------------------------------------------------------------------------------------

def range_step(start: datetime, end: datetime) -> timedelta:
    """The smallest step in STEPS that keeps (end - start) / step within MAX_POINTS."""
    return next((s for s in STEPS if (end - start) / s <= MAX_POINTS), STEPS[-1])


def _with_metrics(report: RolloutReport, repo: Repository, url: str | None,
                  client_factory: ClientFactory, source: str | None) -> RolloutReport:
    env = repo.environments.get(report.environment)
    release = repo.release(report.model, report.candidate)
    if env is None:
        return replace(report, charts_missing=f"environments/{report.environment}.yaml does not load (run "
                        "`reconciler validate`): its metrics catalog says what to query")
    if release is None:
        return replace(report, charts_missing=f"releases/{report.model}/{report.candidate}.yaml does not load "
                        "(run `reconciler validate`): its gates and triggers say what to chart")
    client = client_factory(env, url)
    step = range_step(report.start, report.end)
    bounds = gate_bounds(release.rollout, [c for c in report.commits if c.version == report.candidate],
                         report.end)
    source = source or f"Prometheus at {client.shown_url}"  # the URL without credentials, as its messages show it
    charts = []
    for metric in report_metrics(release.rollout):
        spec = env.metrics.queries.get(metric)
        mine = tuple(b for b in bounds if b.metric == metric)
        if spec is None:
            charts.append(MetricSeries(metric, bounds=mine, error="no query of that name in the environment's "
                                       "metrics.queries"))
            continue
        try:
            query = render_query(spec.query, window=env.metrics.window, namespace=env.namespace)
            answer = client.range(query, report.start, report.end, step)
        except PrometheusUnreachable as err:
            return replace(report, charts_missing=str(err), source=source)
        except (PrometheusError, ValueError) as err:
            charts.append(MetricSeries(metric, bounds=mine, unit=spec.unit, description=spec.description,
                                       error=str(err)))
            continue
        versions: dict[str, list[Point]] = {}
        for labels, points in answer:
            key = series_key(labels, spec.labels, frozenset({report.model}))
            if key is not None:
                versions.setdefault(key[1], []).extend((t, v) for t, v in points if math.isfinite(v))
        charts.append(MetricSeries(metric, tuple(sorted(versions.get(report.candidate, ()))),
                                   tuple(sorted(versions.get(report.stable, ()))), mine, spec.unit,
                                   spec.description))
    return replace(report, metrics=tuple(charts), source=source, step=step,
                   judgements=_judgements(report, env, release, client))


def _judgements(report: RolloutReport, env: Environment, release: Any, client: PrometheusClient,
                ) -> tuple[JudgementSeries, ...]:
    """Each statistical gate and trigger judged along its stages, from the evidence the reconcile
    pass reads (the same queries: one range query per evidence template, step = the window)."""
    commits = [c for c in report.commits if c.version == report.candidate]
    rules = judged_rules(release.rollout, commits, report.end)
    if not rules:
        return ()
    window = env.metrics.window
    observed = observe(client, env, [], [report.model], report.end, report.start,
                       evidence=sorted({metric for metric, *_ in rules}))
    candidate, stable = (report.model, report.candidate), (report.model, report.stable)
    out = []
    for metric, bound, limit, confidence, source, spans in rules:
        history = observed.evidence.get(metric)
        spec = env.metrics.queries.get(metric)
        quantile = spec.evidence.quantile if spec is not None and spec.evidence is not None else None
        error = observed.error or (history.error if history is not None else "not read")
        if error or history is None:
            out.append(JudgementSeries(metric, bound, limit, confidence, source, error=error))
            continue
        segments = tuple(judgement_points(history, quantile, metric, bound, limit, confidence, candidate, stable,
                                          span, window) for span in spans)
        out.append(JudgementSeries(metric, bound, limit, confidence, source, segments))
    return tuple(out)
