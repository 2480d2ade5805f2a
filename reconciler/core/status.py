"""What runs where: one row per environment and model, as values for the status reporters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .repository import Repository
from .traffic import PoolDemand, pool_demand, traffic_split


@dataclass(frozen=True)
class ModelStatus:
    model: str
    stable: str
    candidate: str | None
    standby: str | None
    strategy: str | None
    stage: int | None
    last_stage: int | None  # the candidate's final stage index (its promotion)
    stage_started_at: datetime | None
    weights: dict[str, int]
    mirror: tuple[str, int] | None
    pool: str
    replicas: int

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "stable": self.stable, "candidate": self.candidate, "standby": self.standby,
            "strategy": self.strategy, "stage": self.stage, "last_stage": self.last_stage,
            "stage_started_at": self.stage_started_at.isoformat() if self.stage_started_at else None,
            "weights": self.weights, "mirror": dict([self.mirror]) if self.mirror else {},
            "pool": self.pool, "replicas": self.replicas,
        }


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    cluster: str
    region: str
    protected: bool
    models: list[ModelStatus] = field(default_factory=list)
    pools: list[PoolDemand] = field(default_factory=list)


def repository_status(repo: Repository) -> list[EnvironmentStatus]:
    out = []
    for name in sorted(repo.environments):
        env = repo.environments[name]
        rows = []
        for model in sorted(env.models):
            dep = env.models[model]
            candidate = repo.release(model, dep.candidate) if dep.candidate else None
            split = traffic_split(dep, candidate)
            rows.append(ModelStatus(
                model, dep.stable, dep.candidate, dep.standby,
                candidate.rollout.strategy if candidate else None,
                dep.stage if candidate else None,
                len(candidate.rollout.stages) - 1 if candidate else None,
                dep.stage_started_at if candidate else None,
                split.weights, split.mirror, dep.pool, dep.replicas))
        out.append(EnvironmentStatus(name, env.cluster.name, env.cluster.region, env.policy.protected, rows,
                                     pool_demand(repo, env)))
    return out
