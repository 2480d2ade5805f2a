"""Validate rendered manifests against the real schemas (see TESTING.md, "Rendered manifests").

Built-in kinds go through `kubernetes_validate` in strict mode. Istio's VirtualService and
DestinationRule go through their own CRD schemas (tests/data/istio-networking-v1.json, istio/api
v1.30.3), tightened first: as published they accept unknown fields and reject `nullable` nulls.
CEL rules (`x-kubernetes-validations`) and formats (`int32`, `double`) are not enforced, and nothing
here makes route weights sum to 100: that is Sluice's own rule.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

ISTIO_SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "istio-networking-v1.json"
ISTIO_API_VERSION = "networking.istio.io/v1"
ISTIO_KINDS = ("VirtualService", "DestinationRule")

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": False,
}
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")


def tighten(schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a Kubernetes structural schema, rewritten for a strict JSON Schema check.

    - An object schema with `properties`, no `x-kubernetes-preserve-unknown-fields: true` and no
      explicit `additionalProperties` gets `additionalProperties: false` (what the API server's
      pruning would silently drop becomes an error).
    - `nullable: true` allows null: `type: [<t>, "null"]` (and null in an `enum`), or an `anyOf`
      with `{"type": "null"}` when there is no `type`.

    Both rewrites recurse through properties, items, additionalProperties and the logical
    combinators. Objects are closed only in the structural part, not inside anyOf/oneOf/allOf/not:
    as in Kubernetes, fields are declared by the structural schema, and a combinator branch naming
    some of them (or a `not`) must not reject the others.
    """
    return _tighten(copy.deepcopy(schema), structural=True)


def _tighten(node: dict[str, Any], *, structural: bool) -> dict[str, Any]:
    if not isinstance(node, dict):
        return node
    props = node.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            props[name] = _tighten(sub, structural=structural)
    if isinstance(node.get("items"), dict):
        node["items"] = _tighten(node["items"], structural=structural)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _tighten(node["additionalProperties"], structural=structural)
    for key in _SCHEMA_LISTS:
        if isinstance(node.get(key), list):
            node[key] = [_tighten(sub, structural=False) for sub in node[key]]
    if isinstance(node.get("not"), dict):
        node["not"] = _tighten(node["not"], structural=False)

    if (
        structural
        and isinstance(props, dict)
        and node.get("x-kubernetes-preserve-unknown-fields") is not True
        and "additionalProperties" not in node
    ):
        node["additionalProperties"] = False

    if node.pop("nullable", False) is True:
        if "type" in node:
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            node["type"] = [*types, "null"] if "null" not in types else types
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [{"type": "null"}, node]}
    return node


@functools.cache
def _istio_document() -> dict[str, Any]:
    return json.loads(ISTIO_SCHEMA_FILE.read_text(encoding="utf-8"))


@functools.cache
def istio_schema(kind: str) -> dict[str, Any]:
    """The tightened schema of a whole `networking.istio.io/v1` VirtualService or DestinationRule.

    Cached: callers must not mutate the result.
    """
    if kind not in ISTIO_KINDS:
        raise ValueError(f"no Istio schema for kind {kind!r}; known: {', '.join(ISTIO_KINDS)}")
    crd = _istio_document()["schemas"][kind]
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{ISTIO_API_VERSION} {kind}",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": ISTIO_API_VERSION},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": crd["properties"]["spec"],
        },
        "additionalProperties": False,
    }
    tightened = tighten(schema)
    jsonschema.Draft202012Validator.check_schema(tightened)
    return tightened


@functools.cache
def _istio_validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(istio_schema(kind))


def _describe(manifest: Any) -> str:
    if not isinstance(manifest, dict):
        return repr(manifest)
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{manifest.get('kind', '?')}/{name or '?'}"


def validate_istio(manifest: dict[str, Any]) -> None:
    """Raise AssertionError listing every schema error of an Istio manifest, with its JSON path."""
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    if kind not in ISTIO_KINDS:
        raise AssertionError(
            f"{_describe(manifest)}: kind {kind!r} is not an Istio kind with a schema here "
            f"({', '.join(ISTIO_KINDS)})"
        )
    errors = sorted(_istio_validator(kind).iter_errors(manifest), key=lambda e: (e.json_path, e.message))
    if errors:
        lines = "\n".join(f"  {e.json_path}: {e.message}" for e in errors)
        raise AssertionError(f"{_describe(manifest)}: {len(errors)} schema error(s) against {ISTIO_API_VERSION}:\n{lines}")


def validate_kubernetes(manifest: dict[str, Any], version: str) -> None:
    """Strict check of a built-in kind against Kubernetes `version` (e.g. "1.33")."""
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        raise AssertionError(
            f"{_describe(manifest)}: invalid against Kubernetes {e.version} (strict): {path}: {e.message}"
        ) from None
    except kubernetes_validate.SchemaNotFoundError as e:
        raise AssertionError(f"{_describe(manifest)}: {e.message}") from None


def validate_manifest(manifest: dict[str, Any], kubernetes_version: str) -> None:
    """Validate one rendered manifest: Istio kinds by their CRD schema, the rest by Kubernetes'."""
    api_version = manifest.get("apiVersion") if isinstance(manifest, dict) else None
    if not isinstance(api_version, str) or not isinstance(manifest.get("kind"), str):
        raise AssertionError(f"{_describe(manifest)}: not a manifest (apiVersion and kind must be strings)")
    if api_version.startswith("networking.istio.io/"):
        validate_istio(manifest)
    else:
        validate_kubernetes(manifest, kubernetes_version)
