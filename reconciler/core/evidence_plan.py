"""Sample-size planning: how many candidate requests a stage's statistical gates need, and how long
that takes at the traffic the candidate gets.

One pure module serves `status`, `plan`, validate's `evidence-in-time` rule and decide's "about N
more" so they never disagree. The requests come from `judge.requests_needed` (the same confidence
sequences that decide uses, solved for a candidate equal to stable); the time is requests / rate,
where the rate is the candidate's observed requests per second when known, else the model's
declared `expected_rps` x the stage's share of traffic.

Example: a 5% stage gated on `latency_p99_ms max_ratio_to_stable 1.1 confidence 0.95` that needs
9,800 candidate requests, with `expected_rps: 20` -> 1 request/s to the candidate -> 2h43m.

Evidence the online evaluator counts (`evidence.sampled`) is planned differently: both versions
answer the same samples, so they have equal trials (a share of 1/2 whatever the weight), and the
samples arrive at the evaluator's sample percent of the model's traffic (`Evaluator.percent_at`),
not at the candidate's weight. Example: a 25% canary, `sample_percent: 5`, `expected_rps: 20` ->
1 sample/s to each version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Mapping

from .environment import Evaluator, Evidence, MetricQuery
from .observations import RequestHistory, VersionKey
from .judge import requests_needed
from .release import Gate, Release, Stage, statistical_bound
from .types import format_duration

OBSERVED, DECLARED = "observed", "declared"


def judged_metrics(release: Release, stage_index: int) -> set[str]:
    """The metrics a stage judges on evidence: its statistical gates and every statistical trigger."""
    stages = release.rollout.stages
    stage = stages[min(stage_index, len(stages) - 1)]
    return ({g.metric for g in stage.gates if g.statistical}
            | {t.metric for t in release.rollout.rollback_triggers if t.statistical})


def observed_rate(history: RequestHistory, key: VersionKey, start: datetime, window: timedelta) -> float | None:
    """Requests per second in the complete windows since `start` (RequestHistory.served_since's),
    None before the first one ends.

    Example: 5m windows since the stage began holding 60 and 90 requests -> 150 / 600 s = 0.25 req/s.
    """
    windows = sum(1 for end, _ in history.points.get(key, ()) if end - window >= start)
    return history.served_since(key, start, window) / (windows * window.total_seconds()) if windows else None


def candidate_share(stage: Stage, evidence: Evidence | None = None) -> float:
    """The candidate's share of the trials both versions get: its weight; in a shadow stage, the
    mirrored copies beside stable's 100% (mirror 100 -> 0.5), as decide weighs it; for the online
    evaluator's counts (`evidence.sampled`) one half, since both versions answer every sample."""
    if evidence is not None and evidence.sampled:
        return 0.5
    return stage.weight / 100 if stage.weight else stage.mirror / (100 + stage.mirror)


def candidate_traffic(stage: Stage) -> float:
    """The candidate's requests per request the model serves: its weight, or the mirrored share."""
    return stage.candidate_percent / 100


def sampled_traffic(stage: Stage, evaluator: Evaluator | None) -> float | None:
    """The evaluator's samples per request the model serves at a stage (each sample goes to both
    versions); None without an evaluator, which then counts nothing."""
    return None if evaluator is None else evaluator.percent_at(stage.candidate_percent) / 100


def trial_rate(stage: Stage, evidence: Evidence | None, evaluator: Evaluator | None, expected_rps: float | None,
               observed_rps: float | None) -> tuple[float | None, str | None]:
    """The candidate's trials per second for one gate's evidence, and where the rate comes from.

    Its requests: the observed rate if known, else `expected_rps` x its share. The evaluator's
    samples (`evidence.sampled`): the model's traffic x the sampled share, the model's traffic
    estimated from the candidate's observed requests, which Istio counts with the evaluator's
    calls among them (a 1% canary sampled at 1% observed at 2 req/s -> 1 sample/s).
    """
    if evidence is None or not evidence.sampled:
        if observed_rps is not None:
            return observed_rps, OBSERVED
        return (expected_rps * candidate_traffic(stage), DECLARED) if expected_rps is not None else (None, None)
    sampled = sampled_traffic(stage, evaluator)
    if sampled is None:
        return None, None
    if observed_rps is not None:
        return observed_rps * sampled / (candidate_traffic(stage) + sampled), OBSERVED
    return (expected_rps * sampled, DECLARED) if expected_rps is not None else (None, None)


@dataclass(frozen=True)
class GateEvidence:
    """One statistical gate: the candidate requests it needs, at what rate, and so how long."""

    gate: int  # index in the stage's gates
    metric: str
    bound: str
    limit: float
    confidence: float
    requests: int | None  # None: unreachable, or the metric has no evidence query
    rate: float | None = None  # candidate requests (or samples, when sampled) per second
    rate_source: str | None = None  # OBSERVED | DECLARED
    sampled: bool = False  # the online evaluator's samples, each answered by both versions

    @property
    def unit(self) -> str:
        """What `requests` counts: "candidate requests", or "samples" answered by both versions."""
        return "samples" if self.sampled else "candidate requests"

    @property
    def duration(self) -> timedelta | None:
        if self.requests is None or not self.rate:
            return None
        return timedelta(seconds=round(self.requests / self.rate))

    @property
    def time_text(self) -> str:
        """The duration in whole minutes ("2h43m"), "" when unknown."""
        return "" if self.duration is None else format_duration(_minutes(self.duration))

    def text(self) -> str:
        """"latency_p99_ms max_ratio_to_stable 1.1 at 95%: 9,800 candidate requests, 2h43m at 1.00 req/s (declared)";
        evaluator counts: "refusal_rate ...: 10,100 samples (each to both versions), 2h48m at 1.00 samples/s (declared)"."""
        head = f"{self.metric} {self.bound} {self.limit:g} at {self.confidence:.0%}"
        if self.requests is None:
            return f"{head}: cannot be established at this share of traffic (loosen the effect or the confidence)"
        needs = f"{head}: {self.requests:,} {self.unit}" + (" (each to both versions)" if self.sampled else "")
        if self.duration is None:
            return f"{needs} (no {'sample' if self.sampled else 'request'} rate observed or declared: " + \
                ("add an `evaluator` block to the environment and set models.<model>.expected_rps)" if self.sampled
                 else "set models.<model>.expected_rps)")
        return f"{needs}, {self.time_text} at {self.rate_text} ({self.rate_source})"

    @property
    def rate_text(self) -> str:
        """"1.00 req/s" (candidate requests) or "1.00 samples/s" (the evaluator's), "" when unknown."""
        return "" if self.rate is None else f"{self.rate:.2f} {'samples/s' if self.sampled else 'req/s'}"

    def to_dict(self) -> dict[str, object]:
        duration = self.duration
        return {"metric": self.metric, "bound": self.bound, "limit": self.limit, "confidence": self.confidence,
                "requests_needed": self.requests, "candidate_rps": self.rate, "rate_source": self.rate_source,
                "sampled": self.sampled, "seconds_needed": None if duration is None else int(duration.total_seconds())}


def _minutes(span: timedelta) -> timedelta:
    """Planning is in minutes (at least one): seconds would claim a precision the rate lacks."""
    return timedelta(minutes=max(1, round(span.total_seconds() / 60)))


def gate_evidence(index: int, gate: Gate, stage: Stage, catalog: Mapping[str, MetricQuery],
                  evaluator: Evaluator | None, expected_rps: float | None,
                  observed_rps: float | None = None) -> GateEvidence | None:
    """The plan of one gate, or None when the gate is not statistical."""
    if not gate.statistical:
        return None
    bound, limit = statistical_bound(gate)
    spec = catalog.get(gate.metric)
    evidence = spec.evidence if spec else None
    needed = None if evidence is None else requests_needed(
        bound, limit, gate.confidence, evidence.kind, evidence.quantile, None, candidate_share(stage, evidence))
    rate, source = trial_rate(stage, evidence, evaluator, expected_rps, observed_rps)
    return GateEvidence(index, gate.metric, bound, limit, gate.confidence, needed, rate, source,
                        sampled=evidence is not None and evidence.sampled)


def stage_evidence(release: Release, stage_index: int, catalog: Mapping[str, MetricQuery],
                   expected_rps: float | None, observed_rps: float | None = None,
                   evaluator: Evaluator | None = None) -> tuple[GateEvidence, ...]:
    """Every statistical gate of one stage, planned at the observed candidate rate if given, else at
    the declared one (`expected_rps` x the stage's share; the evaluator's sampled share for its counts)."""
    stage = release.rollout.stages[stage_index]
    planned = (gate_evidence(i, g, stage, catalog, evaluator, expected_rps, observed_rps)
               for i, g in enumerate(stage.gates))
    return tuple(p for p in planned if p is not None)


@dataclass(frozen=True)
class StagePlan:
    """A stage with statistical gates: what each needs, against the stage's progress deadline."""

    stage: int
    weight: int
    deadline: timedelta
    gates: tuple[GateEvidence, ...]

    @property
    def late(self) -> tuple[GateEvidence, ...]:
        """The gates that cannot be established before the deadline at the planned rate."""
        return tuple(g for g in self.gates if g.rate and (g.duration is None or g.duration > self.deadline))

    def text(self) -> str:
        return f"stage {self.stage} ({self.weight}%): " + "; ".join(g.text() for g in self.gates)

    def to_dict(self) -> dict[str, object]:
        return {"stage": self.stage, "weight": self.weight, "progress_deadline_seconds": int(self.deadline.total_seconds()),
                "gates": [g.to_dict() for g in self.gates]}


def rollout_plan(release: Release, catalog: Mapping[str, MetricQuery], expected_rps: float | None,
                 observed: Mapping[int, float] | None = None,
                 evaluator: Evaluator | None = None) -> tuple[StagePlan, ...]:
    """Every stage with statistical gates; `observed` gives a candidate rate per stage index (the
    current stage's, from the requests history), other stages are planned at the declared rate;
    `evaluator` (the environment's) samples the gates on its own counts."""
    plans = []
    for index, stage in enumerate(release.rollout.stages):
        gates = stage_evidence(release, index, catalog, expected_rps, (observed or {}).get(index), evaluator)
        if gates:
            plans.append(StagePlan(index, stage.weight, release.rollout.progress_deadline_of(index), gates))
    return tuple(plans)
