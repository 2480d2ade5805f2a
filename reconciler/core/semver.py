"""What a release's version number promises, checked against what changed since its parent.

The rules (docs/rules.md#semver): MAJOR = a new base model or architecture; MINOR = a new capability (new
weights, a fine-tune on other data, a new tokenizer, a changed system prompt or few-shot set);
PATCH = a fix or parameter tuning (generation parameters, safety or routing config, the model
config file, the serving image or GPUs). Artifacts compare by sha256, not URI: moving the same
bytes to other storage changes nothing. Evaluation, lineage bookkeeping and the rollout plan need
no particular bump: any new version may carry them.

Example: parent 1.3.0 -> 1.3.1 with a new `bundle.system_prompt.sha256` -> at least MINOR is
required, so 1.3.1 is refused and 1.4.0 is the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable

from .release import Release
from .types import version_key


class Bump(IntEnum):
    """Ordered so that `required <= actual` reads as "the version number is big enough"."""

    NONE = 0
    PATCH = 1
    MINOR = 2
    MAJOR = 3

    @property
    def word(self) -> str:
        return self.name


@dataclass(frozen=True)
class Reason:
    """One change that asks for a bump: `bundle.weights.sha256` -> MINOR, "new weights"."""

    path: tuple[str, ...]
    bump: Bump
    what: str

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _sha(artifact: Any) -> str | None:
    return artifact.sha256 if artifact is not None else None


def _architecture_changed(parent: Release, release: Release) -> bool:
    """Only when both name one: a missing architecture is unknown, not a change."""
    before, after = parent.lineage.base_model.architecture, release.lineage.base_model.architecture
    return before is not None and after is not None and before != after


# (path in the release file, bump it needs, what it means, how to read it from a release)
_CHECKS: tuple[tuple[tuple[str, ...], Bump, str, Callable[[Release], Any]], ...] = (
    (("lineage", "base_model", "name"), Bump.MAJOR, "a different base model", lambda r: r.lineage.base_model.name),
    (("bundle", "weights", "sha256"), Bump.MINOR, "new weights", lambda r: r.bundle.weights.sha256),
    (("bundle", "tokenizer", "sha256"), Bump.MINOR, "a new tokenizer", lambda r: r.bundle.tokenizer.sha256),
    (("bundle", "system_prompt", "sha256"), Bump.MINOR, "a changed system prompt",
     lambda r: r.bundle.system_prompt.sha256),
    (("bundle", "few_shot_examples"), Bump.MINOR, "changed few-shot examples",
     lambda r: _sha(r.bundle.few_shot_examples)),
    (("lineage", "base_model", "revision"), Bump.MINOR, "a new base model revision",
     lambda r: r.lineage.base_model.revision),
    (("lineage", "dataset", "sha256"), Bump.MINOR, "a fine-tune on different data", lambda r: r.lineage.dataset.sha256),
    (("bundle", "config", "sha256"), Bump.PATCH, "a changed model config", lambda r: r.bundle.config.sha256),
    (("bundle", "generation"), Bump.PATCH, "changed generation parameters", lambda r: r.bundle.generation),
    (("bundle", "safety"), Bump.PATCH, "changed safety config", lambda r: r.bundle.safety),
    (("bundle", "routing"), Bump.PATCH, "changed routing config", lambda r: r.bundle.routing),
    (("bundle", "serving"), Bump.PATCH, "a changed serving image or GPUs", lambda r: r.bundle.serving),
)


def changes_since(parent: Release, release: Release) -> list[Reason]:
    """Every change that asks for a bump, biggest first (file order within a size)."""
    reasons = [Reason(path, bump, what) for path, bump, what, read in _CHECKS if read(parent) != read(release)]
    if _architecture_changed(parent, release):
        reasons.append(Reason(("lineage", "base_model", "architecture"), Bump.MAJOR, "a different architecture"))
    return sorted(reasons, key=lambda r: -r.bump)


def required_bump(reasons: list[Reason]) -> Bump:
    return max((r.bump for r in reasons), default=Bump.NONE)


def bump_between(before: str, after: str) -> Bump:
    """The part of the version that went up: 1.3.0 -> 1.4.0 is MINOR, 1.3.0 -> 2.0.0 MAJOR,
    and NONE when `after` is not greater (its own error elsewhere)."""
    old, new = version_key(before), version_key(after)
    if new <= old:
        return Bump.NONE
    if new[0] != old[0]:
        return Bump.MAJOR
    return Bump.MINOR if new[1] != old[1] else Bump.PATCH


def next_version(version: str, bump: Bump) -> str:
    """1.3.2 + MINOR -> 1.4.0."""
    major, minor, patch = version_key(version)
    if bump is Bump.MAJOR:
        return f"{major + 1}.0.0"
    if bump is Bump.MINOR:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def describe(reasons: list[Reason]) -> str:
    """"new weights (bundle.weights.sha256) and a changed system prompt (bundle.system_prompt.sha256)"."""
    parts = [f"{r.what} ({r.dotted})" for r in reasons]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
