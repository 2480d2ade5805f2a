"""What `start`, `rollback` and `resume` share: their options, the one-line reason, and one boundary
from errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from . import exit_codes
from .main import UsageError, add_at_argument, add_lock_timeout_argument, add_repo_argument


def add_common_arguments(parser: argparse.ArgumentParser, at_help: str) -> None:
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", required=True, help="the environment (environments/<ENV>.yaml)")
    add_at_argument(parser, at_help)
    parser.add_argument("--push", action="store_true", help="push the commit to origin")
    add_lock_timeout_argument(parser)


def add_reasoned_arguments(parser: argparse.ArgumentParser, reason_help: str, at_help: str) -> None:
    """MODEL, --reason and the common options: what `rollback` and `resume` take."""
    parser.add_argument("model")
    parser.add_argument("--reason", required=True, help=reason_help)
    add_common_arguments(parser, at_help)


def one_line_reason(text: str) -> str:
    """--reason becomes a commit trailer and a page: it must say something, on one line."""
    if not text.strip():
        raise UsageError("--reason is empty: say why, for the commit, the incident record and on-call")
    if "\n" in text or "\r" in text:
        raise UsageError("--reason must be one line (it becomes a commit trailer); put details in the incident "
                         "record afterwards")
    return text


def carry_out(command: str, action: Callable[[], object]) -> int:
    from ..adapters.git import GitError
    from ..adapters.rollout_pass import CheckoutLocked, GatesFailed, InvalidRepository, RolloutError
    from .reporters import print_errors, print_failed_deliveries

    try:
        applied = action()
    except InvalidRepository as err:
        print_errors(err.findings, f"reconciler {command}: refused: the repository would have "
                     f"{len(err.findings)} error(s); nothing was written")
        return exit_codes.FINDINGS
    except CheckoutLocked as err:
        print(f"reconciler {command}: {err}; nothing was written", file=sys.stderr)
        return exit_codes.LOCKED
    except GatesFailed as err:
        print(f"reconciler {command}: {err}; nothing was written", file=sys.stderr)
        return exit_codes.FINDINGS
    except RolloutError as err:
        raise UsageError(str(err)) from None
    except GitError as err:
        raise UsageError(str(err)) from None
    decision = applied.decision  # type: ignore[attr-defined]
    print(f"{decision.environment} {decision.model} {decision.candidate}: {decision.action}")
    for reason in decision.reasons:
        print(f"    {reason}")
    print(f"committed {applied.commit[:12]}" + (f", incident {applied.incident}" if applied.incident else ""))  # type: ignore[attr-defined]
    print_failed_deliveries(command, [applied], name_the_action=False)
    return exit_codes.OK
