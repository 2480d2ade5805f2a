"""`reconciler validate [PATH] [--base REF] [--format text|json]`: every problem in the repository, in
one run; with --base, also what the change does to released files (they may not change)."""

from __future__ import annotations

import argparse

from . import exit_codes
from .main import add_base_argument, add_format_argument, add_repo_argument, base_repository


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_format_argument(parser, "text", "json")
    add_base_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..adapters.repo_loader import load_repository
    from .reporters import findings_json, findings_text

    result = load_repository(args.path, base_repository(args.path, args.base))
    render = findings_json if args.format == "json" else findings_text
    print(render(result.findings, result.files))
    return exit_codes.FINDINGS if result.errors else exit_codes.OK
