"""The rollout decision (pure): pointers, the candidate's release, observations and `now` in, one
decision out. No Prometheus, no clock, no git.

Releases come from the example repository (`releases/chat-assistant/1.3.0.yaml`, a canary with six
stages, four rollback triggers and a 10m dead man's switch) and variants of its rollout; observations
are written by hand with `observe()`: every catalog metric queried, a healthy candidate and stable,
both reporting 30 seconds ago, unless a row says otherwise.
"""

from __future__ import annotations

import dataclasses
import math

from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import numpy as np
import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.decide import Revert, decide, respect_revert
from reconciler.core.decision import Action, Decision
from reconciler.core.environment import DEFAULT_QUERIES, Metrics, ModelDeployment
from reconciler.core.decision_records import incident_record
from reconciler.core.judge import Verdict
from reconciler.core.observations import (LAST_SAMPLE, REQUESTS, EvidenceHistory, MetricValues, Observations,
                                          RequestHistory, VersionCounts)
from reconciler.core.release import DEFAULT_STAGES, Release, Rollout
from reconciler.core.serving_manifests import SERVING_LATENCY_BUCKETS_MS
from tests.conftest import ROOT

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
ENV, MODEL = "staging", "chat-assistant"
CAND, STABLE = (MODEL, "1.3.0"), (MODEL, "1.2.0")
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
DONE = 3 * DAY  # longer than any stage's min_duration


@cache
def _loaded() -> Any:
    result = load_repository(ROOT)
    assert not result.errors, result.errors
    return result.repository


def example() -> Release:
    release = _loaded().release(MODEL, "1.3.0")
    assert release is not None
    return release


METRICS: Metrics = _loaded().environments[ENV].metrics  # window 5m, max_staleness 2m
EXAMPLE = example()


def with_rollout(**fields: Any) -> Release:
    """The example release with another rollout plan (validated), keeping the example's triggers."""
    rollout = Rollout(**{"rollback_triggers": EXAMPLE.rollout.rollback_triggers, **fields})
    return EXAMPLE.model_copy(update={"rollout": rollout})


BLUE_GREEN = with_rollout(strategy="blue-green", stages=[
    {"weight": 0, "min_duration": "1h", "min_requests": 1000,
     "gates": [{"metric": "error_rate", "max": 0.01}, {"metric": "latency_p99_ms", "max_ratio_to_stable": 1.2}]},
    {"weight": 100, "min_duration": "2h", "gates": [{"metric": "error_rate", "max": 0.01}]},
])
SHADOW = with_rollout(strategy="shadow")  # the default (docs/formats.md): a 100% mirror stage, then the canary stages
SHADOW_ONLY = with_rollout(strategy="shadow", stages=DEFAULT_STAGES["shadow"][:1])
CANARY_DEFAULTS = with_rollout(strategy="canary")
#: The example's stages; a stage that has not advanced 6h after it began is rolled back.
DEADLINE_ROLLBACK = with_rollout(stages=EXAMPLE.rollout.stages, progress_deadline="6h", on_progress_deadline="rollback")
#: ... and stage 2 with its own deadline of 8h.
STAGE_DEADLINE = with_rollout(
    stages=[s if i != 2 else s.model_copy(update={"progress_deadline": 8 * timedelta(hours=1)})
            for i, s in enumerate(EXAMPLE.rollout.stages)], progress_deadline="6h", on_progress_deadline="rollback")


# --------------------------------------------------------------------------- observations, concisely

HEALTHY: dict[str, tuple[float, float]] = {  # metric -> (candidate, stable): every gate and trigger passes
    "latency_p99_ms": (1400, 1400),
    "ttft_p99_seconds": (0.9, 0.9),
    "error_rate": (0.004, 0.004),
    "quality_score": (0.86, 0.86),
    "safety_violation_rate": (0.002, 0.002),
    "user_satisfaction": (0.91, 0.91),
}
NO_DATA: dict[str, float | None] = dict.fromkeys(HEALTHY)  # a version whose series vanished
QUERIED = [name for name in DEFAULT_QUERIES if name not in (REQUESTS, LAST_SAMPLE)]
FRESH = timedelta(seconds=30)


def observe(candidate: dict[str, float | None] | None = None, stable: dict[str, float | None] | None = None, *,
            silent: timedelta | None = FRESH, stable_silent: timedelta | None = FRESH, served: float = 1_000_000,
            errors: dict[str, str] | None = None, error: str | None = None, last_sample_error: str | None = None,
            requests_error: str | None = None) -> Observations:
    """Healthy readings as of NOW, with overrides: a value of None drops that version's series.

    `silent` is how long ago the candidate's newest sample (and its last served window) was; None: it
    never reported. `served` is the candidate's request count, all in that last window.
    """
    values: dict[str, dict[tuple[str, str], float]] = {name: {} for name in QUERIED}
    for key, side, overrides in ((CAND, 0, candidate or {}), (STABLE, 1, stable or {})):
        for name, pair in HEALTHY.items():
            value = overrides.get(name, pair[side])
            if value is not None:
                values[name][key] = value
    last_sample = {}
    points: dict[tuple[str, str], tuple[tuple[datetime, float], ...]] = {}
    if silent is not None:
        last_sample[CAND] = NOW - silent
        points[CAND] = ((NOW - silent, served),)
    if stable_silent is not None:
        last_sample[STABLE] = NOW - stable_silent
        points[STABLE] = ((NOW - stable_silent, 20 * served),)
    errors = errors or {}
    return Observations(
        at=NOW,
        metrics={name: MetricValues(name, values[name], errors.get(name)) for name in QUERIED},
        requests=RequestHistory(points, requests_error),
        last_sample=last_sample, last_sample_error=last_sample_error, error=error, queries=len(QUERIED) + 2)


