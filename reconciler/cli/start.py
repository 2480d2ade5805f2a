"""`reconciler start MODEL VERSION --environment ENV [PATH] [--at TIME] [--push]`: begin a rollout.

Checks the pre-deployment gates (toxicity, win rate, adversarial suite against the stable
version), that no other candidate is in flight and that the edited repository still validates
(approvals, capacity); then sets the candidate at stage 0 and commits. Nothing is written when a
check fails. Exit 0 committed, 1 a gate or rule refused it, 2 usage errors.
"""

from __future__ import annotations

import argparse

from .hand_actions import add_common_arguments, carry_out
from .main import lock_timeout_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model")
    parser.add_argument("version", help="the release to roll out: releases/MODEL/VERSION.yaml")
    add_common_arguments(parser, "record TIME as the stage's start instead of now (replays, tests)")


def run(args: argparse.Namespace) -> int:
    from ..adapters.rollout_pass import start_rollout

    wait = lock_timeout_seconds(args.lock_timeout)
    return carry_out("start", lambda: start_rollout(args.path, args.environment, args.model, args.version,
                                                    at=args.at, push=args.push, lock_timeout=wait))
