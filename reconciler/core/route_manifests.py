"""Istio routing of one model: a DestinationRule with a subset per live version and a
VirtualService whose weights follow the candidate's current stage.

Routes, in the order Istio tries them, for in-mesh callers and for the gateway (which serves
`https://<istio host>/<model>/...`, the prefix stripped):

1. a request with the header `x-model-version: v1.3.0` goes to that live version whatever the
   weights (testers, smoke checks on a 0% candidate);
2. everything else is split by weight: every live version is listed, standby and a 0% candidate
   with weight 0, so a rollback or a promotion only changes numbers. A shadow stage adds
   `mirror` / `mirrorPercentage` towards the candidate while users are served by stable, and the
   online evaluator (core/evaluator_manifests.py) its sample; with both, Istio's `mirrors` list.
   Pinned routes never mirror: a tester's request is nobody's sample.

Example: stable 1.2.0 and candidate 1.3.0 at a 5% stage -> weights 1.2.0: 95, 1.3.0: 5.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .naming import VERSION_HEADER, subset_name
from .serving_manifests import Manifest, metadata
from .traffic import TrafficSplit
from .types import version_key, version_label

#: A mirror target: an Istio Destination and the percent of the route's requests copied to it.
Mirror = tuple[dict[str, Any], float]

LOAD_BALANCER = {"loadBalancer": {"simple": "LEAST_REQUEST"}}  # long, uneven LLM requests


def service_host(model: str, namespace: str) -> str:
    return f"{model}.{namespace}.svc.cluster.local"


def destination_rule(model: str, namespace: str, versions: list[str]) -> Manifest:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": metadata(model, namespace, {"app": model}),
        "spec": {
            "host": service_host(model, namespace),
            "trafficPolicy": LOAD_BALANCER,
            "subsets": [{"name": subset_name(v), "labels": {"version": version_label(v)}}
                        for v in sorted(versions, key=version_key)],  # pointer moves leave it unchanged
        },
    }


def istio_duration(value: timedelta) -> str:
    """Istio reads durations as protobuf JSON: seconds only, "90s" (not "1m30s")."""
    return f"{value.total_seconds():g}s"


def _destination(host: str, version: str) -> dict[str, Any]:
    return {"host": host, "subset": subset_name(version)}


def _routes(host: str, split: TrafficSplit, timeouts: dict[str, timedelta], gateway: str,
            prefix: str | None, sample: Mirror | None) -> list[dict[str, Any]]:
    """Pinned routes then the weighted route, for callers arriving through `gateway`."""
    base: dict[str, Any] = {"gateways": [gateway]}
    extra: dict[str, Any] = {}
    if prefix is not None:
        base["uri"] = {"prefix": prefix}
        extra["rewrite"] = {"uri": "/"}
    origin = "mesh" if prefix is None else "gateway"
    versions = sorted(split.weights, key=version_key)  # pointer moves change numbers, not order
    routes = [
        {"name": f"{origin}-pinned-{subset_name(v)}",
         "match": [{**base, "headers": {VERSION_HEADER: {"exact": version_label(v)}}}],
         **extra,
         "route": [{"destination": _destination(host, v)}],
         "timeout": istio_duration(timeouts[v])}
        for v in versions
    ]
    weighted: dict[str, Any] = {
        "name": f"{origin}-weighted",
        "match": [base],
        **extra,
        "route": [{"destination": _destination(host, v), "weight": split.weights[v]} for v in versions],
        "timeout": istio_duration(max(timeouts[v] for v, w in split.weights.items() if w > 0)),
    }
    weighted.update(_mirrors(host, split, sample))
    return [*routes, weighted]


def _mirrors(host: str, split: TrafficSplit, sample: Mirror | None) -> dict[str, Any]:
    """A weighted route's mirror targets: the shadow stage's candidate, the online evaluator's sample.

    One target is written as `mirror` + `mirrorPercentage` (as before the evaluator existed); two
    as Istio's `mirrors` list, each with its own percentage (the two forms may not be mixed).
    """
    targets: list[Mirror] = []
    if split.mirror is not None:
        version, percent = split.mirror
        targets.append((_destination(host, version), float(percent)))
    if sample is not None:
        targets.append(sample)
    if len(targets) == 1:
        [(destination, percent)] = targets
        return {"mirror": destination, "mirrorPercentage": {"value": percent}}
    if targets:
        return {"mirrors": [{"destination": d, "percentage": {"value": p}} for d, p in targets]}
    return {}


def virtual_service(model: str, namespace: str, split: TrafficSplit, timeouts: dict[str, timedelta],
                    gateway: str, hosts: list[str], sample: Mirror | None = None) -> Manifest:
    """`sample`: the online evaluator's destination and percent, mirrored from the weighted routes."""
    host = service_host(model, namespace)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": metadata(model, namespace, {"app": model}),
        "spec": {
            "hosts": [host, *hosts],
            "gateways": ["mesh", gateway],
            "http": [*_routes(host, split, timeouts, "mesh", None, sample),
                     *_routes(host, split, timeouts, gateway, f"/{model}/", sample)],
        },
    }
