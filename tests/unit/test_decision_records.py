"""What applying a decision writes (pure): pointer edits, the commit message and its trailers, the
incident record of a rollback and the notification.

Decisions come from the core's own makers (`decide`, `start`, `manual_rollback`) on the example
release, so these tests read what a real pass would write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from reconciler.core.decide import decide, manual_rollback, start
from reconciler.core.decision import Action, Decision
from reconciler.core.decision_records import commit_message, incident_id, incident_record, notification, \
    pointer_changes
from reconciler.core.environment import ModelDeployment
from tests.unit.test_decide import (
    DONE,
    ENV,
    EXAMPLE,
    HOUR,
    METRICS,
    MINUTE,
    MODEL,
    NO_DATA,
    NOW,
    SHADOW_ONLY,
    deployment,
    observe,
    one,
)

UNTIL = NOW + 72 * HOUR  # the example's standby window after a promotion at NOW
REVERT = "Revert this commit to undo it: `git revert <this commit>`, then let CI apply main."
BASE_TRAILERS = ["Sluice-Action", "Sluice-Environment", "Sluice-Model", "Sluice-Version", "Sluice-Stable", "Sluice-At"]


def apply(dep: ModelDeployment, decision: Decision) -> ModelDeployment:
    """The deployment after the decision's pointer edits (None removes a key, as in the file)."""
    fields: dict[str, Any] = dep.model_dump(exclude_none=True)
    for key, value in pointer_changes(dep, decision).items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return ModelDeployment(**fields)


# --------------------------------------------------------------------------- one decision of each kind

NEW = ModelDeployment(stable="1.2.0", pool="a100")
PROMOTED = ModelDeployment(stable="1.3.0", standby="1.2.0", standby_until=UNTIL, pool="a100")
STANDBY_EXPIRED = ModelDeployment(stable="1.2.0", standby="1.1.0", standby_until=NOW - MINUTE, pool="a100")


def started() -> Decision:
    return start(ENV, MODEL, NEW, EXAMPLE, NOW)


def advanced() -> Decision:
    return one(EXAMPLE, deployment(1, 2 * HOUR), observe())


def promoted() -> Decision:
    return one(EXAMPLE, deployment(4, DONE), observe())


def rolled_back() -> Decision:
    return one(EXAMPLE, deployment(2, 5 * HOUR), observe({"error_rate": 0.081, "quality_score": 0.55}))


def switched_off() -> Decision:
    return one(EXAMPLE, deployment(2, 5 * HOUR), observe(NO_DATA, silent=25 * MINUTE))


def rolled_back_by_hand() -> Decision:
    return manual_rollback(ENV, MODEL, deployment(2, 5 * HOUR), "customers report wrong order numbers", NOW)


def back_to_standby() -> Decision:
    return manual_rollback(ENV, MODEL, PROMOTED, "support tickets doubled since the promotion", NOW)


def stopped() -> Decision:
    return one(SHADOW_ONLY, deployment(0, 25 * HOUR), observe())


def retired() -> Decision:
    (decision,) = decide(ENV, MODEL, STANDBY_EXPIRED, None, METRICS, observe(), NOW)
    return decision


def test_the_decisions_are_what_their_names_say() -> None:
    assert [d().action for d in (started, advanced, promoted, rolled_back, switched_off, rolled_back_by_hand,
                                 back_to_standby, stopped, retired)] == [
        Action.START, Action.ADVANCE, Action.PROMOTE, Action.ROLLBACK, Action.ROLLBACK, Action.ROLLBACK,
        Action.ROLLBACK, Action.STOP, Action.RETIRE]


# --------------------------------------------------------------------------- pointer changes


