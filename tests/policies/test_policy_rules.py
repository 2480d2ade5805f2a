"""Each policy rule on the inputs the engine would send: the example environments as recorded by the
offline engine, and copies mutated one property at a time.

For every rule: the examples pass, a violation fails with a message naming the environment, the
release, the numbers and the fix, a missing property is a violation (never an exception), and an
unknown value gives an unknown result (never a violation).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from reconciler.core.policy import POLICIES, PolicyResult, Scope, evaluate, get_rule, policy_rules
from reconciler.core.policy.resources import UNKNOWN_STRING, Plan
from reconciler.core.policy.secrets import secret_findings
from reconciler.runtime import fetch_bundle
from tests.policies.examples import (
    ENVIRONMENTS,
    planned,
    pod_spec,
    recorded,
    set_weights,
    weighted_routes,
    with_inputs,
    with_release,
    without,
)

UNKNOWN_NUMBER = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"
CANDIDATE = "chat-assistant/v1.3.0-4f2a9c1d07e5"
STABLE = "chat-assistant/v1.2.0-9c41e7a2d3b8"
MANDATORY = {"route-weights", "mirror-targets", "image-digest", "gpu-scheduling", "serving-availability",
             "bundle-hashes", "predeployment-gates", "lineage-complete", "approvals", "gpu-capacity",
             "configmap-secrets", "evaluation-artifact"}
ADVISORY = {"latency-p99", "first-canary-stage", "major-version-rollout"}


@pytest.fixture(scope="module")
def staging() -> list[Any]:
    return recorded("staging")


@pytest.fixture(scope="module")
def prod() -> list[Any]:
    return recorded("prod")


def run(name: str, resources: list[Any]) -> list[PolicyResult]:
    return get_rule(name).run(Plan(planned(resources)))


def violations(name: str, resources: list[Any]) -> list[str]:
    return [r.message for r in run(name, resources) if not r.unknown]


def unknowns(name: str, resources: list[Any]) -> list[str]:
    return [r.message for r in run(name, resources) if r.unknown]


def only(messages: list[str]) -> str:
    assert len(messages) == 1, messages
    return messages[0]


# ---------------------------------------------------------------------------------------------
# The registry


def test_registry_names_levels_and_scopes() -> None:
    rules = policy_rules()
    assert {r.name for r in rules if r.mandatory} == MANDATORY
    assert {r.name for r in rules if not r.mandatory} == ADVISORY
    assert [r.mandatory for r in rules] == sorted((r.mandatory for r in rules), reverse=True)  # mandatory first
    for rule in rules:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
        assert rule.description and rule.scope in (Scope.RESOURCE, Scope.STACK)
        assert POLICIES[rule.name] is rule


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_examples_pass_every_rule(env: str) -> None:
    assert [(v.rule.name, v.result) for v in evaluate(planned(recorded(env)))] == []


def test_nothing_to_judge_is_no_violation() -> None:
    assert evaluate([]) == []


def test_every_message_names_environment_and_fix(staging: list[Any]) -> None:
    broken = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                         lambda d: pod_spec(d)["containers"][0].update(image="vllm/vllm-openai:latest"))
    message = only(violations("image-digest", broken))
    assert message.startswith("staging: Deployment chat-assistant-v1-3-0 (chat-assistant/v1.3.0-4f2a9c1d07e5)")
    assert "; fix: pin the image by digest" in message


# ---------------------------------------------------------------------------------------------
# route-weights


def test_routes_sum_to_100(staging: list[Any]) -> None:
    broken = with_inputs(staging, "VirtualService", "chat-assistant", set_weights({"v1-2-0": 90, "v1-3-0": 5}))
    messages = violations("route-weights", broken)
    assert len(messages) == 2  # mesh and gateway
    assert messages[0] == (
        "staging: VirtualService chat-assistant route mesh-weighted: weights sum to 95% (v1-2-0 90%, v1-3-0 5%), "
        "not 100%; fix: routes come from the environment's pointers and the candidate's rollout.stages: set "
        "models.chat-assistant.stage in environments/staging.yaml and let the program write the weights; never "
        "edit a VirtualService by hand")


def test_candidate_weight_matches_its_stage(staging: list[Any]) -> None:
    broken = with_inputs(staging, "VirtualService", "chat-assistant", set_weights({"v1-2-0": 95, "v1-3-0": 5}))
    messages = violations("route-weights", broken)
    assert (f"staging: VirtualService chat-assistant route gateway-weighted: sends 5% to v1-3-0 (candidate "
            f"{CANDIDATE} at stage 1), which should get 1%; fix: ") in [m.split("fix: ")[0] + "fix: " for m in messages]
    assert any("sends 95% to v1-2-0 (stable 1.2.0), which should get 99%" in m for m in messages)


def test_pointer_stage_moves_the_expected_weight(staging: list[Any]) -> None:
    advanced = with_inputs(staging, "ConfigMap", "chat-assistant-pointer",
                           lambda c: c["data"].update(canary_stage="2"))
    assert any(f"sends 1% to v1-3-0 (candidate {CANDIDATE} at stage 2), which should get 5%" in m
               for m in violations("route-weights", advanced))


def test_stage_outside_the_rollout(staging: list[Any]) -> None:
    broken = with_inputs(staging, "ConfigMap", "chat-assistant-pointer", lambda c: c["data"].update(canary_stage="9"))
    message = only(violations("route-weights", broken))
    assert f"ConfigMap chat-assistant-pointer puts candidate {CANDIDATE} at stage 9, but its rollout has stages 0..5" \
        in message


def test_no_candidate_means_stable_takes_everything(prod: list[Any]) -> None:
    broken = with_inputs(prod, "VirtualService", "chat-assistant", set_weights({"v1-1-0": 50, "v1-2-0": 50}))
    messages = violations("route-weights", broken)
    assert any("sends 50% to v1-1-0 (not the stable or the candidate), which should get 0%" in m for m in messages)
    assert any("sends 50% to v1-2-0 (stable 1.2.0, no candidate), which should get 100%" in m for m in messages)


def test_a_mirror_no_stage_asks_for(staging: list[Any]) -> None:
    def mirror(vs: dict[str, Any]) -> None:
        for route in weighted_routes(vs):
            route["mirror"] = {"host": "chat-assistant", "subset": "v1-3-0"}
            route["mirrorPercentage"] = {"value": 100.0}

    messages = violations("route-weights", with_inputs(staging, "VirtualService", "chat-assistant", mirror))
    assert len(messages) == 2 and "mirrors 100% to v1-3-0, but no stage mirrors now" in messages[0]


def test_shadow_stage_must_mirror(staging: list[Any]) -> None:
    def shadow_stage(doc: dict[str, Any]) -> None:
        doc["release"]["rollout"]["stages"][1] = {**doc["release"]["rollout"]["stages"][1], "weight": 1, "mirror": 50}

    messages = violations("route-weights", with_release(staging, "chat-assistant-v1-3-0-release", shadow_stage))
    assert any(f"mirrors nothing, but candidate {CANDIDATE} at stage 1 mirrors 50% to v1-3-0" in m for m in messages)


def test_pinned_routes_are_not_traffic_routes(staging: list[Any]) -> None:
    """A pinned route sends 100% to its version whatever the stage: it is not judged."""
    assert violations("route-weights", staging) == []


def test_routes_missing_properties(staging: list[Any]) -> None:
    broken = with_inputs(staging, "VirtualService", "chat-assistant", lambda vs: vs["spec"].pop("http"))
    assert only(violations("route-weights", broken)).startswith(
        "staging: VirtualService chat-assistant: spec.http is missing; fix: routes come from")
    no_release = without(staging, "ConfigMap", "chat-assistant-v1-3-0-release")
    assert "the release ConfigMap of chat-assistant 1.3.0 is missing" in only(violations("route-weights", no_release))


def test_routes_unknown_values(staging: list[Any]) -> None:
    weight = with_inputs(staging, "VirtualService", "chat-assistant",
                         lambda vs: weighted_routes(vs)[0]["route"][1].update(weight=UNKNOWN_NUMBER))
    assert violations("route-weights", weight) == []
    assert only(unknowns("route-weights", weight)) == (
        "staging: VirtualService chat-assistant: cannot be judged during preview because spec.http[2].route[1].weight "
        "is not known yet; it is judged when `pulumi up` knows it")
    stage = with_inputs(staging, "ConfigMap", "chat-assistant-pointer",
                        lambda c: c["data"].update(canary_stage=UNKNOWN_STRING))
    assert violations("route-weights", stage) == []
    assert "data.canary_stage is not known yet" in unknowns("route-weights", stage)[0]


# ---------------------------------------------------------------------------------------------
# image-digest


@pytest.mark.parametrize("where, label", [("containers", "container server"),
                                          ("initContainers", "initContainer fetch-bundle")])
def test_images_are_pinned_by_digest(staging: list[Any], where: str, label: str) -> None:
    broken = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                         lambda d: pod_spec(d)[where][0].update(image="vllm/vllm-openai:v0.6.3"))
    assert only(violations("image-digest", broken)).startswith(
        f"staging: Deployment chat-assistant-v1-3-0 ({CANDIDATE}) {label}: image 'vllm/vllm-openai:v0.6.3' is not "
        "pinned by digest; fix: pin the image by digest")


def test_a_short_digest_is_not_a_digest(staging: list[Any]) -> None:
    broken = with_inputs(staging, "Deployment", "chat-assistant-v1-2-0",
                         lambda d: pod_spec(d)["containers"][0].update(image="vllm@sha256:abc123"))
    assert "not pinned by digest" in only(violations("image-digest", broken))


def test_images_missing_properties(staging: list[Any]) -> None:
    no_template = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0", lambda d: d["spec"].pop("template"))
    assert "chat-assistant-v1-3-0: spec.template is missing; fix:" in only(violations("image-digest", no_template))
    no_image = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                           lambda d: pod_spec(d)["containers"][0].pop("image"))
    assert "container server: spec.template.spec.containers[0].image is missing" in \
        only(violations("image-digest", no_image))
    no_containers = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                                lambda d: pod_spec(d).update(containers=[]))
    assert "spec.template.spec.containers is missing (expected at least one container)" in \
        only(violations("image-digest", no_containers))


def test_images_unknown(staging: list[Any]) -> None:
    unknown = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                          lambda d: pod_spec(d)["containers"][0].update(image=UNKNOWN_STRING))
    assert violations("image-digest", unknown) == []
    assert "spec.template.spec.containers[0].image is not known yet" in only(unknowns("image-digest", unknown))


# ---------------------------------------------------------------------------------------------
# gpu-scheduling


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.pop("tolerations"), "do not tolerate the GPU taint nvidia.com/gpu=true:NoSchedule"),
    (lambda s: s["tolerations"][0].update(value="false"), "do not tolerate the GPU taint"),
    (lambda s: s.pop("nodeSelector"),
     "select no GPU pool (spec.template.spec.nodeSelector has no sluice.dev/gpu-pool)"),
    (lambda s: s["containers"][0]["resources"].pop("limits"), "no container sets resources.limits nvidia.com/gpu"),
])
def test_gpu_pods_tolerate_select_and_limit(staging: list[Any], change: Any, expected: str) -> None:
    broken = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0", lambda d: change(pod_spec(d)))
    message = only(violations("gpu-scheduling", broken))
    assert message.startswith(f"staging: Deployment chat-assistant-v1-3-0 ({CANDIDATE}): ")
    assert expected in message and "; fix: serving pods need the toleration" in message


def test_an_exists_toleration_is_enough(staging: list[Any]) -> None:
    exists = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0", lambda d: pod_spec(d).update(
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]))
    assert violations("gpu-scheduling", exists) == []


def test_gpu_scheduling_missing_and_unknown(staging: list[Any]) -> None:
    no_template = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0", lambda d: d["spec"].pop("template"))
    assert "spec.template is missing" in only(violations("gpu-scheduling", no_template))  # once, not per check
    unknown = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                          lambda d: pod_spec(d)["nodeSelector"].update({"sluice.dev/gpu-pool": UNKNOWN_STRING}))
    assert violations("gpu-scheduling", unknown) == []
    assert "nodeSelector.sluice.dev/gpu-pool is not known yet" in only(unknowns("gpu-scheduling", unknown))


# ---------------------------------------------------------------------------------------------
# serving-availability


def test_every_serving_deployment_has_a_budget(staging: list[Any]) -> None:
    broken = without(staging, "PodDisruptionBudget", "chat-assistant-v1-3-0")
    assert only(violations("serving-availability", broken)).startswith(
        f"staging: Deployment chat-assistant-v1-3-0 ({CANDIDATE}): no PodDisruptionBudget in namespace llm-serving "
        "selects its pods (app=chat-assistant, version=v1.3.0), so a node drain may take the whole version down "
        "at once; fix: ")


def test_a_budget_for_another_version_does_not_count(staging: list[Any]) -> None:
    broken = with_inputs(staging, "PodDisruptionBudget", "chat-assistant-v1-3-0",
                         lambda b: b["spec"]["selector"]["matchLabels"].update(version="v9.9.9"))
    assert "no PodDisruptionBudget" in only(violations("serving-availability", broken))
    empty = with_inputs(staging, "PodDisruptionBudget", "chat-assistant-v1-3-0",
                        lambda b: b["spec"].update(selector={}))
    assert "no PodDisruptionBudget" in only(violations("serving-availability", empty))


def test_every_serving_container_has_a_readiness_probe(staging: list[Any]) -> None:
    broken = with_inputs(staging, "Deployment", "chat-assistant-v1-2-0",
                         lambda d: pod_spec(d)["containers"][0].pop("readinessProbe"))
    assert "Deployment chat-assistant-v1-2-0 (chat-assistant/v1.2.0-9c41e7a2d3b8): container server has no " \
        "readinessProbe" in only(violations("serving-availability", broken))


def test_availability_missing_and_unknown(staging: list[Any]) -> None:
    no_template = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0", lambda d: d["spec"].pop("template"))
    assert "Deployment chat-assistant-v1-3-0: spec.template is missing" in \
        only(violations("serving-availability", no_template))
    unknown = with_inputs(staging, "PodDisruptionBudget", "chat-assistant-v1-3-0",
                          lambda b: b["spec"].update(selector=UNKNOWN_STRING))
    assert violations("serving-availability", unknown) == []
    assert "spec.selector is not known yet" in only(unknowns("serving-availability", unknown))


# ---------------------------------------------------------------------------------------------
# bundle-hashes


def test_every_artifact_has_a_sha256(staging: list[Any]) -> None:
    broken = with_release(staging, "chat-assistant-v1-3-0-release",
                          lambda doc: doc["release"]["bundle"]["weights"].pop("sha256"))
    assert only(violations("bundle-hashes", broken)) == (
        f"staging: {CANDIDATE}: bundle.weights (s3://acme-llm-artifacts/chat-assistant/1.3.0/model.tar) has no "
        "sha256, so the init container cannot verify its bytes; fix: record the artifact's sha256 (64 lowercase hex "
        "digits, as `sha256sum` prints them) in releases/chat-assistant/1.3.0.yaml")


@pytest.mark.parametrize("digest", ["ABCDEF" * 10 + "ABCD", "1234", ""])
def test_a_sha256_is_64_lowercase_hex_digits(staging: list[Any], digest: str) -> None:
    broken = with_release(staging, "chat-assistant-v1-3-0-release",
                          lambda doc: doc["release"]["bundle"]["safety"]["classifier"].update(sha256=digest))
    message = only(violations("bundle-hashes", broken))
    assert "bundle.safety.classifier (hf://meta-llama/Llama-Guard-3-1B@" in message
    assert ("has no sha256" if not digest else f"has sha256 {digest!r}, which is not 64 lowercase hex") in message


def test_the_fetch_list_carries_the_hashes_too(staging: list[Any]) -> None:
    def drop(inputs: dict[str, Any]) -> None:
        fetch = json.loads(inputs["data"]["bundle.json"])
        fetch["artifacts"][1].pop("sha256")
        inputs["data"]["bundle.json"] = json.dumps(fetch)

    broken = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-release", drop)
    assert "bundle.json artifact tokenizer (s3://" in only(violations("bundle-hashes", broken))


def test_bundle_missing_properties(staging: list[Any]) -> None:
    no_tokenizer = with_release(staging, "chat-assistant-v1-3-0-release",
                                lambda doc: doc["release"]["bundle"].pop("tokenizer"))
    assert f"staging: {CANDIDATE}: bundle.tokenizer is missing" in only(violations("bundle-hashes", no_tokenizer))
    no_bundle = with_release(staging, "chat-assistant-v1-3-0-release", lambda doc: doc["release"].pop("bundle"))
    assert "release.json.release.bundle is missing" in only(violations("bundle-hashes", no_bundle))
    not_json = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-release",
                           lambda c: c["data"].update({"release.json": "{not json"}))
    assert 'ConfigMap chat-assistant-v1-3-0-release: data["release.json"] is not valid JSON' in \
        only(violations("bundle-hashes", not_json))


def test_bundle_unknown(staging: list[Any]) -> None:
    unknown = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-release",
                          lambda c: c["data"].update({"release.json": UNKNOWN_STRING}))
    assert violations("bundle-hashes", unknown) == []
    assert 'data.release.json is not known yet' in only(unknowns("bundle-hashes", unknown))


# ---------------------------------------------------------------------------------------------
# lineage-complete


def test_parent_version_unless_first_release(staging: list[Any], prod: list[Any]) -> None:
    broken = with_release(staging, "chat-assistant-v1-3-0-release",
                          lambda doc: doc["release"]["lineage"].update(parent_version=None))
    assert only(violations("lineage-complete", broken)) == (
        f"staging: {CANDIDATE}: lineage.parent_version is empty, but this is not the first release of "
        "chat-assistant; fix: set lineage.parent_version in releases/chat-assistant/1.3.0.yaml to the release this "
        "one was derived from")
    # prod's standby 1.1.0 is chat-assistant's first release: no parent is expected
    standby = next(r for r in prod if r.name == "chat-assistant-v1-1-0-release")
    first = json.loads(standby.inputs["data"]["release.json"])
    assert first["first_release"] is True and first["release"]["lineage"]["parent_version"] is None
    assert violations("lineage-complete", prod) == []


@pytest.mark.parametrize("change, expected", [
    (lambda lin: lin["base_model"].pop("revision"), "lineage.base_model.revision is missing: the base model cannot "
                                                    "be reproduced; fix: set lineage.base_model.revision in "
                                                    "releases/chat-assistant/1.3.0.yaml (the exact upstream commit"),
    (lambda lin: lin["base_model"].update(name=""), "lineage.base_model.name is missing"),
    (lambda lin: lin["dataset"].pop("sha256"), "lineage.dataset has no sha256: the training data cannot be verified"),
    (lambda lin: lin["dataset"].update(sha256="v1"), "lineage.dataset has sha256 'v1', not 64 lowercase hex digits"),
    (lambda lin: lin.pop("dataset"), "lineage.dataset.name is missing"),
])
def test_lineage_names_model_and_data(staging: list[Any], change: Any, expected: str) -> None:
    broken = with_release(staging, "chat-assistant-v1-3-0-release", lambda doc: change(doc["release"]["lineage"]))
    messages = violations("lineage-complete", broken)
    assert any(expected in m and m.startswith(f"staging: {CANDIDATE}: ") for m in messages), messages


def test_lineage_missing_and_unknown(staging: list[Any]) -> None:
    no_lineage = with_release(staging, "chat-assistant-v1-3-0-release", lambda doc: doc["release"].pop("lineage"))
    assert "release.json.release.lineage is missing" in only(violations("lineage-complete", no_lineage))
    unknown = with_release(staging, "chat-assistant-v1-3-0-release",
                           lambda doc: doc["release"]["lineage"].update(parent_version=UNKNOWN_STRING))
    assert violations("lineage-complete", unknown) == []
    assert "lineage.parent_version is not known yet" in only(unknowns("lineage-complete", unknown))


# ---------------------------------------------------------------------------------------------
# predeployment-gates and latency-p99


def evaluation(**values: float) -> Any:
    return lambda doc: doc["release"]["evaluation"].update(values)


@pytest.mark.parametrize("values, expected", [
    ({"toxicity": 0.071}, "fails the toxicity gate: toxicity 0.071 >= max 0.05; fix: retrain or filter, then re-run "
                          "the toxicity suite"),
    ({"win_rate_vs_current": 0.45}, "fails the win-rate gate vs stable 1.2.0: win rate vs current 45% <= min 50%; "
                                    "fix: the candidate must beat the stable version in pairwise evaluation"),
    ({"win_rate_vs_current": 0.5}, "win rate vs current 50% <= min 50%"),
    ({"adversarial_pass_rate": 0.98}, "fails the adversarial-suite gate: adversarial-suite pass rate 98% < required "
                                      "100%; fix: fix the failing adversarial cases and re-run the suite"),
])
def test_predeployment_gates_block(staging: list[Any], values: dict[str, float], expected: str) -> None:
    broken = with_release(staging, "chat-assistant-v1-3-0-release", evaluation(**values))
    message = only(violations("predeployment-gates", broken))
    assert message.startswith(f"staging: {CANDIDATE} (candidate): ") and expected in message
    assert violations("latency-p99", broken) == []


def test_gates_use_the_environments_limits(staging: list[Any]) -> None:
    def stricter(inputs: dict[str, Any]) -> None:
        policy = json.loads(inputs["data"]["policy.json"])
        policy["predeployment"]["max_toxicity"] = 0.01
        inputs["data"]["policy.json"] = json.dumps(policy)

    broken = with_inputs(staging, "ConfigMap", "sluice-environment", stricter)
    assert "toxicity 0.011 >= max 0.01" in only(violations("predeployment-gates", broken))


def test_latency_is_advisory(staging: list[Any]) -> None:
    slow = with_release(staging, "chat-assistant-v1-3-0-release", evaluation(latency_p99_ms=2100))
    assert violations("predeployment-gates", slow) == []
    assert only(violations("latency-p99", slow)) == (
        f"staging: {CANDIDATE} (candidate): fails the latency-p99 gate vs stable 1.2.0: latency p99 2100 ms >= "
        "stable 1710 ms + 20% = 2052 ms; fix: profile the serving path or accept the slowdown knowingly")
    assert get_rule("latency-p99").mandatory is False


def test_gates_missing_properties(staging: list[Any]) -> None:
    no_env = without(staging, "ConfigMap", "sluice-environment")
    messages = violations("predeployment-gates", no_env)
    assert len(messages) == 2  # one per candidate: neither can be judged
    message = messages[0]
    assert "the sluice-environment ConfigMap is missing" in message
    assert "fix: the program writes the sluice-environment" in message
    no_eval = with_release(staging, "chat-assistant-v1-3-0-release", lambda doc: doc["release"].pop("evaluation"))
    assert "candidate of chat-assistant: release.json.release.evaluation is missing" in \
        only(violations("predeployment-gates", no_eval))
    bad_eval = with_release(staging, "chat-assistant-v1-3-0-release", evaluation(toxicity=7))
    assert "release.json.release.evaluation.toxicity is not valid: Input should be less than or equal to 1" in \
        only(violations("predeployment-gates", bad_eval))


def test_gates_unknown(staging: list[Any]) -> None:
    unknown = with_inputs(staging, "ConfigMap", "sluice-environment",
                          lambda c: c["data"].update({"policy.json": UNKNOWN_STRING}))
    assert violations("predeployment-gates", unknown) == []
    assert len(unknowns("predeployment-gates", unknown)) == 2  # both candidates
    assert "data.policy.json is not known yet" in unknowns("predeployment-gates", unknown)[0]


def test_no_candidate_no_gates(prod: list[Any]) -> None:
    toxic = with_release(prod, "chat-assistant-v1-2-0-release", evaluation(toxicity=0.5))
    assert violations("predeployment-gates", toxic) == []  # stable is not gated again; it already serves


# ---------------------------------------------------------------------------------------------
# approvals


def drop_approvals(keep: int) -> Any:
    return lambda doc: doc["release"]["lineage"].update(approvals=doc["release"]["lineage"]["approvals"][:keep])


def test_protected_environments_need_approvals(prod: list[Any]) -> None:
    broken = with_release(prod, "chat-assistant-v1-2-0-release", drop_approvals(1))
    assert only(violations("approvals", broken)) == (
        f"prod (protected): stable {STABLE} has 1 of 2 required approvals from allowed approvers; fix: get "
        "approvals from 1 more of: bob.okafor@acme.example, carol.nguyen@acme.example")


def test_approvers_must_be_allowed_and_distinct(prod: list[Any]) -> None:
    def strangers(doc: dict[str, Any]) -> None:
        approvals = doc["release"]["lineage"]["approvals"]
        doc["release"]["lineage"]["approvals"] = [approvals[0], {**approvals[0]},
                                                  {**approvals[0], "by": "eve@evil.example"}]

    message = only(violations("approvals", with_release(prod, "chat-assistant-v1-1-0-release", strangers)))
    assert message.startswith("prod (protected): standby chat-assistant/v1.1.0-3e8f02b7c611 has 1 of 2")
    assert "not allowed to approve: eve@evil.example" in message and "counted once: alice.chen@acme.example" in message


def test_an_approval_before_the_release_was_created_does_not_count(prod: list[Any]) -> None:
    """The same check as `reconciler validate`'s approvals rule (rules/environment_rules.py)."""
    def predated(doc: dict[str, Any]) -> None:
        doc["release"]["lineage"]["approvals"][1]["at"] = "2026-09-16T14:01:59Z"  # created_at is 14:02:00Z

    messages = violations("approvals", with_release(prod, "chat-assistant-v1-2-0-release", predated))
    assert f"prod (protected): stable {STABLE} was approved by bob.okafor@acme.example at 2026-09-16T14:01:59Z, " \
        "before it was created (lineage.created_at 2026-09-16T14:02:00Z)" in messages[0]
    assert "has 1 of 2 required approvals" in messages[1] and len(messages) == 2
    no_at = with_release(prod, "chat-assistant-v1-2-0-release",
                         lambda doc: doc["release"]["lineage"]["approvals"][0].pop("at"))
    assert "release.json.release.lineage.approvals[0].at is missing" in only(violations("approvals", no_at))


