"""Reading the past from git: every revision of the environment files, who added a release, and
every content a release file had (for immutability across the base's whole history).

Histories of thousands of reconciler commits are normal, so the cost is fixed at three `git`
processes whatever the length: one `git log` lists the commits that touched `environments/` with
the files each changed, one `git cat-file --batch` returns every one of those blobs, and one more
`git log` finds the commits that added the release files asked about. Nothing runs per commit.

Which history: HEAD's first-parent line (`--first-parent -m`), with committer dates. That is the
order in which changes reached the branch CI deploys from: a pull request's own commits never ran
anywhere, its merge did, at the merge's time. Renames count as a delete and an add (`--no-renames`):
the old environment stops, the new one starts.

Blobs are parsed with the same bounded parser as the working tree (`yaml_source.parse_yaml`), and
only the asked-for model's pointers are validated (`lineage.Pointers`). A revision that does not
parse, or whose entry for the model is malformed, becomes an unreadable snapshot (counted, never
fatal). Identical blobs (a revert restores one) are parsed once.

`read_tip_releases` reads a base ref's release files the same way: one `git ls-tree` lists their
blob ids, and only the files whose blob differs from the working tree's bytes are read and parsed
(a file with the very bytes cannot have changed). `read_release_history` costs the same whatever
the length: one `git log --raw` of `releases/` on
the base ref's first-parent line lists every (file, blob) with the commit that released it, and one
`git cat-file --batch` reads the distinct blobs of the files asked about, except the one each file
holds now (compared by blob id, computed here: identical content costs nothing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from ..core.immutability import EarlierRelease, ReleaseCommit, ReleaseHistory
from ..core.lineage import Pointers, Snapshot
from ..core.release import Release
from .git import GitError, GitRepository
from .yaml_source import MAX_FILE_BYTES, parse_yaml

_RECORD, _FIELD = "\x1e", "\x1f"
_ENVIRONMENT_FILE = re.compile(r"environments/([^/]+)\.yaml")


@dataclass(frozen=True)
class FileCommit:
    """The commit that added a file: its sha, author (`Name <email>`) and committer date."""

    sha: str
    author: str
    date: datetime


@dataclass(frozen=True)
class History:
    """What git says. `note` is set (and the rest empty) when there is no history to read."""

    snapshots: list[Snapshot] = field(default_factory=list)
    commits: int = 0  # commits on HEAD's first-parent line that touched environments/
    head: str | None = None
    added: dict[str, FileCommit] = field(default_factory=dict)  # path relative to the repository root
    uncommitted: frozenset[str] = frozenset()  # of the asked-for paths: changed, staged or untracked
    note: str | None = None

    @property
    def available(self) -> bool:
        return self.note is None


class _Reader(GitRepository):
    """GitRepository's runner (timeouts, no prompts, literal pathspecs, GitError), plus reading blobs."""

    def prefix(self) -> str | None:
        """Where `root` sits inside its work tree ("" at the top, "sluice/" below it); None when
        `root` is not in a git work tree at all."""
        done = self._run(["rev-parse", "--show-prefix"])
        return done.stdout.strip() if done.returncode == 0 else None

    def head_or_none(self) -> str | None:
        """HEAD's sha; None before the first commit."""
        done = self._run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        return done.stdout.strip() if done.returncode == 0 else None

    def git(self, *args: str) -> str:
        return self._git(*args)

    def shallow_commits(self) -> frozenset[str]:
        """The commits where a shallow clone's history stops (none in a full clone)."""
        path = Path(self._git("rev-parse", "--git-path", "shallow").strip())
        path = path if path.is_absolute() else self.root / path
        return frozenset(path.read_text().split()) if path.is_file() else frozenset()

    def blobs(self, specs: list[str]) -> list[tuple[str, bytes] | None]:
        """`git cat-file --batch` over `rev:path` specs: (object id, content) each, None when missing.

        Bytes, not text: the sizes git reports are in bytes, and text mode would turn CRLF into LF."""
        if not specs:
            return []
        request = "".join(f"{spec}\n" for spec in specs).encode()
        out = self.run_bytes(["-c", "core.quotePath=false", "cat-file", "--batch"], request)
        return _parse_batch(out, len(specs))


