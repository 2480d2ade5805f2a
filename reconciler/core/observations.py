"""What one reconcile pass knows about an environment's live versions: metric values, requests
served over time and the newest sample per version, all as of one instant (`at`).

Values, not a client: the Prometheus adapter builds them (one query per metric per environment,
grouped by model and version, never one per rollout) and `decide` reads them. Errors are values
too: a metric whose query failed carries its error, and a pass that could not reach Prometheus at
all carries `error`, so the decision can hold and say why instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

#: (model, version) as in the release files: ("chat-assistant", "1.3.0").
VersionKey = tuple[str, str]

#: The catalog entry the adapter reads as a range query (`requests` served per window) and the one
#: it reads as each version's newest raw sample time (`last_sample`, a Unix timestamp per version).
REQUESTS = "requests"
LAST_SAMPLE = "last_sample"


@dataclass(frozen=True)
class MetricValues:
    """One metric's instant answer: a value per version that reported (absent = no series).

    NaN answers (a quantile over no data, 0/0) are dropped by the adapter: absent, not a number.
    """

    name: str
    values: Mapping[VersionKey, float] = field(default_factory=dict)
    error: str | None = None  # the query failed (timeout, HTTP error, bad PromQL): not "no data"


@dataclass(frozen=True)
class RequestHistory:
    """Requests served per `window`, per version, as (window end, count) points in time order.

    From one range query of the `requests` metric (step = window), from the earliest stage start
    of the environment's rollouts (or the longest dead man's switch) up to `at`. A stage's requests
    are the sum of the points after it started; a version's last point with requests is when it
    was last seen serving.
    """

    points: Mapping[VersionKey, tuple[tuple[datetime, float], ...]] = field(default_factory=dict)
    error: str | None = None

    def served_since(self, key: VersionKey, start: datetime, window: timedelta) -> float:
        """Requests in the windows that began at or after `start` (each point covers the `window`
        before its end).

        Example: 5m windows ending 10:05 (120), 10:10 (80), 10:15 (95) and start 10:04 -> 80 + 95
        = 175. The window that straddles `start` is left out: counts are a lower bound, never
        inflated by the previous stage's traffic.
        """
        return sum(count for end, count in self.points.get(key, ()) if end - window >= start)

    def last_served(self, key: VersionKey) -> datetime | None:
        """The end of the last window in which the version served at least one request."""
        served = [end for end, count in self.points.get(key, ()) if count > 0]
        return max(served) if served else None


@dataclass(frozen=True)
class VersionCounts:
    """Counts one version accumulated since a stage began: what `judge` weighs.

    Proportions (error rate) use `events` of `trials` (5xx of requests); histograms (latency) use
    `buckets`, (le, cumulative count) pairs in ascending `le` with +inf last, as Prometheus'
    `_bucket` series give them. Counts are floats: `increase()` extrapolates.
    """

    trials: float = 0.0
    events: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()

    def __add__(self, other: VersionCounts) -> VersionCounts:
        return VersionCounts(trials=self.trials + other.trials, events=self.events + other.events,
                             buckets=_add_buckets(self.buckets, other.buckets))

    @property
    def total(self) -> float:
        """Requests counted: the +inf bucket of a histogram, else the trials."""
        return self.buckets[-1][1] if self.buckets else self.trials


def _add_buckets(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Sum two cumulative histograms at the boundaries both have. A boundary only one side has (the
    pods changed bucket layout between windows, docs/runbook.md) has no count on the other side, and
    0 there would make its CDF wrong; dropping it leaves wider buckets, which the judge reads safely."""
    if not a or not b:
        return a or b
    other = dict(b)
    return tuple((le, count + other[le]) for le, count in a if le in other)


@dataclass(frozen=True)
class EvidenceHistory:
    """One evidence metric's per-window increments per version, as (window end, counts) points in
    time order: from one range query per evidence query (step = window), like RequestHistory.

    `kind` is the catalog's evidence kind: "histogram" or "proportion".
    """

    kind: str
    points: Mapping[VersionKey, tuple[tuple[datetime, VersionCounts], ...]] = field(default_factory=dict)
    error: str | None = None  # a query failed: the judgement holds, never rolls back
    # The sums already made: a pass asks for the same version and stage start once per statistical
    # gate or trigger and again to plan, and each sum adds every window's buckets since the stage began.
    _sums: dict[tuple[VersionKey, datetime, timedelta], VersionCounts] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def since(self, key: VersionKey, start: datetime, window: timedelta) -> VersionCounts:
        """The counts of the windows that began at or after `start` (the rule of
        RequestHistory.served_since: the window that straddles `start` is left out).

        Example: 5m windows ending 10:05 (trials 120), 10:10 (80), 10:15 (95) and start 10:04 ->
        VersionCounts(trials=175, ...).
        """
        cached = self._sums.get((key, start, window))
        if cached is not None:
            return cached
        total = VersionCounts()
        for end, counts in self.points.get(key, ()):
            if end - window >= start:
                total = total + counts
        self._sums[(key, start, window)] = total
        return total


@dataclass(frozen=True)
class Observations:
    """Everything a pass read for one environment, as of `at` (the pass's `now`, or `--at`)."""

    at: datetime
    metrics: Mapping[str, MetricValues] = field(default_factory=dict)
    requests: RequestHistory = RequestHistory()
    last_sample: Mapping[VersionKey, datetime] = field(default_factory=dict)
    last_sample_error: str | None = None
    evidence: Mapping[str, EvidenceHistory] = field(default_factory=dict)  # by metric name
    error: str | None = None  # Prometheus unreachable or answering errors to everything
    queries: int = 0  # how many queries the pass sent for this environment

    def value(self, metric: str, key: VersionKey) -> float | None:
        found = self.metrics.get(metric)
        return None if found is None else found.values.get(key)

    def metric_error(self, metric: str) -> str | None:
        found = self.metrics.get(metric)
        if found is None:
            return f"{metric} was not queried"
        return found.error

    @property
    def newest_sample(self) -> datetime | None:
        """The newest raw sample of any version: how fresh the environment's data is at all."""
        return max(self.last_sample.values(), default=None)
