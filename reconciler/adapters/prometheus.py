"""Read an environment's observations from Prometheus' HTTP API.

Design decisions:
- One query per catalog metric per environment, each grouped by model and version (docs/formats.md,
  "Metrics"). The number of queries depends on the catalog, never on how many models or
  rollouts the environment has.
- Errors are values (see `core.observations`). A failed query is that metric's error. Only a
  Prometheus that cannot be reached on the first query (refused, unresolvable, timed out) fails
  the whole pass, and it fails at once: a dead server costs one timeout, not one per metric.
- NaN and ±Inf are absent, not numbers: a quantile over no requests, or 0/0, means "no data".
- A series counts only if its labels name a watched model and a well-formed version label
  ("v1.3.0"); anything else is ignored, not guessed. Two series for the same version mean the
  query does not group by version, so that metric fails instead of picking one of them.
- `requests` is a range query whose grid ends at `at`, one point per window, so windows tile
  back from `at` without overlap and the newest window is complete. Prometheus refuses more than
  11,000 points per series, so a long span is split into several range queries (the count then
  depends on the span, still not on the models).
- Evidence for statistical gates and triggers (`observe(..., evidence=...)`) is one range query
  per evidence template (`buckets`, or `events` and `trials`), from the earliest stage start to
  `at`, on the same window grid as `requests` and split the same way: per-window increments per
  version, summed by the judge since the stage began. Histogram series group by `le` ("+Inf"
  parsed), each window's buckets cumulative as Prometheus keeps them.
- After the first query, the rest run on a small thread pool; results are keyed by metric name,
  so the outcome does not depend on which finishes first.
- stdlib urllib only: a handful of form POSTs needs no dependency.
"""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any, Callable, Iterable, Mapping

from ..core.environment import Environment, Evidence, SeriesLabels, render_query
from ..core.observations import (
    LAST_SAMPLE,
    REQUESTS,
    EvidenceHistory,
    MetricValues,
    Observations,
    RequestHistory,
    VersionCounts,
    VersionKey,
)
from ..core.types import SEMVER
from ..core.urls import without_credentials

#: The job key prefix of an evidence query (its results go to `Observations.evidence`, not `metrics`).
_EVIDENCE = "evidence"
#: Prometheus refuses range queries with more points per series than this.
MAX_POINTS_PER_SERIES = 11_000
#: Queries in flight at once after the first one.
CONCURRENCY = 4
#: Larger answers are refused: a grouped query over one environment is a few kilobytes.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

_VERSION_LABEL = re.compile(rf"v({SEMVER})")

Series = tuple[dict[str, str], float]
RangeSeries = tuple[dict[str, str], list[tuple[datetime, float]]]


class PrometheusError(Exception):
    """A query failed. The message is for people; `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PrometheusUnreachable(PrometheusError):
    """No answer at all: connection refused, name not resolved, timed out, connection dropped."""


class PrometheusQueryError(PrometheusError):
    """The query's own fault: bad PromQL (400), failed evaluation (422), a range or ungrouped answer."""


