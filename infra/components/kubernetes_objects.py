"""Register a manifest from the desired state as the matching pulumi-kubernetes resource.

The dicts keep the API's camelCase field names; pulumi-kubernetes sends them to the provider as
they are, so `reconciler render` and `pulumi up` apply the same objects.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from reconciler.core.serving_manifests import Manifest

BUILT_IN = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
}


def kubernetes_object(resource_name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Deployment -> k8s.apps.v1.Deployment; an Istio kind -> a CustomResource of that kind."""
    fields: dict[str, Any] = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind")}
    kind_class = BUILT_IN.get((manifest["apiVersion"], manifest["kind"]))
    if kind_class is not None:
        return kind_class(resource_name, opts=opts, **fields)
    return k8s.apiextensions.CustomResource(resource_name, api_version=manifest["apiVersion"], kind=manifest["kind"],
                                            opts=opts, **fields)


class ServingNamespace(pulumi.ComponentResource):
    """The namespace (with Istio sidecar injection), the bundle fetch script its pods share, and the
    environment's policy (what the policy pack judges releases against)."""

    def __init__(self, name: str, namespace: Manifest, shared: list[Manifest], opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:serving:ServingNamespace", name, None, opts)
        self.namespace = kubernetes_object(name, namespace, pulumi.ResourceOptions(parent=self))
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.config_maps = [kubernetes_object(m["metadata"]["name"], m, in_namespace) for m in shared]
        self.register_outputs({})
