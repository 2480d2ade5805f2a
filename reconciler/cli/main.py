"""`reconciler` entry point: argument parsing and the one boundary that maps errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

from . import exit_codes

# verb -> (module under reconciler.cli, one-line help)
COMMANDS = {
    "validate": ("validate", "check every release and environment file; exit 1 on errors"),
    "status": ("status", "what runs where: stable, candidate, standby and stage per environment and model"),
    "render": ("render", "write the Kubernetes and Istio manifests of an environment (for kubectl or Argo CD)"),
    "preview": ("preview", "offline preview: the program under mocks, judged by the policy pack over gRPC"),
    "start": ("start", "begin a rollout: candidate at stage 0 after the pre-deployment gates, committed"),
    "reconcile": ("reconcile", "one pass over every in-flight rollout: advance, hold, promote or roll back, committed"),
    "rollback": ("rollback", "roll a model back by hand (candidate withdrawn, or back to the standby), committed"),
    "plan": ("plan", "what a change does against a base ref: releases, traffic moved, pointers, checks (a PR comment)"),
    "release": ("release", "write the next release: `release new MODEL --bump ...` from the stable, `release import` from MLflow or DVC"),
    "eval": ("eval", "the offline evaluation of a release against OpenAI-compatible endpoints: an artifact with "
                     "provenance, and the release's numbers from it"),
    "lineage": ("lineage", "the audit trail of a version: its chain back to the first release, and where each served"),
    "report": ("report", "an HTML report of a rollout: traffic weight and gate metrics over time, and its commits"),
    "resume": ("resume", "let a rollout go on after a person's git revert held it (its stage's clock restarts)"),
    "schema": ("schema", "write JSON Schemas for release and environment files (for editors and CI)"),
}


class UsageError(Exception):
    """Raised by commands for bad arguments or unreadable input: exit 2."""


def _module(name: str):
    return importlib.import_module(f"reconciler.cli.{name}")


def add_repo_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, default=Path("."),
                        help="the repository root (default: the current directory)")


def add_format_argument(parser: argparse.ArgumentParser, *choices: str) -> None:
    parser.add_argument("--format", choices=choices or ("text", "json"), default=(choices or ("text",))[0],
                        help="output format (default: %(default)s)")


def add_base_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--base", metavar="REF", required=required,
                        help="the git ref the change merges into, e.g. origin/main: released files (there) may not "
                             "change")


def base_repository(path: Path, ref: str | None):
    """What `ref` has released, for `load_repository`, or None without a ref; an unreadable ref is
    a usage error."""
    if ref is None:
        return None
    from ..adapters.base_ref import BaseRefError, load_base

    try:
        return load_base(path, ref)
    except BaseRefError as err:
        raise UsageError(str(err)) from None


def load_valid_repository(path: Path, command: str):
    """The loaded repository, or None after printing its errors to stderr (the caller exits 1)."""
    from ..adapters.repo_loader import load_repository

    result = load_repository(path)
    if not result.errors:
        return result.repository
    print_repository_errors(result.errors, command)
    return None


def print_repository_errors(errors: list, command: str) -> None:
    from .reporters import print_errors

    print_errors(errors, f"reconciler {command}: {len(errors)} error(s): run `reconciler validate` and fix them first")


def load_deployable(path: Path, environment: str, command: str):
    """The valid repository holding `environment`; None after printing errors (exit 1), UsageError
    for an environment the repository does not have (exit 2)."""
    repo = load_valid_repository(path, command)
    if repo is not None and environment not in repo.environments:
        raise UsageError(f"no environments/{environment}.yaml (known: {', '.join(sorted(repo.environments))})")
    return repo


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if isinstance(args, int):
        return args
    from ..adapters.repo_loader import NotARepository

    try:
        code = _module(COMMANDS[args.command][0]).run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `reconciler preview | head`: the reader has what it wanted; say nothing more, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_codes.OK
    except (UsageError, NotARepository) as err:
        print(f"reconciler {args.command}: {err}", file=sys.stderr)
        return exit_codes.USAGE
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        print(f"reconciler {args.command}: cannot read{where}: {err.strerror or err}", file=sys.stderr)
        return exit_codes.USAGE


def parse_time(text: str):
    """`--at 2026-11-22T10:00:00Z`: an ISO 8601 instant with its zone (Z or +01:00)."""
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2026-11-22T10:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +01:00")
    return value


def add_prometheus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", metavar="URL", help="query this Prometheus instead of the environment's own")
    parser.add_argument("--allow-link-local", action="store_true",
                        help="let --prometheus name a link-local or cloud metadata address (as an environment's "
                             "metrics.allow_link_local)")


def checked_prometheus_url(url: str | None, allow_link_local: bool) -> str | None:
    """`--prometheus URL` under the environment files' rule (core/urls.py); UsageError when refused."""
    from ..core.urls import ALLOW_FLAG, prometheus_url_problem, redact_url

    if url is None:
        return None
    problem = prometheus_url_problem(url, allow_link_local=allow_link_local, allow_how=ALLOW_FLAG)
    if problem:
        raise UsageError(f"--prometheus {redact_url(url, '')}: {problem}")
    return url


def add_at_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--at", type=parse_time, metavar="TIME", help=f"{what} (ISO 8601, e.g. 2026-11-22T10:00:00Z; "
                        "default: now)")


def add_lock_timeout_argument(parser: argparse.ArgumentParser) -> None:
    """--lock-timeout for the commands that commit: how long to wait for another one on the checkout."""
    parser.add_argument("--lock-timeout", default="60s", metavar="DURATION",
                        help="wait this long for another reconciler command writing to the same checkout, then "
                        f"exit {exit_codes.LOCKED} naming it (default 60s; 0s: do not wait)")


def lock_timeout_seconds(text: str) -> float:
    from ..core.types import explained, parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as err:
        raise UsageError(f"--lock-timeout: {explained(err)}") from None


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """Lazy parser: `--help` without a verb needs no command module imported."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        commands = "\n".join(f"  {verb:<10} {text}" for verb, (_, text) in COMMANDS.items())
        parser = argparse.ArgumentParser(
            prog="reconciler", usage="reconciler COMMAND [options]  (reconciler COMMAND --help for more)",
            description="Sluice: ship new versions of large language models from git, safely.",
            epilog=f"commands:\n{commands}", formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.print_help(sys.stdout if argv else sys.stderr)
        return exit_codes.OK if argv else exit_codes.USAGE
    if argv[0] not in COMMANDS:
        print(f"reconciler: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return exit_codes.USAGE
    verb = argv[0]
    module_name, help_text = COMMANDS[verb]
    parser = argparse.ArgumentParser(prog=f"reconciler {verb}", description=help_text)
    _module(module_name).add_arguments(parser)
    try:
        args = _parse_intermixed(parser, argv[1:])
    except SystemExit as exit_:
        return exit_codes.USAGE if exit_.code else exit_codes.OK
    args.command = verb
    return args


def _parse_intermixed(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Options and positionals in any order: `start MODEL VERSION -e ENV PATH` as well as
    `start MODEL VERSION PATH -e ENV` (plain parse_args gives the optional PATH up too early).
    A verb with actions of its own (`release new ...`) is parsed by the chosen action's parser."""
    actions = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if actions is None:
        return parser.parse_intermixed_args(argv)
    chosen = next((i for i, arg in enumerate(argv) if arg in actions.choices), None)
    if chosen is None:
        return parser.parse_args(argv)  # prints the usage and the valid actions
    args = actions.choices[argv[chosen]].parse_intermixed_args(argv[chosen + 1:])
    setattr(args, actions.dest, argv[chosen])
    return args
