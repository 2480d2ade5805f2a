"""One writer per checkout: the lock that a reconcile pass and `start` / `rollback` / `resume` take.

Two passes on one checkout (a `--watch` loop and an on-call's manual pass) used to collide on
git's own `index.lock`; the loser could leave an edit behind. So every command that commits takes
this lock first and holds it until it has finished with git and the working tree:

- It is `fcntl.flock` on `.git/sluice.lock` (in the git directory, so it is never committed).
  The kernel drops it when the holder dies, even by `kill -9`: there is never a stale lock to
  delete by hand. The file itself stays; its content only names the last holder.
- The holder writes who it is into the file (pid, host, command, start time), so a pass that
  cannot get the lock says who has it.
- A waiting pass polls for a bounded time (`DEFAULT_TIMEOUT`, `--lock-timeout`), then gives up
  with `CheckoutLocked`, which the CLI maps to its own exit code.
- The lock's descriptor is handed to the git processes the holder starts (see
  `GitRepository.keep_open`): a git child that outlives a killed pass keeps the checkout locked
  until it is done, so the next pass never races the remains of the last one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = "sluice.lock"
DEFAULT_TIMEOUT = 60.0  # seconds: longer than a pass over hundreds of rollouts, shorter than a cron period
_POLL = 0.05


class CheckoutLocked(Exception):
    """Another process held the checkout's lock for longer than we were willing to wait."""

    def __init__(self, path: Path, holder: str, waited: float) -> None:
        self.path, self.holder, self.waited = path, holder, waited
        super().__init__(
            f"another reconciler is writing to this checkout: {holder or 'a process that has not said who it is'} "
            f"holds {path} (waited {waited:g} s). It is released when that process ends; if it is stuck, stop "
            "it (docs/runbook.md, \"The checkout's lock\"), or wait longer with --lock-timeout")


class LockUnavailable(Exception):
    """The lock file cannot be created or opened (a read-only checkout, say)."""


@contextmanager
def checkout_lock(git_dir: Path, command: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[int]:
    """Hold the checkout's lock for the `with` block; yields the lock's file descriptor."""
    path = git_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise LockUnavailable(f"cannot open the checkout's lock {path}: {err.strerror}; a pass that commits "
                              "needs to write to the checkout and its .git directory (use --dry-run to only "
                              "decide)") from None
    try:
        _acquire(fd, path, timeout)
        _name_holder(fd, command)
        yield fd
    finally:
        os.close(fd)  # releases the flock (git children that inherited it keep it until they exit)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockUnavailable(f"cannot lock {path}: {err.strerror}") from None
        waited = time.monotonic() - started
        if waited >= timeout:
            raise CheckoutLocked(path, holder(path), round(waited, 1))
        time.sleep(min(_POLL, max(timeout - waited, 0.0)))


def _name_holder(fd: int, command: str) -> None:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"pid {os.getpid()} on {socket.gethostname()}, `reconciler {command}`, since {started}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


def holder(path: Path) -> str:
    """Who holds (or last held) the lock, as its holder wrote it; "" when nobody said."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
