"""The evaluator's series as a real Prometheus sees them.

The evaluator runs as its container command does (`python -m reconciler.evaluator --config FILE`,
a subprocess) against scripted versions, judge and classifier on loopback; a real Prometheus
scrapes its /metrics every second. One evaluator and one Prometheus serve the module: the first
scraped sample takes about 6 s. PromQL over the scraped series must give per-version values
under the `app`/`version` labels the catalog groups by, and the counts must make proportions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Iterator

import pytest

from reconciler.adapters.prometheus import PrometheusClient, by_version
from reconciler.core.environment import DEFAULT_QUERIES, SeriesLabels, render_query
from reconciler.demo.prometheus import PrometheusServer, start_prometheus

from ..conftest import ROOT
from ..evaluator_kit import APP, SCRIPT, chat, config_for, mirror, scripted_models, series, wait_for

WORKLOAD = SeriesLabels(app="app", version="version")
WATCHED = frozenset({APP})


def start_command(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The evaluator's container command on a free port; its URL read from its start-up log line."""
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.evaluator", "--config", str(config),
             "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
            stdout=sink, stderr=subprocess.STDOUT,
        )
    listening = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
    wait_for(lambda: process.poll() is not None or listening.search(log.read_text()) is not None, "the evaluator")
    found = listening.search(log.read_text())
    if found is None:
        raise AssertionError(f"the evaluator exited ({process.returncode}) before listening:\n{log.read_text()}")
    return process, f"http://127.0.0.1:{found.group(1)}"


class World:
    def __init__(self, evaluator: str, prometheus: PrometheusServer) -> None:
        self.evaluator, self.prometheus = evaluator, prometheus
        self.client = PrometheusClient(prometheus.url, timeout=10)

    def values(self, name: str, query: str) -> dict[tuple[str, str], float]:
        return by_version(name, self.client.instant(query, datetime.now(UTC)), WORKLOAD, WATCHED)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("evaluator-prometheus")
    with ExitStack() as stack:
        models = scripted_models(stack)
        config = directory / "evaluator.json"
        config.write_text(config_for(models).model_dump_json(), encoding="utf-8")
        process, url = start_command(config, directory / "evaluator.log")
        prometheus = start_prometheus(directory / "prometheus", scrape=[url.removeprefix("http://")],
                                      scrape_labels={"namespace": "llm-serving"})
        stack.callback(prometheus.stop)
        world = World(url, prometheus)
        # the zeros first, so increase() over the window counts every sample that follows
        wait_for(lambda: len(world.values("requests", "sluice_eval_requests_total")) == 2, "the first scrape")
        for prompt in SCRIPT:
            assert mirror(url, chat(prompt)).status_code == 202
        wait_for(lambda: series(url).get(("sluice_shadow_comparisons_total", "v1.3.0")) == 3, "the evaluator")
        wait_for(lambda: world.values("c", "sluice_shadow_comparisons_total") == {(APP, "1.3.0"): 3}, "a scrape")
        yield world
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # the container's stop: a clean exit


def test_counters_arrive_per_version_with_app_and_version_labels(world: World) -> None:
    assert world.values("answers", "sum by (app, version) (sluice_eval_answers_total)") == {
        (APP, "1.2.0"): 3, (APP, "1.3.0"): 3}
    assert world.values("flagged", "sum by (app, version) (sluice_eval_flagged_total)") == {
        (APP, "1.2.0"): 0, (APP, "1.3.0"): 1}
    labels = world.client.instant('sluice_eval_requests_total{version="v1.3.0"}', datetime.now(UTC))[0][0]
    assert {k: labels[k] for k in ("app", "version", "namespace")} == {
        "app": APP, "version": "v1.3.0", "namespace": "llm-serving"}


def test_counts_make_proportions_over_a_window(world: World) -> None:
    """events / trials from increase() over the stage's window: what a proportion evidence reads."""
    window = "5m"
    divergence = (f"sum by (app, version) (increase(sluice_shadow_divergent_total[{window}]))"
                  f" / sum by (app, version) (increase(sluice_shadow_comparisons_total[{window}]))")
    violations = (f"sum by (app, version) (increase(sluice_eval_flagged_total[{window}]))"
                  f" / sum by (app, version) (increase(sluice_eval_judged_total[{window}]))")
    win_rate = (f"sum by (app, version) (increase(sluice_shadow_wins_total[{window}]))"
                f" / sum by (app, version) (increase(sluice_shadow_judged_total[{window}]))")
    assert world.values("divergence", divergence) == {(APP, "1.3.0"): pytest.approx(1 / 3)}
    assert world.values("violations", violations) == {(APP, "1.2.0"): 0, (APP, "1.3.0"): pytest.approx(1 / 3)}
    assert world.values("win_rate", win_rate) == {(APP, "1.3.0"): 0}


def test_the_catalogs_gauges_read_the_evaluators_numbers(world: World) -> None:
    for name, expected in (("quality_score", {(APP, "1.2.0"): 1.0, (APP, "1.3.0"): pytest.approx(2 / 3)}),
                           ("safety_violation_rate", {(APP, "1.2.0"): 0.0, (APP, "1.3.0"): pytest.approx(1 / 3)})):
        catalog = DEFAULT_QUERIES[name]
        # the catalog's own query; a short window that holds only samples scraped after the last record
        query = render_query(catalog.query, window=timedelta(seconds=2), namespace="llm-serving")
        wait_for(lambda: world.values(name, query) == expected, f"the catalog's {name}")
        assert catalog.labels == WORKLOAD
