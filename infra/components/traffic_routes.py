"""How users reach a model: its Service, the DestinationRule subsets and the weighted VirtualService.

Created after the serving stacks it points at (depends_on), so a new subset never routes to a
Deployment that does not exist yet; on removal the engine updates routes before deleting stacks.
"""

from __future__ import annotations

import pulumi

from reconciler.core.desired import ModelState

from .kubernetes_objects import kubernetes_object


class TrafficRoutes(pulumi.ComponentResource):
    def __init__(self, state: ModelState, opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:traffic:TrafficRoutes", state.model, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.service = kubernetes_object(state.model, state.service, child)
        self.destination_rule = kubernetes_object(state.model, state.destination_rule, child)
        self.virtual_service = kubernetes_object(state.model, state.virtual_service,
                                                 pulumi.ResourceOptions(parent=self, depends_on=[self.destination_rule]))
        self.register_outputs({"weights": dict(state.split.weights)})