def test_unprotected_environments_need_none(staging: list[Any]) -> None:
    assert violations("approvals", with_release(staging, "chat-assistant-v1-3-0-release", drop_approvals(0))) == []


def test_approvals_missing_and_unknown(prod: list[Any]) -> None:
    no_by = with_release(prod, "chat-assistant-v1-2-0-release",
                         lambda doc: doc["release"]["lineage"]["approvals"][0].pop("by"))
    assert "release.json.release.lineage.approvals[0].by is missing" in only(violations("approvals", no_by))
    no_env = without(prod, "ConfigMap", "sluice-environment")
    assert "prod: the sluice-environment ConfigMap is missing" in only(violations("approvals", no_env))
    unknown = with_inputs(prod, "ConfigMap", "sluice-environment",
                          lambda c: c["data"].update({"policy.json": UNKNOWN_STRING}))
    assert violations("approvals", unknown) == [] and len(unknowns("approvals", unknown)) == 1


# ---------------------------------------------------------------------------------------------
# gpu-capacity


def test_pools_hold_every_live_version(prod: list[Any]) -> None:
    small = with_inputs(prod, "NodeGroup", "a100", lambda g: g["scalingConfig"].update(maxSize=3.0))
    assert only(violations("gpu-capacity", small)) == (
        "prod: GPU pool a100: needs 4 nodes of 8 GPUs to run every live version at once (Deployment "
        "chat-assistant-v1-1-0 (chat-assistant/v1.1.0-3e8f02b7c611): 4 x 4 GPUs = 2 nodes; Deployment "
        f"chat-assistant-v1-2-0 ({STABLE}): 4 x 4 GPUs = 2 nodes), but its node group may grow to 3; fix: raise "
        "max_nodes of the pool in environments/prod.yaml to at least 4, lower replicas, or retire a standby")


