"""Lineage: where a version came from, and where and when it served. The audit record.

Two pure pieces, both fed by adapters (no I/O, no clock):

- `release_chain` follows `lineage.parent_version` from a version back to the model's first
  release. It never raises on a bad chain: a parent without a release file, or a parent already
  on the chain (a cycle), ends the chain with a `Gap` that says so, because an auditor needs the
  part that exists plus a clear statement of what is missing.
- `served_intervals` turns snapshots of the environment files, one per commit that touched a file
  (oldest first), into the intervals a version held each role (stable, candidate at a stage,
  standby). An interval runs from the first commit at which the version held the role to the
  first later commit at which it no longer did, or is open ("to now"). A snapshot that could not
  be read (`models is None`) changes nothing: the state before it carries on, since a revision
  that does not parse cannot have been applied either; the caller counts them and says so.

Worked example (one environment, times are commit times):

    10:00  stable 1.2.0                      -> 1.2.0 stable opens
    10:05  stable 1.2.0, candidate 1.3.0 @1  -> 1.3.0 candidate stage 1 opens
    10:15  ... candidate 1.3.0 @2            -> stage 1 closes at 10:15, stage 2 opens
    10:25  unreadable                        -> nothing changes
    10:30  stable 1.3.0, standby 1.2.0       -> 1.3.0 candidate closes, stable opens; 1.2.0 stable
                                                closes at 10:30, standby opens
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from .release import Release, Stage
from .types import SemVer

Role = Literal["stable", "candidate", "standby"]
ROLES: tuple[Role, ...] = ("stable", "candidate", "standby")


class Pointers(BaseModel):
    """One model's pointers in one revision of an environment file: only what lineage needs.

    Other keys are ignored (not forbidden), so a revision written before a field was added or
    renamed still counts: the audit question is which version held which role, not whether the
    old file passes today's schema.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    stable: SemVer
    candidate: SemVer | None = None
    stage: int = Field(default=0, ge=0)
    standby: SemVer | None = None

    def roles(self, version: str) -> list[tuple[Role, int | None]]:
        """(role, stage) pairs `version` holds here; stage only for the candidate."""
        held: list[tuple[Role, int | None]] = []
        if self.stable == version:
            held.append(("stable", None))
        if self.candidate == version:
            held.append(("candidate", self.stage))
        if self.standby == version:
            held.append(("standby", None))
        return held


class Snapshot(NamedTuple):
    """An environment file as of one commit. `models` is None when that revision was unreadable;
    a model missing from `models` has no live version there (the file, or its entry, was removed)."""

    commit: str
    at: datetime
    environment: str
    models: Mapping[str, Pointers] | None


@dataclass(frozen=True)
class Interval:
    """[start, end) during which a version held `role` in `environment`; `end` None: still holds it."""

    environment: str
    role: Role
    start: datetime
    start_commit: str
    end: datetime | None = None
    end_commit: str | None = None
    stage: int | None = None  # candidate only: index into its rollout.stages
    weight: int | None = None  # candidate only: that stage's traffic percent, when the release says
    mirror: int | None = None  # candidate only: that stage's mirrored percent, when the release says

    @property
    def is_open(self) -> bool:
        return self.end is None


def served_intervals(snapshots: Iterable[Snapshot], model: str, version: str,
                     stages: Sequence[Stage] = ()) -> dict[tuple[str, Role], list[Interval]]:
    """Per (environment, role), the intervals `version` of `model` held it, oldest first.

    `snapshots` are in history order (oldest first); `stages` are the version's own rollout stages,
    which give a candidate interval its weight. Adjacent commits at the same stage make one interval;
    a version that comes back to a role (stable again after a rollback) gets a second interval.
    """
    open_: dict[str, dict[tuple[Role, int | None], Interval]] = {}
    out: dict[tuple[str, Role], list[Interval]] = {}
    for snap in snapshots:
        if snap.models is None:
            continue
        pointers = snap.models.get(model)
        held = set(pointers.roles(version)) if pointers is not None else set()
        current = open_.setdefault(snap.environment, {})
        for key in [k for k in current if k not in held]:
            ended = current.pop(key)
            out[(snap.environment, key[0])][-1] = _close(ended, snap)
        for role, stage in sorted(held - current.keys(), key=_role_order):
            interval = _open(snap, role, stage, stages)
            current[(role, stage)] = interval
            out.setdefault((snap.environment, role), []).append(interval)
    return out


