"""Pod rules: images pinned by digest, GPU placement, and what keeps a serving version available.

A *serving* Deployment is one whose pods carry the `app` and `version` labels (the contract Istio's
metrics and the subsets rely on); every other workload only has to pin its images.
"""

from __future__ import annotations

import re
from functools import partial
from collections.abc import Mapping
from typing import Any, Iterator

from ..naming import GPU_RESOURCE, GPU_TAINT, POOL_LABEL
from ..types import IMAGE_BY_DIGEST
from . import Scope, policy
from .resources import (
    RELEASE_ANNOTATION,
    WORKLOAD_KINDS,
    MissingProperty,
    Plan,
    PlannedResource,
    UnknownValue,
    container_name,
    containers,
    find_unknown,
    get,
    gpu_limit,
    is_serving,
    known,
    pod_labels,
    pod_spec,
    pool_of,
    typed,
)
from .results import PolicyResult, attempt, guarded, violation

_DIGEST = re.compile(IMAGE_BY_DIGEST)
IMAGE_FIX = ("pin the image by digest, registry/repository@sha256:<64 hex digits> (bundle.serving.image in the "
             "release; `crane digest <image>` prints it): a tag can move, a digest cannot")
GPU_FIX = ("serving pods need the toleration nvidia.com/gpu=true:NoSchedule, nodeSelector "
           f"{POOL_LABEL}: <pool> and resources.limits {GPU_RESOURCE}: <gpus>, as the program writes them; "
           "serve the model from one of the environment's gpu_pools")


def subject(resource: PlannedResource, environment: str | None = None) -> str:
    """"staging: Deployment chat-assistant-v1-3-0 (chat-assistant/v1.3.0-4f2a9c1d07e5)"."""
    release = known(resource.props, "spec", "template", "metadata", "annotations", RELEASE_ANNOTATION)
    suffix = f" ({release})" if isinstance(release, str) and release else ""
    return f"{environment or resource.stack}: {resource.label}{suffix}"


def _images(resource: PlannedResource, who: str) -> Iterator[PolicyResult]:
    spec, path = pod_spec(resource)
    for container, here in containers(spec, path):
        yield from guarded(f"{who} container {container_name(container, here)}", IMAGE_FIX, resource.urn,
                           partial(_image, resource, who, container, here))


def _image(resource: PlannedResource, who: str, container: Mapping[str, Any], path: str) -> Iterator[PolicyResult]:
    image = typed(get(container, "image", path=path), str, f"{path}.image", "an image reference")
    if not _DIGEST.fullmatch(image):
        kind = "initContainer" if ".initContainers[" in path else "container"
        yield violation(f"{who} {kind} {container_name(container, path)}",
                        f"image {image!r} is not pinned by digest", IMAGE_FIX, resource.urn)


@policy("image-digest",
        "Every container and init container image is pinned by digest (registry/repository@sha256:<64 hex>)",
        mandatory=True, scope=Scope.RESOURCE)
def image_digest(resource: PlannedResource) -> Iterator[PolicyResult]:
    if resource.kind not in WORKLOAD_KINDS:
        return
    who = subject(resource)
    yield from guarded(who, IMAGE_FIX, resource.urn, partial(_images, resource, who))


def tolerates_gpu_taint(tolerations: Any) -> bool:
    """A toleration for nvidia.com/gpu=true:NoSchedule (or a blanket `operator: Exists`)."""
    if not isinstance(tolerations, list):
        return False
    for t in tolerations:
        if not isinstance(t, Mapping):
            continue
        effect_ok = t.get("effect") in (None, "", GPU_TAINT["effect"])
        operator = t.get("operator") or "Equal"
        if operator == "Exists" and t.get("key") in (None, "", GPU_TAINT["key"]) and effect_ok:
            return True
        if operator == "Equal" and t.get("key") == GPU_TAINT["key"] and t.get("value") == GPU_TAINT["value"] \
                and effect_ok:
            return True
    return False


def _toleration(resource: PlannedResource, who: str) -> Iterator[PolicyResult]:
    spec, path = pod_spec(resource)
    tolerations = get(spec, "tolerations", path=path, default=[])
    if not tolerates_gpu_taint(tolerations):
        if find_unknown(tolerations):
            raise UnknownValue(f"{path}.tolerations")
        yield violation(who, f"its pods do not tolerate the GPU taint {GPU_TAINT['key']}={GPU_TAINT['value']}:"
                        f"{GPU_TAINT['effect']}, so they cannot land on GPU nodes", GPU_FIX, resource.urn)


