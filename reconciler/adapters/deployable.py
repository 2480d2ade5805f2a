"""From a checkout to the desired state of one environment, refusing a repository with errors.

Shared by the Pulumi program and `reconciler render`, so both refuse the same repositories with
the same messages as `reconciler validate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from ..core.desired import DesiredState, NotDeployable, desired_state
from ..core.findings import finding_line
from ..core.repository import Repository
from .repo_loader import load_repository


def fetch_script() -> str:
    """The init container's download-and-verify script, shipped to the cluster in a ConfigMap."""
    return files("reconciler.runtime").joinpath("fetch_bundle.py").read_text(encoding="utf-8")


_PRELOADED: dict[Path, Repository] = {}


@contextmanager
def preloaded(root: Path, repository: Repository) -> Iterator[None]:
    """Within the block, a program run in this process takes `repository` (already loaded and found
    valid by the caller) for `root` instead of reading and checking all its files a second time."""
    key = root.resolve()
    _PRELOADED[key] = repository
    try:
        yield
    finally:
        _PRELOADED.pop(key, None)


def load_desired_state(root: Path, environment: str) -> DesiredState:
    repository = _PRELOADED.get(root.resolve())
    if repository is not None:
        return desired_state(repository, environment, fetch_script())
    loaded = load_repository(root)
    if loaded.errors:
        lines = "\n".join(finding_line(f) for f in loaded.errors)
        raise NotDeployable(f"the repository has {len(loaded.errors)} error(s); nothing was deployed:\n{lines}")
    return desired_state(loaded.repository, environment, fetch_script())
