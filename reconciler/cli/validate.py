"""`reconciler validate [PATH] [--format text|json]`: every problem in the repository, in one run."""

from __future__ import annotations

import argparse

from . import exit_codes
from .main import add_format_argument, add_repo_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_format_argument(parser, "text", "json")


def run(args: argparse.Namespace) -> int:
    from ..adapters.repo_loader import load_repository
    from .reporters import findings_json, findings_text

    result = load_repository(args.path)
    render = findings_json if args.format == "json" else findings_text
    print(render(result.findings, result.files))
    return exit_codes.FINDINGS if result.errors else exit_codes.OK
