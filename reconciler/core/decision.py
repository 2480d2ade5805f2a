"""A decision is a value: what to do with one model's rollout in one environment, and why.

`decide` makes them from pointers, releases and observations; a separate step applies them
(edits the environment file, commits, writes the incident record, notifies). Reasons quantify
("latency_p99_ms 2,310 > max 1,500 over 5m"), so a commit message or a 3 a.m. page says what
happened without opening a dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from .gates import Breach, GateCheck
from .judge import Judgement


class Action(StrEnum):
    WAIT = "wait"  # healthy, the stage's minimum duration has not passed yet
    HOLD = "hold"  # cannot advance: gates not passing, too few requests, or no trustworthy data
    ADVANCE = "advance"  # to the next stage
    PROMOTE = "promote"  # the candidate becomes stable; the old stable becomes the standby
    ROLLBACK = "rollback"  # traffic back to stable (or, by hand, to the standby)
    STOP = "stop"  # a shadow-only release finished its evaluation: the candidate is withdrawn
    RETIRE = "retire"  # the standby's window ended: it is removed
    START = "start"  # a rollout begins (by hand, after the pre-deployment gates)
    RESUME = "resume"  # by hand, after a person's revert held the rollout: the stage's clock restarts
    PAGE = "page"  # held past the stage's progress deadline: notify once (recorded as deadline_paged_at)

    @property
    def commits(self) -> bool:
        """Whether applying it changes the environment file (and so makes a commit)."""
        return self not in (Action.WAIT, Action.HOLD)


@dataclass(frozen=True)
class Decision:
    environment: str
    model: str
    candidate: str | None  # the version the decision is about (the standby for RETIRE)
    stable: str
    action: Action
    at: datetime
    stage: int | None = None
    next_stage: int | None = None
    weight: int | None = None  # the candidate's share of traffic once applied
    previous_weight: int | None = None
    reasons: tuple[str, ...] = ()
    gates: tuple[GateCheck, ...] = ()
    breaches: tuple[Breach, ...] = ()
    judgements: tuple[Judgement, ...] = ()  # statistical gates and triggers weighed this pass (docs/judgement.md)
    standby_until: datetime | None = None  # PROMOTE: when the old stable will be retired
    time_in_stage: timedelta | None = None
    manual: bool = False
    metrics_unreachable: bool = False  # held unjudged: Prometheus could not be read at all (reconcile exits 3)
    notes: list[str] = field(default_factory=list, compare=False)  # what applying it reported (notifications)

    def to_dict(self) -> dict[str, object]:
        """The decision for machines (reconcile --json, webhooks); `judgements` only when there are
        any, so the payload of a release without statistical gates stays as it was."""
        fields: dict[str, object] = {
            "environment": self.environment, "model": self.model, "candidate": self.candidate,
            "action": str(self.action), "stage": self.stage, "next_stage": self.next_stage,
            "weight": self.weight, "reasons": list(self.reasons),
        }
        if self.judgements:
            fields["judgements"] = [j.to_dict() for j in self.judgements]
        return fields