class PrometheusClient:
    """Instant and range queries against one Prometheus server. Safe to share between threads."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.queries_sent = 0
        self._lock = threading.Lock()
        self.shown_url = without_credentials(self.base_url)  # for messages and reports: never the credentials

    def instant(self, query: str, at: datetime) -> list[Series]:
        """The query's value at `at`: one (labels, value) per series."""
        data = self._post("/api/v1/query", {"query": query, "time": _unix(at)}, query)
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [(dict(s["metric"]), _number(s["value"][1])) for s in result]
            if kind == "scalar":
                return [({}, _number(result[1]))]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise self._malformed(query, err) from None
        raise PrometheusQueryError(
            f"Prometheus at {self.shown_url} answered a {kind} to query {_one_line(query)}: "
            "an instant query must give a vector (no range selector at the top level)"
        )

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        """The query evaluated at start, start + step, ... <= end: (labels, [(time, value)]) per series."""
        params = {"query": query, "start": _unix(start), "end": _unix(end), "step": repr(step.total_seconds())}
        data = self._post("/api/v1/query_range", params, query)
        if data.get("resultType") != "matrix":
            raise self._malformed(query, f"resultType {data.get('resultType')!r}")
        try:
            return [
                (dict(s["metric"]), [(datetime.fromtimestamp(float(t), UTC), _number(v)) for t, v in s["values"]])
                for s in data["result"]
            ]
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as err:
            raise self._malformed(query, err) from None

    def _post(self, path: str, params: dict[str, str], query: str) -> dict[str, Any]:
        with self._lock:
            self.queries_sent += 1
        # Ask Prometheus to give up too, so an abandoned query stops costing it. Plain seconds:
        # Prometheus reads "1.5" but not "1.5s".
        body = urllib.parse.urlencode({**params, "timeout": repr(float(self.timeout))}).encode()
        request = urllib.request.Request(
            self.base_url + path, data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as err:
            try:
                raw = err.read(64 * 1024)
            except (OSError, HTTPException):
                raw = b""
            finally:
                err.close()
            raise self._http_error(err.code, err.reason, raw, query) from None
        except (urllib.error.URLError, OSError, HTTPException) as err:
            raise PrometheusUnreachable(self._unreachable(err)) from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise PrometheusError(
                f"Prometheus at {self.shown_url} answered more than {MAX_RESPONSE_BYTES // 2**20} MiB "
                f"to query {_one_line(query)}: group it by model and version"
            )
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("status") != "success" or not isinstance(answer.get("data"), dict):
            raise self._malformed(query, "not a Prometheus API answer")
        return answer["data"]

    def _http_error(self, code: int, reason: str, raw: bytes, query: str) -> PrometheusError:
        try:
            answer = json.loads(raw)
            detail = f"({answer['errorType']}): {answer['error']}"
        except (ValueError, KeyError, TypeError):
            text = " ".join(raw.decode("utf-8", "replace").split())[:200]
            detail = f"{reason}: {text}" if text else str(reason)
        kind = PrometheusQueryError if code in (400, 422) else PrometheusError
        return kind(f"Prometheus at {self.shown_url} answered HTTP {code} {detail} for query {_one_line(query)}", code)

    def _unreachable(self, err: BaseException) -> str:
        reason = err.reason if isinstance(err, urllib.error.URLError) else err
        if isinstance(reason, TimeoutError):
            return f"no answer from Prometheus at {self.shown_url}: timed out after {self.timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            explained = "connection refused"
        elif isinstance(reason, OSError) and reason.strerror:
            explained = reason.strerror[:1].lower() + reason.strerror[1:]
        else:
            explained = str(reason) or type(reason).__name__
        return f"cannot reach Prometheus at {self.shown_url}: {explained}"

    def _malformed(self, query: str, why: object) -> PrometheusError:
        return PrometheusError(
            f"Prometheus at {self.shown_url} gave an answer that cannot be read ({why}) "
            f"to query {_one_line(query)}"
        )


def client_for(environment: Environment) -> PrometheusClient:
    """A client for the environment's Prometheus, with its `metrics.timeout` per query."""
    return PrometheusClient(environment.metrics.prometheus_url, environment.metrics.timeout.total_seconds())


def observe(
    client: PrometheusClient,
    environment: Environment,
    metrics: Iterable[str],
    models: Iterable[str],
    at: datetime,
    since: datetime,
    evidence: Iterable[str] = (),
    evidence_since: datetime | None = None,
) -> Observations:
    """Read `metrics` (catalog names) for `models` as of `at`.

    Each metric is one instant query at `at`, except `requests` (one range query from `since` to
    `at`, one point per `metrics.window`) and `last_sample` (each version's newest sample time).
    `requests` and `last_sample` are read only when named in `metrics`. Each metric named in
    `evidence` has its catalog entry's evidence templates read as range queries on the same grid,
    from `evidence_since` (default `since`) to `at`.
    """
    _aware(at, "at")
    _aware(since, "since")
    watched = frozenset(models)
    settings = environment.metrics
    sent_before = client.queries_sent
    outcomes: dict[str, MetricValues | RequestHistory | _LastSample] = {}
    evidence_out: dict[str, EvidenceHistory] = {}
    jobs: list[tuple[str | tuple[str, str], Callable[[], Any]]] = []

    for name in dict.fromkeys(metrics):
        spec = settings.queries.get(name)
        if spec is None:
            outcomes[name] = _failed(name, f"{name}: no query of that name in the environment's metrics.queries")
            continue
        try:
            query = render_query(spec.query, window=settings.window, namespace=environment.namespace)
        except ValueError as err:
            outcomes[name] = _failed(name, f"{name}: {err}")
            continue
        jobs.append((name, _job(client, name, query, spec.labels, watched, at, since, settings.window)))
    for name in dict.fromkeys(evidence):
        spec = settings.queries.get(name)
        if spec is None or spec.evidence is None:
            evidence_out[name] = EvidenceHistory("", error=f"{name}: no evidence query in the environment's "
                                                 f"metrics.queries.{name}.evidence")
            continue
        try:
            queries = _evidence_queries(spec.evidence, settings.window, environment.namespace)
        except ValueError as err:
            evidence_out[name] = EvidenceHistory(spec.evidence.kind, error=f"{name}: evidence: {err}")
            continue
        jobs.append(((_EVIDENCE, name), _evidence_job(client, name, spec.evidence.kind, queries, spec.labels, watched,
                                                     at, evidence_since or since, settings.window)))

    done: dict[str | tuple[str, str], Any] = {}
    if jobs:
        first_name, first_job = jobs[0]
        first = _attempt(first_job)
        if isinstance(first, PrometheusUnreachable):
            return Observations(at=at, error=str(first), queries=client.queries_sent - sent_before)
        done[first_name] = first
        if len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(jobs) - 1)) as pool:
                futures = {name: pool.submit(_attempt, job) for name, job in jobs[1:]}
            done.update({name: future.result() for name, future in futures.items()})
    for job_key, outcome in done.items():
        if isinstance(job_key, tuple):
            name = job_key[1]
            evidence_out[name] = (EvidenceHistory(settings.queries[name].evidence.kind, error=str(outcome))  # type: ignore[union-attr]
                                  if isinstance(outcome, PrometheusError) else outcome)
        else:
            outcomes[job_key] = _failed(job_key, str(outcome)) if isinstance(outcome, PrometheusError) else outcome

    # Every query failed, and none by its own fault: Prometheus itself is failing.
    failures = [o for o in done.values() if isinstance(o, PrometheusError)]
    error = None
    if failures and len(failures) == len(done) and not any(isinstance(f, PrometheusQueryError) for f in failures):
        error = f"Prometheus answered no query: {failures[0]}"

    requests = outcomes.get(REQUESTS)
    last = outcomes.get(LAST_SAMPLE)
    return Observations(
        at=at,
        metrics={n: o for n, o in outcomes.items() if isinstance(o, MetricValues) and n not in (REQUESTS, LAST_SAMPLE)},
        requests=requests if isinstance(requests, RequestHistory) else RequestHistory(),
        last_sample=last.times if isinstance(last, _LastSample) else {},
        last_sample_error=last.error if isinstance(last, _LastSample) else None,
        evidence=evidence_out,
        error=error,
        queries=client.queries_sent - sent_before,
    )


