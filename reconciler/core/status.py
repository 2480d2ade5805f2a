"""What runs where: one row per environment and model, as values for the status reporters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from .decide import future_start_hold
from .evidence_plan import StagePlan, rollout_plan
from .repository import Repository
from .environment import Environment, ModelDeployment
from .release import Gate, Release
from .traffic import PoolDemand, pool_demand, traffic_split
from .types import format_duration, utc_text


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
    standby_until: datetime | None = None
    time_in_stage: timedelta | None = None
    next_gate: str | None = None  # what the stage still needs before the candidate moves on
    progress_deadline: timedelta | None = None  # how long after it began the stage may go without advancing
    on_progress_deadline: str | None = None  # then: "rollback" or "hold" (and page once)
    deadline_left: timedelta | None = None  # until the deadline; negative once it has passed
    evidence: tuple[StagePlan, ...] = ()  # the candidate's stages with statistical gates: requests and time needed

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model, "stable": self.stable, "candidate": self.candidate, "standby": self.standby,
            "strategy": self.strategy, "stage": self.stage, "last_stage": self.last_stage,
            "stage_started_at": self.stage_started_at.isoformat() if self.stage_started_at else None,
            "weights": self.weights, "mirror": dict([self.mirror]) if self.mirror else {},
            "pool": self.pool, "replicas": self.replicas,
            "standby_until": utc_text(self.standby_until) if self.standby_until else None,
            "time_in_stage_seconds": None if self.time_in_stage is None else int(self.time_in_stage.total_seconds()),
            "next_gate": self.next_gate,
            "progress_deadline_seconds": _seconds(self.progress_deadline),
            "deadline_left_seconds": _seconds(self.deadline_left),
            "on_progress_deadline": self.on_progress_deadline,
            "evidence": [plan.to_dict() for plan in self.evidence],
        }


def _seconds(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds())


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    cluster: str
    region: str
    protected: bool
    models: list[ModelStatus] = field(default_factory=list)
    pools: list[PoolDemand] = field(default_factory=list)


def next_gate(release: Release, stage_index: int, time_in_stage: timedelta | None) -> str:
    """What stands between the candidate and its next step, in the order `decide` checks it.

    Example: stage 2 of the default canary, 1h in -> "3h more (min 4h), then 10,000 requests and
    quality_score min_ratio_to_stable 0.98, error_rate max_increase_over_stable 0.005 -> stage 3 (25%)".
    """
    stages = release.rollout.stages
    stage = stages[min(stage_index, len(stages) - 1)]
    needs = []
    if time_in_stage is None and stage.min_duration:
        needs.append(f"at least {format_duration(stage.min_duration)}")
    elif time_in_stage is not None and time_in_stage < stage.min_duration:
        needs.append(f"{format_duration(stage.min_duration - time_in_stage)} more "
                     f"(min {format_duration(stage.min_duration)})")
    if stage.min_requests:
        needs.append(f"{stage.min_requests:,} requests")
    if stage.gates:
        needs.append(", ".join(_gate_text(g) for g in stage.gates))
    last = len(stages) - 1
    if stage_index >= last:
        then = "withdrawal (shadow only)" if stage.weight == 0 else "promotion"
    else:
        then = f"stage {stage_index + 1} ({stages[stage_index + 1].weight}%)"
    return f"{', then '.join(needs) or 'the next pass'} -> {then}"


def _gate_text(gate: Gate) -> str:
    bounds = {k: v for k, v in gate.model_dump(exclude={"metric"}).items() if v is not None}
    return f"{gate.metric} " + " ".join(f"{k} {v:g}" for k, v in bounds.items())


def repository_status(repo: Repository, now: datetime | None = None,
                      observed_rps: Mapping[tuple[str, str], float] | None = None) -> list[EnvironmentStatus]:
    """Every environment's rows; `observed_rps` ({(environment, model): candidate requests per
    second in its current stage}) plans the current stage's evidence at the observed rate."""
    out = []
    for name in sorted(repo.environments):
        env = repo.environments[name]
        rows = []
        for model in sorted(env.models):
            dep = env.models[model]
            candidate = repo.release(model, dep.candidate) if dep.candidate else None
            split = traffic_split(dep, candidate)
            in_stage = now - dep.stage_started_at if candidate and now and dep.stage_started_at else None
            future = future_start_hold(name, model, dep.stage_started_at, now) if candidate and now else None
            if future is not None:
                in_stage = None  # a clock running backwards times nothing
            needs = f"held: {future}" if future else next_gate(candidate, dep.stage, in_stage) if candidate else None
            deadline = candidate.rollout.progress_deadline_of(min(dep.stage, len(candidate.rollout.stages) - 1)) \
                if candidate else None
            rows.append(ModelStatus(
                model, dep.stable, dep.candidate, dep.standby,
                candidate.rollout.strategy if candidate else None,
                dep.stage if candidate else None,
                len(candidate.rollout.stages) - 1 if candidate else None,
                dep.stage_started_at if candidate else None,
                split.weights, split.mirror, dep.pool, dep.replicas, dep.standby_until, in_stage,
                needs, deadline, candidate.rollout.on_progress_deadline if candidate else None,
                deadline - in_stage if deadline is not None and in_stage is not None else None,
                _evidence(candidate, env, dep, (observed_rps or {}).get((name, model)))))
        out.append(EnvironmentStatus(name, env.cluster.name, env.cluster.region, env.policy.protected, rows,
                                     pool_demand(repo, env)))
    return out


def _evidence(candidate: Release | None, env: Environment, dep: ModelDeployment,
              observed: float | None) -> tuple[StagePlan, ...]:
    if candidate is None:
        return ()
    current = min(dep.stage, len(candidate.rollout.stages) - 1)
    return rollout_plan(candidate, env.metrics.queries, dep.expected_rps,
                        {current: observed} if observed is not None else None, env.evaluator)
