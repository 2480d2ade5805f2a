"""The Pulumi program under the SDK's official mocks (no CLI, no plugins), preview and update.

Assertions read the inputs the mock engine recorded at registration, never values inside
`.apply` (which silently never run on unknowns during preview).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pulumi
import pytest

from reconciler.adapters.deployable import load_desired_state
from reconciler.adapters.offline_engine import ProgramRun, RecordedResource, run_program
from tests.conftest import ROOT as EXAMPLE_ROOT
from tests.conftest import copy_example, mutate_yaml

ENVIRONMENTS = ("prod", "staging")
WORKER_NODE_POLICIES = {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"}


def run(root: Path, environment: str, preview: bool) -> ProgramRun:
    return run_program(root / "infra", project="sluice", stack=environment, config={"environment": environment},
                       preview=preview)


@pytest.fixture(scope="module", params=[(e, p) for e in ENVIRONMENTS for p in (True, False)],
                ids=[f"{e}-{'preview' if p else 'update'}" for e in ENVIRONMENTS for p in (True, False)])
def program(request: pytest.FixtureRequest) -> tuple[str, ProgramRun]:
    environment, preview = request.param
    return environment, run(EXAMPLE_ROOT, environment, preview)


def as_manifest_numbers(value):
    """The engine sends numbers as floats (replicas: 2.0); manifests hold ints."""
    if isinstance(value, dict):
        return {k: as_manifest_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_manifest_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def of_type(run_: ProgramRun, prefix: str) -> list[RecordedResource]:
    return [r for r in run_.resources if r.type.startswith(prefix)]


def parent_type(resource: RecordedResource) -> str:
    """The mock URN's qualified type is "<parent type>$<type>"."""
    qualified = resource.urn.split("::")[2]
    return qualified.split("$")[-2] if "$" in qualified else ""


def test_the_stack_outputs_the_live_versions_and_weights_per_model(program: tuple[str, ProgramRun]) -> None:
    environment, run_ = program
    expected = {
        "staging": {"chat-assistant": {"versions": {"stable": "1.2.0", "candidate": "1.3.0"},
                                       "weights": {"1.2.0": 99, "1.3.0": 1}},
                    "code-completion": {"versions": {"stable": "2.0.0", "candidate": "2.1.0"},
                                        "weights": {"2.0.0": 100, "2.1.0": 0}}},
        "prod": {"chat-assistant": {"versions": {"stable": "1.2.0", "standby": "1.1.0"},
                                    "weights": {"1.2.0": 100, "1.1.0": 0}},
                 "code-completion": {"versions": {"stable": "2.0.0"}, "weights": {"2.0.0": 100}}},
    }
    assert run_.outputs == expected[environment]


def test_every_kubernetes_object_is_registered_exactly_as_rendered(program: tuple[str, ProgramRun]) -> None:
    environment, run_ = program
    state = load_desired_state(EXAMPLE_ROOT, environment)
    rendered = {(m["kind"], m["metadata"]["name"]): m for m in state.manifests()}
    registered = {}
    for resource in of_type(run_, "kubernetes:"):
        if resource.type == "pulumi:providers:kubernetes":
            continue
        inputs = as_manifest_numbers(resource.inputs)
        registered[(inputs["kind"], inputs["metadata"]["name"])] = inputs
    assert registered.keys() == rendered.keys()
    for key, manifest in rendered.items():
        assert registered[key] == manifest, key


def test_kubernetes_objects_go_through_the_environments_provider(program: tuple[str, ProgramRun]) -> None:
    environment, run_ = program
    k8s = [r for r in of_type(run_, "kubernetes:")]
    assert k8s and all(r.provider.startswith(f"urn:pulumi:{environment}::sluice::") and
                       "pulumi:providers:kubernetes::" in r.provider for r in k8s)
    aws = [r for r in of_type(run_, "aws:")]
    assert aws and all("pulumi:providers:aws::" in r.provider for r in aws)


def test_each_gpu_pool_is_a_tainted_nvidia_node_group_with_a_worker_role(program: tuple[str, ProgramRun]) -> None:
    environment, run_ = program
    state = load_desired_state(EXAMPLE_ROOT, environment)
    groups = {r.name: r.inputs for r in of_type(run_, "aws:eks/nodeGroup:NodeGroup")}
    assert set(groups) == {p.pool.name for p in state.node_pools}
    for pool in state.node_pools:
        group = as_manifest_numbers(groups[pool.pool.name])
        assert group["amiType"].endswith("_NVIDIA")
        assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert group["labels"] == {"sluice.dev/gpu-pool": pool.pool.name}
        assert group["instanceTypes"] == [pool.pool.instance_type]
        assert group["clusterName"] == state.cluster.name
        assert group["scalingConfig"] == {"minSize": pool.pool.min_nodes, "maxSize": pool.pool.max_nodes,
                                          "desiredSize": pool.desired_nodes}
        assert pool.pool.min_nodes <= pool.desired_nodes <= pool.pool.max_nodes
        assert group["subnetIds"] == ["subnet-offline-a", "subnet-offline-b"]  # from the EKS cluster lookup
        assert group["nodeRoleArn"].endswith(f":{pool.pool.name}-node")
    attached = {(r.name.split("-node-")[0], r.inputs["policyArn"]) for r in
                of_type(run_, "aws:iam/rolePolicyAttachment")}
    assert attached == {(p.pool.name, f"arn:aws:iam::aws:policy/{policy}")
                        for p in state.node_pools for policy in WORKER_NODE_POLICIES}


