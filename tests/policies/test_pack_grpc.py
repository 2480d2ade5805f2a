"""End to end: the pack started as the engine starts it, judged over the Analyzer gRPC protocol.

The example environments run through the Pulumi program under the offline engine; their recorded
resources go to the pack with `Analyze` (one call per resource) and `AnalyzeStack`, as
`pulumi preview --policy-pack policies` would send them. The examples pass clean; for each
mandatory rule a broken example is blocked by that rule alone. Where the program can produce the
violation, the example files are broken (in a temporary copy); where it cannot, because the program
refuses what `reconciler validate` refuses or never writes such objects, the recorded inputs are
broken instead: the pack is the last line of defence for a changed program, and must hold alone.

One pack process serves the whole module; it is killed in the fixture's finalizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pulumi
import pytest

from reconciler.core.policy import policy_rules
from reconciler.core.policy.resources import UNKNOWN_STRING
from tests.conftest import ROOT, mutate_yaml
from tests.evaluation_kit import attach_artifact, sample_artifact
from tests.policies.examples import (
    ENVIRONMENTS,
    pod_spec,
    program_on_copy,
    recorded,
    set_weights,
    weighted_routes,
    with_inputs,
    with_release,
    without,
)
from tests.policies.pack_process import Diagnostic, PackProcess

CANDIDATE = "chat-assistant/v1.3.0-4f2a9c1d07e5"


@pytest.fixture(scope="module")
def pack(request: pytest.FixtureRequest) -> PackProcess:
    process = PackProcess("staging")
    request.addfinalizer(process.close)
    return process


def mandatory(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.level == "mandatory"]


def release_file(path: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    return lambda root: mutate_yaml(root / path, change)


def with_artifact(root: Path) -> None:
    """chat-assistant 1.3.0 with its evaluation artifact (tests/evaluation_kit.py), numbers as typed."""
    attach_artifact(root, "releases/chat-assistant/1.3.0.yaml", sample_artifact())


# Each mandatory rule: (environment, how to break the example, a fragment of the expected message).
Breaker = Callable[[Path], list[Any]]
BROKEN: dict[str, tuple[str, Breaker, str]] = {
    "route-weights": ("staging", lambda tmp: with_inputs(
        recorded("staging"), "VirtualService", "chat-assistant", set_weights({"v1-2-0": 95, "v1-3-0": 5})),
        f"route mesh-weighted: sends 5% to v1-3-0 (candidate {CANDIDATE} at stage 1), which should get 1%"),
    "mirror-targets": ("staging", lambda tmp: with_inputs(
        recorded("staging"), "VirtualService", "chat-assistant",
        lambda vs: weighted_routes(vs)[0]["mirror"].update(host="collector.example.com")),
        "route mesh-weighted: mirrors 1% of chat-assistant's user traffic to collector.example.com: user prompts may "
        "only be copied to the model's evaluator (chat-assistant-evaluator.llm-serving.svc.cluster.local)"),
    "image-digest": ("staging", lambda tmp: with_inputs(
        recorded("staging"), "Deployment", "chat-assistant-v1-3-0",
        lambda d: pod_spec(d)["initContainers"][0].update(image="python:3.12-slim")),
        "initContainer fetch-bundle: image 'python:3.12-slim' is not pinned by digest"),
    "gpu-scheduling": ("staging", lambda tmp: with_inputs(
        recorded("staging"), "Deployment", "code-completion-v2-1-0", lambda d: pod_spec(d).pop("tolerations")),
        "Deployment code-completion-v2-1-0 (code-completion/v2.1.0-c07d19e4b2a8): its pods do not tolerate the "
        "GPU taint"),
    "serving-availability": ("staging", lambda tmp: without(
        recorded("staging"), "PodDisruptionBudget", "chat-assistant-v1-3-0"),
        "no PodDisruptionBudget in namespace llm-serving selects its pods (app=chat-assistant, version=v1.3.0)"),
    "bundle-hashes": ("staging", lambda tmp: with_release(
        recorded("staging"), "chat-assistant-v1-3-0-release",
        lambda doc: doc["release"]["bundle"]["system_prompt"].pop("sha256")),
        f"staging: {CANDIDATE}: bundle.system_prompt (s3://acme-llm-artifacts/chat-assistant/prompts/support-v8.txt) "
        "has no sha256"),
    "predeployment-gates": ("staging", lambda tmp: with_release(
        recorded("staging"), "chat-assistant-v1-3-0-release",
        lambda doc: doc["release"]["evaluation"].update(toxicity=0.071)),
        f"staging: {CANDIDATE} (candidate): fails the toxicity gate: toxicity 0.071 >= max 0.05"),
    # validate refuses this one too (lineage-parent), so the program would not run: edit what it recorded
    "lineage-complete": ("staging", lambda tmp: with_release(
        recorded("staging"), "chat-assistant-v1-3-0-release",
        lambda doc: doc["release"]["lineage"].update(parent_version=None)),
        f"staging: {CANDIDATE}: lineage.parent_version is empty, but this is not the first release of chat-assistant"),
    # validate refuses this one too (evaluation-artifact): the program renders the artifact, the number is edited
    "evaluation-artifact": ("staging", lambda tmp: with_release(
        program_on_copy(tmp, "staging", with_artifact), "chat-assistant-v1-3-0-release",
        lambda doc: doc["release"]["evaluation"].update(toxicity=0.012)),
        f"staging: {CANDIDATE}: evaluation.toxicity: evaluation.toxicity is 0.012, but the artifact "
        "evaluations/chat-assistant/1.3.0.json measured 0.011"),
    "approvals": ("prod", lambda tmp: with_release(
        recorded("prod"), "chat-assistant-v1-2-0-release",
        lambda doc: doc["release"]["lineage"]["approvals"].pop()),
        "prod (protected): stable chat-assistant/v1.2.0-9c41e7a2d3b8 has 1 of 2 required approvals"),
    "gpu-capacity": ("prod", lambda tmp: with_inputs(
        recorded("prod"), "NodeGroup", "a100", lambda g: g["scalingConfig"].update(maxSize=3.0)),
        "prod: GPU pool a100: needs 4 nodes of 8 GPUs to run every live version at once"),
    # validate refuses this one too (secrets, the same detector), so the program would not run
    "configmap-secrets": ("staging", lambda tmp: with_release(
        recorded("staging"), "chat-assistant-v1-3-0-release",
        lambda doc: doc["release"].update(description="Tool use. Test key: " + "AKIA" + "IOSFODNN7EXAMPLQ")),
        "ConfigMap chat-assistant-v1-3-0-release: data['release.json'] line 63 holds what looks like an AWS access "
        "key id (AKIA... (20 characters))"),
}


def test_every_mandatory_rule_has_a_broken_example() -> None:
    assert set(BROKEN) == {r.name for r in policy_rules() if r.mandatory}


def test_analyzer_info(pack: PackProcess) -> None:
    info = pack.info()
    assert info.name == "sluice" and info.supportsConfig
    levels = {p.name: p.enforcementLevel for p in info.policies}
    expected = {r.name: 1 if r.mandatory else 0 for r in policy_rules()} | {"unknown-during-preview": 0}
    assert levels == expected  # MANDATORY = 1, ADVISORY = 0


def test_starts_as_the_python_shim_starts_it() -> None:
    """`pulumi-analyzer-policy-python` runs `python -u -m pulumi.policy <address> .` inside the pack's
    folder; the pack finds the reconciler package from there too."""
    process = PackProcess("prod", cwd=ROOT / "policies", program=".")
    try:
        assert process.info().name == "sluice"
        assert process.preview(recorded("prod")) == []
    finally:
        process.close()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_examples_pass_clean(pack: PackProcess, env: str) -> None:
    assert pack.preview(recorded(env)) == []


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_a_broken_example_is_blocked(pack: PackProcess, tmp_path: Path, rule: str) -> None:
    env, breaker, expected = BROKEN[rule]
    diagnostics = pack.preview(breaker(tmp_path))
    blocked = mandatory(diagnostics)
    assert {d.policy for d in blocked} == {rule}, [d.message for d in blocked]
    messages = [d.message for d in blocked]
    assert any(expected in m for m in messages), messages
    assert all(m.startswith(next(r.description for r in policy_rules() if r.name == rule) + "\n") for m in messages)
    assert all(f"{env}" in m and "; fix: " in m for m in messages)


def test_the_program_refuses_what_validate_refuses(tmp_path: Path) -> None:
    """Why gates, approvals and secrets are broken in the recorded inputs: the program would not get that far."""
    with pytest.raises(pulumi.RunError, match="fails the toxicity gate"):
        program_on_copy(tmp_path, "staging", release_file(
            "releases/chat-assistant/1.3.0.yaml", lambda d: d["evaluation"].__setitem__("toxicity", 0.071)))
    with pytest.raises(pulumi.RunError, match=r"description holds what looks like an AWS access key id \(AKIA\.\.\."):
        program_on_copy(tmp_path / "secret", "staging", release_file(
            "releases/chat-assistant/1.3.0.yaml",
            lambda d: d.__setitem__("description", "Tool use. Test key: " + "AKIA" + "IOSFODNN7EXAMPLQ")))


def test_a_release_with_its_artifact_passes_and_the_artifact_travels_in_its_config_map(
        pack: PackProcess, tmp_path: Path) -> None:
    resources = program_on_copy(tmp_path, "staging", with_artifact)
    config_map = next(r for r in resources if r.name == "chat-assistant-v1-3-0-release")
    committed = (tmp_path / "repo/evaluations/chat-assistant/1.3.0.json").read_text(encoding="utf-8")
    assert config_map.inputs["data"]["evaluation.json"] == committed
    assert pack.preview(resources) == []


def test_a_tampered_artifact_is_blocked_by_its_sha256(pack: PackProcess, tmp_path: Path) -> None:
    def tamper(inputs: dict[str, Any]) -> None:
        inputs["data"]["evaluation.json"] = inputs["data"]["evaluation.json"].replace('"toxicity": 0.011',
                                                                                      '"toxicity": 0.012')
    resources = with_inputs(program_on_copy(tmp_path, "staging", with_artifact), "ConfigMap",
                            "chat-assistant-v1-3-0-release", tamper)
    messages = [d.message for d in mandatory(pack.preview(resources)) if d.policy == "evaluation-artifact"]
    assert len(messages) == 2, messages
    assert "evaluation.artifact.sha256: evaluations/chat-assistant/1.3.0.json has sha256 " in messages[0] + messages[1]
    assert any("evaluation.toxicity is 0.011, but the artifact evaluations/chat-assistant/1.3.0.json measured 0.012"
               in m for m in messages)


def major_candidate(root: Path) -> None:
    """chat-assistant 2.0.0 (a new base model) as staging's candidate, going 0% -> 5% -> 100%."""
    text = (root / "releases/chat-assistant/1.3.0.yaml").read_text(encoding="utf-8")
    (root / "releases/chat-assistant/2.0.0.yaml").write_text(text.replace('version: "1.3.0"', 'version: "2.0.0"'),
                                                              encoding="utf-8")
    mutate_yaml(root / "releases/chat-assistant/2.0.0.yaml", lambda d: d["rollout"].__setitem__(
        "stages", [{"weight": 0}, {"weight": 5, "min_duration": "4h"}, {"weight": 100}]))
    mutate_yaml(root / "environments/staging.yaml",
                lambda d: d["models"]["chat-assistant"].__setitem__("candidate", "2.0.0"))


