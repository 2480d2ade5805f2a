"""The online evaluator of one model (docs/evaluator.md): its config, Deployment and Service, and the
mirror that feeds it.

Istio mirrors `evaluator.sample_percent`% of the model's weighted routes (never the
`x-model-version` pinned ones) to the evaluator's Service and discards its reply, so the evaluator
is never in a user's path. The percent is capped at the candidate's own (`Evaluator.percent_at`):
every sample is also a request to the candidate, so at a 1% canary a 5% sample would put five times
its user traffic on it; capped, the evaluator at most doubles it. It sends each sample to stable and to candidate through their own
per-version Services (`<model>-v1-2-0.<namespace>.svc.cluster.local:8000`), which no
VirtualService of the model routes, so nothing it sends is mirrored back to it.

Rendered only while the candidate is in a canary stage (0 < weight < 100) or a shadow stage
(mirror > 0): at 0% without a mirror and at 100% one side serves nobody, and with no candidate
there is nothing to compare; a config naming no candidate would only restart pods.

Its pods are labelled `app: <model>-evaluator`, never the model's own `app`: the model's Service
and the DestinationRule subsets select on that label, and Istio's metrics attribute requests by it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .config_manifests import as_json, config_map
from .environment import Evaluator, EvaluatorEndpoint
from .huggingface import parse as parse_hub_reference
from .naming import SERVING_PORT, stack_name
from .release import Release, Stage
from .route_manifests import service_host
from .serving_manifests import Manifest, metadata, service
from .traffic import TrafficSplit
from .types import version_label

EVALUATOR_PORT = 8080
CONFIG_DIR = "/etc/sluice-evaluator"
CONFIG_FILE = "evaluator.json"
COMMAND = "sluice-evaluator"
RUN_AS = 65532  # the conventional "nonroot" user of distroless images
CONFIG_DIGEST_ANNOTATION = "sluice.dev/config-sha256"  # a new config restarts the pod, which reads it at start
RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


def evaluator_name(model: str) -> str:
    """ConfigMap, Deployment and Service of a model's evaluator: chat-assistant-evaluator."""
    return f"{model}-evaluator"


def evaluator_labels(model: str) -> dict[str, str]:
    return {"app": evaluator_name(model), "app.kubernetes.io/name": "sluice-evaluator", "sluice.dev/model": model}


def evaluates(split: TrafficSplit) -> bool:
    """Whether the split's stage has two versions to compare: a canary (0 < weight < 100) or a shadow."""
    stage = split.stage
    return stage is not None and (0 < stage.weight < 100 or stage.mirror > 0)


def mirror_destination(model: str, namespace: str) -> dict[str, Any]:
    """Where Istio mirrors the sample: the evaluator's Service (an Istio Destination)."""
    return {"host": service_host(evaluator_name(model), namespace), "port": {"number": EVALUATOR_PORT}}


def version_endpoint(model: str, version: str, namespace: str) -> dict[str, str]:
    """One version's own Service, which bypasses the model's VirtualService (so no mirror loop)."""
    return {"version": version_label(version),
            "url": f"http://{service_host(stack_name(model, version), namespace)}:{SERVING_PORT}"}


def classifier_model(release: Release) -> str | None:
    """The model name a classifier endpoint serves, from the release's safety classifier:
    hf://meta-llama/Llama-Guard-3-1B@<commit>/model.safetensors -> "meta-llama/Llama-Guard-3-1B".
    None for a classifier that is not on the Hub (or none): the endpoint's own default then."""
    classifier = release.bundle.safety.classifier
    if classifier is None or not classifier.uri.startswith("hf://"):
        return None
    return parse_hub_reference(classifier.uri).repo


#: The environment variables that carry the judge's and the classifier's API keys from their Secrets.
API_KEY_ENV = {"judge": "SLUICE_JUDGE_API_KEY", "classifier": "SLUICE_CLASSIFIER_API_KEY"}


def _endpoint(role: str, endpoint: EvaluatorEndpoint | None, default_model: str | None = None) -> dict[str, Any] | None:
    """The config's `{url, model}`, and `api_key_env` when a Secret holds the endpoint's key."""
    if endpoint is None:
        return None
    keyed = {"api_key_env": API_KEY_ENV[role]} if endpoint.api_key_secret is not None else {}
    return {"url": endpoint.url, "model": endpoint.model or default_model} | keyed


