"""Statistical gates and triggers end to end: real git, a real Prometheus on a synthetic history
with histogram buckets and request counters, and the real CLI (`reconciler reconcile --at`).

1. A low-traffic latency regression: the candidate gets 5% of 2 requests per second (6 requests a
   minute) and its p99 is 50% above stable's (1,050 ms against 700 ms). A latency trigger at 99% confidence rolls it back
   once the evidence since the stage began establishes "worse", not before; the commit message
   and the incident record carry the estimate, the interval and the verdict.
2. An A/A candidate (the same latency and errors as stable) goes through every stage, each gated
   on "not worse than stable" at 95%, with the statistical triggers looked at every five minutes
   and never firing, and is promoted.
3. The rollout report of scenario 1 charts the latency trigger's estimate and interval.
"""

from __future__ import annotations

import copy
from dataclasses import replace
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pytest
from ruamel.yaml import YAML

from tests.integration.rollout_world import CHAT, HEALTHY, T0, World, at, split_traffic, z
from tests.prometheus_kit import PrometheusServer, prometheus  # noqa: F401  (the fixture)

LATENCY_TRIGGER = {"metric": "latency_p99_ms", "max_ratio_to_stable": 1.1, "confidence": 0.99}
ERROR_TRIGGER = {"metric": "error_rate", "max_increase_over_stable": 0.005, "confidence": 0.99}

#: Scenario 1: a long 5% stage gated on latency at 95%; triggers at 99%.
LOW_TRAFFIC: dict[str, Any] = {
    "strategy": "canary",
    "stages": [
        {"weight": 0},
        {"weight": 5, "min_duration": "6h",
         "gates": [{"metric": "latency_p99_ms", "max_ratio_to_stable": 1.1, "confidence": 0.95}]},
        {"weight": 100},
    ],
    "rollback_triggers": [LATENCY_TRIGGER, ERROR_TRIGGER],
    "dead_mans_switch": {"max_silence": "15m"},
    "standby_window": "1h",
    "notify": [],
}

#: Scenario 2: every stage gated on "not worse" at 95%; 20-minute stages.
STATISTICAL_RAMP: dict[str, Any] = {
    "strategy": "canary",
    "stages": [
        {"weight": 0},
        {"weight": 5, "min_duration": "20m",
         "gates": [{"metric": "latency_p99_ms", "max_ratio_to_stable": 1.25, "confidence": 0.95},
                   {"metric": "error_rate", "max_increase_over_stable": 0.005, "confidence": 0.95}]},
        {"weight": 25, "min_duration": "20m",
         "gates": [{"metric": "latency_p99_ms", "max_ratio_to_stable": 1.25, "confidence": 0.95}]},
        {"weight": 50, "min_duration": "20m",
         "gates": [{"metric": "latency_p99_ms", "max_ratio_to_stable": 1.25, "confidence": 0.95}]},
        {"weight": 100},
    ],
    "rollback_triggers": [{**LATENCY_TRIGGER, "max_ratio_to_stable": 1.25}, ERROR_TRIGGER],
    "dead_mans_switch": {"max_silence": "10m"},
    "standby_window": "1h",
    "notify": [],
}


def statistical_world(path: Path, monkeypatch: pytest.MonkeyPatch, rollout: dict[str, Any]) -> World:
    def use(doc: Any) -> None:
        doc["rollout"] = copy.deepcopy(rollout)
    return World.create(path, monkeypatch, releases={(CHAT, "1.3.0"): use})


def incident(world: World, path: str) -> dict[str, Any]:
    return YAML(typ="safe").load((world.root / path).read_text(encoding="utf-8"))


# --- 1. a low-traffic latency regression -------------------------------------------------------------


