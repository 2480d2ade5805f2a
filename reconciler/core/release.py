"""The release: one immutable file, `releases/<model>/<version>.yaml`.

A release holds everything needed to reproduce the model's behaviour (the bundle), where it came
from (lineage), how it scored offline (evaluation) and how it should reach users (rollout).
Defaults follow docs/formats.md (default stages per strategy); every number can be overridden in the file.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Any, Iterator, Literal

from pydantic import AwareDatetime, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .huggingface import COMMIT as HF_COMMIT
from .huggingface import base_model_revision_problem
from .types import VALUE_ERROR_FIX
from .types import (
    ArtifactUri,
    BaseModelSource,
    DatasetUri,
    DnsLabel,
    Duration,
    Email,
    Fraction,
    MAX_MEASURE,
    MAX_REQUESTS,
    MAX_TOKENS,
    Frozen,
    GitRevision,
    ImageByDigest,
    Int64,
    Md5,
    Measure,
    Percent,
    PositiveDuration,
    RepositoryJsonPath,
    SemVer,
    Sha256,
    version_label,
)


class Artifact(Frozen):
    """A file the serving pod downloads; the init container refuses to start on a sha256 mismatch.

    `md5` is what DVC records for the same bytes (docs/dvc.md): sha256 stays the checksum the
    bundle digest and semver compare, and the init container checks md5 too when it is recorded,
    so a DVC reference cannot drift from the object it names.
    """

    uri: ArtifactUri
    sha256: Sha256
    md5: Md5 | None = Field(default=None, exclude_if=lambda v: v is None,  # absent: bundle digests stay as they were
                            description="DVC's md5 of the same bytes, when imported from a .dvc file")
    size_bytes: int | None = Field(default=None, ge=0, le=2**50)  # 1 PiB


class GenerationParameters(Frozen):
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=MAX_TOKENS)
    stop: list[str] = Field(default_factory=list)


class SafetyConfig(Frozen):
    """Runtime safety settings: an optional classifier artifact and the thresholds it enforces."""

    classifier: Artifact | None = None
    max_toxicity_score: Fraction = 0.5
    blocked_categories: list[str] = Field(default_factory=list)
    pii_redaction: bool = True


class RoutingConfig(Frozen):
    max_input_tokens: int = Field(default=8192, ge=1, le=MAX_TOKENS)
    max_concurrent_requests: int = Field(default=64, ge=1, le=100_000)
    request_timeout: PositiveDuration = timedelta(seconds=120)
    expects_json: bool = Field(
        default=False, exclude_if=lambda v: not v,  # absent: bundle digests and manifests stay as they were
        description="answers are JSON documents: the online evaluator counts invalid ones (json_invalid_rate)")


class Serving(Frozen):
    """How one replica runs: the image (pinned by digest) and the GPUs it needs."""

    image: ImageByDigest
    gpus: int = Field(ge=1, le=64, description="GPUs per replica")
    gpu_type: DnsLabel = Field(description="e.g. nvidia-a100-80gb; must match the GPU pool's gpu_type")


class Bundle(Frozen):
    """Everything that shapes the model's answers. A prompt change matters as much as new weights."""

    weights: Artifact
    tokenizer: Artifact
    config: Artifact = Field(description="the model configuration file (config.json)")
    system_prompt: Artifact
    few_shot_examples: Artifact | None = None
    generation: GenerationParameters = GenerationParameters()
    safety: SafetyConfig = SafetyConfig()
    routing: RoutingConfig = RoutingConfig()
    serving: Serving


class BaseModelRef(Frozen):
    """The upstream model the release was trained from.

    From the Hub, `source` names the repository (hf://meta-llama/Llama-3.1-70B-Instruct) and
    `revision` its full commit: a branch or tag can move, and lineage must say which weights the
    fine-tune started from.
    """

    model_config = ConfigDict(json_schema_extra={  # so an editor flags `revision: main` too
        "if": {"properties": {"source": {"pattern": "^hf://"}}, "required": ["source"]},
        "then": {"properties": {"revision": {"pattern": f"^{HF_COMMIT}$"}}},
    })

    name: str = Field(min_length=1, description="e.g. meta-llama/Llama-3.1-8B-Instruct")
    source: BaseModelSource
    revision: str = Field(min_length=1, description="the exact upstream revision (the full 40-hex commit for hf://)")
    architecture: str | None = Field(default=None, description="e.g. LlamaForCausalLM; a change needs a MAJOR bump")

    @field_validator("revision")
    @classmethod
    def _pinned_on_the_hub(cls, revision: str, info: ValidationInfo) -> str:
        problem = base_model_revision_problem(info.data.get("source"), revision)
        if problem:
            raise ValueError(problem)
        return revision