@pytest.mark.parametrize(
    ("dep", "make", "changes", "after"),
    [
        (NEW, started, {"candidate": "1.3.0", "stage": 0, "stage_started_at": NOW},
         ModelDeployment(stable="1.2.0", candidate="1.3.0", stage=0, stage_started_at=NOW, pool="a100")),
        (deployment(1, 2 * HOUR), advanced, {"stage": 2, "stage_started_at": NOW},
         ModelDeployment(stable="1.2.0", candidate="1.3.0", stage=2, stage_started_at=NOW, pool="a100")),
        (deployment(4, DONE), promoted,
         {"stable": "1.3.0", "standby": "1.2.0", "standby_until": UNTIL, "candidate": None, "stage": None,
          "stage_started_at": None},
         PROMOTED),
        (deployment(2, 5 * HOUR), rolled_back, {"candidate": None, "stage": None, "stage_started_at": None}, NEW),
        (deployment(2, 5 * HOUR), rolled_back_by_hand, {"candidate": None, "stage": None, "stage_started_at": None},
         NEW),
        (PROMOTED, back_to_standby, {"stable": "1.2.0", "standby": None, "standby_until": None}, NEW),
        (deployment(0, 25 * HOUR), stopped, {"candidate": None, "stage": None, "stage_started_at": None}, NEW),
        (STANDBY_EXPIRED, retired, {"standby": None, "standby_until": None}, NEW),
    ],
    ids=[
        "start sets the candidate at stage 0 from now",
        "advance moves the stage and restarts its clock",
        "promote makes the candidate stable and the old stable the standby until the window ends",
        "an automatic rollback removes the candidate",
        "a manual rollback with a candidate removes the candidate",
        "a manual rollback without a candidate makes the standby stable again",
        "stop withdraws a shadow-only candidate",
        "retire removes the standby",
    ],
)
def test_pointer_changes(dep: ModelDeployment, make: Any, changes: dict[str, object],
                         after: ModelDeployment) -> None:
    decision = make()
    assert pointer_changes(dep, decision) == changes
    assert apply(dep, decision) == after


@pytest.mark.parametrize("action", [Action.WAIT, Action.HOLD])
def test_wait_and_hold_change_nothing(action: Action) -> None:
    decision = Decision(ENV, MODEL, "1.3.0", "1.2.0", action, NOW, stage=1, next_stage=1)
    assert not action.commits
    with pytest.raises(ValueError, match=f"^{action} changes nothing$"):
        pointer_changes(deployment(1, HOUR), decision)


def test_a_promotion_replaces_an_expired_standby_without_a_separate_retirement() -> None:
    """Were RETIRE applied after PROMOTE, its edits (standby removed) would drop the just-demoted stable."""
    dep = deployment(4, DONE, standby="1.1.0", standby_until=NOW - HOUR)
    decisions = decide(ENV, MODEL, dep, EXAMPLE, METRICS, observe(), NOW)
    assert [d.action for d in decisions] == [Action.PROMOTE]
    for decision in decisions:
        dep = apply(dep, decision)
    assert dep == PROMOTED


# --------------------------------------------------------------------------- commit messages


@pytest.mark.parametrize(
    ("make", "subject", "stage", "weight"),
    [
        (started, "Start chat-assistant 1.3.0 in staging at stage 0 (0%)", "- -> 0", "0 -> 0"),
        (advanced, "Advance chat-assistant 1.3.0 in staging to stage 2 (5%)", "1 -> 2", "1 -> 5"),
        (promoted, "Promote chat-assistant 1.3.0 in staging to stable (1.2.0 on standby until 2026-11-25T12:00:00Z)",
         "4 -> 5", "50 -> 100"),
        (rolled_back, "Roll back chat-assistant 1.3.0 in staging: error_rate 0.081 > max 0.05 over 5m",
         "2 -> -", "5 -> 0"),
        (switched_off, "Roll back chat-assistant 1.3.0 in staging: dead man's switch: no samples from v1.3.0 for 25m "
         "(max silence 10m) while it holds 5% of traffic", "2 -> -", "5 -> 0"),
        (rolled_back_by_hand, "Roll back chat-assistant 1.3.0 in staging: by hand", "2 -> -", "- -> 0"),
        (back_to_standby, "Roll back chat-assistant 1.3.0 in staging: by hand", None, "100 -> 0"),
        (stopped, "Stop shadow release chat-assistant 1.3.0 in staging: evaluation done", "0 -> -", "0 -> 0"),
        (retired, "Retire standby chat-assistant 1.1.0 in staging", None, None),
    ],
    ids=["start", "advance", "promote", "rollback on a trigger", "rollback by the dead man's switch",
         "rollback by hand", "rollback by hand to the standby", "stop", "retire"],
)
def test_commit_message(make: Any, subject: str, stage: str | None, weight: str | None) -> None:
    decision = make()
    message, trailers = commit_message(decision)
    assert message.splitlines()[0] == subject
    assert message == "\n".join([subject, ""] + [f"- {r}" for r in decision.reasons] + ["", REVERT])
    keys = BASE_TRAILERS + ["Sluice-Stage"] * (stage is not None) + ["Sluice-Weight"] * (weight is not None)
    assert [k for k, _ in trailers] == keys + ["Sluice-Reason"] * len(decision.reasons)
    values = dict(trailers[:len(keys)])
    assert values["Sluice-Action"] == str(decision.action)
    assert values.get("Sluice-Stage") == stage
    assert values.get("Sluice-Weight") == weight
    assert [v for k, v in trailers if k == "Sluice-Reason"] == list(decision.reasons)


