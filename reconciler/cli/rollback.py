"""`reconciler rollback MODEL --environment ENV --reason TEXT [PATH] [--at TIME] [--push]`: the
manual rollback, as a commit (the same commit `git revert` of the last advance would not be:
this one withdraws the candidate whatever its stage, writes the incident record and notifies).

With a candidate in flight, traffic goes back to stable; with none, back to the standby, which
becomes stable. Exit 0 committed, 1 the repository has errors, 2 nothing to roll back / usage.
"""

from __future__ import annotations

import argparse

from .hand_actions import add_reasoned_arguments, carry_out, one_line_reason
from .main import lock_timeout_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_reasoned_arguments(parser, "why, for the commit, the incident record and on-call",
                           "record TIME as the rollback's time instead of now (replays, tests)")


def run(args: argparse.Namespace) -> int:
    from ..adapters.rollout_pass import rollback_by_hand

    reason = one_line_reason(args.reason)
    wait = lock_timeout_seconds(args.lock_timeout)
    return carry_out("rollback", lambda: rollback_by_hand(args.path, args.environment, args.model, reason,
                                                          at=args.at, push=args.push, lock_timeout=wait))
