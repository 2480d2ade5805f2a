"""Comparing two answers to the same prompt: pure functions, no I/O, no clock.

What each number means (docs/evaluator.md has the series built from them):
- exact match: the texts are identical;
- normalised match: identical after `normalise` (Unicode NFKC, case folded, punctuation dropped,
  whitespace collapsed): "Paris." and "paris" match, "Paris" and "Lyon" do not;
- similarity: rapidfuzz's normalised Indel similarity of the normalised texts, in [0, 1]:
  similarity("the cat sat", "the cat sat down") = 1 - 5/27 ≈ 0.81 (5 insertions over 27
  characters in all); two empty answers are identical (1.0);
- length ratio: len(candidate) / len(stable) in characters, stable's length floored at 1, so a
  candidate twice as long reads 2.0 and an empty stable answer never divides by zero;
- divergent: similarity below the threshold (default 0.6);
- refusal: the answer opens with a refusal phrase (`REFUSAL` below, looked for in its first
  200 characters; a heuristic, counted per version so the two versions are judged alike);
- JSON validity: the whole answer, stripped of surrounding whitespace, parses as JSON; counted
  only where the release's routing config expects JSON.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Indel

from .openai_api import Answer

DEFAULT_DIVERGENCE_THRESHOLD = 0.6
REFUSAL_WINDOW = 200
REFUSAL = re.compile(
    r"\b(i(?:'m| am)? (?:sorry|afraid)\b.{0,40}\b(?:can(?:no|')t|unable|won't|not able)"
    r"|i (?:can(?:no|')t|won't|will not|am unable to|am not able to|must decline to) "
    r"(?:help|assist|provide|comply|do that|answer|fulfil|support|create|share|generate|write)"
    r"|as an ai(?: language model)?,? i (?:can(?:no|')t|don't|do not|am not)"
    r"|i'm not able to (?:help|assist|provide)"
    r"|(?:this|that) (?:request )?(?:goes against|violates) (?:my|our) (?:guidelines|policies|policy))",
)


def normalise(text: str) -> str:
    """Text as compared loosely: NFKC, case folded, punctuation dropped, whitespace collapsed.
    normalise("  Paris,\u00a0France! ") == "paris france"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    unpunctuated = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return " ".join(unpunctuated.split())


def similarity(a: str, b: str) -> float:
    """rapidfuzz's normalised Indel similarity of the normalised texts, in [0, 1] (1 = same)."""
    return Indel.normalized_similarity(normalise(a), normalise(b))


def length_ratio(stable: str, candidate: str) -> float:
    """len(candidate) / len(stable), stable's length floored at 1: ("abcd", "ab") -> 0.5."""
    return len(candidate) / max(len(stable), 1)


def is_refusal(text: str) -> bool:
    """True when the answer opens with a refusal ("I'm sorry, but I can't help with that")."""
    opening = text[:REFUSAL_WINDOW].replace("\u2019", "'").casefold()
    return REFUSAL.search(opening) is not None


def is_valid_json(text: str) -> bool:
    """True when the whole answer (surrounding whitespace aside) is one JSON value."""
    try:
        json.loads(text.strip())
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class AnswerChecks:
    """What is counted about one version's answer alone. `json_valid` is None when JSON is not expected."""

    refused: bool
    json_valid: bool | None


def check(answer: Answer, expects_json: bool) -> AnswerChecks:
    return AnswerChecks(is_refusal(answer.text), is_valid_json(answer.text) if expects_json else None)


@dataclass(frozen=True)
class Comparison:
    """The candidate's answer measured against stable's, for one prompt."""

    exact_match: bool
    normalized_match: bool
    similarity: float
    length_ratio: float
    divergent: bool
    stable: AnswerChecks
    candidate: AnswerChecks


def compare(stable: Answer, candidate: Answer, expects_json: bool, *,
            divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD) -> Comparison:
    """Compare two successful answers (callers compare only when both versions answered)."""
    if not (stable.ok and candidate.ok):
        raise ValueError("compare needs two answers; a failed call is counted as an error, not compared")
    loose_stable, loose_candidate = normalise(stable.text), normalise(candidate.text)  # once each: the hot path
    score = Indel.normalized_similarity(loose_stable, loose_candidate)  # similarity(), normalised already
    return Comparison(
        exact_match=stable.text == candidate.text,
        normalized_match=loose_stable == loose_candidate,
        similarity=score,
        length_ratio=length_ratio(stable.text, candidate.text),
        divergent=score < divergence_threshold,
        stable=check(stable, expects_json),
        candidate=check(candidate, expects_json),
    )
