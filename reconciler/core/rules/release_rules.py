"""Rules about one release on its own: where it lives, the shape of its rollout, its bounds."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any, Iterator

from ..config_manifests import without_secrets
from ..findings import Finding, Problem, Severity, YamlPath, findings_from, format_path
from ..naming import stack_name
from ..policy.secrets import FIX as SECRET_FIX
from ..policy.secrets import masked, secret_findings
from ..release import Gate, Release, RollbackTrigger, Rollout
from ..repository import Repository, release_path
from ..semver import Bump, bump_between, changes_since, describe, next_version, required_bump
from ..types import format_duration, version_key
from . import rule


@rule("release-location")
def release_location(repo: Repository) -> Iterator[Finding]:
    """releases/<model>/<version>.yaml: tooling finds releases by path, so the path must not lie."""
    for entry in repo.releases:
        r = entry.release
        expected = release_path(r.model, r.version)
        if entry.file != expected:
            field = "model" if not entry.file.startswith(f"releases/{r.model}/") else "version"
            yield Finding(Severity.ERROR, "release-location", entry.file, (field,),
                          f"this file declares {r.model} {r.version}, so it must be {expected}",
                          f"move the file to {expected}, or correct `{field}`")


@rule("unique-version")
def unique_version(repo: Repository) -> Iterator[Finding]:
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in repo.releases:
        files[(entry.release.model, entry.release.version)].append(entry.file)
    for (model, version), paths in files.items():
        for path in paths[1:]:
            yield Finding(Severity.ERROR, "unique-version", path, ("version",),
                          f"{model} {version} is already defined in {paths[0]}",
                          "a version is released once: bump the version in this file")


@rule("rollout-stages")
def rollout_stages(repo: Repository) -> Iterator[Finding]:
    for entry in repo.releases:
        yield from findings_from("rollout-stages", entry.file, ("rollout", "stages"),
                                 stage_problems(entry.release.rollout))


@rule("bounds")
def bounds(repo: Repository) -> Iterator[Finding]:
    for entry in repo.releases:
        yield from findings_from("bounds", entry.file, ("rollout",), rollout_bound_problems(entry.release.rollout))


@rule("lineage-parent")
def lineage_parent(repo: Repository) -> Iterator[Finding]:
    for entry in repo.releases:
        yield from findings_from("lineage-parent", entry.file, ("lineage",), parent_problems(entry.release, repo))


@rule("semver")
def semver(repo: Repository) -> Iterator[Finding]:
    """The version number says how much changed since the parent (rules in core/semver.py)."""
    for entry in repo.releases:
        yield from findings_from("semver", entry.file, (), semver_problems(entry.release, repo))


@rule("secrets")
def secrets(repo: Repository) -> Iterator[Finding]:
    """No secret-looking value in what render copies into ConfigMaps: the pack's configmap-secrets
    check, run here on each release, so `validate` and `render` refuse what `preview` blocks."""
    for entry in repo.releases:
        yield from findings_from("secrets", entry.file, (), release_secret_problems(entry.release))


def release_secret_problems(release: Release) -> Iterator[Problem]:
    """Each value of the release document (`release.json`, which also holds everything the runtime
    and fetch-list ConfigMaps carry) that the pack's detector flags, at its own YAML path.

    Each value is scanned as the line `release.json` holds it on (`"api_key": "..."`), so the
    verdict is the pack's. First one scan of the compact document (every such line is in it,
    between separators that match no pattern): only when that finds something are the lines walked.
    """
    document = without_secrets(release)
    if not secret_findings(json.dumps(document)):
        return
    config_map = f"{stack_name(release.model, release.version)}-release"
    for path, line in _rendered_lines(document, ()):
        for kind, _, match in secret_findings(line):
            yield Problem(path, f"{format_path(path)} holds what looks like {kind} ({masked(match)}); `reconciler "
                          f"render` and the Pulumi program would copy it into the ConfigMap {config_map}",
                          f"remove it from the release: {SECRET_FIX}")


def _rendered_lines(value: Any, path: YamlPath) -> Iterator[tuple[YamlPath, str]]:
    """(path, the line `as_json` writes the value on) for every scalar, key included."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                yield (*path, key), json.dumps(key)  # a key may hold a secret too
                yield from _rendered_lines(item, (*path, key))
            else:
                yield (*path, key), f"{json.dumps(key)}: {json.dumps(item)}"
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _rendered_lines(item, (*path, i))
    else:
        yield path, json.dumps(value)


