"""Which rollouts a person's `git revert` holds: the newest word on each model decides.

Commits are values here (as `GitRepository.log` returns them, newest first); the real-git path
is in tests/integration/test_rollout_scenarios.py (revert of an advance, then `resume`).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reconciler.adapters.git import Commit
from reconciler.adapters.interventions import _read
from reconciler.core.decide import Revert, respect_revert
from reconciler.core.decision import Action, Decision

T = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


def bot(sha: str, model: str, action: str) -> Commit:
    return Commit(sha * 40, f"{action} {model}", T, {"Sluice-Model": [model], "Sluice-Action": [action]})


def revert(sha: str, of: str) -> Commit:
    return Commit(sha * 40, "Revert", T, {}, of * 40)


def person(sha: str) -> Commit:
    return Commit(sha * 40, "edit replicas", T, {})


MODELS = {"chat", "code"}


@pytest.mark.parametrize(("history", "held"), [
    ([bot("b", "chat", "advance"), bot("a", "chat", "start")], {}),
    ([revert("c", "b"), bot("b", "chat", "advance"), bot("a", "chat", "start")], {"chat": ("c", "b", "advance")}),
    # a person's own edit after the revert says nothing about which model it meant
    ([person("d"), revert("c", "b"), bot("b", "chat", "advance")], {"chat": ("c", "b", "advance")}),
    # a newer reconciler commit (resume, rollback, start) settles the model
    ([bot("d", "chat", "resume"), revert("c", "b"), bot("b", "chat", "advance")], {}),
    # a revert of the revert puts the advance back: nothing is held
    ([revert("d", "c"), revert("c", "b"), bot("b", "chat", "advance")], {}),
    # ... and a third revert undoes it again
    ([revert("e", "d"), revert("d", "c"), revert("c", "b"), bot("b", "chat", "promote")],
     {"chat": ("e", "b", "promote")}),
    # models are independent
    ([bot("d", "code", "advance"), revert("c", "b"), bot("b", "chat", "retire")], {"chat": ("c", "b", "retire")}),
    # only the newest revert of a model counts
    ([revert("f", "e"), bot("e", "chat", "advance"), revert("c", "b"), bot("b", "chat", "advance")],
     {"chat": ("f", "e", "advance")}),
])
def test_the_newest_word_on_each_model_decides(history: list[Commit], held: dict[str, tuple[str, str, str]]) -> None:
    found, _ = _read(None, history, MODELS)  # type: ignore[arg-type]  (every reverted commit is in the window)
    assert {m: (r.sha[0], r.reverted[0], r.action) for m, r in found.items()} == held


def decision(action: Action) -> Decision:
    return Decision("staging", "chat", "1.3.0", "1.2.0", action, T, stage=1, next_stage=2, weight=5,
                    previous_weight=1, reasons=("gates pass",))


@pytest.mark.parametrize(("action", "held"), [
    (Action.ADVANCE, True), (Action.PROMOTE, True), (Action.STOP, True), (Action.RETIRE, True),
    (Action.HOLD, True), (Action.WAIT, True), (Action.ROLLBACK, False),
])
def test_a_revert_holds_everything_but_a_rollback_and_says_so_first(action: Action, held: bool) -> None:
    """A wait or a hold on a reverted rollout leads with the revert too: the stage clock or a gate
    is not what keeps it where it is."""
    by = Revert("c" * 40, "b" * 40, "advance", T)
    out = respect_revert(decision(action), by)
    assert (out != decision(action)) == held
    if held:
        assert out.action is Action.HOLD
        assert (out.next_stage, out.weight) == (1, 1)  # stays where it is
        assert out.reasons == ("held: cccccccccccc reverted the reconciler's advance bbbbbbbbbbbb at "
                               f"2026-11-22T10:00:00Z; it would {action} now. Run `reconciler resume chat -e "
                               "staging` to go on, or `reconciler rollback` to end it", "gates pass")
    assert respect_revert(decision(action), None) == decision(action)
