"""The loaded repository as one value: every release and environment that parsed, with its file.

Rules take this value and nothing else, so they run the same in `validate`, the Pulumi program and
the policy pack. Files that failed to parse are listed in `broken_files` so cross-file rules do not
pile a second, misleading error ("no such release") on top of the parse error. The evaluation
artifacts releases name are carried as bytes, so the rule that checks them reads no file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .environment import Environment
from .release import Release
from .types import version_key


def release_path(model: str, version: str) -> str:
    """Where a release must live: releases/<model>/<version>.yaml."""
    return f"releases/{model}/{version}.yaml"


@dataclass(frozen=True)
class SourcedRelease:
    file: str
    release: Release


@dataclass(frozen=True)
class Repository:
    releases: tuple[SourcedRelease, ...] = ()
    environments: dict[str, Environment] = field(default_factory=dict)
    environment_files: dict[str, str] = field(default_factory=dict)
    broken_files: frozenset[str] = frozenset()
    #: The bytes of each evaluation artifact a release names (`evaluation.artifact.uri`) that the
    #: loader could read; a file it refused is in `broken_files`, a missing one in neither.
    evaluation_artifacts: Mapping[str, bytes] = field(default_factory=dict)

    @cached_property
    def _index(self) -> dict[tuple[str, str], SourcedRelease]:
        index: dict[tuple[str, str], SourcedRelease] = {}
        for entry in self.releases:
            index.setdefault((entry.release.model, entry.release.version), entry)
        return index

    def release(self, model: str, version: str) -> Release | None:
        entry = self._index.get((model, version))
        return entry.release if entry else None

    def release_file(self, model: str, version: str) -> str:
        entry = self._index.get((model, version))
        return entry.file if entry else release_path(model, version)

    def is_broken(self, model: str, version: str) -> bool:
        """True when the release's file exists but did not parse (its own error is already reported)."""
        return release_path(model, version) in self.broken_files

    def is_first_release(self, release: Release) -> bool:
        """No older version of the model has a release file: the one release without a parent."""
        return all(version_key(v) >= version_key(release.version) for v in self.versions(release.model))

    @cached_property
    def _versions(self) -> dict[str, list[str]]:
        """Each model's versions, oldest first: built once, since rules ask for every model (a scan
        of all releases per question grew with the square of the repository)."""
        by_model: dict[str, set[str]] = {}
        for model, version in self._index:
            by_model.setdefault(model, set()).add(version)
        return {model: sorted(versions, key=version_key) for model, versions in by_model.items()}

    def versions(self, model: str) -> list[str]:
        return list(self._versions.get(model, ()))