def semver_problems(release: Release, repo: Repository) -> Iterator[Problem]:
    parent = repo.release(release.model, release.lineage.parent_version or "")
    if parent is None:
        return  # no parent to compare with: lineage-parent says why when that is wrong
    actual = bump_between(parent.version, release.version)
    reasons = changes_since(parent, release)
    needed = required_bump(reasons)
    if actual is Bump.NONE or actual >= needed:
        return  # NONE: not newer than its parent, which lineage-parent reports
    too_big = [r for r in reasons if r.bump > actual]
    yield Problem(too_big[0].path,
                  f"{release.version} is a {actual.word} bump from its parent {parent.version}, but it brings "
                  f"{describe(too_big)}: that needs a {needed.word} bump",
                  f"release it as {next_version(parent.version, needed)} (`reconciler release new {release.model} "
                  f"--bump {needed.name.lower()}` writes the file), or undo the change")


def stage_problems(rollout: Rollout) -> Iterator[Problem]:
    """Stage weights strictly increase and end at 100; mirror and 0/100 shapes fit the strategy.

    Example: canary weights [0, 1, 5, 5, 100] -> "stage 3 has weight 5 after 5".
    A shadow rollout may hold several 0% stages and may end mirrored (evaluate, then stop).
    """
    stages, strategy = rollout.stages, rollout.strategy
    for i in range(1, len(stages)):
        before, now = stages[i - 1].weight, stages[i].weight
        both_shadow_zero = strategy == "shadow" and before == now == 0
        if now <= before and not both_shadow_zero:
            yield Problem((i, "weight"), f"stage weights must strictly increase: stage {i} has weight {now} "
                          f"after {before}", "give each stage a larger weight than the one before, or remove it")
    last = stages[-1]
    ends_shadowed = strategy == "shadow" and last.weight == 0 and last.mirror > 0
    if last.weight != 100 and not ends_shadowed:
        yield Problem((len(stages) - 1, "weight"), f"the last stage must send 100% of traffic, not {last.weight}%",
                      "add a final stage `- weight: 100` (the promotion)")
    for i, stage in enumerate(stages):
        if stage.mirror and strategy != "shadow":
            yield Problem((i, "mirror"), f"stage {i} mirrors traffic but the strategy is {strategy}",
                          "set `strategy: shadow`, or remove `mirror`")
        elif stage.mirror and stage.weight:
            yield Problem((i, "mirror"), f"stage {i} both serves {stage.weight}% and mirrors {stage.mirror}%",
                          "mirror on 0% stages only: a shadow candidate never answers users")
        if strategy == "blue-green" and stage.weight not in (0, 100):
            yield Problem((i, "weight"), f"blue-green switches 0/100, but stage {i} has weight {stage.weight}",
                          "use weights 0 and 100 only, or `strategy: canary`")
        if 0 < stage.weight < 100 and stage.min_duration == timedelta(0):
            yield Problem((i, "min_duration"), f"stage {i} ({stage.weight}%) has no minimum duration: "
                          "it could advance on the first pass", "set `min_duration`, e.g. 1h",
                          Severity.WARNING)
    if strategy == "shadow" and not any(s.mirror for s in stages):
        yield Problem((), "strategy is shadow but no stage mirrors traffic",
                      "add a first stage `{weight: 0, mirror: 100, min_duration: 24h}`")


def rollout_bound_problems(rollout: Rollout) -> Iterator[Problem]:
    """Every gate and trigger has a bound, no lower bound exceeds its upper bound, and every progress
    deadline leaves its stage time to advance."""
    for i, stage in enumerate(rollout.stages):
        for j, gate in enumerate(stage.gates):
            yield from _prefixed(("stages", i, "gates", j), gate_bound_problems(gate))
    for k, trigger in enumerate(rollout.rollback_triggers):
        yield from _prefixed(("rollback_triggers", k), trigger_bound_problems(trigger))
    yield from deadline_problems(rollout)


