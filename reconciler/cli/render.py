"""`reconciler render --environment ENV [--out DIR] [PATH]`: the Kubernetes and Istio manifests of
an environment's desired state, for teams that apply with kubectl or Argo CD instead of Pulumi.

Without --out the manifests go to stdout as one YAML stream. Exit 1 if the repository has errors
(nothing is written), 2 for an unknown environment or an output directory Sluice does not own.
The GPU node pools are AWS resources, not manifests: the Pulumi program manages them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import exit_codes
from .main import UsageError, add_repo_argument, load_deployable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument("--environment", "-e", required=True, help="the environment (environments/<ENV>.yaml)")
    parser.add_argument("--out", type=Path,
                        help="write one file per object into this directory (replaced as a whole)")


def run(args: argparse.Namespace) -> int:
    from ..adapters.deployable import fetch_script
    from ..adapters.manifest_files import NotRenderDirectory, manifests_stream, write_manifest_dir
    from ..core.desired import desired_state

    repo = load_deployable(args.path, args.environment, "render")
    if repo is None:
        return exit_codes.FINDINGS
    state = desired_state(repo, args.environment, fetch_script())
    header = f"# Rendered by `reconciler render --environment {args.environment}`; edit the release files, not this.\n"
    manifests = state.manifests()
    pools = ", ".join(p.pool.name for p in state.node_pools)
    if args.out is None:
        sys.stdout.write(manifests_stream(manifests, header))
    else:
        try:
            written = write_manifest_dir(args.out, manifests, header)
        except NotRenderDirectory as err:
            raise UsageError(str(err)) from None
        print(f"reconciler render: wrote {len(written)} manifests for {args.environment} to {args.out}")
    print(f"reconciler render: GPU node pools ({pools}) are AWS resources; the Pulumi program manages them",
          file=sys.stderr)
    return exit_codes.OK