@dataclass(frozen=True)
class _LastSample:
    times: Mapping[VersionKey, datetime]
    error: str | None = None


def _failed(name: str, message: str) -> MetricValues | RequestHistory | _LastSample:
    if name == REQUESTS:
        return RequestHistory(error=message)
    if name == LAST_SAMPLE:
        return _LastSample({}, message)
    return MetricValues(name, {}, error=message)


def _attempt(job: Callable[[], Any]) -> Any:
    try:
        return job()
    except PrometheusError as err:
        return err


def _job(
    client: PrometheusClient, name: str, query: str, labels: SeriesLabels, watched: frozenset[str],
    at: datetime, since: datetime, window: timedelta,
) -> Callable[[], MetricValues | RequestHistory | _LastSample]:
    if name == REQUESTS:
        def requests() -> RequestHistory:
            return RequestHistory(points=_history(name, _windows(client, query, since, at, window), labels, watched))
        return requests

    def instant() -> MetricValues | _LastSample:
        values = by_version(name, client.instant(query, at), labels, watched)
        if name == LAST_SAMPLE:
            return _LastSample({key: when for key, value in values.items() if (when := _datetime(value)) is not None})
        return MetricValues(name, values)
    return instant


def _windows(client: PrometheusClient, query: str, since: datetime, at: datetime, window: timedelta) -> list[RangeSeries]:
    """One range query (split under MAX_POINTS_PER_SERIES) whose points end each `window` back from `at`."""
    series: list[RangeSeries] = []
    for start, end in _range_chunks(since, at, window):
        series.extend(client.range(query, start, end, window))
    return series


