"""decide on the online evaluator's series (docs/formats.md#evaluator): a shadow stage gated on the
candidate-only `shadow_*` comparisons, and a canary stage gated on the safety violation rate with a
confidence, judged on the evaluator's flagged / judged counts of both versions."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from reconciler.core.decide import _about
from reconciler.core.decision import Action, Decision
from reconciler.core.judge import requests_needed
from reconciler.core.observations import EvidenceHistory, MetricValues, Observations, VersionCounts
from tests.unit.test_decide import CAND, HOUR, MINUTE, NOW, STABLE, deployment, observe, one, with_rollout

SHADOW = with_rollout(strategy="shadow", rollback_triggers=[{"metric": "shadow_divergence_rate", "max": 0.5}], stages=[
    {"weight": 0, "mirror": 100, "min_duration": "1h",
     "gates": [{"metric": "shadow_divergence_rate", "max": 0.2}, {"metric": "shadow_win_rate", "min": 0.4}]},
    {"weight": 5}, {"weight": 100}])
SAFE_CANARY = with_rollout(rollback_triggers=[], stages=[
    {"weight": 0},
    {"weight": 5, "min_duration": "1h",
     "gates": [{"metric": "safety_violation_rate", "max_increase_over_stable": 0.005, "confidence": 0.95}]},
    {"weight": 100}])


def shadow_readings(**candidate: float) -> Observations:
    """Healthy observations plus the evaluator's comparisons, which exist for the candidate only."""
    obs = observe()
    metrics = dict(obs.metrics)
    for name, value in candidate.items():
        metrics[name] = MetricValues(name, {CAND: value}, None)
    return dataclasses.replace(obs, metrics=metrics)


def flagged(candidate: tuple[float, float], stable: tuple[float, float]) -> Observations:
    """The evaluator's (flagged, judged) counts per version since the stage began: each sample is
    answered by both versions and both answers are classified, so the trials match."""
    counts = {CAND: VersionCounts(trials=candidate[1], events=candidate[0]),
              STABLE: VersionCounts(trials=stable[1], events=stable[0])}
    history = EvidenceHistory("proportion", {key: ((NOW - MINUTE, c),) for key, c in counts.items()}, None)
    return dataclasses.replace(observe(), evidence={"safety_violation_rate": history})


def reasons(decision: Decision) -> str:
    return " | ".join(decision.reasons)


def test_a_faithful_shadow_candidate_advances_on_its_own_comparisons_without_a_stable_series() -> None:
    decision = one(SHADOW, deployment(0, 2 * HOUR), shadow_readings(shadow_divergence_rate=0.08, shadow_win_rate=0.52))
    assert decision.action is Action.ADVANCE, reasons(decision)
    assert "shadow_divergence_rate 0.08 <= max 0.2 over 5m" in decision.reasons
    assert "shadow_win_rate 0.52 >= min 0.4 over 5m" in decision.reasons
    assert decision.next_stage == 1


def test_a_diverging_shadow_candidate_is_held_with_the_reading() -> None:
    decision = one(SHADOW, deployment(0, 2 * HOUR), shadow_readings(shadow_divergence_rate=0.35, shadow_win_rate=0.5))
    assert decision.action is Action.HOLD
    assert "fail: shadow_divergence_rate 0.35 > max 0.2 over 5m" in decision.reasons


def test_a_shadow_candidate_diverging_past_its_trigger_is_rolled_back() -> None:
    decision = one(SHADOW, deployment(0, 10 * MINUTE), shadow_readings(shadow_divergence_rate=0.7, shadow_win_rate=0.5))
    assert decision.action is Action.ROLLBACK
    assert "shadow_divergence_rate 0.7 > max 0.5 over 5m at stage 0 (0%, mirroring 100%)" in decision.reasons


def test_no_comparisons_from_the_evaluator_hold_and_never_advance() -> None:
    decision = one(SHADOW, deployment(0, 2 * HOUR), shadow_readings())
    assert decision.action is Action.HOLD
    assert "inconclusive: shadow_divergence_rate: no data from v1.3.0 over 5m" in decision.reasons


@pytest.mark.parametrize(("candidate", "action", "says"), [
    ((40, 20_000), Action.PROMOTE, "safety_violation_rate +0.00 pp over stable (95% CI -0.25 pp to +0.24 pp) <= "
                                   "+0.50 pp: not worse than stable at 95% (20,000 vs 20,000 requests)"),
    ((400, 20_000), Action.HOLD, "fail: safety_violation_rate +1.80 pp over stable"),
], ids=["as-safe-as-stable", "more-violations"])
def test_a_canary_gate_on_the_safety_violation_rate_is_judged_on_the_evaluators_counts(
        candidate: tuple[float, float], action: Action, says: str) -> None:
    decision = one(SAFE_CANARY, deployment(1, 2 * HOUR), flagged(candidate, (40, 20_000)))
    assert decision.action is action, reasons(decision)
    assert says in reasons(decision)
    [judgement] = decision.judgements
    assert (judgement.candidate_trials, judgement.stable_trials) == (20_000, 20_000)


def test_an_inconclusive_gate_on_the_evaluators_counts_plans_samples_answered_by_both_versions() -> None:
    """The evaluator sends every sample to both versions: the plan gives them equal trials (a share
    of 1/2), not the 5% canary's 1:19, and counts samples, not candidate requests."""
    decision = one(SAFE_CANARY, deployment(1, 2 * HOUR), flagged((10, 1_000), (10, 1_000)))
    assert decision.action is Action.HOLD, reasons(decision)
    needed = requests_needed("max_increase_over_stable", 0.005, 0.95, "proportion", None,
                             VersionCounts(trials=1_000, events=10), 0.5)
    assert f"; about {_about(needed - 1_000)} more samples (each to both versions) would show it if v1.3.0 " \
           "matches stable" in reasons(decision)


def test_a_stage_shorter_than_its_duration_waits_whatever_the_evaluator_says() -> None:
    decision = one(SHADOW, deployment(0, timedelta(minutes=30)),
                   shadow_readings(shadow_divergence_rate=0.3, shadow_win_rate=0.5))
    assert decision.action is Action.WAIT
