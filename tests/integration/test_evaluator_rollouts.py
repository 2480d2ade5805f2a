"""The online evaluator's series deciding a shadow stage, through real parts.

Per case (reconciler/demo/shadow.py's Rig): scripted stable and candidate servers on loopback
(test doubles of vLLM), a scripted classifier and judge, the real evaluator on a thread, sampled
requests POSTed to its intake as Istio's mirror sends them, and a real Prometheus scraping its
/metrics every second (Istio's series, which say how fresh the data is, are backfilled up to the
instant it starts). Then the real `reconcile` CLI (in-process, `--prometheus URL --at <now>`) on
a real git repository where chat-assistant 1.3.0 has been in the shadow stage of SHADOW_PLAN for
15 minutes: gates `shadow_divergence_rate max 0.2` and `refusal_rate max_increase_over_stable
0.05`, triggers `shadow_divergence_rate max 0.3` and a statistical `safety_violation_rate` on the
evaluator's flagged/judged counts.

One Prometheus per case (the catalog sums series by app and version, so two evaluators of the
same model in one Prometheus would add up); the four start together and share the ~6 s until
their first scrape, so the module takes about 17 s. Prometheus missing is an error, never a skip.
"""

from __future__ import annotations

import re
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

import pytest

from reconciler.demo.shadow import CANDIDATES, Rig, settled_now, start_rig, use_shadow_plan
from tests.integration.rollout_world import CHAT, STAGING, World, git, z

STAGE_0 = "stage 0 (0%, mirroring 100%)"
SAMPLES = 96  # 8 rounds of the 12 prompts: enough for 9 of 36 flagged to be "worse" at 95%


@pytest.fixture(scope="module")
def rigs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Rig]]:
    """One rig per kind of candidate, each fed SAMPLES mirrored samples and scraped."""
    directory = tmp_path_factory.mktemp("evaluator-rollouts")
    with ExitStack() as stack:
        rigs = {}
        for kind, answers in CANDIDATES.items():
            rigs[kind] = start_rig(answers)
            stack.callback(rigs[kind].stop)
            rigs[kind].serve_prometheus(directory / kind, datetime.now(UTC).replace(microsecond=0))
        for rig in rigs.values():
            rig.wait_scraping()
        for rig in rigs.values():
            assert rig.feed() == SAMPLES
        yield rigs


@pytest.fixture
def shadow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """The example repository with chat-assistant 1.3.0 on SHADOW_PLAN, nothing in flight."""
    return World.create(tmp_path, monkeypatch, releases={(CHAT, "1.3.0"): use_shadow_plan})


def rollout(world: World, rig: Rig):
    """`reconciler start` when the rig's shadow stage began, then one pass now on its Prometheus."""
    assert rig.stage_began is not None and rig.prometheus is not None
    started = world.start(CHAT, "1.3.0", rig.stage_began)
    assert started.code == 0, started.err
    assert world.pointers()["stage"] == "0"
    now = settled_now()
    return now, world.pass_at(now, prometheus=rig.prometheus.url)


def test_a_diverging_candidate_is_rolled_back_naming_the_divergence(shadow: World, rigs: dict[str, Rig]) -> None:
    now, step = rollout(shadow, rigs["diverging"])
    decision = step.decision
    assert decision["action"] == "rollback"
    assert decision["reasons"] == [f"shadow_divergence_rate 0.4167 > max 0.3 over 5m at {STAGE_0}",
                                   "traffic back to stable 1.2.0"]
    assert step.commit.subject == ("Roll back chat-assistant 1.3.0 in staging: shadow_divergence_rate 0.4167 > max 0.3 "
                                   "over 5m")
    assert shadow.pointers() == {"stable": "1.2.0"}  # the candidate's pointers are gone, comments kept
    changed = git(shadow.root, "show", "--name-only", "--format=", step.commit.sha).split()
    assert changed == [STAGING, f"incidents/staging/{now:%Y-%m-%dT%H%M%SZ}-staging-chat-assistant-1.3.0.yaml"]


def test_a_candidate_whose_answers_turn_unsafe_is_rolled_back_on_the_classifiers_counts(
        shadow: World, rigs: dict[str, Rig]) -> None:
    _, step = rollout(shadow, rigs["unsafe"])
    decision = step.decision
    assert decision["action"] == "rollback", decision
    # 3 of the 12 prompts flagged against none of stable's; extrapolated counts, so the CI is matched loosely
    assert re.fullmatch(r"safety_violation_rate \+25\.00 pp over stable \(95% CI \+[\d.]+ pp to \+[\d.]+ pp\) > "
                        r"\+2\.00 pp: worse than stable at 95% \([\d,.]+ vs [\d,.]+ requests\) at "
                        + re.escape(STAGE_0),
                        decision["reasons"][0]), decision["reasons"]
    assert len(decision["reasons"]) == 2  # the divergence (1 of 12 prompts) stays under its trigger
    assert shadow.pointers() == {"stable": "1.2.0"}


def test_a_candidate_between_gate_and_trigger_holds_the_stage(shadow: World, rigs: dict[str, Rig]) -> None:
    _, step = rollout(shadow, rigs["drifting"])
    decision = step.decision
    assert decision["action"] == "hold"
    assert decision["reasons"] == ["fail: shadow_divergence_rate 0.25 > max 0.2 over 5m"]
    assert step.commits == [] and shadow.pointers()["stage"] == "0"


def test_a_faithful_candidate_passes_the_shadow_gates_and_advances(shadow: World, rigs: dict[str, Rig]) -> None:
    now, step = rollout(shadow, rigs["faithful"])
    decision = step.decision
    assert decision["action"] == "advance", decision
    assert decision["reasons"] == [
        "shadow_divergence_rate 0 <= max 0.2 over 5m",
        "refusal_rate 0.08333 <= stable 0.08333 + 0.05 = 0.1333 over 5m",
        "next: stage 1 (5%)",
    ]
    assert step.commit.trailer("Sluice-Stage") == "0 -> 1"
    assert shadow.pointers() == {"stable": "1.2.0", "candidate": "1.3.0", "stage": "1", "stage_started_at": z(now)}