def _evidence_queries(evidence: Evidence, window: timedelta, namespace: str) -> dict[str, str]:
    """The rendered templates an evidence entry reads: `buckets`, or `events` and `trials`."""
    fields = ("buckets",) if evidence.kind == "histogram" else ("events", "trials")
    rendered = {}
    for field in fields:
        template = getattr(evidence, field)
        if template is None:
            raise ValueError(f"a {evidence.kind} needs a `{field}` query")
        rendered[field] = render_query(template, window=window, namespace=namespace)
    return rendered


def _evidence_job(
    client: PrometheusClient, name: str, kind: str, queries: Mapping[str, str], labels: SeriesLabels,
    watched: frozenset[str], at: datetime, since: datetime, window: timedelta,
) -> Callable[[], EvidenceHistory]:
    def read() -> EvidenceHistory:
        if kind == "histogram":
            buckets = _windows(client, queries["buckets"], since, at, window)
            return EvidenceHistory(kind, points=_bucket_history(name, buckets, labels, watched))
        trials = _history(name, _windows(client, queries["trials"], since, at, window), labels, watched)
        events = _history(name, _windows(client, queries["events"], since, at, window), labels, watched)
        return EvidenceHistory(kind, points=_proportions(trials, events))
    return read


def _proportions(
    trials: Mapping[VersionKey, tuple[tuple[datetime, float], ...]],
    events: Mapping[VersionKey, tuple[tuple[datetime, float], ...]],
) -> dict[VersionKey, tuple[tuple[datetime, VersionCounts], ...]]:
    """Per window, trials and events together. No events series in a window means no events (Istio
    exports a 5xx series only after the first 5xx); no trials series means no data for that window."""
    out = {}
    for key, points in trials.items():
        happened = dict(events.get(key, ()))
        out[key] = tuple((when, VersionCounts(trials=n, events=happened.get(when, 0.0))) for when, n in points)
    return out


