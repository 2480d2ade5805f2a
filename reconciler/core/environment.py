"""The environment: `environments/<name>.yaml`, one per cluster (its name is the file's stem).

It says where models run (cluster, GPU pools, Istio), how they are measured (Prometheus query
templates), what policy applies, and, per model, which versions are live and at which stage.
The reconciler edits only the `models` pointers; people edit the rest.
"""

from __future__ import annotations

import re
from datetime import timedelta
from string import Template
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationInfo, field_validator, model_validator

from .types import DNS_LABEL, MAX_NODES, DnsLabel, Email, Fraction, Frozen, ImageByDigest, PositiveDuration, SemVer
from .types import VALUE_ERROR_FIX, format_duration
from .urls import endpoint_url_problem, prometheus_url_problem

#: Placeholders a query template may use; each value is validated before it is interpolated.
TEMPLATE_PLACEHOLDERS = frozenset({"window", "namespace"})

_ISTIO = 'reporter="destination"'
_BY = "destination_app, destination_version"


def _vllm_p99(metric: str) -> str:
    return f"histogram_quantile(0.99, sum by (app, version, le) (rate({metric}_bucket[$window])))"


def _vllm_evidence(metric: str) -> Evidence:
    return Evidence(kind="histogram", quantile=0.99,
                    buckets=f"sum by (app, version, le) (increase({metric}_bucket[$window]))")


def _evaluator(gauge: str) -> str:
    return f"avg by (app, version) (avg_over_time({gauge}[$window]))"


def _increase(counter: str) -> str:
    return f"sum by (app, version) (increase({counter}[$window]))"


def _evaluator_share(events: str, trials: str, **fields: object) -> MetricQuery:
    """A share of the online evaluator's counts (docs/evaluator.md), with those counts as proportion
    evidence, so a gate may state a confidence. Example: divergent / comparisons over $window."""
    return MetricQuery(query=f"{_increase(events)} / {_increase(trials)}", labels=_WORKLOAD, unit="ratio",
                       evidence=Evidence(kind="proportion", events=_increase(events), trials=_increase(trials),
                                         sampled=True),
                       **fields)  # type: ignore[arg-type]


def _check_template(template: str) -> str:
    """Reject placeholders we would not fill, so a typo is caught at validate time, not at 3 a.m."""
    parsed = Template(template)
    if not parsed.is_valid():
        raise ValueError("has a stray '$': write $window or $namespace, or $$ for a literal dollar sign")
    unknown = set(parsed.get_identifiers()) - TEMPLATE_PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"uses unknown placeholder(s) {', '.join('$' + u for u in sorted(unknown))}: "
            f"only {', '.join('$' + p for p in sorted(TEMPLATE_PLACEHOLDERS))} are filled in"
        )
    return template


QueryTemplate = Annotated[str, Field(min_length=1), AfterValidator(_check_template)]


