"""What applying a decision writes: the pointer edits, the commit message with its trailers, the
incident record of a rollback and the notification. Pure functions of the decision; the adapters
only write, commit and post what these return.

Trailers are what machines read back (`git log --format=%(trailers)`, `reconciler lineage`):

    Sluice-Action: advance
    Sluice-Environment: staging
    Sluice-Model: chat-assistant
    Sluice-Version: 1.3.0
    Sluice-Stable: 1.2.0
    Sluice-At: 2026-11-22T10:00:00Z
    Sluice-Stage: 1 -> 2
    Sluice-Weight: 1 -> 5
    Sluice-Reason: latency_p99_ms 1,402 <= 1.2 x stable 1,300 = 1,560 over 5m
"""

from __future__ import annotations

import math
from datetime import datetime

from .decision import Action, Decision
from .environment import ModelDeployment
from .gates import printed
from .types import format_duration, utc_text

Changes = dict[str, object]  # environment file key under models.<model> -> new value (None removes it)


def pointer_changes(dep: ModelDeployment, decision: Decision) -> Changes:
    """The edits of `models.<model>` that carry out the decision.

    Example: PROMOTE 1.3.0 over stable 1.2.0 -> stable "1.3.0", standby "1.2.0", standby_until,
    and candidate, stage, stage_started_at removed.
    """
    action, at = decision.action, decision.at
    paged = {"deadline_paged_at": None} if dep.deadline_paged_at is not None else {}  # a new stage: a new deadline
    if action is Action.START:
        return {"candidate": decision.candidate, "stage": 0, "stage_started_at": at, **paged}
    if action is Action.ADVANCE:
        return {"stage": decision.next_stage, "stage_started_at": at, **paged}
    if action is Action.RESUME:
        return {"stage_started_at": at, **paged}
    if action is Action.PAGE:
        return {"deadline_paged_at": at}
    if action is Action.PROMOTE:
        return {"stable": decision.candidate, "standby": dep.stable, "standby_until": decision.standby_until,
                "candidate": None, "stage": None, "stage_started_at": None, **paged}
    if action is Action.ROLLBACK and dep.candidate is None:  # by hand, back to the standby
        return {"stable": dep.standby, "standby": None, "standby_until": None}
    if action in (Action.ROLLBACK, Action.STOP):
        return {"candidate": None, "stage": None, "stage_started_at": None, **paged}
    if action is Action.RETIRE:
        return {"standby": None, "standby_until": None}
    raise ValueError(f"{action} changes nothing")


def subject(decision: Decision) -> str:
    d = decision
    where = f"{d.model} {d.candidate} in {d.environment}"
    if d.action is Action.START:
        return f"Start {where} at stage 0 ({d.weight}%)"
    if d.action is Action.ADVANCE:
        return f"Advance {where} to stage {d.next_stage} ({d.weight}%)"
    if d.action is Action.RESUME:
        return f"Resume {where} at stage {d.stage} ({d.weight}%)"
    if d.action is Action.PAGE:
        return f"Page on-call: {where} is stuck at stage {d.stage} ({d.weight}%) past its progress deadline"
    if d.action is Action.PROMOTE:
        return f"Promote {where} to stable ({d.stable} on standby until {utc_text(d.standby_until)})"
    if d.action is Action.ROLLBACK:
        why = "by hand" if d.manual else (d.breaches[0].message if d.breaches else d.reasons[0])
        return f"Roll back {where}: {why}"
    if d.action is Action.STOP:
        return f"Stop shadow release {where}: evaluation done"
    if d.action is Action.RETIRE:
        return f"Retire standby {d.model} {d.candidate} in {d.environment}"
    return f"{d.action.capitalize()} {where}"


def commit_message(decision: Decision) -> tuple[str, list[tuple[str, str]]]:
    """(message, trailers): a subject a person reads in `git log --oneline`, the reasons, and how
    to undo it; trailers for machines."""
    d = decision
    body = [subject(d), ""] + [f"- {reason}" for reason in d.reasons]
    body += ["", "Revert this commit to undo it: `git revert <this commit>`, then let CI apply main."]
    trailers = [("Sluice-Action", str(d.action)), ("Sluice-Environment", d.environment), ("Sluice-Model", d.model),
                ("Sluice-Version", d.candidate or ""), ("Sluice-Stable", d.stable), ("Sluice-At", utc_text(d.at))]
    if d.stage is not None or d.next_stage is not None:
        trailers.append(("Sluice-Stage", f"{_or_dash(d.stage)} -> {_or_dash(d.next_stage)}"))
    if d.weight is not None:
        trailers.append(("Sluice-Weight", f"{_or_dash(d.previous_weight)} -> {d.weight}"))
    trailers += [("Sluice-Reason", reason) for reason in d.reasons]
    return "\n".join(body), trailers


def incident_record(decision: Decision, timeline: list[tuple[datetime, str]]) -> dict[str, object]:
    """The record a rollback leaves under incidents/: what breached, values, thresholds, timeline."""
    d = decision
    events = sorted(timeline + [(d.at, f"rolled back {d.candidate} ({'by hand' if d.manual else 'automatically'}); "
                                      f"traffic back to {d.stable}")], key=lambda e: e[0])
    record: dict[str, object] = {
        "incident": incident_id(d),
        "environment": d.environment, "model": d.model, "version": d.candidate, "stable": d.stable,
        "detected_at": utc_text(d.at), "manual": d.manual,
        "stage": d.stage, "weight_before": d.previous_weight,
        "time_in_stage": None if d.time_in_stage is None else format_duration(d.time_in_stage),
        "breaches": [{"metric": b.metric, "value": printed(b.value), "bound": b.bound,
                      "threshold": printed(b.threshold), "message": b.message} for b in d.breaches],
        "reasons": list(d.reasons),
        "timeline": [{"at": utc_text(at), "event": event} for at, event in events],
        "next_steps": [
            f"traffic is on {d.stable}; the candidate's pods keep running until CI applies this commit",
            f"investigate {d.model} {d.candidate}: the reasons above and its dashboards around {utc_text(d.at)}",
            "to retry, fix the release and cut a new version; to undo this rollback, git revert its commit",
        ],
    }
    if d.judgements:  # the statistical evidence: estimate, interval, verdict (docs/judgement.md)
        record["judgements"] = [{"metric": j.metric, "bound": j.bound, "limit": printed(j.limit),
                                 "confidence": j.confidence, "estimate": _number_or_none(j.estimate),
                                 "low": _number_or_none(j.low), "high": _number_or_none(j.high),
                                 "verdict": str(j.verdict), "candidate_requests": printed(j.candidate_trials),
                                 "stable_requests": printed(j.stable_trials), "message": j.message}
                                for j in d.judgements]
    return record


def _number_or_none(value: float | None) -> float | int | None:
    """YAML and JSON readers choke on inf: an unbounded end is null."""
    return None if value is None or not math.isfinite(value) else printed(value)


def incident_id(decision: Decision) -> str:
    return f"{decision.at.strftime('%Y-%m-%dT%H%M%SZ')}-{decision.environment}-{decision.model}-{decision.candidate}"


def notification(decision: Decision, commit: str | None, incident_path: str | None) -> tuple[str, dict[str, object]]:
    """(one-line summary for chat, JSON payload for webhooks)."""
    d = decision
    summary = subject(d)  # it names the environment
    payload: dict[str, object] = {"event": f"sluice.{d.action}", **d.to_dict(), "stable": d.stable,
                                  "at": utc_text(d.at), "commit": commit, "incident": incident_path,
                                  "manual": d.manual}
    return summary, payload


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)

