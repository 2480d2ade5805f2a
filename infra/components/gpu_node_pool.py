"""An EKS managed node group of GPU nodes, with the node IAM role EKS worker nodes need.

Nodes carry the pool label (serving pods select it) and the taint nvidia.com/gpu=true:NoSchedule
(only pods that tolerate it, the GPU servers, land there). The cluster autoscaler's node-template
tags let a pool with min_nodes 0 scale up from zero.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from reconciler.core.desired import NodePool

from .cluster import ClusterAccess, partition

WORKER_NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
EKS_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
AUTOSCALER_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


def autoscaler_tags(pool: NodePool) -> dict[str, str]:
    taint = pool.taint
    tags = {f"{AUTOSCALER_TEMPLATE}/label/{k}": v for k, v in pool.labels.items()}
    tags[f"{AUTOSCALER_TEMPLATE}/taint/{taint['key']}"] = f"{taint['value']}:{taint['effect']}"
    tags[f"{AUTOSCALER_TEMPLATE}/resources/nvidia.com/gpu"] = str(pool.pool.gpus_per_node)
    return tags


class GpuNodePool(pulumi.ComponentResource):
    def __init__(self, pool: NodePool, access: ClusterAccess, opts: pulumi.ResourceOptions) -> None:
        name = pool.pool.name
        super().__init__("sluice:infra:GpuNodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(f"{name}-node", assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }), opts=child)
        arn_prefix = f"arn:{partition(access.cluster.region)}:iam::aws:policy"
        self.attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=self.role.name,
                                         policy_arn=f"{arn_prefix}/{policy}", opts=child)
            for policy in WORKER_NODE_POLICIES
        ]
        spec = pool.pool
        taint = pool.taint
        self.node_group = aws.eks.NodeGroup(
            name,
            cluster_name=access.cluster.name,
            node_role_arn=self.role.arn,
            subnet_ids=access.node_subnet_ids,
            instance_types=[spec.instance_type],
            ami_type=spec.ami_type,
            capacity_type=spec.capacity_type,
            disk_size=spec.disk_gib,
            scaling_config={"desired_size": pool.desired_nodes, "min_size": spec.min_nodes, "max_size": spec.max_nodes},
            update_config={"max_unavailable": 1},
            labels=pool.labels,
            taints=[{"key": taint["key"], "value": taint["value"], "effect": EKS_TAINT_EFFECTS[taint["effect"]]}],
            tags={"sluice.dev/gpu-pool": name, **autoscaler_tags(pool)},
            # The autoscaler owns the node count between the bounds; the program owns the bounds.
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.attachments,
                                        ignore_changes=["scalingConfig.desiredSize"]),
        )
        self.register_outputs({})
