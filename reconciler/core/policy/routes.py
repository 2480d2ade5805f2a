"""Traffic rules: what the VirtualService sends where, against what the pointer and the rollout say.

The expected split (docs/policies.md#route-weights): the candidate gets its current stage's weight, stable the rest,
every other live version 0, and a shadow stage mirrors `mirror`% to the candidate. The pointer
ConfigMap says which version is which and the candidate's stage; the candidate's release document
says what that stage's weight is. A route is a *traffic route* unless it is pinned to one version
by the `x-model-version` header.

Example: stable 1.2.0, candidate 1.3.0 at stage 1 of [0, 1, 5, 25, 50, 100] -> every traffic route
sends v1-2-0 99% and v1-3-0 1%.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from collections.abc import Mapping
from typing import Any, Iterator

from ..evaluator_manifests import evaluator_name
from ..naming import VERSION_HEADER, subset_name
from ..route_manifests import service_host
from ..types import version_key
from . import Scope, policy
from .resources import (
    Invalid,
    MissingProperty,
    Plan,
    PlannedResource,
    ReleaseDocument,
    UnknownValue,
    as_int,
    get,
    is_unknown,
    typed,
)
from .results import PolicyResult, attempt, guarded, violation

ROUTE_FIX = ("routes come from the environment's pointers and the candidate's rollout.stages: set "
             "models.{model}.stage in environments/{env}.yaml and let the program write the weights; "
             "never edit a VirtualService by hand")
MAX_FIRST_STAGE = 5  # percent: a first canary step above this exposes many users to an unproven release
SMALL_STAGE = 1  # percent: a major version should meet users at 1% (or in shadow) first


@dataclass(frozen=True)
class Stage:
    index: int
    weight: int
    mirror: int


@dataclass(frozen=True)
class ExpectedSplit:
    """What every traffic route of one model must do, and why (for messages)."""

    weights: dict[str, int]  # subset -> percent
    reasons: dict[str, str]  # subset -> "stable 1.2.0", "candidate chat-assistant/v1.3.0-... at stage 1"
    mirror: tuple[str, int] | None  # (subset, percent)


def rollout_stages(document: ReleaseDocument) -> list[Stage]:
    """The rollout stages of a release document, as (index, weight, mirror)."""
    stages = typed(get(document.release, "rollout", "stages", path="release.json.release"), list,
                   "release.json.release.rollout.stages", "a list of stages")
    out = []
    for i, stage in enumerate(stages):
        path = f"release.json.release.rollout.stages[{i}]"
        stage = typed(stage, Mapping, path, "a stage")
        out.append(Stage(i, as_int(get(stage, "weight", path=path), f"{path}.weight"),
                         as_int(get(stage, "mirror", path=path, default=0), f"{path}.mirror")))
    return out


def candidate_stage(plan: Plan, model: str) -> tuple[ReleaseDocument, Stage] | None:
    """The candidate of `model` and its current stage, None when there is no candidate.

    Raises MissingProperty when the pointer names a stage the candidate's rollout does not have.
    """
    pointer = plan.pointers.get(model)
    if pointer is None or not pointer.canary:
        return None
    document = plan.release(model, pointer.canary)
    text = pointer.value("canary_stage")
    try:
        index = int(text)
    except ValueError:
        raise MissingProperty(f"{pointer.resource.label} data.canary_stage", "a stage number",
                              present=True) from None
    stages = rollout_stages(document)
    if not 0 <= index < len(stages):
        raise Invalid(f"{pointer.resource.label} puts candidate {document.full_id} at stage {index}, but its "
                      f"rollout has stages 0..{len(stages) - 1}")
    return document, stages[index]


def expected_split(plan: Plan, model: str) -> ExpectedSplit | None:
    pointer = plan.pointers.get(model)
    if pointer is None or not pointer.current:
        return None
    stable = subset_name(pointer.current)
    current = candidate_stage(plan, model)
    if current is None:
        return ExpectedSplit({stable: 100}, {stable: f"stable {pointer.current}, no candidate"}, None)
    document, stage = current
    candidate = subset_name(pointer.canary)
    reason = f"candidate {document.full_id} at stage {stage.index}"
    return ExpectedSplit({stable: 100 - stage.weight, candidate: stage.weight},
                         {stable: f"stable {pointer.current}", candidate: reason},
                         (candidate, stage.mirror) if stage.mirror else None)


def _is_pinned(route: Mapping[str, Any]) -> bool:
    matches = route.get("match")
    if not isinstance(matches, list):
        return False
    return bool(matches) and all(isinstance(m, Mapping) and isinstance(m.get("headers"), Mapping)
                                 and VERSION_HEADER in m["headers"] for m in matches)


def _number(value: Any, path: str) -> float:
    if is_unknown(value):
        raise UnknownValue(path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MissingProperty(path, "a number")
    return float(value)


def _pct(value: float) -> str:
    return f"{value:g}%"


def _route_weights(route: Mapping[str, Any], path: str) -> dict[str, float]:
    """subset -> percent for one traffic route; a lone destination without a weight gets 100."""
    destinations = typed(get(route, "route", path=path), list, f"{path}.route", "a list of destinations")
    if not destinations:
        raise MissingProperty(f"{path}.route", "at least one destination")
    weights: dict[str, float] = {}
    for j, destination in enumerate(destinations):
        here = f"{path}.route[{j}]"
        destination = typed(destination, Mapping, here, "a destination")
        default = 100 if len(destinations) == 1 else 0
        weight = _number(get(destination, "weight", path=here, default=default), f"{here}.weight")
        subset = get(destination, "destination", "subset", path=here, default="")
        host = get(destination, "destination", "host", path=here, default="")
        key = subset or str(host) or here
        weights[key] = weights.get(key, 0.0) + weight
    return weights


@dataclass(frozen=True)
class MirrorTarget:
    """One copy a route makes of its requests: to a subset of the model (a shadow stage's candidate)
    or to another Service (the online evaluator)."""

    host: str
    subset: str
    percent: float


def route_mirrors(route: Mapping[str, Any], path: str) -> list[MirrorTarget]:
    """Every mirror of a route, written as `mirror` + `mirrorPercentage` or as Istio's `mirrors` list.
    A percentage left out is Istio's default, 100."""
    found = []
    mirror = get(route, "mirror", path=path, default=None)
    if mirror is not None:
        mirror = typed(mirror, Mapping, f"{path}.mirror", "a destination")
        found.append(_mirror_target(mirror, f"{path}.mirror", get(route, "mirrorPercentage", "value", path=path,
                                                                  default=100), f"{path}.mirrorPercentage.value"))
    mirrors = typed(get(route, "mirrors", path=path, default=[]), list, f"{path}.mirrors", "a list of mirrors")
    for j, entry in enumerate(mirrors):
        here = f"{path}.mirrors[{j}]"
        destination = typed(get(entry, "destination", path=here), Mapping, f"{here}.destination", "a destination")
        found.append(_mirror_target(destination, f"{here}.destination", get(entry, "percentage", "value", path=here,
                                                                           default=100), f"{here}.percentage.value"))
    return found


def _mirror_target(destination: Mapping[str, Any], path: str, percent: Any, percent_path: str) -> MirrorTarget:
    """One mirror, from its Istio Destination at `path` and its percentage (either form)."""
    return MirrorTarget(str(get(destination, "host", path=path, default="")),
                        str(get(destination, "subset", path=path, default="")), _number(percent, percent_path))


def _route_mirror(route: Mapping[str, Any], path: str) -> tuple[str, float] | None:
    """The route's mirror to a version of the model (a shadow stage), None when it mirrors none."""
    to_versions = [m for m in route_mirrors(route, path) if m.subset]
    if len(to_versions) > 1:
        raise Invalid(f"{path} mirrors to {len(to_versions)} versions ({', '.join(m.subset for m in to_versions)}): "
                      "a shadow stage mirrors to its candidate only")
    return (to_versions[0].subset, to_versions[0].percent) if to_versions else None


def _check_routes(plan: Plan, service: PlannedResource, model: str) -> Iterator[PolicyResult]:
    env = plan.environment
    subject = f"{env}: {service.label}"
    fix = ROUTE_FIX.format(model=model, env=env)
    http = typed(get(service.props, "spec", "http"), list, "spec.http", "a list of routes")
    expected, gaps = attempt(subject, fix, service.urn, partial(expected_split, plan, model))
    yield from gaps
    for i, route in enumerate(http):
        path = f"spec.http[{i}]"
        route = typed(route, Mapping, path, "a route")
        if _is_pinned(route):
            continue
        name = route.get("name") if isinstance(route.get("name"), str) else path
        weights = _route_weights(route, path)
        total = sum(weights.values())
        shown = ", ".join(f"{k} {_pct(v)}" for k, v in weights.items())
        if abs(total - 100) > 1e-9:
            yield violation(f"{subject} route {name}", f"weights sum to {_pct(total)} ({shown}), not 100%", fix,
                            service.urn)
            continue
        if expected is None:
            continue
        wrong = [k for k in weights.keys() | expected.weights.keys()
                 if abs(weights.get(k, 0.0) - expected.weights.get(k, 0)) > 1e-9]
        for subset in sorted(wrong):
            reason = expected.reasons.get(subset, "not the stable or the candidate")
            yield violation(f"{subject} route {name}",
                            f"sends {_pct(weights.get(subset, 0.0))} to {subset} ({reason}), "
                            f"which should get {_pct(expected.weights.get(subset, 0))}", fix, service.urn)
        actual_mirror = _route_mirror(route, path)
        want = expected.mirror
        if want is None and actual_mirror is not None:
            yield violation(f"{subject} route {name}",
                            f"mirrors {_pct(actual_mirror[1])} to {actual_mirror[0]}, but no stage mirrors now",
                            fix, service.urn)
        elif want is not None and (actual_mirror is None or actual_mirror[0] != want[0]
                                   or abs(actual_mirror[1] - want[1]) > 1e-9):
            got = f"mirrors {_pct(actual_mirror[1])} to {actual_mirror[0]}" if actual_mirror else "mirrors nothing"
            yield violation(f"{subject} route {name}",
                            f"{got}, but {expected.reasons[want[0]]} mirrors {want[1]}% to {want[0]}",
                            fix, service.urn)


@policy("route-weights",
        "Traffic routes send 100% in total, the candidate gets exactly its current stage's weight "
        "(stable the rest, other versions 0), and shadow stages mirror as the stage says",
        mandatory=True, scope=Scope.STACK)
def route_weights(plan: Plan) -> Iterator[PolicyResult]:
    for service, model in _virtual_services(plan):
        yield from guarded(f"{plan.environment}: {service.label}", ROUTE_FIX.format(model=model, env=plan.environment),
                           service.urn, partial(_check_routes, plan, service, model))


def _virtual_services(plan: Plan) -> Iterator[tuple[PlannedResource, str]]:
    """Each VirtualService with the model it routes (its `app` label, else its name)."""
    for service in plan.of_kind("VirtualService"):
        app = service.labels().get("app")
        yield service, app if isinstance(app, str) and app else service.object_name


def _candidates(plan: Plan) -> Iterator[tuple[str, Any]]:
    """(model, pointer) of each model with a candidate, or whose candidate is not known yet (the
    check then reports it as unknown)."""
    for model, pointer in sorted(plan.pointers.items()):
        try:
            if not pointer.canary:
                continue
        except UnknownValue:
            pass
        yield model, pointer


def _first_stage(plan: Plan, model: str, pointer: Any) -> Iterator[PolicyResult]:
    document = plan.release(model, pointer.canary)
    strategy = get(document.release, "rollout", "strategy", path="release.json.release", default="canary")
    if strategy == "blue-green":
        return  # a 0/100 switch by design; see major-version-rollout for majors
    first = next((s for s in rollout_stages(document) if s.weight > 0), None)
    if first is not None and first.weight > MAX_FIRST_STAGE:
        yield violation(f"{plan.environment}: {document.full_id} (candidate)",
                        f"its first stage with traffic (stage {first.index}) sends {first.weight}% at once, "
                        f"above {MAX_FIRST_STAGE}%",
                        f"add a {SMALL_STAGE}% or {MAX_FIRST_STAGE}% stage before it in rollout.stages, so a "
                        "bad release reaches few users", document.resource.urn)


@policy("first-canary-stage",
        f"A canary's first stage with traffic sends at most {MAX_FIRST_STAGE}%",
        mandatory=False, scope=Scope.STACK)
def first_canary_stage(plan: Plan) -> Iterator[PolicyResult]:
    for model, pointer in _candidates(plan):
        yield from guarded(f"{plan.environment}: candidate of {model}", "check the candidate's release document",
                           pointer.resource.urn, partial(_first_stage, plan, model, pointer))


def _major(plan: Plan, model: str, pointer: Any) -> Iterator[PolicyResult]:
    if not pointer.current:
        return
    stable, candidate = pointer.current, pointer.canary
    try:
        if version_key(candidate)[0] <= version_key(stable)[0]:
            return
    except ValueError:
        raise MissingProperty(f"{pointer.resource.label} data", "semantic versions", present=True) from None
    document = plan.release(model, candidate)
    stages = rollout_stages(document)
    cautious = False
    for stage in stages:
        if stage.weight > SMALL_STAGE:
            break
        if stage.mirror > 0 or 0 < stage.weight <= SMALL_STAGE:
            cautious = True
    if not cautious:
        weights = " -> ".join(f"{s.weight}%" + (f" (mirror {s.mirror}%)" if s.mirror else "") for s in stages)
        yield violation(f"{plan.environment}: {document.full_id} (candidate)",
                        f"a major version ({stable} -> {candidate}: new base model or architecture) rolls out as "
                        f"{weights} with no shadow or <= {SMALL_STAGE}% stage before larger ones",
                        f"start with a shadow stage ({{weight: 0, mirror: 100}}) or a {SMALL_STAGE}% stage",
                        document.resource.urn)


@policy("major-version-rollout",
        f"A major version (candidate MAJOR above stable's) meets users in shadow or at <= {SMALL_STAGE}% "
        "before larger stages",
        mandatory=False, scope=Scope.STACK)
def major_version_rollout(plan: Plan) -> Iterator[PolicyResult]:
    for model, pointer in _candidates(plan):
        yield from guarded(f"{plan.environment}: candidate of {model}", "check the candidate's release document",
                           pointer.resource.urn, partial(_major, plan, model, pointer))


MIRROR_FIX = ("mirrors come from the program: a shadow stage mirrors to the candidate's subset, and the environment's "
              "`evaluator` block mirrors its sample to the model's own evaluator Service (docs/formats.md#evaluator); "
              "never edit a VirtualService by hand")


def _check_mirrors(plan: Plan, service: PlannedResource, model: str) -> Iterator[PolicyResult]:
    namespace = service.namespace()
    model_host = service_host(model, namespace)
    evaluator = evaluator_name(model)
    allowed_host = service_host(evaluator, namespace)
    planned = any(s.object_name == evaluator and s.namespace() == namespace for s in plan.of_kind("Service"))
    http = typed(get(service.props, "spec", "http"), list, "spec.http", "a list of routes")
    for i, route in enumerate(http):
        path = f"spec.http[{i}]"
        route = typed(route, Mapping, path, "a route")
        name = route.get("name") if isinstance(route.get("name"), str) else path
        subject = f"{plan.environment}: {service.label} route {name}"
        for mirror in route_mirrors(route, path):
            if _is_pinned(route):
                yield violation(subject, f"a route pinned by {VERSION_HEADER} mirrors to {mirror.host}: a tester's "
                                "request is nobody's sample", MIRROR_FIX, service.urn)
            elif mirror.subset and mirror.host != model_host:
                yield violation(subject, f"mirrors to subset {mirror.subset} of {mirror.host}, not of the model's own "
                                f"host {model_host}", MIRROR_FIX, service.urn)
            elif not mirror.subset and mirror.host != allowed_host:
                yield violation(subject, f"mirrors {_pct(mirror.percent)} of {model}'s user traffic to {mirror.host}: "
                                f"user prompts may only be copied to the model's evaluator ({allowed_host})",
                                MIRROR_FIX, service.urn)
            elif not mirror.subset and not planned:
                yield violation(subject, f"mirrors to {mirror.host}, but this stack has no Service {evaluator} in "
                                f"{namespace}", MIRROR_FIX, service.urn)


@policy("mirror-targets",
        "User traffic is mirrored only to the model's own candidate subset or to the model's online evaluator "
        "Service in the same stack, and never from a route pinned by x-model-version",
        mandatory=True, scope=Scope.STACK)
def mirror_targets(plan: Plan) -> Iterator[PolicyResult]:
    for service, model in _virtual_services(plan):
        yield from guarded(f"{plan.environment}: {service.label}", MIRROR_FIX, service.urn,
                           partial(_check_mirrors, plan, service, model))