class Dataset(Frozen):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sha256: Sha256
    size_bytes: int = Field(ge=0, le=2**60)  # 1 EiB
    uri: DatasetUri | None = Field(
        default=None, description="on the Hub: hf://datasets/<org>/<name>@<40-hex commit>[/<path>]")


class TrainingInfrastructure(Frozen):
    cluster: str = Field(min_length=1)
    gpu_type: str = Field(min_length=1)
    gpu_count: int = Field(ge=1, le=1_000_000)
    job_id: str | None = None


class Approval(Frozen):
    by: Email
    at: AwareDatetime
    role: str | None = None


class Lineage(Frozen):
    base_model: BaseModelRef
    dataset: Dataset
    hyperparameters: dict[str, Measure | Int64 | str | bool] = Field(default_factory=dict)
    training: TrainingInfrastructure
    parent_version: SemVer | None = Field(default=None, description="null only for a model's first release")
    created_by: Email
    created_at: AwareDatetime
    approvals: list[Approval] = Field(default_factory=list)


class EvaluationArtifactRef(Frozen):
    """The file `reconciler eval` wrote (docs/evaluation.md), committed with the release: the numbers
    above must be its numbers, and its bytes this sha256 (the `evaluation-artifact` rule)."""

    uri: RepositoryJsonPath = Field(description="a path inside the repository, e.g. "
                                                "evaluations/chat-assistant/1.3.0.json")
    sha256: Sha256


class Evaluation(Frozen):
    """Offline results; the pre-deployment gates read them (thresholds live in the environment policy).

    With `artifact` they are a copy of the artifact's numbers; without, they were typed by hand."""

    toxicity: Fraction = Field(description="share of toxic completions on the toxicity suite")
    win_rate_vs_current: Fraction | None = Field(
        default=None, description="share of pairwise wins against the current stable; null for a first release"
    )
    latency_p99_ms: float = Field(gt=0, le=3_600_000)
    adversarial_pass_rate: Fraction
    benchmarks: dict[str, Measure] = Field(default_factory=dict)
    artifact: EvaluationArtifactRef | None = Field(
        default=None, exclude_if=lambda v: v is None,  # absent: rendered release manifests stay as they were
        description="the offline evaluation artifact these numbers come from: docs/evaluation.md")


#: A `confidence` is stated with exactly one of these: the effect the sequential test rules out.
STATISTICAL_BOUNDS = ("max_ratio_to_stable", "max_increase_over_stable")

Confidence = Annotated[float | None, Field(
    default=None, ge=0.5, lt=1, exclude_if=lambda v: v is None,  # absent: rendered manifests stay as they were
    description="judge on the evidence since the stage began at this confidence (e.g. 0.95): docs/judgement.md")]


def _statistical_bound_problem(bounds: dict[str, float], confidence: float | None, what: str) -> str | None:
    """Why a gate's or trigger's bounds do not make one sequential test (None when they do)."""
    if confidence is None:
        return None
    relative = [b for b in STATISTICAL_BOUNDS if b in bounds]
    if len(relative) != 1 or set(bounds) - set(STATISTICAL_BOUNDS):
        stated = ", ".join(sorted(bounds)) or "no bound"
        return (f"a {what} with confidence tests one effect against stable, but states {stated}{VALUE_ERROR_FIX}keep "
                "exactly one of max_ratio_to_stable or max_increase_over_stable, and put other bounds in a separate "
                f"{what} without confidence")
    return None


def statistical_bound(check: Gate | RollbackTrigger) -> tuple[str, float]:
    """The (bound, limit) a gate or trigger with a confidence tests: ("max_ratio_to_stable", 1.1)."""
    return next((b, v) for b, v in check.bounds().items() if b in STATISTICAL_BOUNDS)


class _Check(Frozen):
    """What gates and triggers share: bounds on one metric, and a confidence that makes them a test."""

    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump(exclude={"metric", "confidence"}).items() if v is not None}

    @property
    def statistical(self) -> bool:
        return getattr(self, "confidence") is not None


class Gate(_Check):
    """A check on live metrics: absolute bounds and/or bounds relative to stable over the same window.

    Example: `{metric: latency_p99_ms, max_ratio_to_stable: 1.2}` passes while the candidate's p99
    is at most 1.2 x stable's; `{metric: error_rate, max_increase_over_stable: 0.005}` allows half a
    percentage point more errors than stable.

    With `confidence` the gate is a sequential test on the evidence since the stage began
    (docs/judgement.md): `{metric: latency_p99_ms, max_ratio_to_stable: 1.1, confidence: 0.95}`
    passes once "p99 no worse than 1.1 x stable's" is established at 95%.
    """

    metric: str = Field(min_length=1, description="a query name in the environment's metrics.queries")
    min: Measure | None = None
    max: Measure | None = None
    max_ratio_to_stable: float | None = Field(default=None, gt=0, le=1000)
    min_ratio_to_stable: float | None = Field(default=None, gt=0, le=1000)
    max_increase_over_stable: float | None = Field(default=None, ge=0, le=MAX_MEASURE)
    max_decrease_from_stable: float | None = Field(default=None, ge=0, le=MAX_MEASURE)
    confidence: Confidence = None

    @model_validator(mode="after")
    def _one_statistical_bound(self) -> Gate:
        problem = _statistical_bound_problem(self.bounds(), self.confidence, "gate")
        if problem:
            raise ValueError(problem)
        return self


