"""`reconciler validate [PATH] [--base REF] [--format text|json] [--at TIME]`: every problem in the
repository, in one run; with --base, also what the change does to released files (they may not
change). The clock is read here, once (the core has none): no stage may start after now (--at)."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from . import exit_codes
from .main import add_at_argument, add_base_argument, add_format_argument, add_repo_argument, base_repository


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_format_argument(parser, "text", "json")
    add_base_argument(parser)
    add_at_argument(parser, "check times as of TIME (a stage_started_at later than it is an error)")


def run(args: argparse.Namespace) -> int:
    from ..adapters.repo_loader import load_repository
    from .reporters import findings_json, findings_text

    result = load_repository(args.path, base_repository(args.path, args.base),
                             now=args.at or datetime.now(timezone.utc))
    render = findings_json if args.format == "json" else findings_text
    print(render(result.findings, result.files))
    return exit_codes.FINDINGS if result.errors else exit_codes.OK
