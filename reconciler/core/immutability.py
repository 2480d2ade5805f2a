"""A released file never changes: what was reviewed, approved and deployed stays what the file says.

"Released" means the file is on the base ref (the branch a pull request merges into), at its tip
or anywhere on its history: a version removed and added again is still the version that was
released, so it must say what it said then. The comparison is semantic: comments, key order,
quoting and formatting may change; a value may not. Removing a released file is a warning:
nothing deploys it any more (other rules say so if something does), but lineage should still
reach the first version.

Which content binds a file: the tip's, when the tip has the file (a difference in the base's own
past is not this change's to fix, and no change could fix it); otherwise every content the file
had on the base's history (`ReleaseHistory`, read by adapters/history.py). A shallow clone has
only part of that history: a file the tip lacks then gets a warning that says where the history
stops, since what came before cannot be checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from .findings import Finding, Severity, YamlPath, format_path
from .release import Release
from .repository import Repository, release_path
from .semver import Bump, changes_since, next_version, required_bump


@dataclass(frozen=True)
class ReleaseCommit:
    """A commit on the base's history: its short sha, committer date (when it reached the branch) and subject."""

    sha: str
    date: datetime
    subject: str

    def __str__(self) -> str:
        return f'{self.sha} ({self.date:%Y-%m-%d}, "{self.subject}")'


@dataclass(frozen=True)
class EarlierRelease:
    """A content a release file had on the base's history, and the commit that released it."""

    release: Release
    commit: ReleaseCommit


@dataclass(frozen=True)
class ReleaseHistory:
    """What the base's history knows beyond its tip, about the release files its tip lacks.

    `earlier`: per file, the contents it had (oldest first) other than the bytes it holds now;
    `files`: every release file the history ever had (so a suggested new version is really new);
    `cut_at`: where the history stops in a shallow clone (None: it reaches the first commit)."""

    earlier: Mapping[str, tuple[EarlierRelease, ...]] = field(default_factory=dict)
    files: frozenset[str] = frozenset()
    cut_at: ReleaseCommit | None = None


@dataclass(frozen=True)
class Released:
    """What the base ref has released: its tip, the ref's name as the user wrote it, and its history.

    `tip` may hold only the tip's releases whose files differ from the head's (a file with the very
    bytes cannot have changed); `tip_files` names every release file at the tip all the same."""

    tip: Repository
    label: str = "the base"
    history: ReleaseHistory = ReleaseHistory()
    tip_files: frozenset[str] | None = None  # None: the files of `tip`

    @property
    def files_at_tip(self) -> frozenset[str]:
        if self.tip_files is not None:
            return self.tip_files
        return frozenset(entry.file for entry in self.tip.releases) | self.tip.broken_files


def changed_paths(before: Release, after: Release) -> list[YamlPath]:
    """Leaf paths whose values differ, in file order: [("bundle", "weights", "sha256"), ...]."""
    return list(_differences(before.model_dump(mode="json"), after.model_dump(mode="json"), ()))


def _differences(old: Any, new: Any, path: YamlPath) -> Iterator[YamlPath]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from _differences(old.get(key), new.get(key), path + (key,))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            yield from _differences(a, b, path + (i,))
    elif old != new:
        yield path


def immutability_findings(released: Released, head: Repository) -> Iterator[Finding]:
    """Every released file that `head` changed or removed: against the tip, then against the history."""
    yield from _tip_findings(released.tip, head, released.label)
    yield from _history_findings(released, head)


def _tip_findings(base: Repository, head: Repository, base_label: str) -> Iterator[Finding]:
    by_file = {e.file: e.release for e in head.releases}
    for entry in base.releases:
        model, version = entry.release.model, entry.release.version
        # The same file first: a released file whose `version:` was edited is a change, not a deletion.
        now = by_file.get(entry.file) or head.release(model, version)
        if now is None:
            if head.is_broken(model, version):
                continue  # its own parse error is reported
            yield Finding(Severity.WARNING, "immutable", entry.file, (),
                          f"{model} {version} was released ({base_label} has {entry.file}) and is deleted here",
                          f"keep released versions so lineage reaches the first one: git checkout {base_label} -- "
                          f"{entry.file}")
            continue
        paths = changed_paths(entry.release, now)
        if paths:
            names = _names(paths)
            bump = max(required_bump(changes_since(entry.release, now)), Bump.PATCH).name.lower()
            file = entry.file if entry.file in by_file else head.release_file(model, version)
            yield Finding(Severity.ERROR, "immutable", file, paths[0],
                          f"{model} {version} is released ({base_label} has it) and may not change; changed: {names}",
                          f"put the released values back (git checkout {base_label} -- {entry.file}) and cut a "
                          f"new version for the change: reconciler release new {model} --bump {bump}")


def _history_findings(released: Released, head: Repository) -> Iterator[Finding]:
    """Head's release files that the tip lacks, against every content their path had on the history."""
    at_tip = released.files_at_tip
    history = released.history
    for entry in head.releases:
        if entry.file in at_tip:
            continue
        release = entry.release
        differing = [(earlier, paths) for earlier in history.earlier.get(entry.file, ())
                     if (paths := changed_paths(earlier.release, release))]
        if differing:
            earlier, paths = differing[-1]  # the newest: the one people remember
            free = _unused_version(release.model, release.version, head, history.files)
            yield Finding(Severity.ERROR, "immutable", entry.file, paths[0],
                          f"{release.model} {release.version} was released with other values in {earlier.commit} "
                          f"and removed since; changed: {_names(paths)}",
                          f"a version is released once, with one content: put the released values back (git show "
                          f"{earlier.commit.sha}:./{entry.file} > {entry.file}), or release these values as a version "
                          f"never used, e.g. {free} (move the file to {release_path(release.model, free)} and set "
                          f'version: "{free}")')
        elif history.cut_at is not None:
            yield Finding(Severity.WARNING, "immutable", entry.file, (),
                          f"{release.model} {release.version} is not on {released.label}, whose history here stops "
                          f"at {history.cut_at.sha} (a shallow clone): whether an earlier commit released other "
                          "values for it is not known",
                          "fetch the whole history (git fetch --unshallow; in CI, actions/checkout with "
                          "fetch-depth: 0)")


def _unused_version(model: str, version: str, head: Repository, ever: frozenset[str]) -> str:
    """The next patch after `version` that neither the head nor the base's history has used."""
    taken = set(head.versions(model))
    candidate = next_version(version, Bump.PATCH)
    while candidate in taken or release_path(model, candidate) in ever:
        candidate = next_version(candidate, Bump.PATCH)
    return candidate


def _names(paths: list[YamlPath]) -> str:
    """The first five changed fields, and how many more."""
    return ", ".join(format_path(p) for p in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
