"""GPU capacity: every live version, at once, fits the GPU pools' maximum size.

The same node math as the `capacity` rule of `reconciler validate` (`nodes_needed`), from the
planned objects instead of the repository: each serving Deployment (one per live version) needs
ceil(replicas / (GPUs per node // GPUs per replica)) nodes of the pool its pods select, and the
pool's node group may grow to `scalingConfig.maxSize` nodes of `GPUS_PER_NODE_TAG` GPUs each.

Example: prod's a100 pool (8 GPUs per node, max 8 nodes) runs chat-assistant 1.2.0 and 1.1.0 at 4
replicas x 4 GPUs: 2 + 2 = 4 nodes, fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from collections.abc import Mapping
from typing import Iterator

from ..naming import POOL_LABEL
from ..traffic import nodes_needed
from . import Scope, policy
from .resources import (
    GPUS_PER_NODE_TAG,
    MissingProperty,
    Plan,
    PlannedResource,
    as_int,
    containers,
    get,
    gpu_limit,
    is_unknown,
    known,
    pod_spec,
    pool_of,
    typed,
)
from .results import PolicyResult, attempt, violation
from .workloads import subject

CAPACITY_FIX = ("raise max_nodes of the pool in environments/{env}.yaml to at least {nodes}, lower replicas, "
                "or retire a standby")


@dataclass
class Pool:
    resource: PlannedResource
    name: str
    max_nodes: int
    gpus_per_node: int
    nodes: int = 0
    needs: list[str] = field(default_factory=list)


def pool_name(group: PlannedResource) -> str | None:
    """The GPU pool a node group provides (its sluice.dev/gpu-pool node label), None for other groups."""
    labels = known(group.props, "labels")
    name = labels.get(POOL_LABEL) if isinstance(labels, Mapping) else None
    return name if isinstance(name, str) and name and not is_unknown(name) else None


def _pool(group: PlannedResource, name: str) -> Pool:
    """A GPU node group's maximum size and GPUs per node."""
    max_nodes = as_int(get(group.props, "scalingConfig", "maxSize"), "scalingConfig.maxSize")
    tags = typed(get(group.props, "tags", default={}), Mapping, "tags", "a map of tags")
    if GPUS_PER_NODE_TAG not in tags:
        raise MissingProperty(f"tags[{GPUS_PER_NODE_TAG}]", "the number of GPUs per node")
    gpus = as_int(get(tags, GPUS_PER_NODE_TAG, path="tags"), f"tags[{GPUS_PER_NODE_TAG}]")
    return Pool(group, name, max_nodes, gpus)


def _demand(deployment: PlannedResource) -> tuple[str, int, int]:
    """(pool, replicas, GPUs per replica) of a serving Deployment."""
    spec, path = pod_spec(deployment)
    pool = pool_of(spec, path)
    replicas = as_int(get(deployment.props, "spec", "replicas", default=1), "spec.replicas")
    gpus = sum(gpu_limit(c, here) for c, here in containers(spec, path, init=False))
    init = [gpu_limit(c, here) for c, here in containers(spec, path) if ".initContainers[" in here]
    return pool, replicas, max([gpus, *init])


@policy("gpu-capacity",
        "The GPU pools can run every live version (stable, candidate, standby) at once at their maximum size",
        mandatory=True, scope=Scope.STACK)
def gpu_capacity(plan: Plan) -> Iterator[PolicyResult]:
    env = plan.environment
    pools: dict[str, Pool] = {}
    undecided: set[str] = set()  # pools whose size is unknown or broken: reported once, on the node group
    for group in plan.node_groups():
        name = pool_name(group)
        if name is None:
            continue
        pool, gaps = attempt(f"{env}: {group.label}", "the program tags GPU node groups with their GPUs per node",
                             group.urn, partial(_pool, group, name))
        yield from gaps
        if pool is None:
            undecided.add(name)
        else:
            pools.setdefault(pool.name, pool)
    for deployment in sorted(plan.serving_deployments(), key=lambda d: d.label):  # stable messages
        who = subject(deployment, env)
        demand, gaps = attempt(who, "serving pods select a pool and set GPU limits (see gpu-scheduling)",
                               deployment.urn, partial(_demand, deployment))
        if demand is None:
            # gpu-scheduling reports missing pools and limits; only unknowns are worth repeating here
            yield from (g for g in gaps if g.unknown)
            continue
        name, replicas, gpus = demand
        if gpus <= 0:
            continue  # no GPU limits: reported by gpu-scheduling
        if name in undecided:
            continue
        pool = pools.get(name)
        if pool is None:
            names = ", ".join(sorted(pools)) or "none"
            yield violation(who, f"its pods select GPU pool {name}, which no node group in this stack provides "
                            f"(pools: {names})", "serve the model from one of the environment's gpu_pools",
                            deployment.urn)
            continue
        nodes = nodes_needed(replicas, gpus, pool.gpus_per_node)
        if nodes is None:
            yield violation(who, f"a replica needs {gpus} GPUs, but pool {name} nodes have {pool.gpus_per_node}",
                            "choose a pool with larger nodes or shard the model over fewer GPUs", deployment.urn)
            continue
        pool.nodes += nodes
        pool.needs.append(f"{who.split(': ', 1)[1]}: {replicas} x {gpus} GPUs = {nodes} node{'s' * (nodes != 1)}")
    for pool in pools.values():
        if pool.nodes > pool.max_nodes:
            yield violation(f"{env}: GPU pool {pool.name}",
                            f"needs {pool.nodes} nodes of {pool.gpus_per_node} GPUs to run every live version at "
                            f"once ({'; '.join(pool.needs)}), but its node group may grow to {pool.max_nodes}",
                            CAPACITY_FIX.format(env=env, nodes=pool.nodes), pool.resource.urn)
