"""From a checkout to the desired state of one environment, refusing a repository with errors.

Shared by the Pulumi program and `reconciler render`, so both refuse the same repositories with
the same messages as `reconciler validate`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..cli.reporters import finding_line
from ..core.desired import DesiredState, NotDeployable, desired_state
from .repo_loader import load_repository


def fetch_script() -> str:
    """The init container's download-and-verify script, shipped to the cluster in a ConfigMap."""
    return files("reconciler.runtime").joinpath("fetch_bundle.py").read_text(encoding="utf-8")


def load_desired_state(root: Path, environment: str) -> DesiredState:
    loaded = load_repository(root)
    if loaded.errors:
        lines = "\n".join(finding_line(f) for f in loaded.errors)
        raise NotDeployable(f"the repository has {len(loaded.errors)} error(s); nothing was deployed:\n{lines}")
    return desired_state(loaded.repository, environment, fetch_script())
