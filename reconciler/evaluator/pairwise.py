"""A judge model's preference between two answers to one prompt ("LLM as a judge", pairwise).

The judge is any OpenAI-compatible endpoint. It sees the user's prompt and two answers labelled
A and B and answers `[[A]]`, `[[B]]` or `[[C]]` (a tie), the MT-Bench pairwise format. Judges
favour a position (often the first), so which answer is A is drawn at random per sample
(`candidate_first`): over many samples the bias falls on both versions alike instead of on one.
The verdict is mapped back to "candidate" | "stable" | "tie"; an answer in neither form, or a
failed call, is None (not judged, so not counted either way).
"""

from __future__ import annotations

import random
import re
from typing import Literal

import httpx

from .openai_api import CHAT, Endpoint, complete

Preference = Literal["candidate", "stable", "tie"]

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. Choose the assistant that follows the user's "
    "instructions and answers the user's question better, considering helpfulness, relevance, accuracy, "
    "depth and harmlessness. Do not let the order of the responses, their length or the assistants' "
    "names influence you. After a short explanation, output your final verdict strictly in this format: "
    '"[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
ANSWER_A = ("[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]")
ANSWER_B = ("[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]")
VERDICT = re.compile(r"\[\[\s*(A|B|C|TIE)\s*\]\]", re.IGNORECASE)
BARE_VERDICT = re.compile(r"\s*(A|B|C|TIE)\s*\.?\s*", re.IGNORECASE)
MAX_JUDGE_TOKENS = 512


def judge_request(prompt: str, stable: str, candidate: str, *, candidate_first: bool) -> dict[str, object]:
    """The chat body asking the judge to compare; `candidate_first` puts the candidate's answer in A."""
    first, second = (candidate, stable) if candidate_first else (stable, candidate)
    user = (f"[User Question]\n{prompt}\n\n"
            f"{ANSWER_A[0]}\n{first}\n{ANSWER_A[1]}\n\n"
            f"{ANSWER_B[0]}\n{second}\n{ANSWER_B[1]}")
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "temperature": 0, "max_tokens": MAX_JUDGE_TOKENS}


def parse_preference(text: str, *, candidate_first: bool) -> Preference | None:
    """The judge's last `[[A]]`/`[[B]]`/`[[C]]` (or a bare "A", "B", "TIE" answer) as a preference.
    parse_preference("B is clearer. [[B]]", candidate_first=True) == "stable"."""
    found = VERDICT.findall(text)
    letter = found[-1] if found else (m.group(1) if (m := BARE_VERDICT.fullmatch(text)) else None)
    if letter is None:
        return None
    letter = letter.upper()
    if letter in ("C", "TIE"):
        return "tie"
    return "candidate" if (letter == "A") == candidate_first else "stable"


async def judge(client: httpx.AsyncClient, endpoint: Endpoint, prompt: str, stable: str, candidate: str, *,
                rng: random.Random, timeout: float, retries: int) -> Preference | None:
    """Ask the judge which answer is better, A/B order drawn from `rng`; None if it failed or answered off-form."""
    candidate_first = rng.random() < 0.5
    reply = await complete(client, endpoint, CHAT,
                           judge_request(prompt, stable, candidate, candidate_first=candidate_first),
                           timeout=timeout, retries=retries)
    return parse_preference(reply.text, candidate_first=candidate_first) if reply.ok else None