def deployment(stage: int, running: timedelta | None, **fields: Any) -> ModelDeployment:
    """chat-assistant with 1.3.0 at `stage` over stable 1.2.0, the stage begun `running` ago."""
    return ModelDeployment(stable="1.2.0", candidate="1.3.0", stage=stage, pool="a100",
                           stage_started_at=None if running is None else NOW - running, **fields)


def one(release: Release, dep: ModelDeployment, obs: Observations) -> Decision:
    decisions = decide(ENV, MODEL, dep, release, METRICS, obs, NOW)
    assert len(decisions) == 1, decisions
    return decisions[0]


# --------------------------------------------------------------------------- the decision table


def case(id_: str, dep: ModelDeployment, obs: Observations, action: Action, *, release: Release = EXAMPLE,
         says: tuple[str, ...] = (), **fields: Any) -> Any:
    """One row: the decision's action, reasons that must appear (whole), and other fields."""
    return pytest.param(release, dep, obs, action, says, fields, id=id_)


EXAMPLE_WEIGHTS = [0, 1, 5, 25, 50, 100]
ERROR_RATE_BREACH = observe({"error_rate": 0.081})

TRIGGER_AT_EVERY_STAGE = [
    case(f"an error rate over its max rolls back at stage {i} ({w}%)", deployment(i, 10 * MINUTE),
         ERROR_RATE_BREACH, Action.ROLLBACK, says=(f"error_rate 0.081 > max 0.05 over 5m at stage {i} ({w}%)",
                                                   "traffic back to stable 1.2.0"),
         stage=i, next_stage=None, weight=0, previous_weight=w)
    for i, w in enumerate(EXAMPLE_WEIGHTS)
]