def deadline_problems(rollout: Rollout) -> Iterator[Problem]:
    """A progress deadline no longer than the stage's min_duration would pass before the stage
    could advance: every rollout would end in its on_progress_deadline action.

    Example: stage 2 {min_duration: 4h, progress_deadline: 4h} -> "stage 2's progress deadline 4h
    is not longer than its min_duration 4h". The computed default (3 x min_duration, at least 1h)
    always leaves room.
    """
    short = []
    for i, stage in enumerate(rollout.stages):
        if stage.progress_deadline is not None and stage.progress_deadline <= stage.min_duration:
            yield Problem(("stages", i, "progress_deadline"),
                          f"stage {i}'s progress deadline {format_duration(stage.progress_deadline)} is not longer "
                          f"than its min_duration {format_duration(stage.min_duration)}: it would pass before the "
                          "stage could advance", f"make it longer than {format_duration(stage.min_duration)}")
        elif stage.progress_deadline is None and rollout.progress_deadline is not None \
                and rollout.progress_deadline <= stage.min_duration:
            short.append((i, stage.min_duration))
    if short:
        stages = ", ".join(f"stage {i} ({format_duration(d)})" for i, d in short)
        longest = format_duration(max(d for _, d in short))
        deadline = format_duration(rollout.progress_deadline)  # type: ignore[arg-type]  (short needs one)
        yield Problem(("progress_deadline",),
                      f"the rollout's progress_deadline {deadline} is not longer than the min_duration of {stages}: "
                      "it would pass before those stages could advance",
                      f"make it longer than {longest}, or give those stages a progress_deadline of their own")


def gate_bound_problems(gate: Gate) -> Iterator[Problem]:
    if not gate.bounds():
        yield Problem((), f"gate on {gate.metric} has no bound, so it always passes",
                      "add min, max, max_ratio_to_stable, min_ratio_to_stable, "
                      "max_increase_over_stable or max_decrease_from_stable")
    yield from _min_max(gate, "gate")
    if gate.min_ratio_to_stable is not None and gate.max_ratio_to_stable is not None \
            and gate.min_ratio_to_stable >= gate.max_ratio_to_stable:
        yield Problem(("min_ratio_to_stable",),
                      f"min_ratio_to_stable {gate.min_ratio_to_stable:g} >= max_ratio_to_stable "
                      f"{gate.max_ratio_to_stable:g}: no value can pass", "make the lower ratio smaller")


def trigger_bound_problems(trigger: RollbackTrigger) -> Iterator[Problem]:
    if trigger.min is None and trigger.max is None and not trigger.statistical:
        yield Problem((), f"rollback trigger on {trigger.metric} has neither min nor max, so it never fires",
                      "add `max:` (roll back above) and/or `min:` (roll back below)")
    yield from _min_max(trigger, "trigger")


def _min_max(item: Gate | RollbackTrigger, kind: str) -> Iterator[Problem]:
    if item.min is not None and item.max is not None and item.min >= item.max:
        yield Problem(("min",), f"{kind} on {item.metric}: min {item.min:g} >= max {item.max:g}",
                      "min must be below max")


def parent_problems(release: Release, repo: Repository) -> Iterator[Problem]:
    parent = release.lineage.parent_version
    if parent is None:
        if not repo.is_first_release(release):
            older = repo.versions(release.model)[0]
            yield Problem(("parent_version",), f"parent_version is empty, but {release.version} is not the first "
                          f"release of {release.model} ({older} is older)",
                          "set parent_version to the release this one was derived from")
        return
    if version_key(parent) >= version_key(release.version):
        yield Problem(("parent_version",), f"parent version {parent} is not older than {release.version}",
                      "the parent is the release this one was derived from: an older version")
    elif repo.release(release.model, parent) is None and not repo.is_broken(release.model, parent):
        yield Problem(("parent_version",), f"parent version {parent} has no release file "
                      f"({release_path(release.model, parent)})",
                      "keep released versions in git: lineage must reach the first version",
                      Severity.WARNING)


def _prefixed(prefix: tuple, problems: Iterator[Problem]) -> Iterator[Problem]:
    for p in problems:
        yield Problem(prefix + p.path, p.message, p.fix, p.severity)
