"""A released file never changes: what was reviewed, approved and deployed stays what the file says.

"Released" means the file exists on the base ref (the branch a pull request merges into). The
comparison is semantic: comments, key order, quoting and formatting may change; a value may not.
Removing a released file is a warning: nothing deploys it any more (other rules say so if
something does), but lineage should still reach the first version.
"""

from __future__ import annotations

from typing import Any, Iterator

from .findings import Finding, Severity, YamlPath, format_path
from .release import Release
from .repository import Repository
from .semver import Bump, changes_since, required_bump


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


def immutability_findings(base: Repository, head: Repository, base_label: str) -> Iterator[Finding]:
    """Every release of `base` that `head` changed or removed."""
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
            names = ", ".join(format_path(p) for p in paths[:5]) + (f" and {len(paths) - 5} more"
                                                                     if len(paths) > 5 else "")
            bump = max(required_bump(changes_since(entry.release, now)), Bump.PATCH).name.lower()
            file = entry.file if entry.file in by_file else head.release_file(model, version)
            yield Finding(Severity.ERROR, "immutable", file, paths[0],
                          f"{model} {version} is released ({base_label} has it) and may not change; changed: {names}",
                          f"put the released values back (git checkout {base_label} -- {entry.file}) and cut a "
                          f"new version for the change: reconciler release new {model} --bump {bump}")
