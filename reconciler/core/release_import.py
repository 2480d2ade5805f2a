"""What an import source supplies for a new release, and the version that covers it.

`reconciler release import` writes the next release from its parent (as `release new` does) and
overlays the values a registry supplies. Every value carries where it came from, so the command
can print it and the file can mark it; a field no source supplies is either kept from the parent
(and marked so) or left empty with a TODO, never filled with a guess.

The version follows from what changed: the overlay is applied to the parent's data and the
semver rules (core/semver.py) give the bump. Example: new weights from MLflow -> MINOR,
1.3.0 -> 1.4.0; a `base_model` tag naming another model -> MAJOR, 2.0.0.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import ValidationError

from .release import Release
from .semver import Bump, Reason, changes_since, describe, required_bump

# Bundle and lineage slots a file reference can fill: name on the command line -> YAML path.
ARTIFACT_SLOTS: dict[str, tuple[str, ...]] = {
    "weights": ("bundle", "weights"),
    "tokenizer": ("bundle", "tokenizer"),
    "config": ("bundle", "config"),
    "system_prompt": ("bundle", "system_prompt"),
    "few_shot_examples": ("bundle", "few_shot_examples"),
    "classifier": ("bundle", "safety", "classifier"),
}
DATASET_SLOT = "dataset"
# What the init container (reconciler/runtime/fetch_bundle.py) fetches from other than the Hub.
# Plain http:// is left out: a release's artifacts are fetched over TLS.
FETCHABLE_SCHEMES = ("s3", "gs", "https")


@dataclass(frozen=True)
class Supplied:
    """One value for the new release: `("lineage", "dataset", "sha256")` <- "MLflow tag dataset.sha256"."""

    path: tuple[str, ...]
    value: Any
    source: str

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Imported:
    """What one source gave: values, the source's own items it did not use, remarks for the reader,
    and fields it opened but could not fill (left empty with a TODO; `source` says why)."""

    source: str
    supplied: tuple[Supplied, ...] = ()
    unused: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()
    missing: tuple[Supplied, ...] = ()


class ImportRefused(ValueError):
    """The source cannot be imported as asked; the message says why and what to do."""


def merged(imports: Iterable[Imported]) -> list[Supplied]:
    """Every source's values in order, later sources winning: a value replaces earlier ones at its
    path or inside it (`--dvc weights=...` replaces MLflow's weights), and is applied after an
    earlier value around it (MLflow's dataset block, then DVC's `dataset.sha256` in it)."""
    chosen: dict[tuple[str, ...], Supplied] = {}
    for imported in imports:
        for item in imported.supplied:
            for path in [p for p in chosen if _within(p, item.path)]:
                del chosen[path]
            chosen[item.path] = item
    return list(chosen.values())


def _within(path: tuple[str, ...], ancestor: tuple[str, ...]) -> bool:
    """`path` is `ancestor` or lies inside it."""
    return path[:len(ancestor)] == ancestor


def _overlaps(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return _within(a, b) or _within(b, a)


def overlay(data: dict[str, Any], supplied: Iterable[Supplied]) -> dict[str, Any]:
    """A copy of release data with every supplied value set at its path (maps made as needed)."""
    out = copy.deepcopy(data)
    for item in supplied:
        node = out
        for key in item.path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[item.path[-1]] = copy.deepcopy(item.value)
    return out


def bump_for(parent: Release, supplied: Iterable[Supplied], missing: Iterable[Supplied] = ()) -> tuple[Bump, list[Reason]]:
    """The bump the supplied values need over the parent, and why; at least PATCH (a new version).

    Only the fields semver reads matter, so the parent's values stand in for the ones still to be
    filled in (evaluation, a dataset hash no tag gave): validate's semver rule checks again once
    they are. A supplied value the schema refuses is named here, before anything is written.
    """
    before = parent.model_dump(mode="json", exclude_none=True)
    data = overlay(before, supplied)
    data = overlay(data, [Supplied(m.path, value, m.source) for m in missing
                          if (value := _value_at(before, m.path)) is not None])
    try:
        candidate = Release.model_validate(data, strict=False)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise ImportRefused(f"the imported value at {where} is not valid: {problem['msg']}") from None
    reasons = changes_since(parent, candidate)
    return max(required_bump(reasons), Bump.PATCH), reasons


def _value_at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def reference_import(slot: str, artifact: dict[str, Any], source: str) -> Imported:
    """One file reference (a .dvc file) filling one slot. A dataset reference gives content (hash,
    size, location) but no name for it, so the dataset's version is left to fill in."""
    if slot == DATASET_SLOT:
        values = {k: artifact[k] for k in ("sha256", "size_bytes", "uri") if artifact.get(k) is not None}
        supplied = tuple(Supplied(("lineage", "dataset", key), value, source) for key, value in values.items())
        why = f"the dataset's version: {source} gives its content, not its name"
        return Imported(source, supplied, missing=(Supplied(("lineage", "dataset", "version"), None, why),))
    if slot not in ARTIFACT_SLOTS:
        raise ImportRefused(f"unknown slot {slot!r}: use one of {', '.join([*ARTIFACT_SLOTS, DATASET_SLOT])}")
    return Imported(source, (Supplied(ARTIFACT_SLOTS[slot], dict(artifact), source),))


@dataclass(frozen=True)
class ImportPlan:
    """The new release's overlay and version: what is set (each value commented with its source),
    left to fill in (TODO), kept from the parent (commented so), and the bump that covers it."""

    source: str
    supplied: list[Supplied]
    missing: list[Supplied]
    kept: list[tuple[str, ...]]
    bump: Bump
    reasons: list[Reason]


# The parent's blocks an import may leave standing; each is marked "kept from <parent>" when it does.
KEEPABLE: tuple[tuple[str, ...], ...] = (*ARTIFACT_SLOTS.values(), ("lineage", "base_model"), ("lineage", "dataset"))


def plan_import(parent: Release, imports: list[Imported], asked: Bump | None) -> ImportPlan:
    """Merge the sources (later wins), check the asked bump covers the change, list what stays."""
    supplied = merged(imports)
    set_paths = [item.path for item in supplied]
    given = overlay({}, supplied)  # a field one source misses may be in another's block
    missing = [m for m in merged(Imported(i.source, i.missing) for i in imports)
               if _value_at(given, m.path) is None]
    bump, reasons = bump_for(parent, supplied, missing)
    if asked is not None:
        if asked < bump:
            raise ImportRefused(f"--bump {asked.name.lower()} is too small: the imported changes need at least "
                                f"{bump.name} ({describe(reasons)}); drop --bump to take {bump.name}")
        bump = asked
    kept = [path for path in KEEPABLE if not any(_overlaps(path, p) for p in set_paths)]
    return ImportPlan(" and ".join(i.source for i in imports), supplied, missing, kept, bump, reasons)
