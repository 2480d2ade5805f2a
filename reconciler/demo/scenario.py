"""The demo's rollout: what happens when, and the metric history Prometheus holds.

chat-assistant 1.3.0 goes out as a canary in prod over stable 1.2.0, with the example release's
own plan (stage 1: 1% for 1h, gates latency_p99_ms <= 1.2 x stable and ttft_p99_seconds <= 1.5;
stage 2: 5% for 4h, gates quality_score and error_rate; rollback triggers on error_rate > 0.05,
latency_p99_ms > 4000, safety_violation_rate > 0.01, quality_score < 0.6). A reconcile pass runs
every 30 minutes, as a cron job would. 100 requests per second reach the model; a commit's new
weight takes effect a minute after it (CI applying it).

    09:00  reconciler start                        stage 0 (0%)
    09:05  pass: advance to stage 1 (1%)            stage 0 has no gates
    09:35  pass: wait                               30m of 1h
    10:05  pass: advance to stage 2 (5%)            1h done, 3,500 requests, both gates pass
    10:35  pass: wait                               30m of 4h
    11:05  pass: wait                               1h of 4h
    11:10  the candidate's 5xx share starts climbing: 0.3% -> 9% by 11:30, p99 latency with it
    11:35  pass: rollback                           error_rate 0.09 > max 0.05 (trigger)

The candidate is a little slower than stable throughout (p99 1,100 ms against 1,000: within the
stage 1 gate's 1,200), so the latency chart shows a relative limit that holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .prometheus import Traffic, utc

ENVIRONMENT = "prod"
MODEL = "chat-assistant"
STABLE = "1.2.0"
CANDIDATE = "1.3.0"
T0 = utc("2026-11-20T09:00:00")
TOTAL_RPS = 100.0
CI_DELAY = timedelta(minutes=1)


def at(minutes: float) -> datetime:
    """T0 + minutes: the scenario's clock."""
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Pass:
    at: datetime
    expect: str  # the action the scenario is built for: the demo stops if the pass decides otherwise


START = T0
PASSES = (Pass(at(5), "advance"), Pass(at(35), "wait"), Pass(at(65), "advance"), Pass(at(95), "wait"),
          Pass(at(125), "wait"), Pass(at(155), "rollback"))
#: The candidate's share of traffic from each instant on (a minute after the commit that set it).
WEIGHTS = {at(5) + CI_DELAY: 0.01, at(65) + CI_DELAY: 0.05, at(155) + CI_DELAY: 0.0}
HISTORY = (at(-30), at(190))
BREACH = (at(130), at(150))  # the candidate's error ratio climbs between these instants

STABLE_READINGS = {"error_ratio": 0.003, "latency_p99_ms": 1000.0, "ttft_p99_seconds": 0.8,
                   "gauges": {"sluice_eval_quality_score": 0.86, "sluice_eval_safety_violation_rate": 0.002,
                              "sluice_eval_user_satisfaction": 0.91}}


def share(when: datetime) -> float:
    current = 0.0
    for since, weight in sorted(WEIGHTS.items()):
        if when >= since:
            current = weight
    return current


def _climbing(before: float, after: float):
    """`before` until BREACH starts, then linearly to `after` when it ends, then `after`."""
    first, last = BREACH

    def value(when: datetime) -> float:
        progress = min(max((when - first) / (last - first), 0.0), 1.0)
        return before + (after - before) * progress
    return value


def history() -> list[Traffic]:
    """Both versions' series: stable all along, the candidate while it holds traffic."""
    candidate_from = min(WEIGHTS)
    candidate_until = max(WEIGHTS)  # its weight drops to 0: its pods stop serving and exporting
    return [
        Traffic(MODEL, STABLE, *HISTORY, rps=lambda t: TOTAL_RPS * (1 - share(t)), **STABLE_READINGS),
        Traffic(MODEL, CANDIDATE, candidate_from, candidate_until, rps=lambda t: TOTAL_RPS * share(t),
                error_ratio=_climbing(0.003, 0.09), latency_p99_ms=_climbing(1100.0, 1900.0), ttft_p99_seconds=0.9,
                gauges={"sluice_eval_quality_score": 0.855, "sluice_eval_safety_violation_rate": 0.0025,
                        "sluice_eval_user_satisfaction": 0.9}),
    ]