class SeriesLabels(Frozen):
    """Which result labels carry the model name and the version label (v1.3.0)."""

    app: str = Field(default="destination_app", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    version: str = Field(default="destination_version", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")


_WORKLOAD = SeriesLabels(app="app", version="version")


class Evidence(Frozen):
    """The counts behind a metric, for gates and triggers that state a `confidence`
    (docs/judgement.md): each query gives every version's increase over `$window`.

    A histogram (latency) is judged at `quantile` from `buckets`, grouped by version and `le`; a
    proportion (error rate) from `events` of `trials`.

    `sampled` changes only planning, never a verdict: both versions answer the same samples (equal
    trials whatever the weight), which arrive at `evaluator.percent_at` the model's traffic.
    """

    kind: Literal["histogram", "proportion"]
    quantile: float | None = Field(default=None, gt=0, lt=1, description="histogram only, e.g. 0.99")
    buckets: QueryTemplate | None = Field(
        default=None, description="histogram: per version and le, the _bucket series' increase over $window")
    events: QueryTemplate | None = Field(default=None, description="proportion: e.g. 5xx responses' increase over $window")
    trials: QueryTemplate | None = Field(default=None, description="proportion: all requests' increase over $window")
    sampled: bool = Field(
        default=False, exclude_if=lambda v: not v,
        description="the counts are the online evaluator's (docs/evaluator.md): it sends the same sampled requests "
                    "to both versions, so planning gives them equal trials, at the evaluator's sample rate rather "
                    "than the candidate's weight")

    @model_validator(mode="after")
    def _queries_of_its_kind(self) -> Evidence:
        if self.kind == "histogram":
            if self.quantile is None or self.buckets is None:
                raise ValueError(f"a histogram evidence needs quantile and buckets{VALUE_ERROR_FIX}add `quantile: 0.99` and "
                                 "`buckets:`, a query of the _bucket series' increase over $window by version and le")
            if self.events is not None or self.trials is not None:
                raise ValueError(f"a histogram evidence has no events or trials{VALUE_ERROR_FIX}remove them, or use "
                                 "`kind: proportion`")
        else:
            if self.events is None or self.trials is None:
                raise ValueError(f"a proportion evidence needs events and trials{VALUE_ERROR_FIX}add `events:` and `trials:`, "
                                 "two queries of increase over $window by version (e.g. 5xx responses and all requests)")
            if self.quantile is not None or self.buckets is not None:
                raise ValueError(f"a proportion evidence has no quantile or buckets{VALUE_ERROR_FIX}remove them, or use "
                                 "`kind: histogram`")
        return self


class MetricQuery(Frozen):
    """One PromQL template per metric serves every rollout in the environment: it groups by version."""

    query: QueryTemplate
    labels: SeriesLabels = SeriesLabels()
    unit: str | None = None
    description: str | None = None
    evidence: Evidence | None = Field(
        default=None, description="the counts behind the metric, for gates and triggers with a confidence")
    candidate_only: bool = Field(
        default=False, exclude_if=lambda v: not v,
        description="the series already compare the candidate with stable and carry only the candidate's version "
                    "(sluice_shadow_*): gates on it use min/max, never a bound relative to stable")


DEFAULT_QUERIES: dict[str, MetricQuery] = {
    "requests": MetricQuery(
        query=f"sum by ({_BY}) (increase(istio_requests_total{{{_ISTIO}}}[$window]))",
        unit="requests", description="requests served in the window (Istio)"),
    "last_sample": MetricQuery(
        query=f"max by ({_BY}) (timestamp(istio_requests_total{{{_ISTIO}}}))",
        unit="unix seconds", description="each version's newest raw sample: how fresh its data is (Istio)"),
    "error_rate": MetricQuery(
        query=f'sum by ({_BY}) (rate(istio_requests_total{{{_ISTIO},response_code=~"5.."}}[$window]))'
        f" / sum by ({_BY}) (rate(istio_requests_total{{{_ISTIO}}}[$window]))",
        unit="ratio", description="share of 5xx responses (Istio)",
        evidence=Evidence(
            kind="proportion",
            events=f'sum by ({_BY}) (increase(istio_requests_total{{{_ISTIO},response_code=~"5.."}}[$window]))',
            trials=f"sum by ({_BY}) (increase(istio_requests_total{{{_ISTIO}}}[$window]))")),
    "latency_p99_ms": MetricQuery(
        query=f"histogram_quantile(0.99, sum by ({_BY}, le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{_ISTIO}}}[$window])))",
        unit="ms", description="request latency p99 (Istio)",
        evidence=Evidence(
            kind="histogram", quantile=0.99,
            buckets=f"sum by ({_BY}, le) (increase(istio_request_duration_milliseconds_bucket{{{_ISTIO}}}[$window]))")),
    "ttft_p99_seconds": MetricQuery(
        query=_vllm_p99("vllm:time_to_first_token_seconds"), labels=_WORKLOAD, evidence=_vllm_evidence("vllm:time_to_first_token_seconds"),
        unit="s", description="time to first token p99 (vLLM)"),
    "tpot_p99_seconds": MetricQuery(
        query=_vllm_p99("vllm:time_per_output_token_seconds"), labels=_WORKLOAD, evidence=_vllm_evidence("vllm:time_per_output_token_seconds"),
        unit="s", description="time per output token p99 (vLLM)"),
    "e2e_latency_p99_seconds": MetricQuery(
        query=_vllm_p99("vllm:e2e_request_latency_seconds"), labels=_WORKLOAD, evidence=_vllm_evidence("vllm:e2e_request_latency_seconds"),
        unit="s", description="end-to-end request latency p99 (vLLM)"),
    "quality_score": MetricQuery(
        query=_evaluator("sluice_eval_quality_score"), labels=_WORKLOAD,
        unit="score", description="online evaluator's judged answer quality, 0..1"),
    "safety_violation_rate": MetricQuery(
        query=_evaluator("sluice_eval_safety_violation_rate"), labels=_WORKLOAD,
        unit="ratio", description="online evaluator's share of responses flagged unsafe",
        evidence=Evidence(kind="proportion", events=_increase("sluice_eval_flagged_total"),
                          trials=_increase("sluice_eval_judged_total"), sampled=True)),
    "refusal_rate": _evaluator_share(
        "sluice_eval_refusals_total", "sluice_eval_answers_total",
        description="online evaluator's share of sampled answers that refuse, per version"),
    "json_invalid_rate": _evaluator_share(
        "sluice_eval_json_invalid_total", "sluice_eval_answers_total",
        description="online evaluator's share of sampled answers that are not valid JSON, per version "
                    "(only where the release's routing.expects_json)"),
    "shadow_divergence_rate": _evaluator_share(
        "sluice_shadow_divergent_total", "sluice_shadow_comparisons_total", candidate_only=True,
        description="share of sampled requests where the candidate's answer diverges from stable's "
                    "(similarity below the evaluator's divergence_threshold)"),
    "shadow_win_rate": _evaluator_share(
        "sluice_shadow_wins_total", "sluice_shadow_judged_total", candidate_only=True,
        description="share of judged pairs the judge model preferred the candidate's answer in (ties count "
                    "as not won)"),
    "shadow_similarity": MetricQuery(
        query=f"{_increase('sluice_shadow_similarity_sum')} / {_increase('sluice_shadow_similarity_count')}",
        labels=_WORKLOAD, unit="score", candidate_only=True,
        description="mean text similarity of the candidate's answers to stable's, 0..1"),
    "user_satisfaction": MetricQuery(
        query=_evaluator("sluice_eval_user_satisfaction"), labels=_WORKLOAD,
        unit="ratio", description="share of rated responses rated positively"),
}


class Cluster(Frozen):
    provider: Literal["aws-eks"] = "aws-eks"
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", description="e.g. us-east-1")
    name: DnsLabel
    kubernetes_version: str = Field(pattern=r"^1\.[0-9]{2}$", description='quoted, e.g. "1.33"')


class GpuPool(Frozen):
    name: DnsLabel
    instance_type: str = Field(pattern=r"^[a-z0-9]+\.[a-z0-9]+$", description="e.g. p4de.24xlarge")
    gpu_type: DnsLabel = Field(description="e.g. nvidia-a100-80gb; releases name the same type")
    gpus_per_node: int = Field(ge=1, le=64)
    min_nodes: int = Field(default=0, ge=0, le=MAX_NODES)
    max_nodes: int = Field(ge=1, le=MAX_NODES)
    ami_type: Literal["AL2023_x86_64_NVIDIA", "AL2023_ARM_64_NVIDIA",
                      "BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA"] = Field(
        default="AL2023_x86_64_NVIDIA", description="an EKS AMI with NVIDIA drivers; ARM for Graviton GPU nodes")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    disk_gib: int = Field(default=500, ge=20, le=16384,
                          description="root volume per node; it holds the model cache of every version on the node")

    @property
    def max_gpus(self) -> int:
        return self.gpus_per_node * self.max_nodes


def _endpoint_url(url: str) -> str:
    problem = endpoint_url_problem(url)
    if problem:
        raise ValueError(problem)
    return url


class SecretKey(Frozen):
    """One key of a Kubernetes Secret in the environment's namespace (the Secret is yours to create)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253,
                      description="the Secret's name (a DNS-1123 subdomain), e.g. judge-api-key")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="the key in its data, e.g. token")


class EvaluatorEndpoint(Frozen):
    """An OpenAI-compatible endpoint the online evaluator calls (vLLM, TGI, any such URL)."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2048), AfterValidator(_endpoint_url)] = Field(
        description="base URL, e.g. http://judge.llm-serving.svc:8000; no user:password@ (it goes into a ConfigMap)")
    model: str | None = Field(default=None, min_length=1, max_length=256,
                              description="the model name to request; unset: the endpoint's own default")
    api_key_secret: SecretKey | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="the Secret key holding the endpoint's API key, sent as Authorization: Bearer; it reaches the "
                    "evaluator as an environment variable, never the ConfigMap")


