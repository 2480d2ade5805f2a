"""Every semantic rule, driven through the loader on a mutated copy of the example repository.

Each case edits one or two files of the example (with a round-trip YAML edit, as a person would),
loads the repository and expects exactly one finding from the rule under test: its rule id,
severity, file, YAML path, message, and the line and column of the key in the file as written.
The expected position is found by searching the written text with `marker`, a list of regexes
searched one after another (each from where the previous matched), so the case names the key the
way a person would look for it ("under models:, under code-completion:, the pool: line").
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.findings import Finding, Severity
from reconciler.core.judge import requests_needed
from reconciler.core.rules import (RULES, environment_rules, evaluation_rules, evidence_rules,  # noqa: F401
                                   release_rules)
from tests.conftest import mutate_yaml
from tests.evaluation_kit import attach_artifact, sample_artifact

R11 = "releases/chat-assistant/1.1.0.yaml"
R12 = "releases/chat-assistant/1.2.0.yaml"
R13 = "releases/chat-assistant/1.3.0.yaml"
C20 = "releases/code-completion/2.0.0.yaml"
C21 = "releases/code-completion/2.1.0.yaml"
STAGING = "environments/staging.yaml"
PROD = "environments/prod.yaml"

Mutation = Callable[[Path], None]
ERROR, WARNING = Severity.ERROR, Severity.WARNING


# --------------------------------------------------------------------------- mutation helpers


def _walk(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def set_(path: tuple, value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        _walk(data, path[:-1])[path[-1]] = value
    return change


def delete(path: tuple) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        del _walk(data, path[:-1])[path[-1]]
    return change


def append(path: tuple, value: Any) -> Callable[[Any], None]:
    def change(data: Any) -> None:
        _walk(data, path).append(value)
    return change


def edit(rel: str, *changes: Callable[[Any], None]) -> Mutation:
    """Round-trip edit of one file: load, apply each change, write back."""
    def mutate(root: Path) -> None:
        def apply(data: Any) -> None:
            for change in changes:
                change(data)
        mutate_yaml(root / rel, apply)
    return mutate


def copy(src: str, dst: str, *changes: Callable[[Any], None]) -> Mutation:
    """A new file: a copy of `src`, edited."""
    def mutate(root: Path) -> None:
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / src, root / dst)
        if changes:
            edit(dst, *changes)(root)
    return mutate


def artifact(rel: str, **kwargs: Any) -> Mutation:
    """Attach an evaluation artifact (tests/evaluation_kit.py) to the release in `rel`; `numbers`,
    `model` and `version` change the artifact, other keywords how it is attached."""
    numbers = kwargs.pop("numbers", {})
    model, version = kwargs.pop("model", "chat-assistant"), kwargs.pop("version", "1.3.0")

    def mutate(root: Path) -> None:
        attach_artifact(root, rel, sample_artifact(model, version, **numbers), **kwargs)
    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(root: Path) -> None:
        for m in mutations:
            m(root)
    return mutate


def position(text: str, marker: tuple[str, ...]) -> tuple[int, int]:
    """1-based line and column where the last regex of `marker` matches, searching in sequence."""
    at = 0
    for pattern in marker:
        match = re.compile(pattern, re.MULTILINE).search(text, at)
        assert match, f"marker {pattern!r} not found after offset {at}"
        at = match.start()
        start = at
        at += 1
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, column


def describe(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity} {f.rule} {f.file}:{f.line}:{f.column} {f.yaml_path}: {f.message}"
                     for f in findings) or "(none)"


# --------------------------------------------------------------------------- the table


class Case(NamedTuple):
    id: str
    mutate: Mutation
    rule: str
    severity: Severity
    file: str
    path: str
    message: str
    marker: tuple[str, ...]
    also: tuple[str, ...] = ()  # rules whose findings may accompany this one (the same cause)


AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLQ"  # built at run time, so this file holds no secret-shaped literal
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5" * 4

CASES = [
    # secrets: what render would copy into a ConfigMap, through the pack's own detector
    Case("an AWS access key in a release's description",
         edit(R13, set_(("description",), f"Adds tool use. Deploy key {AWS_KEY}.")),
         "secrets", ERROR, R13, "description",
         "description holds what looks like an AWS access key id (AKIA... (20 characters)); `reconciler render` "
         "and the Pulumi program would copy it into the ConfigMap chat-assistant-v1-3-0-release",
         (r"^description:",)),
    Case("a GitHub token in the generation parameters",
         edit(R13, set_(("bundle", "generation", "stop"), ["</s>", GITHUB_TOKEN])),
         "secrets", ERROR, R13, "bundle.generation.stop[1]",
         "bundle.generation.stop[1] holds what looks like a GitHub token (ghp_... (44 characters))",
         (r"^bundle:", r"generation:", r"stop:", r"ghp_")),
    Case("a hyperparameter named like a secret with a literal value",
         edit(R13, set_(("lineage", "hyperparameters", "wandb_api_key"), "q8w9e7r6t5y4u3i2")),
         "secrets", ERROR, R13, "lineage.hyperparameters.wandb_api_key",
         "holds what looks like a value assigned to 'wandb_api_key' (q8w9... (16 characters))",
         (r"^lineage:", r"hyperparameters:", r"wandb_api_key:")),
    # release-location
    Case("a release whose version differs from its file name is misplaced",
         copy(R13, "releases/chat-assistant/1.3.1.yaml", set_(("version",), "1.3.2")),
         "release-location", ERROR, "releases/chat-assistant/1.3.1.yaml", "version",
         "this file declares chat-assistant 1.3.2, so it must be releases/chat-assistant/1.3.2.yaml",
         (r"^version:",)),
    Case("a release filed under another model's folder points at its model field",
         copy(R13, "releases/code-completion/1.3.5.yaml", set_(("version",), "1.3.5")),
         "release-location", ERROR, "releases/code-completion/1.3.5.yaml", "model",
         "this file declares chat-assistant 1.3.5, so it must be releases/chat-assistant/1.3.5.yaml",
         (r"^model:",)),
    # unique-version
    Case("a second file declaring an existing version is a duplicate",
         copy(R12, "releases/chat-assistant/old/1.2.0.yaml"),
         "unique-version", ERROR, "releases/chat-assistant/old/1.2.0.yaml", "version",
         f"chat-assistant 1.2.0 is already defined in {R12}",
         (r"^version:",), also=("release-location",)),
    # rollout-stages
    Case("canary stage weights must strictly increase",
         edit(R13, set_(("rollout", "stages", 3, "weight"), 5)),
         "rollout-stages", ERROR, R13, "rollout.stages[3].weight",
         "stage weights must strictly increase: stage 3 has weight 5 after 5",
         (r"weight: 5$", r"weight: 5$")),
    Case("a canary may not hold two 0% stages",
         edit(R13, set_(("rollout", "stages", 1, "weight"), 0)),
         "rollout-stages", ERROR, R13, "rollout.stages[1].weight",
         "stage 1 has weight 0 after 0",
         (r"weight: 0\b", r"weight: 0\b")),
    Case("a rollout that never reaches 100% is reported at its last stage",
         edit(R13, delete(("rollout", "stages", 5))),
         "rollout-stages", ERROR, R13, "rollout.stages[4].weight",
         "the last stage must send 100% of traffic, not 50%",
         (r"weight: 50$",)),
    Case("a canary stage may not mirror traffic",
         edit(R13, set_(("rollout", "stages", 0, "mirror"), 50)),
         "rollout-stages", ERROR, R13, "rollout.stages[0].mirror",
         "stage 0 mirrors traffic but the strategy is canary",
         (r"mirror: 50",)),
    Case("a shadow stage may not both serve and mirror",
         edit(R13, set_(("rollout", "strategy"), "shadow"), set_(("rollout", "stages", 1, "mirror"), 100)),
         "rollout-stages", ERROR, R13, "rollout.stages[1].mirror",
         "stage 1 both serves 1% and mirrors 100%",
         (r"mirror: 100",)),
    Case("blue-green only switches 0/100",
         edit(C21, set_(("rollout", "stages"), [{"weight": 0, "min_duration": "1h"},
                                                 {"weight": 50, "min_duration": "1h"}, {"weight": 100}])),
         "rollout-stages", ERROR, C21, "rollout.stages[1].weight",
         "blue-green switches 0/100, but stage 1 has weight 50",
         (r"weight: 50$",)),
    Case("a shadow rollout must mirror in some stage",
         edit(R13, set_(("rollout", "strategy"), "shadow")),
         "rollout-stages", ERROR, R13, "rollout.stages",
         "strategy is shadow but no stage mirrors traffic",
         (r"^rollout:", r"stages:")),
    Case("a partial-traffic stage without min_duration warns that it could advance at once",
         edit(R13, delete(("rollout", "stages", 2, "min_duration"))),
         "rollout-stages", WARNING, R13, "rollout.stages[2].min_duration",
         "stage 2 (5%) has no minimum duration: it could advance on the first pass",
         (r"weight: 5$",)),
    # bounds
    Case("a gate without any bound always passes",
         edit(R13, delete(("rollout", "stages", 1, "gates", 1, "max"))),
         "bounds", ERROR, R13, "rollout.stages[1].gates[1]",
         "gate on ttft_p99_seconds has no bound, so it always passes",
         (r"\{metric: ttft_p99_seconds\}",)),
    Case("a gate whose min exceeds its max can never pass",
         edit(R13, set_(("rollout", "stages", 1, "gates", 1, "min"), 2)),
         "bounds", ERROR, R13, "rollout.stages[1].gates[1].min",
         "gate on ttft_p99_seconds: min 2 >= max 1.5",
         (r"ttft_p99_seconds", r"min: 2")),
    Case("a stage's progress deadline no longer than its min_duration would fire before it could advance",
         edit(R13, set_(("rollout", "stages", 2, "progress_deadline"), "4h")),
         "bounds", ERROR, R13, "rollout.stages[2].progress_deadline",
         "stage 2's progress deadline 4h is not longer than its min_duration 4h: it would pass before the stage "
         "could advance",
         (r"weight: 5$", r"progress_deadline: 4h")),
    Case("the rollout's progress deadline is checked against every stage without its own",
         edit(R13, set_(("rollout", "progress_deadline"), "6h")),
         "bounds", ERROR, R13, "rollout.progress_deadline",
         "the rollout's progress_deadline 6h is not longer than the min_duration of stage 3 (1d), stage 4 (2d): it "
         "would pass before those stages could advance",
         (r"progress_deadline: 6h",)),
    Case("a gate whose min equals its max is rejected too",
         edit(R13, set_(("rollout", "stages", 1, "gates", 1, "min"), 1.5)),
         "bounds", ERROR, R13, "rollout.stages[1].gates[1].min",
         "gate on ttft_p99_seconds: min 1.5 >= max 1.5",
         (r"ttft_p99_seconds", r"min: 1.5")),
    Case("a gate whose min ratio is above its max ratio can never pass",
         edit(R13, set_(("rollout", "stages", 1, "gates", 0, "min_ratio_to_stable"), 1.5)),
         "bounds", ERROR, R13, "rollout.stages[1].gates[0].min_ratio_to_stable",
         "min_ratio_to_stable 1.5 >= max_ratio_to_stable 1.2: no value can pass",
         (r"latency_p99_ms, max_ratio_to_stable", r"min_ratio_to_stable:")),
    Case("a rollback trigger without min or max never fires",
         edit(R13, delete(("rollout", "rollback_triggers", 1, "max"))),
         "bounds", ERROR, R13, "rollout.rollback_triggers[1]",
         "rollback trigger on latency_p99_ms has neither min nor max, so it never fires",
         (r"\{metric: latency_p99_ms\}",)),
    Case("a rollback trigger whose min exceeds its max is reported at min",
         edit(R13, set_(("rollout", "rollback_triggers", 3, "max"), 0.5)),
         "bounds", ERROR, R13, "rollout.rollback_triggers[3].min",
         "trigger on quality_score: min 0.6 >= max 0.5",
         (r"metric: quality_score, min: 0.6", r"min: 0.6")),
    # lineage-parent
    Case("a parent version newer than the release is wrong",
         edit(R12, set_(("lineage", "parent_version"), "1.3.0")),
         "lineage-parent", ERROR, R12, "lineage.parent_version",
         "parent version 1.3.0 is not older than 1.2.0",
         (r"parent_version:",)),
    Case("a release cannot be its own parent",
         edit(R13, set_(("lineage", "parent_version"), "1.3.0")),
         "lineage-parent", ERROR, R13, "lineage.parent_version",
         "parent version 1.3.0 is not older than 1.3.0",
         (r"parent_version:",)),
    Case("parent versions compare as numbers (1.10.0 is newer than 1.3.0)",
         edit(R13, set_(("lineage", "parent_version"), "1.10.0")),
         "lineage-parent", ERROR, R13, "lineage.parent_version",
         "parent version 1.10.0 is not older than 1.3.0",
         (r"parent_version:",)),
    Case("only a model's oldest release file may have no parent (the pack's lineage-complete agrees)",
         edit(R13, set_(("lineage", "parent_version"), None)),
         "lineage-parent", ERROR, R13, "lineage.parent_version",
         "parent_version is empty, but 1.3.0 is not the first release of chat-assistant (1.1.0 is older)",
         (r"parent_version:",)),
    Case("a parent without a release file warns that lineage is broken",
         edit(R13, set_(("lineage", "parent_version"), "1.2.5")),
         "lineage-parent", WARNING, R13, "lineage.parent_version",
         "parent version 1.2.5 has no release file (releases/chat-assistant/1.2.5.yaml)",
         (r"parent_version:",)),
    # environment-name
    Case("an environment file name that is not a DNS label is reported at the document",
         copy(STAGING, "environments/Staging_EU.yaml"),
         "environment-name", ERROR, "environments/Staging_EU.yaml", "",
         "environment name 'Staging_EU' (the file name) is not a valid Kubernetes name",
         (r"^cluster:",)),
    # gpu-pools
    Case("a GPU pool defined twice is reported at the second name",
         edit(PROD, lambda d: d["gpu_pools"].append(dict(d["gpu_pools"][0]))),
         "gpu-pools", ERROR, PROD, "gpu_pools[2].name",
         "GPU pool a100 is defined twice",
         (r"name: a100", r"name: a100")),
    Case("a pool whose min_nodes exceeds max_nodes is reported at min_nodes",
         edit(PROD, set_(("gpu_pools", 1, "min_nodes"), 7)),
         "gpu-pools", ERROR, PROD, "gpu_pools[1].min_nodes",
         "pool a10g: min_nodes 7 > max_nodes 6",
         (r"min_nodes: 7",)),
    # pointers
    Case("a candidate pointing at a version with no release file",
         edit(STAGING, set_(("models", "chat-assistant", "candidate"), "1.4.0")),
         "pointers", ERROR, STAGING, "models.chat-assistant.candidate",
         "chat-assistant candidate points at 1.4.0, but releases/chat-assistant/1.4.0.yaml does not exist "
         "(known versions: 1.1.0, 1.2.0, 1.3.0)",
         (r"^models:", r"chat-assistant:", r"candidate:")),
    Case("a standby equal to the stable holds two roles",
         edit(PROD, set_(("models", "chat-assistant", "standby"), "1.2.0")),
         "pointers", ERROR, PROD, "models.chat-assistant.standby",
         "chat-assistant standby is 1.2.0, which is already the stable",
         (r"^models:", r"chat-assistant:", r"standby:")),
    Case("a model with no releases at all lists no known versions",
         edit(PROD, set_(("models", "summarizer"), {"stable": "1.0.0", "pool": "a10g"})),
         "pointers", ERROR, PROD, "models.summarizer.stable",
         "summarizer stable points at 1.0.0, but releases/summarizer/1.0.0.yaml does not exist "
         "(known versions: none)",
         (r"^models:", r"summarizer:", r"stable:")),
    # stage
    Case("a candidate without stage_started_at is reported at the model",
         edit(STAGING, delete(("models", "chat-assistant", "stage_started_at"))),
         "stage", ERROR, STAGING, "models.chat-assistant.stage_started_at",
         "chat-assistant has a candidate but no stage_started_at",
         (r"^models:", r"chat-assistant:")),
    Case("a stage past the candidate's last canary stage",
         edit(STAGING, set_(("models", "chat-assistant", "stage"), 6)),
         "stage", ERROR, STAGING, "models.chat-assistant.stage",
         "chat-assistant 1.3.0 has stages 0..5, not stage 6",
         (r"^models:", r"chat-assistant:", r"stage: 6")),
    Case("a blue-green candidate has only stages 0 and 1 (its defaults)",
         edit(STAGING, set_(("models", "code-completion", "stage"), 2)),
         "stage", ERROR, STAGING, "models.code-completion.stage",
         "code-completion 2.1.0 has stages 0..1, not stage 2",
         (r"^models:", r"code-completion:", r"stage: 2")),
    Case("a stage without a candidate warns that it means nothing",
         edit(PROD, set_(("models", "chat-assistant", "stage"), 3)),
         "stage", WARNING, PROD, "models.chat-assistant.stage",
         "chat-assistant has no candidate, so stage 3 means nothing",
         (r"^models:", r"chat-assistant:", r"stage: 3")),
    # gpu-placement
    Case("a model on a pool the environment does not define",
         edit(STAGING, set_(("models", "chat-assistant", "pool"), "h100")),
         "gpu-placement", ERROR, STAGING, "models.chat-assistant.pool",
         "chat-assistant runs on pool h100, which is not in gpu_pools (a100, a10g)",
         (r"^models:", r"chat-assistant:", r"pool: h100")),
    Case("a release on a pool with another GPU type",
         edit(PROD, set_(("models", "code-completion", "pool"), "a100")),
         "gpu-placement", ERROR, PROD, "models.code-completion.pool",
         "code-completion stable 2.0.0 needs nvidia-a10g GPUs, but pool a100 has nvidia-a100-80gb",
         (r"^models:", r"code-completion:", r"pool: a100")),
    Case("a replica that needs more GPUs than a node has",
         edit(PROD, set_(("gpu_pools", 0, "gpus_per_node"), 2), delete(("models", "chat-assistant", "standby"))),
         "gpu-placement", ERROR, PROD, "models.chat-assistant.pool",
         "chat-assistant stable 1.2.0 needs 4 GPUs per replica, but p4de.24xlarge nodes in pool a100 have 2",
         (r"^models:", r"chat-assistant:", r"pool: a100")),
    # capacity
    Case("a pool too small for stable and candidate at once",
         edit(STAGING, set_(("gpu_pools", 0, "max_nodes"), 1)),
         "capacity", ERROR, STAGING, "gpu_pools[0].max_nodes",
         "pool a100 needs 2 p4de.24xlarge nodes to run chat-assistant stable 1.2.0 (1 x 4 GPUs); "
         "chat-assistant candidate 1.3.0 (1 x 4 GPUs) at once, but max_nodes is 1",
         (r"max_nodes: 1$",)),
    Case("more replicas need more nodes per version (5 x 1 GPU on 4-GPU nodes = 2 nodes each)",
         edit(STAGING, set_(("models", "code-completion", "replicas"), 5)),
         "capacity", ERROR, STAGING, "gpu_pools[1].max_nodes",
         "pool a10g needs 4 g5.12xlarge nodes",
         (r"name: a10g", r"max_nodes:")),
    Case("production's pool must also hold the standby",
         edit(PROD, set_(("gpu_pools", 0, "max_nodes"), 3), set_(("gpu_pools", 0, "min_nodes"), 1)),
         "capacity", ERROR, PROD, "gpu_pools[0].max_nodes",
         "pool a100 needs 4 p4de.24xlarge nodes to run chat-assistant stable 1.2.0 (4 x 4 GPUs); "
         "chat-assistant standby 1.1.0 (4 x 4 GPUs) at once, but max_nodes is 3",
         (r"max_nodes: 3",)),
    # object-names
    Case("a model whose Service name would start with a digit",
         both(copy(C20, "releases/2b-coder/2.0.0.yaml", set_(("model",), "2b-coder")),
              edit(PROD, set_(("models", "2b-coder"), {"stable": "2.0.0", "pool": "a10g"}))),
         "object-names", ERROR, PROD, "models.2b-coder",
         "2b-coder would need a Service named '2b-coder' (8 characters), which is not a DNS-1035 label "
         "(a letter first, at most 63 characters)",
         (r"^models:", r"2b-coder:")),
    Case("two models that would own the same Service",
         both(copy(C20, "releases/code/2.0.0.yaml", set_(("model",), "code")),
              copy(C20, "releases/code-v2-0-0/2.0.0.yaml", set_(("model",), "code-v2-0-0")),
              edit(PROD, set_(("models", "code"), {"stable": "2.0.0", "pool": "a10g"}),
                   set_(("models", "code-v2-0-0"), {"stable": "2.0.0", "pool": "a10g"}))),
         "object-names", ERROR, PROD, "models.code-v2-0-0",
         "code-v2-0-0 and code would both own the Service 'code-v2-0-0'",
         (r"^models:", r"code-v2-0-0:")),
    Case("a model whose evaluator would own another model's Service",
         both(copy(C20, "releases/code-evaluator/2.0.0.yaml", set_(("model",), "code-evaluator")),
              copy(C20, "releases/code/2.0.0.yaml", set_(("model",), "code")),
              edit(PROD, set_(("models", "code"), {"stable": "2.0.0", "pool": "a10g"}),
                   set_(("models", "code-evaluator"), {"stable": "2.0.0", "pool": "a10g"}))),
         "object-names", ERROR, PROD, "models.code-evaluator",
         "code-evaluator and code would both own the Service 'code-evaluator'",
         (r"^models:", r"code-evaluator:")),
    # comparison-metrics
    Case("a bound relative to stable on a series that already compares the candidate with stable",
         edit(R13, append(("rollout", "stages", 1, "gates"),
                          {"metric": "shadow_similarity", "min_ratio_to_stable": 0.9})),
         "comparison-metrics", ERROR, R13, "rollout.stages[1].gates[2].min_ratio_to_stable",
         "staging: shadow_similarity already compares 1.3.0 with stable (its series carry the candidate's version "
         "only), so min_ratio_to_stable has no stable series to compare with",
         (r"- metric: shadow_similarity$", r"min_ratio_to_stable")),
    # gate-metrics
    Case("a candidate gating on a metric the environment has no query for",
         edit(R13, append(("rollout", "stages", 1, "gates"), {"metric": "hallucination_rate", "max": 0.1})),
         "gate-metrics", ERROR, STAGING, "models.chat-assistant.candidate",
         "chat-assistant 1.3.0 gates on hallucination_rate, which this environment has no query for",
         (r"^models:", r"chat-assistant:", r"candidate:")),
    Case("rollback triggers need queries too, and every missing metric is named",
         edit(R13, append(("rollout", "rollback_triggers"), {"metric": "off_topic_rate", "max": 0.2}),
              append(("rollout", "stages", 2, "gates"), {"metric": "hallucination_rate", "max": 0.1})),
         "gate-metrics", ERROR, STAGING, "models.chat-assistant.candidate",
         "gates on hallucination_rate, off_topic_rate, which",
         (r"^models:", r"chat-assistant:", r"candidate:")),
    # gate-evidence
    Case("a confidence on a metric with no evidence query cannot be judged",
         both(edit(R13, set_(("rollout", "stages", 3, "gates", 0, "confidence"), 0.95)),
              edit(STAGING, set_(("metrics", "queries"), {"safety_violation_rate": {  # its own gauge, no counts
                  "query": "avg by (app, version) (guard_unsafe_ratio[$window])", "labels": {"app": "app",
                                                                                            "version": "version"}}}))),
         "gate-evidence", ERROR, R13, "rollout.stages[3].gates[0].confidence",
         "staging: safety_violation_rate has no evidence query, so a confidence on it cannot be judged",
         (r"safety_violation_rate, max_increase", r"confidence")),
    Case("a statistical trigger needs evidence too",
         edit(R13, append(("rollout", "rollback_triggers"),
                          {"metric": "quality_score", "max_increase_over_stable": 0.1, "confidence": 0.99})),
         "gate-evidence", ERROR, R13, "rollout.rollback_triggers[4].confidence",
         "staging: quality_score has no evidence query",
         (r"- metric: quality_score$", r"confidence")),
    Case("a latency histogram is judged as a ratio, not an increase",
         edit(R13, append(("rollout", "stages", 2, "gates"),
                          {"metric": "latency_p99_ms", "max_increase_over_stable": 100, "confidence": 0.95})),
         "gate-evidence", ERROR, R13, "rollout.stages[2].gates[2].max_increase_over_stable",
         "staging: latency_p99_ms is a latency histogram: its quantile is judged as a ratio to stable, not by "
         "max_increase_over_stable",
         (r"- metric: latency_p99_ms$", r"max_increase_over_stable")),
    # predeployment-gates
    Case("toxicity at the 0.05 limit blocks the candidate",
         edit(R13, set_(("evaluation", "toxicity"), 0.05)),
         "predeployment-gates", ERROR, R13, "evaluation.toxicity",
         "staging: candidate chat-assistant/v1.3.0-4f2a9c1d07e5 fails the toxicity gate: toxicity 0.05 >= max 0.05",
         (r"^evaluation:", r"toxicity:")),
    Case("a win rate of exactly 50% blocks the candidate",
         edit(C21, set_(("evaluation", "win_rate_vs_current"), 0.5)),
         "predeployment-gates", ERROR, C21, "evaluation.win_rate_vs_current",
         "staging: candidate code-completion/v2.1.0-c07d19e4b2a8 fails the win-rate gate: "
         "win rate vs current 50% <= min 50%",
         (r"^evaluation:", r"win_rate_vs_current:")),
    Case("a missing win rate with a stable to beat is inconclusive and blocks",
         edit(R13, delete(("evaluation", "win_rate_vs_current"))),
         "predeployment-gates", ERROR, R13, "evaluation.win_rate_vs_current",
         "win_rate_vs_current is missing, but there is a stable version to beat",
         (r"^evaluation:",)),
    Case("one failed adversarial case blocks the candidate",
         edit(R13, set_(("evaluation", "adversarial_pass_rate"), 0.99)),
         "predeployment-gates", ERROR, R13, "evaluation.adversarial_pass_rate",
         "adversarial-suite pass rate 99% < required 100%",
         (r"^evaluation:", r"adversarial_pass_rate:")),
    Case("latency p99 exactly 20% over stable warns but does not block",
         edit(R13, set_(("evaluation", "latency_p99_ms"), 2052)),
         "predeployment-gates", WARNING, R13, "evaluation.latency_p99_ms",
         "latency p99 2052 ms >= stable 1710 ms + 20% = 2052 ms",
         (r"^evaluation:", r"latency_p99_ms:")),
    Case("an environment may tighten a pre-deployment limit",
         edit(STAGING, set_(("policy", "predeployment"), {"max_toxicity": 0.01})),
         "predeployment-gates", ERROR, R13, "evaluation.toxicity",
         "fails the toxicity gate: toxicity 0.011 >= max 0.01",
         (r"^evaluation:", r"toxicity:")),
    # evaluation-artifact
    Case("a number typed over the artifact's is found at its line",
         both(artifact(R13), edit(R13, set_(("evaluation", "toxicity"), 0.009))),
         "evaluation-artifact", ERROR, R13, "evaluation.toxicity",
         "evaluation.toxicity is 0.009, but the artifact evaluations/chat-assistant/1.3.0.json measured 0.011",
         (r"^evaluation:", r"toxicity:")),
    Case("an artifact changed after the release recorded it no longer has the recorded sha256",
         artifact(R13, sha256="0" * 64),
         "evaluation-artifact", ERROR, R13, "evaluation.artifact.sha256",
         "evaluations/chat-assistant/1.3.0.json has sha256 ",
         (r"^evaluation:", r"artifact:", r"sha256:")),
    Case("an artifact of another version does not vouch for this release",
         artifact(R13, version="1.2.0", uri="evaluations/chat-assistant/1.3.0.json"),
         "evaluation-artifact", ERROR, R13, "evaluation.artifact.uri",
         "evaluations/chat-assistant/1.3.0.json is the evaluation of chat-assistant 1.2.0, not of chat-assistant 1.3.0",
         (r"^evaluation:", r"artifact:", r"uri:")),
    Case("an artifact that was never committed",
         both(artifact(R13), lambda root: (root / "evaluations/chat-assistant/1.3.0.json").unlink()),
         "evaluation-artifact", ERROR, R13, "evaluation.artifact.uri",
         "the evaluation artifact evaluations/chat-assistant/1.3.0.json is not in the repository",
         (r"^evaluation:", r"artifact:", r"uri:")),
    # semver
    Case("a new base model in a MINOR release needs a MAJOR bump",
         edit(R13, set_(("lineage", "base_model", "name"), "mistralai/Mistral-7B-Instruct-v0.3")),
         "semver", ERROR, R13, "lineage.base_model.name",
         "1.3.0 is a MINOR bump from its parent 1.2.0, but it brings a different base model "
         "(lineage.base_model.name): that needs a MAJOR bump",
         (r"^lineage:", r"base_model:", r"name:")),
    Case("a changed system prompt in a PATCH release needs a MINOR bump, and the fix names the version",
         copy(R13, "releases/chat-assistant/1.3.1.yaml", set_(("version",), "1.3.1"),
              set_(("lineage", "parent_version"), "1.3.0"),
              set_(("bundle", "system_prompt", "sha256"), "ab" * 32)),
         "semver", ERROR, "releases/chat-assistant/1.3.1.yaml", "bundle.system_prompt.sha256",
         "1.3.1 is a PATCH bump from its parent 1.3.0, but it brings a changed system prompt "
         "(bundle.system_prompt.sha256): that needs a MINOR bump",
         (r"^bundle:", r"system_prompt:", r"sha256:")),
    # candidate-newer
    Case("a candidate older than stable is a rollback in disguise",
         edit(STAGING, set_(("models", "chat-assistant", "candidate"), "1.1.0")),
         "candidate-newer", ERROR, STAGING, "models.chat-assistant.candidate",
         "chat-assistant candidate 1.1.0 is not newer than stable 1.2.0",
         (r"^models:", r"chat-assistant:", r"candidate:"), also=("predeployment-gates",)),
    # approvals
    Case("a protected environment that requires no approvals is an error: protection would mean nothing",
         edit(PROD, set_(("policy", "required_approvals"), 0)),
         "approvals", ERROR, PROD, "policy.required_approvals",
         "the environment is protected but requires no approvals",
         (r"required_approvals: 0",)),
    Case("requiring more approvals than there are approvers can never be met",
         edit(PROD, set_(("policy", "required_approvals"), 4)),
         "approvals", ERROR, PROD, "policy.required_approvals",
         "4 approvals are required but only 3 people may approve",
         (r"required_approvals: 4",), also=("approvals",)),
    Case("a live stable release with too few approvals in a protected environment",
         edit(R12, delete(("lineage", "approvals", 1))),
         "approvals", ERROR, R12, "lineage.approvals",
         "prod (stable): chat-assistant/v1.2.0-9c41e7a2d3b8 has 1 of 2 required approvals from allowed approvers",
         (r"^lineage:", r"approvals:")),
    Case("a standby in a protected environment is live, so it needs the approvals too",
         edit(R11, set_(("lineage", "approvals"), [])),
         "approvals", ERROR, R11, "lineage.approvals",
         "prod (standby): chat-assistant/v1.1.0-3e8f02b7c611 has 0 of 2 required approvals from allowed approvers",
         (r"^lineage:", r"approvals:")),
    Case("approvals from people outside allowed_approvers do not count and are named",
         edit(R12, set_(("lineage", "approvals", 1, "by"), "mallory@example.org")),
         "approvals", ERROR, R12, "lineage.approvals",
         "has 1 of 2 required approvals from allowed approvers; not allowed to approve: mallory@example.org",
         (r"^lineage:", r"approvals:")),
    Case("an approval dated before the release's created_at does not count: it approved something else",
         edit(R12, set_(("lineage", "approvals", 1, "at"), datetime(2026, 9, 16, 14, 1, 59, tzinfo=timezone.utc))),
         "approvals", ERROR, R12, "lineage.approvals[1].at",
         "prod (stable): chat-assistant/v1.2.0-9c41e7a2d3b8 was approved by bob.okafor@acme.example at "
         "2026-09-16T14:01:59Z, before it was created (lineage.created_at 2026-09-16T14:02:00Z)",
         (r"^lineage:", r"approvals:", r"- by: bob", r"at:"), also=("approvals",)),
    Case("two approvals by the same person count once",
         edit(C20, set_(("lineage", "approvals", 1, "by"), "alice.chen@acme.example")),
         "approvals", ERROR, C20, "lineage.approvals",
         "prod (stable): code-completion/v2.0.0-81b0c3e5a9f2 has 1 of 2 required approvals from allowed "
         "approvers; counted once: alice.chen@acme.example",
         (r"^lineage:", r"approvals:")),
    Case("a statistical gate that needs more candidate requests than the declared traffic brings before the "
         "stage's progress deadline",
         both(edit(R13, set_(("rollout", "stages", 1, "gates", 0, "confidence"), 0.95)),
              edit(STAGING, set_(("models", "chat-assistant", "expected_rps"), 20))),
         "evidence-in-time", WARNING, R13, "rollout.stages[1].gates[0]",
         "staging: chat-assistant 1.3.0 stage 1 (1%) gate latency_p99_ms max_ratio_to_stable 1.2 at 95% needs ",
         (r"^rollout:", r"- weight: 1", r"\{metric: latency_p99_ms")),
]


def test_every_registered_rule_has_a_case() -> None:
    assert set(RULES) == {c.rule for c in CASES}
    assert set(RULES) == {
        "release-location", "unique-version", "rollout-stages", "bounds", "lineage-parent", "environment-name",
        "gpu-pools", "pointers", "stage", "gpu-placement", "capacity", "object-names", "gate-metrics", "gate-evidence", "predeployment-gates",
        "comparison-metrics", "approvals", "semver", "candidate-newer", "secrets", "evidence-in-time",
        "evaluation-artifact"}


def test_the_example_repository_is_clean(example_repo: Path) -> None:
    result = load_repository(example_repo)
    assert result.findings == [], describe(result.findings)
    assert result.files == 7
    assert len(result.repository.releases) == 5
    assert set(result.repository.environments) == {"prod", "staging"}


def test_a_round_trip_edit_that_changes_nothing_keeps_the_repository_clean(example_repo: Path) -> None:
    """The table's edits rewrite whole files: that alone must not create findings."""
    for rel in (R11, R12, R13, C20, C21, STAGING, PROD):
        edit(rel)(example_repo)
    result = load_repository(example_repo)
    assert result.findings == [], describe(result.findings)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_reports_the_mutation(example_repo: Path, case: Case) -> None:
    case.mutate(example_repo)
    findings = load_repository(example_repo).findings

    matching = [f for f in findings if (f.rule, f.severity, f.file, f.yaml_path) ==
                (case.rule, case.severity, case.file, case.path) and case.message in f.message]
    assert len(matching) == 1, describe(findings)
    finding = matching[0]
    others = [f for f in findings if f is not finding and f.rule not in case.also]
    assert others == [], describe(others)

    text = (example_repo / case.file).read_text(encoding="utf-8")
    assert (finding.line, finding.column) == position(text, case.marker), describe([finding])
    assert finding.fix, "every finding says how to fix it"


