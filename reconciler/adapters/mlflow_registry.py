"""Read one registered model version from an MLflow tracking server, through MLflow's own client.

The client resolves what MLflow defines (aliases, `runs:/` and `models:/` sources, the artifact
proxy) so this module only gathers plain values for core/mlflow_mapping.py. The files that fill
bundle slots are downloaded one at a time and hashed: MLflow records no checksums, and the release
must pin the bytes MLflow actually serves, not a number someone typed.

MLflow is imported lazily (it is an optional extra and slow to import). Its defaults are tuned for
a command someone waits on: few retries and a short timeout (MLflow's own would retry for
minutes against a dead server), no progress bars, no usage telemetry; each can still be set in
the environment.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..core.mlflow_mapping import RegisteredVersion, StoredFile, choose_files, fetchable_uri, parse_models_uri
from ..core.release_import import ImportRefused
from .file_digests import file_digests

QUIET_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def read_registered_version(uri: str, tracking_uri: str | None, asked: dict[str, str],
                            destination: str | None) -> tuple[RegisteredVersion, dict[str, StoredFile]]:
    """The version's metadata and its run's, and each chosen file hashed (slot -> file)."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        raise ImportRefused("no MLflow tracking server: pass --tracking-uri http://mlflow.internal:5000 "
                            "or set MLFLOW_TRACKING_URI")
    name, number, alias = parse_models_uri(uri)
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        found = (client.get_model_version_by_alias(name, alias) if alias
                 else client.get_model_version(name, number))
        run = client.get_run(found.run_id) if found.run_id else None
        storage = _storage_uri(f"models:/{name}/{found.version}")
        version = _registered_version(uri, found, run)
        files = _hashed_files(storage, asked, destination, where=f"{uri} (version {found.version})")
    except MlflowException as err:
        raise ImportRefused(_explain(err, client, name, number, alias, tracking_uri)) from None
    return version, files


def _registered_version(uri: str, found: Any, run: Any) -> RegisteredVersion:
    return RegisteredVersion(
        uri=uri, name=found.name, version=str(found.version), description=found.description or "",
        creator=found.user_id or "", run_id=found.run_id or None,
        run_user=(run.info.user_id or run.data.tags.get("mlflow.user", "")) if run else "",
        params=dict(run.data.params) if run else {}, metrics=dict(run.data.metrics) if run else {},
        tags=dict(run.data.tags) if run else {})


def _storage_uri(models_uri: str) -> str:
    """Follow MLflow's indirections (models:/ -> runs:/ -> mlflow-artifacts:/ or s3://...)."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    location = ModelsArtifactRepository.get_underlying_uri(models_uri)
    for _ in range(4):
        if location.startswith("runs:/"):
            location = RunsArtifactRepository.get_underlying_uri(location)
        elif location.startswith("models:/"):
            location = ModelsArtifactRepository.get_underlying_uri(location)
        else:
            break
    return location.rstrip("/")


def _hashed_files(storage: str, asked: dict[str, str], destination: str | None,
                  where: str) -> dict[str, StoredFile]:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(storage)
    sizes = dict(_listing(repository, None))
    chosen = choose_files(sorted(sizes), asked, where)
    uris = {slot: fetchable_uri(f"{storage}/{path}", destination) for slot, path in chosen.items()}
    files = {}
    for slot, path in chosen.items():
        sha256, size = _download_and_hash(repository, path)
        if sizes[path] is not None and size != sizes[path]:
            raise ImportRefused(f"{where}: {path} downloaded as {size} bytes, MLflow lists {sizes[path]}: try again")
        files[slot] = StoredFile(path, uris[slot], sha256, size)
    return files


def _listing(repository: Any, path: str | None) -> list[tuple[str, int | None]]:
    out = []
    for info in repository.list_artifacts(path):
        if info.is_dir:
            out += _listing(repository, info.path)
        else:
            out.append((info.path, info.file_size))
    return out


def _download_and_hash(repository: Any, path: str) -> tuple[str, int]:
    """sha256 and size of one file, downloaded into a temporary directory that is removed at once
    (one file on disk at a time: weights can be hundreds of GB)."""
    with tempfile.TemporaryDirectory(prefix="sluice-mlflow-") as scratch:
        digests = file_digests(Path(repository.download_artifacts(path, dst_path=scratch)))
        return digests.sha256, digests.size


def _explain(err: Exception, client: Any, name: str, number: str | None, alias: str | None, tracking: str) -> str:
    code = getattr(err, "error_code", "")
    message = str(err)
    if code == "RESOURCE_DOES_NOT_EXIST" or "RESOURCE_DOES_NOT_EXIST" in message:
        try:
            known = sorted((v.version for v in client.search_model_versions(f"name='{name}'")), key=int)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            known = []
        asked = f"alias {alias!r}" if alias else f"version {number}"
        if not known:
            return f"MLflow at {tracking} has no registered model {name!r}"
        return f"MLflow at {tracking} has no {asked} of {name!r} (versions: {', '.join(known)})"
    if re.search(r"Connection|Max retries|timed out|refused", message):
        return f"cannot reach MLflow at {tracking}: is the tracking server up, and the URI right?"
    return f"MLflow at {tracking}: {message.splitlines()[0]}"
