"""`reconciler resume MODEL --environment ENV --reason TEXT [PATH] [--at TIME] [--push]`: let a
rollout go on after a person's `git revert` of one of the reconciler's commits held it.

The revert stays in history; this commit (`Sluice-Action: resume`) restarts the current stage's
clock, so the stage is judged afresh from now. Exit 0 committed, 1 the repository has errors,
2 nothing held / usage.
"""

from __future__ import annotations

import argparse

from .hand_actions import add_reasoned_arguments, carry_out, one_line_reason
from .main import lock_timeout_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_reasoned_arguments(parser, "why it may go on, for the commit and on-call",
                           "record TIME as the resume's time instead of now (replays, tests)")


def run(args: argparse.Namespace) -> int:
    from ..adapters.rollout_pass import resume_by_hand

    reason = one_line_reason(args.reason)
    wait = lock_timeout_seconds(args.lock_timeout)
    return carry_out("resume", lambda: resume_by_hand(args.path, args.environment, args.model, reason,
                                                      at=args.at, push=args.push, lock_timeout=wait))
