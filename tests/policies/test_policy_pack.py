"""The CrossGuard adapter, called in-process the way pulumi_policy calls it: validation args whose
props are the SDK's unknown-checking proxies, and a `report_violation` that records."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    PolicyResourceOptions,
    PolicyCustomTimeouts,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from reconciler.adapters.policy_pack import UNKNOWN_POLICY, build_policies, plain
from reconciler.core.policy import PolicyRule, Scope, policy_rules
from reconciler.core.policy.resources import UNKNOWN_STRING
from tests.policies.examples import pod_spec, recorded, with_inputs

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.reports.append((message, urn))


def by_name() -> dict[str, Any]:
    return {p.name: p for p in build_policies()}


def resource_args(resource: Any) -> ResourceValidationArgs:
    return ResourceValidationArgs(resource.type, unknown_checking_proxy(resource.inputs), resource.urn, resource.name,
                                  OPTIONS, None)


def stack_args(resources: list[Any]) -> StackValidationArgs:
    return StackValidationArgs([PolicyResource(r.type, unknown_checking_proxy(r.inputs), r.urn, r.name, OPTIONS, None,
                                               None, [], {}) for r in resources])


def test_one_policy_per_rule_at_its_level() -> None:
    policies = by_name()
    rules = policy_rules()
    assert list(policies) == [r.name for r in rules] + [UNKNOWN_POLICY]
    for rule in rules:
        policy = policies[rule.name]
        assert isinstance(policy, ResourceValidationPolicy if rule.scope is Scope.RESOURCE else StackValidationPolicy)
        assert policy.enforcement_level is (EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY)
        assert policy.description == rule.description
    assert isinstance(policies[UNKNOWN_POLICY], StackValidationPolicy)
    assert policies[UNKNOWN_POLICY].enforcement_level is EnforcementLevel.ADVISORY


def test_plain_unwraps_the_proxies_and_keeps_unknowns() -> None:
    proxied = unknown_checking_proxy({"spec": {"containers": [{"image": UNKNOWN_STRING, "name": "server"}]}})
    with pytest.raises(UnknownValueError):
        proxied["spec"]["containers"][0]["image"]
    assert plain(proxied) == {"spec": {"containers": [{"image": UNKNOWN_STRING, "name": "server"}]}}
    assert type(plain(proxied)["spec"]["containers"]) is list


def test_resource_policy_reports_violations() -> None:
    broken = with_inputs(recorded("staging"), "Deployment", "chat-assistant-v1-3-0",
                         lambda d: pod_spec(d)["containers"][0].update(image="vllm/vllm-openai:latest"))
    deployment = next(r for r in broken if r.name == "chat-assistant-v1-3-0" and r.type.endswith("Deployment"))
    report = Recorder()
    by_name()["image-digest"].validate(resource_args(deployment), report)
    [(message, _)] = report.reports
    assert "container server: image 'vllm/vllm-openai:latest' is not pinned by digest" in message


def test_unknowns_are_advisory_not_mandatory() -> None:
    unknown = with_inputs(recorded("staging"), "Deployment", "chat-assistant-v1-3-0",
                          lambda d: pod_spec(d)["containers"][0].update(image=UNKNOWN_STRING))
    deployment = next(r for r in unknown if r.name == "chat-assistant-v1-3-0" and r.type.endswith("Deployment"))
    policies = by_name()
    mandatory = Recorder()
    policies["image-digest"].validate(resource_args(deployment), mandatory)
    assert mandatory.reports == []
    advisory = Recorder()
    policies[UNKNOWN_POLICY].validate(stack_args(unknown), advisory)
    [(message, urn)] = advisory.reports
    assert message.startswith("image-digest: staging: Deployment chat-assistant-v1-3-0 (")
    assert "spec.template.spec.containers[0].image is not known yet" in message
    assert urn == deployment.urn


def test_stack_policy_reports_with_the_resources_urn() -> None:
    broken = with_inputs(recorded("prod"), "NodeGroup", "a100", lambda g: g["scalingConfig"].update(maxSize=2.0))
    report = Recorder()
    by_name()["gpu-capacity"].validate(stack_args(broken), report)
    [(message, urn)] = report.reports
    assert message.startswith("prod: GPU pool a100: needs 4 nodes") and urn.endswith("NodeGroup::a100")


def test_a_rule_that_crashes_blocks() -> None:
    def broken(_: Any) -> Any:
        raise KeyError("oops")

    rule = PolicyRule("crashy", "a rule with a bug", True, Scope.RESOURCE, broken)
    [policy, _] = build_policies([rule])
    report = Recorder()
    resource = recorded("staging")[0]
    policy.validate(resource_args(resource), report)
    [(message, _)] = report.reports
    assert message.startswith("policy crashy failed on this input (KeyError: 'oops'); this is a bug in Sluice's")
    assert policy.enforcement_level is EnforcementLevel.MANDATORY
