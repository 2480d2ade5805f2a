"""Semver rules, one row per rule of docs/rules.md#semver: what a change since the parent release asks of the
version number (`changes_since`, `required_bump`), how far a version moved (`bump_between`), and
the version a fix suggests (`next_version`).

Each row edits the example's chat-assistant 1.3.0 (the parent) in one or two places and says which
reasons come back, biggest first, and the bump they require. Edited copies are validated as a
file would be, so a row cannot build a release the loader would refuse.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.release import Release
from reconciler.core.semver import Bump, Reason, bump_between, changes_since, describe, next_version, required_bump
from tests.conftest import ROOT

MAJOR, MINOR, PATCH, NONE = Bump.MAJOR, Bump.MINOR, Bump.PATCH, Bump.NONE
OTHER_SHA = "ab" * 32


@cache
def parent() -> Release:
    release = load_repository(ROOT).repository.release("chat-assistant", "1.3.0")
    assert release is not None
    return release


def edited(release: Release, edits: dict[str, Any]) -> Release:
    """`release` with each dotted path set to its value (None deletes optional fields), validated."""
    data = release.model_dump()
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return Release.model_validate(data)


class Row(NamedTuple):
    id: str
    edits: dict[str, Any]
    reasons: list[tuple[str, Bump]]  # (dotted path, bump), in the order changes_since returns them
    required: Bump


ROWS = [
    # MAJOR: a new base model or architecture
    Row("base model name -> MAJOR", {"lineage.base_model.name": "mistralai/Mixtral-8x22B-Instruct-v0.1"},
        [("lineage.base_model.name", MAJOR)], MAJOR),
    Row("architecture -> MAJOR", {"lineage.base_model.architecture": "MixtralForCausalLM"},
        [("lineage.base_model.architecture", MAJOR)], MAJOR),
    Row("architecture unknown on the new side: not a change", {"lineage.base_model.architecture": None}, [], NONE),
    # MINOR: a new capability
    Row("weights -> MINOR", {"bundle.weights.sha256": OTHER_SHA}, [("bundle.weights.sha256", MINOR)], MINOR),
    Row("tokenizer -> MINOR", {"bundle.tokenizer.sha256": OTHER_SHA}, [("bundle.tokenizer.sha256", MINOR)], MINOR),
    Row("system prompt -> MINOR", {"bundle.system_prompt.sha256": OTHER_SHA},
        [("bundle.system_prompt.sha256", MINOR)], MINOR),
    Row("few-shot examples -> MINOR", {"bundle.few_shot_examples.sha256": OTHER_SHA},
        [("bundle.few_shot_examples", MINOR)], MINOR),
    Row("few-shot examples removed -> MINOR", {"bundle.few_shot_examples": None},
        [("bundle.few_shot_examples", MINOR)], MINOR),
    Row("base model revision -> MINOR", {"lineage.base_model.revision": "0" * 40},
        [("lineage.base_model.revision", MINOR)], MINOR),
    Row("dataset -> MINOR", {"lineage.dataset.sha256": OTHER_SHA}, [("lineage.dataset.sha256", MINOR)], MINOR),
    # PATCH: a fix or parameter tuning
    Row("generation temperature -> PATCH", {"bundle.generation.temperature": 0.2}, [("bundle.generation", PATCH)],
        PATCH),
    Row("generation stop sequences -> PATCH", {"bundle.generation.stop": ["</answer>"]},
        [("bundle.generation", PATCH)], PATCH),
    Row("safety threshold -> PATCH", {"bundle.safety.max_toxicity_score": 0.3}, [("bundle.safety", PATCH)], PATCH),
    Row("safety classifier -> PATCH", {"bundle.safety.classifier.sha256": OTHER_SHA}, [("bundle.safety", PATCH)],
        PATCH),
    Row("routing -> PATCH", {"bundle.routing.max_concurrent_requests": 32}, [("bundle.routing", PATCH)], PATCH),
    Row("model config -> PATCH", {"bundle.config.sha256": OTHER_SHA}, [("bundle.config.sha256", PATCH)], PATCH),
    Row("serving image -> PATCH", {"bundle.serving.image": "registry.acme.example/vllm@sha256:" + "cd" * 32},
        [("bundle.serving", PATCH)], PATCH),
    Row("serving GPUs -> PATCH", {"bundle.serving.gpus": 8}, [("bundle.serving", PATCH)], PATCH),
    # none: bookkeeping any new version may carry
    Row("evaluation: none", {"evaluation.toxicity": 0.02, "evaluation.benchmarks": {"mt_bench": 9.0}}, [], NONE),
    Row("rollout plan: none", {"rollout.standby_window": "24h", "rollout.stages.1.min_requests": 5000}, [], NONE),
    Row("description: none", {"description": "Reworded."}, [], NONE),
    Row("approvals: none", {"lineage.approvals": []}, [], NONE),
    Row("weights moved to other storage, same sha256: none",
        {"bundle.weights.uri": "gs://acme-mirror/chat-assistant/1.3.0/model.tar"}, [], NONE),
    Row("system prompt moved, same sha256: none",
        {"bundle.system_prompt.uri": "https://prompts.acme.example/support-v8.txt"}, [], NONE),
    # several at once: biggest first, file order within a size
    Row("prompt, temperature and base model: MAJOR wins",
        {"bundle.generation.temperature": 0.2, "bundle.system_prompt.sha256": OTHER_SHA,
         "lineage.base_model.name": "Qwen/Qwen2.5-72B-Instruct", "bundle.weights.sha256": OTHER_SHA},
        [("lineage.base_model.name", MAJOR), ("bundle.weights.sha256", MINOR), ("bundle.system_prompt.sha256", MINOR),
         ("bundle.generation", PATCH)], MAJOR),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_changes_since_the_parent(row: Row) -> None:
    release = edited(parent(), row.edits)
    reasons = changes_since(parent(), release)
    assert [(r.dotted, r.bump) for r in reasons] == row.reasons
    assert required_bump(reasons) is row.required


@pytest.mark.parametrize("row", [r for r in ROWS if r.required is not NONE], ids=lambda r: r.id)
def test_the_suggested_version_is_big_enough(row: Row) -> None:
    """What the semver rule suggests (parent + required bump) satisfies the rule it suggests it for."""
    fixed = next_version(parent().version, row.required)
    assert bump_between(parent().version, fixed) is row.required


def test_architecture_unknown_on_the_old_side_is_not_a_change() -> None:
    unknown = edited(parent(), {"lineage.base_model.architecture": None})
    assert changes_since(unknown, parent()) == []
    assert changes_since(unknown, edited(parent(), {"lineage.base_model.architecture": "Other"})) == []


def test_a_release_against_itself_asks_for_nothing() -> None:
    assert changes_since(parent(), parent()) == []
    assert required_bump([]) is NONE


def test_few_shot_examples_added_where_the_parent_had_none() -> None:
    without = edited(parent(), {"bundle.few_shot_examples": None})
    assert [(r.dotted, r.bump) for r in changes_since(without, parent())] == [("bundle.few_shot_examples", MINOR)]


def test_describe_lists_what_and_where() -> None:
    reasons = [Reason(("bundle", "weights", "sha256"), MINOR, "new weights")]
    assert describe(reasons) == "new weights (bundle.weights.sha256)"
    reasons.append(Reason(("bundle", "system_prompt", "sha256"), MINOR, "a changed system prompt"))
    reasons.append(Reason(("bundle", "generation"), PATCH, "changed generation parameters"))
    assert describe(reasons) == ("new weights (bundle.weights.sha256), a changed system prompt "
                                 "(bundle.system_prompt.sha256) and changed generation parameters (bundle.generation)")


@pytest.mark.parametrize("before, after, bump", [
    ("1.3.0", "1.3.1", PATCH),
    ("1.3.0", "1.4.0", MINOR),
    ("1.3.0", "2.0.0", MAJOR),
    ("1.3.7", "1.4.0", MINOR),
    ("1.3.0", "1.4.2", MINOR),  # the biggest part that moved
    ("1.3.0", "2.1.0", MAJOR),
    ("0.9.9", "1.0.0", MAJOR),
    ("1.9.0", "1.10.0", MINOR),  # numeric, not text: "1.10.0" < "1.9.0" as strings
    ("1.3.9", "1.3.10", PATCH),
    ("1.3.0", "1.3.0", NONE),  # not greater: its own error elsewhere
    ("1.3.0", "1.2.9", NONE),
    ("2.0.0", "1.9.9", NONE),
    ("1.10.0", "1.9.0", NONE),
])
def test_bump_between(before: str, after: str, bump: Bump) -> None:
    assert bump_between(before, after) is bump


@pytest.mark.parametrize("version, bump, expected", [
    ("1.3.2", MAJOR, "2.0.0"),
    ("1.3.2", MINOR, "1.4.0"),
    ("1.3.2", PATCH, "1.3.3"),
    ("1.9.9", PATCH, "1.9.10"),
    ("1.9.9", MINOR, "1.10.0"),
    ("0.1.0", MAJOR, "1.0.0"),
    ("1.3.2", NONE, "1.3.3"),  # a new release needs a new number: the smallest is a patch
])
def test_next_version(version: str, bump: Bump, expected: str) -> None:
    assert next_version(version, bump) == expected
    assert bump_between(version, expected) is max(bump, PATCH)


def test_bumps_are_ordered_so_bigger_covers_smaller() -> None:
    assert NONE < PATCH < MINOR < MAJOR
    assert [b.word for b in Bump] == ["NONE", "PATCH", "MINOR", "MAJOR"]
