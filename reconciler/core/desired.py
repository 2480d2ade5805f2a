"""The desired state of one environment: every object to create, as plain data.

A pure function of the repository at a commit (and the fetch script shipped with Sluice): no
clock, no network, no randomness. The same commit always gives the same objects, so a preview is
reproducible and reverting a commit restores the previous state exactly. The Pulumi program, the
`render` command and the policy pack all start from this value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config_manifests import environment_config, fetcher_config, pointer_config, release_config, runtime_config
from .environment import Cluster, Environment, GpuPool
from .evaluator_manifests import EvaluatorState, evaluates, evaluator_state
from .naming import GPU_TAINT, MANAGED_BY, POOL_LABEL, pod_labels, stack_name
from .release import Release
from .repository import Repository
from .route_manifests import destination_rule, virtual_service
from .serving_manifests import Manifest, deployment, disruption_budget, service
from .traffic import TrafficSplit, live_releases, pool_demand, traffic_split


@dataclass(frozen=True)
class NodePool:
    """An EKS managed node group of GPU nodes, tainted so only GPU workloads land on it."""

    pool: GpuPool
    desired_nodes: int
    needs: tuple[str, ...]

    @property
    def labels(self) -> dict[str, str]:
        return {POOL_LABEL: self.pool.name}

    @property
    def taint(self) -> dict[str, str]:
        return dict(GPU_TAINT)


@dataclass(frozen=True)
class ServingStack:
    """One live version: its config maps, Deployment, Service and disruption budget."""

    release: Release
    release_config: Manifest
    runtime_config: Manifest
    deployment: Manifest
    service: Manifest
    disruption_budget: Manifest

    @property
    def name(self) -> str:
        return stack_name(self.release.model, self.release.version)

    def manifests(self) -> list[Manifest]:
        return [self.release_config, self.runtime_config, self.deployment, self.service, self.disruption_budget]


@dataclass(frozen=True)
class ModelState:
    """One model in one environment: its live versions, their stacks, and the routes between them."""

    model: str
    versions: dict[str, str]  # pointer -> version, e.g. {"stable": "1.2.0", "candidate": "1.3.0"}
    split: TrafficSplit
    stacks: tuple[ServingStack, ...]
    pointer_config: Manifest
    service: Manifest
    destination_rule: Manifest
    virtual_service: Manifest
    evaluator: EvaluatorState | None = None  # while a canary or shadow stage has two versions to compare

    def route_manifests(self) -> list[Manifest]:
        return [self.pointer_config, self.service, self.destination_rule, self.virtual_service]

    def manifests(self) -> list[Manifest]:
        """Stacks, then the evaluator (the routes mirror to its Service), then the routes."""
        evaluator = self.evaluator.manifests() if self.evaluator is not None else []
        return [m for s in self.stacks for m in s.manifests()] + evaluator + self.route_manifests()

    def outputs(self) -> dict[str, Any]:
        return {"versions": dict(self.versions), "weights": dict(self.split.weights)}


@dataclass(frozen=True)
class DesiredState:
    environment: str
    cluster: Cluster
    namespace: Manifest
    fetcher: Manifest
    environment_config: Manifest
    node_pools: tuple[NodePool, ...]
    models: tuple[ModelState, ...]

    def manifests(self) -> list[Manifest]:
        """Every Kubernetes and Istio object, in an order `kubectl apply` accepts."""
        return [self.namespace, self.fetcher, self.environment_config,
                *(m for model in self.models for m in model.manifests())]

    def outputs(self) -> dict[str, Any]:
        return {model.model: model.outputs() for model in self.models}


class NotDeployable(ValueError):
    """The repository cannot produce this environment (run `reconciler validate` for the details)."""


def desired_state(repo: Repository, environment: str, fetch_script: str) -> DesiredState:
    """Everything `environment` should run, assuming the repository validated without errors."""
    env = repo.environments.get(environment)
    if env is None:
        raise NotDeployable(f"no environments/{environment}.yaml (known: {', '.join(sorted(repo.environments))})")
    namespace = env.namespace
    models = tuple(_model_state(repo, env, model) for model in sorted(env.models))
    pools = tuple(
        NodePool(d.pool, min(max(d.nodes, d.pool.min_nodes), d.pool.max_nodes), tuple(d.needs))
        for d in pool_demand(repo, env)
    )
    namespace_manifest = {"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": namespace, "labels": {"istio-injection": "enabled", **MANAGED_BY}}}
    return DesiredState(environment, env.cluster, namespace_manifest, fetcher_config(namespace, fetch_script),
                        environment_config(environment, namespace, env.policy), pools, models)


def _artifact_of(repo: Repository, release: Release) -> bytes | None:
    ref = release.evaluation.artifact
    return repo.evaluation_artifacts.get(ref.uri) if ref is not None else None


def _model_state(repo: Repository, env: Environment, model: str) -> ModelState:
    dep = env.models[model]
    live = live_releases(repo, model, dep)
    missing = set(dep.live_versions()) - {r.version for _, r in live}
    if missing:
        raise NotDeployable(f"{model}: no release file for {', '.join(sorted(missing))}")
    candidate = repo.release(model, dep.candidate) if dep.candidate else None
    split = traffic_split(dep, candidate)
    ns = env.namespace
    stacks = tuple(
        ServingStack(release, release_config(release, ns, repo.is_first_release(release), _artifact_of(repo, release)),
                     runtime_config(release, ns),
                     deployment(release, dep, ns), service(stack_name(model, release.version), ns,
                                                           pod_labels(model, release.version)),
                     disruption_budget(release, ns))
        for _, release in live
    )
    versions = {pointer: release.version for pointer, release in live}
    timeouts = {release.version: release.bundle.routing.request_timeout for _, release in live}
    evaluator = None
    if env.evaluator is not None and candidate is not None and split.stage is not None and evaluates(split):
        evaluator = evaluator_state(model, ns, dict(live)["stable"], candidate, split.stage, env.evaluator)
    sample = (evaluator.mirror, evaluator.sample_percent) if evaluator is not None else None
    return ModelState(
        model, versions, split, stacks,
        pointer_config(model, ns, versions, split, dep.stage),
        service(model, ns, {"app": model}),
        destination_rule(model, ns, list(split.weights)),
        virtual_service(model, ns, split, timeouts, env.istio.gateway, list(env.istio.hosts), sample),
        evaluator,
    )
