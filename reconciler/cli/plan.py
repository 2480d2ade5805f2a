"""`reconciler plan --base REF [--format markdown|json|text] [--no-program] [PATH]`: what this change
does against the base ref, for a pull-request comment a reviewer reads in ten seconds.

Exit 0 when the change can merge, 1 when it has errors (validate's, released files edited,
semver) or a mandatory policy violation, 2 for usage errors (an unreadable ref). The plan is
printed either way, so CI can post it and then fail.
"""

from __future__ import annotations

import argparse

from . import exit_codes
from .main import UsageError, add_base_argument, add_format_argument, add_repo_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_base_argument(parser, required=True)
    add_format_argument(parser, "markdown", "text", "json")
    parser.add_argument("--no-program", action="store_true",
                        help="skip running the Pulumi program (resources and policy results): the file-level "
                             "plan only, fastest")


def run(args: argparse.Namespace) -> int:
    from ..adapters.base_ref import BaseRefError
    from ..adapters.planning import make_plan
    from .plan_reporters import REPORTERS, blocked

    try:
        result = make_plan(args.path, args.base, run_program=not args.no_program)
    except BaseRefError as err:
        raise UsageError(str(err)) from None
    print(REPORTERS[args.format](result))
    return exit_codes.FINDINGS if blocked(result) else exit_codes.OK