TABLE = [
    # ------------------------------------------------------------------ wait, advance, hold
    case("stage 1 waits until its hour has passed", deployment(1, 30 * MINUTE), observe(), Action.WAIT,
         says=("stage 1 (1%) has run 30m of 1h",), next_stage=1, weight=1, time_in_stage=30 * MINUTE),
    case("stage 0 without checks advances at once to 1%", deployment(0, MINUTE), observe(), Action.ADVANCE,
         says=("no gates at this stage", "next: stage 1 (1%)"), next_stage=1, weight=1, previous_weight=0),
    case("stage 1 advances to 5% once its duration, requests and gates pass", deployment(1, 2 * HOUR), observe(),
         Action.ADVANCE, says=("latency_p99_ms 1,400 <= 1.2 x stable 1,400 = 1,680 over 5m",
                               "ttft_p99_seconds 0.9 <= max 1.5 over 5m", "next: stage 2 (5%)"),
         stage=1, next_stage=2, weight=5, previous_weight=1),
    case("stage 2 advances to 25%", deployment(2, 5 * HOUR), observe(), Action.ADVANCE,
         says=("quality_score 0.86 >= 0.98 x stable 0.86 = 0.8428 over 5m", "next: stage 3 (25%)"),
         next_stage=3, weight=25),
    case("stage 3 advances to 50%", deployment(3, 25 * HOUR), observe(), Action.ADVANCE,
         says=("next: stage 4 (50%)",), next_stage=4, weight=50),
    case("stage 2 holds on too few requests", deployment(2, 5 * HOUR), observe(served=3200), Action.HOLD,
         says=("v1.3.0 served 3,200 of 10,000 requests required at stage 2 (5%)",), next_stage=2, weight=5),
    case("stage 1 holds when p99 latency is over 1.2 x stable", deployment(1, 2 * HOUR),
         observe({"latency_p99_ms": 1840}), Action.HOLD,
         says=("fail: latency_p99_ms 1,840 > 1.2 x stable 1,400 = 1,680 over 5m",)),
    case("stage 2 holds when the error rate rises more than half a point over stable", deployment(2, 5 * HOUR),
         observe({"error_rate": 0.0212}), Action.HOLD,
         says=("fail: error_rate 0.0212 > stable 0.004 + 0.005 = 0.009 over 5m",)),
    case("stage 1 holds, inconclusive, when the candidate has no series for a gate", deployment(1, 2 * HOUR),
         observe({"latency_p99_ms": None}), Action.HOLD,
         says=("inconclusive: latency_p99_ms: no data from v1.3.0 over 5m",)),
    case("stage 1 holds, inconclusive, on a candidate sample older than max staleness", deployment(1, 2 * HOUR),
         observe(silent=3 * MINUTE), Action.HOLD,
         says=("inconclusive: latency_p99_ms: no data from v1.3.0 over 5m",
               "inconclusive: ttft_p99_seconds: no data from v1.3.0 over 5m")),
    case("stage 1 holds, inconclusive, when stable's samples are stale for a relative gate", deployment(1, 2 * HOUR),
         observe(stable_silent=3 * MINUTE), Action.HOLD,
         says=("inconclusive: latency_p99_ms: no data from stable v1.2.0 over 5m to compare with",)),
    case("stage 2 holds on a gate's query error and notes the unchecked trigger", deployment(2, 5 * HOUR),
         observe(errors={"quality_score": "timeout"}), Action.HOLD,
         says=("error: quality_score: query failed: timeout",
               "rollback trigger on quality_score not checked: timeout")),
    case("stage 1 holds when stage_started_at is not set", deployment(1, None), observe(), Action.HOLD,
         says=("stage_started_at is not set for chat-assistant in staging: set it to when the stage began "
               "(reconciler start does)",)),
    case("stage 2 holds when the requests query failed", deployment(2, 5 * HOUR),
         observe(requests_error="HTTP 500"), Action.HOLD, says=("requests: query failed: HTTP 500",)),
    # ------------------------------------------------------------------ rollback triggers
    *TRIGGER_AT_EVERY_STAGE,
    case("quality under its min rolls back", deployment(2, 5 * HOUR), observe({"quality_score": 0.55}),
         Action.ROLLBACK, says=("quality_score 0.55 < min 0.6 over 5m at stage 2 (5%)",)),
    case("a trigger fires before the stage's min duration has passed", deployment(3, HOUR),
         observe({"safety_violation_rate": 0.02}), Action.ROLLBACK,
         says=("safety_violation_rate 0.02 > max 0.01 over 5m at stage 3 (25%)",), time_in_stage=HOUR),
    case("an error rate exactly at the trigger's max does not roll back", deployment(1, 30 * MINUTE),
         observe({"error_rate": 0.05}), Action.WAIT),
    case("a trigger's query error is noted, not a rollback", deployment(1, 30 * MINUTE),
         observe(errors={"error_rate": "HTTP 503"}), Action.WAIT,
         says=("rollback trigger on error_rate not checked: HTTP 503",)),
    # ------------------------------------------------------------------ dead man's switch
    case("a candidate at 5% silent 25m (max silence 10m) is rolled back", deployment(2, 5 * HOUR),
         observe(NO_DATA, silent=25 * MINUTE), Action.ROLLBACK,
         says=("dead man's switch: no samples from v1.3.0 for 25m (max silence 10m) while it holds 5% of traffic",
               "traffic back to stable 1.2.0"), weight=0, next_stage=None, previous_weight=5),
    case("a candidate that never reported since its stage began 30m ago is rolled back", deployment(1, 30 * MINUTE),
         observe(NO_DATA, silent=None), Action.ROLLBACK,
         says=("dead man's switch: no samples from v1.3.0 for 30m (max silence 10m) while it holds 1% of traffic",)),
    case("a candidate silent 8m, under max silence, holds", deployment(2, 5 * HOUR),
         observe(NO_DATA, silent=8 * MINUTE), Action.HOLD),
    case("a candidate silent exactly max silence holds", deployment(2, 5 * HOUR),
         observe(NO_DATA, silent=10 * MINUTE), Action.HOLD),
    case("a stage begun 5m ago gives a silent candidate its grace", deployment(1, 5 * MINUTE),
         observe(NO_DATA, silent=None), Action.WAIT),
    case("a silent candidate at a 0% stage without mirroring is not rolled back", deployment(0, 3 * HOUR),
         observe(NO_DATA, silent=2 * HOUR), Action.HOLD, release=BLUE_GREEN,
         says=("inconclusive: error_rate: no data from v1.3.0 over 5m",)),
    case("a silent candidate in a shadow stage mirroring 100% is rolled back", deployment(0, 30 * HOUR),
         observe(NO_DATA, silent=25 * MINUTE), Action.ROLLBACK, release=SHADOW,
         says=("dead man's switch: no samples from v1.3.0 for 25m (max silence 10m) "
               "while it holds 100% mirrored traffic",)),
    case("a silent blue-green candidate serving 100% is rolled back", deployment(1, HOUR),
         observe(NO_DATA, silent=15 * MINUTE), Action.ROLLBACK, release=BLUE_GREEN,
         says=("dead man's switch: no samples from v1.3.0 for 15m (max silence 10m) while it holds 100% of traffic",),
         previous_weight=100, weight=0),
    # ------------------------------------------------------------------ fail safe: no trustworthy data
    case("Prometheus unreachable holds, even when values would breach a trigger", deployment(2, 5 * HOUR),
         observe({"error_rate": 0.5}, silent=HOUR, error="connection refused"), Action.HOLD,
         says=("Prometheus unreachable: connection refused; holding: nothing advances or rolls back on missing data",)),
    case("stale environment data holds and is no dead man's switch", deployment(2, 5 * HOUR),
         observe(NO_DATA, NO_DATA, silent=30 * MINUTE, stable_silent=15 * MINUTE), Action.HOLD,
         says=("stale data: the newest sample is 15m old (max staleness 2m); holding until Prometheus has "
               "fresh samples",)),
    case("no samples at all holds", deployment(2, 5 * HOUR), observe(NO_DATA, NO_DATA, silent=None, stable_silent=None),
         Action.HOLD, says=("stale data: no samples at all (max staleness 2m); holding until Prometheus has "
                            "fresh samples",)),
    case("a failed last_sample query holds", deployment(2, 5 * HOUR), observe(last_sample_error="timeout"),
         Action.HOLD, says=("cannot tell how fresh the data is: timeout; holding",)),
    # ------------------------------------------------------------------ progress deadline
    case("stage 2 failing a gate past its default deadline (3 x 4h) holds and pages once",
         deployment(2, 12 * HOUR + 10 * MINUTE), observe({"error_rate": 0.0212}), Action.PAGE,
         says=("stage 2 (5%) has not met its gates for 12h10m > progress deadline 12h: holding and paging on-call",
               "fail: error_rate 0.0212 > stable 0.004 + 0.005 = 0.009 over 5m"), next_stage=2, weight=5),
    case("after the page, the stage holds without paging again", deployment(2, 13 * HOUR,
         deadline_paged_at=NOW - 50 * MINUTE), observe({"error_rate": 0.0212}), Action.HOLD,
         says=("stage 2 (5%) has not met its gates for 13h > progress deadline 12h: holding; on-call was paged at "
               "2026-11-22T11:10:00Z",)),
    case("a page from before the stage began does not count", deployment(2, 13 * HOUR,
         deadline_paged_at=NOW - 14 * HOUR), observe({"error_rate": 0.0212}), Action.PAGE),
    case("too few requests past the default deadline page too", deployment(2, 13 * HOUR), observe(served=3200),
         Action.PAGE, says=("v1.3.0 served 3,200 of 10,000 requests required at stage 2 (5%)",)),
    case("an inconclusive gate past the deadline pages", deployment(1, 4 * HOUR), observe({"latency_p99_ms": None}),
         Action.PAGE, says=("stage 1 (1%) has not met its gates for 4h > progress deadline 3h: holding and paging "
                            "on-call",)),
    case("a gate failing exactly at the deadline still just holds", deployment(2, 12 * HOUR),
         observe({"error_rate": 0.0212}), Action.HOLD),
    case("with on_progress_deadline rollback, a stage stuck past its deadline rolls back", deployment(2, 6 * HOUR + 10 *
         MINUTE), observe({"error_rate": 0.0212}), Action.ROLLBACK, release=DEADLINE_ROLLBACK,
         says=("stage 2 (5%) has not met its gates for 6h10m > progress deadline 6h: rolling back",
               "fail: error_rate 0.0212 > stable 0.004 + 0.005 = 0.009 over 5m", "traffic back to stable 1.2.0"),
         next_stage=None, weight=0, previous_weight=5),
    case("a stage's own progress_deadline overrides the rollout's", deployment(2, 7 * HOUR),
         observe({"error_rate": 0.0212}), Action.HOLD, release=STAGE_DEADLINE),
    case("past the stage's own deadline it rolls back", deployment(2, 8 * HOUR + MINUTE),
         observe({"error_rate": 0.0212}), Action.ROLLBACK, release=STAGE_DEADLINE,
         says=("stage 2 (5%) has not met its gates for 8h1m > progress deadline 8h: rolling back",)),
    case("a stage that passes after its deadline still advances", deployment(2, 7 * HOUR), observe(),
         Action.ADVANCE, release=DEADLINE_ROLLBACK, next_stage=3),
    case("Prometheus unreachable past the deadline holds: no rollback on missing data", deployment(2, 7 * HOUR),
         observe(error="connection refused"), Action.HOLD, release=DEADLINE_ROLLBACK),
    case("a gate's query error past the deadline holds: no rollback on missing data", deployment(2, 7 * HOUR),
         observe(errors={"quality_score": "timeout"}), Action.HOLD, release=DEADLINE_ROLLBACK),
    case("stale data past the deadline holds", deployment(2, 7 * HOUR),
         observe(NO_DATA, NO_DATA, silent=None, stable_silent=None), Action.HOLD, release=DEADLINE_ROLLBACK),
    # ------------------------------------------------------------------ promote
    case("stage 4 (50%) promotes straight into a final 100% stage without checks", deployment(4, DONE), observe(),
         Action.PROMOTE, says=("user_satisfaction 0.91 >= 0.98 x stable 0.91 = 0.8918 over 5m",),
         stage=4, next_stage=5, weight=100, previous_weight=50, standby_until=NOW + 72 * HOUR),
    case("the default canary stages promote from 50% too", deployment(4, DONE), observe(), Action.PROMOTE,
         release=CANARY_DEFAULTS, next_stage=5, weight=100),
    case("a passing candidate at the last stage promotes", deployment(5, HOUR), observe(), Action.PROMOTE,
         says=("no gates at this stage",), next_stage=None, weight=100, previous_weight=100),
    # ------------------------------------------------------------------ blue-green
    case("blue-green waits at 0% for its hour", deployment(0, 30 * MINUTE), observe(), Action.WAIT,
         release=BLUE_GREEN, says=("stage 0 (0%) has run 30m of 1h",)),
    case("blue-green advancing from 0 to 1 is the 0/100 switch", deployment(0, 2 * HOUR), observe(), Action.ADVANCE,
         release=BLUE_GREEN, says=("error_rate 0.004 <= max 0.01 over 5m", "next: stage 1 (100%)"),
         next_stage=1, weight=100, previous_weight=0),
    case("blue-green waits at 100% for its post-promotion checks", deployment(1, HOUR), observe(), Action.WAIT,
         release=BLUE_GREEN, says=("stage 1 (100%) has run 1h of 2h",)),
    case("blue-green switches back from 100% on a failing post-promotion gate", deployment(1, 3 * HOUR),
         observe({"error_rate": 0.02}), Action.ROLLBACK, release=BLUE_GREEN,
         says=("post-promotion check failed: error_rate 0.02 > max 0.01 over 5m", "traffic back to stable 1.2.0"),
         weight=0, previous_weight=100),
    case("blue-green rolls back from 100% on a trigger (the switch back)", deployment(1, 3 * HOUR),
         ERROR_RATE_BREACH, Action.ROLLBACK, release=BLUE_GREEN,
         says=("error_rate 0.081 > max 0.05 over 5m at stage 1 (100%)",), weight=0, previous_weight=100),
    case("blue-green promotes once its post-promotion checks pass", deployment(1, 3 * HOUR), observe(),
         Action.PROMOTE, release=BLUE_GREEN, says=("error_rate 0.004 <= max 0.01 over 5m",),
         next_stage=None, weight=100, previous_weight=100, standby_until=NOW + 72 * HOUR),
    # ------------------------------------------------------------------ shadow
    case("a shadow stage waits its day", deployment(0, HOUR), observe(), Action.WAIT, release=SHADOW,
         says=("stage 0 (0%, mirroring 100%) has run 1h of 1d",)),
    case("a passing shadow stage advances into the canary stages", deployment(0, 25 * HOUR), observe(),
         Action.ADVANCE, release=SHADOW,
         says=("latency_p99_ms 1,400 <= 1.2 x stable 1,400 = 1,680 over 5m", "next: stage 1 (1%)"),
         next_stage=1, weight=1, previous_weight=0),
    case("a shadow stage holds when the candidate is slower than 1.2 x stable", deployment(0, 25 * HOUR),
         observe({"latency_p99_ms": 1840}), Action.HOLD, release=SHADOW,
         says=("fail: latency_p99_ms 1,840 > 1.2 x stable 1,400 = 1,680 over 5m",)),
    case("a trigger in a shadow stage rolls back", deployment(0, HOUR), ERROR_RATE_BREACH, Action.ROLLBACK,
         release=SHADOW, says=("error_rate 0.081 > max 0.05 over 5m at stage 0 (0%, mirroring 100%)",)),
    case("a release that ends in shadow stops once its shadow stage passes", deployment(0, 25 * HOUR), observe(),
         Action.STOP, release=SHADOW_ONLY, says=("the release ends in shadow: v1.3.0 is withdrawn",),
         next_stage=None, weight=0),
]