def test_more_replicas_need_more_nodes(staging: list[Any]) -> None:
    busy = with_inputs(staging, "Deployment", "code-completion-v2-1-0", lambda d: d["spec"].update(replicas=9.0))
    # 9 replicas x 1 GPU on 4-GPU nodes = 3 nodes, plus 1 for stable's 2 replicas: 4 > max 2
    assert "GPU pool a10g: needs 4 nodes of 4 GPUs to run every live version at once" in \
        only(violations("gpu-capacity", busy))


def test_capacity_pool_problems(staging: list[Any]) -> None:
    elsewhere = with_inputs(staging, "Deployment", "chat-assistant-v1-3-0",
                            lambda d: pod_spec(d)["nodeSelector"].update({"sluice.dev/gpu-pool": "h100"}))
    assert "its pods select GPU pool h100, which no node group in this stack provides (pools: a100, a10g)" in \
        only(violations("gpu-capacity", elsewhere))
    too_big = with_inputs(staging, "Deployment", "code-completion-v2-1-0", lambda d: [
        c["resources"].update(limits={"nvidia.com/gpu": "8"}) for c in pod_spec(d)["containers"]])
    assert "a replica needs 8 GPUs, but pool a10g nodes have 4" in only(violations("gpu-capacity", too_big))


def test_capacity_missing_and_unknown(staging: list[Any]) -> None:
    untagged = with_inputs(staging, "NodeGroup", "a100", lambda g: g["tags"].pop(
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"))
    messages = violations("gpu-capacity", untagged)
    assert "staging: NodeGroup a100: tags[k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu] is " \
        "missing (expected the number of GPUs per node)" in messages[0]
    unknown = with_inputs(staging, "NodeGroup", "a100", lambda g: g["scalingConfig"].update(maxSize=UNKNOWN_NUMBER))
    assert "scalingConfig.maxSize is not known yet" in only(unknowns("gpu-capacity", unknown))
    assert all("a100" not in m for m in violations("gpu-capacity", unknown))


# ---------------------------------------------------------------------------------------------
# configmap-secrets

FAKE_SECRETS = {  # built at run time, so this file holds no secret-shaped literal
    "aws": "AKIA" + "IOSFODNN7" + "EXAMPLQ",
    "github": "ghp_" + "a1B2c3D4e5" * 4,
    "slack": "xoxb-" + "1234567890-abcdefghij",
    "hf": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123",
    "openai": "sk-" + "proj-" + "Zx9" * 10,
    "pem": "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize("text, expected", [
    pytest.param("aws_region = us-east-1\nkey_id = {aws}\n",
                 "line 2 holds what looks like an AWS access key id (AKIA...", id="aws-key"),
    pytest.param("{pem}", "holds what looks like a private key (----", id="private-key"),
    pytest.param("GH={github}", "looks like a GitHub token (ghp_...", id="github"),
    pytest.param("slack: {slack}", "looks like a Slack token (xoxb...", id="slack"),
    pytest.param("export HF_TOKEN={hf}", "looks like a Hugging Face token (hf_A...", id="hf"),
    pytest.param('{{"client": {{"key": "{openai}"}}}}', "looks like an OpenAI-style API key (sk-p...", id="openai"),
    pytest.param('password = "hunter2hunter2"', "looks like a value assigned to 'password' (hunt...", id="password"),
    pytest.param('{{"api_key": "q8w9e7r6t5y4"}}', "looks like a value assigned to 'api_key' (q8w9...", id="api-key"),
    pytest.param("https://hooks.slack.com/services/T0000/B0000/XXXXabcd", "looks like a Slack webhook URL",
                 id="slack-webhook"),
])
def test_secret_looking_values_are_blocked(staging: list[Any], text: str, expected: str) -> None:
    value = text.format(**FAKE_SECRETS)
    broken = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-runtime",
                         lambda c: c["data"].update({"notes.txt": value}))
    message = only(violations("configmap-secrets", broken))
    assert message.startswith("staging: ConfigMap chat-assistant-v1-3-0-runtime: data['notes.txt'] ")
    assert expected in message and "; fix: keep credentials out of ConfigMaps" in message
    for secret in [*FAKE_SECRETS.values(), "hunter2hunter2", "q8w9e7r6t5y4"]:
        assert secret not in message  # a message shows four characters, never the secret


