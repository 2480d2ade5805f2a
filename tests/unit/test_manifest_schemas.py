"""The manifest validators catch what they should, so tests built on them cannot pass vacuously."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from tests.manifest_schemas import (
    ISTIO_SCHEMA_FILE,
    istio_schema,
    tighten,
    validate_istio,
    validate_kubernetes,
    validate_manifest,
)

K8S = "1.33"


def virtual_service() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "chat-assistant",
            "namespace": "llm-prod",
            "labels": {"app.kubernetes.io/managed-by": "sluice"},
            "annotations": {"sluice.dev/release": "1.3.0"},
        },
        "spec": {
            "hosts": ["chat-assistant.llm-prod.svc.cluster.local"],
            "gateways": ["mesh"],
            "http": [
                {
                    "name": "pinned",
                    "match": [{"headers": {"x-model-version": {"exact": "v1.3.0"}}}],
                    "route": [{"destination": {"host": "chat-assistant", "subset": "v1-3-0"}, "weight": 100}],
                    "timeout": "90s",
                    "rewrite": {"uri": "/"},
                },
                {
                    "name": "weighted",
                    "route": [
                        {"destination": {"host": "chat-assistant", "subset": "v1-2-0"}, "weight": 90},
                        {"destination": {"host": "chat-assistant", "subset": "v1-3-0"}, "weight": 10},
                    ],
                    "mirror": {"host": "chat-assistant", "subset": "v1-4-0"},
                    "mirrorPercentage": {"value": 5.0},
                    "timeout": "90s",
                    "rewrite": {"uri": "/"},
                },
            ],
        },
    }


def destination_rule() -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "chat-assistant", "namespace": "llm-prod"},
        "spec": {
            "host": "chat-assistant",
            "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
            "subsets": [
                {"name": "v1-2-0", "labels": {"sluice.dev/version": "1.2.0"}},
                {"name": "v1-3-0", "labels": {"sluice.dev/version": "1.3.0"}},
            ],
        },
    }


def deployment() -> dict[str, Any]:
    labels = {"app": "chat-assistant", "version": "1.3.0"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat-assistant-v1-3-0", "namespace": "llm-prod", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.6.3"}]},
            },
        },
    }


def failure(check, *args: Any) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args)
    return str(info.value)


# --- Istio: valid manifests pass -------------------------------------------------------------


def test_the_shared_file_is_the_istio_1_30_3_schema() -> None:
    document = json.loads(ISTIO_SCHEMA_FILE.read_text(encoding="utf-8"))
    assert "istio/api tag v1.30.3" in document["source"]
    assert set(document["schemas"]) == {"VirtualService", "DestinationRule"}


def test_a_weighted_virtual_service_passes() -> None:
    validate_istio(virtual_service())
    validate_manifest(virtual_service(), K8S)


def test_a_destination_rule_with_subsets_passes() -> None:
    validate_istio(destination_rule())
    validate_manifest(destination_rule(), K8S)


def test_the_tightened_schemas_are_valid_json_schema_and_closed() -> None:
    for kind in ("VirtualService", "DestinationRule"):
        schema = istio_schema(kind)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert schema["properties"]["spec"]["additionalProperties"] is False
        assert "nullable" not in json.dumps(schema)
    route = istio_schema("VirtualService")["properties"]["spec"]["properties"]["http"]["items"]
    assert route["properties"]["route"]["items"]["properties"]["destination"]["additionalProperties"] is False
    # maps stay maps: header matches and subset labels keep their own additionalProperties
    assert route["properties"]["match"]["items"]["properties"]["headers"]["additionalProperties"]["type"] == "object"


def test_istio_schema_is_cached_and_refuses_unknown_kinds() -> None:
    assert istio_schema("VirtualService") is istio_schema("VirtualService")
    with pytest.raises(ValueError, match="Gateway"):
        istio_schema("Gateway")


# --- Istio: mistakes fail, with their path ---------------------------------------------------


def test_an_unknown_key_in_a_route_destination_fails_with_its_path() -> None:
    vs = virtual_service()
    vs["spec"]["http"][1]["route"][0]["weigth"] = vs["spec"]["http"][1]["route"][0].pop("weight")
    message = failure(validate_istio, vs)
    assert "VirtualService/chat-assistant" in message
    assert "$.spec.http[1].route[0]" in message
    assert "'weigth' was unexpected" in message


def test_an_unknown_key_inside_destination_fails() -> None:
    vs = virtual_service()
    vs["spec"]["http"][0]["route"][0]["destination"]["subsets"] = "v1-3-0"
    assert "$.spec.http[0].route[0].destination: " in failure(validate_istio, vs)


def test_every_error_is_listed_sorted_by_path() -> None:
    vs = virtual_service()
    vs["spec"]["http"][1]["route"][1]["weight"] = "10"
    vs["spec"]["http"][0]["timeout"] = 90
    message = failure(validate_istio, vs)
    assert "2 schema error(s)" in message
    assert message.index("$.spec.http[0].timeout") < message.index("$.spec.http[1].route[1].weight")


def test_an_unknown_top_level_spec_key_fails() -> None:
    vs = virtual_service()
    vs["spec"]["trafficPolicy"] = {"loadBalancer": {"simple": "LEAST_REQUEST"}}  # a DestinationRule field
    assert "$.spec: Additional properties are not allowed ('trafficPolicy'" in failure(validate_istio, vs)


def test_a_misspelled_mirror_percentage_fails() -> None:
    vs = virtual_service()
    vs["spec"]["http"][1]["mirrorPercentge"] = vs["spec"]["http"][1].pop("mirrorPercentage")
    assert "'mirrorPercentge' was unexpected" in failure(validate_istio, vs)


def test_mirror_percent_is_a_real_deprecated_integer_field_not_a_misspelling() -> None:
    """`mirrorPercent` (and `mirror_percent`) exist in the v1 CRD as nullable integers: the schema
    accepts them, so only their type is checked. Sluice must write `mirrorPercentage: {value}`."""
    vs = virtual_service()
    http = vs["spec"]["http"][1]
    http["mirrorPercent"] = 5
    validate_istio(vs)
    http["mirrorPercent"] = http.pop("mirrorPercentage")  # the object form under the old name
    assert "$.spec.http[1].mirrorPercent: {'value': 5.0} is not of type 'integer', 'null'" in failure(
        validate_istio, vs
    )


def test_the_mirror_percentage_value_is_a_number() -> None:
    vs = virtual_service()
    vs["spec"]["http"][1]["mirrorPercentage"]["value"] = "5"
    assert "$.spec.http[1].mirrorPercentage.value: '5' is not of type 'number'" in failure(validate_istio, vs)


def test_a_route_weight_is_an_integer() -> None:
    vs = virtual_service()
    vs["spec"]["http"][1]["route"][0]["weight"] = 89.5
    assert "$.spec.http[1].route[0].weight: 89.5 is not of type 'integer'" in failure(validate_istio, vs)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("kind", "VirtualServices", "not an Istio kind"),
        ("kind", "DestinationRule", "$.spec: 'host' is a required property"),
        ("apiVersion", "networking.istio.io/v1beta1", "$.apiVersion: 'networking.istio.io/v1' was expected"),
        ("apiVersion", "networking.istio.io/v1alpha3", "$.apiVersion: 'networking.istio.io/v1' was expected"),
    ],
)
def test_a_wrong_kind_or_api_version_fails(field: str, value: str, expected: str) -> None:
    vs = virtual_service()
    vs[field] = value
    assert expected in failure(validate_manifest, vs, K8S)


def test_metadata_and_top_level_are_closed() -> None:
    vs = virtual_service()
    vs["metadata"]["lables"] = {"a": "b"}
    vs["status"] = {}
    message = failure(validate_istio, vs)
    assert "$: Additional properties are not allowed ('status'" in message
    assert "$.metadata: Additional properties are not allowed ('lables'" in message
    del vs["metadata"]
    assert "$: 'metadata' is a required property" in failure(validate_istio, vs)


def test_label_values_must_be_strings() -> None:
    dr = destination_rule()
    dr["spec"]["subsets"][0]["labels"]["sluice.dev/version"] = 1.2
    assert "$.spec.subsets[0].labels['sluice.dev/version']: 1.2 is not of type 'string'" in failure(
        validate_istio, dr
    )


def test_an_unknown_load_balancer_fails() -> None:
    dr = destination_rule()
    dr["spec"]["trafficPolicy"]["loadBalancer"]["simple"] = "LEAST_REQUESTS"
    assert "$.spec.trafficPolicy.loadBalancer.simple: 'LEAST_REQUESTS' is not one of" in failure(
        validate_istio, dr
    )


def test_null_passes_where_the_crd_says_nullable_and_nowhere_else() -> None:
    dr = destination_rule()
    dr["spec"]["trafficPolicy"]["outlierDetection"] = {"consecutive5xxErrors": None, "interval": "30s"}
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "ISTIO_MUTUAL", "insecureSkipVerify": None}
    validate_istio(dr)
    vs = virtual_service()
    vs["spec"]["http"][1]["mirrorPercent"] = None
    validate_istio(vs)
    vs["spec"]["http"][1]["timeout"] = None  # not nullable
    assert "$.spec.http[1].timeout: None is not of type 'string'" in failure(validate_istio, vs)


def test_the_untightened_crd_schema_would_have_passed_the_mistakes() -> None:
    """Why tighten: the published schema accepts unknown fields and rejects nullable nulls."""
    document = json.loads(ISTIO_SCHEMA_FILE.read_text(encoding="utf-8"))
    raw = jsonschema.Draft202012Validator(document["schemas"]["VirtualService"]["properties"]["spec"])
    spec = virtual_service()["spec"]
    spec["http"][1]["route"][0]["weigth"] = 90
    assert raw.is_valid(spec)
    spec = virtual_service()["spec"]
    spec["http"][1]["mirrorPercent"] = None
    assert not raw.is_valid(spec)


# --- tighten on synthetic schemas ------------------------------------------------------------


def test_tighten_closes_objects_with_properties_recursively_and_copies() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "list": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "integer"}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"d": {}}}},
            "open": {"type": "object", "properties": {"e": {}}, "additionalProperties": True},
            "bare": {"type": "object"},
        },
    }
    original = copy.deepcopy(schema)
    tight = tighten(schema)
    assert schema == original
    props = tight["properties"]
    assert tight["additionalProperties"] is False
    assert props["a"]["additionalProperties"] is False
    assert props["list"]["items"]["additionalProperties"] is False
    assert props["map"]["additionalProperties"]["additionalProperties"] is False
    assert props["open"]["additionalProperties"] is True
    assert "additionalProperties" not in props["bare"]
    validator = jsonschema.Draft202012Validator(tight)
    assert validator.is_valid({"a": {"b": "x"}, "list": [{"c": 1}], "map": {"k": {"d": 1}}, "open": {"z": 1}})
    assert not validator.is_valid({"a": {"b": "x", "z": 1}})
    assert not validator.is_valid({"list": [{"c": 1, "z": 1}]})
    assert not validator.is_valid({"map": {"k": {"z": 1}}})
    assert not validator.is_valid({"z": 1})


def test_tighten_leaves_preserve_unknown_fields_objects_open() -> None:
    schema = {
        "type": "object",
        "properties": {
            "status": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"phase": {"type": "string"}},
            },
        },
    }
    tight = tighten(schema)
    assert "additionalProperties" not in tight["properties"]["status"]
    validator = jsonschema.Draft202012Validator(tight)
    assert validator.is_valid({"status": {"phase": "Ready", "anything": {"else": 1}}})
    assert not validator.is_valid({"status": {"phase": 1}})
    assert not validator.is_valid({"other": 1})


def test_tighten_turns_nullable_into_a_null_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "nullable": True},
            "mode": {"type": "string", "enum": ["A", "B"], "nullable": True},
            "either": {"nullable": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "nested": {"type": "array", "items": {"type": "boolean", "nullable": True}},
            "strict": {"type": "integer"},
        },
    }
    tight = tighten(schema)
    props = tight["properties"]
    assert props["count"] == {"type": ["integer", "null"]}
    assert props["mode"]["enum"] == ["A", "B", None]
    assert "nullable" not in json.dumps(tight)
    validator = jsonschema.Draft202012Validator(tight)
    assert validator.is_valid({"count": None, "mode": None, "either": None, "nested": [True, None]})
    assert validator.is_valid({"count": 1, "mode": "A", "either": "x"})
    assert not validator.is_valid({"mode": "C"})
    assert not validator.is_valid({"either": 1.5})
    assert not validator.is_valid({"strict": None})


def test_tighten_does_not_close_branches_of_combinators() -> None:
    """A branch naming some fields (as Istio's oneOf `required` branches do) must not reject others;
    nullable inside a branch is still rewritten."""
    schema = {
        "type": "object",
        "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}},
        "oneOf": [
            {"properties": {"exact": {"type": "string", "nullable": True}}, "required": ["exact"]},
            {"required": ["prefix"]},
        ],
        "not": {"properties": {"prefix": {"const": "forbidden"}}, "required": ["prefix"]},
    }
    tight = tighten(schema)
    assert "additionalProperties" not in tight["oneOf"][0]
    assert "additionalProperties" not in tight["not"]
    assert tight["oneOf"][0]["properties"]["exact"]["type"] == ["string", "null"]
    validator = jsonschema.Draft202012Validator(tight)
    assert validator.is_valid({"exact": "a"})
    assert validator.is_valid({"prefix": "a"})
    assert not validator.is_valid({"prefix": "forbidden"})
    assert not validator.is_valid({"exact": "a", "prefix": "b"})
    assert not validator.is_valid({"regex": "a"})


# --- Kubernetes built-in kinds ---------------------------------------------------------------


def test_a_minimal_deployment_passes() -> None:
    validate_kubernetes(deployment(), K8S)
    validate_manifest(deployment(), K8S)


def test_an_unknown_container_field_fails_in_strict_mode() -> None:
    manifest = deployment()
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    message = failure(validate_kubernetes, manifest, K8S)
    assert "Deployment/chat-assistant-v1-3-0" in message
    assert "$.spec.template.spec.containers[0]" in message
    assert "'imagePullPolicyy' was unexpected" in message


def test_a_deployment_with_a_wrong_type_fails() -> None:
    manifest = deployment()
    manifest["spec"]["replicas"] = "2"
    assert "$.spec.replicas" in failure(validate_manifest, manifest, K8S)


def test_an_unknown_api_version_fails() -> None:
    manifest = deployment()
    manifest["apiVersion"] = "apps/v1beta9"
    assert "Couldn't find schema for kind Deployment" in failure(validate_manifest, manifest, K8S)


def test_an_immutable_config_map_passes() -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "chat-assistant-v1-3-0", "namespace": "llm-prod"},
        "immutable": True,
        "data": {"release.yaml": "model: chat-assistant\n"},
    }
    validate_kubernetes(config_map, K8S)
    config_map["immutable"] = "true"
    assert "$.immutable" in failure(validate_kubernetes, config_map, K8S)


def test_a_pod_disruption_budget_passes() -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "chat-assistant-v1-3-0", "namespace": "llm-prod"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "chat-assistant"}}},
    }
    validate_kubernetes(pdb, K8S)
    validate_manifest(pdb, K8S)


def test_validate_manifest_refuses_what_is_not_a_manifest() -> None:
    assert "not a manifest" in failure(validate_manifest, {"kind": "ConfigMap"}, K8S)