class Stage(Frozen):
    weight: Percent = Field(description="percent of user traffic served by the candidate")
    mirror: Percent = Field(default=0, description="percent of traffic mirrored to the candidate (shadow stages)")
    min_duration: Duration = timedelta(0)
    min_requests: int = Field(default=0, ge=0, le=MAX_REQUESTS)
    gates: list[Gate] = Field(default_factory=list)
    progress_deadline: PositiveDuration | None = Field(
        default=None, exclude_if=lambda v: v is None,  # absent: rendered release manifests stay as they were
        description="how long after it began the stage may go without meeting its requests and gates before "
                    "rollout.on_progress_deadline applies; unset: the rollout's progress_deadline")

    @property
    def candidate_percent(self) -> int:
        """Percent of the model's requests that reach the candidate: its weight, or in a shadow stage
        the mirrored copies."""
        return self.weight or self.mirror


class RollbackTrigger(_Check):
    """R = 1 when the candidate's metric is above `max` or below `min`, at any stage, on every pass.

    A relative trigger is always a sequential test: `{metric: error_rate, max_increase_over_stable:
    0.005, confidence: 0.99}` rolls back once "more than +0.5 pp over stable" is established at 99%
    (docs/judgement.md); noise alone never fires it.
    """

    metric: str = Field(min_length=1)
    min: Measure | None = None
    max: Measure | None = None
    max_ratio_to_stable: float | None = Field(default=None, gt=0, le=1000, exclude_if=lambda v: v is None)
    max_increase_over_stable: float | None = Field(default=None, ge=0, le=MAX_MEASURE, exclude_if=lambda v: v is None)
    confidence: Confidence = None

    @model_validator(mode="after")
    def _relative_needs_confidence(self) -> RollbackTrigger:
        relative = [b for b in STATISTICAL_BOUNDS if getattr(self, b) is not None]
        if relative and self.confidence is None:
            raise ValueError(f"a trigger with {relative[0]} compares with stable on the evidence, so it needs a "
                             f"confidence{VALUE_ERROR_FIX}add `confidence: 0.99` (noise alone then never rolls back), "
                             "or use max/min")
        problem = _statistical_bound_problem(self.bounds(), self.confidence, "trigger")
        if problem:
            raise ValueError(problem)
        return self


class DeadMansSwitch(Frozen):
    max_silence: PositiveDuration = timedelta(minutes=10)


class NotificationTarget(Frozen):
    kind: Literal["webhook", "slack"] = "webhook"
    url: str = Field(pattern=r"^https?://\S+$")


Strategy = Literal["canary", "blue-green", "shadow"]


def _gate(metric: str, **bounds: float) -> dict[str, Any]:
    return {"metric": metric, **bounds}


_CANARY_STAGES: list[dict[str, Any]] = [
    {"weight": 1, "min_duration": "1h", "min_requests": 1_000,
     "gates": [_gate("latency_p99_ms", max_ratio_to_stable=1.2)]},
    {"weight": 5, "min_duration": "4h", "min_requests": 10_000,
     "gates": [_gate("quality_score", min_ratio_to_stable=0.98), _gate("error_rate", max_increase_over_stable=0.005)]},
    {"weight": 25, "min_duration": "24h", "min_requests": 50_000,
     "gates": [_gate("safety_violation_rate", max_increase_over_stable=0.001)]},
    {"weight": 50, "min_duration": "48h", "min_requests": 100_000,
     "gates": [_gate("user_satisfaction", min_ratio_to_stable=0.98)]},
    {"weight": 100},
]

DEFAULT_STAGES: dict[str, list[dict[str, Any]]] = {
    "canary": [{"weight": 0}, *_CANARY_STAGES],
    "blue-green": [
        {"weight": 0, "min_duration": "1h", "min_requests": 1_000,
         "gates": [_gate("error_rate", max=0.01), _gate("latency_p99_ms", max_ratio_to_stable=1.2)]},
        # Post-promotion checks: green serves 100% while blue still runs, so a trigger or a failing
        # gate here switches straight back. Absolute bounds only: blue serves nothing to compare with.
        {"weight": 100, "min_duration": "30m", "min_requests": 1_000, "gates": [_gate("error_rate", max=0.01)]},
    ],
    "shadow": [
        {"weight": 0, "mirror": 100, "min_duration": "24h", "min_requests": 10_000,
         "gates": [_gate("latency_p99_ms", max_ratio_to_stable=1.2), _gate("error_rate", max_increase_over_stable=0.005)]},
        *_CANARY_STAGES,
    ],
}

