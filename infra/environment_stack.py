"""Wire the components of one environment from its desired state."""

from __future__ import annotations

import pulumi

from components import (ClusterAccess, GpuNodePool, OnlineEvaluator, ReleaseConfig, ServingNamespace, ServingStack,
                        TrafficRoutes)
from reconciler.core.desired import DesiredState


def deploy(state: DesiredState, config: pulumi.Config) -> None:
    access = ClusterAccess(state.environment, state.cluster, config)
    on_aws = pulumi.ResourceOptions(providers=[access.aws])
    for pool in state.node_pools:
        GpuNodePool(pool, access, on_aws)
    on_cluster = pulumi.ResourceOptions(providers=[access.kubernetes])
    namespace = ServingNamespace(state.namespace["metadata"]["name"], state.namespace,
                                 [state.fetcher, state.environment_config], on_cluster)
    in_namespace = pulumi.ResourceOptions(providers=[access.kubernetes], depends_on=[namespace])
    for model in state.models:
        config_maps = ReleaseConfig(model, in_namespace)
        stacks = [ServingStack(stack, pulumi.ResourceOptions(providers=[access.kubernetes],
                                                             depends_on=[namespace, config_maps]))
                  for stack in model.stacks]
        evaluators = [OnlineEvaluator(model.evaluator, in_namespace)] if model.evaluator is not None else []
        TrafficRoutes(model, pulumi.ResourceOptions(providers=[access.kubernetes],
                                                    depends_on=[namespace, *stacks, *evaluators]))
        pulumi.export(model.model, model.outputs())