def test_a_secret_in_a_release_lands_in_its_configmap(staging: list[Any]) -> None:
    leaky = with_release(staging, "chat-assistant-v1-3-0-release",
                         lambda doc: doc["release"].update(description=f"uses key {FAKE_SECRETS['aws']}"))
    assert "data['release.json'] line " in only(violations("configmap-secrets", leaky))


@pytest.mark.parametrize("description, leaks", [
    *((f"note: {value}", True) for value in FAKE_SECRETS.values()),
    ("password = hunter2hunter2", True),
    ("Adds order-tracking tool use (new fine-tune) and a rewritten system prompt.", False),
    ('token = os.environ.get("HF_TOKEN")', False),
    ("token: <redacted>", False),
])
def test_validate_and_the_pack_agree_on_a_release_text(staging: list[Any], description: str, leaks: bool) -> None:
    """`reconciler validate`'s secrets rule runs the pack's detector on what render writes: same verdict
    (and the expected one, so two detectors that both found nothing would not pass)."""
    from reconciler.adapters.repo_loader import load_repository
    from reconciler.core.rules.release_rules import release_secret_problems
    from tests.conftest import ROOT

    release = load_repository(ROOT).repository.release("chat-assistant", "1.3.0")
    found_by_validate = list(release_secret_problems(release.model_copy(update={"description": description})))
    leaky = with_release(staging, "chat-assistant-v1-3-0-release",
                         lambda doc: doc["release"].update(description=description))
    assert bool(found_by_validate) == bool(violations("configmap-secrets", leaky)) == leaks