def test_an_advance_commit_in_full() -> None:
    message, trailers = commit_message(advanced())
    assert message == (
        "Advance chat-assistant 1.3.0 in staging to stage 2 (5%)\n"
        "\n"
        "- latency_p99_ms 1,400 <= 1.2 x stable 1,400 = 1,680 over 5m\n"
        "- ttft_p99_seconds 0.9 <= max 1.5 over 5m\n"
        "- next: stage 2 (5%)\n"
        "\n" + REVERT)
    assert trailers == [
        ("Sluice-Action", "advance"), ("Sluice-Environment", "staging"), ("Sluice-Model", "chat-assistant"),
        ("Sluice-Version", "1.3.0"), ("Sluice-Stable", "1.2.0"), ("Sluice-At", "2026-11-22T12:00:00Z"),
        ("Sluice-Stage", "1 -> 2"), ("Sluice-Weight", "1 -> 5"),
        ("Sluice-Reason", "latency_p99_ms 1,400 <= 1.2 x stable 1,400 = 1,680 over 5m"),
        ("Sluice-Reason", "ttft_p99_seconds 0.9 <= max 1.5 over 5m"),
        ("Sluice-Reason", "next: stage 2 (5%)"),
    ]


def test_a_retire_commit_names_the_standby_and_the_stable() -> None:
    _, trailers = commit_message(retired())
    assert dict(trailers)["Sluice-Version"] == "1.1.0"
    assert dict(trailers)["Sluice-Stable"] == "1.2.0"


# --------------------------------------------------------------------------- incident records

TIMELINE = [
    (NOW - 5 * HOUR, "advanced to stage 2 (5%)"),
    (NOW - 7 * HOUR, "started at stage 0 (0%)"),
    (NOW, "error_rate 0.081 seen by the reconciler"),
    (NOW - 3 * MINUTE, "error_rate crossed 0.05"),
]


