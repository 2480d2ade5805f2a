"""core/evidence_plan: which metrics a stage judges, the candidate's share and rate per stage, and
the observed rate from the requests history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.environment import DEFAULT_QUERIES, Evaluator
from reconciler.core.evidence_plan import (
    candidate_share,
    judged_metrics,
    observed_rate,
    rollout_plan,
    stage_evidence,
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


# --- the online evaluator's counts: paired samples at the sample rate --------------------------------

EVALUATOR = Evaluator(image="r.example/sluice@sha256:" + "a" * 64, sample_percent=5)
REFUSALS = Gate(metric="refusal_rate", max_increase_over_stable=0.01, confidence=0.95)
SAMPLED = Release.model_construct(rollout=Rollout(strategy="canary", stages=[
    Stage(weight=1, gates=[REFUSALS]), Stage(weight=25, gates=[REFUSALS, LATENCY]),
    Stage(weight=0, mirror=50, gates=[REFUSALS]), Stage(weight=100)]))
PAIRED = requests_needed("max_increase_over_stable", 0.01, 0.95, "proportion", None, None, 0.5)


@pytest.mark.parametrize("stage", [Stage(weight=1), Stage(weight=25), Stage(weight=0, mirror=100)])
def test_the_evaluators_counts_give_both_versions_equal_trials_whatever_the_weight(stage: Stage) -> None:
    assert DEFAULT_QUERIES["refusal_rate"].evidence.sampled  # type: ignore[union-attr]
    assert candidate_share(stage, DEFAULT_QUERIES["refusal_rate"].evidence) == 0.5
    assert candidate_share(stage, DEFAULT_QUERIES["error_rate"].evidence) == candidate_share(stage)


def test_the_evaluators_counts_are_planned_at_the_sample_rate_capped_at_the_candidates_share() -> None:
    small, large, shadow = rollout_plan(SAMPLED, DEFAULT_QUERIES, expected_rps=20, evaluator=EVALUATOR)
    [one_percent] = small.gates
    refusals, latency = large.gates
    assert (one_percent.requests, one_percent.sampled) == (PAIRED, True)
    assert one_percent.rate == pytest.approx(0.2)  # 20 req/s x 1% (sample_percent 5, capped at the weight)
    assert refusals.rate == pytest.approx(1.0)  # 20 x 5%, not the candidate's 25%
    assert shadow.gates[0].rate == pytest.approx(1.0)
    assert refusals.duration == timedelta(seconds=round(PAIRED / 1.0))
    assert refusals.text() == (f"refusal_rate max_increase_over_stable 0.01 at 95%: {PAIRED:,} samples (each to both "
                               f"versions), {refusals.time_text} at 1.00 samples/s (declared)")
    assert refusals.to_dict()["sampled"] is True
    # the Istio-measured gate of the same stage keeps the candidate's share and rate
    assert (latency.sampled, latency.rate) == (False, pytest.approx(5.0))
    assert latency.requests == requests_needed("max_ratio_to_stable", 1.1, 0.95, "histogram", 0.99, None, 0.25)
    assert "candidate requests" in latency.text() and "req/s" in latency.text()


def test_the_observed_sample_rate_takes_the_evaluators_calls_out_of_the_candidates_requests() -> None:
    """Istio counts the evaluator's calls among the candidate's requests: at a 1% canary sampled at
    1%, 2 observed req/s are 1 user and 1 evaluator request per second."""
    [refusals] = stage_evidence(SAMPLED, 0, DEFAULT_QUERIES, None, observed_rps=2.0, evaluator=EVALUATOR)
    assert (refusals.rate, refusals.rate_source) == (pytest.approx(1.0), "observed")
    [refusals, latency] = stage_evidence(SAMPLED, 1, DEFAULT_QUERIES, None, observed_rps=6.0, evaluator=EVALUATOR)
    assert refusals.rate == pytest.approx(1.0)  # 6 = (25% + 5%) of 20 req/s
    assert latency.rate == 6.0


def test_without_an_evaluator_the_evaluators_counts_have_no_rate() -> None:
    [refusals] = rollout_plan(SAMPLED, DEFAULT_QUERIES, expected_rps=20)[0].gates
    assert (refusals.requests, refusals.rate, refusals.duration) == (PAIRED, None, None)
    assert "add an `evaluator` block" in refusals.text()