@pytest.mark.parametrize("policy, breaker, expected", [
    ("latency-p99", lambda tmp: program_on_copy(tmp, "staging", release_file(
        "releases/chat-assistant/1.3.0.yaml", lambda d: d["evaluation"].__setitem__("latency_p99_ms", 2100))),
     "latency p99 2100 ms >= stable 1710 ms + 20% = 2052 ms"),
    ("first-canary-stage", lambda tmp: program_on_copy(tmp, "staging", release_file(
        "releases/chat-assistant/1.3.0.yaml", lambda d: d["rollout"].__setitem__(
            "stages", [{"weight": 0}, {"weight": 25, "min_duration": "1h"}, {"weight": 100}]))),
     "its first stage with traffic (stage 1) sends 25% at once, above 5%"),
    ("major-version-rollout", lambda tmp: program_on_copy(tmp, "staging", major_candidate),
     "a major version (1.2.0 -> 2.0.0: new base model or architecture) rolls out as 0% -> 5% -> 100%"),
])
def test_advisories_warn_without_blocking(pack: PackProcess, tmp_path: Path, policy: str,
                                          breaker: Callable[[Path], list[Any]], expected: str) -> None:
    diagnostics = pack.preview(breaker(tmp_path))
    assert mandatory(diagnostics) == []
    assert [(d.policy, d.level) for d in diagnostics] == [(policy, "advisory")]
    assert expected in diagnostics[0].message


