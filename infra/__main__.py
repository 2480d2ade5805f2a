"""The Pulumi program: stack config -> load the repository -> components -> exports.

A pure function of the commit plus stack config (no clock, no network). It refuses to run on a
repository with errors, so `pulumi preview` fails with the same messages as `reconciler validate`.
The components (GPU pools, serving stacks, ConfigMaps, Istio routes) arrive with issue 3; today
the program exports the traffic split it would deploy.
"""

from pathlib import Path

import pulumi

from reconciler.adapters.repo_loader import load_repository
from reconciler.cli.reporters import finding_line
from reconciler.core.traffic import traffic_split

REPO_ROOT = Path(__file__).resolve().parents[1]

environment = pulumi.Config("sluice").require("environment")
loaded = load_repository(REPO_ROOT)
if loaded.errors:
    raise pulumi.RunError("the repository has errors:\n" + "\n".join(finding_line(f) for f in loaded.errors))
repo = loaded.repository
if environment not in repo.environments:
    raise pulumi.RunError(f"no environments/{environment}.yaml (known: {', '.join(sorted(repo.environments))})")

env = repo.environments[environment]
for model, deployment in sorted(env.models.items()):
    candidate = repo.release(model, deployment.candidate) if deployment.candidate else None
    pulumi.export(f"{model}.weights", traffic_split(deployment, candidate).weights)