@pytest.mark.parametrize(("release", "dep", "obs", "action", "says", "fields"), TABLE)
def test_decision_table(release: Release, dep: ModelDeployment, obs: Observations, action: Action,
                        says: tuple[str, ...], fields: dict[str, Any]) -> None:
    decision = one(release, dep, obs)
    assert decision.action is action, decision.reasons
    for text in says:
        assert text in decision.reasons, f"{text!r} not among {decision.reasons}"
    for name, value in fields.items():
        assert getattr(decision, name) == value, name
    assert (decision.environment, decision.model, decision.candidate, decision.stable, decision.at) == \
        (ENV, MODEL, "1.3.0", "1.2.0", NOW)


def test_a_deadline_rollback_goes_through_a_revert_hold_and_a_page_does_not() -> None:
    """A person's revert holds the rollout: no advance, and no page (a person is already on it);
    a rollback on the progress deadline still happens, like any other rollback."""
    by = Revert("c" * 40, "b" * 40, "rollback", NOW - HOUR)
    stuck = observe({"error_rate": 0.0212})
    rollback = one(DEADLINE_ROLLBACK, deployment(2, 7 * HOUR), stuck)
    assert respect_revert(rollback, by) == rollback and rollback.action is Action.ROLLBACK
    page = one(EXAMPLE, deployment(2, 13 * HOUR), stuck)
    assert page.action is Action.PAGE
    held = respect_revert(page, by)
    assert held.action is Action.HOLD and held.reasons[0].startswith("held: cccccccccccc reverted")
    assert respect_revert(one(DEADLINE_ROLLBACK, deployment(2, 7 * HOUR), observe()), by).action is Action.HOLD


