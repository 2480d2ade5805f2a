"""The repository as a git ref has it (the base of a pull request), read without touching the
working tree: `git archive` of releases/ and environments/ into a temporary directory, plus what
the ref's history released in files its tip no longer has (adapters/history.py).

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
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.immutability import Released
from ..core.repository import Repository
from .git import GitError
from .history import read_release_history
from .repo_loader import load_repository

FOLDERS = ("releases", "environments")


class BaseRefError(ValueError):
    """The base ref cannot be read from git."""


def export_base(root: Path, ref: str, dest: Path, with_program: bool = False) -> None:
    """The ref's releases and environments into `dest`; with this checkout's program when asked
    (so a preview of the base runs today's code over yesterday's files)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-tree", "--name-only", ref, "--", *FOLDERS],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        hint = " (in CI, fetch the history: actions/checkout with fetch-depth: 0)" if "origin/" in ref else ""
        raise BaseRefError(f"cannot read {ref!r} from git in {root}: {listed.stderr.strip()}{hint}")
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
    """What the ref has released, as far as it parses."""
    with exported(root, ref) as tmp:
        return released(root, ref, load_repository(tmp).repository)


def released(root: Path, ref: str, tip: Repository) -> Released:
    """The ref's tip (loaded by the caller) and the history of the working tree's release files
    that the tip lacks."""
    at_tip = {entry.file for entry in tip.releases} | tip.broken_files
    judged = {rel: (root / rel).read_bytes() for rel in _release_files(root) if rel not in at_tip}
    try:
        history = read_release_history(root, ref, judged)
    except GitError as err:
        raise BaseRefError(f"cannot read the history of {ref!r} from git in {root}: {err.output}") from None
    return Released(tip, ref, history)


def _release_files(root: Path) -> list[str]:
    """releases/**/*.yaml in the working tree (regular files; the loader reports anything else)."""
    folder = root / "releases"
    return sorted(p.relative_to(root).as_posix() for p in folder.glob("**/*.yaml") if p.is_file()) \
        if folder.is_dir() else []
