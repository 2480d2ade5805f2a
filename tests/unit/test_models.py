"""The pydantic models: immutability, strictness, the documented defaults (docs/formats.md) and the constrained types.

Valid documents come from the example repository (parsed the way the loader parses them), and each
case changes one value, so a failure points at one rule of the format.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from functools import cache
from typing import Any, Callable

import pytest
from pydantic import TypeAdapter, ValidationError

from reconciler.adapters.yaml_source import parse_yaml
from reconciler.core.environment import (
    DEFAULT_QUERIES,
    Environment,
    Evidence,
    Metrics,
    MetricQuery,
    ModelDeployment,
    Policy,
    PreDeploymentGates,
    render_query,
)
from reconciler.core.release import (
    DeadMansSwitch,
    Gate,
    GenerationParameters,
    Release,
    RollbackTrigger,
    Rollout,
    Stage,
    statistical_bound,
)
from reconciler.core.types import (
    ArtifactUri,
    DnsLabel,
    ImageByDigest,
    SemVer,
    Sha256,
    format_duration,
    parse_duration,
    version_key,
)
from tests.conftest import ROOT

DELETE = object()
HEX = "0123456789abcdef" * 4  # 64 lowercase hex digits
PROMETHEUS = "http://prometheus.monitoring.svc:9090"


@cache
def _parsed(rel: str) -> Any:
    parsed = parse_yaml((ROOT / rel).read_bytes())
    assert not parsed.errors, parsed.errors
    return parsed.data


def release_data() -> dict[str, Any]:
    """chat-assistant 1.3.0 as plain data (a fresh copy each call)."""
    return copy.deepcopy(_parsed("releases/chat-assistant/1.3.0.yaml"))


def environment_data() -> dict[str, Any]:
    return copy.deepcopy(_parsed("environments/staging.yaml"))


def changed(data: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """`data` with the value at `path` replaced (or removed when value is DELETE)."""
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def release_with(path: tuple, value: Any) -> Release:
    return Release.model_validate(changed(release_data(), path, value))


def weights(stages: list[Stage]) -> list[int]:
    return [s.weight for s in stages]


# --------------------------------------------------------------------------- frozen, extra=forbid


def _instances() -> list[tuple[object, str, object]]:
    release = Release.model_validate(release_data())
    env = Environment.model_validate(environment_data())
    return [
        (release, "version", "9.9.9"),
        (release.bundle, "system_prompt", None),
        (release.bundle.generation, "temperature", 1.5),
        (release.evaluation, "toxicity", 0.9),
        (release.rollout, "strategy", "blue-green"),
        (release.rollout.stages[1], "weight", 50),
        (env, "namespace", "other"),
        (env.models["chat-assistant"], "stage", 3),
        (env.gpu_pools[0], "max_nodes", 100),
        (env.policy, "protected", True),
    ]


@pytest.mark.parametrize(
    ("instance", "field", "value"),
    _instances(),
    ids=[
        "a release cannot be changed after loading",
        "a bundle cannot be changed",
        "generation parameters cannot be changed",
        "an evaluation cannot be changed",
        "a rollout cannot be changed",
        "a stage cannot be changed",
        "an environment cannot be changed",
        "a model deployment pointer cannot be changed in place",
        "a GPU pool cannot be changed",
        "a policy cannot be changed",
    ],
)
def test_models_are_frozen(instance: Any, field: str, value: Any) -> None:
    before = getattr(instance, field)
    with pytest.raises(ValidationError) as info:
        setattr(instance, field, value)
    assert info.value.errors()[0]["type"] == "frozen_instance"
    assert getattr(instance, field) == before


@pytest.mark.parametrize(
    ("model", "data", "path"),
    [
        (Release, release_data, ("colour",)),
        (Release, release_data, ("bundle", "serving", "replicas")),
        (Release, release_data, ("rollout", "stages", 1, "min_duraton")),
        (Release, release_data, ("rollout", "stages", 1, "gates", 0, "threshold")),
        (Release, release_data, ("evaluation", "bleu")),
        (Release, release_data, ("lineage", "approvals", 0, "comment")),
        (Environment, environment_data, ("models", "chat-assistant", "weight")),
        (Environment, environment_data, ("gpu_pools", 0, "gpu_count")),
        (Environment, environment_data, ("policy", "predeployment", "max_latency")),
    ],
    ids=[
        "an unknown top-level release key is an error",
        "an unknown key in serving is an error",
        "a misspelt stage key (min_duraton) is an error, not a silent default",
        "an unknown gate key is an error",
        "an unknown evaluation key is an error",
        "an unknown approval key is an error",
        "an unknown model deployment key is an error",
        "an unknown GPU pool key is an error",
        "an unknown pre-deployment gate key is an error",
    ],
)
def test_unknown_keys_are_rejected(model: type, data: Any, path: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(changed(data(), path, 1))
    errors = info.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("extra_forbidden", path)]


# --------------------------------------------------------------------------- defaults


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("canary", [(0, 0, timedelta(0), 0), (1, 0, H, 1_000), (5, 0, 4 * H, 10_000), (25, 0, 24 * H, 50_000),
                    (50, 0, 48 * H, 100_000), (100, 0, timedelta(0), 0)]),
        ("blue-green", [(0, 0, H, 1_000), (100, 0, H / 2, 1_000)]),
        ("shadow", [(0, 100, 24 * H, 10_000), (1, 0, H, 1_000), (5, 0, 4 * H, 10_000), (25, 0, 24 * H, 50_000),
                    (50, 0, 48 * H, 100_000), (100, 0, timedelta(0), 0)]),
    ],
    ids=[
        "canary defaults to 0/1/5/25/50/100 with 1h/4h/24h/48h minimum durations",
        "blue-green defaults to 1h of checks at 0, a 0/100 switch, then 30m of post-promotion checks",
        "shadow defaults to 24h mirroring 100% at 0 then the canary stages",
    ],
)
def test_default_stages_follow_the_strategy(strategy: str, expected: list[tuple]) -> None:
    rollout = Rollout(strategy=strategy)
    assert [(s.weight, s.mirror, s.min_duration, s.min_requests) for s in rollout.stages] == expected
    # every stage that serves part of the traffic, or mirrors it, is gated; the final 100% stage only
    # for blue-green (post-promotion checks, absolute bounds: blue serves nothing to compare with)
    assert all(s.gates for s in rollout.stages if 0 < s.weight < 100 or s.mirror)
    final = rollout.stages[-1].gates
    assert (final == []) if strategy != "blue-green" else all(g.min is not None or g.max is not None for g in final)


@pytest.mark.parametrize(
    ("stage", "metric", "bounds"),
    [
        (1, "latency_p99_ms", {"max_ratio_to_stable": 1.2}),
        (2, "quality_score", {"min_ratio_to_stable": 0.98}),
        (2, "error_rate", {"max_increase_over_stable": 0.005}),
        (3, "safety_violation_rate", {"max_increase_over_stable": 0.001}),
        (4, "user_satisfaction", {"min_ratio_to_stable": 0.98}),
    ],
    ids=[
        "the 1% stage gates on latency p99 at most 1.2 x stable",
        "the 5% stage gates on quality staying within 2% of stable",
        "the 5% stage gates on at most half a point more errors than stable",
        "the 25% stage gates on no safety regression",
        "the 50% stage gates on user satisfaction maintained",
    ],
)
def test_default_canary_gates_match_the_design_table(stage: int, metric: str, bounds: dict) -> None:
    gates = {g.metric: g.bounds() for g in Rollout().stages[stage].gates}
    assert gates[metric] == bounds


def test_rollout_defaults() -> None:
    rollout = Rollout()
    assert rollout.strategy == "canary"
    assert [(t.metric, t.min, t.max) for t in rollout.rollback_triggers] == [
        ("error_rate", None, 0.05), ("safety_violation_rate", None, 0.01)]
    assert rollout.dead_mans_switch.max_silence == timedelta(minutes=10)
    assert rollout.standby_window == timedelta(hours=72)
    assert rollout.notify == []


@pytest.mark.parametrize(
    "strategy", ["canary", "blue-green", "shadow"],
    ids=["explicit canary stages replace the defaults", "explicit blue-green stages replace the defaults",
         "explicit shadow stages replace the defaults"],
)
def test_explicit_stages_win_over_defaults(strategy: str) -> None:
    rollout = Rollout.model_validate({"strategy": strategy, "stages": [{"weight": 0, "mirror": 10}, {"weight": 100}]})
    assert weights(rollout.stages) == [0, 100]
    assert rollout.stages[0].mirror == 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"strategy": "blue-green", "stages": None}, [0, 100]),
        ({"stages": None}, [0, 1, 5, 25, 50, 100]),
    ],
    ids=["`stages: null` gives the strategy's defaults", "`stages: null` without a strategy gives canary's defaults"],
)
def test_null_stages_mean_defaults(data: dict, expected: list[int]) -> None:
    assert weights(Rollout.model_validate(data).stages) == expected


def test_empty_stage_list_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Rollout.model_validate({"stages": []})
    assert info.value.errors()[0]["loc"] == ("stages",)


def test_a_release_that_only_names_its_strategy_gets_the_default_rollout() -> None:
    data = release_data()
    data["rollout"] = {"strategy": "blue-green"}
    rollout = Release.model_validate(data).rollout
    assert rollout == Rollout(strategy="blue-green")
    assert weights(rollout.stages) == [0, 100]
    release = Release.model_validate({k: v for k, v in release_data().items() if k != "rollout"})
    assert release.rollout == Rollout()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Stage(weight=5), (0, timedelta(0), 0, [])),
        (DeadMansSwitch(), timedelta(minutes=10)),
        (GenerationParameters(), (0.7, 1.0, 1024, [])),
        (PreDeploymentGates(), (0.05, 0.5, 1.0, 0.2)),
        (Policy(), (False, 0, [])),
        (Metrics(prometheus_url=PROMETHEUS), (timedelta(minutes=5), timedelta(seconds=10), timedelta(minutes=2))),
        (ModelDeployment(stable="1.0.0", pool="a100"), (None, None, 0, None, 1)),
    ],
    ids=[
        "a stage mirrors nothing, has no minimum duration, requests or gates by default",
        "the dead man's switch fires after 10m of silence",
        "generation defaults to temperature 0.7, top_p 1, 1024 tokens",
        "pre-deployment gates default to toxicity 0.05, win rate 0.5, adversarial 100%, latency +20%",
        "an environment is unprotected and needs no approvals by default",
        "metrics use a 5m window, 10s timeout and 2m staleness by default",
        "a deployment has no candidate or standby, stage 0 and one replica by default",
    ],
)
def test_small_defaults(value: Any, expected: Any) -> None:
    actual = {
        Stage: lambda v: (v.mirror, v.min_duration, v.min_requests, v.gates),
        DeadMansSwitch: lambda v: v.max_silence,
        GenerationParameters: lambda v: (v.temperature, v.top_p, v.max_tokens, v.stop),
        PreDeploymentGates: lambda v: (v.max_toxicity, v.min_win_rate, v.min_adversarial_pass_rate,
                                       v.max_latency_increase),
        Policy: lambda v: (v.protected, v.required_approvals, v.allowed_approvers),
        Metrics: lambda v: (v.window, v.timeout, v.max_staleness),
        ModelDeployment: lambda v: (v.candidate, v.standby, v.stage, v.stage_started_at, v.replicas),
    }[type(value)](value)
    assert actual == expected


@pytest.mark.parametrize("strategy", ["canary", "blue-green", "shadow"],
                         ids=["canary defaults only read metrics the default catalog defines",
                              "blue-green defaults only read metrics the default catalog defines",
                              "shadow defaults only read metrics the default catalog defines"])
def test_default_rollouts_only_need_default_queries(strategy: str) -> None:
    needed = Rollout(strategy=strategy).gate_metrics()
    assert "requests" in needed  # default stages set min_requests
    assert needed <= set(DEFAULT_QUERIES)


def test_gate_metrics_without_min_requests_does_not_need_a_request_count() -> None:
    rollout = Rollout.model_validate({
        "stages": [{"weight": 0}, {"weight": 100, "gates": [{"metric": "foo", "max": 1}]}],
        "rollback_triggers": [{"metric": "bar", "min": 0}],
    })
    assert rollout.gate_metrics() == {"foo", "bar"}


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("90s", timedelta(seconds=90), "1m30s"),
        ("1h30m", timedelta(hours=1, minutes=30), "1h30m"),
        ("2d", timedelta(days=2), "2d"),
        ("5m", timedelta(minutes=5), "5m"),
        ("250ms", timedelta(milliseconds=250), "250ms"),
        ("1d12h", timedelta(days=1, hours=12), "1d12h"),
        ("1m500ms", timedelta(minutes=1, milliseconds=500), "1m500ms"),
        ("0s", timedelta(0), "0s"),
        ("72h", timedelta(hours=72), "3d"),
    ],
    ids=[
        "90s is ninety seconds",
        "1h30m adds its parts",
        "2d is two days",
        "5m is minutes, not months or milliseconds",
        "250ms is milliseconds",
        "days and hours combine",
        "minutes and milliseconds combine (ms is not read as m then s)",
        "0s is zero",
        "72h is three days",
    ],
)
def test_durations_parse_and_format(text: str, expected: timedelta, canonical: str) -> None:
    assert parse_duration(text) == expected
    stage = Stage(weight=1, min_duration=text)
    assert stage.min_duration == expected
    assert format_duration(expected) == canonical
    assert stage.model_dump(mode="json")["min_duration"] == canonical
    assert parse_duration(canonical) == expected


@pytest.mark.parametrize(
    ("build", "accepted"),
    [
        (lambda d: DeadMansSwitch(max_silence=d), False),
        (lambda d: Metrics(prometheus_url=PROMETHEUS, window=d), False),
        (lambda d: Metrics(prometheus_url=PROMETHEUS, max_staleness=d), False),
        (lambda d: Release.model_validate(changed(release_data(), ("bundle", "routing", "request_timeout"), d)),
         False),
        (lambda d: Stage(weight=0, min_duration=d), True),
    ],
    ids=[
        "a dead man's switch of 0s would fire on every pass, so it is refused",
        "a 0s metrics window is refused",
        "a 0s staleness limit is refused",
        "a 0s request timeout is refused",
        "a stage may have no minimum duration (0s)",
    ],
)
def test_zero_durations_only_where_they_mean_something(build: Callable[[str], object], accepted: bool) -> None:
    if accepted:
        build("0s")
    else:
        with pytest.raises(ValidationError, match="must be longer than 0s"):
            build("0s")
    build("1s")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (60, "has no unit"),
        (1.5, "has no unit"),
        (True, "has no unit"),
        ("60", "is not a duration"),
        ("", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("1H", "is not a duration"),
        ("-5m", "is not a duration"),
        ("5 m", "is not a duration"),
        ("1h 30m", "is not a duration"),
        ("5min", "is not a duration"),
        ("1w", "is not a duration"),
        ("h", "is not a duration"),
        ("ten minutes", "is not a duration"),
    ],
    ids=[
        "a bare integer is refused: is it seconds or minutes?",
        "a bare float is refused",
        "a boolean is refused, not read as 1",
        "a quoted bare number is refused",
        "an empty string is refused",
        "fractions are refused",
        "upper-case units are refused",
        "negative durations are refused",
        "a space between number and unit is refused",
        "a space between parts is refused",
        "5min is refused (write 5m)",
        "weeks are not a unit",
        "a unit without a number is refused",
        "words are refused",
    ],
)
def test_bad_durations_are_rejected(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)
    with pytest.raises(ValidationError, match=message):
        DeadMansSwitch(max_silence=value)


# --------------------------------------------------------------------------- constrained strings


def _check(type_: object, value: str) -> str:
    return TypeAdapter(type_).validate_python(value)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        (SemVer, "0.0.0"), (SemVer, "1.3.0"), (SemVer, "10.20.300"),
        (Sha256, HEX),
        (DnsLabel, "a"), (DnsLabel, "chat-assistant"), (DnsLabel, "a" * 63), (DnsLabel, "0day"), (DnsLabel, "a1-b2"),
        (ArtifactUri, "s3://bucket/key"), (ArtifactUri, "gs://bucket/key"),
        (ArtifactUri, "hf://meta-llama/Llama-Guard-3-8B@7327bd9f6efbbe6101dc6cc4736302b3cbb6e425/model.safetensors"),
        (ArtifactUri, "https://example.com/w.bin"),
        (ImageByDigest, f"vllm/vllm-openai@sha256:{HEX}"),
        (ImageByDigest, f"123456789012.dkr.ecr.us-east-1.amazonaws.com/vllm-openai@sha256:{HEX}"),
        (ImageByDigest, f"ghcr.io/acme/vllm:v0.6.3@sha256:{HEX}"),
    ],
    ids=[
        "semver 0.0.0 is valid", "semver 1.3.0 is valid", "semver with multi-digit parts is valid",
        "64 lowercase hex digits are a sha256",
        "a one-letter name is a DNS label", "a hyphenated name is a DNS label", "63 characters is the longest label",
        "a label may start with a digit", "letters, digits and inner hyphens mix",
        "s3:// is an artifact scheme", "gs:// is an artifact scheme", "hf:// at a full commit is an artifact scheme",
        "https:// is an artifact scheme",
        "an image pinned by digest is valid", "an ECR image pinned by digest is valid",
        "a tag plus a digest is still pinned by digest",
    ],
)
def test_constrained_strings_accept(type_: object, value: str) -> None:
    assert _check(type_, value) == value


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        (SemVer, "1.3", "is not a semantic version"),
        (SemVer, "v1.3.0", "is not a semantic version"),
        (SemVer, "01.3.0", "is not a semantic version"),
        (SemVer, "1.3.0-rc1", "is not a semantic version"),
        (SemVer, "1.3.0.1", "is not a semantic version"),
        (SemVer, " 1.3.0", "is not a semantic version"),
        (Sha256, HEX[:63], "is not a sha256"),
        (Sha256, HEX + "0", "is not a sha256"),
        (Sha256, HEX.upper(), "is not a sha256"),
        (Sha256, f"sha256:{HEX}", "is not a sha256"),
        (Sha256, "g" * 64, "is not a sha256"),
        (DnsLabel, "", "is not a valid Kubernetes name"),
        (DnsLabel, "a" * 64, "is not a valid Kubernetes name"),
        (DnsLabel, "-chat", "is not a valid Kubernetes name"),
        (DnsLabel, "chat-", "is not a valid Kubernetes name"),
        (DnsLabel, "Chat", "is not a valid Kubernetes name"),
        (DnsLabel, "chat_assistant", "is not a valid Kubernetes name"),
        (DnsLabel, "chat.assistant", "is not a valid Kubernetes name"),
        (ArtifactUri, "http://example.com/w.bin", "is not an artifact URI"),
        (ArtifactUri, "ftp://example.com/w.bin", "is not an artifact URI"),
        (ArtifactUri, "file:///models/w.bin", "is not an artifact URI"),
        (ArtifactUri, "/models/w.bin", "is not an artifact URI"),
        (ArtifactUri, "s3://", "is not an artifact URI"),
        (ArtifactUri, "S3://bucket/key", "is not an artifact URI"),
        (ArtifactUri, "s3://bucket/a key", "is not an artifact URI"),
        (ImageByDigest, "vllm/vllm-openai:latest", "is not pinned by digest"),
        (ImageByDigest, "vllm/vllm-openai:v0.6.3", "is not pinned by digest"),
        (ImageByDigest, f"vllm/vllm-openai@sha256:{HEX[:63]}", "is not pinned by digest"),
        (ImageByDigest, f"vllm/vllm-openai@sha256:{HEX.upper()}", "is not pinned by digest"),
        (ImageByDigest, f"vllm/vllm-openai@sha512:{HEX}{HEX}", "is not pinned by digest"),
    ],
    ids=[
        "semver needs three parts", "semver has no 'v' prefix", "semver parts have no leading zeros",
        "pre-release suffixes are not accepted", "four parts are not semver", "surrounding spaces are not semver",
        "63 hex digits are not a sha256", "65 hex digits are not a sha256", "upper-case hex is not accepted",
        "a 'sha256:' prefix is not part of the digest", "non-hex letters are not a sha256",
        "an empty name is not a DNS label", "64 characters is too long for a DNS label",
        "a label cannot start with '-'", "a label cannot end with '-'", "upper-case letters are refused",
        "underscores are refused", "dots are refused",
        "plain http:// is not an artifact scheme", "ftp:// is not an artifact scheme",
        "file:// is not an artifact scheme", "a local path is not an artifact URI", "a scheme without a location",
        "schemes are lower-case", "a URI cannot contain spaces",
        "a :latest tag is not pinned", "a version tag is not pinned", "a short digest is not pinned",
        "an upper-case digest is not pinned", "a sha512 digest is not the expected form",
    ],
)
def test_constrained_strings_reject(type_: object, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _check(type_, value)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), "1.3", "is not a semantic version"),
        (("model",), "Chat_Assistant", "is not a valid Kubernetes name"),
        (("revision",), "HEAD", "is not a git commit hash"),
        (("bundle", "weights", "uri"), "http://example.com/model.safetensors", "is not an artifact URI"),
        (("bundle", "tokenizer", "sha256"), "abc123", "is not a sha256"),
        (("bundle", "serving", "image"), "vllm/vllm-openai:latest", "is not pinned by digest"),
        (("bundle", "serving", "gpu_type"), "A100", "is not a valid Kubernetes name"),
        (("lineage", "base_model", "source"), "http://huggingface.co/x", "is not an artifact URI"),
        (("lineage", "created_by"), "priya", "is not an e-mail address"),
        (("lineage", "parent_version"), "v1.2.0", "is not a semantic version"),
    ],
    ids=[
        "a release version must be semver",
        "a release model name must be a DNS-1123 label",
        "a release revision must be a commit hash",
        "bundle artifacts must use s3/gs/hf/https",
        "bundle artifacts need a full sha256",
        "the serving image must be pinned by digest",
        "the GPU type must be a DNS label",
        "the base model source must use an artifact scheme",
        "created_by must be an e-mail address",
        "the parent version must be semver",
    ],
)
def test_release_fields_use_the_constrained_types(path: tuple, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        release_with(path, value)
    assert [e["loc"] for e in info.value.errors()] == [path]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("evaluation", "toxicity"), 1.5),
        (("evaluation", "toxicity"), float("nan")),
        (("evaluation", "adversarial_pass_rate"), -0.1),
        (("evaluation", "latency_p99_ms"), 0),
        (("rollout", "stages", 1, "weight"), 101),
        (("rollout", "stages", 1, "weight"), -1),
        (("rollout", "stages", 1, "gates", 0, "max_ratio_to_stable"), 0),
        (("rollout", "strategy"), "linear"),
        (("bundle", "serving", "gpus"), 0),
        (("bundle", "generation", "top_p"), 0),
        (("lineage", "approvals", 0, "at"), "2026-11-13T10:05:00"),
        (("rollout", "notify", 0, "url"), "hooks.slack.com/x"),
    ],
    ids=[
        "toxicity is a fraction at most 1",
        "NaN is not a number here",
        "a pass rate cannot be negative",
        "latency p99 must be positive",
        "a stage weight is at most 100",
        "a stage weight is at least 0",
        "a stable ratio must be positive",
        "only canary, blue-green and shadow are strategies",
        "a replica needs at least one GPU",
        "top_p must be above 0",
        "an approval time needs a time zone",
        "a notification URL needs http(s)",
    ],
)
def test_release_numbers_and_choices_are_bounded(path: tuple, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        release_with(path, value)
    assert [e["loc"][: len(path)] for e in info.value.errors()] == [path]


# --------------------------------------------------------------------------- metric queries


@pytest.mark.parametrize(
    "template",
    [
        "sum(rate(x[$window]))",
        "sum(rate(x{namespace=\"${namespace}\"}[${window}]))",
        "sum(rate(x[5m])) * $$1",
        "up",
    ],
    ids=[
        "$window is a known placeholder",
        "braced ${namespace} and ${window} are known placeholders",
        "$$ is a literal dollar sign",
        "a query without placeholders is fine",
    ],
)
def test_query_templates_accept_known_placeholders(template: str) -> None:
    assert MetricQuery(query=template).query == template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("rate(x[$interval])", "unknown placeholder(s) $interval"),
        ("rate(x{app=\"$model\"}[$window])", "unknown placeholder(s) $model"),
        ("rate(x[${windows}])", "unknown placeholder(s) $windows"),
        ("x{a=\"$b\",c=\"$a\"}", "unknown placeholder(s) $a, $b"),
        ("rate(x[$window]) > $", "stray '$'"),
        ("x > $1", "stray '$'"),
        ("", "at least 1 character"),
    ],
    ids=[
        "an unknown placeholder is rejected at validate time",
        "a placeholder that would paste a raw value is rejected",
        "a misspelt braced placeholder is rejected",
        "every unknown placeholder is named, sorted",
        "a stray dollar sign is rejected",
        "a dollar before a digit is rejected",
        "an empty query is rejected",
    ],
)
def test_query_templates_reject_unknown_placeholders(template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        MetricQuery(query=template)


def test_environment_query_with_unknown_placeholder_is_rejected() -> None:
    data = environment_data()
    data["metrics"]["queries"] = {"error_rate": {"query": "sum(rate(x[$range]))"}}
    with pytest.raises(ValidationError, match=r"unknown placeholder\(s\) \$range") as info:
        Environment.model_validate(data)
    assert info.value.errors()[0]["loc"] == ("metrics", "queries", "error_rate", "query")


def test_default_catalog_is_the_documented_one() -> None:
    assert set(DEFAULT_QUERIES) == {
        "requests", "last_sample", "error_rate", "latency_p99_ms", "ttft_p99_seconds", "tpot_p99_seconds",
        "e2e_latency_p99_seconds", "quality_score", "safety_violation_rate", "user_satisfaction",
        "refusal_rate", "json_invalid_rate", "shadow_divergence_rate", "shadow_win_rate", "shadow_similarity"}
    assert "istio_requests_total" in DEFAULT_QUERIES["requests"].query
    assert 'response_code=~"5.."' in DEFAULT_QUERIES["error_rate"].query
    assert "istio_request_duration_milliseconds_bucket" in DEFAULT_QUERIES["latency_p99_ms"].query
    assert "vllm:time_to_first_token_seconds_bucket" in DEFAULT_QUERIES["ttft_p99_seconds"].query
    assert DEFAULT_QUERIES["last_sample"].query.startswith("max by (destination_app, destination_version) (timestamp(")
    for name, query in DEFAULT_QUERIES.items():
        assert "$window" in query.query or name == "last_sample", name  # a sample's time has no window
        assert (query.labels.app, query.labels.version) in {
            ("destination_app", "destination_version"), ("app", "version")}, name
        for label in (query.labels.app, query.labels.version):
            assert label in query.query, name  # the query groups by the labels it declares


@pytest.mark.parametrize(
    ("queries", "overridden"),
    [
        (None, set()),
        ({}, set()),
        ({"quality_score": {"query": "avg by (app, version) (q{namespace=\"$namespace\"}[$window])"}},
         {"quality_score"}),
        ({"hallucination_rate": {"query": "avg by (app, version) (h[$window])"}}, {"hallucination_rate"}),
        ({"error_rate": {"query": "e[$window]"}, "latency_p99_ms": {"query": "l[$window]"}},
         {"error_rate", "latency_p99_ms"}),
    ],
    ids=[
        "no queries key gives the default catalog",
        "an empty queries mapping gives the default catalog",
        "overriding one default keeps every other default",
        "a new query is added next to the defaults",
        "several overrides each replace their default",
    ],
)
def test_queries_merge_over_the_default_catalog(queries: dict | None, overridden: set[str]) -> None:
    data: dict[str, Any] = {"prometheus_url": PROMETHEUS}
    if queries is not None:
        data["queries"] = queries
    merged = Metrics.model_validate(data).queries
    assert set(merged) == set(DEFAULT_QUERIES) | overridden
    for name in merged:
        if name in overridden:
            assert merged[name] == MetricQuery.model_validate(queries[name])  # type: ignore[index]
        else:
            assert merged[name] == DEFAULT_QUERIES[name]


def test_example_production_overrides_only_quality_score() -> None:
    prod = Environment.model_validate(copy.deepcopy(_parsed("environments/prod.yaml")))
    assert "$namespace" in prod.metrics.queries["quality_score"].query
    assert prod.metrics.queries["quality_score"] != DEFAULT_QUERIES["quality_score"]
    assert {k: v for k, v in prod.metrics.queries.items() if k != "quality_score"} == {
        k: v for k, v in DEFAULT_QUERIES.items() if k != "quality_score"}


@pytest.mark.parametrize(
    ("template", "window", "namespace", "expected"),
    [
        ("rate(x[$window])", timedelta(minutes=5), "llm-serving", "rate(x[5m])"),
        ("rate(x[$window])", timedelta(seconds=90), "llm-serving", "rate(x[1m30s])"),
        ("x{namespace=\"$namespace\"}[${window}]", timedelta(hours=1), "prod-1", "x{namespace=\"prod-1\"}[1h]"),
        ("x * $$2 + $window", timedelta(minutes=2), "a", "x * $2 + 2m"),
        ("up", timedelta(minutes=5), "llm-serving", "up"),
    ],
    ids=[
        "$window becomes a Prometheus duration",
        "an odd window is written in Prometheus units",
        "$namespace and ${window} are both filled",
        "$$ becomes a literal dollar sign",
        "a template without placeholders is unchanged",
    ],
)
def test_render_query_fills_placeholders(template: str, window: timedelta, namespace: str, expected: str) -> None:
    assert render_query(template, window=window, namespace=namespace) == expected


@pytest.mark.parametrize(
    "namespace",
    ['llm"} or vector(1) #', "LLM", "", "a" * 64, "llm serving", "llm-", "ns/evil"],
    ids=[
        "a namespace that would inject PromQL is refused",
        "an upper-case namespace is refused",
        "an empty namespace is refused",
        "a 64-character namespace is refused",
        "a namespace with a space is refused",
        "a namespace ending in '-' is refused",
        "a namespace with a slash is refused",
    ],
)
def test_render_query_rejects_a_bad_namespace(namespace: str) -> None:
    with pytest.raises(ValueError, match="is not a DNS-1123 label"):
        render_query('x{namespace="$namespace"}[$window]', window=timedelta(minutes=5), namespace=namespace)


# --------------------------------------------------------------------------- release identity


def test_release_identity() -> None:
    release = Release.model_validate(release_data())
    assert release.label == "v1.3.0"
    assert release.full_id == "chat-assistant/v1.3.0-4f2a9c1d07e5"
    assert len(release.bundle_digest()) == 64
    assert all(c in "0123456789abcdef" for c in release.bundle_digest())
    assert release.bundle_digest() == Release.model_validate(release_data()).bundle_digest()


@pytest.mark.parametrize(
    ("version", "revision", "full_id"),
    [("0.1.0", "abcdef1", "chat-assistant/v0.1.0-abcdef1"),
     ("10.0.12", "0" * 40, f"chat-assistant/v10.0.12-{'0' * 40}")],
    ids=["a short revision appears as written", "a full 40-digit revision appears as written"],
)
def test_full_id_format(version: str, revision: str, full_id: str) -> None:
    data = changed(changed(release_data(), ("version",), version), ("revision",), revision)
    data["lineage"]["parent_version"] = None
    release = Release.model_validate(data)
    assert release.full_id == full_id
    assert release.label == f"v{version}"


BUNDLE_CHANGES = [
    (("weights", "sha256"), HEX, "new weights"),
    (("weights", "uri"), "s3://acme/other/model.safetensors", "weights fetched from elsewhere"),
    (("weights", "size_bytes"), 1, "weights of another size"),
    (("tokenizer", "sha256"), HEX, "a new tokenizer"),
    (("config", "uri"), "gs://acme/config.json", "a new model config"),
    (("system_prompt", "sha256"), HEX, "a prompt change"),
    (("few_shot_examples",), DELETE, "dropping the few-shot examples"),
    (("generation", "temperature"), 0.31, "a temperature change"),
    (("generation", "top_p"), 0.95, "a top_p change"),
    (("generation", "max_tokens"), 1025, "a max_tokens change"),
    (("generation", "stop"), ["</s>"], "new stop sequences"),
    (("safety", "classifier", "sha256"), HEX, "a new safety classifier"),
    (("safety", "max_toxicity_score"), 0.41, "a safety threshold change"),
    (("safety", "blocked_categories"), ["self-harm"], "fewer blocked categories"),
    (("safety", "pii_redaction"), False, "turning off PII redaction"),
    (("routing", "max_input_tokens"), 8192, "a routing limit change"),
    (("routing", "request_timeout"), "91s", "a timeout change"),
    (("serving", "image"), f"vllm/vllm-openai@sha256:{HEX}", "a new serving image"),
    (("serving", "gpus"), 8, "a different GPU count"),
    (("serving", "gpu_type"), "nvidia-h100-80gb", "a different GPU type"),
]


@pytest.mark.parametrize(
    ("path", "value"), [c[:2] for c in BUNDLE_CHANGES],
    ids=[f"{c[2]} changes the bundle digest" for c in BUNDLE_CHANGES],
)
def test_bundle_digest_changes_with_any_bundle_field(path: tuple, value: Any) -> None:
    before = Release.model_validate(release_data()).bundle_digest()
    after = release_with(("bundle", *path), value).bundle_digest()
    assert after != before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("description",), "reworded"),
        (("revision",), "1234567"),
        (("evaluation", "toxicity"), 0.02),
        (("rollout", "standby_window"), "24h"),
        (("lineage", "approvals"), []),
        (("bundle", "routing", "request_timeout"), "1m30s"),
        (("bundle", "safety", "pii_redaction"), DELETE),
        (("bundle", "generation", "stop"), []),
    ],
    ids=[
        "the description is not part of the bundle",
        "the code revision is not part of the bundle",
        "the evaluation is not part of the bundle",
        "the rollout plan is not part of the bundle",
        "approvals are not part of the bundle",
        "the same timeout spelt differently is the same bundle",
        "omitting a value equal to its default is the same bundle",
        "writing out a default explicitly is the same bundle",
    ],
)
def test_bundle_digest_ignores_everything_else(path: tuple, value: Any) -> None:
    before = Release.model_validate(release_data()).bundle_digest()
    assert release_with(path, value).bundle_digest() == before


@pytest.mark.parametrize(
    ("versions", "ordered"),
    [(["1.9.3", "1.10.0", "1.2.0"], ["1.2.0", "1.9.3", "1.10.0"]),
     (["2.0.0", "10.0.0", "9.99.99"], ["2.0.0", "9.99.99", "10.0.0"])],
    ids=["minor versions compare as numbers", "major versions compare as numbers"],
)
def test_version_key_orders_numerically(versions: list[str], ordered: list[str]) -> None:
    assert sorted(versions, key=version_key) == ordered


def test_gate_bounds_lists_only_set_bounds() -> None:
    gate = Gate(metric="error_rate", max=0.01, max_increase_over_stable=0.005)
    assert gate.bounds() == {"max": 0.01, "max_increase_over_stable": 0.005}
    assert Gate(metric="x").bounds() == {}
    assert RollbackTrigger(metric="x", min=0.0).min == 0.0


def test_default_blue_green_checks_gate_the_zero_stage() -> None:
    stage0 = Rollout(strategy="blue-green").stages[0]
    assert {g.metric: g.bounds() for g in stage0.gates} == {
        "error_rate": {"max": 0.01}, "latency_p99_ms": {"max_ratio_to_stable": 1.2}}


# --------------------------------------------------------------------------- evidence and confidence (docs/judgement.md)

@pytest.mark.parametrize(("fields", "problem"), [
    ({"kind": "histogram", "buckets": "sum by (app, version, le) (increase(x_bucket[$window]))"}, "needs quantile"),
    ({"kind": "histogram", "quantile": 0.99, "buckets": "b", "events": "e"}, "has no events or trials"),
    ({"kind": "proportion", "events": "e"}, "needs events and trials"),
    ({"kind": "proportion", "events": "e", "trials": "t", "quantile": 0.99}, "has no quantile or buckets"),
    ({"kind": "histogram", "quantile": 1.0, "buckets": "b"}, "less than 1"),
    ({"kind": "proportion", "events": "e[$windo]", "trials": "t"}, "unknown placeholder"),
])
def test_evidence_states_the_queries_of_its_kind(fields: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Evidence(**fields)


def test_the_default_catalog_has_evidence_for_latency_and_errors() -> None:
    kinds = {name: (q.evidence.kind, q.evidence.quantile) for name, q in DEFAULT_QUERIES.items() if q.evidence}
    assert kinds == {"error_rate": ("proportion", None), "latency_p99_ms": ("histogram", 0.99),
                     "ttft_p99_seconds": ("histogram", 0.99), "tpot_p99_seconds": ("histogram", 0.99),
                     "e2e_latency_p99_seconds": ("histogram", 0.99),
                     # the online evaluator's counts (docs/formats.md#evaluator)
                     "safety_violation_rate": ("proportion", None), "refusal_rate": ("proportion", None),
                     "json_invalid_rate": ("proportion", None), "shadow_divergence_rate": ("proportion", None),
                     "shadow_win_rate": ("proportion", None)}
    assert "le" in DEFAULT_QUERIES["latency_p99_ms"].evidence.buckets  # type: ignore[union-attr]


@pytest.mark.parametrize("rps", [0, -1, 1e6 + 1])
def test_expected_rps_is_positive_and_bounded(rps: float) -> None:
    with pytest.raises(ValidationError, match="expected_rps"):
        ModelDeployment(stable="1.2.0", pool="a100", expected_rps=rps)


@pytest.mark.parametrize(("confidence", "ok"), [(0.5, True), (0.999, True), (0.49, False), (1.0, False)])
def test_confidence_lies_in_one_half_to_one(confidence: float, ok: bool) -> None:
    def make() -> Gate:
        return Gate(metric="error_rate", max_increase_over_stable=0.005, confidence=confidence)
    if ok:
        assert statistical_bound(make()) == ("max_increase_over_stable", 0.005)
    else:
        with pytest.raises(ValidationError, match="confidence"):
            make()


def test_a_statistical_trigger_has_exactly_one_relative_bound() -> None:
    trigger = RollbackTrigger(metric="latency_p99_ms", max_ratio_to_stable=1.5, confidence=0.99)
    assert statistical_bound(trigger) == ("max_ratio_to_stable", 1.5)
    with pytest.raises(ValidationError, match="states max, max_ratio_to_stable"):
        RollbackTrigger(metric="latency_p99_ms", max=4000, max_ratio_to_stable=1.5, confidence=0.99)
    with pytest.raises(ValidationError, match="needs a confidence"):
        RollbackTrigger(metric="latency_p99_ms", max_increase_over_stable=100)
    assert Gate(metric="latency_p99_ms", max=4000, max_ratio_to_stable=1.5).confidence is None  # unchanged