@pytest.mark.parametrize(("stage", "deadline"), [(0, HOUR), (1, 3 * HOUR), (2, 12 * HOUR), (3, 3 * DAY),
                                                 (4, 6 * DAY), (5, HOUR)])
def test_the_default_progress_deadline_is_three_times_min_duration_and_at_least_an_hour(
        stage: int, deadline: timedelta) -> None:
    assert EXAMPLE.rollout.progress_deadline_of(stage) == deadline


# --------------------------------------------------------------------------- whole reasons, once each


def test_a_rollback_says_what_breached_and_where_traffic_goes() -> None:
    decision = one(EXAMPLE, deployment(2, 5 * HOUR), observe({"error_rate": 0.081, "quality_score": 0.55}))
    assert decision.reasons == (
        "error_rate 0.081 > max 0.05 over 5m at stage 2 (5%)",
        "quality_score 0.55 < min 0.6 over 5m at stage 2 (5%)",
        "traffic back to stable 1.2.0",
    )
    assert [(b.metric, b.value, b.bound, b.threshold) for b in decision.breaches] == [
        ("error_rate", 0.081, "max", 0.05), ("quality_score", 0.55, "min", 0.6)]


def test_an_advance_lists_every_gate_reading_then_the_next_stage() -> None:
    decision = one(EXAMPLE, deployment(1, 2 * HOUR), observe())
    assert decision.reasons == (
        "latency_p99_ms 1,400 <= 1.2 x stable 1,400 = 1,680 over 5m",
        "ttft_p99_seconds 0.9 <= max 1.5 over 5m",
        "next: stage 2 (5%)",
    )
    assert [(g.metric, str(g.phase)) for g in decision.gates] == [("latency_p99_ms", "pass"),
                                                                    ("ttft_p99_seconds", "pass")]


