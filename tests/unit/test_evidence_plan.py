"""core/evidence_plan: which metrics a stage judges, the candidate's share and rate per stage, and
the observed rate from the requests history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.environment import DEFAULT_QUERIES
from reconciler.core.evidence_plan import (
    candidate_share,
    judged_metrics,
    observed_rate,
    rollout_plan,
)
from reconciler.core.judge import requests_needed
from reconciler.core.observations import RequestHistory
from reconciler.core.release import Gate, Release, RollbackTrigger, Rollout, Stage

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
LATENCY = Gate(metric="latency_p99_ms", max_ratio_to_stable=1.1, confidence=0.95)
ROLLOUT = Rollout(strategy="shadow", stages=[
    Stage(weight=0, mirror=100, min_duration="1h", gates=[LATENCY, Gate(metric="error_rate", max=0.01)]),
    Stage(weight=5, min_duration="1h", gates=[LATENCY]),
    Stage(weight=100)],
    rollback_triggers=[RollbackTrigger(metric="error_rate", max_increase_over_stable=0.005, confidence=0.99),
                       RollbackTrigger(metric="quality_score", min=0.5)])


def test_a_stage_judges_its_statistical_gates_and_every_statistical_trigger() -> None:
    rel = Release.model_construct(rollout=ROLLOUT)
    assert judged_metrics(rel, 0) == {"latency_p99_ms", "error_rate"}
    assert judged_metrics(rel, 2) == {"error_rate"}  # the last stage: triggers only


@pytest.mark.parametrize(("stage", "share"), [(Stage(weight=5), 0.05), (Stage(weight=0, mirror=100), 0.5),
                                              (Stage(weight=0, mirror=25), 0.2)])
def test_the_candidate_share_is_as_decide_weighs_it(stage: Stage, share: float) -> None:
    assert candidate_share(stage) == pytest.approx(share)


def test_a_shadow_stage_plans_at_the_mirrored_rate_and_a_share_of_one_half() -> None:
    rel = Release.model_construct(rollout=ROLLOUT)
    shadow, canary = rollout_plan(rel, DEFAULT_QUERIES, expected_rps=10)
    [gate] = shadow.gates
    assert gate.requests == requests_needed("max_ratio_to_stable", 1.1, 0.95, "histogram", 0.99, None, 0.5)
    assert (gate.rate, gate.rate_source) == (10, "declared")  # every request mirrored
    assert gate.duration == timedelta(seconds=round(gate.requests / 10))
    assert canary.gates[0].rate == pytest.approx(0.5)
    assert (shadow.stage, canary.stage, shadow.deadline) == (0, 1, timedelta(hours=3))


def test_the_observed_rate_counts_complete_windows_since_the_stage_began() -> None:
    window = timedelta(minutes=5)
    history = RequestHistory({("m", "1.0.0"): ((T0, 500.0), (T0 + window, 60.0), (T0 + 2 * window, 90.0))})
    assert observed_rate(history, ("m", "1.0.0"), T0 - timedelta(minutes=1), window) == pytest.approx(150 / 600)
    assert observed_rate(history, ("m", "1.0.0"), T0 + 2 * window, window) is None
