"""How the program reaches an environment's cluster: the EKS lookup, or a kubeconfig from stack config."""

from __future__ import annotations

import json

import pytest
from components.cluster import eks_kubeconfig, partition

from reconciler.adapters.offline_engine import OFFLINE_LOOKUPS, ProgramRun, run_program
from reconciler.core.environment import Cluster
from tests.conftest import ROOT

SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


def kubernetes_provider(run: ProgramRun) -> dict:
    [provider] = [r for r in run.resources if r.type == "pulumi:providers:kubernetes"]
    return provider.inputs


def node_groups(run: ProgramRun) -> list[dict]:
    return [r.inputs for r in run.resources if r.type == "aws:eks/nodeGroup:NodeGroup"]


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_without_stack_config_the_kubeconfig_comes_from_the_eks_cluster(preview: bool) -> None:
    run = run_program(ROOT / "infra", project="sluice", stack="prod", config={"environment": "prod"}, preview=preview)
    config = json.loads(kubernetes_provider(run)["kubeconfig"])
    lookup = OFFLINE_LOOKUPS["aws:eks/getCluster:getCluster"]
    assert config["clusters"][0]["cluster"] == {"server": lookup["endpoint"],
                                                "certificate-authority-data": lookup["certificateAuthorities"][0]["data"]}
    assert config["users"][0]["user"]["exec"]["args"] == ["eks", "get-token", "--cluster-name", "llm-prod",
                                                          "--region", "us-east-1"]
    [aws] = [r for r in run.resources if r.type == "pulumi:providers:aws"]
    assert aws.inputs["region"] == "us-east-1"


def test_stack_config_overrides_the_kubeconfig_as_a_secret_and_the_node_subnets() -> None:
    run = run_program(ROOT / "infra", project="sluice", stack="staging", preview=False, config={
        "environment": "staging", "kubeconfig": "apiVersion: v1\nkind: Config\n",
        "nodeSubnetIds": json.dumps(["subnet-private-a"]),
    })
    kubeconfig = kubernetes_provider(run)["kubeconfig"]
    assert kubeconfig[SECRET_SIGNATURE] and kubeconfig["value"] == "apiVersion: v1\nkind: Config\n"
    assert [g["subnetIds"] for g in node_groups(run)] == [["subnet-private-a"]] * 2


def test_the_kubeconfig_authenticates_like_aws_eks_update_kubeconfig() -> None:
    cluster = Cluster(region="eu-west-1", name="llm-eu", kubernetes_version="1.33")
    config = json.loads(eks_kubeconfig(cluster, "https://abc.eks.amazonaws.com", "Q0E="))
    assert config["current-context"] == "llm-eu"
    assert config["users"][0]["user"]["exec"]["command"] == "aws"


@pytest.mark.parametrize(("region", "expected"), [("us-east-1", "aws"), ("us-gov-west-1", "aws-us-gov"),
                                                  ("cn-north-1", "aws-cn")])
def test_managed_policy_arns_follow_the_partition_of_the_region(region: str, expected: str) -> None:
    assert partition(region) == expected
