"""Which rollouts a person has reverted, read from the environment file's git history.

The newest commit about a model decides: one of the reconciler's own (it carries
`Sluice-Model`, as do `reconciler start`, `rollback` and `resume`) means nothing is pending; a
`git revert` of one of them means a person undid that move, and the pass must not simply redo it
(`core.decide.respect_revert`). A revert of a revert puts the reconciler's commit back, so the
chain's parity decides. Commits without trailers (a person's own edits) say nothing about which
model they meant and are skipped.

History is read newest first in growing pages until every model in question is settled, so a
pass on a long history reads only the recent part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..core.decide import Revert
from .git import Commit, GitError, GitRepository

FIRST_PAGE = 256


def reverted_rollouts(git: GitRepository, env_path: Path, models: Iterable[str]) -> dict[str, Revert]:
    """{model: the revert holding it} for the `models` whose newest word is a person's revert."""
    wanted = set(models)
    if not wanted:
        return {}
    count = FIRST_PAGE
    while True:
        try:
            commits = git.log(env_path, max_count=count)
        except GitError:
            return {}  # not a git checkout (a dry run on a plain directory): nobody reverted anything
        held, settled = _read(git, commits, wanted)
        if settled >= wanted or len(commits) < count:
            return held
        count *= 4


def _read(git: GitRepository, commits: list[Commit], wanted: set[str]) -> tuple[dict[str, Revert], set[str]]:
    by_sha = {c.sha: c for c in commits}
    held: dict[str, Revert] = {}
    settled: set[str] = set()
    for commit in commits:  # newest first
        model = _model(commit.trailers)
        if model is not None:
            settled.add(model)
            continue
        undone, depth = commit.reverts, 1
        while undone is not None and undone in by_sha and by_sha[undone].reverts is not None:
            undone, depth = by_sha[undone].reverts, depth + 1
        if undone is None:
            continue
        trailers = by_sha[undone].trailers if undone in by_sha else _trailers(git, undone)
        model = _model(trailers)
        if model is None or model in settled or model not in wanted:
            continue
        settled.add(model)
        if depth % 2:
            held[model] = Revert(commit.sha, undone, (trailers.get("Sluice-Action") or ["change"])[0], commit.date)
    return held, settled


def _model(trailers) -> str | None:
    values = trailers.get("Sluice-Model")
    return values[0] if values else None


def _trailers(git: GitRepository, sha: str):
    try:
        return git.trailers(sha)
    except GitError:
        return {}
