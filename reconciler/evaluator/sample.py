"""One sample, evaluated: the same request to stable and to candidate, then the verdicts.

The calls of one sample: stable and candidate at once (2 model calls); then, at once, the
classifier on each answer that came back (up to 2 calls) and the judge on the pair when both
came back (1 call). That is the whole cost of a sample (docs/evaluator.md, "Cost"). The outcome
is a value (`SampleOutcome`); the exporter turns it into counts, and the prompt and answers die
with it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from .compare import DEFAULT_DIVERGENCE_THRESHOLD, AnswerChecks, Comparison, check, compare
from .openai_api import Answer, Endpoint, complete, prompt_text
from .pairwise import Preference, judge
from .safety import SafetyVerdict, classify

@dataclass(frozen=True)
class Evaluation:
    """Who a sample is sent to and how (the collaborators of `evaluate`)."""

    client: httpx.AsyncClient
    stable: Endpoint
    candidate: Endpoint
    judge: Endpoint | None = None
    classifier: Endpoint | None = None
    expects_json: bool = False
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    timeout: float = 90.0
    retries: int = 2
    rng: random.Random = field(default_factory=random.Random)  # the judge's A/B order


@dataclass(frozen=True)
class VersionResult:
    """One version's part of a sample: its answer, what was checked on it, the classifier's verdict."""

    answer: Answer
    checks: AnswerChecks | None = None  # None when the call failed
    verdict: SafetyVerdict | None = None  # None when not classified (no classifier, failed call or verdict)


@dataclass(frozen=True)
class SampleOutcome:
    stable: VersionResult
    candidate: VersionResult
    comparison: Comparison | None  # None unless both versions answered
    preference: Preference | None  # None unless a judge gave a verdict


async def evaluate(body: Mapping[str, Any], path: str, evaluation: Evaluation) -> SampleOutcome:
    """Send `body` to both versions, then classify the answers and ask the judge, all at once."""
    ev = evaluation
    stable, candidate = await asyncio.gather(
        complete(ev.client, ev.stable, path, body, timeout=ev.timeout, retries=ev.retries),
        complete(ev.client, ev.candidate, path, body, timeout=ev.timeout, retries=ev.retries),
    )
    prompt = prompt_text(body)
    stable_verdict, candidate_verdict, preference = await asyncio.gather(
        _classified(ev, prompt, stable), _classified(ev, prompt, candidate), _judged(ev, prompt, stable, candidate))
    comparison, stable_checks, candidate_checks = None, None, None
    if stable.ok and candidate.ok:  # the comparison checks each answer: not twice
        comparison = compare(stable, candidate, ev.expects_json, divergence_threshold=ev.divergence_threshold)
        stable_checks, candidate_checks = comparison.stable, comparison.candidate
    elif stable.ok:
        stable_checks = check(stable, ev.expects_json)
    elif candidate.ok:
        candidate_checks = check(candidate, ev.expects_json)
    return SampleOutcome(
        stable=VersionResult(stable, stable_checks, stable_verdict),
        candidate=VersionResult(candidate, candidate_checks, candidate_verdict),
        comparison=comparison,
        preference=preference,
    )


async def _classified(ev: Evaluation, prompt: str, answer: Answer) -> SafetyVerdict | None:
    if ev.classifier is None or not answer.ok:
        return None
    return await classify(ev.client, ev.classifier, prompt, answer.text, timeout=ev.timeout, retries=ev.retries)


async def _judged(ev: Evaluation, prompt: str, stable: Answer, candidate: Answer) -> Preference | None:
    if ev.judge is None or not (stable.ok and candidate.ok):
        return None
    return await judge(ev.client, ev.judge, prompt, stable.text, candidate.text,
                       rng=ev.rng, timeout=ev.timeout, retries=ev.retries)

