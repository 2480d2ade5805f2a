"""Rules about evidence: whether a candidate's statistical gates can be established in time."""

from __future__ import annotations

from typing import Iterator

from ..evidence_plan import rollout_plan
from ..findings import Finding, Severity
from ..repository import Repository
from ..types import format_duration
from . import rule


_SAMPLED_FIX = " (the evaluator's samples: a larger evaluator.sample_percent, up to the stage's weight)"


@rule("evidence-in-time")
def evidence_in_time(repo: Repository) -> Iterator[Finding]:
    """A stage whose statistical gates need more candidate requests than the model's declared
    traffic brings before the stage's progress deadline would only ever end at the deadline
    (held and paged, or rolled back): warn at validate time, where the schedule can still change.
    Only where the environment declares `expected_rps`: without it nothing is known of the traffic.
    A gate on the online evaluator's counts is planned at its sample rate (core/evidence_plan.py).
    """
    for name, env in sorted(repo.environments.items()):
        for model, dep in sorted(env.models.items()):
            release = repo.release(model, dep.candidate) if dep.candidate else None
            if release is None or dep.expected_rps is None:
                continue
            file = repo.release_file(model, release.version)
            for stage in rollout_plan(release, env.metrics.queries, dep.expected_rps, evaluator=env.evaluator):
                for gate in stage.late:
                    yield Finding(
                        Severity.WARNING, "evidence-in-time", file,
                        ("rollout", "stages", stage.stage, "gates", gate.gate),
                        _message(name, model, release.version, stage.stage, stage.weight, stage.deadline, gate),
                        f"give stage {stage.stage} a longer progress_deadline"
                        f"{'' if gate.duration is None else f' (at least {gate.time_text})'}, "
                        f"more traffic{_SAMPLED_FIX if gate.sampled else ''}, or a looser effect or confidence; "
                        f"if the model serves more than "
                        f"{dep.expected_rps:g} req/s, raise models.{model}.expected_rps in "
                        f"{repo.environment_files[name]}")


def _message(environment: str, model: str, version: str, index: int, weight: int, deadline, gate) -> str:
    head = (f"{environment}: {model} {version} stage {index} ({weight}%) gate {gate.metric} "
            f"{gate.bound} {gate.limit:g} at {gate.confidence:.0%}")
    if gate.requests is None:
        return f"{head} cannot be established at {weight}% of traffic, however long the stage runs"
    return (f"{head} needs {gate.requests:,} {gate.unit}: {gate.time_text} at the declared "
            f"{gate.rate_text}, longer than the stage's progress deadline {format_duration(deadline)}")
