"""The repository as a git ref has it (the base of a pull request), read without touching the
working tree: `git archive` of releases/, environments/ and evaluations/ into a temporary directory (for plan
and preview, which compare whole repositories); for the immutability check alone (`load_base`),
only the ref's release files whose bytes differ from the working tree's, plus what the ref's
history released in files its tip no longer has (adapters/history.py).

A ref that git cannot read is a `BaseRefError` (a usage error: a CI checkout without history
usually needs `fetch-depth: 0`). The base is loaded for comparison only: its own problems are not
reported, since they are not this change's.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.immutability import Released
from ..core.repository import Repository, SourcedRelease
from .git import GitError
from .history import read_release_history, read_tip_releases

FOLDERS = ("releases", "environments", "evaluations")  # evaluations: the artifacts releases name


class BaseRefError(ValueError):
    """The base ref cannot be read from git."""


def export_base(root: Path, ref: str, dest: Path, with_program: bool = False) -> None:
    """The ref's releases and environments into `dest`; with this checkout's program when asked
    (so a preview of the base runs today's code over yesterday's files)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", ref, "--", *FOLDERS],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise _unreadable(root, ref, listed.stderr)
    folders = listed.stdout.split()
    if folders:
        archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", ref, "--", *folders],
                                 capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="data")
    for folder in FOLDERS:
        (dest / folder).mkdir(exist_ok=True)
    if with_program:
        shutil.copytree(root / "infra", dest / "infra", ignore=shutil.ignore_patterns("__pycache__"))


@contextmanager
def exported(root: Path, ref: str, with_program: bool = False) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sluice-base-") as tmp:
        export_base(root, ref, Path(tmp), with_program)
        yield Path(tmp)


def load_base(root: Path, ref: str) -> Released:
    """What the ref has released, for the immutability check: its release files that differ from
    the working tree's (as far as they parse), the names of all of them, and the history of the
    working tree's release files that the tip lacks."""
    now = _ReleaseFiles(root)
    try:
        files, differing = read_tip_releases(root, ref, now)
    except GitError as err:
        raise _unreadable(root, ref, err.output) from None
    tip = Repository(tuple(SourcedRelease(f, r) for f, r in differing.items() if r is not None),
                     broken_files=frozenset(f for f, r in differing.items() if r is None))
    return _with_history(root, ref, tip, files, now)


def released(root: Path, ref: str, tip: Repository) -> Released:
    """What the ref has released, its whole tip loaded by the caller (plan compares it all)."""
    files = frozenset(entry.file for entry in tip.releases) | tip.broken_files
    return _with_history(root, ref, tip, files, _ReleaseFiles(root))


def _with_history(root: Path, ref: str, tip: Repository, files: frozenset[str], now: Mapping[str, bytes]) -> Released:
    try:
        history = read_release_history(root, ref, {rel: now[rel] for rel in now if rel not in files})
    except GitError as err:
        raise _unreadable(root, ref, err.output) from None
    return Released(tip, ref, history, files)


def _unreadable(root: Path, ref: str, said: str) -> BaseRefError:
    hint = " (in CI, fetch the history: actions/checkout with fetch-depth: 0)" if "origin/" in ref else ""
    return BaseRefError(f"cannot read {ref!r} from git in {root}: {said.strip()}{hint}")


class _ReleaseFiles(Mapping[str, bytes]):
    """The working tree's releases/**/*.yaml (regular files; the loader reports anything else):
    path -> bytes, each file read when asked for, so 5,000 files are never in memory at once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        folder = root / "releases"
        self.files = frozenset(p.relative_to(root).as_posix() for p in folder.glob("**/*.yaml")
                               if p.is_file()) if folder.is_dir() else frozenset()

    def __getitem__(self, rel: str) -> bytes:
        if rel not in self.files:
            raise KeyError(rel)
        return (self.root / rel).read_bytes()

    def __contains__(self, rel: object) -> bool:
        return rel in self.files

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.files))

    def __len__(self) -> int:
        return len(self.files)