def test_an_incident_record_has_the_breaches_and_a_sorted_timeline_ending_with_the_rollback() -> None:
    decision = rolled_back()
    record = incident_record(decision, TIMELINE)
    assert record["incident"] == incident_id(decision) == "2026-11-22T120000Z-staging-chat-assistant-1.3.0"
    assert {k: record[k] for k in ("environment", "model", "version", "stable", "detected_at", "manual", "stage",
                                   "weight_before")} == {
        "environment": "staging", "model": "chat-assistant", "version": "1.3.0", "stable": "1.2.0",
        "detected_at": "2026-11-22T12:00:00Z", "manual": False, "stage": 2, "weight_before": 5}
    assert record["breaches"] == [
        {"metric": "error_rate", "value": 0.081, "bound": "max", "threshold": 0.05,
         "message": "error_rate 0.081 > max 0.05 over 5m"},
        {"metric": "quality_score", "value": 0.55, "bound": "min", "threshold": 0.6,
         "message": "quality_score 0.55 < min 0.6 over 5m"},
    ]
    assert record["reasons"] == list(decision.reasons)
    assert record["timeline"] == [
        {"at": "2026-11-22T05:00:00Z", "event": "started at stage 0 (0%)"},
        {"at": "2026-11-22T07:00:00Z", "event": "advanced to stage 2 (5%)"},
        {"at": "2026-11-22T11:57:00Z", "event": "error_rate crossed 0.05"},
        {"at": "2026-11-22T12:00:00Z", "event": "error_rate 0.081 seen by the reconciler"},
        {"at": "2026-11-22T12:00:00Z", "event": "rolled back 1.3.0 (automatically); traffic back to 1.2.0"},
    ]
    assert record["time_in_stage"] is not None
    assert len(record["next_steps"]) == 3  # type: ignore[arg-type]
    assert "traffic is on 1.2.0" in record["next_steps"][0]  # type: ignore[index]


def test_a_dead_mans_switch_incident_has_no_breaches_but_says_why() -> None:
    record = incident_record(switched_off(), [])
    assert record["breaches"] == []
    assert record["reasons"] == [
        "dead man's switch: no samples from v1.3.0 for 25m (max silence 10m) while it holds 5% of traffic",
        "traffic back to stable 1.2.0"]
    assert record["timeline"] == [
        {"at": "2026-11-22T12:00:00Z", "event": "rolled back 1.3.0 (automatically); traffic back to 1.2.0"}]


def test_a_manual_incident_says_by_hand() -> None:
    record = incident_record(rolled_back_by_hand(), [])
    assert record["manual"] is True
    assert record["reasons"] == ["manual: customers report wrong order numbers", "traffic back to stable 1.2.0"]
    assert record["timeline"][-1]["event"] == "rolled back 1.3.0 (by hand); traffic back to 1.2.0"  # type: ignore[index]


# --------------------------------------------------------------------------- notifications

PAYLOAD_KEYS = ["event", "environment", "model", "candidate", "action", "stage", "next_stage", "weight", "reasons",
                "stable", "at", "commit", "incident", "manual"]


def test_a_rollback_notification() -> None:
    decision = rolled_back()
    summary, payload = notification(decision, "4f2a9c1", "incidents/2026-11-22T120000Z-staging-chat-assistant-1.3.0.yaml")
    assert summary == "Roll back chat-assistant 1.3.0 in staging: error_rate 0.081 > max 0.05 over 5m"
    assert list(payload) == PAYLOAD_KEYS
    assert payload == {
        "event": "sluice.rollback", "environment": "staging", "model": "chat-assistant", "candidate": "1.3.0",
        "action": "rollback", "stage": 2, "next_stage": None, "weight": 0, "reasons": list(decision.reasons),
        "stable": "1.2.0", "at": "2026-11-22T12:00:00Z", "commit": "4f2a9c1",
        "incident": "incidents/2026-11-22T120000Z-staging-chat-assistant-1.3.0.yaml", "manual": False,
    }


@pytest.mark.parametrize(
    ("make", "event", "summary"),
    [
        (advanced, "sluice.advance", "Advance chat-assistant 1.3.0 in staging to stage 2 (5%)"),
        (promoted, "sluice.promote", "Promote chat-assistant 1.3.0 in staging to stable "
                                     "(1.2.0 on standby until 2026-11-25T12:00:00Z)"),
        (rolled_back_by_hand, "sluice.rollback", "Roll back chat-assistant 1.3.0 in staging: by hand"),
        (retired, "sluice.retire", "Retire standby chat-assistant 1.1.0 in staging"),
    ],
    ids=["advance", "promote", "rollback by hand", "retire"],
)
def test_notification_summaries(make: Any, event: str, summary: str) -> None:
    decision = make()
    got_summary, payload = notification(decision, None, None)
    assert got_summary == summary
    assert list(payload) == PAYLOAD_KEYS
    assert (payload["event"], payload["commit"], payload["incident"], payload["manual"]) == \
        (event, None, None, decision.manual)


