"""Lineage, pure: the chain of releases (gaps, cycles) and served intervals from snapshots.

Releases are the example's chat-assistant chain (1.3.0 -> 1.2.0 -> 1.1.0), re-parented with
`model_copy` where a row needs a gap or a cycle. Snapshots are written by hand: one per commit
that touched an environment file, oldest first, as the history adapter makes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.lineage import (
    Interval,
    Pointers,
    Snapshot,
    release_chain,
    served_intervals,
    timeline,
    unreadable_revisions,
)
from reconciler.core.release import Release, Stage
from tests.conftest import ROOT

MODEL = "chat-assistant"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@cache
def _example() -> dict[str, Release]:
    repo = load_repository(ROOT).repository
    return {v: repo.release(MODEL, v) for v in repo.versions(MODEL)}  # type: ignore[misc]


def releases(parents: dict[str, str | None] | None = None) -> dict[str, Release]:
    """The example's releases by version, with `parent_version` replaced where `parents` says."""
    out = dict(_example())
    for version, parent in (parents or {}).items():
        release = out[version]
        out[version] = release.model_copy(
            update={"lineage": release.lineage.model_copy(update={"parent_version": parent})})
    return out


# --- the chain ---------------------------------------------------------------------------------------


def test_chain_follows_parents_back_to_the_first_release() -> None:
    chain = release_chain(releases().get, "1.3.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0", "1.1.0"]
    assert chain.complete and chain.gap is None


def test_chain_from_the_first_release_is_that_release_alone() -> None:
    chain = release_chain(releases().get, "1.1.0")
    assert [r.version for r in chain.releases] == ["1.1.0"]
    assert chain.complete


def test_a_parent_without_a_file_ends_the_chain_with_a_gap_naming_the_file() -> None:
    chain = release_chain(releases({"1.1.0": "1.0.0"}).get, "1.3.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0", "1.1.0"]
    assert not chain.complete
    assert (chain.gap.kind, chain.gap.version, chain.gap.parent) == ("missing", "1.1.0", "1.0.0")
    assert chain.gap.message == ("1.1.0 names parent 1.0.0, but releases/chat-assistant/1.0.0.yaml "
                                 "does not exist in the working tree")


def test_a_parent_whose_file_did_not_load_is_an_unreadable_gap() -> None:
    known = releases()
    del known["1.1.0"]
    chain = release_chain(known.get, "1.3.0", is_unreadable=lambda v: v == "1.1.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0"]
    assert chain.gap.kind == "unreadable"
    assert "releases/chat-assistant/1.1.0.yaml exists but did not load: run `reconciler validate`" in chain.gap.message


def test_a_cycle_ends_the_chain_once_every_version_is_listed() -> None:
    chain = release_chain(releases({"1.1.0": "1.3.0"}).get, "1.3.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0", "1.1.0"]
    assert (chain.gap.kind, chain.gap.version, chain.gap.parent) == ("cycle", "1.1.0", "1.3.0")
    assert "a cycle: 1.3.0 -> 1.2.0 -> 1.1.0 -> 1.3.0" in chain.gap.message


def test_a_cycle_entered_midway_names_only_the_loop() -> None:
    chain = release_chain(releases({"1.1.0": "1.2.0"}).get, "1.3.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0", "1.1.0"]
    assert "a cycle: 1.2.0 -> 1.1.0 -> 1.2.0" in chain.gap.message


def test_a_release_that_is_its_own_parent_is_a_cycle_of_one() -> None:
    chain = release_chain(releases({"1.2.0": "1.2.0"}).get, "1.3.0")
    assert [r.version for r in chain.releases] == ["1.3.0", "1.2.0"]
    assert "a cycle: 1.2.0 -> 1.2.0" in chain.gap.message


def test_the_starting_version_must_exist() -> None:
    with pytest.raises(KeyError):
        release_chain(releases().get, "9.9.9")


# --- served intervals ----------------------------------------------------------------------------------


def snap(minutes: int, sha: str, env: str = "staging", **models: dict[str, Any] | None) -> Snapshot:
    """A snapshot; `models` as keyword arguments with '-' written '_' (chat_assistant={...});
    `unreadable=None` makes the whole revision unreadable."""
    if "unreadable" in models:
        return Snapshot(sha, at(minutes), env, None)
    return Snapshot(sha, at(minutes), env, {k.replace("_", "-"): Pointers(**v) for k, v in models.items()})


STAGES = [Stage(weight=w) for w in (0, 1, 5, 25, 50, 100)]


def iv(role: str, start: int, start_sha: str, end: int | None = None, end_sha: str | None = None,
       stage: int | None = None, env: str = "staging") -> Interval:
    weight = STAGES[stage].weight if stage is not None else None
    return Interval(env, role, at(start), start_sha, at(end) if end is not None else None, end_sha,  # type: ignore[arg-type]
                    stage, weight, 0 if stage is not None else None)


def rollout_history() -> list[Snapshot]:
    """Staging: 1.3.0 starts, advances twice, is rolled back; prod never sees it; then it starts
    again and is promoted, 1.2.0 becomes standby."""
    return [
        snap(0, "c0", chat_assistant={"stable": "1.2.0"}),
        snap(0, "c0", env="prod", chat_assistant={"stable": "1.2.0", "standby": "1.1.0"}),
        snap(10, "c1", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 0}),
        snap(20, "c2", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 1}),
        snap(30, "c3", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 1}),  # another model moved
        snap(40, "c4", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 2}),
        snap(50, "c5", chat_assistant={"stable": "1.2.0"}),  # rolled back
        snap(60, "c6", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 5}),
        snap(70, "c7", chat_assistant={"stable": "1.3.0", "standby": "1.2.0"}),  # promoted
    ]


