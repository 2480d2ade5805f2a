"""`reconciler release new|import`: write the next release file of a model from its current stable.

`release new MODEL --bump major|minor|patch [--from VERSION] [-e ENV] [PATH]` copies the parent
with lineage pointing at it and what must be measured anew (evaluation, revision, approvals) left
empty and marked TODO.

`release import MODEL --mlflow models:/<name>/<version> [--dvc SLOT=FILE.dvc ...] ...` does the
same, then sets what MLflow's registry and DVC's .dvc files supply (each value commented with its
source), with the version the semver rules require for those changes.

Exit 0 once written; 2 when the model, parent, source or version does not allow it (nothing written).
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
    _add_import_parser(verbs)


def _add_import_parser(verbs) -> None:
    about = "write the next release of a model from an MLflow registered version and/or DVC-tracked files"
    parser = verbs.add_parser("import", help=about, description=about + " (docs/mlflow.md, docs/dvc.md)")
    parser.add_argument("model", metavar="MODEL")
    parser.add_argument("--mlflow", metavar="MODELS_URI",
                        help="the registered version: models:/<name>/<version> or models:/<name>@<alias>")
    parser.add_argument("--tracking-uri", metavar="URI", help="the MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--artifacts-destination", metavar="URI",
                        help="where a proxying MLflow server stores artifacts, as the serving pods reach it "
                             "(its --artifacts-destination), e.g. s3://acme-mlflow/artifacts")
    parser.add_argument("--artifact", action="append", default=[], metavar="SLOT=PATH", type=_slot_value,
                        help="take a bundle slot from this file of the MLflow version (default: by file name, "
                             "see docs/mlflow.md); repeatable")
    parser.add_argument("--dvc", action="append", default=[], metavar="SLOT=FILE.dvc", type=_slot_value,
                        help="take a bundle slot or the dataset from a DVC-tracked file; repeatable; "
                             "wins over MLflow for the same slot")
    parser.add_argument("--dvc-remote", metavar="NAME", help="the DVC remote the pods fetch from (default: DVC's default)")
    parser.add_argument("--bump", choices=("major", "minor", "patch"),
                        help="default: what the imported changes require (new weights: minor)")
    parser.add_argument("--from", dest="parent", metavar="VERSION",
                        help="the parent release (default: the model's stable, the highest across environments)")
    parser.add_argument("-e", "--environment", metavar="ENV", help="take the parent from this environment's stable")
    add_repo_argument(parser)


def _slot_value(text: str) -> tuple[str, str]:
    slot, sep, value = text.partition("=")
    if not sep or not slot or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: write SLOT=VALUE, e.g. weights=models/model.tar.dvc")
    return slot, value


def run(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _run_import(args)
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


def _run_import(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ..adapters.git import GitRepository
    from ..adapters.release_scaffold import ScaffoldError, choose_parent, scaffold
    from ..adapters.repo_loader import load_repository
    from ..core.release_import import ARTIFACT_SLOTS, DATASET_SLOT, ImportRefused, plan_import
    from ..core.semver import Bump

    if not args.mlflow and not args.dvc:
        raise UsageError("nothing to import: pass --mlflow models:/<name>/<version> and/or --dvc SLOT=FILE.dvc")
    if args.artifact and not args.mlflow:
        raise UsageError("--artifact names a file of the MLflow version: pass --mlflow too")
    for flag, pairs, allowed in (("--artifact", args.artifact, list(ARTIFACT_SLOTS)),
                                 ("--dvc", args.dvc, [*ARTIFACT_SLOTS, DATASET_SLOT])):
        for slot, _ in pairs:
            if slot not in allowed:
                raise UsageError(f"{flag} {slot}=...: unknown slot; use one of {', '.join(allowed)}")
    repo = load_repository(args.path).repository
    try:
        parent, why = choose_parent(repo, args.model, args.environment, args.parent)
        imports = _gather(args)
        plan = plan_import(repo.release(args.model, parent), imports,
                           Bump[args.bump.upper()] if args.bump else None)
        path, todo = scaffold(args.path, repo, args.model, parent, plan.bump, datetime.now(timezone.utc),
                              GitRepository(args.path).config("user.email"), plan)
    except (ScaffoldError, ImportRefused) as err:
        raise UsageError(str(err)) from None
    from .release_reporters import import_summary

    print(import_summary(args.model, path, parent, why, plan, imports, todo))
    return exit_codes.OK


def _gather(args: argparse.Namespace) -> list:
    """Each source read through its own library; MLflow first, so a .dvc file wins for its slot."""
    from pathlib import Path

    from ..core.release_import import ImportRefused, reference_import

    imports = []
    if args.mlflow:
        from ..adapters.mlflow_registry import read_registered_version
        from ..core.mlflow_mapping import import_version

        version, files = read_registered_version(args.mlflow, args.tracking_uri, dict(args.artifact),
                                                 args.artifacts_destination)
        imports.append(import_version(version, files))
    if args.dvc:
        from ..adapters.dvc_reference import DvcReferenceError, read_dvc_reference

        for slot, dvc_file in args.dvc:
            try:
                reference = read_dvc_reference(Path(dvc_file), args.dvc_remote)
            except DvcReferenceError as err:
                raise ImportRefused(str(err)) from None
            imports.append(reference_import(slot, reference.artifact(), f"DVC {dvc_file}"))
    return imports