class Evaluator(Frozen):
    """Sluice's online evaluator (docs/formats.md#evaluator), deployed beside each model while its candidate is
    in a canary or shadow stage: Istio mirrors `sample_percent`% of the model's user traffic to it,
    and it asks stable and candidate the same question and compares the answers."""

    image: ImageByDigest = Field(description="the Sluice image, pinned by digest like serving images")
    sample_percent: float = Field(default=5.0, gt=0, le=100,
                                  description="percent of each model's user traffic mirrored to the evaluator, "
                                              "at most the candidate's weight (or its shadow mirror) at each stage")
    max_concurrency: int = Field(default=4, ge=1, le=1024, description="samples in flight at once")
    queue_size: int = Field(default=32, ge=1, le=100_000,
                            description="samples waiting; a sample arriving at a full queue is dropped and counted")
    timeout: PositiveDuration = Field(default=timedelta(seconds=90), description="per call to a model")
    retries: int = Field(default=2, ge=0, le=10, description="retries of a failed call, with backoff")
    divergence_threshold: Fraction = Field(
        default=0.6, description="answers less similar than this count as divergent (shadow_divergence_rate)")
    judge: EvaluatorEndpoint | None = Field(
        default=None, description="a judge model for pairwise win rates; unset: no win rate")
    classifier: EvaluatorEndpoint | None = Field(
        default=None, description="a safety classifier (Llama Guard style); its model defaults to the release's "
                                  "bundle.safety.classifier; unset: no safety_violation_rate")

    def percent_at(self, candidate_percent: float) -> float:
        """The percent of the model's user traffic sampled at a stage: `sample_percent`, at most the
        candidate's own percent (its canary weight, or its shadow mirror). Every sample is also a
        request to the candidate, so the evaluator at most doubles the candidate's load.

        Example: sample_percent 5 at a 1% canary -> 1; at a 25% canary -> 5; at a mirror-50 shadow -> 5.
        """
        return min(self.sample_percent, candidate_percent)