def test_a_key_named_like_a_secret(staging: list[Any]) -> None:
    broken = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-runtime",
                         lambda c: c["data"].update(DB_PASSWORD="s3cr3t-value"))
    assert "data['DB_PASSWORD'] is named like a secret and holds a value (s3cr... (12 characters))" in \
        only(violations("configmap-secrets", broken))


@pytest.mark.parametrize("text", [
    'token = os.environ.get("HF_TOKEN")',
    "sha256: 5b0234f9aa970bbaba3a9b2e664c890a012172714bcf210a615cba31091249b9",
    "secret_sha256 = 5b0234f9aa970bbaba3a9b2e664c890a012172714bcf210a615cba31091249b9",
    "image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai@sha256:"
    "c2a64047d8d3241ffe5d27f9213f23bedf967069a3421339ba1aa13cfc34821a",
    '{"max_tokens": 1024, "api_key_env": "OPENAI_API_KEY"}',
    "password: ${DB_PASSWORD}",
    "token: <redacted>",
    'private = {"Authorization": f"Bearer {token}"}',
    "url: https://hooks.slack.com/redacted",
])
def test_what_is_not_a_secret(text: str) -> None:
    assert secret_findings(text) == []


def test_the_fetch_script_is_not_a_secret(staging: list[Any]) -> None:
    script = next(r for r in staging if r.name == "sluice-bundle-fetcher").inputs["data"]["fetch_bundle.py"]
    assert "HF_TOKEN" in script and script == open(fetch_bundle.__file__, encoding="utf-8").read()
    assert secret_findings(script) == []
    assert violations("configmap-secrets", staging) == []