def test_children_are_parented_to_the_component_of_their_concern(program: tuple[str, ProgramRun]) -> None:
    _, run_ = program
    expected_parent = {
        "aws:eks/nodeGroup:NodeGroup": "sluice:infra:GpuNodePool",
        "aws:iam/role:Role": "sluice:infra:GpuNodePool",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "sluice:infra:GpuNodePool",
        "kubernetes:apps/v1:Deployment": "sluice:serving:ServingStack",
        "kubernetes:policy/v1:PodDisruptionBudget": "sluice:serving:ServingStack",
        "kubernetes:networking.istio.io/v1:VirtualService": "sluice:traffic:TrafficRoutes",
        "kubernetes:networking.istio.io/v1:DestinationRule": "sluice:traffic:TrafficRoutes",
        "kubernetes:core/v1:Namespace": "sluice:serving:ServingNamespace",
        "pulumi:providers:kubernetes": "sluice:infra:ClusterAccess",
    }
    for resource in run_.resources:
        if resource.name.endswith("-evaluator") and resource.type.startswith("kubernetes:"):  # ConfigMap, Deployment, Service
            assert parent_type(resource) == "sluice:evaluation:OnlineEvaluator", resource.urn
        elif resource.type in expected_parent:
            assert parent_type(resource) == expected_parent[resource.type], resource.urn
        elif resource.type == "kubernetes:core/v1:ConfigMap":
            assert parent_type(resource) in {"sluice:serving:ReleaseConfig", "sluice:serving:ServingNamespace"}
        elif resource.type == "kubernetes:core/v1:Service":
            owner = "sluice:traffic:TrafficRoutes" if "-v" not in resource.name else "sluice:serving:ServingStack"
            assert parent_type(resource) == owner, resource.urn


def test_no_two_resources_share_a_name(program: tuple[str, ProgramRun]) -> None:
    """The mock engine would silently accept a duplicate URN; the real engine refuses the whole update."""
    _, run_ = program
    urns = [r.urn for r in run_.resources]
    assert len(urns) == len(set(urns))
    names = [(r.type, r.name) for r in run_.resources]
    assert len(names) == len(set(names))


def test_preview_and_update_register_the_same_resources() -> None:
    for environment in ENVIRONMENTS:
        preview, update = run(EXAMPLE_ROOT, environment, True), run(EXAMPLE_ROOT, environment, False)
        assert {r.urn: r.inputs for r in preview.resources} == {r.urn: r.inputs for r in update.resources}
        assert any(r.inputs.get("role") for r in preview.resources)  # a created role's name reached its attachments


def test_a_repository_with_errors_is_refused_with_validate_messages(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    shutil.copytree(EXAMPLE_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    mutate_yaml(root / "environments/staging.yaml", lambda d: d["models"]["chat-assistant"].update(replicas=9))
    with pytest.raises(pulumi.RunError, match=r"environments/staging.yaml:\d+:\d+: error: gpu_pools\[0\].max_nodes: "
                                              r"pool a100 needs 10 p4de.24xlarge nodes .* \[capacity\]"):
        run(root, "staging", True)


def test_an_unknown_environment_is_refused_with_the_known_ones() -> None:
    with pytest.raises(pulumi.RunError, match=r"no environments/nowhere.yaml \(known: prod, staging\)"):
        run(EXAMPLE_ROOT, "nowhere", True)


def test_pulumi_up_waits_for_every_serving_pod_to_load_its_model(program: tuple[str, ProgramRun]) -> None:
    """pulumi-kubernetes gives up on a Deployment after 10 minutes by default; a rolling update of
    GPU pods replaces one pod at a time, each within the hour its progress deadline allows."""
    from reconciler.core.serving_manifests import POD_READY_DEADLINE_SECONDS

    _, run_ = program
    deployments = of_type(run_, "kubernetes:apps/v1:Deployment")
    serving = [d for d in deployments if parent_type(d) == "sluice:serving:ServingStack"]
    assert serving
    for d in serving:
        replicas = int(d.inputs["spec"]["replicas"])
        expected = f"{max(1, replicas) * POD_READY_DEADLINE_SECONDS // 60}m"
        assert d.custom_timeouts == {"create": expected, "update": expected}, d.name
        assert d.inputs["spec"]["progressDeadlineSeconds"] == POD_READY_DEADLINE_SECONDS
