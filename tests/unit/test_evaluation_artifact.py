"""The evaluation artifact: its canonical text, the one check of a release against its bytes, and
how the loader reads the file a release names (inside the repository only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.adapters.repo_loader import load_repository
from reconciler.core.evaluation_artifact import (artifact_problems, canonical_json, fixed, parse_artifact,
                                                 sha256_of)
from reconciler.core.release import Evaluation
from tests.conftest import mutate_yaml
from tests.evaluation_kit import NUMBERS_1_3_0, attach_artifact, sample_artifact

R13 = "releases/chat-assistant/1.3.0.yaml"


def _evaluation(data: bytes, **numbers: float) -> Evaluation:
    return Evaluation.model_validate({**NUMBERS_1_3_0, **numbers, "artifact": {
        "uri": "evaluations/chat-assistant/1.3.0.json", "sha256": sha256_of(data)}})


def test_the_canonical_text_reads_back_to_the_same_bytes() -> None:
    text = canonical_json(sample_artifact())
    assert canonical_json(parse_artifact(text.encode())) == text
    assert json.loads(text)["started_at"] == "2026-11-12T09:00:00Z"
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert text.endswith("}\n") and text.isascii()


def test_fixed_numbers_survive_json_and_yaml() -> None:
    assert fixed(11 / 1000 + 1e-12, 4) == 0.011
    assert fixed(None, 4) is None
    assert canonical_json(sample_artifact(toxicity=fixed(0.0114999, 4))).count('"toxicity": 0.0115') == 1


def test_a_release_that_copies_its_artifact_has_no_problems() -> None:
    data = canonical_json(sample_artifact()).encode()
    assert artifact_problems("chat-assistant", "1.3.0", _evaluation(data), data) == []


def test_every_number_that_differs_is_named_with_both_values() -> None:
    data = canonical_json(sample_artifact()).encode()
    problems = artifact_problems("chat-assistant", "1.3.0", _evaluation(data, win_rate_vs_current=0.61,
                                                                       latency_p99_ms=1500), data)
    assert [(p.path, p.message) for p in problems] == [
        (("evaluation", "win_rate_vs_current"), "evaluation.win_rate_vs_current is 0.61, but the artifact "
         "evaluations/chat-assistant/1.3.0.json measured 0.57"),
        (("evaluation", "latency_p99_ms"), "evaluation.latency_p99_ms is 1500, but the artifact "
         "evaluations/chat-assistant/1.3.0.json measured 1840")]
    assert problems[0].fix == ("copy the artifact's number (win_rate_vs_current: 0.57), or run `reconciler eval "
                               "chat-assistant 1.3.0 --endpoint URL` again")


def test_bytes_that_are_not_an_artifact_say_so() -> None:
    data = b'{"format": "sluice.dev/evaluation/v1"}\n'
    [problem] = artifact_problems("chat-assistant", "1.3.0", _evaluation(data), data)
    assert problem.path == ("evaluation", "artifact", "uri")
    assert problem.message.startswith("evaluations/chat-assistant/1.3.0.json is not an evaluation artifact (model:")


def test_a_release_without_an_artifact_is_not_checked() -> None:
    assert artifact_problems("chat-assistant", "1.3.0", Evaluation.model_validate(NUMBERS_1_3_0), None) == []


@pytest.mark.parametrize("uri, says", [
    ("/etc/chat-assistant.json", "is an absolute path"),
    ("evaluations/../../secrets.json", "leaves the repository (`..`)"),
    ("evaluations/chat-assistant/1.3.0.yaml", "is not a relative path of plain names ending in .json"),
])
def test_an_artifact_path_outside_the_repository_is_a_schema_error(example_repo: Path, uri: str, says: str) -> None:
    mutate_yaml(example_repo / R13, lambda doc: doc["evaluation"].update(artifact={"uri": uri, "sha256": "a" * 64}))
    [finding] = [f for f in load_repository(example_repo).findings if f.file == R13]
    assert (finding.rule, finding.yaml_path) == ("schema", "evaluation.artifact.uri")
    assert says in finding.message and finding.line is not None


def test_an_artifact_linked_from_outside_is_not_read(example_repo: Path, tmp_path: Path) -> None:
    rel = attach_artifact(example_repo, R13, sample_artifact())
    outside = tmp_path / "outside.json"
    (example_repo / rel).rename(outside)
    os.symlink(outside, example_repo / rel)
    findings = load_repository(example_repo).findings
    assert [(f.file, f.rule, f.message) for f in findings] == [
        (rel, "file-link", f"a symbolic link to {outside}, outside the repository: it is not read")]


def test_an_artifact_behind_a_folder_link_that_leaves_the_repository_is_not_read(example_repo: Path,
                                                                                 tmp_path: Path) -> None:
    rel = attach_artifact(example_repo, R13, sample_artifact())
    (example_repo / "evaluations").rename(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", example_repo / "evaluations")
    findings = load_repository(example_repo).findings
    assert [(f.file, f.rule) for f in findings] == [(rel, "file-link")]
    assert "goes through a symbolic link" in findings[0].message


def test_an_artifact_linked_inside_the_repository_is_read(example_repo: Path) -> None:
    rel = attach_artifact(example_repo, R13, sample_artifact())
    (example_repo / rel).rename(example_repo / "evaluations" / "kept.json")
    os.symlink("../kept.json", example_repo / rel)
    result = load_repository(example_repo)
    assert result.findings == []
    assert result.repository.evaluation_artifacts[rel] == canonical_json(sample_artifact()).encode()