def test_secrets_missing_and_unknown(staging: list[Any]) -> None:
    odd = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-runtime", lambda c: c.update(data=["x"]))
    assert "data is not a map of strings" in only(violations("configmap-secrets", odd))
    unknown = with_inputs(staging, "ConfigMap", "chat-assistant-v1-3-0-runtime",
                          lambda c: c["data"].update({"generation.json": UNKNOWN_STRING}))
    assert violations("configmap-secrets", unknown) == []
    assert "data.generation.json is not known yet" in only(unknowns("configmap-secrets", unknown))


# ---------------------------------------------------------------------------------------------
# first-canary-stage and major-version-rollout (advisory)


def stages(*weights: int | tuple[int, int]) -> Any:
    def change(doc: dict[str, Any]) -> None:
        doc["release"]["rollout"]["stages"] = [
            {"weight": w[0], "mirror": w[1]} if isinstance(w, tuple) else {"weight": w, "mirror": 0} for w in weights]
    return change


def test_a_first_canary_stage_above_5_percent_warns(staging: list[Any]) -> None:
    bold = with_release(staging, "chat-assistant-v1-3-0-release", stages(0, 25, 50, 100))
    assert only(violations("first-canary-stage", bold)) == (
        f"staging: {CANDIDATE} (candidate): its first stage with traffic (stage 1) sends 25% at once, above 5%; "
        "fix: add a 1% or 5% stage before it in rollout.stages, so a bad release reaches few users")
    assert violations("first-canary-stage", with_release(staging, "chat-assistant-v1-3-0-release",
                                                         stages(0, 5, 100))) == []
    assert get_rule("first-canary-stage").mandatory is False