class Istio(Frozen):
    gateway: str = Field(pattern=r"^([a-z0-9-]+/)?[a-z0-9-]+$", description="namespace/name of the Gateway")
    hosts: list[str] = Field(min_length=1)


class Metrics(Frozen):
    # Declared before prometheus_url, whose check reads it (pydantic validates fields in order).
    allow_link_local: bool = Field(
        default=False, description="let prometheus_url name a link-local or cloud metadata address "
        "(169.254.0.0/16, fe80::/10, metadata.google.internal, ...): only where Prometheus really listens there")
    prometheus_url: str = Field(pattern=r"^https?://\S+$",
                                description="no user:password@; no link-local or metadata host unless allowed")
    window: PositiveDuration = timedelta(minutes=5)
    timeout: PositiveDuration = timedelta(seconds=10)
    max_staleness: PositiveDuration = Field(default=timedelta(minutes=2), description="older samples count as missing")
    queries: dict[str, MetricQuery] = Field(
        default_factory=lambda: dict(DEFAULT_QUERIES),
        description="merged over the default catalog: name a default to override it",
    )

    @field_validator("prometheus_url")
    @classmethod
    def _trusted(cls, url: str, info: ValidationInfo) -> str:
        problem = prometheus_url_problem(url, allow_link_local=bool(info.data.get("allow_link_local")))
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("queries", mode="after")
    @classmethod
    def _merge_defaults(cls, queries: dict[str, MetricQuery]) -> dict[str, MetricQuery]:
        return {**DEFAULT_QUERIES, **queries}


