"""One live version of a model: Deployment, Service and PodDisruptionBudget.

Its inputs never mention the pointer, so promoting or rolling back leaves it untouched: the
standby keeps running and a rollback is a route change that starts no pod.
"""

from __future__ import annotations

import pulumi

from reconciler.core.desired import ServingStack as ServingStackState
from reconciler.core.serving_manifests import rollout_timeout_seconds

from .kubernetes_objects import kubernetes_object


class ServingStack(pulumi.ComponentResource):
    def __init__(self, state: ServingStackState, opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:serving:ServingStack", state.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rollout = f"{rollout_timeout_seconds(state.deployment) // 60}m"
        self.deployment = kubernetes_object(state.name, state.deployment, pulumi.ResourceOptions(
            parent=self, custom_timeouts=pulumi.CustomTimeouts(create=rollout, update=rollout)))
        self.service = kubernetes_object(state.name, state.service, child)
        self.disruption_budget = kubernetes_object(state.name, state.disruption_budget, child)
        self.register_outputs({})