def test_a_low_traffic_latency_regression_is_rolled_back_on_evidence_with_the_statistical_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: Callable[[str], PrometheusServer],  # noqa: F811
) -> None:
    world = statistical_world(tmp_path, monkeypatch, LOW_TRAFFIC)
    stable, candidate = split_traffic(CHAT, "1.2.0", "1.3.0", {at(1): 5}, total=2.0, start=at(-15), end=at(300),
                                      latency_p99_ms=1050.0)
    world.serve(prometheus, [replace(stable, latency_p99_ms=700.0), candidate])
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    assert world.pass_at(at(1)).decision["action"] == "advance"  # stage 1: 5%, 6 requests a minute

    passes: list[tuple[float, dict[str, Any]]] = []
    for minute in range(11, 300, 10):
        step = world.pass_at(at(minute))
        passes.append((minute, step.decision))
        if step.decision["action"] == "rollback":
            break
    minute, rollback = passes[-1]
    assert rollback["action"] == "rollback", [(m, d["action"], d["reasons"]) for m, d in passes]
    before = [d for _, d in passes[:-1]]
    assert before and all(d["action"] == "wait" for d in before)  # inconclusive: neither advances nor rolls back
    assert all(j["verdict"] == "inconclusive" for d in before for j in d.get("judgements", ())
               if j["metric"] == "latency_p99_ms")
    assert minute <= 180  # well inside the 6h stage: the evidence decided, not the clock

    [latency] = [j for j in rollback["judgements"] if j["metric"] == "latency_p99_ms" and j["verdict"] == "worse"]
    assert latency["bound"] == "max_ratio_to_stable" and latency["limit"] == 1.1 and latency["confidence"] == 0.99
    assert latency["estimate"] == pytest.approx(1.5, rel=0.02)  # 1,050 / 700
    assert latency["low"] <= latency["estimate"] and (latency["high"] is None or latency["estimate"] <= latency["high"])
    assert latency["candidate_trials"] < 1000  # under a thousand candidate requests were enough
    reason = latency["message"]
    assert reason.startswith("latency_p99_ms 1.5") and "99% CI" in reason and "worse than stable" in reason
    assert rollback["reasons"] == [f"{reason} at stage 1 (5%)", "traffic back to stable 1.2.0"]

    commit = world.log()[-1]
    assert commit.trailer("Sluice-Action") == "rollback"
    assert reason in commit.message  # the statistical reason, in words, in the commit message
    assert f"{reason} at stage 1 (5%)" in commit.trailers["Sluice-Reason"]
    assert world.pointers() == {"stable": "1.2.0"}

    [path] = [p.relative_to(world.root).as_posix() for p in (world.root / "incidents").rglob("*.yaml")]
    record = incident(world, path)
    [judged] = [j for j in record["judgements"] if j["metric"] == "latency_p99_ms" and j["verdict"] == "worse"]
    assert (judged["estimate"], judged["low"]) == \
        (pytest.approx(latency["estimate"], rel=1e-3), pytest.approx(latency["low"], rel=1e-3))
    assert judged["high"] == (None if latency["high"] is None else pytest.approx(latency["high"], rel=1e-3))
    assert judged["confidence"] == 0.99 and judged["message"] == reason

    # 3. The report charts the trigger's estimate and interval over the stage.
    out = world.root / "report.html"
    report = world.cli("report", CHAT, "--environment", "staging", "--out", str(out), str(world.root),
                       "--prometheus", world.prometheus_url or "", "--until", z(at(minute + 10)))
    assert report.code == 0, report.err
    page = out.read_text(encoding="utf-8")
    assert '<section id="judgements">' in page
    assert "<h3>latency_p99_ms: 1.1 x stable at 99% (rollback trigger)</h3>" in page
    assert "<h3>latency_p99_ms: 1.1 x stable at 95% (stage 1 gate)</h3>" in page
    assert page.count('class="interval"') >= 2 and 'class="verdict verdict-worse"' in page


# --- 2. an A/A candidate goes through the whole ramp --------------------------------------------------


def test_an_a_a_candidate_passes_every_statistical_gate_and_is_promoted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus: Callable[[str], PrometheusServer],  # noqa: F811
) -> None:
    """600 req/s, candidate identical to stable: each stage waits out its 20 minutes (passes every
    5 minutes, triggers looked at each time and never firing), then advances on "not worse"."""
    world = statistical_world(tmp_path, monkeypatch, STATISTICAL_RAMP)
    ramp = {at(1): 5, at(21): 25, at(41): 50, at(61): 100}
    world.serve(prometheus, split_traffic(CHAT, "1.2.0", "1.3.0", ramp, total=600.0, start=at(-15), end=at(90),
                                          **{k: v for k, v in HEALTHY.items() if k != "gauges"}))
    assert world.start(CHAT, "1.3.0", at(0)).code == 0
    assert world.pass_at(at(1)).decision["action"] == "advance"

    for advance_at, stage_after in ((21, 2), (41, 3), (61, None)):
        for minute in range(advance_at - 15, advance_at, 5):
            step = world.pass_at(at(minute))
            assert step.decision["action"] == "wait", step.decision
            # requests, last_sample, latency_p99_ms and error_rate, then one range query per evidence
            # template: latency's buckets, error_rate's events and trials
            assert step.run.json["queries"] == 4 + 3
            assert all(j["verdict"] != "worse" for j in step.decision.get("judgements", ()))
        moved = world.pass_at(at(advance_at))
        decision = moved.decision
        if stage_after is None:
            assert decision["action"] == "promote", decision
        else:
            assert (decision["action"], decision["next_stage"]) == ("advance", stage_after), decision
        gates = [j for j in decision["judgements"] if j["verdict"] == "not worse"]
        assert {j["metric"] for j in gates} >= {"latency_p99_ms"}
        assert all(j["estimate"] == pytest.approx(1.0, abs=0.02) for j in gates if j["metric"] == "latency_p99_ms")
        assert any("not worse" in reason for reason in decision["reasons"])

    assert world.pointers() == {"stable": "1.3.0", "standby": "1.2.0", "standby_until": z(at(121))}
    assert [c.trailer("Sluice-Action") for c in world.log()] == ["start", "advance", "advance", "advance", "promote"]
    validate = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(world.root)],
                              capture_output=True, text=True, timeout=120)
    assert validate.returncode == 0, validate.stdout + validate.stderr
