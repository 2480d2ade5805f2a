"""Results of the policy rules, and the one place gaps in the inputs become results.

`guarded` runs one item's check: a value unknown during preview becomes an *unknown* result (the
pack reports it as advisory and `pulumi up` judges it again once it is known), and a missing
property becomes a violation that says what is missing and how to fix it. A rule therefore never
raises out of the pack, whatever the engine sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from .resources import MissingProperty, UnknownValue

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """One verdict. `urn` is the resource it is about ("" for the stack as a whole)."""

    message: str
    urn: str = ""
    unknown: bool = False


def violation(subject: str, problem: str, fix: str, urn: str = "") -> PolicyResult:
    """"staging: chat-assistant/v1.3.0-4f2a9c1d07e5 (candidate): toxicity 0.071 >= max 0.05; fix: retrain ..."."""
    return PolicyResult(f"{subject}: {problem}; fix: {fix}", urn)


def unknown(subject: str, gap: UnknownValue, urn: str = "") -> PolicyResult:
    return PolicyResult(f"{subject}: cannot be judged during preview because {gap.path or 'a value'} is not "
                        "known yet; it is judged when `pulumi up` knows it", urn, unknown=True)


def guarded(subject: str, fix: str, urn: str, check: Callable[[], Iterable[PolicyResult]]) -> Iterator[PolicyResult]:
    """Results of `check()`, with unknown values and missing properties turned into results."""
    try:
        yield from check()
    except UnknownValue as gap:
        yield unknown(subject, gap, urn)
    except MissingProperty as gap:
        yield violation(subject, gap.describe(), fix, urn)


def attempt(subject: str, fix: str, urn: str, compute: Callable[[], T]) -> tuple[T | None, list[PolicyResult]]:
    """(value, []) when `compute()` succeeds, else (None, [the unknown or violation result])."""
    try:
        return compute(), []
    except UnknownValue as gap:
        return None, [unknown(subject, gap, urn)]
    except MissingProperty as gap:
        return None, [violation(subject, gap.describe(), fix, urn)]
