"""A model's online evaluator (docs/evaluator.md): its config, Deployment and Service.

Registered only while the model's candidate is in a canary or shadow stage (the desired state
decides). The model's TrafficRoutes depend on it, so the VirtualService never mirrors samples to a
Service that does not exist yet, and on removal the mirror goes before the evaluator does.
"""

from __future__ import annotations

import pulumi

from reconciler.core.evaluator_manifests import EvaluatorState

from .kubernetes_objects import kubernetes_object


class OnlineEvaluator(pulumi.ComponentResource):
    def __init__(self, state: EvaluatorState, opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:evaluation:OnlineEvaluator", state.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.config_map = kubernetes_object(state.name, state.config_map, child)
        self.deployment = kubernetes_object(state.name, state.deployment,
                                            pulumi.ResourceOptions(parent=self, depends_on=[self.config_map]))
        self.service = kubernetes_object(state.name, state.service, child)
        self.register_outputs({})
