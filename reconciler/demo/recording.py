"""Prometheus answers, recorded from a real server and replayed without one.

The demo's fallback must reach the same decisions as the real run, so it replays what a real
Prometheus answered to the very queries the reconcile passes and the report send, rather than
recomputing PromQL by hand (rate extrapolation and histogram interpolation are Prometheus' to
define). Both clients are PrometheusClient subclasses, so `run_pass` and `build_report` take them
through their existing `client_factory` parameter: the code under replay is the production code.

A recording is a JSON object: `about` (how it was made), and `answers`, keyed by
"instant|<time>|<query>" or "range|<start>|<end>|<step>|<query>" (Unix seconds), each answer
a list of [labels, value] or [labels, [[time, value], ...]]. A query the recording lacks raises
NotRecorded (not a PrometheusError: the pass must fail loudly, not hold on "missing data").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..adapters.files import write_atomically
from ..adapters.prometheus import PrometheusClient, RangeSeries, Series


class NotRecorded(LookupError):
    """The recording has no answer to a query: the scenario changed since it was recorded."""


def instant_key(query: str, at: datetime) -> str:
    return f"instant|{at.timestamp():.3f}|{query}"


def range_key(query: str, start: datetime, end: datetime, step: timedelta) -> str:
    return f"range|{start.timestamp():.3f}|{end.timestamp():.3f}|{step.total_seconds():g}|{query}"


class RecordingClient(PrometheusClient):
    """A real client that keeps every answer it got, to `save` them."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(base_url, timeout)
        self.answers: dict[str, Any] = {}

    def instant(self, query: str, at: datetime) -> list[Series]:
        result = super().instant(query, at)
        with self._lock:
            self.answers[instant_key(query, at)] = [[labels, value] for labels, value in result]
        return result

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        result = super().range(query, start, end, step)
        with self._lock:
            self.answers[range_key(query, start, end, step)] = [
                [labels, [[t.timestamp(), v] for t, v in points]] for labels, points in result]
        return result


class ReplayClient(PrometheusClient):
    """Answers from a recording; counts its queries like the real client."""

    def __init__(self, answers: dict[str, Any], source: str) -> None:
        super().__init__(source, timeout=1.0)
        self.answers = answers

    def instant(self, query: str, at: datetime) -> list[Series]:
        return [(dict(labels), float(value)) for labels, value in self._answer(instant_key(query, at))]

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[RangeSeries]:
        return [(dict(labels), [(datetime.fromtimestamp(t, UTC), float(v)) for t, v in points])
                for labels, points in self._answer(range_key(query, start, end, step))]

    def _answer(self, key: str) -> Any:
        with self._lock:
            self.queries_sent += 1
        try:
            return self.answers[key]
        except KeyError:
            raise NotRecorded(f"{self.base_url} has no answer to {key!r}: the scenario changed since it was "
                              "recorded; record it again (python -m reconciler.demo --record FILE)") from None


def save(path: Path, answers: dict[str, Any], about: str) -> None:
    """One answer per line, sorted, so a re-recording shows as a readable diff."""
    lines = [f"  {json.dumps(key)}: {json.dumps(answers[key], sort_keys=True)}" for key in sorted(answers)]
    write_atomically(path, "{\n" + f'"about": {json.dumps(about)},\n"answers": {{\n' + ",\n".join(lines) + "\n}}\n")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))["answers"]