def test_requests_served_before_the_stage_began_do_not_count() -> None:
    started = NOW - 5 * HOUR
    points = ((started - 10 * MINUTE, 9000.0), (started, 500.0), (started + 5 * MINUTE, 3000.0), (NOW, 200.0))
    obs = observe()
    obs = Observations(at=NOW, metrics=obs.metrics, last_sample=obs.last_sample,
                       requests=RequestHistory({CAND: points}))
    decision = one(EXAMPLE, deployment(2, 5 * HOUR), obs)
    assert decision.action is Action.HOLD
    assert decision.reasons == ("v1.3.0 served 3,200 of 10,000 requests required at stage 2 (5%)",)


def test_requests_served_recently_keep_the_dead_mans_switch_quiet() -> None:
    """The last window with requests is a sign of life, even with no fresh last_sample for the version."""
    obs = observe(silent=25 * MINUTE)
    obs = Observations(at=NOW, metrics=obs.metrics, last_sample=obs.last_sample,
                       requests=RequestHistory({CAND: ((NOW - 2 * MINUTE, 900.0),)}))
    assert one(EXAMPLE, deployment(2, 5 * HOUR), obs).action is not Action.ROLLBACK


def test_a_model_whose_stable_is_silent_too_is_held_not_rolled_back() -> None:
    """Another model still reports, but this model's stable is as silent as its candidate: the
    model's scraping (or the model) is the problem, not the candidate."""
    silent_model = observe(NO_DATA, NO_DATA, silent=25 * MINUTE, stable_silent=25 * MINUTE)
    others = dataclasses.replace(silent_model, last_sample={**silent_model.last_sample, ("other", "1.0.0"): NOW})
    decision = one(EXAMPLE, deployment(2, 5 * HOUR), others)
    assert decision.action is Action.HOLD, decision.reasons


FUTURE_START = ("stage_started_at 2026-11-22T13:00:00Z is in the future (1h after now, 2026-11-22T12:00:00Z): a clock "
                "is skewed or a hand edit is wrong; holding, never advancing, until it is fixed: set "
                "models.chat-assistant.stage_started_at in environments/staging.yaml to when the stage began")


@pytest.mark.parametrize("obs", [
    pytest.param(observe(), id="every gate passes"),
    pytest.param(observe({"quality_score": 0.7}), id="a gate fails"),
    pytest.param(observe(silent=None, stable_silent=None), id="the data is stale"),
])
def test_a_stage_that_starts_in_the_future_holds_and_says_so_first(obs: Observations) -> None:
    """A start after `now` (clock skew, a typo): never an advance, and the clock is what it leads
    with, whatever the metrics say (a trigger still rolls back: see the trigger table)."""
    decision = one(EXAMPLE, deployment(2, -HOUR), obs)
    assert decision.action is Action.HOLD
    assert decision.reasons[0] == FUTURE_START


def test_an_unchecked_trigger_holds_a_stage_that_would_advance() -> None:
    """Fail safe: a rollback trigger nobody could check never lets a rollout move on."""
    decision = one(EXAMPLE, deployment(1, 2 * HOUR), observe(errors={"error_rate": "HTTP 503"}))
    assert decision.action is Action.HOLD
    assert decision.reasons == ("rollback trigger on error_rate not checked: HTTP 503",
                                "holding until every rollback trigger can be checked")


# --------------------------------------------------------------------------- standby, no candidate, no data


def test_an_expired_standby_is_retired() -> None:
    dep = ModelDeployment(stable="1.2.0", standby="1.1.0", standby_until=NOW - MINUTE, pool="a100")
    assert decide(ENV, MODEL, dep, None, METRICS, observe(), NOW) == [Decision(
        ENV, MODEL, "1.1.0", "1.2.0", Action.RETIRE, NOW,
        reasons=("standby 1.1.0 kept until 2026-11-22T11:59:00Z: its window has ended",))]


def test_a_standby_is_retired_the_moment_its_window_ends() -> None:
    dep = ModelDeployment(stable="1.2.0", standby="1.1.0", standby_until=NOW, pool="a100")
    assert [d.action for d in decide(ENV, MODEL, dep, None, METRICS, observe(), NOW)] == [Action.RETIRE]


def test_a_standby_within_its_window_is_kept() -> None:
    dep = ModelDeployment(stable="1.2.0", standby="1.1.0", standby_until=NOW + MINUTE, pool="a100")
    assert decide(ENV, MODEL, dep, None, METRICS, observe(), NOW) == []


def test_a_standby_without_standby_until_is_never_retired() -> None:
    dep = ModelDeployment(stable="1.2.0", standby="1.1.0", pool="a100")
    assert decide(ENV, MODEL, dep, None, METRICS, observe(), NOW + 10_000 * DAY) == []


def test_a_rollout_and_a_retirement_are_decided_in_the_same_pass() -> None:
    dep = deployment(1, 30 * MINUTE, standby="1.1.0", standby_until=NOW - HOUR)
    assert [d.action for d in decide(ENV, MODEL, dep, EXAMPLE, METRICS, observe(), NOW)] == \
        [Action.WAIT, Action.RETIRE]


def test_a_deployment_without_candidate_has_no_rollout_decision() -> None:
    dep = ModelDeployment(stable="1.2.0", pool="a100")
    assert decide(ENV, MODEL, dep, EXAMPLE, METRICS, ERROR_RATE_BREACH, NOW) == []


def test_a_candidate_without_its_release_has_no_rollout_decision() -> None:
    assert decide(ENV, MODEL, deployment(2, 5 * HOUR), None, METRICS, ERROR_RATE_BREACH, NOW) == []


