"""ConfigMaps: what a serving pod reads, and what people and policies inspect.

Per live version, two immutable maps (a release never changes, so neither do they):
`<stack>-release` holds the release manifest (bundle hashes, lineage, evaluation, approvals: what
the policy pack judges) and the fetch list of the init container; `<stack>-runtime` holds the
generation, safety and routing settings and the system prompt reference. Per model, one mutable
`<model>-pointer` map says which version is current, which is the canary and at what weight.
"""

from __future__ import annotations

import json
from typing import Any

from .environment import Policy
from .naming import FETCHER_CONFIG_MAP, pod_labels, stack_name
from .release import Release
from .serving_manifests import Manifest, bundle_dir, bundle_files, metadata
from .traffic import TrafficSplit
from .urls import redact_url


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def config_map(name: str, namespace: str, labels: dict[str, str], data: dict[str, str],
               immutable: bool = False) -> Manifest:
    manifest: Manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(name, namespace, labels)}
    if immutable:
        manifest["immutable"] = True
    manifest["data"] = data
    return manifest


def without_secrets(release: Release) -> dict[str, Any]:
    """The release as JSON, notification URLs cut to scheme://host/redacted: a webhook URL (its path,
    any user:password@) is a credential, and pods never notify."""
    data = release.model_dump(mode="json")
    for target in data["rollout"]["notify"]:
        target["url"] = redact_url(target["url"], "redacted")
    return data


#: The release ConfigMap's key for the evaluation artifact's bytes, as committed.
EVALUATION_KEY = "evaluation.json"


def release_config(release: Release, namespace: str, first_release: bool,
                   evaluation_artifact: bytes | None = None) -> Manifest:
    """`release.json` is what the policy pack judges; `first_release` says a missing parent is expected.
    `evaluation.json`, when the release names an evaluation artifact, is that file's text as committed,
    so the pack checks the release's numbers and sha256 against it (core/evaluation_artifact.py)."""
    manifest = {"full_id": release.full_id, "bundle_digest": release.bundle_digest(),
                "first_release": first_release, "release": without_secrets(release)}
    fetch_list = {"release": release.full_id, "artifacts": bundle_files(release)}
    data = {"release.json": as_json(manifest), "bundle.json": as_json(fetch_list)}
    if evaluation_artifact is not None:
        data[EVALUATION_KEY] = evaluation_artifact.decode("utf-8", "replace")
    return config_map(f"{stack_name(release.model, release.version)}-release", namespace,
                      pod_labels(release.model, release.version), data, immutable=True)


def runtime_config(release: Release, namespace: str) -> Manifest:
    bundle = release.bundle
    prompt = next(f for f in bundle_files(release) if f["name"] == "system_prompt")
    data = {
        "generation.json": as_json(bundle.generation.model_dump(mode="json")),
        "safety.json": as_json(bundle.safety.model_dump(mode="json")),
        "routing.json": as_json(bundle.routing.model_dump(mode="json")),
        "system_prompt.json": as_json({"uri": prompt["uri"], "sha256": prompt["sha256"],
                                       "path": f"{bundle_dir(release)}/{prompt['path']}"}),
    }
    return config_map(f"{stack_name(release.model, release.version)}-runtime", namespace,
                      pod_labels(release.model, release.version), data, immutable=True)


def pointer_config(model: str, namespace: str, versions: dict[str, str], split: TrafficSplit,
                   stage: int) -> Manifest:
    """Which version serves, for applications and dashboards that ask the cluster rather than git."""
    candidate = versions.get("candidate")
    data = {
        "current_version": versions["stable"],
        "canary_version": candidate or "",
        "canary_weight": str(split.weights.get(candidate, 0) if candidate else 0),
        "canary_stage": str(stage) if candidate else "",
        "mirror_percent": str(split.mirror[1] if split.mirror else 0),
        "standby_version": versions.get("standby", ""),
    }
    return config_map(f"{model}-pointer", namespace, {"app": model}, data)


def environment_config(environment: str, namespace: str, policy: Policy) -> Manifest:
    """The environment's name and policy (protection, approvers, pre-deployment limits), for the policy pack."""
    return config_map("sluice-environment", namespace, {"app.kubernetes.io/name": "sluice"},
                      {"environment": environment, "policy.json": as_json(policy.model_dump(mode="json"))})


def fetcher_config(namespace: str, script: str) -> Manifest:
    """The init containers' download-and-verify script, shipped once per namespace."""
    return config_map(FETCHER_CONFIG_MAP, namespace, {"app.kubernetes.io/name": "sluice"}, {"fetch_bundle.py": script})
