"""What a change does to the deployed resources: created, changed, deleted, and traffic moved.

Compares two sets of resources by identity (type and name) and their inputs, the way a preview
reads them. Weight changes are read from each VirtualService's weighted route, so a reviewer sees
"chat-assistant 1.2.0 99 -> 95, 1.3.0 1 -> 5" rather than a nested diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"


@dataclass(frozen=True)
class PlannedResource:
    type: str
    name: str
    inputs: Mapping[str, Any]
    custom: bool = True


@dataclass(frozen=True)
class Change:
    action: str  # "create" | "update" | "delete"
    type: str
    name: str
    fields: tuple[str, ...] = ()  # top-level input paths that differ, e.g. ("spec",)
    weights: dict[str, tuple[int, int]] = field(default_factory=dict)  # version -> (before, after)


def route_weights(inputs: Mapping[str, Any]) -> dict[str, int]:
    """Weights of a VirtualService's first weighted route, by version label: {"v1.2.0": 99, ...}."""
    for route in inputs.get("spec", {}).get("http", []):
        if str(route.get("name", "")).endswith("weighted"):
            return {_version(r["destination"].get("subset", "")): int(r.get("weight", 0)) for r in route["route"]}
    return {}


def _version(subset: str) -> str:
    """"v1-3-0" -> "1.3.0"."""
    return subset.removeprefix("v").replace("-", ".")


def _changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))


def _weights_moved(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    old, new = route_weights(before), route_weights(after)
    return {v: (old.get(v, 0), new.get(v, 0)) for v in sorted(old.keys() | new.keys())
            if old.get(v, 0) != new.get(v, 0)}


def diff_resources(base: Iterable[PlannedResource], head: Iterable[PlannedResource]) -> list[Change]:
    """Changes from `base` to `head` among custom resources, sorted by type then name."""
    old = {(r.type, r.name): r for r in base if r.custom}
    new = {(r.type, r.name): r for r in head if r.custom}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            changes.append(Change("create", *key, weights=_weights_moved({}, new[key].inputs)
                                  if key[0] == VIRTUAL_SERVICE else {}))
        elif key not in new:
            changes.append(Change("delete", *key))
        elif old[key].inputs != new[key].inputs:
            weights = _weights_moved(old[key].inputs, new[key].inputs) if key[0] == VIRTUAL_SERVICE else {}
            changes.append(Change("update", *key, _changed_fields(old[key].inputs, new[key].inputs), weights))
    return changes