class PreDeploymentGates(Frozen):
    """Offline gates a candidate passes before any traffic (defaults: docs/formats.md#pre-deployment-gates)."""

    max_toxicity: Fraction = 0.05
    min_win_rate: Fraction = 0.5
    min_adversarial_pass_rate: Fraction = 1.0
    max_latency_increase: float = Field(default=0.2, ge=0, le=100, description="0.2 = p99 may be 20% above stable (warns)")


class Policy(Frozen):
    protected: bool = False
    required_approvals: int = Field(default=0, ge=0, le=100)
    allowed_approvers: list[Email] = Field(default_factory=list)
    predeployment: PreDeploymentGates = PreDeploymentGates()


class ModelDeployment(Frozen):
    """Which versions of one model are live here. Only the reconciler and rollbacks change these."""

    stable: SemVer
    candidate: SemVer | None = None
    standby: SemVer | None = None
    standby_until: AwareDatetime | None = Field(
        default=None, description="when the reconciler retires the standby (set at promotion); unset: kept until removed")
    stage: int = Field(default=0, ge=0, le=99, description="index into the candidate's rollout.stages")
    stage_started_at: AwareDatetime | None = None
    pool: DnsLabel = Field(description="the GPU pool that serves this model")
    replicas: int = Field(default=1, ge=1, le=1000, description="replicas per live version")
    expected_rps: float | None = Field(
        default=None, gt=0, le=1e6, exclude_if=lambda v: v is None,
        description="requests per second the whole model serves: plans stages' evidence before anything is observed")
    deadline_paged_at: AwareDatetime | None = Field(
        default=None, description="when the reconciler paged that the candidate's stage passed its progress "
                                  "deadline (on_progress_deadline: hold): the page goes out once per stage")

    @model_validator(mode="after")
    def _standby_until_needs_standby(self) -> ModelDeployment:
        if self.standby_until is not None and self.standby is None:
            raise ValueError("standby_until is set but there is no standby: remove standby_until")
        return self

    def live_versions(self) -> list[str]:
        return [v for v in (self.stable, self.candidate, self.standby) if v is not None]


class Environment(Frozen):
    cluster: Cluster
    namespace: DnsLabel = "llm-serving"
    gpu_pools: list[GpuPool] = Field(min_length=1)
    istio: Istio
    metrics: Metrics
    policy: Policy = Policy()
    models: dict[DnsLabel, ModelDeployment] = Field(default_factory=dict)
    evaluator: Evaluator | None = Field(
        default=None, description="Sluice's online evaluator beside canary and shadow stages; unset: none deployed")


def render_query(template: str, *, window: timedelta, namespace: str) -> str:
    """Fill a template's placeholders with validated values only: "[$window]" -> "[5m]"."""
    if not re.fullmatch(DNS_LABEL, namespace):
        raise ValueError(f"namespace {namespace!r} is not a DNS-1123 label")
    return Template(template).substitute(window=format_duration(window), namespace=namespace)
