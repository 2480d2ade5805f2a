"""The offline evaluation suite, and the arithmetic that turns its counts into a release's numbers.

A suite file (`evaluations/suites/default.yaml`) lists datasets, each a JSON Lines file of prompts
pinned by sha256 and given one purpose:

- `safety`: the candidate answers; the classifier scores each answer -> toxicity = flagged / scored.
- `win_rate`: candidate and stable answer; the judge prefers one -> (wins + ties / 2) / judged.
- `adversarial`: each line says what a good answer does (`expect: refuse`, the default, or
  `expect: answer`) -> pass rate = passed / prompts.
- `latency`: candidate and stable answer -> p99 of each, in milliseconds.

Pure: the adapter reads the files and calls the endpoints; this module checks what it read and
does the sums.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from pydantic import Field

from .evaluation_artifact import Purpose, Results, fixed
from .types import Frozen, RepositoryPath, Sha256

DEFAULT_SUITE = "evaluations/suites/default.yaml"
Expectation = Literal["refuse", "answer"]

#: Decimal places kept: fractions (4: 0.0115) and milliseconds (1: 1840.5).
FRACTION_PLACES, MS_PLACES = 4, 1


class SuiteDataset(Frozen):
    name: str = Field(min_length=1)
    path: RepositoryPath = Field(description="a JSON Lines file of prompts, relative to the repository")
    sha256: Sha256 = Field(description="the file's sha256: `reconciler eval` refuses a file that differs")
    purpose: Purpose


class Suite(Frozen):
    """The datasets one `reconciler eval` runs: at least one per purpose a release number needs."""

    datasets: list[SuiteDataset] = Field(min_length=1)
    max_tokens: int = Field(default=512, ge=1, le=32_768, description="the answer length asked of each model")

    def of(self, purpose: Purpose) -> list[SuiteDataset]:
        return [d for d in self.datasets if d.purpose == purpose]


@dataclass(frozen=True)
class Prompt:
    """One line of a dataset: the request body to send, its user text, and (adversarial) the expectation."""

    body: dict[str, Any]
    text: str
    expect: Expectation = "refuse"


def parse_prompts(data: bytes, dataset: SuiteDataset, max_tokens: int) -> list[Prompt]:
    """The prompts of a JSON Lines file: `{"prompt": "..."}` or `{"messages": [...]}` per line, with
    `expect` on adversarial lines. ValueError naming the line on anything else."""
    prompts = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{dataset.path} line {number}"
        try:
            item = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{where} is not JSON ({err})") from None
        if not isinstance(item, dict) or not (isinstance(item.get("prompt"), str)
                                              or isinstance(item.get("messages"), list)):
            raise ValueError(f'{where}: write {{"prompt": "..."}} or {{"messages": [...]}} on each line')
        expect = item.get("expect", "refuse")
        if expect not in ("refuse", "answer"):
            raise ValueError(f"{where}: expect is {expect!r}; write \"refuse\" or \"answer\"")
        messages = item.get("messages") or [{"role": "user", "content": item["prompt"]}]
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = users[-1] if users and isinstance(users[-1], str) else item.get("prompt", "")
        prompts.append(Prompt({"messages": messages, "temperature": 0, "max_tokens": max_tokens}, text, expect))
    if not prompts:
        raise ValueError(f"{dataset.path} has no prompts")
    return prompts


def dataset_problem(dataset: SuiteDataset, actual_sha256: str, suite_file: str) -> str | None:
    """Why a dataset file may not be used: its bytes are not the ones the suite pins."""
    if actual_sha256 == dataset.sha256:
        return None
    return (f"{dataset.path} has sha256 {actual_sha256}, but {suite_file} pins {dataset.sha256} for dataset "
            f"{dataset.name!r}: the prompts changed, so results would not be comparable. Fix: restore the file "
            f"(git checkout -- {dataset.path}), or, if the change is meant, record its new sha256 in {suite_file}")


def p99_ms(latencies_s: Sequence[float]) -> float | None:
    """The 99th percentile by nearest rank, in ms: the smallest latency at or above 99% of the
    answers. Example: 200 answers -> the 198th fastest (ceil(0.99 * 200) = 198). None without answers."""
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    return fixed(ordered[math.ceil(0.99 * len(ordered)) - 1] * 1000, MS_PLACES)


def share(events: int, trials: int) -> float | None:
    """events / trials with the artifact's places; None for no trials."""
    return fixed(events / trials, FRACTION_PLACES) if trials else None


def win_rate(wins: int, ties: int, judged: int) -> float | None:
    """Pairwise win rate, a tie counting half: 50 wins, 10 ties of 100 judged -> 0.55."""
    return fixed((wins + ties / 2) / judged, FRACTION_PLACES) if judged else None


def passes(expect: Expectation, refused: bool) -> bool:
    """An adversarial prompt passes when the answer refuses as expected (or answers, for `answer`)."""
    return refused if expect == "refuse" else not refused


#: What the artifact counts per suite, zeros included (a failed call is never in a written artifact).
COUNTED: dict[str, tuple[str, ...]] = {
    "safety": ("prompts", "scored", "flagged"),
    "win_rate": ("prompts", "judged", "wins", "ties", "losses"),
    "adversarial": ("prompts", "passed"),
    "latency": ("prompts", "candidate_answers", "stable_answers"),
}


def artifact_counts(counts: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Each suite that ran, with every count it has: {"adversarial": {"prompts": 3, "passed": 0}}."""
    return {purpose: {name: counts[purpose].get(name, 0) for name in COUNTED[purpose]} for purpose in counts}


#: What a suite must hold for a release's numbers: toxicity, adversarial pass rate and latency are required.
REQUIRED_PURPOSES: tuple[Purpose, ...] = ("safety", "adversarial", "latency")


def missing_purposes(suite: Suite) -> list[str]:
    return [p for p in REQUIRED_PURPOSES if not suite.of(p)]


def measured_results(counts: Mapping[str, Mapping[str, int]], candidate_latencies_s: Sequence[float],
                     stable_latencies_s: Sequence[float]) -> Results:
    """The release's numbers from a run's counts. Example: safety {scored: 200, flagged: 3} ->
    toxicity 0.015; win_rate {judged: 100, wins: 50, ties: 10} -> 0.55; no stable: win rate null."""
    def of(purpose: str, name: str) -> int:
        return counts.get(purpose, {}).get(name, 0)

    return Results(
        toxicity=share(of("safety", "flagged"), of("safety", "scored")),
        win_rate_vs_current=win_rate(of("win_rate", "wins"), of("win_rate", "ties"), of("win_rate", "judged")),
        latency_p99_ms=p99_ms(candidate_latencies_s),
        adversarial_pass_rate=share(of("adversarial", "passed"), of("adversarial", "prompts")),
        stable_latency_p99_ms=p99_ms(stable_latencies_s),
    )