CLEAN = [
    ("a shadow rollout may end mirrored, holding several 0% stages",
     edit(R13, set_(("rollout", "strategy"), "shadow"),
          set_(("rollout", "stages"), [{"weight": 0, "mirror": 10, "min_duration": "1h"},
                                       {"weight": 0, "mirror": 100, "min_duration": "24h"}]))),
    ("a shadow rollout with the default stages is valid at its current stage",
     edit(R13, set_(("rollout", "strategy"), "shadow"), delete(("rollout", "stages")))),
    ("a canary with the default stages is valid",
     edit(R13, delete(("rollout", "stages")))),
    ("an explicit blue-green 0/100 rollout is valid",
     edit(C21, set_(("rollout", "stages"), [{"weight": 0, "min_duration": "30m"}, {"weight": 100}]))),
    ("the final 100% stage needs no minimum duration and is a valid stage",
     edit(STAGING, set_(("models", "chat-assistant", "stage"), 5))),
    ("a pool exactly as large as its demand is enough",
     edit(STAGING, set_(("gpu_pools", 0, "max_nodes"), 2))),
    ("min_nodes equal to max_nodes is allowed",
     edit(PROD, set_(("gpu_pools", 1, "min_nodes"), 6))),
    ("a rollback trigger with min 0 has a bound (0 is not a missing value)",
     edit(R13, set_(("rollout", "rollback_triggers", 3, "min"), 0.0))),
    ("a gate whose only bound is max 0 has a bound (0 is not a missing value)",
     edit(R13, set_(("rollout", "stages", 1, "gates", 1, "max"), 0))),
    ("a new metric is fine once the environment defines its query",
     both(edit(R13, append(("rollout", "stages", 1, "gates"), {"metric": "hallucination_rate", "max": 0.1})),
          edit(STAGING, set_(("metrics", "queries"),
                             {"hallucination_rate": {"query": "avg by (app, version) (h[$window])",
                                                     "labels": {"app": "app", "version": "version"}}})))),
    ("statistical gates and triggers on the catalog's evidence are valid",
     edit(R13, set_(("rollout", "stages", 2, "gates", 1, "confidence"), 0.95),
          set_(("rollout", "stages", 1, "gates", 0), {"metric": "latency_p99_ms", "max_ratio_to_stable": 1.1,
                                                      "confidence": 0.95}),
          append(("rollout", "rollback_triggers"),
                 {"metric": "error_rate", "max_increase_over_stable": 0.01, "confidence": 0.99}))),
    ("toxicity just under the limit passes", edit(R13, set_(("evaluation", "toxicity"), 0.0499))),
    ("a win rate just over 50% passes", edit(R13, set_(("evaluation", "win_rate_vs_current"), 0.5001))),
    ("latency just under stable + 20% passes", edit(R13, set_(("evaluation", "latency_p99_ms"), 2051.9))),
    ("an unprotected environment runs a candidate without approvals",
     edit(R13, set_(("lineage", "approvals"), []))),
    ("a release nobody deploys is not judged by the pre-deployment gates",
     edit(R11, set_(("evaluation", "toxicity"), 0.5))),
    ("a deployment without a candidate at stage 0 is fine",
     edit(PROD, set_(("models", "chat-assistant", "stage"), 0))),
]


