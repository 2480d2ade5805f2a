"""A real MLflow tracking server on loopback (sqlite backend, local artifact store), one per session.

Its first start runs the database migrations (about 20 s), so tests share one server and keep
apart by model name. The server proxies artifacts (`--artifacts-destination`), as a team's
server in front of S3 would: runs record `mlflow-artifacts:/...` URIs and clients up- and download
through the server. Telemetry is off for the server and for the clients in this process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
         "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
START_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    artifacts: Path  # the server's --artifacts-destination: where logged files land on disk

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(self, name: str, files: dict[str, bytes], *, params: dict[str, object] | None = None,
                 metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None,
                 description: str = "", user: str = "priya.raman@acme.example",
                 scratch: Path) -> tuple[str, str]:
        """Log a run with `files` under `bundle/` and register that directory; (version, run id)."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
        run = client.create_run(experiment.experiment_id, tags={"mlflow.user": user, **(tags or {})})
        run_id = run.info.run_id
        for key, value in (params or {}).items():
            client.log_param(run_id, key, value)
        for key, value in (metrics or {}).items():
            client.log_metric(run_id, key, value)
        bundle = scratch / run_id
        for path, data in files.items():
            (bundle / path).parent.mkdir(parents=True, exist_ok=True)
            (bundle / path).write_bytes(data)
        client.log_artifacts(run_id, str(bundle), "bundle")
        client.set_terminated(run_id)
        try:
            client.create_registered_model(name)
        except MlflowException:
            pass  # registered by an earlier test
        version = client.create_model_version(name, f"runs:/{run_id}/bundle", run_id, description=description)
        return str(version.version), run_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root}/db.sqlite",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **QUIET}, start_new_session=True)
    try:
        _wait_healthy(uri, process, root / "server.log")
        yield MlflowServer(uri, root / "artifacts")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_healthy(uri: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server not healthy after {START_TIMEOUT_SECONDS} s:\n{log.read_text()[-3000:]}")
