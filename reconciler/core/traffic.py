"""Traffic split and GPU demand of an environment's models: the numbers `status`, the rules and
(later) the desired state all read, computed once here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from .environment import Environment, GpuPool, ModelDeployment
from .release import Release, Stage
from .repository import Repository

POINTERS = ("stable", "candidate", "standby")


@dataclass(frozen=True)
class TrafficSplit:
    """Percent of user traffic per live version (sums to 100), plus mirrored traffic for shadow stages.

    Example: stable 1.2.0, candidate 1.3.0 at a 5% stage -> weights {"1.2.0": 95, "1.3.0": 5}.
    """

    weights: dict[str, int]
    mirror: tuple[str, int] | None = None
    stage: Stage | None = None


def candidate_stage(dep: ModelDeployment, candidate: Release | None) -> Stage | None:
    if candidate is None or dep.stage >= len(candidate.rollout.stages):
        return None
    return candidate.rollout.stages[dep.stage]


def traffic_split(dep: ModelDeployment, candidate: Release | None) -> TrafficSplit:
    stage = candidate_stage(dep, candidate)
    weights = {v: 0 for v in dep.live_versions()}
    if stage is None or dep.candidate is None:
        weights[dep.stable] = 100
        return TrafficSplit(weights)
    weights[dep.candidate] = stage.weight
    weights[dep.stable] = 100 - stage.weight
    mirror = (dep.candidate, stage.mirror) if stage.mirror else None
    return TrafficSplit(weights, mirror, stage)


def live_releases(repo: Repository, model: str, dep: ModelDeployment,
                  pointers: tuple[str, ...] = POINTERS) -> list[tuple[str, Release]]:
    """(pointer, release) for each live version whose release loaded."""
    out = []
    for pointer in pointers:
        version = getattr(dep, pointer)
        release = repo.release(model, version) if version else None
        if release is not None:
            out.append((pointer, release))
    return out


@dataclass
class PoolDemand:
    """Nodes a pool needs to run every live version of its models at once."""

    pool: GpuPool
    nodes: int = 0
    needs: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.nodes <= self.pool.max_nodes


def nodes_needed(replicas: int, gpus_per_replica: int, gpus_per_node: int) -> int | None:
    """Nodes one version needs on its own; None when a replica does not fit on a node.

    Example: 3 replicas of 4 GPUs on 8-GPU nodes -> 2 replicas per node -> ceil(3 / 2) = 2 nodes.
    Shared by the `capacity` rule (from the repository) and the policy pack (from the planned objects).
    """
    if gpus_per_replica <= 0:
        return None
    per_node = gpus_per_node // gpus_per_replica
    return ceil(replicas / per_node) if per_node else None


def pool_demand(repo: Repository, env: Environment) -> list[PoolDemand]:
    """Nodes per pool for stable + candidate + standby of every model on it.

    Replicas do not share nodes across versions (a rollout may scale one down while another
    starts), so each version needs ceil(replicas / replicas_per_node) nodes of its own.
    Example: 2 replicas of 4 GPUs on 8-GPU nodes -> 1 node per version, 3 for three live versions.
    Releases whose GPU type or size does not fit the pool are skipped (gpu-placement reports them).
    """
    demand = [PoolDemand(p) for p in env.gpu_pools]
    by_name: dict[str, PoolDemand] = {}
    for entry in demand:
        by_name.setdefault(entry.pool.name, entry)  # a duplicated name is reported by gpu-pools
    for model, dep in env.models.items():
        entry = by_name.get(dep.pool)
        if entry is None:
            continue
        for pointer, release in live_releases(repo, model, dep):
            serving = release.bundle.serving
            nodes = nodes_needed(dep.replicas, serving.gpus, entry.pool.gpus_per_node)
            if serving.gpu_type != entry.pool.gpu_type or nodes is None:
                continue
            entry.nodes += nodes
            entry.needs.append(f"{model} {pointer} {release.version} ({dep.replicas} x {serving.gpus} GPUs)")
    return demand