def _parse_batch(out: bytes, count: int) -> list[tuple[str, bytes] | None]:
    """`<oid> blob <size>\\n<content>\\n` or `<spec> missing\\n` per request, in order."""
    results: list[tuple[str, bytes] | None] = []
    at = 0
    for _ in range(count):
        end = out.index(b"\n", at)
        header = out[at:end].decode(errors="replace").split(" ")
        at = end + 1
        if len(header) == 3 and header[2].isdigit():
            size = int(header[2])
            results.append((header[0], out[at:at + size]) if header[1] == "blob" else None)
            at += size + 1
        else:  # "<spec> missing" (the file was deleted in that commit) or "ambiguous"
            results.append(None)
    return results


def read_history(root: Path, model: str, release_files: list[str], parse_every_revision: bool = False) -> History:
    """Every revision of `environments/*.yaml` on HEAD's first-parent line as snapshots of `model`'s
    pointers (oldest first), and the commits that added `release_files` (paths relative to `root`).

    Revisions that leave the model's entry as it was are not parsed (`_entry_text`), so an unreadable
    revision is counted only when it changed the entry; `parse_every_revision` parses each one."""
    reader = _Reader(root)
    try:
        prefix = reader.prefix()
    except GitError as err:  # no git executable
        return History(note=f"served history needs git, which could not run: {err.output}")
    if prefix is None:
        return History(note=f"served history needs git: {root} is not inside a git repository")
    head = reader.head_or_none()
    if head is None:
        return History(note="served history needs git: the repository has no commits yet")
    changes = _environment_changes(reader, prefix, head)
    return History(
        snapshots=_snapshots(reader, changes, prefix, model, parse_every_revision),
        commits=len(changes),
        head=head,
        added=_added(reader, prefix, head, release_files),
        uncommitted=_uncommitted(reader, prefix, release_files),
    )


def _environment_changes(reader: _Reader, prefix: str, head: str) -> list[tuple[str, datetime, list[str]]]:
    """(sha, committer date, environment names changed), oldest first."""
    text = reader.git("log", "-z", "-m", "--first-parent", "--no-renames", "--reverse", "--name-only",
                      f"--format={_RECORD}%H{_FIELD}%cI", head, "--", "environments/")
    changes = []
    for record in text.split(_RECORD):
        if not record:
            continue
        header, *names = record.split("\0")
        sha, date = header.split(_FIELD)
        environments = []
        for name in (n.strip("\n") for n in names):
            match = name.startswith(prefix) and _ENVIRONMENT_FILE.fullmatch(name[len(prefix):])
            if match:
                environments.append(match.group(1))
        if environments:
            changes.append((sha, datetime.fromisoformat(date), environments))
    return changes


def _snapshots(reader: _Reader, changes: list[tuple[str, datetime, list[str]]], prefix: str,
               model: str, parse_every_revision: bool) -> list[Snapshot]:
    wanted = [(sha, at, env) for sha, at, names in changes for env in names]
    blobs = reader.blobs([f"{sha}:{prefix}environments/{env}.yaml" for sha, _, env in wanted])
    parsed: dict[str, dict[str, Pointers] | None] = {}
    last: dict[str, tuple[str | None, dict[str, Pointers]]] = {}  # env -> its last readable (entry, pointers)
    snapshots = []
    for (sha, at, env), blob in zip(wanted, blobs):
        if blob is None:  # deleted in this commit: the environment serves nothing from now on
            last[env] = (None, {})
            snapshots.append(Snapshot(sha, at, env, {}))
            continue
        oid, content = blob
        entry = None if parse_every_revision else _entry_text(content, model)
        previous = last.get(env)
        if entry is not None and previous is not None and previous[0] == entry:
            snapshots.append(Snapshot(sha, at, env, previous[1]))  # the same entry: the same pointers
            continue
        if oid not in parsed:
            parsed[oid] = _pointers(content, model)
        models = parsed[oid]
        if models is not None:
            last[env] = (entry, models)
        snapshots.append(Snapshot(sha, at, env, models))
    return snapshots


_ABSENT = "\0absent"