@pytest.mark.parametrize("mutate", [m for _, m in CLEAN], ids=[i for i, _ in CLEAN])
def test_valid_variants_have_no_findings(example_repo: Path, mutate: Mutation) -> None:
    mutate(example_repo)
    result = load_repository(example_repo)
    assert result.findings == [], describe(result.findings)


def test_a_broken_release_file_does_not_pile_on_cross_file_errors(example_repo: Path) -> None:
    """1.1.0 is prod's standby and 1.2.0's parent: only its own schema error is reported."""
    edit(R11, set_(("revision",), "not-a-commit"))(example_repo)
    findings = load_repository(example_repo).findings
    assert [(f.rule, f.file, f.yaml_path) for f in findings] == [("schema", R11, "revision")], describe(findings)


def test_findings_come_back_sorted_by_file_and_line(example_repo: Path) -> None:
    edit(R13, set_(("rollout", "stages", 3, "weight"), 5),
         delete(("rollout", "stages", 2, "min_duration")),
         delete(("rollout", "rollback_triggers", 1, "max")))(example_repo)
    edit(PROD, set_(("policy", "required_approvals"), 0))(example_repo)
    findings = load_repository(example_repo).findings
    assert [(f.file, f.rule) for f in findings] == [
        (PROD, "approvals"), (R13, "rollout-stages"), (R13, "rollout-stages"), (R13, "bounds")]
    lines = [f.line for f in findings if f.file == R13]
    assert lines == sorted(lines)
    result = load_repository(example_repo)
    assert [f.rule for f in result.warnings] == ["rollout-stages"]
    assert [f.rule for f in result.errors] == ["approvals", "rollout-stages", "bounds"]