@pytest.fixture
def configured(pack: PackProcess) -> Iterator[PackProcess]:
    yield pack
    pack.configure({})  # back to the pack's own levels for the other tests


def test_enforcement_is_configurable_per_stack(configured: PackProcess) -> None:
    broken = BROKEN["route-weights"][1](Path("unused"))
    configured.configure({"route-weights": {"enforcementLevel": "advisory"}})
    diagnostics = configured.preview(broken)
    assert {(d.policy, d.level) for d in diagnostics} == {("route-weights", "advisory")}
    configured.configure({"route-weights": {"enforcementLevel": "disabled"}})
    assert configured.preview(broken) == []
    configured.configure({})
    assert {(d.policy, d.level) for d in configured.preview(broken)} == {("route-weights", "mandatory")}


def test_an_advisory_rule_can_be_made_mandatory(configured: PackProcess) -> None:
    slow = with_release(recorded("staging"), "chat-assistant-v1-3-0-release",
                        lambda doc: doc["release"]["evaluation"].update(latency_p99_ms=2100))
    configured.configure({"latency-p99": {"enforcementLevel": "mandatory"}})
    assert [(d.policy, d.level) for d in configured.preview(slow)] == [("latency-p99", "mandatory")]


def test_unknown_values_are_advisory(pack: PackProcess) -> None:
    resources = with_inputs(recorded("staging"), "Deployment", "chat-assistant-v1-3-0",
                            lambda d: pod_spec(d)["containers"][0].update(image=UNKNOWN_STRING))
    diagnostics = pack.preview(resources)
    assert mandatory(diagnostics) == []
    [unknown] = diagnostics
    assert unknown.policy == "unknown-during-preview" and unknown.level == "advisory"
    assert "image-digest: staging: Deployment chat-assistant-v1-3-0" in unknown.message
    assert "spec.template.spec.containers[0].image is not known yet" in unknown.message
    assert unknown.urn.endswith("kubernetes:apps/v1:Deployment::chat-assistant-v1-3-0")


