"""A real DVC repository for tests: the dvc CLI run from this Python, with no user or system config.

`isolated_dvc(base)` keeps DVC (and git) away from the machine's own configuration, analytics
and updater; `new_dvc_repo` makes a git work tree with `dvc init` and files added.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def isolated_dvc(base: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"DVC_NO_ANALYTICS": "1", "DVC_DAEMON": "1",  # no analytics, no updater
                            "DVC_GLOBAL_CONFIG_DIR": str(base / "global"),
                            "DVC_SYSTEM_CONFIG_DIR": str(base / "system"),
                            "DVC_SITE_CACHE_DIR": str(base / "site"),
                            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                            "HOME": str(base)}.items():
            env.setenv(name, value)
        yield


def dvc(cwd: Path, *args: str) -> str:
    """Run the real dvc CLI; fail the test with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def new_dvc_repo(root: Path, files: dict[str, bytes], tracked: list[str]) -> None:
    """A git work tree with `dvc init`, the files written and `tracked` (files or folders) added."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=30)
    dvc(root, "init", "-q")
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    dvc(root, "add", "-q", *tracked)


def add_remote_in_config(root: Path, name: str, url: str, level: str = "repo", **options: object) -> None:
    """What `dvc remote add [--local] NAME URL` (and `dvc remote modify`) write, through DVC's own
    config editor in this process: a dvc start for each would cost a second on a busy machine."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.config.edit(level) as config:
        config["remote"][name] = {"url": url, **options}


def set_default_remote(root: Path, name: str) -> None:
    """What `dvc remote default NAME` writes, in this process."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo, repo.config.edit("repo") as config:
        config["core"]["remote"] = name
