"""The files of an offline evaluation: the suite and its datasets (read and checked against their
pins), the release file (its `evaluation` set from the artifact, comments and order kept) and the
artifact (written beside the release, `evaluations/<model>/<version>.json`).

Nothing is written until everything is known: the artifact's text and the release's new text are
both built first, then written, each atomically (a temporary file renamed over the old one).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml.comments import CommentedMap

from ..core.evaluation_artifact import NUMBERS, Dataset, sha256_of
from ..core.evaluation_suite import Prompt, Suite, dataset_problem, parse_prompts
from ..core.findings import finding_line
from ..core.release import EvaluationArtifactRef
from ..core.schema_errors import schema_findings
from .environment_writer import drop_eol_comment, round_trip_yaml, write_atomically
from .files import NotARegularFile, open_regular_file
from .yaml_source import MAX_FILE_BYTES, locate, parse_yaml


class EvaluationRefused(ValueError):
    """The suite, a dataset or the release cannot be used as they are; nothing was written."""


@dataclass(frozen=True)
class SuiteFiles:
    suite: Suite
    prompts: dict[str, list[Prompt]]  # purpose -> prompts, in dataset order
    datasets: list[Dataset]  # what the artifact records


def _inside(root: Path, rel: str) -> Path:
    """`root/rel`, refused when a link on the way leads out of the repository."""
    path = root / rel
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(Path(os.path.realpath(root))):
        raise EvaluationRefused(f"{rel} is {real}, outside the repository; fix: keep the suite and its datasets in "
                                "the repository (copy the file in place of a symbolic link)")
    return path


def _read(root: Path, rel: str, what: str) -> bytes:
    try:
        with open(_inside(root, rel), "rb", opener=open_regular_file) as handle:
            return handle.read()
    except FileNotFoundError:
        raise EvaluationRefused(f"{rel}: no such {what} in {root}") from None
    except NotARegularFile as err:
        raise EvaluationRefused(f"{rel} is {err.kind}, not a regular file") from None


def load_suite(root: Path, rel: str, samples: int | None) -> SuiteFiles:
    """The suite at `rel` and its datasets' prompts (the first `samples` of each, when given);
    EvaluationRefused naming the file, line and fix for a bad suite or a dataset whose bytes
    differ from its pin."""
    raw = _read(root, rel, "suite file")
    if len(raw) > MAX_FILE_BYTES:
        raise EvaluationRefused(f"{rel} is over the {MAX_FILE_BYTES:,}-byte limit of a suite file")
    parsed = parse_yaml(raw)
    if parsed.errors or not isinstance(parsed.data, dict):
        first = parsed.errors[0] if parsed.errors else None
        where = f"{rel}:{first.line}" if first and first.line else rel
        raise EvaluationRefused(f"{where}: {first.message if first else 'not a mapping'}; fix: "
                                f"{first.fix if first else 'write `datasets:` with name, path, sha256, purpose'}")
    try:
        suite = Suite.model_validate(parsed.data)
    except ValidationError as err:
        lines = []
        for finding in schema_findings(rel, Suite, parsed.data, err):
            line, column, _ = locate(parsed.root, finding.path)
            lines.append(finding_line(finding.located(line, column)))
        raise EvaluationRefused("\n".join(lines)) from None
    prompts: dict[str, list[Prompt]] = {}
    records = []
    for index, dataset in enumerate(suite.datasets):
        data = _read(root, dataset.path, f"dataset (datasets[{index}] of {rel})")
        problem = dataset_problem(dataset, sha256_of(data), rel)
        if problem:
            line, _, _ = locate(parsed.root, ("datasets", index, "sha256"))
            raise EvaluationRefused(f"{rel}:{line}: datasets[{index}].sha256: {problem}")
        try:
            items = parse_prompts(data, dataset, suite.max_tokens)
        except ValueError as err:
            raise EvaluationRefused(str(err)) from None
        items = items[:samples] if samples else items
        prompts.setdefault(dataset.purpose, []).extend(items)
        records.append(Dataset(name=dataset.name, path=dataset.path, sha256=dataset.sha256, purpose=dataset.purpose,
                               prompts=len(items)))
    return SuiteFiles(suite, prompts, records)


def release_with_evaluation(text: str, numbers: dict[str, Any], artifact: EvaluationArtifactRef) -> str:
    """The release file's text with `evaluation`'s numbers and `evaluation.artifact` set: every other
    line as it was (a ruamel round trip), a TODO comment on a number it fills dropped."""
    yaml = round_trip_yaml(text)
    doc = yaml.load(text)
    if not isinstance(doc, CommentedMap):
        raise EvaluationRefused("the release file is not a mapping")
    evaluation = doc.get("evaluation")
    if not isinstance(evaluation, CommentedMap):
        evaluation = doc["evaluation"] = CommentedMap()
    for name in NUMBERS:
        if name in evaluation:
            drop_eol_comment(evaluation, name)
        evaluation[name] = numbers[name]
    reference = evaluation.get("artifact")
    if not isinstance(reference, CommentedMap):  # new: after the numbers, before benchmarks and the blank line
        reference = CommentedMap()
        after = [i for i, key in enumerate(evaluation) if key in NUMBERS]
        evaluation.insert(after[-1] + 1 if after else len(evaluation), "artifact", reference)
    for key in ("uri", "sha256"):  # in place: the lines after the mapping stay where they were
        if key in reference:
            drop_eol_comment(reference, key)
        reference[key] = getattr(artifact, key)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def write_evaluation(root: Path, artifact_rel: str, artifact_text: str, release_rel: str, release_text: str) -> None:
    """The artifact first, then the release that names it, each atomically: a crash between the two
    leaves the release as it was (validate then says its sha256 no longer matches: run eval again),
    never a half-written file."""
    target = _inside(root, artifact_rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, artifact_text)
    write_atomically(_inside(root, release_rel), release_text)
