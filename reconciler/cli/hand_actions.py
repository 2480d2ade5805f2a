"""What `start` and `rollback` share: their options, and one boundary from errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from . import exit_codes
from .main import UsageError, add_at_argument, add_repo_argument


def add_common_arguments(parser: argparse.ArgumentParser, at_help: str) -> None:
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", required=True, help="the environment (environments/<ENV>.yaml)")
    add_at_argument(parser, at_help)
    parser.add_argument("--push", action="store_true", help="push the commit to origin")


def carry_out(command: str, action: Callable[[], object]) -> int:
    from ..adapters.git import GitError
    from ..adapters.rollout_pass import GatesFailed, InvalidRepository, RolloutError
    from .reporters import print_errors, print_failed_deliveries

    try:
        applied = action()
    except InvalidRepository as err:
        print_errors(err.findings, f"reconciler {command}: refused: the repository would have "
                     f"{len(err.findings)} error(s); nothing was written")
        return exit_codes.FINDINGS
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
