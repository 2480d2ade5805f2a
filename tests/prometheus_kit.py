"""The `prometheus` fixture: a real Prometheus per test on a synthetic history.

The launcher and the OpenMetrics generator live in `reconciler.demo.prometheus` (the demo plays
its rollout on them too); they are imported here so tests and benchmarks keep one import path.
The fixture is a factory: `prometheus(openmetrics_text) -> PrometheusServer`; every server it
started is stopped at teardown (SIGTERM by PID). Missing binaries are an error with the install
command, never a skip: a skipped integration test hides a broken setup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from reconciler.demo.prometheus import (  # noqa: F401  (re-exported for the tests and bench/)
    INSTALL_HINT,
    STEP,
    VLLM_E2E_BUCKETS_S,
    VLLM_TPOT_BUCKETS_S,
    VLLM_TTFT_BUCKETS_S,
    PrometheusServer,
    Traffic,
    Value,
    binaries,
    histogram_shape,
    openmetrics,
    start_prometheus,
    utc,
)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], PrometheusServer]]:
    """A factory: `prometheus(openmetrics_text)` starts a server on that history; all stop at teardown."""
    started: list[PrometheusServer] = []

    def start(history: str) -> PrometheusServer:
        server = start_prometheus(tmp_path / f"prometheus-{len(started)}", history)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
