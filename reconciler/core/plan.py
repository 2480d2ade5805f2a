"""What a change does, read as a reviewer reads it: the semantic difference between two repositories.

`plan(base, head)` compares the repository on the base ref (what is merged) with the working tree
(what this change would merge): which releases are added (and how big a version bump they are
from their parent, and why), changed or removed; per environment and model, which pointers move
and how user traffic moves (per version, from -> to percent), and what the new stage needs before
it moves on; the pre-deployment gates of each new candidate. Checks that need more than the two
repositories (validate's findings, the resources the program makes, the policy pack's verdicts)
are added by the adapter.

Example: a PR that moves chat-assistant in staging from stage 1 to 2 plans as
`staging / chat-assistant: stage 1 -> 2; 1.2.0 99% -> 95%, 1.3.0 1% -> 5%`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .environment import ModelDeployment
from .evidence_plan import StagePlan, rollout_plan
from .findings import Finding, HasFindings, Severity, format_path
from .immutability import changed_paths
from .predeployment import GateResult, evaluate_predeployment
from .repository import Repository
from .semver import Bump, Reason, bump_between, changes_since
from .status import next_gate
from .traffic import traffic_split
from .types import version_key

#: Pointer fields a reviewer cares about, in the order they are shown.
DEPLOYMENT_FIELDS = ("stable", "candidate", "standby", "stage", "stage_started_at", "standby_until", "pool",
                     "replicas")


@dataclass(frozen=True)
class ReleaseChange:
    kind: str  # "added" | "changed" | "removed"
    model: str
    version: str
    file: str
    parent: str | None = None
    bump: Bump | None = None  # added: how far the version moved from its parent
    reasons: tuple[Reason, ...] = ()  # added: what changed since the parent
    changed: tuple[str, ...] = ()  # changed: the released fields this change edits (an error)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class ModelPlan:
    """One model in one environment: pointer moves and the traffic they move."""

    environment: str
    model: str
    kind: str  # "added" | "removed" | "changed"
    fields: tuple[FieldChange, ...] = ()
    weights: dict[str, tuple[int, int]] = field(default_factory=dict)  # version -> (before, after) percent
    mirror: tuple[str, str] = ("", "")  # "1.3.0 100%" before and after, "" when nothing is mirrored
    stage: str | None = None  # the candidate's stage after the change, e.g. "stage 2 of 5 (5%)"
    needs: str | None = None  # what that stage needs before the candidate moves on
    predeployment: tuple[GateResult, ...] = ()  # a new candidate's offline gates
    evidence: tuple[StagePlan, ...] = ()  # the candidate's stages with statistical gates, at the declared traffic

    @property
    def traffic_moves(self) -> bool:
        return any(before != after for before, after in self.weights.values()) or self.mirror[0] != self.mirror[1]


@dataclass(frozen=True)
class EnvironmentPlan:
    name: str
    kind: str  # "added" | "removed" | "changed"
    settings: tuple[str, ...] = ()  # top-level keys other than models that changed: gpu_pools, policy, ...
    models: tuple[ModelPlan, ...] = ()


@dataclass
class Plan(HasFindings):
    base: str
    releases: list[ReleaseChange]
    environments: list[EnvironmentPlan]
    findings: list[Finding] = field(default_factory=list)  # the head's errors, and warnings new in this change
    known_warnings: int = 0  # warnings the base already had (not repeated)
    extra: dict[str, Any] = field(default_factory=dict)  # adapter-supplied checks: resources, policies

    @property
    def empty(self) -> bool:
        return not self.releases and not self.environments


def plan(base: Repository, head: Repository, base_label: str) -> Plan:
    return Plan(base_label, release_changes(base, head), environment_plans(base, head))


def release_changes(base: Repository, head: Repository) -> list[ReleaseChange]:
    """Added, changed and removed releases, by model then version."""
    out = []
    keys = {(e.release.model, e.release.version) for e in (*base.releases, *head.releases)}
    for model, version in sorted(keys):
        before, after = base.release(model, version), head.release(model, version)
        if before is None and after is not None:
            parent_version = after.lineage.parent_version
            parent = head.release(model, parent_version) if parent_version else None
            out.append(ReleaseChange(
                "added", model, version, head.release_file(model, version), parent_version,
                bump_between(parent.version, version) if parent else None,
                tuple(changes_since(parent, after)) if parent else ()))
        elif before is not None and after is None and not head.is_broken(model, version):
            out.append(ReleaseChange("removed", model, version, base.release_file(model, version)))
        elif before is not None and after is not None and before != after:
            out.append(ReleaseChange("changed", model, version, head.release_file(model, version),
                                     changed=tuple(format_path(p) for p in changed_paths(before, after))))
    return out


def environment_plans(base: Repository, head: Repository) -> list[EnvironmentPlan]:
    out = []
    for name in sorted(base.environments.keys() | head.environments.keys()):
        if any(f"environments/{name}.yaml" in repo.broken_files for repo in (base, head)):
            continue  # a file that does not parse is its own error, not an environment added or removed
        old, new = base.environments.get(name), head.environments.get(name)
        kind = "added" if old is None else "removed" if new is None else "changed"
        old_models = old.models if old else {}
        new_models = new.models if new else {}
        models = tuple(m for m in (_model_plan(name, model, base, head, old_models.get(model), new_models.get(model))
                                   for model in sorted(old_models.keys() | new_models.keys())) if m is not None)
        settings = _changed_settings(old, new) if old and new else ()
        if models or settings or kind != "changed":
            out.append(EnvironmentPlan(name, kind, settings, models))
    return out


def _changed_settings(old: Any, new: Any) -> tuple[str, ...]:
    before, after = old.model_dump(mode="json", exclude={"models"}), new.model_dump(mode="json", exclude={"models"})
    return tuple(key for key in [*before, *(k for k in after if k not in before)] if before.get(key) != after.get(key))


def _model_plan(environment: str, model: str, base: Repository, head: Repository,
                old: ModelDeployment | None, new: ModelDeployment | None) -> ModelPlan | None:
    old_candidate = base.release(model, old.candidate) if old and old.candidate else None
    new_candidate = head.release(model, new.candidate) if new and new.candidate else None
    if old == new and old_candidate == new_candidate:
        return None  # the same pointers at the same stages (a changed release is reported on its own)
    before = traffic_split(old, old_candidate) if old else None
    after = traffic_split(new, new_candidate) if new else None
    old_weights, new_weights = (before.weights if before else {}), (after.weights if after else {})
    weights = {v: (old_weights.get(v, 0), new_weights.get(v, 0)) for v in _versions(old_weights, new_weights)}
    kind = "added" if old is None else "removed" if new is None else "changed"
    stage = needs = None
    gates: tuple[GateResult, ...] = ()
    evidence: tuple[StagePlan, ...] = ()
    if new is not None and new_candidate is not None:
        env = head.environments[environment]
        evidence = rollout_plan(new_candidate, env.metrics.queries, new.expected_rps, evaluator=env.evaluator)
        stages = new_candidate.rollout.stages
        current = stages[min(new.stage, len(stages) - 1)]
        stage = f"stage {new.stage} of {len(stages) - 1} ({current.weight}%" + \
            (f", mirroring {current.mirror}%" if current.mirror else "") + ")"
        needs = next_gate(new_candidate, new.stage, None)
        if old is None or old.candidate != new.candidate:
            stable = head.release(model, new.stable)
            gates = tuple(evaluate_predeployment(new_candidate.evaluation, stable.evaluation if stable else None,
                                                 env.policy.predeployment))
    return ModelPlan(environment, model, kind, _field_changes(old, new), weights,
                     (_mirror(before), _mirror(after)), stage, needs, gates, evidence)


def _versions(*weights: dict[str, int]) -> list[str]:
    return sorted({v for w in weights for v in w}, key=version_key)


def _mirror(split: Any) -> str:
    return f"{split.mirror[0]} {split.mirror[1]}%" if split is not None and split.mirror else ""


def _field_changes(old: ModelDeployment | None, new: ModelDeployment | None) -> tuple[FieldChange, ...]:
    before, after = _pointers(old), _pointers(new)
    return tuple(FieldChange(f, before.get(f), after.get(f)) for f in DEPLOYMENT_FIELDS if before.get(f) != after.get(f))


def _pointers(dep: ModelDeployment | None) -> dict[str, Any]:
    """A deployment's fields as written; `stage` means nothing without a candidate (its default 0
    would read as a move to stage 0)."""
    if dep is None:
        return {}
    fields = dep.model_dump(mode="json")
    if dep.candidate is None:
        fields["stage"] = None
    return fields


def new_findings(head: list[Finding], base: list[Finding]) -> tuple[list[Finding], int]:
    """The head's errors, and its warnings the base did not have: a plan repeats no old news.
    Returns (findings, count of warnings already on the base)."""
    seen = {(f.rule, f.file, f.path, f.message) for f in base if f.severity is Severity.WARNING}
    kept = [f for f in head if f.severity is Severity.ERROR or (f.rule, f.file, f.path, f.message) not in seen]
    return kept, len(head) - len(kept)
