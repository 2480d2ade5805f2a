"""Register a manifest from the desired state as a pulumi-kubernetes resource.

The dicts keep the API's camelCase field names and go to the provider as they are, so
`reconciler render` and `pulumi up` apply the same objects. They are registered as plain
`CustomResource`s under the provider's own type tokens (`kubernetes:apps/v1:Deployment`,
`kubernetes:networking.istio.io/v1:VirtualService`): the engine and the provider see exactly what
the typed classes would send, without the typed classes' per-property input translation and
source-position capture, which made registration about 1.5x slower (bench/bench_program.py).
The explicit Kubernetes provider of the environment pins the plugin version.
"""

from __future__ import annotations

import pulumi

from reconciler.core.serving_manifests import Manifest


def type_token(manifest: Manifest) -> str:
    """apps/v1 Deployment -> kubernetes:apps/v1:Deployment; v1 ConfigMap -> kubernetes:core/v1:ConfigMap."""
    api_version = manifest["apiVersion"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{manifest['kind']}"


def kubernetes_object(resource_name: str, manifest: Manifest, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    return pulumi.CustomResource(type_token(manifest), resource_name, dict(manifest), opts)


class ServingNamespace(pulumi.ComponentResource):
    """The namespace (with Istio sidecar injection), the bundle fetch script its pods share, and the
    environment's policy (what the policy pack judges releases against)."""

    def __init__(self, name: str, namespace: Manifest, shared: list[Manifest], opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:serving:ServingNamespace", name, None, opts)
        self.namespace = kubernetes_object(name, namespace, pulumi.ResourceOptions(parent=self))
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        self.config_maps = [kubernetes_object(m["metadata"]["name"], m, in_namespace) for m in shared]
        self.register_outputs({})
