"""Access to an environment's EKS cluster: an AWS provider in its region and a Kubernetes provider.

The kubeconfig comes from stack config (`sluice:kubeconfig`, a secret) when set, otherwise from the
EKS cluster named in the environment file, authenticating with `aws eks get-token` as kubectl does.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from reconciler.core.environment import Cluster


def partition(region: str) -> str:
    """IAM ARNs differ outside the commercial partition: us-gov-west-1 -> aws-us-gov."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def eks_kubeconfig(cluster: Cluster, endpoint: str, certificate_authority: str) -> str:
    """A kubeconfig that asks the AWS CLI for a short-lived token, like `aws eks update-kubeconfig`."""
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                     "args": ["eks", "get-token", "--cluster-name", cluster.name, "--region", cluster.region]}}
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "current-context": cluster.name,
        "clusters": [{"name": cluster.name,
                      "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority}}],
        "users": [{"name": cluster.name, "user": user}],
        "contexts": [{"name": cluster.name, "context": {"cluster": cluster.name, "user": cluster.name}}],
    }
    return json.dumps(config)


class ClusterAccess(pulumi.ComponentResource):
    def __init__(self, name: str, cluster: Cluster, config: pulumi.Config) -> None:
        super().__init__("sluice:infra:ClusterAccess", name, None, None)
        self.cluster = cluster
        self.aws = aws.Provider(name, region=cluster.region,
                                default_tags={"tags": {"sluice.dev/environment": name, "managed-by": "sluice"}},
                                opts=pulumi.ResourceOptions(parent=self))
        eks = aws.eks.get_cluster_output(name=cluster.name, opts=pulumi.InvokeOutputOptions(provider=self.aws))
        kubeconfig = config.get_secret("kubeconfig") or pulumi.Output.all(
            eks.endpoint, eks.certificate_authorities[0].data
        ).apply(lambda args: eks_kubeconfig(cluster, args[0], args[1]))
        subnets = config.get_object("nodeSubnetIds")
        self.node_subnet_ids = pulumi.Output.from_input(subnets) if subnets else eks.vpc_config.subnet_ids
        self.kubernetes = k8s.Provider(name, kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