def test_blue_green_is_not_a_canary(staging: list[Any]) -> None:
    assert violations("first-canary-stage", staging) == []  # code-completion 2.1.0 switches 0 -> 100 by design


def major(stable: str) -> Any:
    return lambda c: c["data"].update(current_version=stable)


def test_a_major_version_without_shadow_or_1_percent_warns(staging: list[Any]) -> None:
    blue_green_major = with_inputs(staging, "ConfigMap", "code-completion-pointer", major("1.4.0"))
    assert only(violations("major-version-rollout", blue_green_major)) == (
        "staging: code-completion/v2.1.0-c07d19e4b2a8 (candidate): a major version (1.4.0 -> 2.1.0: new base model "
        "or architecture) rolls out as 0% -> 100% with no shadow or <= 1% stage before larger ones; fix: start with "
        "a shadow stage ({weight: 0, mirror: 100}) or a 1% stage")


def test_a_major_version_with_a_1_percent_or_shadow_stage_passes(staging: list[Any]) -> None:
    canary_major = with_inputs(staging, "ConfigMap", "chat-assistant-pointer", major("0.9.0"))
    assert violations("major-version-rollout", canary_major) == []  # its rollout starts at 1%
    shadow = with_release(canary_major, "chat-assistant-v1-3-0-release", stages((0, 100), 5, 100))
    assert violations("major-version-rollout", shadow) == []
    straight = with_release(canary_major, "chat-assistant-v1-3-0-release", stages(0, 5, 100))
    assert "rolls out as 0% -> 5% -> 100%" in only(violations("major-version-rollout", straight))


def test_advisory_rules_missing_properties(staging: list[Any]) -> None:
    no_stages = with_release(staging, "chat-assistant-v1-3-0-release", lambda doc: doc["release"].pop("rollout"))
    assert "release.json.release.rollout is missing" in only(violations("first-canary-stage", no_stages))


@pytest.mark.parametrize("rule", ["first-canary-stage", "major-version-rollout", "latency-p99"])
def test_advisory_rules_unknown(staging: list[Any], rule: str) -> None:
    unknown = with_inputs(staging, "ConfigMap", "chat-assistant-pointer",
                          lambda c: c["data"].update(canary_version=UNKNOWN_STRING))
    assert violations(rule, unknown) == []
    assert only(unknowns(rule, unknown)).startswith(
        "staging: candidate of chat-assistant: cannot be judged during preview because data.canary_version is not "
        "known yet")
