"""What the cluster's ConfigMaps carry for people and for the policy pack."""

from __future__ import annotations

import json

from reconciler.adapters.deployable import load_desired_state
from reconciler.core.release import NotificationTarget
from tests.conftest import ROOT


def release_document(environment: str, stack: str) -> dict:
    state = load_desired_state(ROOT, environment)
    [config] = [m for m in state.manifests() if m["metadata"]["name"] == f"{stack}-release"]
    return json.loads(config["data"]["release.json"])


def test_the_release_manifest_holds_what_the_policy_pack_judges() -> None:
    document = release_document("staging", "chat-assistant-v1-3-0")
    assert document["full_id"] == "chat-assistant/v1.3.0-4f2a9c1d07e5"
    release = document["release"]
    assert release["bundle"]["weights"]["sha256"] == "5b0234f9aa970bbaba3a9b2e664c890a012172714bcf210a615cba31091249b9"
    assert release["lineage"]["parent_version"] == "1.2.0"
    assert [a["by"] for a in release["lineage"]["approvals"]] == ["alice.chen@acme.example", "bob.okafor@acme.example"]
    assert release["evaluation"]["win_rate_vs_current"] == 0.57


def test_webhook_urls_are_redacted_because_they_are_credentials() -> None:
    notify = release_document("staging", "chat-assistant-v1-3-0")["release"]["rollout"]["notify"]
    assert [t["url"] for t in notify] == ["https://hooks.slack.com/redacted", "https://oncall.acme.example/redacted"]


def test_only_a_models_earliest_release_is_marked_first() -> None:
    assert release_document("prod", "chat-assistant-v1-1-0")["first_release"] is True
    assert release_document("prod", "chat-assistant-v1-2-0")["first_release"] is False


def test_the_environment_config_names_the_environment_and_its_policy() -> None:
    state = load_desired_state(ROOT, "prod")
    policy = json.loads(state.environment_config["data"]["policy.json"])
    assert state.environment_config["data"]["environment"] == "prod"
    assert policy["protected"] is True and policy["required_approvals"] == 2


def test_a_notification_urls_user_and_password_never_reach_the_release_manifest() -> None:
    from reconciler.adapters.repo_loader import load_repository
    from reconciler.core.config_manifests import without_secrets

    release = load_repository(ROOT).repository.release("chat-assistant", "1.3.0")
    rollout = release.rollout.model_copy(update={"notify": [
        NotificationTarget(kind="webhook", url="https://sluice:hunter2-pass@oncall.acme.example:8443/hooks/x?k=v")]})
    document = without_secrets(release.model_copy(update={"rollout": rollout}))
    assert document["rollout"]["notify"] == [{"kind": "webhook", "url": "https://oncall.acme.example:8443/redacted"}]
