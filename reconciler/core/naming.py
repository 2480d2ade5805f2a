"""Names and labels the cluster objects share, decided once so routes, pods and policies agree.

Every name derives from the model and version alone, never from the pointer (stable, candidate,
standby): promoting or rolling back then changes routes only, and no pod template changes.
"""

from __future__ import annotations

import re

from .types import version_label

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
POOL_LABEL = "sluice.dev/gpu-pool"
MANAGED_BY = {"app.kubernetes.io/managed-by": "sluice"}
VERSION_HEADER = "x-model-version"
SERVING_PORT = 8000
FETCHER_CONFIG_MAP = "sluice-bundle-fetcher"

# Services need DNS-1035 labels: a letter first, at most 63 characters.
DNS_1035_LABEL = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"


def subset_name(version: str) -> str:
    """The Istio subset of a version, a DNS label: "1.3.0" -> "v1-3-0"."""
    return version_label(version).replace(".", "-")


def stack_name(model: str, version: str) -> str:
    """Deployment, Service and budget of one live version: chat-assistant-v1-3-0."""
    return f"{model}-{subset_name(version)}"


def pod_labels(model: str, version: str) -> dict[str, str]:
    """The labels Istio's metrics and the DestinationRule subsets select on (the metrics contract: docs/formats.md#metrics)."""
    return {"app": model, "version": version_label(version)}


def service_names(model: str, versions: list[str]) -> list[str]:
    """Every Service name a model needs: one for the model (the routed host), one per live version."""
    return [model, *(stack_name(model, v) for v in versions)]


def is_service_name(name: str) -> bool:
    return re.fullmatch(DNS_1035_LABEL, name) is not None