def test_candidate_intervals_split_by_stage_with_weights_and_close_at_the_rollback() -> None:
    served = served_intervals(rollout_history(), MODEL, "1.3.0", STAGES)
    assert served[("staging", "candidate")] == [
        iv("candidate", 10, "c1", 20, "c2", stage=0),
        iv("candidate", 20, "c2", 40, "c4", stage=1),  # c3 kept the same stage: one interval
        iv("candidate", 40, "c4", 50, "c5", stage=2),
        iv("candidate", 60, "c6", 70, "c7", stage=5),
    ]
    assert served[("staging", "stable")] == [iv("stable", 70, "c7")]
    assert served[("staging", "stable")][0].is_open
    assert ("prod", "candidate") not in served and ("prod", "stable") not in served


def test_the_old_stable_becomes_standby_at_the_promotion() -> None:
    served = served_intervals(rollout_history(), MODEL, "1.2.0")
    assert served[("staging", "stable")] == [iv("stable", 0, "c0", 70, "c7")]
    assert served[("staging", "standby")] == [iv("standby", 70, "c7")]
    assert served[("prod", "stable")] == [iv("stable", 0, "c0", env="prod")]


def test_a_version_that_returns_to_stable_after_a_rollback_gets_a_second_interval() -> None:
    history = [
        snap(0, "a", chat_assistant={"stable": "1.2.0"}),
        snap(10, "b", chat_assistant={"stable": "1.3.0", "standby": "1.2.0"}),  # promoted 1.3.0
        snap(25, "c", chat_assistant={"stable": "1.2.0"}),  # rolled back to the standby
    ]
    served = served_intervals(history, MODEL, "1.2.0")
    assert served[("staging", "stable")] == [iv("stable", 0, "a", 10, "b"), iv("stable", 25, "c")]
    assert served[("staging", "standby")] == [iv("standby", 10, "b", 25, "c")]
    assert served_intervals(history, MODEL, "1.3.0")[("staging", "stable")] == [iv("stable", 10, "b", 25, "c")]


def test_unreadable_revisions_change_nothing_and_are_counted_per_environment() -> None:
    history = [
        snap(0, "a", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 1}),
        snap(10, "b", unreadable=None),  # someone broke the YAML: the stage goes on
        snap(15, "b2", env="prod", unreadable=None),
        snap(20, "c", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 2}),
        snap(30, "d", unreadable=None),
    ]
    served = served_intervals(history, MODEL, "1.3.0", STAGES)
    assert served[("staging", "candidate")] == [iv("candidate", 0, "a", 20, "c", stage=1),
                                                iv("candidate", 20, "c", stage=2)]
    assert unreadable_revisions(history) == {"staging": 2, "prod": 1}


def test_an_unreadable_first_revision_opens_nothing() -> None:
    history = [snap(0, "a", unreadable=None), snap(10, "b", chat_assistant={"stable": "1.3.0"})]
    assert served_intervals(history, MODEL, "1.3.0") == {("staging", "stable"): [iv("stable", 10, "b")]}


def test_a_model_removed_from_the_file_or_a_deleted_file_closes_its_intervals() -> None:
    history = [
        snap(0, "a", chat_assistant={"stable": "1.3.0"}, code_completion={"stable": "2.0.0"}),
        snap(10, "b", code_completion={"stable": "2.0.0"}),  # the model's entry removed
        snap(20, "c", chat_assistant={"stable": "1.3.0"}),
        Snapshot("d", at(30), "staging", {}),  # the file deleted
    ]
    assert served_intervals(history, MODEL, "1.3.0")[("staging", "stable")] == [
        iv("stable", 0, "a", 10, "b"), iv("stable", 20, "c", 30, "d")]


def test_other_models_with_the_same_version_number_do_not_count() -> None:
    history = [snap(0, "a", code_completion={"stable": "1.3.0"})]
    assert served_intervals(history, MODEL, "1.3.0") == {}


def test_a_stage_beyond_the_release_stages_has_no_weight() -> None:
    history = [snap(0, "a", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 9})]
    (only,) = served_intervals(history, MODEL, "1.3.0", STAGES)[("staging", "candidate")]
    assert (only.stage, only.weight, only.mirror) == (9, None, None)


def test_a_shadow_stage_carries_its_mirror_share() -> None:
    history = [snap(0, "a", chat_assistant={"stable": "1.2.0", "candidate": "1.3.0", "stage": 0})]
    (only,) = served_intervals(history, MODEL, "1.3.0", [Stage(weight=0, mirror=100)])[("staging", "candidate")]
    assert (only.weight, only.mirror) == (0, 100)


def test_timeline_orders_all_intervals_by_start_then_environment_and_role() -> None:
    served = served_intervals(rollout_history(), MODEL, "1.2.0")
    assert [(i.environment, i.role, i.start) for i in timeline(served)] == [
        ("prod", "stable", at(0)), ("staging", "stable", at(0)), ("staging", "standby", at(70))]


def test_pointers_ignore_unknown_keys_but_refuse_bad_versions() -> None:
    assert Pointers.model_validate({"stable": "1.2.0", "pool": "a100", "retired_field": 1}).stable == "1.2.0"
    for bad in ({"stable": "v1.2.0"}, {"candidate": "1.3.0"}, {"stable": "1.2.0", "stage": -1},
                {"stable": "1.2.0", "stage": "2"}):
        with pytest.raises(ValidationError):
            Pointers.model_validate(bad)
