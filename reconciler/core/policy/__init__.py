"""Policy rules: what `pulumi preview --policy-pack policies` blocks, written once in the pure core.

A rule is a `PolicyRule`: a kebab-case `name` (the CrossGuard policy name, also what stack config
uses to change its enforcement level), a `description`, `mandatory` (blocks) or advisory (warns),
a `scope` and a `check`:

- `Scope.RESOURCE`: `check(resource: PlannedResource) -> Iterable[PolicyResult]`, called once per
  planned resource (the engine's `Analyze`);
- `Scope.STACK`: `check(plan: Plan) -> Iterable[PolicyResult]`, called once with every resource of
  the stack (`AnalyzeStack`), for rules that join objects: routes with pointers and releases,
  Deployments with budgets and node groups.

A result names the environment, the release, what is wrong with numbers, and the fix
("...; fix: ..."). `unknown=True` marks a result that could not be decided because the engine does
not know a value yet during preview: never a violation, the pack reports it as advisory
(`unknown-during-preview`). Missing properties are violations with a message, never exceptions.

The rules reuse the checks `reconciler validate` runs (`evaluate_predeployment`,
`approver_problems`, `nodes_needed`, the digest pattern), so the pack and the CLI agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Iterable, Iterator, Sequence

from .resources import Plan, PlannedResource
from .results import PolicyResult


class Scope(StrEnum):
    RESOURCE = "resource"
    STACK = "stack"


@dataclass(frozen=True)
class PolicyRule:
    name: str
    description: str
    mandatory: bool
    scope: Scope
    check: Callable[[Any], Iterable[PolicyResult]]

    @property
    def level(self) -> str:
        return "mandatory" if self.mandatory else "advisory"

    def run(self, plan: Plan) -> list[PolicyResult]:
        """The rule's results over a whole plan: per resource, or once for the stack."""
        if self.scope is Scope.STACK:
            return list(self.check(plan))
        return [result for resource in plan.resources for result in self.check(resource)]


POLICIES: dict[str, PolicyRule] = {}


Check = Callable[[Any], Iterable[PolicyResult]]


def policy(name: str, description: str, *, mandatory: bool, scope: Scope) -> Callable[[Check], Check]:
    """Register a check under `name`: `@policy("route-weights", "...", mandatory=True, scope=Scope.STACK)`."""

    def register(check: Check) -> Check:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} is registered twice")
        POLICIES[name] = PolicyRule(name, description, mandatory, scope, check)
        return check

    return register


def count_rules(names: Iterable[str]) -> int:
    """How many of `names` are policy rules: the one count `plan` (the rules it ran) and `preview`
    (the policies the pack announces) report. The pack's `unknown-during-preview` policy carries
    rules' undecided results and is no rule of its own, so it does not count."""
    known = {rule.name for rule in policy_rules()}
    return len(known.intersection(names))


def policy_rules() -> list[PolicyRule]:
    """Every rule, mandatory first, in registration order within each level."""
    # Registration order is report order: routes, pods, release documents, capacity, secrets.
    from . import routes, workloads, release_documents, capacity, secrets  # noqa: F401, I001

    rules = list(POLICIES.values())
    return [r for r in rules if r.mandatory] + [r for r in rules if not r.mandatory]


def get_rule(name: str) -> PolicyRule:
    policy_rules()
    return POLICIES[name]


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: PolicyRule
    result: PolicyResult


def evaluate(resources: Sequence[PlannedResource], rules: Sequence[PolicyRule] | None = None) -> list[Verdict]:
    """Run rules (default: all) over one stack's planned resources, as the pack would."""
    plan = Plan(resources)
    return [Verdict(rule, result) for rule in (rules if rules is not None else policy_rules())
            for result in rule.run(plan)]


def violations(verdicts: Iterable[Verdict]) -> Iterator[Verdict]:
    return (v for v in verdicts if not v.result.unknown)


__all__ = ["POLICIES", "Plan", "PlannedResource", "PolicyResult", "PolicyRule", "Scope", "Verdict",
           "evaluate", "get_rule", "policy", "policy_rules", "violations"]
