"""Rules about a release's offline evaluation: its numbers are those of the artifact it names."""

from __future__ import annotations

from typing import Iterator

from ..evaluation_artifact import artifact_problems
from ..findings import Finding, Problem, findings_from
from ..policy.secrets import FIX as SECRET_FIX
from ..policy.secrets import masked, secret_findings
from ..repository import Repository
from . import rule


@rule("evaluation-artifact")
def evaluation_artifact(repo: Repository) -> Iterator[Finding]:
    """A release with `evaluation.artifact` matches the artifact's sha256, model, version and numbers,
    and the artifact holds nothing the pack's `configmap-secrets` would block (the program copies it
    into the release ConfigMap).

    A release without an artifact is not reported: its numbers were typed by hand, as before
    artifacts existed (docs/evaluation.md says why this is no warning). An artifact the loader
    refused (a link out of the repository ...) already has its own finding."""
    for entry in repo.releases:
        release = entry.release
        ref = release.evaluation.artifact
        if ref is None or ref.uri in repo.broken_files:
            continue
        data = repo.evaluation_artifacts.get(ref.uri)
        problems = artifact_problems(release.model, release.version, release.evaluation, data)
        if data is not None:
            problems += [Problem(("evaluation", "artifact", "uri"), f"{ref.uri} line {line} holds what looks like "
                                 f"{kind} ({masked(match)}); the program would copy it into the release ConfigMap",
                                 f"remove it and record the sha256 again: {SECRET_FIX}")
                         for kind, line, match in secret_findings(data.decode("utf-8", "replace"))]
        yield from findings_from("evaluation-artifact", entry.file, (), problems)