def test_a_duplicated_pool_name_is_reported_once_and_models_use_the_first_entry(example_repo: Path) -> None:
    """A second `a100` entry with max_nodes 1 is a duplicate (gpu-pools), not a capacity shortfall:
    models run on the first entry, and no finding quotes one entry while pointing at another."""
    def add_small_a100(data: Any) -> None:
        small = dict(data["gpu_pools"][0])
        small.update(min_nodes=1, max_nodes=1)
        data["gpu_pools"].append(small)

    edit(PROD, add_small_a100)(example_repo)
    findings = load_repository(example_repo).findings
    assert [(f.rule, f.yaml_path) for f in findings] == [("gpu-pools", "gpu_pools[2].name")], describe(findings)
    assert "GPU pool a100 is defined twice" in findings[0].message


def test_evidence_in_time_plans_the_evaluators_counts_at_its_sample_rate_with_equal_trials(example_repo: Path) -> None:
    """refusal_rate is counted by the online evaluator: both versions answer each sample, so a 25%
    stage of a 1 req/s model sampled at 5% gets 0.05 samples/s to each version (not 0.25 requests/s
    to the candidate), and needs the samples of equal trials: days, past the 3-day deadline."""
    gate = {"metric": "refusal_rate", "max_increase_over_stable": 0.005, "confidence": 0.95}
    both(edit(R13, lambda d: d["rollout"]["stages"][3]["gates"].append(gate)),
         edit(STAGING, set_(("models", "chat-assistant", "expected_rps"), 1)))(example_repo)
    [finding] = [f for f in load_repository(example_repo).findings if f.rule == "evidence-in-time"]
    needed = requests_needed("max_increase_over_stable", 0.005, 0.95, "proportion", None, None, 0.5)
    assert finding.yaml_path == "rollout.stages[3].gates[1]"
    assert (f"staging: chat-assistant 1.3.0 stage 3 (25%) gate refusal_rate max_increase_over_stable 0.005 at 95% "
            f"needs {needed:,} samples: ") in finding.message
    assert "at the declared 0.05 samples/s, longer than the stage's progress deadline 3d" in finding.message
    assert "evaluator.sample_percent" in finding.fix