def api_key_env(evaluator: Evaluator) -> list[dict[str, Any]]:
    """The container's env: each endpoint's key from its Secret (secretKeyRef), never in the ConfigMap."""
    endpoints = {"judge": evaluator.judge, "classifier": evaluator.classifier}
    return [{"name": API_KEY_ENV[role], "valueFrom": {"secretKeyRef": {"name": e.api_key_secret.name,
                                                                        "key": e.api_key_secret.key}}}
            for role, e in endpoints.items() if e is not None and e.api_key_secret is not None]


def evaluator_config(model: str, namespace: str, stable: Release, candidate: Release,
                     evaluator: Evaluator) -> dict[str, Any]:
    """The evaluator's config file (the contract with reconciler/evaluator/config.py).

    The classifier's model defaults to the candidate's `bundle.safety.classifier` (the release under
    evaluation names its yardstick), else stable's; both versions' answers go to that one classifier.
    """
    default_classifier = classifier_model(candidate) or classifier_model(stable)
    return {
        "app": model,
        "namespace": namespace,
        "listen_port": EVALUATOR_PORT,
        "stable": version_endpoint(model, stable.version, namespace),
        "candidate": version_endpoint(model, candidate.version, namespace),
        "expects_json": candidate.bundle.routing.expects_json,
        "judge": _endpoint("judge", evaluator.judge),
        "classifier": _endpoint("classifier", evaluator.classifier, default_classifier),
        "max_concurrency": evaluator.max_concurrency,
        "queue_size": evaluator.queue_size,
        "timeout_seconds": evaluator.timeout.total_seconds(),
        "retries": evaluator.retries,
        "divergence_threshold": evaluator.divergence_threshold,
    }


def evaluator_deployment(model: str, namespace: str, image: str, config_text: str,
                         env: list[dict[str, Any]] | None = None) -> Manifest:
    """One replica (its gauges cover its own last samples): non-root, read-only root filesystem, no
    service account token, probed on /healthz and scraped on /metrics; `env` carries API keys
    from Secrets."""
    name = evaluator_name(model)
    labels = evaluator_labels(model)
    health = {"httpGet": {"path": "/healthz", "port": "http"}}
    annotations = {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(EVALUATOR_PORT), "prometheus.io/path": "/metrics",
        CONFIG_DIGEST_ANNOTATION: hashlib.sha256(config_text.encode()).hexdigest(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, namespace, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,  # it talks to models, never to the Kubernetes API
                    "containers": [{
                        "name": "evaluator",
                        "image": image,
                        "command": [COMMAND, "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
                        **({"env": env} if env else {}),
                        "ports": [{"name": "http", "containerPort": EVALUATOR_PORT}],
                        "resources": RESOURCES,
                        "securityContext": {
                            "runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
                        "livenessProbe": {**health, "periodSeconds": 15, "failureThreshold": 4},
                        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": name}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


@dataclass(frozen=True)
class EvaluatorState:
    """A model's evaluator: its config, Deployment and Service, and the mirror towards it."""

    model: str
    sample_percent: float  # of the model's user traffic, mirrored to the evaluator at this stage
    config_map: Manifest
    deployment: Manifest
    service: Manifest
    mirror: dict[str, Any]  # the Istio Destination of the evaluator's Service

    @property
    def name(self) -> str:
        return evaluator_name(self.model)

    def manifests(self) -> list[Manifest]:
        return [self.config_map, self.deployment, self.service]


def evaluator_state(model: str, namespace: str, stable: Release, candidate: Release, stage: Stage,
                    evaluator: Evaluator) -> EvaluatorState:
    """The evaluator of a canary or shadow `stage`, sampling `evaluator.percent_at` the stage's share."""
    name = evaluator_name(model)
    labels = evaluator_labels(model)
    text = as_json(evaluator_config(model, namespace, stable, candidate, evaluator))
    return EvaluatorState(
        model, evaluator.percent_at(stage.candidate_percent),
        config_map(name, namespace, labels, {CONFIG_FILE: text}),
        evaluator_deployment(model, namespace, evaluator.image, text, api_key_env(evaluator)),
        service(name, namespace, {"app": name}, port=EVALUATOR_PORT),
        mirror_destination(model, namespace),
    )