def test_stack_diagnostics_point_at_the_resource(pack: PackProcess) -> None:
    env, breaker, _ = BROKEN["gpu-capacity"]
    [diagnostic] = pack.analyze_stack(breaker(Path("unused")))
    assert diagnostic.urn == f"urn:pulumi:{env}::sluice::sluice:infra:GpuNodePool$aws:eks/nodeGroup:NodeGroup::a100"


def test_resources_sent_while_the_program_runs_are_judged_as_if_sent_at_the_end(pack: PackProcess,
                                                                                 tmp_path: Path) -> None:
    """`reconciler preview` hands each resource to the pack as it registers (`submit`, a gRPC
    future) and collects the answers afterwards: same diagnostics, in the resources' order, and
    nothing is sent twice."""
    resources = BROKEN["gpu-scheduling"][1](tmp_path)
    expected = pack.preview(resources)
    for resource in reversed(resources):  # out of order, as registrations on worker threads may be
        pack.submit(resource)
    assert pack.analyze(resources) == expected
    assert [d.policy for d in mandatory(expected)] == ["gpu-scheduling"]


def shadow_candidate(root: Path) -> None:
    """staging's chat-assistant 1.3.0 at a shadow stage: stable serves everyone, 100% mirrored to 1.3.0."""
    mutate_yaml(root / "releases/chat-assistant/1.3.0.yaml", lambda d: d["rollout"].update(
        strategy="shadow", stages=[{"weight": 0, "mirror": 100, "min_duration": "24h"}, {"weight": 5}, {"weight": 100}]))
    mutate_yaml(root / "environments/staging.yaml", lambda d: d["models"]["chat-assistant"].update(stage=0))


def test_a_shadow_stage_with_the_evaluator_mirrors_twice_and_passes_clean(pack: PackProcess, tmp_path: Path) -> None:
    resources = program_on_copy(tmp_path, "staging", shadow_candidate)
    [service] = [r for r in resources if r.type.endswith(":VirtualService") and r.name == "chat-assistant"]
    for route in weighted_routes(service.inputs):
        assert "mirror" not in route
        assert [(m["destination"]["host"], m["destination"].get("subset"), m["percentage"]["value"])
                for m in route["mirrors"]] == [
            ("chat-assistant.llm-serving.svc.cluster.local", "v1-3-0", 100.0),
            ("chat-assistant-evaluator.llm-serving.svc.cluster.local", None, 5.0)]
    assert pack.preview(resources) == []


def test_a_pinned_route_that_mirrors_and_a_missing_evaluator_service_are_blocked(pack: PackProcess) -> None:
    def mirror_pinned(inputs: dict[str, Any]) -> None:
        pinned = next(r for r in inputs["spec"]["http"] if r["name"] == "mesh-pinned-v1-3-0")
        pinned["mirror"] = dict(weighted_routes(inputs)[0]["mirror"])

    pinned = pack.preview(with_inputs(recorded("staging"), "VirtualService", "chat-assistant", mirror_pinned))
    assert [(d.policy, d.level) for d in pinned] == [("mirror-targets", "mandatory")]
    assert "route mesh-pinned-v1-3-0: a route pinned by x-model-version mirrors to chat-assistant-evaluator" \
        in pinned[0].message
    orphan = pack.preview(without(recorded("staging"), "Service", "chat-assistant-evaluator"))
    assert {d.policy for d in orphan} == {"mirror-targets"}
    assert all("but this stack has no Service chat-assistant-evaluator in llm-serving" in d.message for d in orphan)