@pytest.mark.parametrize("release", [EXAMPLE, BLUE_GREEN, SHADOW, SHADOW_ONLY, CANARY_DEFAULTS],
                         ids=["example canary", "blue-green", "shadow", "shadow only", "default canary"])
@pytest.mark.parametrize("stage", range(7), ids=lambda s: f"stage {s}")
@pytest.mark.parametrize("running", [None, MINUTE, DONE], ids=["never started", "just started", "long done"])
def test_decide_never_raises_on_empty_observations(release: Release, stage: int, running: timedelta | None) -> None:
    decision = one(release, deployment(stage, running), Observations(at=NOW))
    assert decision.action is Action.HOLD
    assert decision.reasons[0] == ("stale data: no samples at all (max staleness 2m); holding until Prometheus "
                                   "has fresh samples")


# --------------------------------------------------------------------------- statistical gates and triggers
# docs/judgement.md: gates and triggers that state a confidence judge the counts since the stage
# began (Observations.evidence) instead of the instant readings.

STATISTICAL = with_rollout(
    stages=[{"weight": 5, "min_duration": "1h", "gates": [
                {"metric": "latency_p99_ms", "max_ratio_to_stable": 1.1, "confidence": 0.95},
                {"metric": "error_rate", "max_increase_over_stable": 0.005, "confidence": 0.95}]},
            {"weight": 25, "min_duration": "1h", "gates": [
                {"metric": "error_rate", "max_increase_over_stable": 0.005, "confidence": 0.95}]},
            {"weight": 100}],
    rollback_triggers=[*EXAMPLE.rollout.rollback_triggers,
                       {"metric": "error_rate", "max_increase_over_stable": 0.01, "confidence": 0.99},
                       {"metric": "latency_p99_ms", "max_ratio_to_stable": 1.5, "confidence": 0.99}])
#: What a Sluice serving pod's Istio latency histogram exports (core/serving_manifests.py).
LATENCY_BOUNDS = (*map(float, SERVING_LATENCY_BUCKETS_MS), math.inf)


def lognormal_shares(median_ms: float, sigma: float = 0.35) -> tuple[float, ...]:
    """Each bucket's share of requests for a log-normal latency."""
    from scipy.stats import lognorm

    cdf = [float(lognorm.cdf(le, sigma, scale=median_ms)) for le in LATENCY_BOUNDS[:-1]]
    return tuple(float(x) for x in np.diff([0.0, *cdf, 1.0]))


STABLE_LATENCY = lognormal_shares(300)  # p99 about 680 ms
SLOWER_LATENCY = lognormal_shares(357)  # 1.19x
MUCH_SLOWER = lognormal_shares(1_200)  # 4x


def histogram_counts(shape: tuple[float, ...], n: float, bounds: tuple[float, ...] = LATENCY_BOUNDS) -> VersionCounts:
    cumulative, total = [], 0.0
    for share in shape:
        total += share * n
        cumulative.append(total)
    return VersionCounts(buckets=tuple(zip(bounds, cumulative)))


def with_evidence(obs: Observations | None = None, *, requests: float = 100_000, share: float = 0.05,
                  errors: tuple[float, float] = (0.004, 0.004), latency: tuple[tuple[float, ...], tuple[float, ...]]
                  = (STABLE_LATENCY, STABLE_LATENCY), failed: dict[str, str] | None = None,
                  bounds: tuple[float, ...] = LATENCY_BOUNDS) -> Observations:
    """`obs` (healthy by default) with evidence since the stage began: `requests` for the candidate,
    stable serving the rest at `share`; `errors` and `latency` as (candidate, stable)."""
    stable_requests = requests * (1 - share) / share
    window_end = NOW - MINUTE  # one 5m window, inside any stage begun over 6 minutes ago
    failed = failed or {}

    def history(kind: str, counts: dict) -> EvidenceHistory:
        return EvidenceHistory(kind, {key: ((window_end, c),) for key, c in counts.items()}, failed.get(name))

    evidence = {}
    name = "error_rate"
    evidence[name] = history("proportion", {
        CAND: VersionCounts(trials=requests, events=errors[0] * requests),
        STABLE: VersionCounts(trials=stable_requests, events=errors[1] * stable_requests)})
    name = "latency_p99_ms"
    evidence[name] = history("histogram", {CAND: histogram_counts(latency[0], requests, bounds),
                                           STABLE: histogram_counts(latency[1], stable_requests, bounds)})
    return dataclasses.replace(obs or observe(), evidence=evidence)


def statistical(id_: str, dep: ModelDeployment, obs: Observations, action: Action, **kwargs: Any) -> Any:
    return case(id_, dep, obs, action, release=STATISTICAL, **kwargs)


