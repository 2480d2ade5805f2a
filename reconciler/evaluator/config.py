"""The evaluator's config file: one JSON document per model, rendered by the Pulumi program into
ConfigMap `<model>-evaluator` (key `evaluator.json`) and mounted at DEFAULT_PATH.

It names the two versions under comparison by their OWN Services (never the model's routed
host, so a mirrored request cannot loop back through the mirror), the optional judge and
classifier, and the limits that bound the evaluator's load: `max_concurrency` samples in
flight, `queue_size` waiting, `timeout_seconds` per call, `retries` per call.

Credentials never sit in the ConfigMap: `api_key_env` names an environment variable (from a
Secret) whose value is sent as `Authorization: Bearer ...`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Mapping

from pydantic import Field, ValidationError

from ..core.types import SEMVER, DnsLabel, Frozen, checked_str
from .compare import DEFAULT_DIVERGENCE_THRESHOLD
from .openai_api import Endpoint, bearer_from_env

DEFAULT_PATH = Path("/etc/sluice-evaluator/evaluator.json")

VersionLabel = checked_str(
    f"v{SEMVER}", lambda v: f"{v!r} is not a version label: write v<MAJOR>.<MINOR>.<PATCH>, e.g. \"v1.3.0\"")
HttpUrl = checked_str(
    r"https?://[^\s/]+(/[^\s]*)?",
    lambda v: f"{v!r} is not an http(s) URL: write e.g. http://chat-assistant-v1-3-0.llm-serving.svc.cluster.local:8000",
)
EnvName = checked_str(r"[A-Za-z_][A-Za-z0-9_]*", lambda v: f"{v!r} is not an environment variable name")


class ConfigError(Exception):
    """The config file cannot be used; the message names the file, the field and the fix."""


class VersionService(Frozen):
    """One version under comparison, at its own Service. `model` overrides the request's model name."""

    version: VersionLabel
    url: HttpUrl
    model: str | None = None


class ModelService(Frozen):
    """A judge or classifier endpoint (any OpenAI-compatible URL)."""

    url: HttpUrl
    model: str | None = None
    api_key_env: EnvName | None = None


class EvaluatorConfig(Frozen):
    app: DnsLabel
    namespace: DnsLabel
    listen_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    stable: VersionService
    candidate: VersionService
    expects_json: bool = False
    judge: ModelService | None = None
    classifier: ModelService | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 32
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 90.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    divergence_threshold: Annotated[float, Field(ge=0, le=1)] = DEFAULT_DIVERGENCE_THRESHOLD


def load_config(path: Path) -> EvaluatorConfig:
    """Read and check the config file; ConfigError names the file, the field and what to write."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the evaluator config ({exc.strerror}); "
                          f"fix: mount ConfigMap <model>-evaluator at {DEFAULT_PATH.parent} or pass --config") from exc
    try:
        return EvaluatorConfig.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def version_endpoint(service: VersionService) -> Endpoint:
    return Endpoint(service.url, model=service.model)


def model_endpoint(service: ModelService, environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint with its bearer token read from `api_key_env` (ConfigError when it is unset)."""
    if service.api_key_env is None:
        return Endpoint(service.url, model=service.model)
    headers = bearer_from_env(service.api_key_env, environ)
    if headers is None:
        raise ConfigError(f"the environment variable {service.api_key_env} (api_key_env of {service.url}) is "
                          "unset or empty; fix: set it from the Secret that holds the endpoint's API key")
    return Endpoint(service.url, model=service.model, headers=headers)