def unreadable_revisions(snapshots: Iterable[Snapshot]) -> dict[str, int]:
    """Per environment, how many of its revisions could not be read (and were skipped)."""
    counts: dict[str, int] = {}
    for snap in snapshots:
        if snap.models is None:
            counts[snap.environment] = counts.get(snap.environment, 0) + 1
    return counts


def timeline(intervals: Mapping[tuple[str, Role], list[Interval]]) -> list[Interval]:
    """Every interval in one list, by start time, then environment and role: how people read it."""
    flat = [i for group in intervals.values() for i in group]
    return sorted(flat, key=lambda i: (i.start, i.environment, ROLES.index(i.role), i.stage or 0))


def _role_order(key: tuple[Role, int | None]) -> int:
    return ROLES.index(key[0])


def _open(snap: Snapshot, role: Role, stage: int | None, stages: Sequence[Stage]) -> Interval:
    step = stages[stage] if stage is not None and stage < len(stages) else None
    return Interval(snap.environment, role, snap.at, snap.commit, stage=stage,
                    weight=step.weight if step else None, mirror=step.mirror if step else None)


def _close(interval: Interval, snap: Snapshot) -> Interval:
    return Interval(interval.environment, interval.role, interval.start, interval.start_commit, snap.at, snap.commit,
                    interval.stage, interval.weight, interval.mirror)


# --- the chain of releases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """Why the chain stops before a first release. `kind`: "missing" (no release file for the parent),
    "unreadable" (the parent's file exists but did not load) or "cycle" (the parent is already on
    the chain)."""

    kind: Literal["missing", "unreadable", "cycle"]
    version: str  # the last version on the chain: the one naming `parent`
    parent: str
    message: str


@dataclass(frozen=True)
class Chain:
    """Releases from the asked-for version back to the first one, newest first."""

    releases: tuple[Release, ...]
    gap: Gap | None = None

    @property
    def complete(self) -> bool:
        """True when the chain ends at a release with no parent (the model's first release)."""
        return self.gap is None


def release_chain(release_of: Callable[[str], Release | None], version: str,
                  is_unreadable: Callable[[str], bool] = lambda _: False) -> Chain:
    """Follow `parent_version` from `version` (which must resolve) back to a release without one.

    `release_of(v)` is the model's release `v` or None; `is_unreadable(v)` says a file for `v`
    exists but did not load, so the gap can name the right fix.
    """
    first = release_of(version)
    if first is None:
        raise KeyError(version)
    chain = [first]
    while (parent := chain[-1].lineage.parent_version) is not None:
        child = chain[-1]
        where = f"releases/{child.model}/{parent}.yaml"
        if any(r.version == parent for r in chain):
            loop = " -> ".join([*(r.version for r in chain[[r.version for r in chain].index(parent):]), parent])
            return Chain(tuple(chain), Gap("cycle", child.version, parent,
                                           f"{child.version} names parent {parent}, which is already on the chain "
                                           f"(a cycle: {loop}); fix lineage.parent_version in one of them"))
        found = release_of(parent)
        if found is None:
            kind: Literal["missing", "unreadable"] = "unreadable" if is_unreadable(parent) else "missing"
            state = ("exists but did not load: run `reconciler validate`" if kind == "unreadable"
                     else "does not exist in the working tree")
            return Chain(tuple(chain), Gap(kind, child.version, parent,
                                           f"{child.version} names parent {parent}, but {where} {state}"))
        chain.append(found)
    return Chain(tuple(chain))