STATISTICAL_TABLE = [
    statistical("gates not worse at 95% advance", deployment(0, 2 * HOUR), with_evidence(), Action.ADVANCE,
                says=("latency_p99_ms 1.00x stable (95% CI 0.97x-1.04x) <= 1.10x: not worse than stable at 95% "
                      "(100,000 vs 1,900,000 requests)", "next: stage 1 (25%)"), next_stage=1),
    statistical("buckets too coarse for the bound: the gate holds and says so",
                deployment(0, 2 * HOUR), with_evidence(latency=((0.5, 0.4, 0.08, 0.015, 0.004, 0.001, 0.0),) * 2,
                                                       bounds=(100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, math.inf)),
                Action.HOLD,
                says=("inconclusive: latency_p99_ms 1.00x stable (95% CI 0.79x-1.25x), limit 1.10x: inconclusive at 95% "
                      "(100,000 vs 1,900,000 requests); no amount of traffic can show it on these buckets: stable's "
                      "p99 lies between 400 and 800, a bucket 2.00x wide for a 1.10x limit: give the histogram finer "
                      "buckets there, loosen the limit or lower the confidence",)),
    statistical("an inconclusive gate holds and says how many more requests would settle it",
                deployment(0, 2 * HOUR), with_evidence(requests=2_000), Action.HOLD,
                says=("inconclusive: latency_p99_ms 1.00x stable (95% CI 0.87x-1.17x), limit 1.10x: inconclusive at "
                      "95% (2,000 vs 38,000 requests); about 4,400 more candidate requests would show it if v1.3.0 "
                      "matches stable",)),
    statistical("a gate worse than stable holds (the trigger's wider limit is not met)", deployment(0, 2 * HOUR),
                with_evidence(latency=(SLOWER_LATENCY, STABLE_LATENCY)), Action.HOLD,
                says=("fail: latency_p99_ms 1.20x stable (95% CI 1.15x-1.24x) > 1.10x: worse than stable at 95% "
                      "(100,000 vs 1,900,000 requests)",)),
    statistical("a gate worse than stable past the deadline pages", deployment(0, 4 * HOUR),
                with_evidence(latency=(SLOWER_LATENCY, STABLE_LATENCY)), Action.PAGE),
    *[statistical(f"an error rate worse than stable by more than 1 pp at 99% rolls back at stage {i}",
                  deployment(i, 10 * MINUTE), with_evidence(errors=(0.03, 0.004)), Action.ROLLBACK,
                  says=(f"error_rate +2.60 pp over stable (99% CI +2.34 pp to +2.87 pp) > +1.00 pp: worse than stable "
                        f"at 99% (100,000 vs 1,900,000 requests) at stage {i} ({w}%)",), next_stage=None, weight=0)
      for i, w in enumerate([5, 25, 100])],
    statistical("a latency trigger rolls back before the stage's duration", deployment(0, 10 * MINUTE),
                with_evidence(latency=(MUCH_SLOWER, STABLE_LATENCY)), Action.ROLLBACK),
    statistical("too little evidence: a +9.6 pp trigger stays quiet, the gate holds and says what it needs",
                deployment(1, 2 * HOUR),
                with_evidence(requests=50, errors=(0.1, 0.004), share=0.25), Action.HOLD,
                says=("inconclusive: error_rate +9.60 pp over stable (95% CI -3.74 pp to +30.36 pp), limit +0.50 pp: "
                      "inconclusive at 95% (50 vs 150 requests); about 6,100 more candidate requests would show it "
                      "if v1.3.0 matches stable",)),
    statistical("a global incident (both versions degraded alike) is not the candidate's: it advances",
                deployment(0, 2 * HOUR),
                with_evidence(errors=(0.04, 0.04), latency=(MUCH_SLOWER, MUCH_SLOWER)), Action.ADVANCE),
    statistical("a failed evidence query holds, never rolls back", deployment(0, 2 * HOUR),
                with_evidence(errors=(0.03, 0.004), failed={"error_rate": "timeout"}), Action.HOLD,
                says=("error: error_rate: evidence query failed: timeout",
                      "rollback trigger on error_rate not checked: error_rate: evidence query failed: timeout")),
    statistical("evidence nobody queried holds, never rolls back", deployment(0, 2 * HOUR), observe(), Action.HOLD,
                says=("error: latency_p99_ms: evidence was not queried",
                      "rollback trigger on latency_p99_ms not checked: latency_p99_ms: evidence was not queried")),
    statistical("no evidence at all for either version holds", deployment(0, 2 * HOUR),
                with_evidence(requests=0), Action.HOLD,
                says=("inconclusive: error_rate: no data yet, limit +0.50 pp: inconclusive at 95% (0 vs 0 requests); "
                      "about 9,500 more candidate requests would show it if v1.3.0 matches stable",)),
]


@pytest.mark.parametrize(("release", "dep", "obs", "action", "says", "fields"), STATISTICAL_TABLE)
def test_statistical_decision_table(release: Release, dep: ModelDeployment, obs: Observations, action: Action,
                                    says: tuple[str, ...], fields: dict[str, Any]) -> None:
    test_decision_table(release, dep, obs, action, says, fields)


def test_judgements_ride_on_the_decision_its_json_and_the_incident_record() -> None:
    rolled_back = one(STATISTICAL, deployment(0, 10 * MINUTE), with_evidence(errors=(0.03, 0.004)))
    assert rolled_back.action is Action.ROLLBACK
    worse = [j for j in rolled_back.judgements if j.verdict is Verdict.WORSE]
    assert [(j.metric, j.bound, j.limit, j.confidence) for j in worse] == [
        ("error_rate", "max_increase_over_stable", 0.01, 0.99)]
    assert worse[0].estimate == pytest.approx(0.026) and worse[0].low > 0.01
    assert rolled_back.breaches[0].message == worse[0].message
    as_json = rolled_back.to_dict()["judgements"]
    assert {"metric": "error_rate", "verdict": "worse", "confidence": 0.99, "limit": 0.01}.items() \
        <= as_json[0].items()
    record = incident_record(rolled_back, [])
    assert record["judgements"][0]["verdict"] == "worse"
    assert record["judgements"][0]["estimate"] == pytest.approx(0.026)
    assert "judgements" not in one(EXAMPLE, deployment(1, 2 * HOUR), observe()).to_dict()  # unchanged without
