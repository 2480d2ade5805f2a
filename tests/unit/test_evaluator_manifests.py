"""The online evaluator's objects and its mirror, as the desired state builds them from real example
files (edited in a temporary copy), checked against the official Kubernetes and Istio schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.adapters.deployable import load_desired_state
from reconciler.core.desired import DesiredState, ModelState
from reconciler.core.naming import VERSION_HEADER
from reconciler.core.policy.workloads import selects
from tests.conftest import ROOT, copy_example, mutate_yaml
from tests.manifest_schemas import validate_manifest

STAGING = "environments/staging.yaml"
R13 = "releases/chat-assistant/1.3.0.yaml"
EVALUATOR_HOST = "chat-assistant-evaluator.llm-serving.svc.cluster.local"


def state_after(tmp_path: Path, *edits: tuple[str, Callable[[Any], None]]) -> DesiredState:
    root = copy_example(tmp_path / "repo")
    for rel, change in edits:
        mutate_yaml(root / rel, change)
    return load_desired_state(root, "staging")


def chat(state: DesiredState) -> ModelState:
    return next(m for m in state.models if m.model == "chat-assistant")


def weighted(model: ModelState) -> list[dict[str, Any]]:
    """The mesh and gateway weighted routes (asserted present, so the loops over them check something)."""
    routes = [r for r in model.virtual_service["spec"]["http"] if r["name"].endswith("-weighted")]
    assert [r["name"] for r in routes] == ["mesh-weighted", "gateway-weighted"]
    return routes


def pinned(model: ModelState) -> list[dict[str, Any]]:
    return [r for r in model.virtual_service["spec"]["http"]
            if any(VERSION_HEADER in m.get("headers", {}) for m in r["match"])]


def at_stage(index: int) -> tuple[str, Callable[[Any], None]]:
    return STAGING, lambda d: d["models"]["chat-assistant"].update(stage=index)


def shadow_release(d: Any) -> None:
    d["rollout"].update(strategy="shadow", stages=[{"weight": 0, "mirror": 50, "min_duration": "24h"},
                                                   {"weight": 5}, {"weight": 100}])


# --- the example: chat-assistant 1.3.0 at 1% in staging ---------------------------------------------


def test_a_canary_stage_gets_the_evaluator_and_a_mirror_on_weighted_routes_only() -> None:
    model = chat(load_desired_state(ROOT, "staging"))
    assert model.evaluator is not None
    assert [m["kind"] for m in model.evaluator.manifests()] == ["ConfigMap", "Deployment", "Service"]
    for route in weighted(model):  # mesh and gateway
        assert route["mirror"] == {"host": EVALUATOR_HOST, "port": {"number": 8080}}
        assert route["mirrorPercentage"] == {"value": 1.0}  # sample_percent 5, capped at the 1% canary
    assert len(weighted(model)) == 2
    assert pinned(model) and all("mirror" not in r and "mirrors" not in r for r in pinned(model))
    # the evaluator's objects come before the routes that mirror to its Service (kubectl apply order)
    names = [(m["kind"], m["metadata"]["name"]) for m in model.manifests()]
    assert names.index(("Service", "chat-assistant-evaluator")) < names.index(("VirtualService", "chat-assistant"))


def test_the_config_is_the_contract_with_per_version_services_and_the_releases_classifier() -> None:
    config = json.loads(chat(load_desired_state(ROOT, "staging")).evaluator.config_map["data"]["evaluator.json"])
    assert config == {
        "app": "chat-assistant", "namespace": "llm-serving", "listen_port": 8080,
        "stable": {"version": "v1.2.0", "url": "http://chat-assistant-v1-2-0.llm-serving.svc.cluster.local:8000"},
        "candidate": {"version": "v1.3.0", "url": "http://chat-assistant-v1-3-0.llm-serving.svc.cluster.local:8000"},
        "expects_json": False,
        "judge": {"url": "http://judge.llm-serving.svc:8000", "model": "judge-model"},
        "classifier": {"url": "http://llama-guard.llm-serving.svc:8000", "model": "meta-llama/Llama-Guard-3-1B"},
        "max_concurrency": 4, "queue_size": 32, "timeout_seconds": 90.0, "retries": 2, "divergence_threshold": 0.6,
    }


def test_the_evaluator_pods_are_not_the_models_pods() -> None:
    """The model's Service and every DestinationRule subset select on `app: <model>`: the evaluator's
    pods must never be among them, or users would be served by it."""
    state = load_desired_state(ROOT, "staging")
    model = chat(state)
    pod = model.evaluator.deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "chat-assistant-evaluator" and "version" not in labels

    def service_selects(service: dict[str, Any]) -> bool:  # a Service's selector is a plain matchLabels map
        return selects({"matchLabels": service["spec"]["selector"]}, labels)

    assert not service_selects(model.service)
    services = [m for m in state.manifests() if m["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services if service_selects(s)] == ["chat-assistant-evaluator"]


def test_the_deployment_runs_the_pinned_image_non_root_with_probes_limits_and_scrape_annotations() -> None:
    deployment = chat(load_desired_state(ROOT, "staging")).evaluator.deployment
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/sluice@sha256:")
    assert container["command"] == ["sluice-evaluator", "--config", "/etc/sluice-evaluator/evaluator.json"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = pod["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"],
            annotations["prometheus.io/path"]) == ("true", "8080", "/metrics")
    assert "nvidia.com/gpu" not in json.dumps(deployment) and "nodeSelector" not in pod["spec"]


@pytest.mark.parametrize("environment", ["staging"])
def test_every_evaluator_object_validates_against_the_official_schemas(environment: str) -> None:
    model = chat(load_desired_state(ROOT, environment))
    for manifest in [*model.evaluator.manifests(), model.virtual_service]:
        validate_manifest(manifest, "1.33")


# --- when it is rendered, and what changes with the inputs ---------------------------------------------


@pytest.mark.parametrize(("stage", "rendered"), [(0, False), (1, True), (4, True), (5, False)],
                         ids=["0%", "1%", "50%", "100%"])
def test_only_a_canary_stage_with_two_serving_versions_renders_it(tmp_path: Path, stage: int, rendered: bool) -> None:
    model = chat(state_after(tmp_path, at_stage(stage)))
    assert (model.evaluator is not None) is rendered
    assert any(m["metadata"]["name"] == "chat-assistant-evaluator" for m in model.manifests()) is rendered
    assert any("mirror" in r for r in weighted(model)) is rendered


def test_no_candidate_or_no_evaluator_block_renders_nothing(tmp_path: Path) -> None:
    prod = load_desired_state(ROOT, "prod")  # prod has the block, but no candidate
    assert all(m.evaluator is None for m in prod.models)
    assert not any("evaluator" in m["metadata"]["name"] for m in prod.manifests())
    without_block = state_after(tmp_path, (STAGING, lambda d: d.pop("evaluator")))
    assert chat(without_block).evaluator is None
    assert all("mirror" not in r for r in weighted(chat(without_block)))


def test_a_shadow_stage_mirrors_to_the_candidate_and_the_evaluator_with_istios_mirrors_list(tmp_path: Path) -> None:
    model = chat(state_after(tmp_path, (R13, shadow_release), at_stage(0)))
    for route in weighted(model):
        assert "mirror" not in route and "mirrorPercentage" not in route  # Istio refuses both forms at once
        assert route["mirrors"] == [
            {"destination": {"host": "chat-assistant.llm-serving.svc.cluster.local", "subset": "v1-3-0"},
             "percentage": {"value": 50.0}},
            {"destination": {"host": EVALUATOR_HOST, "port": {"number": 8080}}, "percentage": {"value": 5.0}}]
    assert all("mirrors" not in r for r in pinned(model))
    validate_manifest(model.virtual_service, "1.33")


def test_a_shadow_stage_without_the_evaluator_keeps_the_single_mirror(tmp_path: Path) -> None:
    model = chat(state_after(tmp_path, (R13, shadow_release), at_stage(0), (STAGING, lambda d: d.pop("evaluator"))))
    for route in weighted(model):
        assert route["mirror"] == {"host": "chat-assistant.llm-serving.svc.cluster.local", "subset": "v1-3-0"}
        assert route["mirrorPercentage"] == {"value": 50.0} and "mirrors" not in route


def test_a_mirror_from_the_istio_schema_rejects_a_typo_so_the_check_is_not_vacuous(tmp_path: Path) -> None:
    model = chat(state_after(tmp_path, (R13, shadow_release), at_stage(0)))
    broken = json.loads(json.dumps(model.virtual_service))
    weighted_route = next(r for r in broken["spec"]["http"] if r["name"] == "mesh-weighted")
    weighted_route["mirrors"][1]["percentag"] = weighted_route["mirrors"][1].pop("percentage")
    with pytest.raises(AssertionError, match="percentag"):
        validate_manifest(broken, "1.33")


@pytest.mark.parametrize(("release", "stage", "sample_percent", "mirrored"), [
    (None, 1, 5, 1.0),  # 1% canary: every sample is also a candidate request, so at most its 1%
    (None, 2, 5, 5.0),  # 5% canary
    (None, 3, 5, 5.0),  # 25% canary: the setting itself
    (None, 3, 30, 25.0),
    (shadow_release, 0, 5, 5.0),  # shadow mirroring 50%
    (lambda d: d["rollout"].update(strategy="shadow", stages=[{"weight": 0, "mirror": 2}, {"weight": 100}]),
     0, 5, 2.0),  # shadow mirroring 2%: at most that
])
def test_the_sample_is_capped_at_the_candidates_share_so_the_evaluator_at_most_doubles_its_load(
        tmp_path: Path, release: Callable[[Any], None] | None, stage: int, sample_percent: float,
        mirrored: float) -> None:
    edits = [at_stage(stage), (STAGING, lambda d: d["evaluator"].update(sample_percent=sample_percent))]
    model = chat(state_after(tmp_path, *edits, *([(R13, release)] if release else [])))
    assert model.evaluator is not None and model.evaluator.sample_percent == mirrored
    for route in weighted(model):
        targets = route.get("mirrors") or [{"destination": route["mirror"], "percentage": route["mirrorPercentage"]}]
        assert {"destination": {"host": EVALUATOR_HOST, "port": {"number": 8080}},
                "percentage": {"value": mirrored}} in targets


def test_settings_reach_the_config_and_a_new_config_restarts_the_pod(tmp_path: Path) -> None:
    before = chat(load_desired_state(ROOT, "staging")).evaluator
    after = chat(state_after(
        tmp_path, (STAGING, lambda d: d["evaluator"].update(sample_percent=0.5, max_concurrency=8, timeout="2m",
                                                             classifier={"url": "http://guard:8000", "model": "g"})),
        (R13, lambda d: d["bundle"]["routing"].update(expects_json=True)))).evaluator
    config = json.loads(after.config_map["data"]["evaluator.json"])
    assert (config["max_concurrency"], config["timeout_seconds"], config["expects_json"]) == (8, 120.0, True)
    assert config["classifier"] == {"url": "http://guard:8000", "model": "g"}  # a model named wins over the release's
    assert after.sample_percent == 0.5
    digest = "sluice.dev/config-sha256"
    assert before.deployment["spec"]["template"]["metadata"]["annotations"][digest] != \
        after.deployment["spec"]["template"]["metadata"]["annotations"][digest]


def test_without_a_judge_or_classifier_the_config_says_null(tmp_path: Path) -> None:
    state = state_after(tmp_path, (STAGING, lambda d: [d["evaluator"].pop(k) for k in ("judge", "classifier")]))
    config = json.loads(chat(state).evaluator.config_map["data"]["evaluator.json"])
    assert config["judge"] is None and config["classifier"] is None


def test_an_api_key_secret_reaches_the_container_as_an_env_var_the_config_names(tmp_path: Path) -> None:
    from reconciler.evaluator.config import EvaluatorConfig, model_endpoint

    secret = {"name": "judge-api-key", "key": "token"}
    state = state_after(tmp_path, (STAGING, lambda d: d["evaluator"]["judge"].update(api_key_secret=secret)))
    evaluator = chat(state).evaluator
    text = evaluator.config_map["data"]["evaluator.json"]
    config = json.loads(text)
    assert config["judge"] == {"url": "http://judge.llm-serving.svc:8000", "model": "judge-model",
                               "api_key_env": "SLUICE_JUDGE_API_KEY"}
    assert "api_key_env" not in config["classifier"]  # no Secret named for it
    [container] = evaluator.deployment["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "SLUICE_JUDGE_API_KEY",
                                 "valueFrom": {"secretKeyRef": {"name": "judge-api-key", "key": "token"}}}]
    validate_manifest(evaluator.deployment, "1.33")
    # the evaluator reads the rendered config and sends the key the kubelet put in that variable
    judge = EvaluatorConfig.model_validate_json(text).judge
    assert judge is not None
    assert model_endpoint(judge, {"SLUICE_JUDGE_API_KEY": "sk-j"}).headers == {"Authorization": "Bearer sk-j"}


def test_without_a_secret_the_container_has_no_env() -> None:
    [container] = chat(load_desired_state(ROOT, "staging")).evaluator.deployment["spec"]["template"]["spec"][
        "containers"]
    assert "env" not in container
