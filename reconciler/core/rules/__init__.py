"""Semantic rules: pure checks over the loaded repository, each with a stable id.

A rule is a function `Repository -> Iterable[Finding]`, registered with `@rule("id")`. The checks
inside work on single values (a rollout, a pool list) and return `Problem`s, so the Pulumi program
and the policy pack can call them on the values they hold.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ..findings import Finding
from ..repository import Repository

RuleFn = Callable[[Repository], Iterable[Finding]]
RULES: dict[str, RuleFn] = {}


def rule(rule_id: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        RULES[rule_id] = fn
        fn.rule_id = rule_id  # type: ignore[attr-defined]
        return fn

    return register


def check(repo: Repository) -> list[Finding]:
    """Run every rule; the order of the result follows the rule registry, reporters sort."""
    from . import environment_rules, evaluation_rules, evidence_rules, release_rules  # noqa: F401  (registration)

    return [finding for fn in RULES.values() for finding in fn(repo)]
