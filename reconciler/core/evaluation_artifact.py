"""The offline evaluation as an artifact: what `reconciler eval` measured, with its provenance.

A release's `evaluation` numbers are what the pre-deployment gates read. Typed by hand they are a
claim; with `evaluation.artifact: {uri, sha256}` they are a copy of a file in the repository that
says how they were measured: the suite's datasets (each pinned by sha256), the endpoints (credentials
redacted), the evaluator's version, the per-suite counts and when it ran.

The artifact is canonical JSON (`canonical_json`: sorted keys, two-space indent, numbers rounded
by `fixed` before they are stored), so the same results always give the same bytes and sha256.
`artifact_problems` is the one check of a release against those bytes; `validate` (the
`evaluation-artifact` rule) and the policy pack (the ConfigMap the program renders) both call it.

Pure: bytes in, problems out; no file is read here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import AwareDatetime, Field, ValidationError, field_serializer

from .findings import Problem
from .release import Evaluation
from .types import Fraction, Frozen, RepositoryPath, Sha256, utc_text

FORMAT = "sluice.dev/evaluation/v1"

Purpose = Literal["safety", "win_rate", "adversarial", "latency"]

#: The release's evaluation fields an artifact fixes, in the order messages name them.
NUMBERS = ("toxicity", "win_rate_vs_current", "latency_p99_ms", "adversarial_pass_rate")

def artifact_path(model: str, version: str) -> str:
    """Where `reconciler eval` writes a release's artifact: evaluations/chat-assistant/1.3.0.json."""
    return f"evaluations/{model}/{version}.json"


def fixed(value: float | None, places: int) -> float | None:
    """A measured number as the artifact and the release file hold it: 0.0114999 -> 0.0115 (4 places).

    Rounding before storing is what makes the text canonical: JSON and YAML both write the shortest
    decimal that reads back as the same float, so "0.0115" survives every round trip."""
    return None if value is None else round(float(value), places)


class Dataset(Frozen):
    """A suite file, pinned: `reconciler eval` refuses to run a file whose sha256 differs."""

    name: str = Field(min_length=1)
    path: RepositoryPath = Field(description="the JSON Lines file, relative to the repository")
    sha256: Sha256
    purpose: Purpose
    prompts: int = Field(ge=0)


class Results(Frozen):
    """The numbers the release copies, and stable's p99 (what the latency gate compares with)."""

    toxicity: Fraction
    win_rate_vs_current: Fraction | None
    latency_p99_ms: float = Field(gt=0, le=3_600_000)
    adversarial_pass_rate: Fraction
    stable_latency_p99_ms: float | None = Field(gt=0, le=3_600_000)


class EndpointRecord(Frozen):
    url: str = Field(description="scheme, host and port only (core/urls.redact_url): paths and user:password@ may be "
                                 "credentials")
    model: str | None = None


class Evaluator(Frozen):
    sluice_version: str
    judge_model: str | None = None
    classifier_model: str | None = None


class EvaluationArtifact(Frozen):
    format: Literal["sluice.dev/evaluation/v1"] = FORMAT
    model: str
    version: str
    results: Results
    counts: dict[Purpose, dict[str, int]] = Field(
        description="per suite: prompts, and what was answered, scored, judged, passed or failed")
    datasets: list[Dataset]
    endpoints: dict[Literal["candidate", "stable", "judge", "classifier"], EndpointRecord]
    evaluator: Evaluator
    started_at: AwareDatetime
    finished_at: AwareDatetime

    @field_serializer("started_at", "finished_at")
    def _utc(self, at: AwareDatetime) -> str:
        return utc_text(at)


def canonical_json(artifact: EvaluationArtifact) -> str:
    """The artifact's one text: sorted keys, two-space indent, ASCII, a final newline."""
    return json.dumps(artifact.model_dump(mode="json"), sort_keys=True, indent=2, ensure_ascii=True,
                      allow_nan=False) + "\n"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_artifact(data: bytes) -> EvaluationArtifact:
    """The artifact in `data`; ValueError naming the first problem."""
    try:
        return EvaluationArtifact.model_validate_json(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where + ': ' if where else ''}{first['msg']}") from None


def _rerun(model: str, version: str) -> str:
    return f"run `reconciler eval {model} {version} --endpoint URL` again"


def artifact_problems(model: str, version: str, evaluation: Evaluation, data: bytes | None) -> list[Problem]:
    """What is wrong between a release's evaluation and its artifact's bytes (None: no such file).

    Paths are relative to the release document. Example: the release says toxicity 0.02, the
    artifact 0.011 -> Problem(("evaluation", "toxicity"), "evaluation.toxicity is 0.02, but ... 0.011", ...).
    """
    ref = evaluation.artifact
    if ref is None:
        return []
    uri = ("evaluation", "artifact", "uri")
    if data is None:
        return [Problem(uri, f"the evaluation artifact {ref.uri} is not in the repository",
                        f"commit the file `reconciler eval` wrote, or {_rerun(model, version)}")]
    problems = []
    actual = sha256_of(data)
    if actual != ref.sha256:
        problems.append(Problem(("evaluation", "artifact", "sha256"),
                                f"{ref.uri} has sha256 {actual[:12]}…, but the release records {ref.sha256[:12]}…: "
                                "the artifact changed after the release recorded it",
                                f"{_rerun(model, version)} (it writes both), or restore the artifact from git"))
    try:
        artifact = parse_artifact(data)
    except ValueError as err:
        return problems + [Problem(uri, f"{ref.uri} is not an evaluation artifact ({err})", _rerun(model, version))]
    if (artifact.model, artifact.version) != (model, version):
        return problems + [Problem(uri, f"{ref.uri} is the evaluation of {artifact.model} {artifact.version}, "
                                        f"not of {model} {version}",
                                   f"point evaluation.artifact at {artifact_path(model, version)}, or "
                                   f"{_rerun(model, version)}")]
    for name in NUMBERS:
        released, measured = getattr(evaluation, name), getattr(artifact.results, name)
        if released != measured:
            problems.append(Problem(("evaluation", name),
                                    f"evaluation.{name} is {_shown(released)}, but the artifact {ref.uri} measured "
                                    f"{_shown(measured)}",
                                    f"copy the artifact's number ({name}: {_shown(measured)}), or "
                                    f"{_rerun(model, version)}"))
    return problems


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value:g}"