def _pool(resource: PlannedResource, who: str) -> Iterator[PolicyResult]:
    spec, path = pod_spec(resource)
    try:
        pool_of(spec, path)
    except MissingProperty:
        yield violation(who, f"its pods select no GPU pool ({path}.nodeSelector has no {POOL_LABEL})",
                        GPU_FIX, resource.urn)


def _gpu_limits(resource: PlannedResource, who: str) -> Iterator[PolicyResult]:
    spec, path = pod_spec(resource)
    if sum(gpu_limit(c, here) for c, here in containers(spec, path, init=False)) <= 0:
        yield violation(who, f"no container sets resources.limits {GPU_RESOURCE}, so the pods get no GPU "
                        "(and could share one)", GPU_FIX, resource.urn)


@policy("gpu-scheduling",
        "Serving pods tolerate the GPU taint, select a GPU pool and set GPU limits",
        mandatory=True, scope=Scope.RESOURCE)
def gpu_scheduling(resource: PlannedResource) -> Iterator[PolicyResult]:
    if not is_serving(resource):
        return
    who = subject(resource)
    _, gaps = attempt(who, GPU_FIX, resource.urn, partial(pod_spec, resource))
    if gaps:  # no pod spec to judge: say so once, not once per check
        yield from gaps
        return
    for check in (_toleration, _pool, _gpu_limits):
        yield from guarded(who, GPU_FIX, resource.urn, partial(check, resource, who))


# ---------------------------------------------------------------------------------------------
# Availability: a disruption budget per serving Deployment, and readiness probes

AVAILABILITY_FIX = ("every serving Deployment needs a PodDisruptionBudget in its namespace whose selector matches "
                    "its pod labels (app, version), and a readinessProbe on each container, as the program writes them")


def selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Does a label selector (matchLabels, matchExpressions) select pods with `labels`? An empty
    selector selects nothing here: a budget must name what it protects."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        return False
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for e in expressions:
        if not isinstance(e, Mapping):
            return False
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _budgets_by_app(plan: Plan) -> dict[tuple[str, Any], list[PlannedResource]]:
    """PodDisruptionBudgets by (namespace, the `app` their selector requires, or None when it requires
    none), so each Deployment is matched against the few budgets that could select it."""
    index: dict[tuple[str, Any], list[PlannedResource]] = {}
    for budget in plan.of_kind("PodDisruptionBudget"):
        app = known(budget.props, "spec", "selector", "matchLabels", "app")
        index.setdefault((budget.namespace(), app if isinstance(app, str) else None), []).append(budget)
    return index


def _availability(plan: Plan, deployment: PlannedResource, who: str,
                  budgets: dict[tuple[str, Any], list[PlannedResource]]) -> Iterator[PolicyResult]:
    spec, path = pod_spec(deployment)
    labels = pod_labels(deployment)
    if not labels:
        raise MissingProperty("spec.template.metadata.labels", "the pod labels app and version")
    namespace = deployment.namespace()
    covered, undecided = False, ""
    for budget in budgets.get((namespace, labels.get("app")), []) + budgets.get((namespace, None), []):
        selector = known(budget.props, "spec", "selector")
        if selector is None and find_unknown(budget.props.get("spec")):
            undecided = f"{budget.label} spec.selector"
        elif selects(selector, labels) and not find_unknown(selector):
            covered = True
            break
    if not covered and undecided:
        raise UnknownValue(undecided)
    if not covered:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        yield violation(who, f"no PodDisruptionBudget in namespace {namespace} selects its pods ({shown}), so a "
                        "node drain may take the whole version down at once", AVAILABILITY_FIX, deployment.urn)
    for container, here in containers(spec, path, init=False):
        probe = get(container, "readinessProbe", path=here, default=None)
        if not isinstance(probe, Mapping) or not probe:
            yield violation(who, f"container {container_name(container, here)} has no readinessProbe, so it "
                            "takes traffic before the model is loaded", AVAILABILITY_FIX, deployment.urn)


@policy("serving-availability",
        "Every serving Deployment has a PodDisruptionBudget that selects its pods, and readiness probes",
        mandatory=True, scope=Scope.STACK)
def serving_availability(plan: Plan) -> Iterator[PolicyResult]:
    budgets = _budgets_by_app(plan)
    for deployment in plan.serving_deployments():
        who = subject(deployment, plan.environment)
        yield from guarded(who, AVAILABILITY_FIX, deployment.urn,
                           partial(_availability, plan, deployment, who, budgets))
