"""Evidence queries against a real Prometheus: the per-window increments the adapter reads, summed
since a stage began, are the counts the history was generated with (requests, 5xx, and each
histogram bucket), read with one range query per evidence template per environment; failures
are values (one metric's EvidenceHistory.error), never the pass's.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import pytest

from reconciler.adapters import prometheus as adapter
from reconciler.adapters.prometheus import client_for, observe
from reconciler.adapters.repo_loader import load_repository
from reconciler.core.environment import Environment, Evidence, MetricQuery
from reconciler.core.observations import Observations, VersionCounts
from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

from ..prometheus_kit import (
    STEP,
    PrometheusServer,
    Traffic,
    histogram_shape,
    openmetrics,
    start_prometheus,
    utc,
)

ROOT = Path(__file__).resolve().parents[2]
AT = utc("2026-11-21T12:00:00")
HOUR_AGO = AT - timedelta(hours=1)
STAGE_STARTED = AT - timedelta(minutes=25)
WINDOW = timedelta(minutes=5)
CHAT, CODE = "chat-assistant", "code-completion"
STABLE, CANDIDATE, OTHER = (CHAT, "1.2.0"), (CHAT, "1.3.0"), (CODE, "2.0.0")


def _candidate_p99(when: datetime) -> float:
    return 1500.0 if when < AT - timedelta(minutes=12) else 2250.0  # +50% for the last 12 minutes


def _candidate_errors(when: datetime) -> float:
    return 0.01 if when < AT - timedelta(minutes=7) else 0.04


HISTORY = [
    Traffic(CHAT, "1.2.0", HOUR_AGO, AT + STEP, rps=20, error_ratio=0.01, latency_p99_ms=1500),
    Traffic(CHAT, "1.3.0", HOUR_AGO, AT + STEP, rps=lambda t: 1.0 if t.minute % 2 else 0.4,
            error_ratio=_candidate_errors, latency_p99_ms=_candidate_p99),
    Traffic(CODE, "2.0.0", HOUR_AGO, AT + STEP, rps=50, error_ratio=0.0, latency_p99_ms=300),
    Traffic("other-model", "1.0.0", HOUR_AGO, AT + STEP, rps=7),  # not watched
]
GENERATED = {(t.model, t.version): t for t in HISTORY[:3]}


def generated_counts(traffic: Traffic, start: datetime, end: datetime) -> VersionCounts:
    """What the generator put into the counters between `start` and `end`: the increments from each
    sample at or after `start` to the next, up to `end` (see demo.prometheus.openmetrics)."""
    trials = events = 0.0
    per_bucket = [0.0] * (len(SERVING_LATENCY_BUCKETS_MS) + 1)
    for t in traffic.sample_times():
        if start <= t and t + STEP <= end:
            served = _at(traffic.rps, t) * STEP.total_seconds()
            trials += served
            events += served * _at(traffic.error_ratio, t)
            shares, _ = histogram_shape(_at(traffic.latency_p99_ms, t), SERVING_LATENCY_BUCKETS_MS)
            per_bucket = [c + s * served for c, s in zip(per_bucket, shares)]
    cumulative, running = [], 0.0
    for bound, count in zip((*SERVING_LATENCY_BUCKETS_MS, math.inf), per_bucket):
        running += count
        cumulative.append((float(bound), running))
    return VersionCounts(trials=trials, events=events, buckets=tuple(cumulative))


def _at(value, when: datetime) -> float:
    return float(value(when)) if callable(value) else float(value)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    started = start_prometheus(tmp_path_factory.mktemp("prometheus"), openmetrics(HISTORY))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def staging(server: PrometheusServer) -> Environment:
    environment = load_repository(ROOT).repository.environments["staging"]
    return _with_queries(environment, prometheus_url=server.url)


def _with_queries(environment: Environment, **changes: object) -> Environment:
    return environment.model_copy(update={"metrics": environment.metrics.model_copy(update=changes)})


def read(environment: Environment, evidence: list[str], at: datetime = AT) -> Observations:
    return observe(client_for(environment), environment, [], (CHAT, CODE), at, at - timedelta(hours=1),
                   evidence=evidence, evidence_since=STAGE_STARTED - WINDOW)


@pytest.fixture(scope="module")
def observed(staging: Environment) -> Observations:
    return read(staging, ["latency_p99_ms", "error_rate"])


def test_one_range_query_per_evidence_template(observed: Observations) -> None:
    assert observed.error is None
    assert observed.queries == 3  # latency: buckets; error rate: events and trials
    assert {name: h.error for name, h in observed.evidence.items()} == {"latency_p99_ms": None, "error_rate": None}
    assert observed.evidence["latency_p99_ms"].kind == "histogram"
    assert observed.evidence["error_rate"].kind == "proportion"


def test_windows_tile_back_from_at(observed: Observations) -> None:
    for history in observed.evidence.values():
        assert set(history.points) == set(GENERATED)  # other-model is not watched
        for key in GENERATED:
            ends = [end for end, _ in history.points[key]]
            assert ends == [AT - k * WINDOW for k in range(5, -1, -1)], key  # from the first window after the stage began


@pytest.mark.parametrize("key", list(GENERATED))
def test_increments_summed_since_the_stage_began_are_what_was_generated(observed: Observations, key) -> None:
    generated = generated_counts(GENERATED[key], STAGE_STARTED, AT)
    proportion = observed.evidence["error_rate"].since(key, STAGE_STARTED, WINDOW)
    assert proportion.trials == pytest.approx(generated.trials, rel=1e-6)
    assert proportion.events == pytest.approx(generated.events, rel=1e-6, abs=1e-9)
    histogram = observed.evidence["latency_p99_ms"].since(key, STAGE_STARTED, WINDOW)
    assert [le for le, _ in histogram.buckets] == [le for le, _ in generated.buckets]  # ascending, +Inf parsed, last
    assert histogram.buckets[-1][0] == math.inf
    assert [count for _, count in histogram.buckets] == pytest.approx(
        [count for _, count in generated.buckets], rel=1e-6, abs=1e-9)


def test_a_metric_without_evidence_query_is_that_metrics_error(staging: Environment) -> None:
    observed = read(staging, ["quality_score", "error_rate"])
    assert "no evidence query" in observed.evidence["quality_score"].error
    assert observed.evidence["error_rate"].error is None
    assert observed.queries == 2 and observed.error is None


def test_a_failing_evidence_query_is_a_value(staging: Environment) -> None:
    broken = Evidence(kind="proportion", events="sum by (destination_app, destination_version) (increase(",
                      trials="sum by (destination_app, destination_version) (increase(istio_requests_total[$window]))")
    queries = {**staging.metrics.queries, "error_rate": staging.metrics.queries["error_rate"].model_copy(
        update={"evidence": broken})}
    observed = read(_with_queries(staging, queries=queries), ["error_rate", "latency_p99_ms"])
    assert "HTTP 400" in observed.evidence["error_rate"].error
    assert observed.evidence["error_rate"].points == {}
    assert observed.evidence["latency_p99_ms"].error is None and observed.error is None


def test_buckets_summed_over_le_are_refused_not_misread(staging: Environment) -> None:
    ungrouped = MetricQuery(
        query="vector(1)",
        evidence=Evidence(kind="histogram", quantile=0.99, buckets=(
            "sum by (destination_app, destination_version) "
            "(increase(istio_request_duration_milliseconds_bucket[$window]))")))
    observed = read(_with_queries(staging, queries={**staging.metrics.queries, "latency_p99_ms": ungrouped}),
                    ["latency_p99_ms"])
    error = observed.evidence["latency_p99_ms"].error
    assert "without a numeric `le` label" in error and "le" in error


def test_a_long_span_is_split_like_requests_with_the_same_points(
    staging: Environment, observed: Observations, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter, "MAX_POINTS_PER_SERIES", 4)
    split = read(staging, ["latency_p99_ms", "error_rate"])
    assert split.queries == 6  # 6 points: 4 + 2, for each of the three templates
    assert split.evidence == observed.evidence
