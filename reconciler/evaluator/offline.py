"""`reconciler eval`'s calls: the suite's prompts sent to the candidate (and stable, the judge and the
classifier) through the evaluator's own client, at most `concurrency` calls at a time.

Only counts and latencies come back (no prompt or answer text is kept): the arithmetic that makes
them a release's numbers is core/evaluation_suite.py. A failed call is counted in its suite's
`errors`, never raised, and the first error's text (which holds no prompt) is kept to tell people.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Mapping, Sequence

import httpx

from ..core.evaluation_suite import Prompt, passes
from .compare import is_refusal
from .openai_api import CHAT, Answer, Endpoint, complete
from .pairwise import judge
from .safety import classify


@dataclass(frozen=True)
class Endpoints:
    candidate: Endpoint
    stable: Endpoint | None = None
    judge: Endpoint | None = None
    classifier: Endpoint | None = None


@dataclass
class SuiteOutcome:
    """Per purpose, what was counted; the latencies of the latency suite; the first error seen."""

    counts: dict[str, Counter] = field(default_factory=dict)
    candidate_latencies_s: list[float] = field(default_factory=list)
    stable_latencies_s: list[float] = field(default_factory=list)
    first_error: str | None = None

    def count(self, purpose: str, *names: str) -> None:
        counter = self.counts.setdefault(purpose, Counter())
        for name in names:
            counter[name] += 1

    def failed(self, purpose: str, error: str | None) -> None:
        self.count(purpose, "errors")
        self.first_error = self.first_error or error

    @property
    def errors(self) -> int:
        return sum(c["errors"] for c in self.counts.values())


class _Calls:
    def __init__(self, client: httpx.AsyncClient, endpoints: Endpoints, outcome: SuiteOutcome, *,
                 concurrency: int, timeout: float, retries: int, seed: str) -> None:
        self.client, self.endpoints, self.outcome, self.seed = client, endpoints, outcome, seed
        self.gate = asyncio.Semaphore(concurrency)
        self.options = {"timeout": timeout, "retries": retries}

    async def _bounded(self, call: Awaitable):
        async with self.gate:
            return await call

    async def answer(self, endpoint: Endpoint, prompt: Prompt) -> Answer:
        return await self._bounded(complete(self.client, endpoint, CHAT, prompt.body, **self.options))

    async def safety(self, prompt: Prompt) -> None:
        answer = await self.answer(self.endpoints.candidate, prompt)
        if not answer.ok:
            return self.outcome.failed("safety", answer.error)
        verdict = await self._bounded(classify(self.client, self.endpoints.classifier, prompt.text, answer.text,
                                               **self.options))
        if verdict is None:
            return self.outcome.failed("safety", "the classifier failed or answered neither `safe` nor `unsafe`")
        self.outcome.count("safety", "scored", *(["flagged"] if verdict.unsafe else []))

    async def win_rate(self, index: int, prompt: Prompt) -> None:
        candidate, stable = await asyncio.gather(self.answer(self.endpoints.candidate, prompt),
                                                 self.answer(self.endpoints.stable, prompt))
        if not (candidate.ok and stable.ok):
            return self.outcome.failed("win_rate", candidate.error or stable.error)
        rng = random.Random(f"{self.seed}:{index}")  # the A/B order per prompt, the same on every run
        preference = await self._bounded(judge(self.client, self.endpoints.judge, prompt.text, stable.text,
                                               candidate.text, rng=rng, **self.options))
        if preference is None:
            return self.outcome.failed("win_rate", "the judge failed or gave no [[A]]/[[B]]/[[C]] verdict")
        self.outcome.count("win_rate", "judged", {"candidate": "wins", "stable": "losses", "tie": "ties"}[preference])

    async def adversarial(self, prompt: Prompt) -> None:
        answer = await self.answer(self.endpoints.candidate, prompt)
        if not answer.ok:
            return self.outcome.failed("adversarial", answer.error)
        self.outcome.count("adversarial", *(["passed"] if passes(prompt.expect, is_refusal(answer.text)) else []))

    async def latency(self, prompt: Prompt) -> None:
        versions = [("candidate", self.endpoints.candidate, self.outcome.candidate_latencies_s),
                    ("stable", self.endpoints.stable, self.outcome.stable_latencies_s)]
        for name, endpoint, latencies in versions:  # one after the other: neither waits in the other's queue
            if endpoint is None:
                continue
            answer = await self.answer(endpoint, prompt)
            if not answer.ok:
                return self.outcome.failed("latency", answer.error)
            latencies.append(answer.latency_s)
            self.outcome.count("latency", f"{name}_answers")


async def run_suite(prompts: Mapping[str, Sequence[Prompt]], endpoints: Endpoints, *, concurrency: int,
                    timeout: float, retries: int, seed: str) -> SuiteOutcome:
    """Every prompt of every purpose, at most `concurrency` calls in flight; `seed` fixes the judge's A/B orders."""
    outcome = SuiteOutcome()
    async with httpx.AsyncClient() as client:
        calls = _Calls(client, endpoints, outcome, concurrency=concurrency, timeout=timeout, retries=retries,
                       seed=seed)
        tasks = []
        for purpose, items in prompts.items():
            for index, prompt in enumerate(items):
                outcome.count(purpose, "prompts")
                if purpose == "win_rate":
                    tasks.append(calls.win_rate(index, prompt))
                else:
                    tasks.append(getattr(calls, purpose)(prompt))
        await asyncio.gather(*tasks)
    return outcome
