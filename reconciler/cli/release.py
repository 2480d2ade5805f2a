"""`reconciler release new MODEL --bump major|minor|patch [--from VERSION] [-e ENV] [PATH]`: write the
next release file from the current stable, with lineage pointing at it and what must be measured
anew (evaluation, revision, approvals) left empty and marked TODO. Exit 0 once written, 2 when
the model, parent or target version does not allow it.
"""

from __future__ import annotations

import argparse

from . import exit_codes
from .main import UsageError, add_repo_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = verbs.add_parser("new", help="scaffold the next release of a model from its current stable",
                           description="scaffold the next release of a model from its current stable")
    new.add_argument("model", metavar="MODEL")
    new.add_argument("--bump", required=True, choices=("major", "minor", "patch"),
                     help="major: new base model or architecture; minor: new weights, data or prompt; "
                          "patch: parameters, config, image")
    new.add_argument("--from", dest="parent", metavar="VERSION",
                     help="the parent release (default: the model's stable, the highest across environments)")
    new.add_argument("-e", "--environment", metavar="ENV", help="take the parent from this environment's stable")
    add_repo_argument(new)


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..adapters.git import GitRepository
    from ..adapters.repo_loader import load_repository
    from ..adapters.release_scaffold import ScaffoldError, choose_parent, scaffold
    from ..core.semver import Bump

    # Only the parent must parse: another release still being filled in must not stop this one.
    repo = load_repository(args.path).repository
    try:
        parent, why = choose_parent(repo, args.model, args.environment, args.parent)
        path, todo = scaffold(args.path, repo, args.model, parent, Bump[args.bump.upper()],
                              datetime.now(timezone.utc), GitRepository(args.path).config("user.email"))
    except ScaffoldError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {path}: {args.model} {path.rsplit('/', 1)[-1].removesuffix('.yaml')} from {parent} ({why})")
    print("fill in (marked TODO(sluice) in the file): " + ", ".join(todo))
    print(f"the bundle is still {parent}'s: point what changed at the new files with their sha256, then run "
          "`reconciler validate`")
    return exit_codes.OK