def _entry_text(content: bytes, model: str) -> str | None:
    """The text of `models.<model>` when the file is laid out plainly, else None (then it is parsed).

    Why this is safe: a revision whose entry reads exactly as in the last readable revision leaves
    the model's pointers as they were, whether the rest of the file parses or not (an unreadable
    revision changes nothing either). So only revisions that change the entry are parsed: a handful
    per rollout instead of every commit of every model. The entry counts as plain when it is a block
    under a top-level `models:` key, with no alias (`*`) or tag (`!`) that could take its meaning
    from elsewhere in the file; a file that does not name the model at all has the entry `_ABSENT`.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\\" in text:  # an escaped key could spell the name differently
        return None
    if model not in text:
        return _ABSENT
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _MODELS.fullmatch(line)), None)
    if start is None:
        return None
    key = re.compile(rf"{re.escape(model)}:[ \t]*(#.*)?")
    entry: list[str] = []
    child = None  # the indentation of the model names under `models:`
    for line in lines[start + 1:]:
        stripped = line.lstrip(" ")
        depth = len(line) - len(stripped)
        if stripped and not stripped.startswith("#"):
            if depth == 0:
                break  # the next top-level key: `models` ended
            child = depth if child is None else child
            if depth <= child and entry:
                break  # the next model
            if depth == child and key.fullmatch(stripped):
                entry.append(line)
                continue
        if entry:
            entry.append(line)
    if not entry or any(mark in line for line in entry for mark in ("*", "!")):
        return None
    return "\n".join(entry).rstrip()


_MODELS = re.compile(r"models:[ \t]*(#.*)?")


def _pointers(content: bytes, model: str) -> dict[str, Pointers] | None:
    """{model: pointers}, {} when the file has no entry for it, None when unreadable."""
    if len(content) > MAX_FILE_BYTES:
        return None
    doc = parse_yaml(content)
    if doc.errors or not isinstance(doc.data, dict):
        return None
    models = doc.data.get("models") or {}
    if not isinstance(models, dict):
        return None
    entry = models.get(model)
    if entry is None:
        return {}
    try:
        return {model: Pointers.model_validate(entry)}
    except ValidationError:
        return None


def _added(reader: _Reader, prefix: str, head: str, paths: list[str]) -> dict[str, FileCommit]:
    """The newest commit that added each path (its content is the one in the tree now, as release
    files are immutable once added)."""
    if not paths:
        return {}
    text = reader.git("log", "-z", "--diff-filter=A", "--no-renames", "--name-only",
                      f"--format={_RECORD}%H{_FIELD}%an <%ae>{_FIELD}%cI", head, "--", *paths)
    found: dict[str, FileCommit] = {}
    for record in text.split(_RECORD):
        if not record:
            continue
        header, *names = record.split("\0")
        sha, author, date = header.split(_FIELD)
        for name in names:
            path = name.strip("\n").removeprefix(prefix)
            if path in paths and path not in found:
                found[path] = FileCommit(sha, author, datetime.fromisoformat(date))
    return found


def _uncommitted(reader: _Reader, prefix: str, paths: list[str]) -> frozenset[str]:
    if not paths:
        return frozenset()
    text = reader.git("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--", *paths)
    return frozenset(entry[3:].removeprefix(prefix) for entry in text.split("\0") if len(entry) > 3)


_NO_BLOB = re.compile(r"0+")


def read_tip_releases(root: Path, ref: str, now: Mapping[str, bytes]) -> tuple[frozenset[str], dict[str, Release | None]]:
    """(every release file at `ref`, and parsed, those whose content differs from the bytes `now`
    holds for them or that `now` lacks: None for a content that is not a valid release).
    Paths are relative to `root`. GitError when git cannot read `ref`."""
    reader = _Reader(root)
    listed = reader.git("ls-tree", "-r", "-z", "--end-of-options", ref, "--", "releases/")
    blobs: dict[str, str] = {}
    for entry in listed.split("\0"):
        meta, _, path = entry.partition("\t")
        if path.endswith(".yaml") and meta.split(" ")[1:2] == ["blob"]:
            blobs[path] = meta.split(" ")[2]
    differing = {path: oid for path, oid in blobs.items()
                 if path not in now or oid != _blob_id(now[path], len(oid))}
    oids = sorted(set(differing.values()))
    parsed = {oid: _release(blob[1]) if blob is not None else None for oid, blob in zip(oids, reader.blobs(oids))}
    return frozenset(blobs), {path: parsed[oid] for path, oid in differing.items()}


def read_release_history(root: Path, ref: str, judged: Mapping[str, bytes]) -> ReleaseHistory:
    """Every content the release files `judged` (path relative to `root` -> the bytes they hold now)
    had on `ref`'s first-parent line, oldest first, other than those bytes; contents that are not a
    valid release were never deployable and are left out. GitError when git cannot read `ref`."""
    reader = _Reader(root)
    prefix = reader.prefix() or ""
    text = reader.git("log", "-z", "-m", "--first-parent", "--no-renames", "--raw", "--no-abbrev", "--reverse",
                      f"--format={_RECORD}%H{_FIELD}%cI{_FIELD}%s", "--end-of-options", ref, "--", "releases/")
    released: dict[str, dict[str, ReleaseCommit]] = {}  # file -> blob -> the first commit that released it
    for record in text.split(_RECORD):
        if not record:
            continue
        header, *raw = record.split("\0")
        commit = _commit(header)
        for meta, name in zip(raw[0::2], raw[1::2]):
            blob = meta.split(" ")[3] if meta.strip("\n").startswith(":") else ""
            if name.startswith(prefix) and blob and not _NO_BLOB.fullmatch(blob):
                released.setdefault(name[len(prefix):], {}).setdefault(blob, commit)
    wanted = {path: _other_contents(released.get(path, {}), content) for path, content in judged.items()}
    oids = sorted({blob for blobs in wanted.values() for blob in blobs})
    contents = {oid: _release(blob[1]) for oid, blob in zip(oids, reader.blobs(oids)) if blob is not None}
    earlier = {path: tuple(EarlierRelease(release, commit) for blob, commit in blobs.items()
                           if (release := contents.get(blob)) is not None)
               for path, blobs in wanted.items()}
    return ReleaseHistory({path: found for path, found in earlier.items() if found}, frozenset(released),
                          _cut_at(reader, ref))


def _other_contents(blobs: dict[str, ReleaseCommit], now: bytes) -> dict[str, ReleaseCommit]:
    """The released blobs other than the one with the bytes `now` (by blob id: no read, no parse)."""
    if not blobs:
        return {}
    same = _blob_id(now, len(next(iter(blobs))))
    return {blob: commit for blob, commit in blobs.items() if blob != same}


def _commit(header: str) -> ReleaseCommit:
    """`<sha>\\x1f<committer date>\\x1f<subject>` as the commit people can look up."""
    sha, date, subject = header.split(_FIELD, 2)
    return ReleaseCommit(sha[:10], datetime.fromisoformat(date), subject)


def _cut_at(reader: _Reader, ref: str) -> ReleaseCommit | None:
    """Where `ref`'s first-parent line stops in a shallow clone: the boundary git lists as shallow,
    which looks like a first commit. One more git call, only in a shallow clone."""
    shallow = reader.shallow_commits()
    if not shallow:
        return None
    text = reader.git("log", "--first-parent", "--max-parents=0", f"--format=%H{_FIELD}%cI{_FIELD}%s",
                      "--end-of-options", ref)
    return next((_commit(line) for line in text.splitlines() if line.split(_FIELD, 1)[0] in shallow), None)


def _blob_id(content: bytes, hex_length: int) -> str:
    """The id git gives `content` as a blob (SHA-1, or SHA-256 in a repository that uses it)."""
    digest = hashlib.sha256 if hex_length == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(content) + content).hexdigest()


def _release(content: bytes) -> Release | None:
    """A blob as a release, or None when it is not one (too large, unparsable, invalid)."""
    if len(content) > MAX_FILE_BYTES:
        return None
    doc = parse_yaml(content)
    if doc.errors or not isinstance(doc.data, dict):
        return None
    try:
        return Release.model_validate(doc.data)
    except ValidationError:
        return None