#: A stage with no progress_deadline of its own or the rollout's gets DEADLINE_FACTOR x its
#: min_duration, at least MIN_DEFAULT_DEADLINE (docs/formats.md "Progress deadline").
DEADLINE_FACTOR = 3
MIN_DEFAULT_DEADLINE = timedelta(hours=1)

DEFAULT_ROLLBACK_TRIGGERS: list[dict[str, Any]] = [
    {"metric": "error_rate", "max": 0.05},
    {"metric": "safety_violation_rate", "max": 0.01},
]


class Rollout(Frozen):
    strategy: Strategy = "canary"
    stages: list[Stage] = Field(
        default_factory=lambda: [Stage(**s) for s in DEFAULT_STAGES["canary"]],  # per strategy: _default_stages
        description="defaults to the strategy's table: docs/formats.md#default-stages-per-strategy",
        min_length=1,
        max_length=100,
    )
    rollback_triggers: list[RollbackTrigger] = Field(
        default_factory=lambda: [RollbackTrigger(**t) for t in DEFAULT_ROLLBACK_TRIGGERS]
    )
    dead_mans_switch: DeadMansSwitch = DeadMansSwitch()
    standby_window: Duration = timedelta(hours=72)
    notify: list[NotificationTarget] = Field(default_factory=list)
    progress_deadline: PositiveDuration | None = Field(
        default=None, exclude_if=lambda v: v is None,  # absent: rendered release manifests stay as they were
        description="the progress deadline of every stage without its own; unset: 3 x the stage's min_duration, "
                    "at least 1h")
    on_progress_deadline: Literal["rollback", "hold"] = Field(
        default="hold", exclude_if=lambda v: v == "hold",  # the default is not written: manifests stay as they were
        description="a stage past its progress deadline is rolled back, or held with one notification to the "
                    "notify targets (hold)")

    @model_validator(mode="before")
    @classmethod
    def _default_stages(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stages") is None:
            strategy = data.get("strategy", "canary")
            if isinstance(strategy, str) and strategy in DEFAULT_STAGES:
                return {**data, "stages": DEFAULT_STAGES[strategy]}
        return data

    def progress_deadline_of(self, index: int) -> timedelta:
        """How long stage `index` may go without advancing: its own deadline, else the rollout's,
        else 3 x its min_duration, at least 1h.

        Example: the default canary's stage 2 (min_duration 4h) -> 12h; stage 0 (no duration) -> 1h.
        """
        stage = self.stages[index]
        return (stage.progress_deadline or self.progress_deadline
                or max(DEADLINE_FACTOR * stage.min_duration, MIN_DEFAULT_DEADLINE))

    def checks(self) -> Iterator[tuple[tuple[str | int, ...], Gate | RollbackTrigger]]:
        """Every gate and trigger, with its YAML path under `rollout`."""
        for i, stage in enumerate(self.stages):
            for j, gate in enumerate(stage.gates):
                yield ("stages", i, "gates", j), gate
        for k, trigger in enumerate(self.rollback_triggers):
            yield ("rollback_triggers", k), trigger

    def statistical_checks(self) -> Iterator[tuple[tuple[str | int, ...], Gate | RollbackTrigger]]:
        """Every gate and trigger with a confidence, with its YAML path under `rollout`."""
        return ((path, check) for path, check in self.checks() if check.statistical)

    def gate_metrics(self) -> set[str]:
        """Every metric name the rollout reads: the environment must define a query for each."""
        names = {g.metric for s in self.stages for g in s.gates} | {t.metric for t in self.rollback_triggers}
        if any(s.min_requests for s in self.stages):
            names.add("requests")
        return names


class Release(Frozen):
    model: DnsLabel
    version: SemVer
    revision: GitRevision = Field(description="the commit of the code that produced this release")
    description: str | None = None
    bundle: Bundle
    lineage: Lineage
    evaluation: Evaluation
    rollout: Rollout = Rollout()

    @property
    def label(self) -> str:
        """The pod `version` label and Istio subset: v1.3.0."""
        return version_label(self.version)

    @property
    def full_id(self) -> str:
        """chat-assistant/v1.3.0-4f2a9c1."""
        return f"{self.model}/{self.label}-{self.revision}"

    def bundle_digest(self) -> str:
        """sha256 over the whole bundle (artifacts, parameters, image), so any behavioural change shows."""
        canonical = json.dumps(self.bundle.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
