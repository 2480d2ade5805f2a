"""The reconciler's hands on git: commit a decision, push it, and read earlier decisions back.

Git is the only state (README.md), so the choices here are about never leaving a half-made commit
and never pulling in someone else's work by mistake:

- We run the `git` executable, not a library. This adds no dependency, and credential helpers,
  `safe.directory` (and, for `commit`, hooks and signing) behave exactly as they do for the
  people who share the repository.
- `commit` runs `git add` and then `git commit --only` on the given paths. Other staged work
  stays staged and out of the commit. If anything fails, those paths are unstaged again, so the
  next run does not commit leftovers.
- Decision metadata are git trailers (`Sluice-Decision: advance`), written with `--trailer` and
  read with `%(trailers)`. Then `git log`, `git interpret-trailers` and code review tools all read
  them the same way the reconciler does.
- A push that loses a race (non-fast-forward) is a value (`PushResult.rejected`), not an
  exception. It is the normal case when two reconcilers or a person push at the same time: the
  caller fetches, resets to the new head and decides again. Anything else (unknown remote,
  authentication, a protected branch's hook) raises `GitError`.
- The bot's identity, `Sluice reconciler <reconciler@sluice.invalid>`, is used only where git has
  no identity configured, so an operator's configured identity (or GIT_AUTHOR_* variables) wins.
- Git never prompts (GIT_TERMINAL_PROMPT=0) and every call has a timeout. A cron job must fail,
  not hang on a credential prompt. Pathspecs are literal: `*` in a file name is a character.
- A pass's decisions are written by `commit_chain`, not `commit`: one `git fast-import` writes
  every commit (each on the one before) into the object store, touching no ref, index or
  working-tree file; `advance_head` then moves HEAD to the last one as a compare-and-swap, and
  only after that does the caller update the working tree and `sync_index`. A pass killed at any
  point leaves either no new commit, or complete commits with a working tree behind HEAD (which
  `behind_head` recognises and the next pass fixes), never a half-made commit or an edit that
  blocks the next pass. One process for the whole chain is what makes 130 commits take
  milliseconds instead of seconds. Like `git commit-tree`, it runs no commit hooks and does not
  sign; the message is cleaned up and its trailers added exactly as `git commit --trailer` does.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BOT_NAME = "Sluice reconciler"
BOT_EMAIL = "reconciler@sluice.invalid"
DEFAULT_TIMEOUT = 120.0  # seconds; a push over a slow link, not a hung credential prompt

_TRAILER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_FIELD, _TRAILER, _KEY_VALUE = "\x1f", "\x1e", "\x1d"
_TRAILER_FORMAT = "%(trailers:only,unfold,separator=%x1e,key_value_separator=%x1d)"
_LOG_FORMAT = f"%H%x1f%aI%x1f{_TRAILER_FORMAT}%x1f%s%x1f%b"
_PENDING_REF = "refs/sluice/pending"  # fast-import must name a ref; deleted once the chain is written
_REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{40})\b", re.MULTILINE)


class GitError(Exception):
    """A git command failed; the message names the command and what git said."""

    def __init__(self, command: Sequence[str], output: str, returncode: int | None = None) -> None:
        self.command = list(command)
        self.output = output.strip()
        self.returncode = returncode
        status = f" (exit {returncode})" if returncode is not None else ""
        super().__init__(f"`git {' '.join(self.command)}` failed{status}: {self.output or 'no output'}")


@dataclass(frozen=True)
class PushResult:
    ok: bool
    rejected: bool  # someone else pushed first: fetch, reset_hard and decide again
    message: str
    up_to_date: bool = False  # the remote had these very commits already (nothing new was pushed)


@dataclass(frozen=True)
class PlannedCommit:
    """A commit to make with `commit_chain`: the full new text of each changed file (paths
    relative to the repository root, `/`-separated), the message and its trailers."""

    files: Mapping[str, str]
    message: str
    trailers: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class Commit:
    sha: str
    subject: str
    date: datetime  # the author date: when the decision was made
    trailers: Mapping[str, list[str]] = field(default_factory=dict)
    reverts: str | None = None  # the commit `git revert` undid, from the message git writes


class GitRepository:
    """One working tree; paths are absolute or relative to `root`."""

    def __init__(self, root: Path, timeout: float = DEFAULT_TIMEOUT, keep_open: tuple[int, ...] = ()) -> None:
        self.root = Path(os.path.abspath(root))
        self.timeout = timeout
        self.keep_open = keep_open  # descriptors every git child inherits (the checkout's lock)

    # --- reading ---------------------------------------------------------------------------------

    def head(self) -> str:
        return self._git("rev-parse", "--verify", "HEAD^{commit}").strip()

    def branch(self) -> str:
        """The current branch's short name; GitError on a detached HEAD."""
        return self._git("symbolic-ref", "--short", "HEAD").strip()

    def current_branch(self) -> str | None:
        """The branch HEAD points at; None on a detached HEAD."""
        done = self._run(["symbolic-ref", "--quiet", "HEAD"])
        return done.stdout.strip().removeprefix("refs/heads/") if done.returncode == 0 else None

    def git_dir(self) -> Path:
        """This working tree's git directory (`.git`, or `.git/worktrees/<name>` in a linked worktree)."""
        return self._git_dir()

    def dirty_paths(self, paths: Iterable[Path] = ()) -> list[str]:
        """Paths (repository-relative) with staged, unstaged or untracked changes, under `paths`."""
        out = self._git("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--",
                        *self._pathspecs(paths))
        return sorted({entry[3:] for entry in out.split("\0") if len(entry) > 3})

    def is_clean(self, paths: Iterable[Path] = ()) -> bool:
        """No staged, unstaged or untracked changes at `paths` (the whole tree when empty)."""
        specs = self._pathspecs(paths)
        return self._git("status", "--porcelain", "-z", "--untracked-files=all", "--", *specs) == ""

    def config(self, key: str) -> str | None:
        """A git config value as this working tree sees it; None when unset or outside git."""
        try:
            done = self._run(["config", "--get", key])
        except GitError:
            return None
        value = done.stdout.strip() if done.returncode == 0 else ""
        return value or None

    def trailers(self, sha: str) -> dict[str, list[str]]:
        return _parse_trailers(self._git("show", "-s", f"--format={_TRAILER_FORMAT}", sha, "--").rstrip("\n"))

    def log(self, path: Path | None = None, grep_trailer: tuple[str, str] | None = None,
            max_count: int | None = None) -> list[Commit]:
        """Commits reachable from HEAD, newest first, touching `path` and carrying the trailer
        `grep_trailer` (key compared case-insensitively as git does, value exactly)."""
        if not self._has_commits():
            return []
        args = ["log", "-z", f"--format={_LOG_FORMAT}"]
        if grep_trailer is not None:  # a cheap pre-filter in git; the exact check is below
            args += ["--fixed-strings", f"--grep={grep_trailer[1]}"]
        if max_count is not None and grep_trailer is None:
            args.append(f"--max-count={max_count}")
        args += ["HEAD", "--", *self._pathspecs([path] if path is not None else [])]
        commits = []
        for record in self._git(*args).split("\0"):
            if not record.strip("\n"):
                continue
            sha, date, trailers, subject, body = record.lstrip("\n").split(_FIELD, 4)
            reverted = _REVERTS.search(body)
            commit = Commit(sha, subject, datetime.fromisoformat(date), _parse_trailers(trailers),
                            reverted.group(1) if reverted else None)
            if grep_trailer is None or _has_trailer(commit, *grep_trailer):
                commits.append(commit)
        return commits[:max_count] if max_count is not None else commits

    def behind_head(self, paths: Sequence[str], window: int = 1000) -> tuple[list[str], list[str]]:
        """(behind, foreign): which dirty `paths` are merely behind HEAD, and which are not.

        A path is behind when its working-tree content and its index entry each equal a state the
        path had in the run of reconciler commits at the tip of HEAD (the commits carrying a
        `Sluice-Action` trailer, at most `window` of them, and the commit before them): what a pass
        killed between `advance_head` and the working-tree update leaves. Anything else (a
        person's edit) is foreign.
        """
        if not paths or not self._has_commits():
            return [], list(paths)
        chain = self._git("log", f"--max-count={window}", "--format=%H%x1f%(trailers:key=Sluice-Action,valueonly)%x1e",
                          "HEAD").split("\x1e")
        ours = []
        for record in chain:
            sha, _, action = record.strip("\n").partition("\x1f")
            if not sha or not action.strip():
                break
            ours.append(sha)
        states: dict[str, set[str | None]] = {path: {self._blob_at("HEAD", path)} for path in paths}
        if ours:
            has_parent = self._run(["rev-parse", "--verify", "--quiet", f"{ours[-1]}^"]).returncode == 0
            span = f"{ours[-1]}^..HEAD" if has_parent else "HEAD"
            for line in self._git("log", "--format=", "--raw", "--no-abbrev", "--no-renames", span, "--",
                                  *paths).splitlines():
                meta, _, path = line.partition("\t")
                fields = meta.split()
                if path in states and len(fields) >= 4:
                    states[path] |= {None if set(sha) == {"0"} else sha for sha in fields[2:4]}
        behind, foreign = [], []
        for path in paths:
            explained = self._worktree_blob(path) in states[path] and self._index_blob(path) in states[path]
            (behind if explained else foreign).append(path)
        return behind, foreign

    def show(self, rev: str, path: str) -> bytes | None:
        """The content of `path` at `rev`; None when the path is not there."""
        done = self._execute(["git", "cat-file", "blob", f"{rev}:{path}"], ["cat-file"], None, text=False)
        return done.stdout if done.returncode == 0 else None

    # --- writing ---------------------------------------------------------------------------------

    def commit_chain(self, parent: str, commits: Sequence[PlannedCommit]) -> list[str]:
        """Write `commits` into the object store, the first on `parent`, each next one on the one
        before, and return their shas. No ref, index or working-tree file changes: the chain is
        reachable only once `advance_head` moves HEAD to its last commit."""
        if not commits:
            return []
        modes = self._modes(parent, sorted({path for c in commits for path in c.files}))
        author, committer = (self._git("var", ident, identity=True).strip()
                             for ident in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"))
        stream = bytearray()
        for mark, planned in enumerate(commits, start=1):
            message = commit_text(planned.message, planned.trailers).encode("utf-8")
            stream += f"commit {_PENDING_REF}\nmark :{mark}\nauthor {author}\ncommitter {committer}\n".encode()
            stream += b"data %d\n%s\n" % (len(message), message)
            stream += (f"from {parent}\n" if mark == 1 else f"from :{mark - 1}\n").encode()
            for path, text in planned.files.items():
                content = text.encode("utf-8")
                stream += f"M {modes.get(path, '100644')} inline {path}\n".encode() + b"data %d\n%s\n" % (
                    len(content), content)
        stream += b"done\n"
        with tempfile.NamedTemporaryFile(prefix="sluice-marks-", suffix=".txt") as marks:
            self.run_bytes(["fast-import", "--quiet", "--force", "--done", f"--export-marks={marks.name}"],
                           bytes(stream))
            shas = dict(line.split() for line in Path(marks.name).read_text(encoding="ascii").splitlines())
        self.drop_pending()
        return [shas[f":{mark}"] for mark in range(1, len(commits) + 1)]

    def drop_pending(self) -> None:
        """Delete the helper ref a `commit_chain` killed before its end may have left."""
        self._run(["update-ref", "-d", _PENDING_REF])

    def advance_head(self, new: str, old: str, reason: str) -> None:
        """Move HEAD (its branch) from `old` to `new`; GitError if HEAD is no longer `old`."""
        self._git("update-ref", "-m", f"reconciler: {reason}", "HEAD", new, old)

    def sync_index(self, paths: Sequence[str]) -> None:
        """Record the working tree's `paths` in the index (after writing HEAD's content there)."""
        if paths:
            self._git("update-index", "--add", "--remove", "--", *paths)

    def commit(self, paths: Sequence[Path], message: str, trailers: Sequence[tuple[str, str]] = (),
               author: tuple[str, str] | None = None, date: datetime | None = None) -> str:
        """Commit the working-tree content of `paths` only (new, changed or deleted files) and
        return the new commit's sha. Other staged changes are neither committed nor unstaged.
        Trailers follow the message after a blank line. On failure the paths are unstaged again."""
        specs = self._pathspecs(paths)
        if not specs:
            raise ValueError("commit needs at least one path")
        if not message.strip():
            raise ValueError("commit needs a message")
        args = ["commit", "--only", "--quiet", "--file=-"]
        for key, value in trailers:
            args += ["--trailer", _trailer(key, value)]
        if author is not None:
            name, email = author
            args.append(f"--author={name} <{email}>")
        try:
            self._git("add", "--", *specs)
            self._git(*args, "--", *specs, stdin=message, env=_dates(date), identity=True)
        except GitError:
            self._unstage(specs)
            raise
        return self.head()

    def revert(self, sha: str) -> str:
        """Commit the inverse of `sha` (the on-call rollback) and return the new sha. On a conflict
        the revert is aborted, so the tree is as before, and GitError says which files clashed."""
        try:
            self._git("revert", "--no-edit", sha, identity=True)
        except GitError:
            if (self._git_dir() / "REVERT_HEAD").exists():
                self._git("revert", "--abort")
            raise
        return self.head()

    def push(self, remote: str = "origin", branch: str | None = None) -> PushResult:
        """Push the local `branch` (default: the current one) to the same name on `remote`."""
        branch = branch or self.branch()
        ref = f"refs/heads/{branch}"
        command = ["push", "--porcelain", remote, f"{ref}:{ref}"]
        done = self._run(command)
        status = next((line.split("\t") for line in done.stdout.splitlines()
                       if line[:1] in "!=+*- " and f"\t{ref}:{ref}\t" in line + "\t"), None)
        summary = status[2] if status and len(status) > 2 else ""
        where = f"{remote}/{branch}"
        if done.returncode == 0 and status is not None and status[0] != "!":
            return PushResult(True, False, f"{where}: {summary}", up_to_date=status[0] == "=")
        if status is not None and status[0] == "!" and summary.startswith("[rejected]"):
            return PushResult(False, True, f"{where}: {summary}; fetch, reset to the new head and decide again")
        raise GitError(command, done.stderr.strip() or done.stdout, done.returncode)

    def fetch(self, remote: str = "origin") -> None:
        self._git("fetch", "--quiet", remote)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when `ancestor` is reachable from `descendant` (a fast-forward would lose nothing)."""
        done = self._run(["merge-base", "--is-ancestor", ancestor, descendant])
        if done.returncode in (0, 1):
            return done.returncode == 0
        raise GitError(["merge-base", "--is-ancestor", ancestor, descendant], done.stderr.strip(), done.returncode)

    def reset_hard(self, ref: str) -> str:
        """Move the branch and the working tree to `ref` (after a rejected push) and return the
        new head. Refuses while tracked files have uncommitted changes: only commits, which are
        already in git, may be discarded; untracked files are left alone."""
        dirty = self._git("status", "--porcelain", "-z", "--untracked-files=no")
        if dirty:
            files = sorted({entry[3:] for entry in dirty.split("\0") if len(entry) > 3})
            raise GitError(["reset", "--hard", ref],
                           f"refusing to reset: uncommitted changes in {', '.join(files)} would be lost")
        self._git("reset", "--hard", "--quiet", ref)
        return self.head()

    # --- plumbing --------------------------------------------------------------------------------

    def _git(self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None,
             identity: bool = False) -> str:
        done = self._run(list(args), stdin=stdin, env=env, identity=identity)
        if done.returncode != 0:
            raise GitError(args, done.stderr.strip() or done.stdout, done.returncode)
        return done.stdout

    def run_bytes(self, args: list[str], stdin: bytes) -> bytes:
        """`git ARGS` with bytes in and out (`cat-file --batch` reports sizes in bytes); GitError on failure."""
        done = self._execute(["git", *args], args, stdin, text=False)
        if done.returncode != 0:
            raise GitError(args, done.stderr.decode(errors="replace"), done.returncode)
        return done.stdout

    def _run(self, args: list[str], stdin: str | None = None, env: Mapping[str, str] | None = None,
             identity: bool = False) -> subprocess.CompletedProcess[str]:
        full = ["git", *(self._default_identity() if identity else []), *args]
        return self._execute(full, args, stdin, text=True, env=env)

    def _execute(self, full: list[str], args: list[str], stdin: str | bytes | None, text: bool,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LITERAL_PATHSPECS": "1",
                       "LC_ALL": "C", **(env or {})}
        decoding = {"text": True, "encoding": "utf-8", "errors": "replace"} if text else {}
        try:
            return subprocess.run(full, cwd=self.root, env=environment, input=stdin, capture_output=True,
                                  timeout=self.timeout, pass_fds=self.keep_open, **decoding)
        except subprocess.TimeoutExpired:
            raise GitError(args, f"timed out after {self.timeout:g} s") from None
        except OSError as err:  # no git executable, or root is not a directory
            raise GitError(args, str(err)) from None

    def _default_identity(self) -> list[str]:
        """`-c user.name=...` for whatever identity git config does not set."""
        options = []
        for key, value in (("user.name", BOT_NAME), ("user.email", BOT_EMAIL)):
            if self.config(key) is None:
                options += ["-c", f"{key}={value}"]
        return options

    def _modes(self, rev: str, paths: list[str]) -> dict[str, str]:
        """The file modes of `paths` at `rev`; refuses a path that is not a regular file there."""
        modes = {}
        for line in self._git("ls-tree", "-z", rev, "--", *paths).split("\0"):
            meta, _, path = line.partition("\t")
            if not path:
                continue
            mode = meta.split()[0]
            if mode not in ("100644", "100755"):
                raise GitError(["ls-tree", rev, path], f"{path} is not a regular file in git (mode {mode}): the "
                               "reconciler only edits regular files")
            modes[path] = mode
        for path in paths:
            if "\n" in path or path.startswith('"'):
                raise ValueError(f"cannot commit {path!r}: a path with a newline or a leading quote")
        return modes

    def _blob_at(self, rev: str, path: str) -> str | None:
        done = self._run(["rev-parse", "--verify", "--quiet", f"{rev}:{path}"])
        return done.stdout.strip() if done.returncode == 0 else None

    def _worktree_blob(self, path: str) -> str | None:
        if not os.path.lexists(self.root / path):
            return None
        return self._git("hash-object", "--", path).strip()

    def _index_blob(self, path: str) -> str | None:
        out = self._git("ls-files", "--stage", "-z", "--", path).split("\0")[0]
        return out.split()[1] if out else None

    def _has_commits(self) -> bool:
        return self._run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).returncode == 0

    def _git_dir(self) -> Path:
        return self.root / self._git("rev-parse", "--git-dir").strip()

    def _unstage(self, specs: list[str]) -> None:
        if self._has_commits():
            self._run(["reset", "--quiet", "--", *specs])
        else:
            self._run(["rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", *specs])

    def _pathspecs(self, paths: Iterable[Path]) -> list[str]:
        specs = []
        for path in paths:
            absolute = Path(os.path.abspath(self.root / path))
            relative = os.path.relpath(absolute, self.root)
            if relative == ".." or relative.startswith(".." + os.sep):
                real = os.path.relpath(os.path.realpath(absolute.parent), os.path.realpath(self.root))
                if real == ".." or real.startswith(".." + os.sep):
                    raise ValueError(f"{path} is outside the repository {self.root}")
                relative = os.path.join(real, absolute.name)
            specs.append(Path(relative).as_posix())
        return specs


def commit_text(message: str, trailers: Sequence[tuple[str, str]] = ()) -> str:
    """The commit message `git commit --file=- --trailer K: V ...` makes of `message`: whitespace
    cleaned up (trailing spaces, leading, trailing and repeated blank lines), then the trailers as
    a paragraph of their own, a trailer equal to the one before it dropped (git's default,
    `trailer.ifExists = addIfDifferentNeighbor`)."""
    lines, blank = [], False
    for line in message.splitlines():
        line = line.rstrip()
        if not line:
            blank = bool(lines)
            continue
        if blank:
            lines.append("")
        lines.append(line)
        blank = False
    block: list[str] = []
    for key, value in trailers:
        line = _trailer(key, value).rstrip()
        if not block or block[-1].lower() != line.lower():
            block.append(line)
    if block:
        lines += [""] + block if lines and not _is_trailer_block(lines) else block
    return "\n".join(lines) + "\n" if lines else ""


def _is_trailer_block(lines: list[str]) -> bool:
    """Whether the last paragraph already is a trailer block; the reconciler's messages end with a
    sentence, so this only has to recognise the plain case (every line `Key: value`)."""
    if "" not in lines:  # git never reads the subject as trailers
        return False
    paragraph = lines[len(lines) - lines[::-1].index(""):]
    return all(re.match(r"[A-Za-z0-9][A-Za-z0-9-]*:", line) for line in paragraph)


def _trailer(key: str, value: str) -> str:
    if not _TRAILER_KEY.fullmatch(key):
        raise ValueError(f"trailer key {key!r}: use letters, digits and '-' (e.g. Sluice-Decision)")
    if "\n" in value or "\r" in value:
        raise ValueError(f"trailer {key}: the value must be one line")
    return f"{key}: {value}"


def _dates(date: datetime | None) -> dict[str, str]:
    if date is None:
        return {}
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError(f"commit date {date.isoformat()} has no timezone")
    stamp = date.isoformat(timespec="seconds")
    return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}


def _parse_trailers(text: str) -> dict[str, list[str]]:
    trailers: dict[str, list[str]] = {}
    for item in text.split(_TRAILER):
        key, separator, value = item.partition(_KEY_VALUE)
        if separator:
            trailers.setdefault(key.strip(), []).append(value.strip())
    return trailers


def _has_trailer(commit: Commit, key: str, value: str) -> bool:
    return any(k.lower() == key.lower() and value in values for k, values in commit.trailers.items())
