"""Every serving pod asks its Istio sidecar for Sluice's latency buckets, and for nothing else.

The judge reads istio_request_duration_milliseconds_bucket (docs/judgement.md); Istio's defaults are
too coarse around an LLM's p99, so each serving pod template carries the annotation
`sidecar.istio.io/statsHistogramBuckets` (Istio's annotation reference). Checked on the desired
state of the example environments, with three live versions as well, as the program and `render`
deploy it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.adapters.deployable import load_desired_state
from reconciler.core.desired import DesiredState
from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS
from tests.conftest import copy_example, mutate_yaml

ANNOTATION = "sidecar.istio.io/statsHistogramBuckets"
LATENCY_PREFIX = "istiocustom.istio_request_duration_milliseconds"  # not `istiocustom`: the size histograms too


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DesiredState]:
    """prod and staging as committed, and staging with a standby too (stable, candidate, standby)."""
    root = copy_example(tmp_path_factory.mktemp("buckets") / "repo")
    found = {env: load_desired_state(root, env) for env in ("prod", "staging")}
    mutate_yaml(root / "environments/staging.yaml",
                lambda doc: doc["models"]["chat-assistant"].update(standby="1.1.0"))
    found["staging+standby"] = load_desired_state(root, "staging")
    return found


def test_every_serving_pod_template_carries_the_latency_buckets(states: dict[str, DesiredState]) -> None:
    templates = {(env, stack.deployment["metadata"]["name"]): stack.deployment["spec"]["template"]
                 for env, state in states.items() for model in state.models for stack in model.stacks}
    assert ("staging+standby", "chat-assistant-v1-1-0") in templates  # the loop sees a standby's stack
    for where, template in templates.items():
        value = json.loads(template["metadata"]["annotations"][ANNOTATION])
        assert list(value) == [LATENCY_PREFIX], where
        boundaries = value[LATENCY_PREFIX]
        assert all(0 < low < high for low, high in zip(boundaries, boundaries[1:])), where  # Envoy: > 0, unique
        assert tuple(boundaries) == SERVING_LATENCY_BUCKETS_MS, where


def test_the_annotation_is_compact_json(states: dict[str, DesiredState]) -> None:
    deployment = states["staging"].models[0].stacks[0].deployment
    text = deployment["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
    assert text.startswith('{"istiocustom.istio_request_duration_milliseconds":[5,25,125,144,')
    assert " " not in text and text.endswith(",256000,600000,1800000]}")


def test_the_evaluator_pods_keep_istios_defaults(states: dict[str, DesiredState]) -> None:
    """The evaluator is not judged on its latency: its pods are left as they were."""
    evaluators = [m.evaluator for m in states["staging"].models if m.evaluator is not None]
    assert evaluators  # staging's canary has one
    for evaluator in evaluators:
        deployment = next(m for m in evaluator.manifests() if m["kind"] == "Deployment")
        assert ANNOTATION not in deployment["spec"]["template"]["metadata"]["annotations"]
