"""A real Prometheus on a synthetic history: the launcher and the OpenMetrics generator.

Used by the demo (`python -m reconciler.demo`), the tests (tests/prometheus_kit.py adds the pytest
fixture) and the benchmarks. Why a real server and not a fake: what is under test is mostly PromQL (rate, increase,
histogram_quantile, timestamp, staleness, error answers), and only Prometheus evaluates PromQL
the way Prometheus does. Why backfill (`promtool tsdb create-blocks-from openmetrics`) and not
scraping: a history of hours is queryable as soon as the server is ready (~0.1 s), and a test
says exactly what happened when.

The generator writes Istio's and vLLM's series the way they look in a cluster: cumulative
counters, cumulative histogram buckets (le, +Inf, _count, _sum), gauges with `app`/`version`
labels. Istio's latency histogram has the boundaries Sluice's serving pods ask their sidecar for
(SERVING_LATENCY_BUCKETS_MS, the pod annotation), vLLM's histograms vLLM's own. Histograms are shaped so that
histogram_quantile(0.99) interpolates to the requested p99 exactly while it holds still.
OpenMetrics rules that promtool relies on (it silently drops what breaks them): each family's
lines are contiguous, each series' lines are contiguous and strictly increasing in time, and the
text ends with `# EOF`.

`start_prometheus` backfills, then serves on a free port of 127.0.0.1 with its own config (and
scrapes live targets when given some: the evaluator's own series are scraped, not generated);
`PrometheusServer.stop` ends it by its PID (SIGTERM), never by name. Missing binaries are a
RuntimeError that says how to install them.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from ..core.serving_manifests import SERVING_LATENCY_BUCKETS_MS

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends prometheus (as root)"
READY_TIMEOUT = 30.0
STEP = timedelta(seconds=15)

#: vLLM's buckets for its request histograms.
VLLM_TTFT_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                       10.0)
VLLM_TPOT_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
VLLM_E2E_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)

Value = float | Callable[[datetime], float]


# --- the server --------------------------------------------------------------------------------


@dataclass
class PrometheusServer:
    url: str
    directory: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """SIGTERM the server by its PID and wait for it (SIGKILL if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.directory / "prometheus.log").read_text(encoding="utf-8", errors="replace")


def binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`, or a RuntimeError that says how to install them."""
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}")
    return found["prometheus"], found["promtool"]  # type: ignore[return-value]


def start_prometheus(directory: Path, openmetrics: str = "", *, scrape: Sequence[str] = (),
                     scrape_labels: Mapping[str, str] | None = None) -> PrometheusServer:
    """Backfill `openmetrics` (if any) into a fresh TSDB under `directory`, then serve it on 127.0.0.1.

    `scrape` lists live targets ("127.0.0.1:8080", scraped every second at /metrics, e.g. the
    evaluator); `scrape_labels` are added to their series the way Kubernetes service discovery
    adds `namespace`. The first scraped sample takes a few seconds to become queryable.
    """
    prometheus, promtool = binaries()
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    if openmetrics:
        source = directory / "history.om"
        source.write_text(openmetrics, encoding="utf-8")
        backfill = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],
            capture_output=True, text=True, timeout=120,
        )
        if backfill.returncode != 0:
            raise RuntimeError(f"promtool could not backfill {source}:\n{backfill.stdout}{backfill.stderr}")
    config = directory / "prometheus.yml"
    config.write_text(_config(scrape, scrape_labels or {}))
    for _attempt in range(3):  # a free port can be taken between choosing it and binding it
        port = _free_port()
        with open(directory / "prometheus.log", "wb") as log:
            process = subprocess.Popen(
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=3650d"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        server = PrometheusServer(f"http://127.0.0.1:{port}", directory, process)
        try:
            if _wait_ready(server):
                return server
        except BaseException:
            server.stop()
            raise
        if "address already in use" not in server.log():
            break
    raise RuntimeError(f"Prometheus did not start (exit code {process.returncode}); its log:\n{server.log()}")


def _config(targets: Sequence[str], labels: Mapping[str, str]) -> str:
    if not targets:
        return "# no scrape jobs: the data is backfilled\nglobal:\n  scrape_interval: 1h\n"
    static = json.dumps([{"targets": list(targets), "labels": dict(labels)}])  # JSON is YAML
    return ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: live\n    static_configs: {static}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(server: PrometheusServer) -> bool:
    """True once /-/ready answers 200; False if the process exits; RuntimeError after READY_TIMEOUT."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with direct.open(server.url + "/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"Prometheus was not ready after {READY_TIMEOUT:g} s; its log:\n{server.log()}")


# --- the synthetic history ---------------------------------------------------------------------


@dataclass
class Traffic:
    """One version of one model serving from `start` until `end` (it exports samples in [start, end)).

    Pods carry app=<model> and version=v<version>; Istio's series name them destination_app and
    destination_version (reporter="destination"), vLLM's and the evaluator's carry app and version.
    Every rate or value may be a constant or a function of time. A None histogram is not exported.
    """

    model: str
    version: str  # "1.3.0"
    start: datetime
    end: datetime
    rps: Value = 10.0
    error_ratio: Value = 0.0  # share of 503 responses
    latency_p99_ms: Value | None = 800.0  # istio_request_duration_milliseconds
    ttft_p99_seconds: Value | None = None  # vllm:time_to_first_token_seconds
    tpot_p99_seconds: Value | None = None  # vllm:time_per_output_token_seconds
    e2e_latency_p99_seconds: Value | None = None  # vllm:e2e_request_latency_seconds
    gauges: dict[str, Value] = field(default_factory=dict)  # {"sluice_eval_quality_score": 0.9}
    namespace: str = "llm-serving"

    def sample_times(self, step: timedelta = STEP) -> list[datetime]:
        count = max(0, math.ceil((self.end - self.start) / step))
        return [self.start + k * step for k in range(count)]

    def requests_total(self, until: datetime, step: timedelta = STEP) -> float:
        """The value of istio_requests_total (all codes) at its last sample at or before `until`."""
        times = [t for t in self.sample_times(step) if t <= until]
        return sum(_at(self.rps, t) * step.total_seconds() for t in times[:-1])

    @property
    def version_label(self) -> str:
        return f"v{self.version}"


def openmetrics(traffic: list[Traffic], step: timedelta = STEP) -> str:
    """The OpenMetrics text of all `traffic`: one sample per `step` per series, counters from 0 at start.

    Between samples k and k + 1 a version serves rps(t_k) * step requests, error_ratio(t_k) of them
    503s, all observed in the histograms shaped by the p99 at t_k.
    """
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    families: dict[str, tuple[str, list[str]]] = {}

    def family(name: str, kind: str) -> list[str]:
        return families.setdefault(name, (kind, []))[1]

    for item in traffic:
        times = item.sample_times(step)
        if not times:
            continue
        seconds = step.total_seconds()
        served = [_at(item.rps, t) * seconds for t in times[:-1]]
        failed = [n * _at(item.error_ratio, t) for n, t in zip(served, times)]
        istio = {"reporter": "destination", "destination_app": item.model,
                 "destination_version": item.version_label, "destination_workload_namespace": item.namespace}
        workload = {"app": item.model, "version": item.version_label, "namespace": item.namespace}
        for code, counts in (("200", [n - f for n, f in zip(served, failed)]), ("503", failed)):
            lines = family("istio_requests", "counter")
            labels = _labels({**istio, "response_code": code})
            lines.extend(f"istio_requests_total{labels} {_num(v)} {_ts(t)}" for t, v in zip(times, _cumulative(counts)))
        for name, p99, buckets, labels in (
            ("istio_request_duration_milliseconds", item.latency_p99_ms, SERVING_LATENCY_BUCKETS_MS, istio),
            ("vllm:time_to_first_token_seconds", item.ttft_p99_seconds, VLLM_TTFT_BUCKETS_S, workload),
            ("vllm:time_per_output_token_seconds", item.tpot_p99_seconds, VLLM_TPOT_BUCKETS_S, workload),
            ("vllm:e2e_request_latency_seconds", item.e2e_latency_p99_seconds, VLLM_E2E_BUCKETS_S, workload),
        ):
            if p99 is not None:
                family(name, "histogram").extend(_histogram(name, labels, buckets, times, served, p99))
        for name, value in item.gauges.items():
            labels = _labels(workload)
            family(name, "gauge").extend(f"{name}{labels} {_num(_at(value, t))} {_ts(t)}" for t in times)

    out: list[str] = []
    for name, (kind, lines) in families.items():
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def histogram_shape(p99: float, buckets: tuple[float, ...]) -> tuple[list[float], float]:
    """Shares of observations per bucket (last: above the largest bound) and their mean, such that
    histogram_quantile(0.99) interpolates to `p99` exactly.

    With p99 in (b[i-1], b[i]] at r = (p99 - b[i-1]) / (b[i] - b[i-1]): 0.99 - 0.01 r of the
    observations in bucket i-1, 0.01 in bucket i, 0.01 r above; the 0.99 rank then lies r of the
    way through bucket i.
    """
    if not buckets[0] < p99 <= buckets[-1]:
        raise ValueError(f"p99 {p99} is outside ({buckets[0]}, {buckets[-1]}]: the buckets cannot show it")
    i = next(k for k, bound in enumerate(buckets) if p99 <= bound)
    r = (p99 - buckets[i - 1]) / (buckets[i] - buckets[i - 1])
    shares = [0.0] * (len(buckets) + 1)
    shares[i - 1], shares[i], shares[i + 1] = 0.99 - 0.01 * r, 0.01, 0.01 * r
    below = ((buckets[i - 2] if i >= 2 else 0.0) + buckets[i - 1]) / 2
    above = buckets[i + 1] if i + 1 < len(buckets) else 2 * buckets[i]
    mean = shares[i - 1] * below + 0.01 * p99 + shares[i + 1] * above
    return shares, mean


def _histogram(name: str, labels: dict[str, str], buckets: tuple[float, ...], times: list[datetime],
               served: list[float], p99: Value) -> Iterator[str]:
    counts = [0.0] * (len(buckets) + 1)
    total = 0.0
    for k, t in enumerate(times):
        if k:  # the requests served between samples k-1 and k
            shares, mean = histogram_shape(_at(p99, times[k - 1]), buckets)
            counts = [c + s * served[k - 1] for c, s in zip(counts, shares)]
            total += mean * served[k - 1]
        stamp = _ts(t)
        cumulative = 0.0
        for bound, count in zip((*buckets, math.inf), counts):
            cumulative += count
            le = "+Inf" if bound == math.inf else _num(float(bound))
            yield f"{name}_bucket{_labels({**labels, 'le': le})} {_num(cumulative)} {stamp}"
        yield f"{name}_count{_labels(labels)} {_num(cumulative)} {stamp}"
        yield f"{name}_sum{_labels(labels)} {_num(total)} {stamp}"


def _cumulative(increments: list[float]) -> list[float]:
    out, running = [0.0], 0.0
    for value in increments:
        running += value
        out.append(running)
    return out


def _at(value: Value, when: datetime) -> float:
    return float(value(when)) if callable(value) else float(value)


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _ts(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"{when.isoformat()} must be timezone-aware")
    return f"{when.timestamp():.3f}".rstrip("0").rstrip(".")


def utc(text: str) -> datetime:
    """datetime.fromisoformat with the UTC default tests want: utc("2026-11-21T12:00")."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