# --------------------------------------------------------------------------- manual rollback


def test_a_manual_rollback_with_nothing_to_go_back_to_says_what_to_do() -> None:
    with pytest.raises(ValueError) as raised:
        manual_rollback(ENV, MODEL, NEW, "bad answers", NOW)
    assert str(raised.value) == (
        "chat-assistant in staging has no candidate and no standby to go back to: revert the commit that promoted "
        "it (git revert), or start a rollout of the version you want")


def test_a_manual_rollback_to_the_standby_makes_it_stable() -> None:
    decision = back_to_standby()
    assert (decision.candidate, decision.stable, decision.manual) == ("1.3.0", "1.2.0", True)
    assert decision.reasons == ("manual: support tickets doubled since the promotion",
                                "traffic back to standby 1.2.0, which becomes stable")


def test_start_names_the_strategy_and_the_first_stage() -> None:
    decision = started()
    assert (decision.stage, decision.next_stage, decision.weight, decision.previous_weight) == (None, 0, 0, 0)
    assert decision.reasons == ("canary rollout of 1.3.0 over stable 1.2.0: stage 0 (0%)",)


def test_time_in_stage_is_kept_for_the_record() -> None:
    assert rolled_back().time_in_stage == timedelta(hours=5)
    assert isinstance(rolled_back().at, datetime)


def test_an_incident_record_and_its_commit_write_numbers_as_the_cli_prints_them() -> None:
    """Binary float noise (0.03 + 0.06 = 0.08999999999999998) never reaches a record people read."""
    noisy = 0.08999999999999998
    decision = one(EXAMPLE, deployment(2, 5 * HOUR), observe({"error_rate": noisy, "latency_p99_ms": 4_123.456}))
    record = incident_record(decision, [])
    assert [(b["metric"], b["value"], b["threshold"]) for b in record["breaches"]] == [  # type: ignore[union-attr]
        ("error_rate", 0.09, 0.05), ("latency_p99_ms", 4123, 4000)]
    message, trailers = commit_message(decision)
    assert "0.0899" not in message + repr(trailers) + repr(record)
    assert "error_rate 0.09 > max 0.05 over 5m at stage 2 (5%)" in message


# --------------------------------------------------------------------------- progress deadline


def paged() -> Decision:
    """Stage 2 fails a gate 13h in (default deadline 3 x 4h): hold and page."""
    return one(EXAMPLE, deployment(2, 13 * HOUR), observe({"error_rate": 0.0212}))


def test_a_page_records_when_it_paged_and_a_new_stage_clears_it() -> None:
    page = paged()
    assert page.action is Action.PAGE and page.action.commits
    dep = deployment(2, 13 * HOUR)
    assert pointer_changes(dep, page) == {"deadline_paged_at": NOW}
    after = apply(dep, page)
    assert after.deadline_paged_at == NOW and after.stage == 2
    assert one(EXAMPLE, after, observe({"error_rate": 0.0212})).action is Action.HOLD  # paged once, not every pass
    advanced_after = one(EXAMPLE, after, observe())
    assert advanced_after.action is Action.ADVANCE
    assert pointer_changes(after, advanced_after) == {"stage": 3, "stage_started_at": NOW, "deadline_paged_at": None}


def test_a_page_commit_and_notification_say_what_is_stuck_and_why() -> None:
    page = paged()
    message, trailers = commit_message(page)
    subject_line = "Page on-call: chat-assistant 1.3.0 in staging is stuck at stage 2 (5%) past its progress deadline"
    assert message.splitlines()[:3] == [
        subject_line, "", "- stage 2 (5%) has not met its gates for 13h > progress deadline 12h: holding and paging "
                          "on-call"]
    assert ("Sluice-Action", "page") in trailers and ("Sluice-Stage", "2 -> 2") in trailers
    summary, payload = notification(page, "abc", None)
    assert summary == subject_line and payload["event"] == "sluice.page"