def _bucket_history(
    name: str, series: Iterable[RangeSeries], labels: SeriesLabels, watched: frozenset[str],
) -> dict[VersionKey, tuple[tuple[datetime, VersionCounts], ...]]:
    """Per version and window, the (le, cumulative count) pairs, ascending, +Inf last."""
    grid: dict[VersionKey, dict[datetime, dict[float, float]]] = {}
    for metric, values in series:
        key = series_key(metric, labels, watched)
        if key is None:
            continue
        bound = _bucket_bound(metric.get("le"))
        if bound is None:
            raise PrometheusQueryError(
                f"{name}: the evidence query gives a series for {key[0]} {key[1]} without a numeric `le` label: "
                f"it must keep the buckets, e.g. sum by ({labels.app}, {labels.version}, le) (increase(..._bucket[$window]))"
            )
        windows = grid.setdefault(key, {})
        for when, value in values:
            counts = windows.setdefault(when, {})
            if bound in counts:
                raise PrometheusQueryError(
                    f"{name}: the evidence query gives several series for {key[0]} {key[1]} le={metric['le']}: "
                    f"it must group by {labels.app}, {labels.version} and le"
                )
            counts[bound] = value
    return {
        key: tuple(
            (when, VersionCounts(buckets=tuple(sorted((b, c) for b, c in counts.items() if math.isfinite(c)))))
            for when, counts in sorted(windows.items())
        )
        for key, windows in grid.items()
    }


def _bucket_bound(text: str | None) -> float | None:
    """1.5 from "1.5", inf from "+Inf"; None for a missing or unreadable label."""
    try:
        bound = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return None if math.isnan(bound) else bound


def by_version(name: str, series: Iterable[Series], labels: SeriesLabels, watched: frozenset[str]) -> dict[VersionKey, float]:
    """Map instant series to (model, version), dropping NaN/±Inf, unwatched models and bad labels.

    Raises PrometheusQueryError when the query gives several series for one version (it does not group
    by version, so there is no single value to decide on).
    """
    found: dict[VersionKey, float] = {}
    for metric, value in series:
        key = series_key(metric, labels, watched)
        if key is None:
            continue
        if key in found:
            raise _ungrouped(name, key, labels)
        found[key] = value
    return {key: value for key, value in found.items() if math.isfinite(value)}


def series_key(metric: Mapping[str, str], labels: SeriesLabels, watched: frozenset[str]) -> VersionKey | None:
    """("chat-assistant", "1.3.0") from {app label: "chat-assistant", version label: "v1.3.0"}, else None."""
    model = metric.get(labels.app)
    if model not in watched:
        return None
    matched = _VERSION_LABEL.fullmatch(metric.get(labels.version, ""))
    return (model, matched.group(1)) if matched else None


def _history(
    name: str, series: Iterable[RangeSeries], labels: SeriesLabels, watched: frozenset[str],
) -> dict[VersionKey, tuple[tuple[datetime, float], ...]]:
    points: dict[VersionKey, dict[datetime, float]] = {}
    for metric, values in series:
        key = series_key(metric, labels, watched)
        if key is None:
            continue
        seen = points.setdefault(key, {})
        for when, value in values:
            if when in seen:  # chunks never overlap: a repeat is a second series for this version
                raise _ungrouped(name, key, labels)
            seen[when] = value
    return {
        key: tuple(sorted((when, v) for when, v in seen.items() if math.isfinite(v)))
        for key, seen in points.items()
    }


def _range_chunks(since: datetime, at: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    """(start, end) of the range queries whose points, at - k * step, cover the windows after `since`.

    The earliest point is the first whose window still reaches past `since`; at most
    MAX_POINTS_PER_SERIES points per query, oldest chunk first.
    """
    count = max(1, math.ceil((at - since) / step))
    chunks = []
    for newest in range(0, count, MAX_POINTS_PER_SERIES):
        oldest = min(count, newest + MAX_POINTS_PER_SERIES) - 1
        chunks.append((at - oldest * step, at - newest * step))
    return chunks[::-1]


def _ungrouped(name: str, key: VersionKey, labels: SeriesLabels) -> PrometheusError:
    return PrometheusQueryError(
        f"{name}: the query gives several series for {key[0]} {key[1]}: it must group by "
        f"{labels.app} and {labels.version} (one series per version)"
    )


def _number(text: str) -> float:
    return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf": float() reads them all


def _datetime(value: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _unix(when: datetime) -> str:
    return f"{when.timestamp():.3f}"


def _aware(when: datetime, name: str) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {when.isoformat()}")


def _one_line(query: str) -> str:
    return " ".join(query.split())

