"""Evaluation artifacts for tests: one built like `reconciler eval` builds it, and a way to attach it
to a release of a copied example repository."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler.core.evaluation_artifact import (EvaluationArtifact, artifact_path, canonical_json, sha256_of)
from tests.conftest import mutate_yaml

#: chat-assistant 1.3.0's numbers as the example release types them.
NUMBERS_1_3_0 = {"toxicity": 0.011, "win_rate_vs_current": 0.57, "latency_p99_ms": 1840,
                 "adversarial_pass_rate": 1.0}


def sample_artifact(model: str = "chat-assistant", version: str = "1.3.0", **numbers: Any) -> EvaluationArtifact:
    results = {**NUMBERS_1_3_0, "stable_latency_p99_ms": 1790.0, **numbers}
    return EvaluationArtifact.model_validate({
        "model": model, "version": version, "results": results,
        "counts": {"safety": {"prompts": 1000, "scored": 1000, "flagged": 11, "errors": 0}},
        "datasets": [{"name": "safety-v3", "path": "evaluations/suites/safety.jsonl", "sha256": "ab" * 32,
                      "purpose": "safety", "prompts": 1000}],
        "endpoints": {"candidate": {"url": "http://127.0.0.1:8000/…", "model": "candidate"}},
        "evaluator": {"sluice_version": "0.1.0", "judge_model": None, "classifier_model": None},
        "started_at": datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc),
        "finished_at": datetime(2026, 11, 12, 9, 42, tzinfo=timezone.utc),
    })


def attach_artifact(root: Path, release_file: str, artifact: EvaluationArtifact, *, uri: str | None = None,
                    sha256: str | None = None) -> str:
    """Write `artifact` into the repository and point the release at it (its true sha256 unless
    `sha256` says otherwise); returns the artifact's path."""
    rel = uri or artifact_path(artifact.model, artifact.version)
    data = canonical_json(artifact).encode()
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)

    def point(doc: Any) -> None:
        doc["evaluation"]["artifact"] = {"uri": rel, "sha256": sha256 or sha256_of(data)}

    mutate_yaml(root / release_file, point)
    return rel
