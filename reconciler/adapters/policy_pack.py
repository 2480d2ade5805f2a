"""The CrossGuard face of the core's policy rules: pulumi_policy objects built from the registry.

Each `PolicyRule` becomes a `ResourceValidationPolicy` (scope resource, the engine's `Analyze`) or a
`StackValidationPolicy` (scope stack, `AnalyzeStack`), MANDATORY when the rule is mandatory and
ADVISORY otherwise. Enforcement stays configurable per stack through CrossGuard's own policy config
(`{"route-weights": {"enforcementLevel": "advisory"}}`), which pulumi_policy applies by name.

Unknown values: a mandatory rule's `unknown=True` results are not violations; the extra ADVISORY
stack policy `unknown-during-preview` re-runs the mandatory rules (resource rules only on resources
holding an unknown value) and reports their unknown results, so a preview says what it could not judge without blocking on it. Advisory rules report their own
unknowns. A rule that raises (a bug, never bad input) is reported as a violation at the rule's
level: the pack fails closed rather than waving a release through.

The engine's properties arrive as pulumi_policy proxies that raise on unknown values; they are
converted to plain dicts (sentinels kept) before the pure rules see them.
"""

from __future__ import annotations

import traceback
from functools import partial
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.proxy import _DictProxy, _ListProxy  # the SDK's proxy types: unwrapped by `plain`

from ..core.policy import Plan, PlannedResource, PolicyResult, PolicyRule, Scope, policy_rules
from ..core.policy.resources import UNKNOWNS, find_unknown

PACK_NAME = "sluice"
UNKNOWN_POLICY = "unknown-during-preview"


def plain(value: Any) -> Any:
    """The engine's property proxies as plain dicts and lists, unknown sentinels kept as strings.

    The SDK wraps every dict and list of the inputs in a proxy that raises on unknown values; its
    `"__target"` key hands back the wrapped container. Anything else (assets) is left as it is.
    """
    kind = type(value)
    if kind is _DictProxy:
        return {k: plain(v) for k, v in value["__target"].items()}
    if kind is _ListProxy:
        return [plain(v) for v in value["__target"]]
    if kind is dict:
        return {k: plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    if isinstance(value, Mapping):  # another proxy (e.g. a secrets proxy): the SDK's own unwrapping
        return dict(serialize_properties(value))
    return value


def _has_unknown(value: Any) -> bool:
    kind = type(value)
    if kind is _DictProxy or kind is _ListProxy:
        value = value["__target"]
        kind = type(value)
    if kind is dict:
        return any(_has_unknown(v) for v in value.values())
    if kind is list:
        return any(_has_unknown(v) for v in value)
    if kind is str:
        return value in UNKNOWNS
    if isinstance(value, Mapping):
        return find_unknown(plain(value)) is not None
    return False


class LazyProps(Mapping[str, Any]):
    """A resource's properties, unwrapped on first use: most rules skip most resources by type, and
    pulumi_policy hands each policy its own freshly deserialized copy."""

    def __init__(self, proxied: Mapping[str, Any]) -> None:
        self._proxied: Mapping[str, Any] | None = proxied
        self._plain: dict[str, Any] = {}

    def has_unknown(self) -> bool:
        """Does any value hold an unknown sentinel? Walks the SDK's containers without copying them."""
        return _has_unknown(self._proxied) if self._proxied is not None else find_unknown(self._plain) is not None

    def _props(self) -> dict[str, Any]:
        if self._proxied is not None:
            self._plain, self._proxied = plain(self._proxied), None
        return self._plain

    def __getitem__(self, key: str) -> Any:
        return self._props()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._props())

    def __len__(self) -> int:
        return len(self._props())


def _planned(type_: str, name: str, urn: str, props: Mapping[str, Any]) -> PlannedResource:
    return PlannedResource(urn=urn, type=type_, name=name, props=LazyProps(props))


def planned_resource(args: ResourceValidationArgs) -> PlannedResource:
    return _planned(args.resource_type, args.name, args.urn, args.props)


def planned_stack(args: StackValidationArgs) -> Plan:
    return Plan(_planned(r.resource_type, r.name, r.urn, r.props) for r in args.resources)


def _safely(rule: PolicyRule, run: Callable[[], Iterable[PolicyResult]], urn: str) -> list[PolicyResult]:
    try:
        return list(run())
    except Exception:  # noqa: BLE001  (a bug in a rule must block, not crash the pack)
        where = traceback.format_exc(limit=-1).strip().splitlines()[-1]
        return [PolicyResult(f"policy {rule.name} failed on this input ({where}); this is a bug in Sluice's "
                             "policy pack: report it, and do not deploy until it is fixed", urn)]


def _report(rule: PolicyRule, results: Iterable[PolicyResult], report_violation: ReportViolation,
            with_urn: bool) -> None:
    for result in results:
        if result.unknown and rule.mandatory:
            continue  # reported by unknown-during-preview, as advisory
        report_violation(result.message, (result.urn or None) if with_urn else None)


def resource_validator(rule: PolicyRule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = planned_resource(args)
        _report(rule, _safely(rule, lambda: rule.check(resource), args.urn), report_violation, with_urn=False)

    return validate


def stack_validator(rule: PolicyRule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        plan = planned_stack(args)
        _report(rule, _safely(rule, lambda: rule.run(plan), ""), report_violation, with_urn=True)

    return validate


def unknowns_validator(rules: list[PolicyRule]) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        plan = planned_stack(args)
        # Only a resource holding an unknown value can make a rule's result unknown: a resource rule
        # reads its own resource, so it re-runs on those alone; without any, there is nothing to do.
        pending = [r for r in plan.resources
                   if (r.props.has_unknown() if isinstance(r.props, LazyProps) else find_unknown(r.props))]
        if not pending:
            return
        for rule in rules:
            if rule.scope is Scope.STACK:
                results = _safely(rule, partial(rule.run, plan), "")
            else:
                results = [x for r in pending for x in _safely(rule, partial(rule.check, r), r.urn)]
            for result in results:
                if result.unknown:
                    report_violation(f"{rule.name}: {result.message}", result.urn or None)

    return validate


def level(rule: PolicyRule) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY


def build_policies(rules: list[PolicyRule] | None = None) -> list[Policy]:
    """The pack's policies: one per rule, plus `unknown-during-preview`."""
    rules = rules if rules is not None else policy_rules()
    policies: list[Policy] = []
    for rule in rules:
        if rule.scope is Scope.RESOURCE:
            policies.append(ResourceValidationPolicy(name=rule.name, description=rule.description,
                                                     validate=resource_validator(rule), enforcement_level=level(rule)))
        else:
            policies.append(StackValidationPolicy(name=rule.name, description=rule.description,
                                                  validate=stack_validator(rule), enforcement_level=level(rule)))
    policies.append(StackValidationPolicy(
        name=UNKNOWN_POLICY,
        description="Mandatory checks that could not be judged during preview because a value is not known yet "
                    "(they are judged again by `pulumi up`)",
        validate=unknowns_validator([r for r in rules if r.mandatory]),
        enforcement_level=EnforcementLevel.ADVISORY))
    return policies
