"""The ConfigMaps of one model: a release and a runtime map per live version, and the pointer."""

from __future__ import annotations

import pulumi

from reconciler.core.desired import ModelState

from .kubernetes_objects import kubernetes_object


class ReleaseConfig(pulumi.ComponentResource):
    def __init__(self, state: ModelState, opts: pulumi.ResourceOptions) -> None:
        super().__init__("sluice:serving:ReleaseConfig", state.model, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.maps = [
            kubernetes_object(manifest["metadata"]["name"], manifest, child)
            for stack in state.stacks
            for manifest in (stack.release_config, stack.runtime_config)
        ]
        self.pointer = kubernetes_object(state.pointer_config["metadata"]["name"], state.pointer_config, child)
        self.register_outputs({})
