"""The Prometheus adapter against a real Prometheus serving a backfilled synthetic history.

The default catalog's PromQL is the thing under test as much as the adapter: the values read back
must be the ones the history was generated with (rates, quantiles, gauges, requests per window,
newest sample), absent where the data says "nothing" (NaN, a version gone silent), and failures
must be values: one metric's error for bad PromQL, the whole pass's error, after a single query,
for an unreachable server.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from reconciler.adapters import prometheus as adapter
from reconciler.adapters.prometheus import (
    PrometheusClient,
    PrometheusError,
    by_version,
    client_for,
    observe,
    series_key,
)
from reconciler.adapters.repo_loader import load_repository
from reconciler.core.environment import DEFAULT_QUERIES, Environment, MetricQuery, SeriesLabels
from reconciler.core.observations import LAST_SAMPLE, REQUESTS, Observations
from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

from ..prometheus_kit import (
    STEP,
    PrometheusServer,
    Traffic,
    histogram_shape,
    openmetrics,
    prometheus,  # noqa: F401  (the fixture)
    start_prometheus,
    utc,
)

ROOT = Path(__file__).resolve().parents[2]
AT = utc("2026-11-21T12:00:00")
HOUR_AGO = AT - timedelta(hours=1)
UNTIL_AT = AT + STEP  # the last sample is at AT
SINCE = AT - timedelta(minutes=30)
WINDOW = timedelta(minutes=5)
CHAT, CODE = "chat-assistant", "code-completion"
CATALOG = list(DEFAULT_QUERIES)
INSTANT = [name for name in CATALOG if name not in (REQUESTS, LAST_SAMPLE)]


def _canary_errors(when: datetime) -> float:
    return 0.0 if when < AT - timedelta(minutes=10) else 0.05  # the canary starts failing 10 minutes ago


HISTORY = [
    Traffic(CHAT, "1.2.0", HOUR_AGO, UNTIL_AT, rps=20, error_ratio=0.01, latency_p99_ms=1500,
            ttft_p99_seconds=0.35, tpot_p99_seconds=0.045, e2e_latency_p99_seconds=12.0,
            gauges={"sluice_eval_quality_score": 0.84, "sluice_eval_safety_violation_rate": 0.002,
                    "sluice_eval_user_satisfaction": 0.91}),
    Traffic(CHAT, "1.3.0", HOUR_AGO, UNTIL_AT, rps=2, error_ratio=_canary_errors, latency_p99_ms=1750,
            ttft_p99_seconds=0.42, gauges={"sluice_eval_quality_score": 0.86}),
    # The standby: deployed, serving nothing. 0/0 and quantiles over nothing are NaN.
    Traffic(CHAT, "1.1.0", HOUR_AGO, UNTIL_AT, rps=0, gauges={"sluice_eval_quality_score": math.nan}),
    Traffic(CODE, "2.0.0", HOUR_AGO, UNTIL_AT, rps=50, latency_p99_ms=300),
    # The candidate stopped exporting 20 minutes ago (crashed): it vanishes from instant queries.
    Traffic(CODE, "2.1.0", HOUR_AGO, AT - timedelta(minutes=20), rps=5, latency_p99_ms=320),
    Traffic("other-model", "1.0.0", HOUR_AGO, UNTIL_AT, rps=7),  # not watched
    Traffic(CHAT, "latest", HOUR_AGO, UNTIL_AT, rps=3),  # version label "vlatest": not a version
]
LIVE = {(t.model, t.version): t for t in HISTORY[:4]}
SILENT = (CODE, "2.1.0")
STANDBY = (CHAT, "1.1.0")


@pytest.fixture(scope="module")
def history() -> str:
    return openmetrics(HISTORY)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, history: str) -> Iterator[PrometheusServer]:
    started = start_prometheus(tmp_path_factory.mktemp("prometheus"), history)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def staging(server: PrometheusServer) -> Environment:
    loaded = load_repository(ROOT)
    environment = loaded.repository.environments["staging"]
    return with_metrics(environment, prometheus_url=server.url)


def with_metrics(environment: Environment, **changes: object) -> Environment:
    return environment.model_copy(update={"metrics": environment.metrics.model_copy(update=changes)})


def with_query(environment: Environment, name: str, query: str, **fields: object) -> Environment:
    queries = {**environment.metrics.queries, name: MetricQuery(query=query, **fields)}
    return with_metrics(environment, queries=queries)


def read(environment: Environment, metrics: list[str] = CATALOG, models: tuple[str, ...] = (CHAT, CODE),
         at: datetime = AT, since: datetime = SINCE) -> Observations:
    return observe(client_for(environment), environment, metrics, models, at, since)


@pytest.fixture(scope="module")
def observed(staging: Environment) -> Observations:
    return read(staging)


# --- the default catalog reads back the generated history ---------------------------------------


def test_one_query_per_metric_and_no_errors(observed: Observations) -> None:
    assert observed.error is None
    assert observed.queries == len(CATALOG)
    assert set(observed.metrics) == set(INSTANT)
    assert {name: m.error for name, m in observed.metrics.items() if m.error} == {}
    assert observed.requests.error is None and observed.last_sample_error is None


def test_error_rate_is_the_5xx_share_of_the_last_window(observed: Observations) -> None:
    assert observed.metrics["error_rate"].values == {
        (CHAT, "1.2.0"): pytest.approx(0.01),
        (CHAT, "1.3.0"): pytest.approx(0.05),  # the last 5 minutes, not the hour's average
        (CODE, "2.0.0"): 0.0,
    }


@pytest.mark.parametrize(("metric", "generated"), [
    ("latency_p99_ms", {(CHAT, "1.2.0"): 1500, (CHAT, "1.3.0"): 1750, (CODE, "2.0.0"): 300}),
    ("ttft_p99_seconds", {(CHAT, "1.2.0"): 0.35, (CHAT, "1.3.0"): 0.42}),
    ("tpot_p99_seconds", {(CHAT, "1.2.0"): 0.045}),
    ("e2e_latency_p99_seconds", {(CHAT, "1.2.0"): 12.0}),
])
def test_p99_reads_back_the_generated_quantile(observed: Observations, metric: str, generated: dict) -> None:
    assert observed.metrics[metric].values == {key: pytest.approx(p99, rel=0.05) for key, p99 in generated.items()}


def test_evaluator_gauges_read_back_and_nan_is_absent(observed: Observations) -> None:
    assert observed.metrics["quality_score"].values == {(CHAT, "1.2.0"): pytest.approx(0.84),
                                                        (CHAT, "1.3.0"): pytest.approx(0.86)}
    assert STANDBY not in observed.metrics["quality_score"].values  # its evaluator exports NaN
    assert observed.metrics["safety_violation_rate"].values == {(CHAT, "1.2.0"): pytest.approx(0.002)}
    assert observed.metrics["user_satisfaction"].values == {(CHAT, "1.2.0"): pytest.approx(0.91)}


def test_no_traffic_gives_no_value_not_nan(observed: Observations) -> None:
    for metric in ("error_rate", "latency_p99_ms"):
        assert STANDBY not in observed.metrics[metric].values
        assert observed.value(metric, STANDBY) is None


def test_a_silent_version_is_absent_and_foreign_series_are_ignored(observed: Observations) -> None:
    for metric in INSTANT:
        keys = set(observed.metrics[metric].values)
        assert SILENT not in keys, metric
        assert {model for model, _ in keys} <= {CHAT, CODE}, metric  # other-model is not watched
        assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for _, version in keys), metric
    assert SILENT not in observed.last_sample


def test_requests_per_window_sum_to_the_generated_count(observed: Observations) -> None:
    history = observed.requests
    for key, traffic in LIVE.items():
        ends = [end for end, _ in history.points[key]]
        assert ends == [AT - k * WINDOW for k in range(5, -1, -1)]  # the grid ends at `at`
        generated = traffic.requests_total(AT) - traffic.requests_total(SINCE)
        assert history.served_since(key, SINCE, WINDOW) == pytest.approx(generated, rel=0.02), key
    assert history.last_served(STANDBY) is None
    assert history.last_served((CHAT, "1.2.0")) == AT


def test_requests_show_when_a_silent_version_last_served(observed: Observations) -> None:
    stopped = HISTORY[4].end
    last = observed.requests.last_served(SILENT)
    assert last is not None and stopped <= last <= stopped + WINDOW
    assert observed.requests.served_since(SILENT, SINCE, WINDOW) == pytest.approx(
        HISTORY[4].requests_total(AT) - HISTORY[4].requests_total(SINCE), rel=0.05)


def test_last_sample_is_each_versions_newest_sample(observed: Observations) -> None:
    assert set(observed.last_sample) == set(LIVE)
    for key, traffic in LIVE.items():
        newest = traffic.sample_times()[-1]
        assert observed.last_sample[key] == newest == AT
    assert observed.newest_sample == AT


def test_reading_as_of_an_earlier_instant_sees_the_silent_version(staging: Environment) -> None:
    earlier = AT - timedelta(minutes=30)
    observed = read(staging, ["error_rate", LAST_SAMPLE], at=earlier, since=earlier - WINDOW)
    assert observed.metrics["error_rate"].values[SILENT] == 0.0
    assert observed.last_sample[SILENT] == earlier


# --- requests over a long span -----------------------------------------------------------------


def test_a_long_span_is_split_into_range_queries_with_the_same_points(
    staging: Environment, observed: Observations, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter, "MAX_POINTS_PER_SERIES", 4)
    split = read(staging, [REQUESTS])
    assert split.queries == 2  # 6 points: 4 + 2
    assert split.requests.points == observed.requests.points


# --- failures are values -----------------------------------------------------------------------


def test_bad_promql_is_that_metrics_error_only(staging: Environment) -> None:
    broken = with_query(staging, "error_rate", "sum(rate(istio_requests_total[$window])")
    observed = read(broken)
    error = observed.metric_error("error_rate")
    assert error is not None
    assert f"Prometheus at {staging.metrics.prometheus_url} answered HTTP 400 (bad_data): " in error
    assert "parse error" in error and "for query sum(rate(istio_requests_total[5m])" in error
    assert observed.metrics["error_rate"].values == {}
    assert observed.error is None and observed.queries == len(CATALOG)
    assert observed.metrics["latency_p99_ms"].values[(CHAT, "1.2.0")] == pytest.approx(1500, rel=0.05)
    assert observed.requests.points and observed.last_sample


def test_a_query_that_does_not_group_by_version_is_an_error(staging: Environment) -> None:
    # One series per response code per version: there is no single value to decide on.
    ungrouped = with_query(staging, "error_rate", 'rate(istio_requests_total{reporter="destination"}[$window])')
    observed = read(ungrouped, ["error_rate"])
    error = observed.metric_error("error_rate")
    assert error is not None and "several series for" in error
    assert "must group by destination_app and destination_version" in error
    assert observed.error is None  # the query's fault, not Prometheus'


def test_a_range_vector_is_not_an_instant_answer(staging: Environment) -> None:
    ranged = with_query(staging, "quality_score", "sluice_eval_quality_score[$window]",
                        labels=SeriesLabels(app="app", version="version"))
    observed = read(ranged, ["quality_score"])
    error = observed.metric_error("quality_score")
    assert error is not None and "answered a matrix" in error
    assert observed.error is None


def test_custom_labels_map_series_to_versions(staging: Environment) -> None:
    custom = with_query(staging, "ns_requests",
                        'sum by (app, version) (rate(vllm:time_to_first_token_seconds_count{namespace="$namespace"}[$window]))',
                        labels=SeriesLabels(app="app", version="version"))
    values = read(custom, ["ns_requests"]).metrics["ns_requests"].values
    assert values == {(CHAT, "1.2.0"): pytest.approx(20), (CHAT, "1.3.0"): pytest.approx(2)}


def test_an_unknown_metric_is_an_error_without_a_query(staging: Environment) -> None:
    observed = read(staging, ["no_such_metric"])
    assert observed.queries == 0
    assert observed.metric_error("no_such_metric") == (
        "no_such_metric: no query of that name in the environment's metrics.queries")


def test_an_unreachable_prometheus_fails_the_pass_after_one_query(staging: Environment) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connection refused
    closed = with_metrics(staging, prometheus_url=f"http://127.0.0.1:{port}/")
    started = time.monotonic()
    observed = read(closed)
    assert time.monotonic() - started < 1
    assert observed.error == f"cannot reach Prometheus at http://127.0.0.1:{port}: connection refused"
    assert observed.queries == 1
    assert observed.metrics == {} and observed.last_sample == {}


def test_a_prometheus_that_never_answers_costs_one_timeout(staging: Environment) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel accepts connections; nobody ever answers
        port = sock.getsockname()[1]
        silent = with_metrics(staging, prometheus_url=f"http://127.0.0.1:{port}", timeout=timedelta(milliseconds=300))
        started = time.monotonic()
        observed = read(silent)
        elapsed = time.monotonic() - started
    assert observed.error == f"no answer from Prometheus at http://127.0.0.1:{port}: timed out after 0.3 s"
    assert observed.queries == 1
    assert elapsed < 1.5


class _NoUpstream(BaseHTTPRequestHandler):
    """A proxy in front of a Prometheus that is down: 503 to everything."""

    def do_POST(self) -> None:
        body = b"no healthy upstream"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def no_upstream() -> Iterator[str]:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _NoUpstream)
    thread = threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{proxy.server_address[1]}"
    proxy.shutdown()
    proxy.server_close()
    thread.join()


def test_server_errors_on_every_query_fail_the_pass(staging: Environment, no_upstream: str) -> None:
    observed = read(with_metrics(staging, prometheus_url=no_upstream))
    assert observed.queries == len(CATALOG)
    assert observed.error is not None
    assert observed.error.startswith(f"Prometheus answered no query: Prometheus at {no_upstream} answered "
                                     "HTTP 503 Service Unavailable: no healthy upstream for query ")
    assert all(m.error for m in observed.metrics.values())
    assert observed.requests.error and observed.last_sample_error


def test_a_wrong_path_is_an_http_error(server: PrometheusServer, staging: Environment) -> None:
    wrong = server.url + "/not-prometheus"
    with pytest.raises(PrometheusError, match=r"answered HTTP 404 Not Found: 404 page not found for query up"):
        PrometheusClient(wrong, timeout=5).instant("up", AT)
    observed = read(with_metrics(staging, prometheus_url=wrong), ["error_rate", REQUESTS])
    assert observed.error is not None and observed.error.startswith("Prometheus answered no query: ")


# --- the client on its own ---------------------------------------------------------------------


def test_client_instant_and_range(server: PrometheusServer) -> None:
    client = PrometheusClient(server.url, timeout=5)
    scalar = client.instant("1 + 1", AT)
    vector = client.instant('sluice_eval_quality_score{app="chat-assistant",version="v1.1.0"}', AT)
    ranged = client.range('sum(sluice_eval_quality_score{version="v1.2.0"})', AT - timedelta(minutes=2), AT,
                          timedelta(minutes=1))
    assert scalar == [({}, 2.0)]
    assert len(vector) == 1 and math.isnan(vector[0][1])  # the client keeps NaN; observe drops it
    assert ranged == [({}, [(AT - timedelta(minutes=k), pytest.approx(0.84)) for k in (2, 1, 0)])]
    assert client.queries_sent == 3


def test_a_fractional_timeout_is_accepted_by_prometheus(server: PrometheusServer) -> None:
    assert PrometheusClient(server.url, timeout=1.5).instant("2 * 3", AT) == [({}, 6.0)]


def test_naive_datetimes_are_refused(staging: Environment) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        read(staging, at=datetime(2026, 11, 21, 12))


# --- query count does not depend on the number of models -----------------------------------------


def test_query_count_is_the_same_for_2_and_50_models(
    prometheus: Callable[[str], PrometheusServer],  # noqa: F811  (the fixture imported above)
) -> None:
    models = [f"model-{n:02d}" for n in range(50)]
    start = AT - timedelta(minutes=20)
    fleet = [Traffic(model, version, start, UNTIL_AT, rps=1 + n % 7, latency_p99_ms=None,
                     error_ratio=0.01 * (n % 3), gauges={"sluice_eval_quality_score": 0.8})
             for n, model in enumerate(models) for version in ("1.0.0", "1.1.0")]
    server = prometheus(openmetrics(fleet, step=timedelta(seconds=30)))
    environment = with_metrics(load_repository(ROOT).repository.environments["staging"], prometheus_url=server.url)
    since = AT - timedelta(minutes=15)
    few = read(environment, models=tuple(models[:2]), since=since)
    many = read(environment, models=tuple(models), since=since)
    assert few.queries == many.queries == len(CATALOG)
    assert len(few.metrics["error_rate"].values) == 4
    assert len(many.metrics["error_rate"].values) == len(many.metrics["quality_score"].values) == 100
    assert len(many.requests.points) == len(many.last_sample) == 100
    assert many.metrics["error_rate"].values[("model-05", "1.1.0")] == pytest.approx(0.02)


# --- label mapping, without a server -------------------------------------------------------------

ISTIO = SeriesLabels()
WATCHED = frozenset({CHAT})


@pytest.mark.parametrize(("labels", "key"), [
    ({"destination_app": CHAT, "destination_version": "v1.3.0"}, (CHAT, "1.3.0")),
    ({"destination_app": CHAT, "destination_version": "v10.20.30", "le": "5"}, (CHAT, "10.20.30")),
    ({"destination_app": CHAT, "destination_version": "1.3.0"}, None),  # no "v"
    ({"destination_app": CHAT, "destination_version": "v1.3"}, None),
    ({"destination_app": CHAT, "destination_version": "v01.3.0"}, None),
    ({"destination_app": CHAT, "destination_version": "v1.3.0-rc1"}, None),
    ({"destination_app": CHAT, "destination_version": "unknown"}, None),  # Istio's value when unlabeled
    ({"destination_app": CHAT}, None),
    ({"destination_version": "v1.3.0"}, None),
    ({"destination_app": "other", "destination_version": "v1.3.0"}, None),
    ({"app": CHAT, "version": "v1.3.0"}, None),  # the other label pair
])
def test_series_key(labels: dict[str, str], key: tuple[str, str] | None) -> None:
    assert series_key(labels, ISTIO, WATCHED) == key


def test_by_version_drops_non_finite_values() -> None:
    series = [({"destination_app": CHAT, "destination_version": f"v1.{n}.0"}, value)
              for n, value in enumerate([0.5, math.nan, math.inf, -math.inf, 0.0])]
    assert by_version("m", series, ISTIO, WATCHED) == {(CHAT, "1.0.0"): 0.5, (CHAT, "1.4.0"): 0.0}


def test_by_version_refuses_two_series_for_one_version() -> None:
    labels = {"destination_app": CHAT, "destination_version": "v1.3.0"}
    with pytest.raises(PrometheusError, match="several series for chat-assistant 1.3.0"):
        by_version("m", [({**labels, "pod": "a"}, 1.0), ({**labels, "pod": "b"}, math.nan)], ISTIO, WATCHED)


def test_range_chunks_end_at_at_and_cover_since() -> None:
    chunks = adapter._range_chunks(AT - timedelta(minutes=12), AT, WINDOW)
    assert chunks == [(AT - 2 * WINDOW, AT)]  # points 11:50, 11:55, 12:00: windows from 11:45
    assert adapter._range_chunks(AT, AT, WINDOW) == [(AT, AT)]


# --- the kit's history -------------------------------------------------------------------------


def test_openmetrics_is_what_promtool_needs(history: str) -> None:
    lines = history.splitlines()
    assert lines[-1] == "# EOF" and history.endswith("\n")
    families = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert len(families) == len(set(families))  # each family once: its lines are contiguous
    last: dict[str, float] = {}
    runs: list[str] = []
    for line in lines:
        if line.startswith("#"):
            continue
        series, _value, stamp = line.rsplit(" ", 2)
        metric = re.sub(r',le="[^"]*"', "", series).replace("_bucket{", "{").replace("_count{", "{").replace("_sum{", "{")
        if not runs or runs[-1] != metric:
            runs.append(metric)
        assert float(stamp) > last.get(series, -math.inf), series
        last[series] = float(stamp)
    assert len(runs) == len(set(runs))  # each series' lines are contiguous


#: Istio's own default latency buckets (ms): sub-millisecond to an hour, a wider test of the shape.
ISTIO_DEFAULT_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                            600000, 1800000, 3600000)


@pytest.mark.parametrize(("buckets", "p99"), [
    *((ISTIO_DEFAULT_BUCKETS_MS, p99) for p99 in (0.6, 1, 800, 999.9, 1000, 1500, 3600000)),
    *((SERVING_LATENCY_BUCKETS_MS, p99) for p99 in (5.1, 25, 800, 54_700, 256_000, 1_800_000)),  # what the generator uses
])
def test_histogram_shape_interpolates_to_the_p99(buckets: tuple[float, ...], p99: float) -> None:
    shares, _mean = histogram_shape(p99, buckets)
    assert sum(shares) == pytest.approx(1)
    cumulative = [sum(shares[: k + 1]) for k in range(len(buckets))]
    i = next(k for k, c in enumerate(cumulative) if c >= 0.99 - 1e-12)
    lower = buckets[i - 1] if i else 0.0
    below = cumulative[i - 1] if i else 0.0
    assert lower + (buckets[i] - lower) * (0.99 - below) / shares[i] == pytest.approx(p99)


def test_missing_binaries_say_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"prometheus and promtool not found on PATH: install it: "
                                           r"apt-get install -y --no-install-recommends prometheus"):
        start_prometheus(tmp_path, "# EOF\n")
